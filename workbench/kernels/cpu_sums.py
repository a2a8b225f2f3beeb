"""numba kernels for the error sums of :func:`workbench.quant.metrics.metric_sums` (imported only when numba is
installed): ``(‖x‖², ‖q‖², ‖x−q‖², ⟨x,q⟩)`` of float32 tensors in one pass, with no float64 copies.

Each float32 element is widened to float64 in registers; a float32 square or product is exact in float64, and
``x − q`` is taken in float64 as the torch path does (for q a rounding of x to nearest on a grid holding 0 it is
even exact in float32, Sterbenz). The sums run over fixed chunks of :data:`CHUNK` elements (``prange`` over chunks,
each accumulating in float64; ``fastmath`` allows only reassociation so the inner loop vectorizes), then the chunk
sums are added in order: the result depends on neither the thread count nor the scheduling, and errs by the usual
float64 summation bound (≈ CHUNK·u relative at worst, in practice ~1e-16). NaN and inf propagate as in a plain sum.

:func:`int_sums` fuses the integer rounding of :func:`workbench.formats.numbers.round_number` with a per-row scale
(``q = clamp(rint(x / s), −fmax, fmax) · s``, all in float32 as torch computes it; ``rint`` rounds half to even as
``torch.round``) into the same pass, so ``q`` is never written to memory.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from workbench.kernels.cpu_numba import f32_from_bits

CHUNK = 4096  # elements per partial sum
_FM = {"reassoc"}


@intrinsic
def f32_bits(typingctx, x):
    """The uint32 bit pattern of a float32 (no conversion)."""
    from llvmlite import ir

    sig = types.uint32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return sig, codegen


@njit(parallel=True, fastmath=_FM, cache=True)
def pair_sums(x, q):  # pragma: no cover - compiled
    """``[Σx², Σq², Σ(x−q)², Σx·q]`` (float64) of two flat float32 arrays of the same length."""
    n = x.shape[0]
    nchunks = (n + CHUNK - 1) // CHUNK
    part = np.zeros((nchunks, 4))
    for c in prange(nchunks):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        sx = 0.0
        sq = 0.0
        sd = 0.0
        sxq = 0.0
        for i in range(lo, hi):
            a = np.float64(x[i])
            b = np.float64(q[i])
            d = a - b
            sx += a * a
            sq += b * b
            sd += d * d
            sxq += a * b
        part[c, 0] = sx
        part[c, 1] = sq
        part[c, 2] = sd
        part[c, 3] = sxq
    out = np.zeros(4)
    for c in range(nchunks):
        for k in range(4):
            out[k] += part[c, k]
    return out


@njit(parallel=True, fastmath=_FM, cache=True)
def sq_sum(x):  # pragma: no cover - compiled
    """``Σx²`` (float64) of a flat float32 array, chunked as :func:`pair_sums`."""
    n = x.shape[0]
    nchunks = (n + CHUNK - 1) // CHUNK
    part = np.zeros(nchunks)
    for c in prange(nchunks):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        s = 0.0
        for i in range(lo, hi):
            a = np.float64(x[i])
            s += a * a
        part[c] = s
    out = 0.0
    for c in range(nchunks):
        out += part[c]
    return out


@njit(inline="always")
def _int_q(v, s, lo_q, hi_q):  # pragma: no cover - compiled
    """``clamp(rint(v / s), lo_q, hi_q) · s`` in float32 (finite ``v``)."""
    t = np.rint(v / s)
    return min(max(t, lo_q), hi_q) * s


@njit(parallel=True, cache=True)
def int_round(x, scale, fmax):  # pragma: no cover - compiled
    """The ``q`` :func:`int_sums` scores, written out (for tests against ``round_number``)."""
    rows, cols = x.shape
    out = np.empty_like(x)
    lo_q = np.float32(-fmax)
    hi_q = np.float32(fmax)
    for r in prange(rows):
        for j in range(cols):
            out[r, j] = _int_q(x[r, j], scale[r], lo_q, hi_q)
    return out


@njit(parallel=True, fastmath=_FM, cache=True)
def int_sums(x, scale, fmax):  # pragma: no cover - compiled
    """:func:`pair_sums` of ``x`` (float32, rows × cols) and ``q = clamp(rint(x / s_r), −fmax, fmax) · s_r``
    (float32, ``s_r = scale[r]``), without writing ``q``; the chunks are rows. ``x`` must be finite."""
    rows, cols = x.shape
    part = np.zeros((rows, 4))
    lo_q = np.float32(-fmax)
    hi_q = np.float32(fmax)
    for r in prange(rows):
        s = scale[r]
        sx = 0.0
        sq = 0.0
        sd = 0.0
        sxq = 0.0
        for j in range(cols):
            v = x[r, j]
            a = np.float64(v)
            b = np.float64(_int_q(v, s, lo_q, hi_q))
            d = a - b
            sx += a * a
            sq += b * b
            sd += d * d
            sxq += a * b
        part[r, 0] = sx
        part[r, 1] = sq
        part[r, 2] = sd
        part[r, 3] = sxq
    out = np.zeros(4)
    for r in range(rows):
        for k in range(4):
            out[k] += part[r, k]
    return out


@njit(inline="always")
def _fp_q(v, s, mbits, emin):  # pragma: no cover - compiled
    """``fp8(v / s) · s`` in float32 for finite ``v / s`` within the format's range: round to nearest even on the
    grid of spacing ``2^(max(e, emin) − mbits)``, ``e`` the float32 exponent of ``v / s`` (``emin``: the least
    normal exponent, so subnormals share its spacing). Division and product by a power of two are exact, so this is
    torch's cast to ``float8_e4m3fn`` (mbits 3, emin −6) / ``float8_e5m2`` (2, −14) followed by ``· s``."""
    u = v / s
    e = np.int32((f32_bits(u) >> np.uint32(23)) & np.uint32(0xFF)) - np.int32(127)
    if e < emin:
        e = emin
    step = f32_from_bits(np.uint32((e - mbits + 127) << 23))
    return (np.rint(u / step) * step) * s


