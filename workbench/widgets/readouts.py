"""The numbers the dashboard shows, as plain functions (no ipywidgets): formats diff, weight error, evaluation.

- :func:`plan_formats`: which layers must be restored or (re)applied to go from the model's current formats to a
  wanted per-layer mapping, so a toggle touches only the layers whose format changes.
- :func:`weight_sqnr_table` (the one table, from :mod:`workbench.quant.metrics`): per-layer weight SQNR
  ``20·log10(‖w‖/‖w − q(w)‖)`` dB between the weight without its format and the weight the model now computes with.
- :func:`evaluate_watched`: ``handle.evaluate()`` with forward pre-hooks on the eligible layers that report
  progress and stop the evaluation (raise) when the job was cancelled or superseded.
- :func:`readouts_frame`: the tidy (metric, which, value) frame behind the readout table and figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import pandas as pd
import torch
from torch import nn

from workbench.formats import original_weight
from workbench.formats.spec import parse_format
from workbench.quant.metrics import sqnr_db, weight_sqnr_table

__all__ = ["FormatPlan", "plan_formats", "has_number_format", "weight_sqnr", "weight_sqnr_table", "evaluate_watched", "readouts_frame"]


@dataclass
class FormatPlan:
    """Layers to restore to dense and, per format, layers to apply it to."""

    restore: list[str] = field(default_factory=list)
    apply: dict[str, list[str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.restore and not self.apply

    @property
    def n_layers(self) -> int:
        return len(self.restore) + sum(len(v) for v in self.apply.values())


def plan_formats(
    wanted: Mapping[str, str],
    current: Mapping[str, str],
    *,
    activations: bool,
    current_activations: Mapping[str, bool] | None = None,
    known_skips: Iterable[tuple[str, str, bool]] = (),
) -> FormatPlan:
    """The smallest set of restore / apply calls that turns ``current`` into ``wanted`` (layer -> format).

    A layer absent from ``current`` is dense. ``current_activations`` tells which layers quantize their inputs
    now; a layer whose wanted activation setting differs (``activations`` and a format with a number part) is
    applied again. ``known_skips`` holds (layer, format, activations) triples that
    :func:`workbench.formats.apply` already skipped (the format does not fit the layer): they are not tried again.

    >>> p = plan_formats({"a": "2:4", "b": "dense", "c": "int8"}, {"b": "int8", "c": "int8"}, activations=False)
    >>> p.restore, p.apply
    (['b'], {'2:4': ['a']})
    >>> plan_formats({"c": "int8"}, {"c": "int8"}, activations=True).apply
    {'int8': ['c']}
    """
    skips = set(known_skips)
    acts = dict(current_activations or {})
    plan = FormatPlan()
    for layer, fmt in wanted.items():
        have = current.get(layer, "dense") or "dense"
        have_act = bool(acts.get(layer, False))
        fmt = fmt or "dense"
        if fmt == "dense" or (layer, fmt, activations) in skips:
            if have != "dense" or have_act:
                plan.restore.append(layer)
            continue
        want_act = activations and has_number_format(fmt)
        if have != fmt or have_act != want_act:
            plan.apply.setdefault(fmt, []).append(layer)
    return plan


def has_number_format(fmt: str) -> bool:
    """True when ``fmt`` has a number part (``"2:4+int8"``, ``"binary"``), False for dense or pure sparsity."""
    return parse_format(fmt).number is not None


def weight_sqnr(original: torch.Tensor, current: torch.Tensor) -> float:
    """``20·log10(‖x‖/‖x − q‖)`` in dB, computed in float64; ``inf`` when the two are identical
    (:func:`workbench.quant.metrics.sqnr_db`, so the dashboard and the quantization lab agree).

    >>> round(weight_sqnr(torch.tensor([3.0, 4.0]), torch.tensor([3.0, 3.5])), 3)  # ‖x‖=5, ‖x−q‖=0.5
    20.0
    """
    return sqnr_db(original, current)


def evaluate_watched(
    handle: Any,
    layer_names: Iterable[str],
    *,
    check: Callable[[], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, float], int]:
    """``handle.evaluate()`` with a forward pre-hook on every named layer.

    Each hook calls ``check()`` (which raises to abandon the evaluation) and ``progress(calls_so_far)``. Returns
    the metrics and the number of layer calls, which a later run uses as the progress total.
    """
    calls = 0

    def hook(_module: nn.Module, _inputs: Any) -> None:
        nonlocal calls
        calls += 1
        if check is not None:
            check()
        if progress is not None:
            progress(calls)

    handles = []
    try:
        for name in layer_names:
            handles.append(handle.model.get_submodule(name).register_forward_pre_hook(hook))
        metrics = handle.evaluate()
    finally:
        for h in handles:
            h.remove()
    return {k: float(v) for k, v in dict(metrics).items()}, calls


def readouts_frame(
    baseline: Mapping[str, float], current: Mapping[str, float], dense_bytes: int, current_bytes: int
) -> pd.DataFrame:
    """Tidy ``metric, which, value`` rows: every metric of both evaluations, the sizes and the size fraction.

    >>> readouts_frame({"accuracy": 0.9, "loss": 0.3}, {"accuracy": 0.8, "loss": 0.5}, 400, 100).shape
    (8, 3)
    """
    rows = []
    for which, metrics, size in (("unmodified", baseline, dense_bytes), ("current", current, current_bytes)):
        for k, v in metrics.items():
            rows.append((k, which, float(v)))
        rows.append(("size_bytes", which, float(size)))
        rows.append(("size_fraction", which, float(size) / float(dense_bytes) if dense_bytes else math.nan))
    return pd.DataFrame(rows, columns=["metric", "which", "value"])
