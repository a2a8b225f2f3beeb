"""Per-layer sensitivity and bit allocation by integer programming.

Following Hubara, Nahshan, Hanani, Banner, Soudry 2020, "Improving Post Training Neural Quantization: Layer-wise
Calibration and Integer Programming" (section 4):

- the sensitivity of layer ``l`` to format ``f`` is ``ΔL[l, f] = L(only l in f) − L(full precision)``, measured with
  :func:`workbench.formats.apply` on that one layer and ``handle.evaluate()``;
- assuming the ΔL add up, the best assignment under a size budget solves the integer program

      minimise   Σ_l Σ_f ΔL[l, f] · x[l, f]
      subject to Σ_f x[l, f] = 1               for every layer l   (one format per layer)
                 Σ_l Σ_f size[l, f] · x[l, f] ≤ budget
                 x[l, f] ∈ {0, 1}

  solved exactly by :func:`scipy.optimize.milp` (HiGHS branch and bound, gap 0).

:func:`allocate_bits` returns the assignment with its predicted loss (baseline + Σ ΔL) and, given a handle, its
measured loss beside the uniform assignments (every layer in one format); :func:`frontier` sweeps the budget.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import DataError, FormatError, LayerError

__all__ = [
    "Allocation",
    "sensitivity",
    "layer_sizes",
    "allocate_bits",
    "allocate_exhaustive",
    "measure_assignment",
    "frontier",
]


# ----------------------------------------------------------------------------------------------------------------
# sensitivity


def _metric_name(result: Mapping[str, float]) -> str | None:
    for key in ("accuracy", "cosine"):
        if key in result:
            return key
    return None


def sensitivity(
    handle: Any,
    formats: Sequence[str] | str,
    layers: Sequence[str] | None = None,
    *,
    progress: bool = True,
) -> pd.DataFrame:
    """ΔL per layer per format: the model's loss with only that layer in that format, minus the baseline.

    Returns one row per layer × format with columns ``layer, format, loss, delta_loss, metric, value,
    delta_value`` (``metric`` is ``"accuracy"`` or ``"cosine"``; ``value`` its measured value).

    >>> # s = sensitivity(load_model("digits-mlp"), ["int8", "int4"])
    """
    from workbench.progress import progress_bar

    from workbench import formats as wf

    formats = [formats] if isinstance(formats, str) else list(formats)
    if not formats:
        raise FormatError("sensitivity: no formats given; pass a format name or a list, e.g. ['int8', 'int4']")
    for f in formats:
        wf.parse_format(f)  # raises FormatError on unknown names
    model = handle.model
    eligible = wf.eligible_layers(model)
    layer_names = list(eligible) if layers is None else ([layers] if isinstance(layers, str) else list(layers))
    if not layer_names:
        raise DataError(f"sensitivity: model {handle.name!r} has no eligible layers (Linear/Conv with a weight)")
    for name in layer_names:
        if name not in eligible:
            raise LayerError(f"sensitivity: no eligible layer named {name!r}; eligible layers: "
                             f"{', '.join(eligible) or '(none)'}")
    from workbench.quant.replay import UpstreamReplay

    rows = []
    with wf.suspended(model):  # measured without the user's formats, which come back unchanged
        # modules upstream of the quantized layer are replayed from a recorded full-precision pass (checked first)
        replay: UpstreamReplay | None = UpstreamReplay(handle, layer_names)
        base = replay.baseline
        if not replay.check():
            replay = None
        metric = _metric_name(base)
        pairs = [(layer, f) for layer in layer_names for f in formats]
        for layer, f in progress_bar(pairs, desc="sensitivity", disable=not progress):
            wf.apply(model, {layer: f})
            try:
                res = replay.evaluate(layer) if replay is not None else handle.evaluate()
            finally:
                wf.restore(model, [layer])
            rows.append(
                {
                    "layer": layer,
                    "format": f,
                    "loss": float(res["loss"]),
                    "delta_loss": float(res["loss"]) - float(base["loss"]),
                    "metric": metric,
                    "value": float(res[metric]) if metric else np.nan,
                    "delta_value": float(res[metric]) - float(base[metric]) if metric else np.nan,
                }
            )
    out = pd.DataFrame(rows)
    out.attrs["baseline"] = dict(base)
    return out


def layer_sizes(handle_or_model: Any, formats: Sequence[str] | str, layers: Sequence[str] | None = None) -> pd.DataFrame:
    """Storage of each layer's weight in each format: ``layer, format, params, bits_per_weight, size_bytes``.

    ``size_bytes = params · bits_per_weight(format) / 8`` (weights only: biases and norms stay in float and are the
    same for every assignment, so they do not change the optimum).
    """
    from workbench import formats as wf

    model = getattr(handle_or_model, "model", handle_or_model)
    formats = [formats] if isinstance(formats, str) else list(formats)
    eligible = wf.eligible_layers(model)
    names = list(layers) if layers is not None else list(eligible)
    rows = []
    for name in names:
        params = int(eligible[name].weight.numel())
        for f in formats:
            bpw = float(wf.bits_per_weight(f))
            rows.append({"layer": name, "format": f, "params": params, "bits_per_weight": bpw,
                         "size_bytes": params * bpw / 8.0})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------------------------
# the integer program


@dataclass
class Allocation:
    """The result of :func:`allocate_bits`.

    - ``assignment``: ``{layer: format}``;
    - ``table``: one row per layer (``layer, format, size_bytes, delta_loss``);
    - ``size_bytes``, ``budget``, ``predicted_delta`` (Σ ΔL), ``predicted_loss`` (baseline + Σ ΔL, or NaN without a
      baseline), ``measured_loss`` / ``measured`` (filled when a handle was given);
    - ``comparison``: the allocation beside the uniform assignments (one row each: ``kind, assignment, size_bytes,
      predicted_loss, measured_loss, metric, value``).
    """

    assignment: dict[str, str]
    table: pd.DataFrame
    size_bytes: float
    budget: float
    predicted_delta: float
    predicted_loss: float = float("nan")
    measured_loss: float = float("nan")
    measured: dict[str, float] = field(default_factory=dict)
    comparison: pd.DataFrame = field(default_factory=pd.DataFrame)


def _tables(sens: pd.DataFrame, sizes: pd.DataFrame | Mapping) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Dense ΔL and size matrices (layers × formats); NaN where a pair is missing."""
    if not isinstance(sens, pd.DataFrame) or not {"layer", "format", "delta_loss"} <= set(sens.columns):
        raise DataError("allocate_bits: sensitivity must be a DataFrame with columns layer, format, delta_loss "
                        "(as returned by sensitivity())")
    if len(sens) == 0:
        raise DataError("allocate_bits: the sensitivity table is empty")
    if isinstance(sizes, Mapping):
        sizes = pd.DataFrame([{"layer": k[0], "format": k[1], "size_bytes": v} for k, v in sizes.items()])
    if not {"layer", "format", "size_bytes"} <= set(sizes.columns):
        raise DataError("allocate_bits: sizes must have columns layer, format, size_bytes (see layer_sizes())")
    layers = list(dict.fromkeys(sens["layer"]))
    fmts = list(dict.fromkeys(sens["format"]))
    dl = sens.pivot_table(index="layer", columns="format", values="delta_loss", aggfunc="first")
    sz = sizes.pivot_table(index="layer", columns="format", values="size_bytes", aggfunc="first")
    missing = [(la, f) for la in layers for f in fmts
               if la not in sz.index or f not in sz.columns or pd.isna(sz.loc[la, f])]
    missing = [m for m in missing if not pd.isna(dl.loc[m[0], m[1]])]
    if missing:
        raise DataError(f"allocate_bits: no size for layer {missing[0][0]!r} in format {missing[0][1]!r} "
                        f"({len(missing)} pairs missing)")
    dl = dl.reindex(index=layers, columns=fmts).to_numpy(dtype=float, copy=True)
    sz = sz.reindex(index=layers, columns=fmts).to_numpy(dtype=float, copy=True)
    sz[np.isnan(dl)] = np.nan
    for i, la in enumerate(layers):
        if np.all(np.isnan(dl[i])):
            raise DataError(f"allocate_bits: layer {la!r} has no format with a measured ΔL")
    return layers, fmts, dl, sz


