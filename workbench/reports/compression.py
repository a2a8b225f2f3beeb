"""The analyses behind the compression report: a model under a list of formats, as tidy DataFrames.

- :func:`format_tradeoff`: one row per format: the model-level score (``handle.evaluate()``) and the model's size
  (:func:`workbench.formats.model_size_bytes`) with that format on every eligible layer; the accuracy/size trade-off.
- :func:`weight_error`: one row per layer × format: weight SQNR ``20·log10(‖w‖/‖w − q(w)‖)`` dB (float64), where
  ``q(w)`` is the weight exactly as :func:`workbench.formats.apply` puts it on the layer (mask, then rounding), the
  kept fraction and the bits per weight. Isolated per layer in the sense of Hubara et al. 2020 (only this layer
  changes); ``workbench.quant.layer_error`` adds output-level errors.
- :func:`mask_sample` and :func:`quantization_sample`: the data of the mask and rounding plots.
- :func:`feature_metric_table`: the metric lab's :func:`workbench.metric.compare_metrics` (kNN accuracy under the
  Euclidean, gradient-NCA and free-energy metrics) on the model's penultimate features
  (:func:`workbench.metric.cnn_features`) with the weights dense and under each format; classifiers only.

Every function runs on the model without the formats it carries (:func:`workbench.formats.suspended`) and gives
them back unchanged, so the handle is left as it was given.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, Sequence

import pandas as pd
import torch

from workbench.errors import FormatError, LayerError
from workbench.quant.metrics import sqnr_db, weight_sqnr_table


def _formats_of(formats: Sequence[str] | str) -> list[str]:
    from workbench.formats import parse_format

    names = [formats] if isinstance(formats, str) else list(formats)
    if not names:
        raise FormatError("no formats given: pass at least one format name, e.g. ['2:4', 'fp8_e4m3']")
    return [parse_format(f).name for f in names]


def _leaves_formats(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn(handle, ...)`` inside :func:`workbench.formats.suspended`: the user's formats are set aside and come
    back exactly as they were, whatever ``fn`` applies or restores."""

    @functools.wraps(fn)
    def wrapper(handle: Any, *args: Any, **kwargs: Any) -> Any:
        from workbench.formats import suspended

        with suspended(handle.model):
            return fn(handle, *args, **kwargs)

    return wrapper


@_leaves_formats
def format_tradeoff(handle: Any, formats: Sequence[str] | str) -> pd.DataFrame:
    """Score and size of the model with each format on every eligible layer (plus a ``dense`` baseline row).

    Columns: ``format, metric, value, loss, size_bytes, compression (dense size / size), layers_applied,
    layers_skipped``. ``metric`` is ``"accuracy"`` (classifiers) or ``"cosine"`` (embedding models).
    """
    from workbench.formats import apply, model_size_bytes, restore

    model = handle.model
    restore(model)
    base = handle.evaluate()
    metric = "accuracy" if "accuracy" in base else ("cosine" if "cosine" in base else "loss")
    dense_size = model_size_bytes(model)
    n_layers = len(handle.layers)
    rows = [{"format": "dense", "metric": metric, "value": float(base[metric]), "loss": float(base["loss"]),
             "size_bytes": int(dense_size), "compression": 1.0, "layers_applied": n_layers, "layers_skipped": 0}]
    try:
        for fmt in _formats_of(formats):
            if fmt == "dense":
                continue
            table = apply(model, fmt)
            try:
                scores = handle.evaluate()
                size = model_size_bytes(model)
            finally:
                restore(model)
            rows.append({"format": fmt, "metric": metric, "value": float(scores[metric]),
                         "loss": float(scores["loss"]), "size_bytes": int(size),
                         "compression": dense_size / size,
                         "layers_applied": int((table["status"] == "applied").sum()),
                         "layers_skipped": int((table["status"] == "skipped").sum())})
    finally:
        restore(model)
    return pd.DataFrame(rows)


