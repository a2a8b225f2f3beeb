"""Experiments of the sampling lab: time to accuracy of every sampler, their cost per step, and how closely the
sketch tracks the exact Nadaraya–Watson estimator.

* :func:`compare_samplers` trains the same architecture from the same seeded initialisation with each sampler
  (the one :func:`workbench.dynamics.train.train` loop, ``sampler=``) and returns a :class:`SamplingComparison`:
  ``.table`` (one row per evaluation: sampler, seed, step, seconds, train_seconds (wall time without evaluation),
  test accuracy and loss), ``.costs`` (sampler update + sampling seconds per step and as a fraction of the whole
  step) and ``.snapshots`` (the sampling probabilities at every evaluation).
* :func:`time_to_accuracy`: per sampler, the steps and training seconds to first reach a target test accuracy
  (default: the uniform sampler's final accuracy, mean over seeds).
* :func:`sketch_error`: relative error of the sketch's estimate against the exact NW estimator with the same
  collision kernel, as the number of tables L grows, on per-sample losses of a network part-way through training.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from workbench.checks import integer, option
from workbench.errors import DataError
from workbench.hashing import LSHTables, make_family
from workbench.progress import stop_callable
from workbench.sampling.samplers import SAMPLERS, Sampler, collision_kernel, make_sampler

DEFAULTS: dict[str, Any] = {"batch_size": 64, "lr": 0.05, "epochs": 6, "eval_every": 0.5, "floor": 0.1, "K": 8,
                            "L": 32, "pool": 4.0}


@dataclass
class SamplingComparison:
    """Result of :func:`compare_samplers`."""

    table: pd.DataFrame  # sampler, seed, step, epoch, seconds, train_seconds, test_acc, test_loss, train_loss
    costs: pd.DataFrame  # sampler, seed, steps, step_seconds, sampler_seconds, fraction
    snapshots: pd.DataFrame  # sampler, seed, step, weights (array of p)
    samplers: dict[tuple[str, int], Sampler] = field(default_factory=dict)  # the samplers after training
    config: dict[str, Any] = field(default_factory=dict)

    def time_to_accuracy(self, target: float | None = None) -> pd.DataFrame:
        return time_to_accuracy(self.table, target)


def _x_y(handle: Any) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = handle.train_data()
    return x, y


def compare_samplers(handle: Any, samplers: Sequence[str] = tuple(SAMPLERS), seeds: Sequence[int] = (0, 1, 2), *,
                     batch_size: int = DEFAULTS["batch_size"], lr: float = DEFAULTS["lr"],
                     epochs: float = DEFAULTS["epochs"], eval_every: float = DEFAULTS["eval_every"],
                     sampler_kw: dict[str, dict[str, Any]] | None = None, stop: Any = None,
                     on_result: Callable[[str, int, Any], None] | None = None,
                     progress: bool = False) -> SamplingComparison:
    """Train with each sampler and seed; the network's initialisation depends only on the seed, so the samplers
    start from the same weights. ``handle``: a classification handle or a name of :data:`~workbench.sampling.data.
    DATASETS`. ``sampler_kw``: per-sampler keywords (``{"nw_sketch": {"L": 64}}``); otherwise the lab's DEFAULTS
    (floor, K, L, pool) apply."""
    from workbench.dynamics.train import train
    from workbench.sampling.data import DATASETS, sampling_handle

    should_stop = stop_callable(stop)  # a bad stop= is a DataError before any work
    if isinstance(handle, str):
        option("dataset", handle, DATASETS, where="compare_samplers")
        handle = sampling_handle(handle)
    names = list(samplers)
    if not names:
        raise DataError("compare_samplers: give at least one sampler")
    for s in names:
        option("sampler", s, tuple(SAMPLERS), where="compare_samplers")
    seeds = [integer("seed", s, where="compare_samplers") for s in seeds]
    if not seeds:
        raise DataError("compare_samplers: give at least one seed")
    x, y = _x_y(handle)
    static = {}
    rows, costs, snaps = [], [], []
    kept: dict[tuple[str, int], Sampler] = {}
    for seed in seeds:
        for name in names:
            if should_stop():
                break
            kw = _sampler_kw(name, (sampler_kw or {}).get(name, {}))
            if name == "static" and "scores" not in kw:
                if seed not in static:
                    from workbench.sampling.proxy import static_scores

                    static[seed] = static_scores(x, y, seed=seed)
                kw["scores"] = static[seed]
            sampler = make_sampler(name, x, y, seed=seed, **kw)
            snap_rows: list[dict] = []

            def on_metrics(row: dict, sampler=sampler, snap_rows=snap_rows) -> None:
                snap_rows.append({"step": int(row["step"]), "weights": sampler.weights().numpy().copy()})

            res = train(handle, batch_size=batch_size, lr=lr, epochs=epochs, eval_every=eval_every, seed=seed,
                        sampler=sampler, stop=stop, on_metrics=on_metrics, progress=progress, track_points=2)
            m = res.metrics.copy()
            m["train_seconds"] = res.extra["train_seconds"]
            m.insert(0, "seed", seed)
            m.insert(0, "sampler", name)
            rows.append(m)
            train_s = float(m["train_seconds"].iloc[-1])
            spent = res.extra["sampler"]["update_seconds"] + res.extra["sampler"]["sample_seconds"]
            costs.append({"sampler": name, "seed": seed, "steps": res.steps,
                          "step_seconds": train_s / max(1, res.steps), "sampler_seconds": spent / max(1, res.steps),
                          "fraction": spent / train_s if train_s > 0 else float("nan"),
                          "final_acc": res.test_accuracy})
            snaps.extend({"sampler": name, "seed": seed, **r} for r in snap_rows)
            kept[(name, seed)] = sampler
            if on_result is not None:
                on_result(name, seed, res)
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return SamplingComparison(table=table, costs=pd.DataFrame(costs), snapshots=pd.DataFrame(snaps),
                              samplers=kept, config={"model": getattr(handle, "name", "?"), "batch_size": batch_size,
                                                     "lr": lr, "epochs": epochs, "seeds": list(seeds),
                                                     "samplers": names})


def _sampler_kw(name: str, given: dict[str, Any]) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if name != "uniform":
        kw["floor"] = DEFAULTS["floor"]
    if name in ("nw", "nw_sketch"):
        kw.update(K=DEFAULTS["K"], L=DEFAULTS["L"])
    if name == "loss":
        kw["pool"] = DEFAULTS["pool"]
    kw.update(given)
    return kw


def time_to_accuracy(table: pd.DataFrame, target: float | None = None, baseline: str = "uniform") -> pd.DataFrame:
    """Per sampler: ``target`` (default: ``baseline``'s final test accuracy, mean over seeds), how many seeds
    reached it, mean steps and training seconds (evaluation time excluded) to first reach it (over the seeds that
    did), the final accuracy, and the seconds as a ratio to the baseline's."""
    if table.empty:
        raise DataError("time_to_accuracy: the table is empty")
    last = table.sort_values("step").groupby(["sampler", "seed"]).tail(1)
    if target is None:
        if baseline not in set(table["sampler"]):
            raise DataError(f"time_to_accuracy: no {baseline!r} runs to take the target from; pass target=")
        target = float(last[last.sampler == baseline]["test_acc"].mean())
    out = []
    for name, g in table.groupby("sampler", sort=False):
        hits = []
        for _, run in g.groupby("seed"):
            run = run.sort_values("step")
            ok = run[run["test_acc"] >= target - 1e-12]
            hits.append((int(ok["step"].iloc[0]), float(ok["train_seconds"].iloc[0])) if len(ok) else None)
        reached = [h for h in hits if h is not None]
        out.append({"sampler": name, "target": target, "reached": f"{len(reached)}/{len(hits)}",
                    "steps": np.mean([h[0] for h in reached]) if reached else np.nan,
                    "seconds": np.mean([h[1] for h in reached]) if reached else np.nan,
                    "final_acc": float(last[last.sampler == name]["test_acc"].mean())})
    df = pd.DataFrame(out)
    base = df.loc[df.sampler == baseline, "seconds"]
    df["seconds_vs_" + baseline] = df["seconds"] / float(base.iloc[0]) if len(base) else np.nan
    return df


def training_losses(handle: Any, steps: int = 60, seed: int = 0, batch_size: int = 64) -> tuple[torch.Tensor,
                                                                                                  torch.Tensor]:
    """``(features, losses)``: the flattened training inputs and every training sample's cross-entropy under the
    network after ``steps`` uniform SGD steps from a seeded initialisation (real losses part-way through
    training)."""
    from workbench.dynamics.train import train
    from workbench.sampling.data import sampling_handle

    if isinstance(handle, str):
        handle = sampling_handle(handle)
    res = train(handle, batch_size=batch_size, steps=steps, seed=seed, progress=False, track_points=2)
    x, y = _x_y(handle)
    with torch.no_grad():
        losses = F.cross_entropy(res.model(x), y, reduction="none").double()
    return x.reshape(len(x), -1).float(), losses


def sketch_vs_exact(features: torch.Tensor, losses: torch.Tensor, *, K: int = DEFAULTS["K"], L: int = DEFAULTS["L"],
                    family: str = "simhash", seed: int = 0, seen: torch.Tensor | None = None,
                    center: bool = True) -> pd.DataFrame:
    """Per sample: the exact NW estimate with the collision kernel (over the ``seen`` samples, default all) and the
    sketch's estimate from L tables: columns index, loss, exact, sketch."""
    f = features.reshape(len(features), -1).float()
    f = f - f.mean(0) if center else f
    fam = make_family(family, f.shape[1], K, L, seed=seed)
    seen = torch.ones(len(f), dtype=torch.bool) if seen is None else seen.bool()
    kern = collision_kernel(fam, f, f[seen])
    exact = (kern @ losses[seen].double()) / kern.sum(1)
    tables = LSHTables(fam)
    tables.add(f[seen], losses[seen])
    sketch = tables.estimate(f)
    return pd.DataFrame({"index": np.arange(len(f)), "loss": losses.numpy(), "exact": exact.numpy(),
                         "sketch": sketch.numpy()})


def sketch_frame(sampler: Any) -> pd.DataFrame:
    """Per sample of an :class:`~workbench.sampling.NWSketchSampler` after training: its last loss, the exact NW
    estimate over the samples it has seen (same features, same family, :func:`collision_kernel`) and the sketch's
    estimate: columns index, loss, seen, exact, sketch."""
    from workbench.sampling.samplers import NWSketchSampler

    if not isinstance(sampler, NWSketchSampler):
        raise DataError(f"sketch_frame needs an NWSketchSampler, got {type(sampler).__name__}")
    seen = sampler.seen
    if not bool(seen.any()):
        raise DataError("sketch_frame: the sampler has seen no losses yet")
    kern = collision_kernel(sampler.family, sampler.features, sampler.features[seen])
    exact = (kern @ sampler.last[seen]) / kern.sum(1)
    return pd.DataFrame({"index": np.arange(sampler.n), "loss": sampler.last.numpy(), "seen": seen.numpy(),
                         "exact": exact.numpy(), "sketch": sampler.estimate().numpy()})


def sketch_error(handle: Any = "digits-mlp", tables: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128), *,
                 K: int = DEFAULTS["K"], family: str = "simhash", hash_seeds: Sequence[int] = range(5),
                 steps: int = 60, seed: int = 0, seen_fraction: float = 0.5, losses: Any = None) -> pd.DataFrame:
    """Relative error ``|sketch − exact| / exact`` of the sketch's NW estimate at every training sample, for each
    number of tables L and hash seed, on real losses (:func:`training_losses`, or ``losses=(features, losses)``).
    A random ``seen_fraction`` of the samples carries losses (as part-way through an epoch). Columns: L, hash_seed,
    mean_rel_error, median_rel_error, p90_rel_error, no_collision (fraction of samples with no seen sample in any
    of their buckets)."""
    feats, loss = training_losses(handle, steps=steps, seed=seed) if losses is None else losses
    gen = torch.Generator().manual_seed(int(seed))
    seen = torch.rand(len(feats), generator=gen) < float(seen_fraction)
    rows = []
    for L in tables:
        L = integer("L", L, low=1, where="sketch_error")
        for hs in hash_seeds:
            df = sketch_vs_exact(feats, loss, K=K, L=L, family=family, seed=int(hs), seen=seen)
            rel = (df["sketch"] - df["exact"]).abs() / df["exact"].abs()
            rows.append({"L": L, "hash_seed": int(hs), "mean_rel_error": float(rel.mean()),
                         "median_rel_error": float(rel.median()), "p90_rel_error": float(rel.quantile(0.9)),
                         "no_collision": float(df["sketch"].isna().mean())})
    return pd.DataFrame(rows)


def update_cost(sampler: Sampler, batch_size: int = 64, steps: int = 50, seed: int = 0) -> float:
    """Seconds per step of ``sampler.update`` (random real-looking losses) + ``sample(batch_size)`` alone."""
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        idx, _ = sampler.sample(batch_size)
        sampler.update(idx, torch.rand(len(idx), generator=gen))
    return (time.perf_counter() - t0) / steps


__all__ = ["DEFAULTS", "SamplingComparison", "compare_samplers", "time_to_accuracy", "training_losses",
           "sketch_vs_exact", "sketch_frame", "sketch_error", "update_cost"]
