"""``train_sparse``: train a model under a sparsity structure with one of four methods, through the one ``train``
loop of :mod:`workbench.dynamics.train` (its ``setup`` / ``on_step`` hooks put the masks on the training copy and
update them). The handle's own model is never changed: its formats, if any, are set aside with
:func:`workbench.formats.suspended` while the copy is made, so the copy trains dense, and come back unchanged.

Methods (each for unstructured, N:M, transposable N:M and block structures):

* ``"block_pruning"`` (Narang, Undersander & Diamos 2017, "Block-sparse recurrent neural networks"): start dense,
  prune gradually on the schedule of :mod:`workbench.sparse_training.schedule` (start / ramp / end steps), always
  removing the groups of smallest norm, so the target sparsity is reached exactly at ``end``; pruned weights stay
  zero and the mask is fixed after ``end``. For N:M the schedule lowers N from M to the target N.
* ``"group_lasso"`` (same paper, §3.2): train dense with the penalty ``lasso · Σ_g ‖w_g‖₂`` (groups = blocks, or
  single weights for unstructured and N:M; :mod:`workbench.sparse_training.lasso`) until ``end``, then zero every
  group below the threshold that leaves the target sparsity (the structure's magnitude mask) and train on with
  that mask fixed. :func:`lasso_sweep` sweeps the strength.
* ``"fixed_mask"``: the sparse set is chosen once, from the initial weights, and only it learns (weights outside
  it get no gradient): the narrow search space.
* ``"augmented"`` (Stosic & Stosic 2021, "Search spaces for neural model training", arXiv 2105.12920): the forward
  pass uses the masked weights, but every dense shadow weight receives the gradient (straight-through), and the
  mask is re-chosen from the dense weights every ``k`` steps, so weights may leave and (re-)enter the sparse set:
  the wide search space. ``k=None`` never re-chooses it and is then exactly ``"fixed_mask"``.

Results (:class:`SparseTrainResult`): ``table`` (one row per evaluation: accuracy, achieved sparsity, the fraction
of weights that ever entered the mask — the search space actually used — and how many mask entries changed since
the previous row), ``layers`` (per layer at the end), ``frames`` (the mask of one watched layer over training) and
the trained model with its masks baked into the weights.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from workbench.checks import integer, number, option
from workbench.dynamics.train import TrainResult, plan, train
from workbench.errors import DataError
from workbench.formats import Sparsity, suspended, to_matrix
from workbench.formats.parametrize import straight_through
from workbench.sparse_training.lasso import group_lasso_penalty, group_norms
from workbench.sparse_training.schedule import check_schedule, schedule_fraction
from workbench.sparse_training.structures import (
    at_fraction,
    parse_structure,
    satisfies,
    sparse_layers,
    structure_mask,
)

METHODS = ("block_pruning", "group_lasso", "fixed_mask", "augmented")
TABLE_COLUMNS = ["method", "structure", "step", "epoch", "train_loss", "train_acc", "test_loss", "test_acc",
                 "sparsity", "target_sparsity", "ever_entered", "changed", "threshold"]
LAYER_COLUMNS = ["layer", "shape", "params", "sparsity", "ever_entered", "satisfies"]
NEAR_ZERO = 1e-2  # a group "near zero" has a norm below this fraction of the largest group norm
DEFAULT_FRACTIONS = {"start": 0.1, "ramp": 0.4, "end": 0.7}  # of the training steps


class TrainingMask(nn.Module):
    """Parametrization of a weight during sparse training: ``w ⊙ mask`` in the forward pass; the gradient reaches
    only the kept weights (``straight_through=False``) or every dense shadow weight (``True``, the augmented
    search space)."""

    def __init__(self, mask: torch.Tensor, straight_through: bool) -> None:
        super().__init__()
        self.register_buffer("mask", mask.clone(), persistent=False)
        self.straight_through = straight_through

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.straight_through:
            return straight_through(w, w.detach() * self.mask.to(w.dtype))
        return w * self.mask.to(w.dtype)


@dataclass
class SparseTrainResult:
    """What :func:`train_sparse` returns."""

    table: pd.DataFrame  # TABLE_COLUMNS, one row per evaluation
    layers: pd.DataFrame  # LAYER_COLUMNS, at the end
    frames: pd.DataFrame  # step, layer, mask (2-D numpy bool of the watched layer's weight matrix)
    model: nn.Module  # masks baked into the weights (zeros outside them)
    masks: dict[str, torch.Tensor]
    config: dict[str, Any]
    train_result: TrainResult = field(repr=False)

    @property
    def accuracy(self) -> float:
        """Final test accuracy."""
        return float(self.table["test_acc"].iloc[-1])

    @property
    def sparsity(self) -> float:
        """Achieved sparsity (fraction of zeros of the masks) of the sparsified layers at the end."""
        return float(self.table["sparsity"].iloc[-1])

    @property
    def ever_entered(self) -> float:
        """Fraction of the sparsified layers' weights that were ever in the mask."""
        return float(self.table["ever_entered"].iloc[-1])