def _effective_weight(module: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return module.weight.detach().clone()


@_leaves_formats
def weight_error(handle: Any, formats: Sequence[str] | str, layers: Sequence[str] | None = None) -> pd.DataFrame:
    """Weight error of every layer × format, each layer alone under the format.

    Columns: ``layer, format, status, weight_shape, weight_sqnr_db, kept_fraction, bits_per_weight, reason``.
    A layer whose shape does not fit a format (e.g. an input dimension not a multiple of M) is ``"skipped"``
    with NaN errors and the reason.
    """
    from workbench.formats import apply, bits_per_weight, eligible_layers, restore

    model = handle.model
    restore(model)
    eligible = eligible_layers(model)
    names = list(eligible) if layers is None else list(layers)
    for name in names:
        if name not in eligible:
            raise LayerError(f"layer {name!r} is not an eligible layer of {getattr(handle, 'name', 'the model')}; "
                             f"eligible: {', '.join(eligible)}")
    rows = []
    try:
        for fmt in _formats_of(formats):
            for name in names:
                mod = eligible[name]
                w = _effective_weight(mod)
                table = apply(model, fmt, layers=lambda n, _m, _name=name: n == _name) if fmt != "dense" else None
                applied = table is None or (table["status"] == "applied").all()
                q = _effective_weight(mod)
                sqnr = float(weight_sqnr_table(model, {name: fmt})["sqnr_db"].iloc[0]) if applied else math.nan
                restore(model)
                row = {"layer": name, "format": fmt, "status": "applied" if applied else "skipped",
                       "weight_shape": str(tuple(w.shape)), "weight_sqnr_db": math.nan, "kept_fraction": math.nan,
                       "bits_per_weight": bits_per_weight(fmt, w.element_size() * 8),
                       "reason": "" if applied else str(table["reason"].iloc[0])}
                if applied:
                    row["weight_sqnr_db"] = sqnr
                    row["kept_fraction"] = float((q != 0).sum().item() / max(1, int((w != 0).sum().item())))
                rows.append(row)
    finally:
        restore(model)
    return pd.DataFrame(rows)


def _eligible_layer(handle: Any, layer: str) -> torch.nn.Module:
    """The eligible layer named ``layer`` of the handle's model, or a LayerError listing the eligible ones."""
    from workbench.formats import eligible_layers

    eligible = eligible_layers(handle.model)
    if layer not in eligible:
        raise LayerError(f"layer {layer!r} is not an eligible layer of {getattr(handle, 'name', 'the model')}; "
                         f"eligible: {', '.join(eligible)}")
    return eligible[layer]


@_leaves_formats
def mask_sample(handle: Any, fmt: str, layer: str, rows: int = 16, cols: int = 32) -> pd.DataFrame:
    """The top-left ``rows × cols`` corner of a layer's weight (2-D view, out × in) under a sparse format.

    Tidy: one row per weight: ``row, col, weight, kept`` (``kept`` is 1 where the format keeps the weight).
    """
    from workbench.formats import apply, parse_format, restore, to_matrix

    f = parse_format(fmt)
    if f.sparsity is None:
        raise FormatError(f"mask_sample: format {f.name!r} has no sparsity pattern (use e.g. '2:4' or '4:8-T')")
    model = handle.model
    mod = _eligible_layer(handle, layer)
    w = to_matrix(_effective_weight(mod))
    try:
        apply(model, {layer: f.name})
        q = to_matrix(_effective_weight(mod))
    finally:
        restore(model)
    r, c = min(rows, w.shape[0]), min(cols, w.shape[1])
    out = [{"row": i, "col": j, "weight": float(w[i, j]), "kept": int(q[i, j] != 0)}
           for i in range(r) for j in range(c)]
    return pd.DataFrame(out)


@_leaves_formats
def quantization_sample(handle: Any, formats: Sequence[str] | str, layer: str, n: int = 2000,
                        seed: int = 0) -> pd.DataFrame:
    """Original vs rounded values of ``n`` weights of one layer under each number format (the rounding staircase).

    Columns: ``format, original, quantized``. The same weights (chosen with ``seed``) for every format.
    """
    from workbench.formats import apply, parse_format, restore

    model = handle.model
    mod = _eligible_layer(handle, layer)
    w = _effective_weight(mod).flatten()
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(w.numel(), generator=gen)[: min(n, w.numel())].sort().values
    parts = []
    try:
        for fmt in _formats_of(formats):
            if parse_format(fmt).number is None:
                continue
            apply(model, {layer: fmt})
            q = _effective_weight(mod).flatten()
            restore(model)
            parts.append(pd.DataFrame({"format": fmt, "original": w[idx].double().numpy(),
                                       "quantized": q[idx].double().numpy()}))
    finally:
        restore(model)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["format", "original", "quantized"])


FEATURE_METHODS = ("euclidean", "nca", "free_energy")
_FEATURE_COLUMNS = ["format", "method", "accuracy_mean", "accuracy_sd", "diff_vs_nca", "p_vs_nca", "status"]


