"""Error metrics between a reference and its quantized counterpart, and the per-layer weight SQNR table.

Metrics (float64) between a reference ``x`` and its quantized counterpart ``q``, over the flattened tensors:

- SQNR (dB) ``= 20·log10(‖x‖ / ‖x − q‖)`` (``inf`` when ``q = x``; ``-inf`` when ``x = 0 ≠ q`` or the noise
  overflowed to inf, as E5M2's cast can),
- normalized L2 ``= ‖x − q‖ / ‖x‖``,
- cosine ``= ⟨x, q⟩ / (‖x‖·‖q‖)``.

:func:`weight_sqnr_table` is the one weight-SQNR table of the workbench: the SQNR of the weight each layer now
computes with (its format applied by :func:`workbench.formats.apply`) against the layer's weight without the format.
The quantization lab, the compression report and the dashboard's readouts all call it. A weight too large to hold
(a layer streamed from a checkpoint by :func:`workbench.reports.weights.weight_report`) gets the same metrics from
:func:`metric_sums` summed over its blocks and finished by :func:`metrics_from_sums`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd
import torch
from torch import nn

__all__ = ["sqnr_db", "error_metrics", "accumulated_metrics", "square_sum", "metric_sums", "block_stats",
           "channel_rounding_sums", "metrics_from_sums", "weight_sqnr_table"]


def sqnr_db(x: torch.Tensor, q: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB, ``20·log10(‖x‖/‖x−q‖)``, computed in float64.

    >>> round(sqnr_db(torch.tensor([3.0, 4.0]), torch.tensor([3.0, 4.5])), 3)
    20.0
    """
    x64, q64 = x.detach().double().flatten(), q.detach().double().flatten()
    num = float(torch.linalg.vector_norm(x64))
    den = float(torch.linalg.vector_norm(x64 - q64))
    if den == 0.0:
        return math.inf
    if num == 0.0 or not math.isfinite(den):  # an overflow to inf (E5M2's cast) is no signal at all
        return -math.inf
    return 20.0 * math.log10(num / den)


def error_metrics(x: torch.Tensor, q: torch.Tensor) -> dict[str, float]:
    """``{"sqnr_db", "nl2", "cosine"}`` between reference ``x`` and quantized ``q`` (flattened, float64)."""
    return accumulated_metrics([(x, q)])


FUSED_MIN = 1 << 16  # elements from which metric_sums uses the numba kernel (below: torch, no fork/join wait)


def _fused(*ts: torch.Tensor, bf16: bool = False) -> bool:
    """True when the numba kernels of :mod:`workbench.kernels.cpu_sums` can take these tensors (float32 CPU, or
    for the first with ``bf16`` also bfloat16, which the kernels decode themselves)."""
    from workbench.kernels.cpu import numba_available

    ok = (torch.float32, torch.bfloat16) if bf16 else (torch.float32,)
    return (ts[0].numel() >= FUSED_MIN and ts[0].dtype in ok and ts[0].device.type == "cpu"
            and all(t.dtype == torch.float32 and t.device.type == "cpu" for t in ts[1:]) and numba_available())


def _np(x: torch.Tensor):
    """The numpy array the kernels read: float32 as it is, bfloat16 as its uint16 bit patterns."""
    x = x.contiguous()
    if x.dtype == torch.bfloat16:
        import numpy as np

        return x.view(torch.int16).numpy().view(np.uint16)
    return x.numpy()


def square_sum(x: torch.Tensor) -> float:
    """``‖x‖²`` in float64 (float32 squares are exact in float64; only the summation rounds). NaN/inf propagate."""
    x = x.detach()
    if _fused(x):
        from workbench.kernels import cpu_sums

        return float(cpu_sums.sq_sum(x.contiguous().flatten().numpy()))
    return float(torch.linalg.vector_norm(x.double().flatten())) ** 2


def metric_sums(x: torch.Tensor, q: torch.Tensor, *, x_sq: float | None = None) -> tuple[float, float, float, float]:
    """``(‖x‖², ‖q‖², ‖x−q‖², ⟨x,q⟩)`` of one pair, in float64: the parts :func:`metrics_from_sums` finishes, so a
    tensor streamed in blocks gives the metrics of the whole (sum the parts of every block). ``x_sq``: ‖x‖² when
    the caller already has it (scoring one block under several formats).

    float32 CPU tensors of at least :data:`FUSED_MIN` elements with numba installed: one fused pass
    (:func:`workbench.kernels.cpu_sums.pair_sums`: each element widened to float64 in registers, float64 chunk sums
    added by a pairwise sum, no float64 copies), ⟨x,q⟩ summed directly. Otherwise: float64 copies and norms, not
    ``@`` (torch's float64 dot goes through BLAS, ~1000x slower on a busy 2-core box); ``x − q`` in float64 (exact
    for float32 inputs); ⟨x,q⟩ by polarization, (‖x‖² + ‖q‖² − ‖x−q‖²) / 2, which errs by ~1e-16 of ‖x‖² + ‖q‖².
    """
    x, q = x.detach(), q.detach()
    if x.shape == q.shape and _fused(x, q):
        from workbench.kernels import cpu_sums

        sx, sq, sd, sxq = (float(v) for v in cpu_sums.pair_sums(x.contiguous().flatten().numpy(),
                                                               q.contiguous().flatten().numpy()))
        return (sx if x_sq is None else float(x_sq)), sq, sd, sxq
    x64, q64 = x.double().flatten(), q.double().flatten()
    sx = float(torch.linalg.vector_norm(x64)) ** 2 if x_sq is None else float(x_sq)
    sq = float(torch.linalg.vector_norm(q64)) ** 2
    sd = float(torch.linalg.vector_norm(x64 - q64)) ** 2
    return sx, sq, sd, (sx + sq - sd) / 2 if math.isfinite(sd) else float((x64 * q64).sum())