class _State:
    """The masks of the training copy and what they have been."""

    def __init__(self, names: list[str], sp: Sparsity, method: str) -> None:
        self.names, self.sp, self.method = names, sp, method
        self.mods: dict[str, nn.Module] = {}
        self.ever: dict[str, torch.Tensor] = {}
        self.last: dict[str, torch.Tensor] = {}  # masks at the previous evaluation row
        self.threshold = float("nan")
        self.target_fraction = 0.0
        self.frames: list[dict] = []
        self.near_zero = float("nan")  # group lasso: fraction of groups already near zero at the cut

    def param(self, name: str) -> TrainingMask:
        return self.mods[name].parametrizations["weight"][0]

    def dense(self, name: str) -> torch.Tensor:
        return self.mods[name].parametrizations["weight"].original

    def set_masks(self, sp: Sparsity | None, prune_only: bool) -> None:
        """Choose every layer's mask for ``sp`` by magnitude of the dense (shadow) weights."""
        pruned_norms = []
        for name in self.names:
            w = self.dense(name).detach()
            if prune_only and sp is not None:  # gradual pruning: what was pruned (set to zero) stays pruned
                w = w.masked_fill(~self.param(name).mask, 0.0)
            mask = structure_mask(w, sp)
            self.param(name).mask.copy_(mask)
            self.ever[name] |= mask
            if sp is not None and (~mask).any():
                norms = group_norms(w * 1.0, sp).detach()
                dropped = (~_group_mask(to_matrix(mask), sp)).flatten()
                pruned_norms.append(float(norms[dropped].max()) if dropped.any() else float("nan"))
            if self.param(name).straight_through is False:
                self.dense(name).detach().mul_(self.param(name).mask.to(w.dtype))
        self.threshold = max(pruned_norms) if pruned_norms else float("nan")

    def zero_outside(self) -> None:
        for name in self.names:
            if not self.param(name).straight_through:
                self.dense(name).detach().mul_(self.param(name).mask.to(self.dense(name).dtype))

    def stats(self) -> dict[str, float]:
        total = sum(self.param(n).mask.numel() for n in self.names)
        kept = sum(int(self.param(n).mask.sum()) for n in self.names)
        ever = sum(int(self.ever[n].sum()) for n in self.names)
        changed = 0
        for n in self.names:
            m = self.param(n).mask
            if n in self.last:
                changed += int((m != self.last[n]).sum())
            self.last[n] = m.clone()
        return {"sparsity": 1.0 - kept / total, "ever_entered": ever / total, "changed": changed,
                "threshold": self.threshold}