@njit(parallel=True, cache=True)
def float_round(x, scale, mbits, emin):  # pragma: no cover - compiled
    """The ``q`` :func:`float_sums` scores, written out (for tests against ``round_number``)."""
    rows, cols = x.shape
    out = np.empty_like(x)
    for r in prange(rows):
        for j in range(cols):
            out[r, j] = _fp_q(x[r, j], scale[r], mbits, emin)
    return out


@njit(parallel=True, fastmath=_FM, cache=True)
def float_sums(x, scale, mbits, emin):  # pragma: no cover - compiled
    """:func:`int_sums` for an FP8 format (:func:`_fp_q`): ``q`` never written; ``x`` finite, ``|x / s| ≤ fmax``."""
    rows, cols = x.shape
    part = np.zeros((rows, 4))
    for r in prange(rows):
        s = scale[r]
        sx = 0.0
        sq = 0.0
        sd = 0.0
        sxq = 0.0
        for j in range(cols):
            v = x[r, j]
            a = np.float64(v)
            b = np.float64(_fp_q(v, s, mbits, emin))
            d = a - b
            sx += a * a
            sq += b * b
            sd += d * d
            sxq += a * b
        part[r, 0] = sx
        part[r, 1] = sq
        part[r, 2] = sd
        part[r, 3] = sxq
    out = np.zeros(4)
    for r in range(rows):
        for k in range(4):
            out[k] += part[r, k]
    return out


@njit(parallel=True, fastmath=_FM, cache=True)
def row_stats(x):  # pragma: no cover - compiled
    """``(Σx², amax)``: the float64 sum of squares of ``x`` (rows × cols, float32; row sums added in order, NaN/inf
    propagate) and each row's max |x| (float32; what ``x.abs().amax(dim=1)`` gives for finite rows)."""
    rows, cols = x.shape
    part = np.zeros(rows)
    amax = np.zeros(rows, dtype=np.float32)
    for r in prange(rows):
        s = 0.0
        m = np.float32(0.0)
        for j in range(cols):
            v = x[r, j]
            a = np.float64(v)
            s += a * a
            m = max(m, abs(v))
        part[r] = s
        amax[r] = m
    total = 0.0
    for r in range(rows):
        total += part[r]
    return total, amax