def block_stats(x: torch.Tensor) -> tuple[float, torch.Tensor]:
    """``(‖x‖², amax)`` of a block of rows (float32 or bfloat16): the float64 sum of squares (NaN/inf propagate) and
    each row's max |x| as float32 (``x.float().abs().reshape(rows, -1).amax(dim=1)``), one fused pass when it
    applies."""
    x = x.detach()
    x2 = x.reshape(x.shape[0], -1)
    if _fused(x2, bf16=True):
        from workbench.kernels import cpu_sums

        total, amax = cpu_sums.row_stats(_np(x2))
        return float(total), torch.from_numpy(amax)
    return square_sum(x), x2.float().abs().amax(dim=1)


def channel_rounding_sums(x: torch.Tensor, number: Any, amax: torch.Tensor) -> tuple[float, float, float, float]:
    """:func:`metric_sums` of finite ``x`` (float32 or bfloat16) and its per-channel rounding to an FP8 or intB
    ``number``: ``q = round_number(x, number, s)`` with ``s = amax / fmax`` per row (0 -> 1), the scale
    :func:`workbench.formats.numbers.compute_scale` gives from the rows' ``amax`` (:func:`block_stats`).

    Fused when it applies (:func:`workbench.kernels.cpu_sums.rounding_sums`: the rounding done in
    registers, bit for bit torch's, ``q`` never written); otherwise ``round_number`` and :func:`metric_sums`."""
    from workbench.formats.numbers import round_number

    x = x.detach()
    s = amax / number.fmax
    s = torch.where(s > 0, s, torch.ones_like(s))
    x2 = x.reshape(x.shape[0], -1)
    if number.kind in ("int", "float") and _fused(x2, s, bf16=True):
        from workbench.kernels import cpu_sums

        xa, sa = _np(x2), s.contiguous().numpy()
        if number.kind == "int":
            out = cpu_sums.rounding_sums(xa, sa, "int", fmax=float(number.fmax))
        else:
            fi = torch.finfo(number.dtype)
            out = cpu_sums.rounding_sums(xa, sa, "float", mbits=round(-math.log2(fi.eps)),
                                         emin=round(math.log2(fi.tiny)))
        return tuple(float(v) for v in out)  # type: ignore[return-value]
    x = x.float()
    return metric_sums(x, round_number(x, number, s.reshape(-1, *([1] * (x.dim() - 1)))))


def metrics_from_sums(sx: float, sq: float, sd: float, sxq: float) -> dict[str, float]:
    """``{"sqnr_db", "nl2", "cosine"}`` from the summed :func:`metric_sums` (see the module docstring)."""
    if sd == 0:
        sqnr = math.inf
    elif sx == 0 or not math.isfinite(sd):
        sqnr = -math.inf
    else:
        sqnr = 10.0 * math.log10(sx / sd)
    return {
        "sqnr_db": sqnr,
        "nl2": math.sqrt(sd / sx) if sx > 0 else (0.0 if sd == 0 else math.inf),
        "cosine": sxq / math.sqrt(sx * sq) if sx > 0 and sq > 0 else float(sx == sq),
    }


def accumulated_metrics(parts: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """:func:`error_metrics` over several ``(x, q)`` pairs as if concatenated: sums of ‖x‖², ‖x−q‖², ‖q‖², ⟨x,q⟩
    in float64 (:func:`metric_sums`, :func:`metrics_from_sums`)."""
    sx = sq = sd = sxq = 0.0
    for x, q in parts:
        a, b, c, d = metric_sums(x, q)
        sx += a
        sq += b
        sd += c
        sxq += d
    return metrics_from_sums(sx, sq, sd, sxq)


def weight_sqnr_table(
    model: nn.Module,
    layers: Mapping[str, str] | None = None,
    cache: dict[tuple[str, str], float] | None = None,
    *,
    check: Callable[[], None] | None = None,
) -> pd.DataFrame:
    """One row per layer: ``layer, format, sqnr_db``, the SQNR of the weight the model now computes with against
    the layer's weight without its format (:func:`workbench.formats.original_weight`).

    ``layers`` maps layer name to the format currently applied (default: :func:`workbench.formats.current_formats`);
    ``"dense"`` gives ``inf`` without computing. ``cache`` keyed by (layer, format) skips recomputation (a format's
    error on an unchanged weight is a constant; the dashboard keeps one). ``check`` is called before each layer
    (to cancel).
    """
    from torch.nn.utils import parametrize

    from workbench.formats import current_formats, original_weight

    if layers is None:
        layers = current_formats(model)
    rows = []
    with torch.no_grad(), parametrize.cached():
        for name, fmt in layers.items():
            if check is not None:
                check()
            if fmt == "dense":
                rows.append((name, fmt, math.inf))
                continue
            key = (name, fmt)
            if cache is not None and key in cache:
                rows.append((name, fmt, cache[key]))
                continue
            module = model.get_submodule(name)
            value = sqnr_db(original_weight(module).detach(), module.weight)
            if cache is not None:
                cache[key] = value
            rows.append((name, fmt, value))
    return pd.DataFrame(rows, columns=["layer", "format", "sqnr_db"])