def _group_mask(mask_mat: torch.Tensor, sp: Sparsity) -> torch.Tensor:
    """Per group of ``sp``, whether it is kept (blocks: any entry kept; otherwise the mask itself)."""
    if sp.kind != "block":
        return mask_mat.flatten()
    bh, bw = sp.block
    r, c = mask_mat.shape
    return mask_mat.reshape(r // bh, bh, c // bw, bw).any(dim=3).any(dim=1).flatten()


def _step_arg(name: str, value: int | float | None, total: int, default: float) -> int:
    """A schedule point: an int step, a float fraction of the training steps in [0, 1], or None (default)."""
    if value is None:
        return int(round(default * total))
    if isinstance(value, float):
        f = number(name, value, low=0, high=1, where="train_sparse")
        return int(round(f * total))
    return integer(name, value, low=0, where="train_sparse")


def train_sparse(handle: Any, structure: str = "block4x4@80%", method: str = "augmented", *,
                 sparsity: float | None = None, layers: Any = None, steps: int | None = None,
                 epochs: float | None = None, batch_size: int = 32, lr: float = 0.05, momentum: float = 0.9,
                 seed: int = 0, reinit: bool = True, start: int | float | None = None,
                 ramp: int | float | None = None, end: int | float | None = None, prune_every: int = 5,
                 lasso: float = 1e-4, k: int | None = 20, eval_every: float = 0.5, watch: str | None = None,
                 frames: int = 30, stop: Any = None, progress: bool = True,
                 on_metrics: Callable[[dict], None] | None = None, **train_kwargs: Any) -> SparseTrainResult:
    """Train a fresh copy of ``handle``'s model under ``structure`` with ``method`` (see the module docstring).

    ``structure``: ``"2:4"``, ``"4:8"``, ``"2:4-T"``, ``"unstructured 10%"`` (keep 10 %), ``"block4x4@80%"``, or a
    bare ``"unstructured"`` / ``"block8x8"`` with ``sparsity=`` (fraction of zeros, in [0, 1)). ``layers``: None
    (every eligible layer but the classifier that the structure fits), or names. ``steps`` / ``epochs`` /
    ``batch_size`` / ``lr`` / ``momentum`` / ``seed`` / ``reinit`` and ``train_kwargs`` go to the one
    :func:`~workbench.dynamics.train.train` loop (SGD). ``start`` / ``ramp`` / ``end``: the pruning schedule
    (``"block_pruning"``) and the cut of ``"group_lasso"`` (``end``), as steps (int) or fractions of the steps
    (float); defaults 0.1 / 0.4 / 0.7. ``prune_every``: steps between pruning updates (an update always falls on
    ``end``). ``lasso``: the group-lasso strength λ >= 0. ``k``: steps between mask re-choices of ``"augmented"``
    (None: never). ``watch``: the layer whose mask is kept as ``frames`` heatmap frames (default: the largest
    sparsified layer). ``stop``: a callable or event that ends training early (results so far are kept).
    """
    where = "train_sparse"
    if isinstance(handle, str):
        import workbench

        handle = workbench.load_model(handle)
    option("method", method, METHODS, where=where)
    sp = parse_structure(structure, sparsity, where=where)
    source = getattr(handle, "model", None)
    if not isinstance(source, nn.Module):
        raise DataError(f"{where}: needs a model handle with .model (an nn.Module), got {type(handle).__name__}")
    names = sparse_layers(source, sp, layers, where=where)
    n_train = len(handle.train_data()[0])
    total = plan(batch_size, lr, steps, epochs, n_train, train_kwargs.get("lr_scaling"),
                 train_kwargs.get("base_batch", 32), train_kwargs.get("regime_adaptation", False))["total_steps"]
    s0 = _step_arg("start", start, total, DEFAULT_FRACTIONS["start"])
    s1 = _step_arg("ramp", ramp, total, DEFAULT_FRACTIONS["ramp"]) if ramp is not None or start is None else None
    s2 = _step_arg("end", end, total, DEFAULT_FRACTIONS["end"])
    if s1 is None:  # start given, ramp not: halfway
        s1 = s0 + max(0, s2 - s0) // 2 if s2 >= s0 else s0
    s0, s1, s2 = check_schedule(s0, s1, s2, total, where=where)
    prune_every = integer("prune_every", prune_every, low=1, where=where)
    lasso = number("lasso", lasso, low=0, where=where)
    if k is not None and not (isinstance(k, float) and math.isinf(k) and k > 0):
        k = integer("k", k, low=1, where=where)
    if isinstance(k, float):
        k = None
    frames = integer("frames", frames, low=1, where=where)
    eligible = {n: m for n, m in source.named_modules() if n in names}
    if watch is None:
        watch = max(names, key=lambda n: eligible[n].weight.numel())
    elif watch not in names:
        raise DataError(f"{where}: watch={watch!r} is not one of the sparsified layers {names}")
    for key in ("setup", "on_step", "loss_fn"):
        if key in train_kwargs:
            raise DataError(f"{where}: {key}= is used by train_sparse itself and cannot be passed through")

    state = _State(names, sp, method)
    frame_every = max(1, total // frames)
    history: list[dict] = []

    def setup(model: nn.Module) -> None:
        mods = dict(model.named_modules())
        for name in names:
            mod = mods[name]
            w = mod.weight.detach()
            if method in ("fixed_mask", "augmented"):
                mask = structure_mask(w, sp)
            else:
                mask = torch.ones_like(w, dtype=torch.bool)
            parametrize.register_parametrization(mod, "weight", TrainingMask(mask, method == "augmented"))
            state.mods[name] = mod
            state.ever[name] = mask.clone()
        state.zero_outside()
        state.target_fraction = 0.0 if method in ("block_pruning", "group_lasso") else 1.0
        _frame(0)

    def _frame(step: int) -> None:
        state.frames.append({"step": step, "layer": watch,
                             "mask": to_matrix(state.param(watch).mask).cpu().numpy().copy()})

    def on_step(step: int, model: nn.Module) -> None:
        if method == "block_pruning" and s0 < step <= s2 and (step % prune_every == 0 or step == s2):
            state.target_fraction = schedule_fraction(step, s0, s1, s2)
            state.set_masks(at_fraction(sp, state.target_fraction), prune_only=True)
        elif method == "group_lasso" and step == s2:
            norms = torch.cat([group_norms(state.dense(n).detach(), sp) for n in names])
            state.near_zero = float((norms < NEAR_ZERO * norms.max()).float().mean()) if norms.numel() else 0.0
            state.target_fraction = 1.0
            state.set_masks(sp, prune_only=False)
        elif method == "augmented" and k is not None and step % k == 0:
            state.set_masks(sp, prune_only=False)
        state.zero_outside()
        if step % frame_every == 0 or step == total:
            if not state.frames or state.frames[-1]["step"] != step:
                _frame(step)

    def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits, labels)
        if method == "group_lasso" and lasso > 0 and state.target_fraction < 1.0:
            loss = loss + lasso * sum(group_lasso_penalty(state.dense(n), sp) for n in names)
        return loss

    def metrics_hook(row: dict) -> None:
        out = {"method": method, "structure": sp.name, **row, **state.stats(),
               "target_sparsity": state.target_fraction * (1.0 - sp.density)}
        history.append(out)
        if on_metrics is not None:
            on_metrics(out)

    # the user's formats are set aside only while ``train`` copies the model: ``setup`` (called on the copy right
    # after) gives them back, so the copy trains dense and the handle is as it was during the training itself
    with ExitStack() as formats_aside:
        formats_aside.enter_context(suspended(source))
        result = train(handle, batch_size=batch_size, lr=lr, steps=total if epochs is None else None,
                       epochs=epochs, momentum=momentum, seed=seed, reinit=reinit, eval_every=eval_every,
                       stop=stop, progress=progress, on_metrics=metrics_hook,
                       setup=lambda model: (formats_aside.close(), setup(model)), on_step=on_step,
                       loss_fn=loss_fn, **train_kwargs)
    model = result.model
    masks = {n: state.param(n).mask.clone() for n in names}
    ever = {n: state.ever[n].clone() for n in names}
    if state.frames[-1]["step"] != result.steps:
        _frame(result.steps)
    for name in names:  # bake the masks in: the returned model is plain, with zeros outside them
        parametrize.remove_parametrizations(state.mods[name], "weight", leave_parametrized=True)
    layer_rows = []
    for name in names:
        m = masks[name]
        layer_rows.append({"layer": name, "shape": tuple(m.shape), "params": m.numel(),
                           "sparsity": 1.0 - float(m.float().mean()), "ever_entered": float(ever[name].float().mean()),
                           "satisfies": satisfies(m, sp) if state.target_fraction >= 1.0 else False})
    table = pd.DataFrame(history)
    table = table[[c for c in TABLE_COLUMNS if c in table.columns]]
    config = {"structure": sp.name, "method": method, "layers": names, "watch": watch, "steps": result.steps,
              "total_steps": total, "start": s0, "ramp": s1, "end": s2, "prune_every": prune_every, "lasso": lasso,
              "k": k, "seed": int(seed), "batch_size": batch_size, "lr": lr, "momentum": momentum,
              "reinit": reinit, "model": result.config.get("model"), "near_zero_at_cut": state.near_zero}
    return SparseTrainResult(table=table, layers=pd.DataFrame(layer_rows, columns=LAYER_COLUMNS),
                             frames=pd.DataFrame(state.frames, columns=["step", "layer", "mask"]), model=model,
                             masks=masks, config=config, train_result=result)


def lasso_sweep(handle: Any, structure: str = "block4x4@80%", strengths: tuple[float, ...] = (0.0, 1e-4, 1e-3, 1e-2),
                **kwargs: Any) -> pd.DataFrame:
    """``train_sparse(method="group_lasso")`` for each strength λ; one row per λ: final accuracy and sparsity, the
    accuracy just before the cut (dense, regularized), and ``near_zero_at_cut``: the fraction of groups whose norm
    was below :data:`NEAR_ZERO` × the largest group norm at the cut (what the penalty had already removed)."""
    where = "lasso_sweep"
    if isinstance(strengths, (int, float)):
        strengths = (strengths,)
    values = [number("strength", s, low=0, where=where) for s in strengths]
    if not values:
        raise DataError(f"{where}: strengths must hold at least one λ >= 0")
    rows = []
    for lam in values:
        res = train_sparse(handle, structure, "group_lasso", lasso=lam, **kwargs)
        before = res.table[res.table.step < res.config["end"]]
        rows.append({"structure": res.config["structure"], "lasso": lam, "test_acc": res.accuracy,
                     "sparsity": res.sparsity,
                     "test_acc_before_cut": float(before.test_acc.iloc[-1]) if len(before) else float("nan"),
                     "near_zero_at_cut": res.config["near_zero_at_cut"]})
    return pd.DataFrame(rows)


__all__ = ["METHODS", "TABLE_COLUMNS", "LAYER_COLUMNS", "TrainingMask", "SparseTrainResult", "train_sparse",
           "lasso_sweep"]