def _feasible_range(sz: np.ndarray) -> tuple[float, float]:
    return float(np.nansum(np.nanmin(sz, axis=1))), float(np.nansum(np.nanmax(sz, axis=1)))


def _check_budget(budget: float, sz: np.ndarray) -> None:
    lo, hi = _feasible_range(sz)
    tol = 1e-9 * max(1.0, hi)
    if not np.isfinite(budget) or budget < lo - tol or budget > hi + tol:
        raise DataError(
            f"allocate_bits: budget {budget:,.1f} bytes is infeasible; the feasible range is "
            f"[{lo:,.1f}, {hi:,.1f}] bytes (smallest: every layer in its smallest format, "
            f"largest: every layer in its largest)"
        )


def _solve_milp(dl: np.ndarray, sz: np.ndarray, budget: float) -> np.ndarray:
    """Format index per layer minimising Σ ΔL under Σ size ≤ budget (exact: HiGHS with gap 0)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    n_l, n_f = dl.shape
    valid = ~np.isnan(dl)
    c = np.where(valid, dl, 0.0).ravel()
    ub = valid.astype(float).ravel()  # a missing pair is fixed to 0
    one_per_layer = np.zeros((n_l, n_l * n_f))
    for i in range(n_l):
        one_per_layer[i, i * n_f:(i + 1) * n_f] = 1.0
    size_row = np.where(valid, sz, 0.0).ravel()[None, :]
    # a tiny slack on the budget absorbs float round-off in the sizes
    cons = [LinearConstraint(one_per_layer, 1.0, 1.0),
            LinearConstraint(size_row, -np.inf, budget * (1 + 1e-12) + 1e-9)]
    res = milp(c, constraints=cons, integrality=np.ones_like(c), bounds=Bounds(0.0, ub),
               options={"mip_rel_gap": 0.0, "presolve": True})
    if res.x is None:
        raise DataError(f"allocate_bits: the integer program found no solution ({res.message})")
    x = np.round(res.x).reshape(n_l, n_f)
    return x.argmax(axis=1)


def allocate_exhaustive(sensitivity: pd.DataFrame, sizes: pd.DataFrame | Mapping, budget: float) -> dict[str, str]:
    """The same optimum by trying every assignment (formats ** layers): the reference for small cases."""
    layers, fmts, dl, sz = _tables(sensitivity, sizes)
    _check_budget(budget, sz)
    best, best_cost = None, np.inf
    options = [[j for j in range(len(fmts)) if not np.isnan(dl[i, j])] for i in range(len(layers))]
    for combo in itertools.product(*options):
        idx = np.arange(len(layers)), np.array(combo)
        size = sz[idx].sum()
        if size > budget * (1 + 1e-12) + 1e-9:
            continue
        cost = dl[idx].sum()
        if cost < best_cost - 1e-12:
            best, best_cost = combo, cost
    assert best is not None
    return {la: fmts[j] for la, j in zip(layers, best)}


def _sizes_for(sensitivity: pd.DataFrame, sizes: pd.DataFrame | Mapping | None, handle: Any,
               where: str) -> pd.DataFrame | Mapping:
    """``sizes`` as given, or :func:`layer_sizes` of the sensitivity table's layers and formats on ``handle``."""
    if sizes is not None:
        return sizes
    if handle is None:
        raise DataError(f"{where}: give sizes (see layer_sizes()) or a handle to compute them")
    if not isinstance(sensitivity, pd.DataFrame) or not {"layer", "format"} <= set(sensitivity.columns):
        raise DataError(f"{where}: sensitivity must be a DataFrame with columns layer, format, delta_loss "
                        "(as returned by sensitivity())")
    return layer_sizes(handle, list(dict.fromkeys(sensitivity["format"])), list(dict.fromkeys(sensitivity["layer"])))


