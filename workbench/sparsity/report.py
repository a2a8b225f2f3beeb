"""Mask report: per layer and sparsity pattern, what a magnitude mask keeps and what it costs.

Columns of :func:`mask_report` (one row per layer × pattern):
``layer, pattern, kind, n, m, matrix_shape, status, reason, padded, density, kept_abs, kept_sq, log10_diversity,
output_rel_error, output_cosine``.

* ``kept_abs`` = Σ|w·mask| / Σ|w| and ``kept_sq`` = Σ(w·mask)² / Σw² (the "kept magnitude" of Hubara et al. 2021);
* ``log10_diversity`` = log10 of the mask diversity (:func:`workbench.sparsity.log10_diversity`, in log space) of
  the layer's weight matrix under the pattern;
* ``output_rel_error`` = ‖y_dense − y_masked‖ / ‖y_dense‖ of this layer alone on the calibration batches (inputs
  captured with forward hooks, outputs recomputed with the masked weight), ``output_cosine`` the mean cosine per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from workbench.progress import progress_bar

from workbench.errors import LayerError
from workbench.formats import eligible_layers, from_matrix, to_matrix
from workbench.formats import original_weight
from workbench.sparsity.layerio import capture_inputs, layer_output
from workbench.sparsity.patterns import (
    DEFAULT_PATTERNS,
    parse_pattern,
    pattern_fits,
    pattern_kind,
    pattern_log10_diversity,
    pattern_mask,
)

COLUMNS = [
    "layer", "pattern", "kind", "n", "m", "matrix_shape", "status", "reason", "padded", "density", "kept_abs",
    "kept_sq", "log10_diversity", "output_rel_error", "output_cosine",
]


def kept_sums(mat: torch.Tensor, mask: torch.Tensor) -> tuple[float, float, float, float]:
    """``(Σ|w·mask|, Σ|w|, Σ(w·mask)², Σw²)`` of a weight (block) and its mask, in float64; summed over the blocks
    of a weight streamed in pieces they give the whole weight's :func:`kept_fractions`."""
    m64 = mat.detach().double()
    kept = m64 * mask.to(torch.float64)
    return float(kept.abs().sum()), float(m64.abs().sum()), float((kept**2).sum()), float((m64**2).sum())


def kept_fractions(abs_kept: float, abs_total: float, sq_kept: float, sq_total: float) -> tuple[float, float]:
    """``(kept_abs, kept_sq)`` = (Σ|w·mask| / Σ|w|, Σ(w·mask)² / Σw²), 1.0 for an all-zero weight (the "kept
    magnitude" of Hubara et al. 2021)."""
    return (abs_kept / abs_total if abs_total > 0 else 1.0, sq_kept / sq_total if sq_total > 0 else 1.0)


def _select(model: torch.nn.Module, layers: Sequence[str] | None) -> dict[str, torch.nn.Module]:
    mods = eligible_layers(model)
    if layers is None:
        return mods
    missing = [n for n in layers if n not in mods]
    if missing:
        raise LayerError(f"layers {missing} are not eligible layers of the model; eligible: {list(mods)}")
    return {n: mods[n] for n in layers}


def mask_report(
    handle: Any,
    formats: Sequence[str] = DEFAULT_PATTERNS,
    layers: Sequence[str] | None = None,
    n_batches: int | None = 2,
) -> pd.DataFrame:
    """One row per layer × sparsity pattern (``formats``: pattern names of the format grammar, e.g. ``"2:4"``,
    ``"4:8-T greedy"``, ``"unstructured 50%"``): kept |w| and w², log10 mask diversity and this layer's output
    error. The ``pattern`` column holds each name as given.

    ``n_batches`` calibration batches feed the output error (None: the handle's default); layers a pattern does
    not fit get ``status="skipped"`` and a ``reason``.
    """
    if isinstance(formats, str):
        formats = [formats]
    parsed = [(str(name).strip(), parse_pattern(name)) for name in formats]
    mods = _select(handle.model, layers)
    batches = handle.calibration_batches(n_batches=n_batches) if n_batches else handle.calibration_batches()
    inputs = capture_inputs(handle, handle.model, mods, batches)
    rows = []
    for name, mod in progress_bar(mods.items(), desc="mask report", leave=False):
        w = original_weight(mod)
        mat = to_matrix(w)
        with torch.no_grad():
            ref = [layer_output(mod, x, w) for x in inputs[name]]
        for pname, p in parsed:
            row: dict[str, Any] = dict(layer=name, pattern=pname, kind=pattern_kind(p), n=getattr(p, "n", None),
                                       m=getattr(p, "m", None), matrix_shape=tuple(mat.shape), status="applied",
                                       reason="", padded=False)
            reason = pattern_fits(p, tuple(mat.shape))
            if reason:
                rows.append({**row, "status": "skipped", "reason": f"{name}: {reason}"})
                continue
            mask, padded = pattern_mask(mat, p)
            kept = mat * mask
            num, den = 0.0, 0.0
            cos = []
            with torch.no_grad():
                wm = from_matrix(kept, w.shape)
                for x, y in zip(inputs[name], ref):
                    ys = layer_output(mod, x, wm)
                    num += float(((y - ys).double() ** 2).sum())
                    den += float((y.double() ** 2).sum())
                    # per example for convolutions (B, C, ...), per token / row for linear layers
                    conv = not isinstance(mod, torch.nn.Linear)
                    a = y.flatten(1) if conv else y.reshape(-1, y.shape[-1])
                    b = ys.flatten(1) if conv else ys.reshape(-1, ys.shape[-1])
                    cos.append(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=1, eps=1e-12))
            kept_abs, kept_sq = kept_fractions(*kept_sums(mat, mask))
            row.update(
                padded=padded,
                density=float(mask.float().mean()),
                kept_abs=kept_abs,
                kept_sq=kept_sq,
                log10_diversity=pattern_log10_diversity(p, tuple(mat.shape)),
                output_rel_error=(num / den) ** 0.5 if den > 0 else 0.0,
                output_cosine=float(torch.cat(cos).mean()) if cos else float("nan"),
            )
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def pattern_summary(report: pd.DataFrame) -> pd.DataFrame:
    """One row per pattern over the layers it applied to: parameter-weighted kept |w|, w², summed log10 diversity.

    Weights are the layers' parameter counts (matrix rows × columns); ``layers`` counts where the pattern applied.
    """
    ok = report[report.status == "applied"].copy()
    ok["params"] = ok.matrix_shape.map(lambda s: s[0] * s[1])
    out = []
    for pat in dict.fromkeys(report.pattern):  # the report's pattern order
        g = ok[ok.pattern == pat]
        if g.empty:
            continue
        wsum = g.params.sum()
        out.append(dict(
            pattern=pat, kind=g.kind.iloc[0], layers=len(g),
            kept_abs=float((g.kept_abs * g.params).sum() / wsum),
            kept_sq=float((g.kept_sq * g.params).sum() / wsum),
            log10_diversity=float(g.log10_diversity.sum()),
            mean_output_rel_error=float(g.output_rel_error.mean()),
        ))
    return pd.DataFrame(out)


__all__ = ["COLUMNS", "kept_fractions", "kept_sums", "mask_report", "pattern_summary"]
