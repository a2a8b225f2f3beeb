"""Experiments of the large-outputs lab: train an encoder + a large output layer, one tidy row per epoch.

The model is ``XCModel``: a bag-of-embeddings encoder (``nn.EmbeddingBag`` mean of the input's feature ids, then
``tanh``) in front of any :class:`~workbench.hashing.output.OutputLayer`, named by a string:

* ``"full"``, ``"uniform"``, ``"unigram"``, ``"lsh"``: :class:`~workbench.hashing.softmax.LSHSoftmax` with that
  sampler (``"full"`` is the exact softmax);
* ``"dense"``: ``LSHSoftmax(sampler="full")``, i.e. ``nn.Linear`` + cross-entropy, the baseline of the hashed layer;
* ``"hashed"``: :class:`workbench.hashing.slide.HashedSparseLinear` (SLIDE), imported only when asked for.

Training runs through the workbench's one loop, :func:`workbench.dynamics.train.train` (its ``model_loss`` hook calls
``layer.loss``; plain SGD without momentum, so sparse gradients stay sparse), and evaluation computes the exact
logits (``layer.full_logits``) on a held-out sample: P@1 is the top-1 accuracy. ``seconds`` per epoch exclude the
evaluations.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from workbench.checks import integer, option
from workbench.errors import DataError
from workbench.hashing.softmax import LSHSoftmax
from workbench.hashing.xc import XCData, synthetic_xc

LAYER_KINDS = ("full", "uniform", "unigram", "lsh", "dense", "hashed")
COLUMNS = ["data", "synthetic", "kind", "width", "epoch", "step", "seconds", "seconds_per_step", "p_at_1",
           "test_loss", "negatives", "active_fraction", "rebuilds", "touched_per_sample", "param_mb",
           "peak_rss_mb"]


def make_output_layer(kind: str, in_features: int, n_out: int, *, negatives: int | None = None, K: int = 8,
                      L: int = 16, rebuild_every: int | None = 50, class_counts: Any = None, seed: int = 0,
                      **kw: Any) -> nn.Module:
    """The output layer named ``kind`` (module docstring); ``kw`` goes to ``HashedSparseLinear`` only."""
    option("kind", kind, LAYER_KINDS, where="make_output_layer")
    if kind == "hashed":
        try:
            from workbench.hashing.slide import HashedSparseLinear
        except ImportError as exc:
            from workbench.errors import UnavailableError

            raise UnavailableError("the 'hashed' layer needs workbench.hashing.slide (HashedSparseLinear), which "
                                   f"this installation lacks ({exc})") from exc
        return HashedSparseLinear(in_features, n_out, K=K, L=L, rebuild_every=rebuild_every, seed=seed, **kw)
    sampler = "full" if kind == "dense" else kind
    return LSHSoftmax(in_features, n_out, sampler=sampler, negatives=negatives, K=K, L=L,
                      rebuild_every=rebuild_every, class_counts=class_counts if sampler == "unigram" else None,
                      seed=seed)


class XCModel(nn.Module):
    """``head(tanh(EmbeddingBag-mean(x)))``: ``forward`` gives the exact logits, ``training_loss`` the head's
    training loss."""

    def __init__(self, n_features: int, hidden: int, head: nn.Module, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.encoder = nn.EmbeddingBag(int(n_features), int(hidden), mode="mean")
            nn.init.normal_(self.encoder.weight, std=1.0)
        self.head = head

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head.full_logits(self.encode(x))

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.head.loss(self.encode(x), y)


class _Handle:
    """What :func:`~workbench.dynamics.train.train` needs: ``model``, the data, and ``evaluate(model=)`` (exact
    logits in chunks on at most ``eval_samples`` test samples; its time is kept apart)."""

    def __init__(self, model: XCModel, data: XCData, eval_samples: int, chunk: int) -> None:
        self.model, self.data, self.name = model, data, data.name
        self.x_eval, self.y_eval = data.x_test[:eval_samples], data.y_test[:eval_samples]
        self.chunk, self.eval_seconds = chunk, 0.0

    def train_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data.train_data()

    def test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x_eval, self.y_eval

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        t = time.perf_counter()
        was = model.training
        model.eval()
        loss, correct = 0.0, 0
        for i in range(0, len(self.y_eval), self.chunk):
            out = model(self.x_eval[i:i + self.chunk])
            y = self.y_eval[i:i + self.chunk]
            loss += float(F.cross_entropy(out, y, reduction="sum"))
            correct += int((out.argmax(1) == y).sum())
        model.train(was)
        self.eval_seconds += time.perf_counter() - t
        n = max(1, len(self.y_eval))
        return {"loss": loss / n, "accuracy": correct / n}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def train_output_layer(data: XCData, kind: str = "lsh", *, hidden: int = 64, epochs: float = 1.0,
                       batch_size: int = 256, lr: float = 0.5, negatives: int | None = 64, K: int = 8,
                       L: int = 16, rebuild_every: int | None = 50, eval_every: float = 1.0,
                       eval_samples: int = 5000, seed: int = 0, layer_kw: dict[str, Any] | None = None,
                       stop: Any = None, on_row: Callable[[dict], None] | None = None,
                       progress: bool = False) -> pd.DataFrame:
    """Train ``XCModel`` with the output layer ``kind`` on ``data``; one row per evaluation (:data:`COLUMNS`).

    ``seconds`` is the training time of the epoch that ends at the row (evaluations excluded),
    ``seconds_per_step`` the same per update; ``negatives`` / ``active_fraction`` / ``rebuilds`` /
    ``touched_per_sample`` come from the layer's ``stats()``; ``param_mb`` is the model's parameter memory and
    ``peak_rss_mb`` the process's peak resident memory so far. ``on_row(row)`` sees each row as it is made.
    """
    from workbench.dynamics.train import train

    where = "train_output_layer"
    option("kind", kind, LAYER_KINDS, where=where)
    hidden = integer("hidden", hidden, low=1, where=where)
    eval_samples = integer("eval_samples", eval_samples, low=1, where=where)
    if len(data.y_test) == 0:
        raise DataError(f"{where}: {data.name} has no test samples to measure P@1 on")
    negatives = None if negatives is None else min(int(negatives), data.n_classes - 1)
    head = make_output_layer(kind, hidden, data.n_classes, negatives=negatives, K=K, L=L,
                             rebuild_every=rebuild_every,
                             class_counts=data.class_counts if kind == "unigram" else None, seed=seed,
                             **(layer_kw or {}))
    model = XCModel(data.n_features, hidden, head, seed=seed)
    handle = _Handle(model, data, eval_samples, chunk=max(1, min(1024, int(2 ** 27 // data.n_classes))))
    rows: list[dict] = []
    trained: dict[str, nn.Module] = {}
    last = {"seconds": 0.0, "eval": 0.0, "step": 0}

    def setup(m: nn.Module) -> None:
        trained["model"] = m

    def on_metrics(metric: dict) -> None:
        head_now = trained["model"].head
        stats = head_now.stats() if hasattr(head_now, "stats") else {}
        train_s = metric["seconds"] - handle.eval_seconds
        steps = metric["step"] - last["step"]
        seconds = train_s - last["seconds"]
        n_out = data.n_classes
        neg = float(stats.get("negatives", float("nan")))
        active = float(stats.get("active_fraction", neg / (n_out - 1) if not math.isnan(neg) else float("nan")))
        row = {"data": data.name, "synthetic": bool(data.synthetic), "kind": kind, "width": n_out,
               "epoch": float(metric["epoch"]), "step": int(metric["step"]), "seconds": float(seconds),
               "seconds_per_step": float(seconds / steps) if steps else float("nan"),
               "p_at_1": float(metric["test_acc"]), "test_loss": float(metric["test_loss"]),
               "negatives": neg, "active_fraction": active, "rebuilds": float(stats.get("rebuilds", float("nan"))),
               "touched_per_sample": float(stats.get("touched_per_sample", float("nan"))),
               "param_mb": sum(p.numel() * p.element_size() for p in trained["model"].parameters()) / 2 ** 20,
               "peak_rss_mb": _peak_rss_mb()}
        last.update(seconds=train_s, step=metric["step"])
        rows.append(row)
        if on_row is not None:
            on_row(row)

    train(handle, batch_size=batch_size, lr=lr, epochs=epochs, momentum=0.0, reinit=False, seed=seed,
          eval_every=eval_every, track_points=2, stop=stop, on_metrics=on_metrics, progress=progress,
          setup=setup, eval_train=False,
          model_loss=lambda m, x, y: m.training_loss(x, y))
    return pd.DataFrame(rows, columns=COLUMNS)


def compare_output_layers(data: XCData, kinds: Sequence[str] = ("full", "uniform", "unigram", "lsh"),
                          **kw: Any) -> pd.DataFrame:
    """:func:`train_output_layer` for each kind on the same data; the rows stacked."""
    for k in kinds:
        option("kind", k, LAYER_KINDS, where="compare_output_layers")
    frames = [train_output_layer(data, k, **kw) for k in kinds]
    return pd.concat(frames, ignore_index=True)


def scaling_sweep(widths: Sequence[int] = (10_000, 100_000), kinds: Sequence[str] = ("full", "uniform",
                  "unigram", "lsh"), *, n_train: int | None = None, data_seed: int = 0, **kw: Any) -> pd.DataFrame:
    """:func:`compare_output_layers` on :func:`~workbench.hashing.xc.synthetic_xc` data of each width."""
    frames = [compare_output_layers(synthetic_xc(int(w), n_train, seed=data_seed), kinds, **kw) for w in widths]
    return pd.concat(frames, ignore_index=True)


def step_costs(widths: Sequence[int] = (1_000, 3_000, 10_000, 30_000, 100_000),
               kinds: Sequence[str] = ("full", "lsh"), *, hidden: int = 64, batch_size: int = 256,
               negatives: int | None = 64, K: int = 8, L: int = 16, rebuild_every: int | None = 50,
               repeats: int = 5, seed: int = 0, layer_kw: dict[str, Any] | None = None) -> pd.DataFrame:
    """Seconds of one training step (forward, backward, SGD update of the output layer) per (kind, width) on random
    hidden vectors: the median of ``repeats`` steps after one warm-up, plus the table rebuild amortised over
    ``rebuild_every`` steps (``rebuild_seconds`` says what one rebuild costs). No training, no data: where the
    hashed layers overtake the dense multiply on this machine. ``ratio`` = the ``full`` (or ``dense``) step of the
    same width / this step."""
    rows = []
    gen = torch.Generator().manual_seed(int(seed))
    for width in widths:
        width = integer("width", width, low=2, where="step_costs")
        h = torch.randn(int(batch_size), int(hidden), generator=gen)
        y = torch.randint(0, width, (int(batch_size),), generator=gen)
        for kind in kinds:
            head = make_output_layer(kind, hidden, width, negatives=None if negatives is None else min(negatives,
                                     width - 1), K=K, L=L, rebuild_every=None, seed=seed,
                                     class_counts=torch.ones(width) if kind == "unigram" else None,
                                     **(layer_kw or {}))
            opt = torch.optim.SGD(head.parameters(), lr=0.01)
            times = []
            for r in range(int(repeats) + 1):
                t = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                head.loss(h, y).backward()
                opt.step()
                times.append(time.perf_counter() - t)
            t = time.perf_counter()
            head.rebuild()
            rebuild = time.perf_counter() - t if kind not in ("full", "dense", "uniform", "unigram") else 0.0
            step = float(pd.Series(times[1:]).median())
            amortised = step + (rebuild / rebuild_every if rebuild_every else 0.0)
            rows.append({"kind": kind, "width": width, "seconds_per_step": amortised, "step_seconds": step,
                         "rebuild_seconds": rebuild, "batch_size": int(batch_size), "hidden": int(hidden)})
    out = pd.DataFrame(rows)
    base = out[out["kind"].isin(["full", "dense"])].groupby("width")["seconds_per_step"].first()
    out["ratio"] = out["width"].map(base) / out["seconds_per_step"]
    return out


def speedups(table: pd.DataFrame, baseline: str = "full") -> pd.DataFrame:
    """Per (width, kind): mean seconds per epoch (rows after epoch 0), the last P@1, and the ratios against
    ``baseline`` of the same width (``speedup`` = baseline seconds / seconds, ``p_at_1_gap`` = baseline P@1 − P@1,
    in points)."""
    if table.empty:
        raise DataError("speedups: the table is empty")
    body = table[table["step"] > 0]
    agg = body.groupby(["width", "kind"], sort=False).agg(
        seconds_per_epoch=("seconds", "mean"), seconds_per_step=("seconds_per_step", "mean"),
        p_at_1=("p_at_1", "last"), active_fraction=("active_fraction", "last"),
        peak_rss_mb=("peak_rss_mb", "max")).reset_index()
    base = agg[agg["kind"] == baseline].set_index("width")
    agg["speedup"] = agg["width"].map(base["seconds_per_epoch"]) / agg["seconds_per_epoch"]
    agg["p_at_1_gap"] = 100 * (agg["width"].map(base["p_at_1"]) - agg["p_at_1"])
    return agg


__all__ = ["LAYER_KINDS", "COLUMNS", "make_output_layer", "XCModel", "train_output_layer", "compare_output_layers",
           "scaling_sweep", "speedups", "step_costs"]