def measure_assignment(handle: Any, assignment: Mapping[str, str]) -> dict[str, float]:
    """``handle.evaluate()`` with each layer in its assigned format (and every other layer without one); the
    model gets back the formats it had."""
    from workbench import formats as wf

    with wf.suspended(handle.model):
        wf.apply(handle.model, dict(assignment))
        return dict(handle.evaluate())


def allocate_bits(
    sensitivity: pd.DataFrame,
    sizes: pd.DataFrame | Mapping | None,
    budget: float,
    *,
    handle: Any = None,
    baseline_loss: float | None = None,
    compare_uniform: bool = True,
) -> Allocation:
    """One format per layer minimising the predicted loss Σ ΔL under ``Σ size ≤ budget`` (bytes), by MILP.

    ``sensitivity`` is :func:`sensitivity`'s table (``layer, format, delta_loss``); ``sizes`` is :func:`layer_sizes`'s
    table (``layer, format, size_bytes``) or a dict ``{(layer, format): bytes}``; with ``sizes=None`` and a
    ``handle`` they are computed. A budget outside ``[Σ smallest, Σ largest]`` raises :class:`DataError` naming that
    range. With ``handle`` the assignment is applied and evaluated (``measured_loss``), and ``comparison`` lists
    the uniform assignments (each layer in the same format) with their sizes, predicted and measured losses.

    >>> import pandas as pd
    >>> s = pd.DataFrame({"layer": ["a", "a", "b", "b"], "format": ["int8", "int4"] * 2,
    ...                   "delta_loss": [0.0, 0.5, 0.0, 0.1]})
    >>> z = {("a", "int8"): 8, ("a", "int4"): 4, ("b", "int8"): 8, ("b", "int4"): 4}
    >>> allocate_bits(s, z, 12).assignment
    {'a': 'int8', 'b': 'int4'}
    """
    sizes = _sizes_for(sensitivity, sizes, handle, "allocate_bits")
    layers, fmts, dl, sz = _tables(sensitivity, sizes)
    budget = float(budget)
    _check_budget(budget, sz)
    choice = _solve_milp(dl, sz, budget)
    idx = np.arange(len(layers)), choice
    assignment = {la: fmts[j] for la, j in zip(layers, choice)}
    table = pd.DataFrame({"layer": layers, "format": [fmts[j] for j in choice],
                          "size_bytes": sz[idx], "delta_loss": dl[idx]})
    if baseline_loss is None:
        base = sensitivity.attrs.get("baseline") if hasattr(sensitivity, "attrs") else None
        if base is None and handle is not None:
            base = dict(handle.evaluate())
        baseline_loss = float(base["loss"]) if base else float("nan")
    pred_delta = float(dl[idx].sum())
    alloc = Allocation(assignment=assignment, table=table, size_bytes=float(sz[idx].sum()), budget=budget,
                       predicted_delta=pred_delta, predicted_loss=baseline_loss + pred_delta)
    rows = [{"kind": "allocated", "assignment": "mixed", "size_bytes": alloc.size_bytes,
             "predicted_loss": alloc.predicted_loss}]
    uniform: list[tuple[str, dict[str, str]]] = []
    if compare_uniform:
        for j, f in enumerate(fmts):
            if np.any(np.isnan(dl[:, j])):
                continue
            uniform.append((f, {la: f for la in layers}))
            rows.append({"kind": "uniform", "assignment": f, "size_bytes": float(sz[:, j].sum()),
                         "predicted_loss": baseline_loss + float(dl[:, j].sum())})
    if handle is not None:
        measured = measure_assignment(handle, assignment)
        alloc.measured = measured
        alloc.measured_loss = float(measured["loss"])
        metric = _metric_name(measured)
        rows[0].update(measured_loss=alloc.measured_loss, metric=metric,
                       value=float(measured[metric]) if metric else np.nan)
        for row, (_, assign) in zip(rows[1:], uniform):
            m = measure_assignment(handle, assign)
            row.update(measured_loss=float(m["loss"]), metric=metric, value=float(m[metric]) if metric else np.nan)
    alloc.comparison = pd.DataFrame(rows)
    return alloc


