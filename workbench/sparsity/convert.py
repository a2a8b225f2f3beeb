"""Converting a trained dense model to N:M "with little to no training".

Two methods, applied to every eligible layer the pattern fits (others are left dense and reported as skipped):

* ``"magnitude"``: keep the N largest |w| of every M (or the optimal transposable mask), zero the rest.
* ``"reconstruct"``: the same mask, then the kept weights (and the bias) of each layer are re-fitted so that the
  layer's output matches the dense layer's output on calibration data, layer by layer in forward order with the
  already-converted preceding layers feeding the inputs (AdaPrune: Hubara et al. 2021, "Accelerated Sparse Neural
  Training", §5, and "Accurate Post Training Quantization With Small Calibration Sets"). With the mask fixed the fit
  is linear least squares, solved exactly per output row on the normal equations of the kept inputs, with a small
  ridge pulling towards the magnitude-pruned weights:
  ``min_w ‖X_S w + b − y‖² + λ‖w − w_0‖²``. Convolutions are fitted on their unfolded input patches.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from workbench.progress import progress_bar

from workbench.errors import FormatError
from workbench.formats import eligible_layers, from_matrix, original_weight, to_matrix
from workbench.sparsity.layerio import capture_inputs, layer_output
from workbench.sparsity.patterns import parse_pattern, pattern_fits, pattern_mask


def _design(mod: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """Rows of inputs whose product with ``to_matrix(weight)`` gives the layer's pre-bias output."""
    if isinstance(mod, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    if isinstance(mod, nn.Conv2d) and mod.groups == 1 and mod.padding_mode == "zeros" and isinstance(mod.padding, tuple):
        cols = F.unfold(x, mod.kernel_size, dilation=mod.dilation, padding=mod.padding, stride=mod.stride)
        b, _, l = cols.shape
        c = mod.in_channels
        kk = cols.shape[1] // c
        # unfold orders (channel, kernel position); to_matrix orders (kernel position, channel)
        cols = cols.reshape(b, c, kk, l).permute(0, 3, 2, 1).reshape(b * l, kk * c)
        return cols
    return None


def _targets(mod: nn.Module, y: torch.Tensor) -> torch.Tensor:
    if isinstance(mod, nn.Linear):
        return y.reshape(-1, y.shape[-1])
    return y.flatten(2).transpose(1, 2).reshape(-1, y.shape[1])  # (B·L, out)


def refit_rows(
    x: torch.Tensor, y: torch.Tensor, w0: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor | None,
    ridge: float = 1e-3, chunk_bytes: int = 1 << 27,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Least-squares re-fit of the kept weights of every output row (and the bias), exact per row.

    ``x`` (samples, in), ``y`` (samples, out) targets, ``w0`` (out, in) starting weights, ``mask`` (out, in) bool.
    Returns ``(w, b)`` with ``w`` zero outside the mask.
    """
    xd = x.double()
    has_b = bias is not None
    if has_b:
        xd = torch.cat([xd, torch.ones(len(xd), 1, dtype=xd.dtype)], 1)
    g = xd.T @ xd  # (in+1, in+1)
    c = xd.T @ y.double()  # (in+1, out)
    lam = ridge * float(torch.diagonal(g).mean().clamp_min(1e-12))
    out_f, in_f = w0.shape
    w_new = torch.zeros(out_f, in_f, dtype=torch.float64)
    b_new = torch.zeros(out_f, dtype=torch.float64) if has_b else None
    counts = mask.sum(1)
    for k in torch.unique(counts).tolist():
        rows = (counts == k).nonzero().squeeze(1)
        if k == 0 and not has_b:
            continue
        idx = torch.stack([mask[r].nonzero().squeeze(1) for r in rows.tolist()]) if k else torch.zeros(len(rows), 0, dtype=torch.long)
        if has_b:
            idx = torch.cat([idx, torch.full((len(rows), 1), in_f)], 1)
        kk = idx.shape[1]
        step = max(1, chunk_bytes // (8 * kk * kk))
        for s in range(0, len(rows), step):
            r, ix = rows[s : s + step], idx[s : s + step]
            gs = g[ix[:, :, None], ix[:, None, :]] + lam * torch.eye(kk, dtype=g.dtype)
            prior = torch.cat([w0.double(), (bias.double()[:, None] if has_b else torch.zeros(out_f, 0, dtype=g.dtype))], 1)
            p0 = torch.gather(prior[r], 1, ix)
            rhs = c[ix, r[:, None]] + lam * p0
            # the system is symmetric positive definite (Gram matrix + ridge): Cholesky
            chol, info = torch.linalg.cholesky_ex(gs)
            if bool((info != 0).any()):
                raise FormatError(f"re-fit: normal equations not positive definite (shape {tuple(gs.shape)})")
            sol = torch.cholesky_solve(rhs.unsqueeze(-1), chol).squeeze(-1)
            if has_b:
                b_new[r] = sol[:, -1]
                sol = sol[:, :-1]
                ixw = ix[:, :-1]
            else:
                ixw = ix
            w_new[r[:, None], ixw] = sol
    return w_new, b_new


def convert_to_nm(
    handle: Any,
    fmt: str = "2:4",
    method: str = "reconstruct",
    layers: Sequence[str] | None = None,
    n_batches: int | None = 8,
    ridge: float = 1e-3,
    max_samples: int = 20000,
    seed: int = 0,
) -> tuple[nn.Module, pd.DataFrame]:
    """A converted copy of ``handle.model`` under the sparsity pattern ``fmt`` (a pattern name of the format
    grammar) and one row per layer (``layer, pattern, method, status, reason,
    kept_abs, output_rel_error``); the handle's own model is not changed.

    ``output_rel_error`` is this layer's ‖y_dense − y_converted‖/‖y_dense‖ on the calibration batches, with the
    converted model's inputs (so it includes the error of the layers before it).
    """
    if method not in ("magnitude", "reconstruct"):
        raise FormatError(f"conversion method {method!r} is unknown; use 'magnitude' or 'reconstruct'")
    p = parse_pattern(fmt)
    dense = handle.model
    model = copy.deepcopy(dense).eval()
    names = [n for n in eligible_layers(model) if layers is None or n in layers]
    if layers is not None and set(layers) - set(names):
        raise FormatError(f"{fmt}: layers {sorted(set(layers) - set(names))} are not eligible layers")
    batches = handle.calibration_batches(n_batches=n_batches) if n_batches else handle.calibration_batches()
    dense_out = capture_inputs(handle, dense, names, batches, outputs=True) if method == "reconstruct" else {}
    mods = dict(model.named_modules())
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for name in progress_bar(names, desc=f"convert {fmt}", leave=False):
        mod = mods[name]
        w = original_weight(mod).clone()
        mat = to_matrix(w)
        reason = pattern_fits(p, tuple(mat.shape))
        if reason or p is None:
            rows.append(dict(layer=name, pattern=fmt, method=method, status="skipped",
                             reason=f"{name}: {reason}" if reason else "dense", kept_abs=1.0, output_rel_error=float("nan")))
            continue
        mask, _ = pattern_mask(mat, p)
        new_w, new_b = mat * mask, None
        status = "applied"
        if method == "reconstruct":
            xs = capture_inputs(handle, model, [name], batches, stop_early=True)[name]
            design = [_design(mod, x) for x in xs]
            if any(d is None for d in design):
                status, reason = "applied", f"{name}: {type(mod).__name__} not re-fitted (magnitude only)"
            else:
                xmat = torch.cat(design)
                ymat = torch.cat([_targets(mod, y) for y in dense_out[name]])
                if len(xmat) > max_samples:
                    keep = torch.randperm(len(xmat), generator=gen)[:max_samples]
                    xmat, ymat = xmat[keep], ymat[keep]
                bias = mod.bias.detach() if getattr(mod, "bias", None) is not None else None
                fit_w, new_b = refit_rows(xmat, ymat, mat * mask, mask, bias, ridge=ridge)
                new_w = fit_w.to(mat.dtype)
        with torch.no_grad():
            mod.weight.copy_(from_matrix(new_w, w.shape))
            if new_b is not None:
                mod.bias.copy_(new_b.to(mod.bias.dtype))
        rows.append(dict(layer=name, pattern=fmt, method=method, status=status, reason=reason or "",
                         kept_abs=float((mat * mask).abs().sum() / mat.abs().sum().clamp_min(1e-30)),
                         output_rel_error=float("nan")))
    # each converted layer's output against the dense layer's, in the final model (one pass of each model)
    done = [r["layer"] for r in rows if r["status"] == "applied"]
    if done:
        xs = capture_inputs(handle, model, done, batches[:2])
        ys = capture_inputs(handle, dense, done, batches[:2], outputs=True)
        for r in rows:
            if r["status"] != "applied":
                continue
            mod = mods[r["layer"]]
            with torch.no_grad():
                pairs = list(zip(xs[r["layer"]], ys[r["layer"]]))
                num = sum(float((layer_output(mod, x, mod.weight) - y).double().pow(2).sum()) for x, y in pairs)
                den = sum(float(y.double().pow(2).sum()) for _, y in pairs)
            r["output_rel_error"] = (num / den) ** 0.5 if den > 0 else 0.0
    return model, pd.DataFrame(rows)


def conversion_table(
    handle: Any,
    formats: Sequence[str] = ("2:4",),
    methods: Sequence[str] = ("magnitude", "reconstruct"),
    *,
    patterns: Sequence[str] | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """Quality before and after conversion: one row per pattern × method (plus the dense model).

    ``formats``: sparsity pattern names (``patterns=`` is the deprecated spelling of the same argument).

    Columns: ``model, pattern, method, layers_converted, metric, dense, converted, change`` where ``metric`` is
    ``accuracy`` (classifiers) or ``cosine`` (embedding models, to the dense model's embeddings).
    """
    if patterns is not None:
        warnings.warn("conversion_table(patterns=...) is deprecated; the argument is named `formats`",
                      DeprecationWarning, stacklevel=2)
        formats = patterns
    base = handle.evaluate()
    metric = "accuracy" if "accuracy" in base else "cosine"
    out = []
    for pat in formats:
        for meth in methods:
            model, per_layer = convert_to_nm(handle, pat, meth, **kwargs)
            score = handle.evaluate(model)[metric]
            out.append(dict(model=handle.name, pattern=pat, method=meth,
                            layers_converted=int((per_layer.status == "applied").sum()),
                            metric=metric, dense=base[metric], converted=score, change=score - base[metric]))
    return pd.DataFrame(out)


__all__ = ["conversion_table", "convert_to_nm", "refit_rows"]