def _check_feature_model(handle: Any) -> str:
    """The name of the final Linear layer of a classification handle, or a ``DataError`` saying why not."""
    from workbench.errors import DataError

    task = getattr(handle, "task", "")
    if task != "classification":
        raise DataError(f"metric table: model {getattr(handle, 'name', handle)!r} has task {task!r}, not "
                        "'classification'; the table needs a classification model (labelled test images) with a "
                        "final Linear layer, e.g. 'digits-mlp' or 'digits-cnn'")
    leaves = [(name, m) for name, m in handle.model.named_modules()
              if not list(m.children()) and any(True for _ in m.parameters(recurse=False))]
    if not leaves or not isinstance(leaves[-1][1], torch.nn.Linear):
        last = f"{leaves[-1][0]!r} ({type(leaves[-1][1]).__name__})" if leaves else "none"
        raise DataError(f"metric table: the last layer with weights of {handle.name!r} is {last}, not a Linear layer; "
                        "its input (the penultimate features) is what the table compares")
    return leaves[-1][0]


def feature_metric_table(handle: Any, formats: Sequence[str] | str, *, splits: int = 5, steps: int = 2000,
                         nca_iter: int = 50, k: int = 3, seed: int = 0,
                         methods: Sequence[str] = FEATURE_METHODS) -> pd.DataFrame:
    """kNN accuracy of the model's penultimate features (the input of its final Linear layer, on the held-out test
    images) under ``"dense"`` and each format, with each metric learner of ``methods``.

    :func:`workbench.metric.compare_metrics` on the features of :func:`workbench.metric.cnn_features` for each
    format (the same stratified splits for every format and method, standardized per split; ``steps`` Monte Carlo
    moves for ``free_energy``, at most ``nca_iter`` L-BFGS iterations for ``nca``). Columns: ``format, method,
    accuracy_mean, accuracy_sd, diff_vs_nca, p_vs_nca, status, accuracies, fit_seconds``: one row per
    (format, method). The user's formats on the model come back unchanged. A model that is not a classifier with a
    final Linear layer is refused with a :class:`~workbench.errors.DataError` before any work.
    """
    from workbench.metric import cnn_features, compare_metrics

    _check_feature_model(handle)
    names = ["dense"] + [f for f in _formats_of(formats) if f != "dense"]
    data = {fmt: cnn_features(handle, fmt) for fmt in names}
    table = compare_metrics(data, list(methods), k=k, splits=splits, seed=seed, progress=False,
                            options={"free_energy": {"steps": int(steps)}, "nca": {"max_iter": int(nca_iter)}})
    table = table.rename(columns={"dataset": "format"})
    return table[_FEATURE_COLUMNS + ["accuracies", "fit_seconds"]]


def report_metrics(model: str, tradeoff: pd.DataFrame, errors: pd.DataFrame,
                   metric_table: pd.DataFrame | None = None) -> dict[str, Any]:
    """The report's metrics sidecar: per-format score/size and per-layer weight SQNR, no timings (reproducible).

    With ``metric_table`` (:func:`feature_metric_table`) also ``"metric_table"``: one record per (format, method)
    with the accuracy mean/sd, the paired difference and p-value against NCA and the status (fit times left out).
    """
    formats = {}
    for row in tradeoff.to_dict("records"):
        formats[row["format"]] = {k: row[k] for k in ("value", "loss", "size_bytes", "compression",
                                                      "layers_applied", "layers_skipped")}
    layers: dict[str, dict[str, float | None]] = {}
    for row in errors.to_dict("records"):
        v = row["weight_sqnr_db"]
        layers.setdefault(row["layer"], {})[row["format"]] = None if not math.isfinite(v) else round(float(v), 6)
    metric = str(tradeoff["metric"].iloc[0]) if len(tradeoff) else None
    out = {"model": model, "metric": metric, "formats": formats, "weight_sqnr_db": layers}
    if metric_table is not None:
        out["metric_table"] = [{c: (round(float(row[c]), 6) if isinstance(row[c], float) else row[c])
                                for c in _FEATURE_COLUMNS} for row in metric_table.to_dict("records")]
    return out


__all__ = ["sqnr_db", "format_tradeoff", "weight_error", "mask_sample", "quantization_sample", "report_metrics",
           "feature_metric_table", "FEATURE_METHODS"]