def frontier(
    sensitivity: pd.DataFrame,
    sizes: pd.DataFrame | Mapping | None = None,
    budgets: Iterable[float] | int = 8,
    *,
    handle: Any = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Size-vs-loss frontier: :func:`allocate_bits` over a sweep of budgets, with the uniform points beside it.

    ``budgets`` is a list of byte budgets or a number of evenly spaced budgets across the feasible range. One row
    per point: ``kind`` (``"allocated"`` / ``"uniform"``), ``budget, size_bytes, predicted_loss`` and, with a
    handle, ``measured_loss, metric, value``; allocated rows also carry ``assignment`` as a dict.
    """
    from workbench.progress import progress_bar

    sizes = _sizes_for(sensitivity, sizes, handle, "frontier")
    _, _, _, sz = _tables(sensitivity, sizes)
    if isinstance(budgets, int) and (isinstance(budgets, bool) or budgets < 1):
        raise DataError(f"frontier: budgets must be a positive number of budgets or a list of byte budgets, "
                        f"got {budgets!r}")
    lo, hi = _feasible_range(sz)
    if isinstance(budgets, int):
        budgets = np.linspace(lo, hi, budgets)
    base = sensitivity.attrs.get("baseline")
    baseline_loss = float(base["loss"]) if base else (float(handle.evaluate()["loss"]) if handle else float("nan"))
    rows: list[dict] = []
    seen: dict[tuple, dict] = {}
    first = True
    for b in progress_bar(list(budgets), desc="frontier", disable=not progress):
        a = allocate_bits(sensitivity, sizes, float(b), handle=None, baseline_loss=baseline_loss,
                          compare_uniform=first)
        row = {"kind": "allocated", "budget": float(b), "size_bytes": a.size_bytes,
               "predicted_loss": a.predicted_loss, "assignment": a.assignment}
        if handle is not None:
            key = tuple(sorted(a.assignment.items()))
            if key not in seen:  # identical assignments at neighbouring budgets are measured once
                m = measure_assignment(handle, a.assignment)
                metric = _metric_name(m)
                seen[key] = {"measured_loss": float(m["loss"]), "metric": metric,
                             "value": float(m[metric]) if metric else np.nan}
            row.update(seen[key])
        rows.append(row)
        if first:
            for _, u in a.comparison[a.comparison["kind"] == "uniform"].iterrows():
                urow = {"kind": "uniform", "budget": u["size_bytes"], "size_bytes": u["size_bytes"],
                        "predicted_loss": u["predicted_loss"], "assignment": u["assignment"]}
                if handle is not None:
                    layers = list(dict.fromkeys(sensitivity["layer"]))
                    m = measure_assignment(handle, {la: u["assignment"] for la in layers})
                    metric = _metric_name(m)
                    urow.update(measured_loss=float(m["loss"]), metric=metric,
                                value=float(m[metric]) if metric else np.nan)
                rows.append(urow)
            first = False
    return pd.DataFrame(rows)
