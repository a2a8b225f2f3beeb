"""numba kernels for the error sums of :func:`workbench.quant.metrics.metric_sums` (imported only when numba is
installed): ``(‖x‖², ‖q‖², ‖x−q‖², ⟨x,q⟩)`` of float32 tensors in one pass, with no float64 copies.

Each float32 element is widened to float64 in registers; a float32 square or product is exact in float64, and
``x − q`` is taken in float64 as the torch path does (for q a rounding of x to nearest on a grid holding 0 it is
even exact in float32, Sterbenz). The sums run over fixed chunks (:data:`CHUNK` elements, or one row), each
accumulating in float64 (``fastmath`` allows only reassociation, so the inner loop vectorizes), then the chunk sums
are added by numpy's pairwise sum: the result depends on neither the thread count nor the scheduling, and errs
by the usual float64 summation bound (≈ CHUNK·u relative at worst, in practice ~1e-16). NaN and inf propagate.

Threads: the kernels are serial and release the GIL (``nogil``); :func:`run_parts` splits the chunks among
``torch.get_num_threads()`` Python threads made for the call. Not numba's ``parallel=True``: its GNU OpenMP layer
kills a forked child (a process-pool worker) that launches a parallel kernel after its parent did, and its
workqueue layer aborts on concurrent launches from two threads. ``error_model="numpy"``: IEEE division with no
zero check (the scales are > 0), without which the division's branch keeps the loops from vectorizing (6x slower).

:func:`rounding_sums` fuses :func:`workbench.formats.numbers.round_number` with a per-row scale into the same pass,
so ``q`` is never written to memory: intB ``q = clamp(rint(x / s), −fmax, fmax) · s`` (float32 as torch computes it;
``rint`` rounds half to even as ``torch.round``), FP8 by :func:`_fp_q` (bit for bit torch's cast, checked on every
grid value, midpoint and neighbour in ``tests/test_quant_fused_sums.py``).
"""

from __future__ import annotations

import concurrent.futures as cf

import numpy as np
import torch
from numba import njit, types
from numba.extending import intrinsic, overload

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


def _ld(x, r, j):  # pragma: no cover - typed by the overload below
    """``x[r, j]`` as float32; a uint16 array holds bfloat16 bit patterns (decoded exactly: the 16 bits on top)."""
    raise NotImplementedError


@overload(_ld, inline="always")
def _ld_typed(x, r, j):  # pragma: no cover - compiled
    if x.dtype == types.uint16:
        return lambda x, r, j: f32_from_bits(np.uint32(x[r, j]) << np.uint32(16))
    return lambda x, r, j: np.float32(x[r, j])


@njit(nogil=True, fastmath=_FM, error_model="numpy", cache=True)
def _pair_part(x, q, c0, c1, part):  # pragma: no cover - compiled
    """Chunks ``c0:c1`` of :func:`pair_sums`: ``part[c] = [Σx², Σq², Σ(x−q)², Σx·q]`` over chunk ``c``."""
    n = x.shape[0]
    for c in range(c0, c1):
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


@njit(inline="always")
def _int_q(v, s, lo_q, hi_q):  # pragma: no cover - compiled
    """``clamp(rint(v / s), lo_q, hi_q) · s`` in float32 (finite ``v``)."""
    t = np.rint(v / s)
    return min(max(t, lo_q), hi_q) * s


@njit(inline="always")
def _fp_q(v, s, mbits, emin):  # pragma: no cover - compiled
    """``fp8(v / s) · s`` in float32 for finite ``v / s`` within the format's range: round to nearest even on the
    grid of spacing ``2^(max(e, emin) − mbits)``, ``e`` the float32 exponent of ``v / s`` (``emin``: the least
    normal exponent, so subnormals share its spacing). Division and product by a power of two are exact, so this is
    torch's cast to ``float8_e4m3fn`` (mbits 3, emin −6) / ``float8_e5m2`` (2, −14) followed by ``· s``."""
    u = v / s
    e = max(np.int32((f32_bits(u) >> np.uint32(23)) & np.uint32(0xFF)) - np.int32(127), emin)
    step = f32_from_bits(np.uint32((e - mbits + 127) << 23))
    return (np.rint(u / step) * step) * s


@njit(nogil=True, error_model="numpy", cache=True)
def _round_part(x, scale, kind, a, b, r0, r1, out):  # pragma: no cover - compiled
    """Rows ``r0:r1`` of the ``q`` the rounding kernels score, written out (for tests against round_number);
    kind 0: :func:`_int_q` with fmax ``a``; kind 1: :func:`_fp_q` with mbits ``a``, emin ``b``."""
    for r in range(r0, r1):
        s = scale[r]
        for j in range(x.shape[1]):
            if kind == 0:
                out[r, j] = _int_q(_ld(x, r, j), s, np.float32(-a), np.float32(a))
            else:
                out[r, j] = _fp_q(_ld(x, r, j), s, int(a), int(b))


@njit(nogil=True, fastmath=_FM, error_model="numpy", cache=True)
def _int_part(x, scale, fmax, r0, r1, part):  # pragma: no cover - compiled
    """Rows ``r0:r1``: ``part[r]`` = the four sums of row ``r`` of ``x`` (float32, finite, rows × cols) and
    ``q = _int_q(x, scale[r])``, ``q`` never written."""
    lo_q = np.float32(-fmax)
    hi_q = np.float32(fmax)
    for r in range(r0, r1):
        s = scale[r]
        sx = 0.0
        sq = 0.0
        sd = 0.0
        sxq = 0.0
        for j in range(x.shape[1]):
            v = _ld(x, r, j)
            xa = np.float64(v)
            xb = np.float64(_int_q(v, s, lo_q, hi_q))
            d = xa - xb
            sx += xa * xa
            sq += xb * xb
            sd += d * d
            sxq += xa * xb
        part[r, 0] = sx
        part[r, 1] = sq
        part[r, 2] = sd
        part[r, 3] = sxq


@njit(nogil=True, fastmath=_FM, error_model="numpy", cache=True)
def _fp_part(x, scale, mbits, emin, r0, r1, part):  # pragma: no cover - compiled
    """:func:`_int_part` for ``q = _fp_q(x, scale[r], mbits, emin)``."""
    for r in range(r0, r1):
        s = scale[r]
        sx = 0.0
        sq = 0.0
        sd = 0.0
        sxq = 0.0
        for j in range(x.shape[1]):
            v = _ld(x, r, j)
            xa = np.float64(v)
            xb = np.float64(_fp_q(v, s, mbits, emin))
            d = xa - xb
            sx += xa * xa
            sq += xb * xb
            sd += d * d
            sxq += xa * xb
        part[r, 0] = sx
        part[r, 1] = sq
        part[r, 2] = sd
        part[r, 3] = sxq


@njit(nogil=True, fastmath=_FM, error_model="numpy", cache=True)
def _stats_part(x, r0, r1, part, amax):  # pragma: no cover - compiled
    """Rows ``r0:r1`` of :func:`row_stats`."""
    for r in range(r0, r1):
        s = 0.0
        m = np.float32(0.0)
        for j in range(x.shape[1]):
            v = _ld(x, r, j)
            a = np.float64(v)
            s += a * a
            m = max(m, abs(v))
        part[r] = s
        amax[r] = m


MIN_PER_THREAD = 1 << 20  # elements below which a call stays on the calling thread


def run_parts(kernel, units: int, unit_size: int, *args) -> None:
    """``kernel(*args[:-k], u0, u1, *outs)`` over ``units`` split in contiguous ranges among up to
    ``torch.get_num_threads()`` threads (one when the work is under :data:`MIN_PER_THREAD` per thread);
    ``args`` = inputs, then the output arrays after a ``None`` separator."""
    cut = next(i for i, a in enumerate(args) if a is None)
    ins, outs = args[:cut], args[cut + 1:]
    n = max(1, min(torch.get_num_threads(), units, (units * unit_size) // MIN_PER_THREAD))
    if n == 1:
        kernel(*ins, 0, units, *outs)
        return
    bounds = [units * i // n for i in range(n + 1)]
    with cf.ThreadPoolExecutor(n) as ex:
        for f in [ex.submit(kernel, *ins, bounds[i], bounds[i + 1], *outs) for i in range(n)]:
            f.result()


def pair_sums(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``[Σx², Σq², Σ(x−q)², Σx·q]`` (float64) of two flat float32 arrays of the same length."""
    chunks = (x.shape[0] + CHUNK - 1) // CHUNK
    part = np.zeros((chunks, 4))
    run_parts(_pair_part, chunks, CHUNK, x, q, None, part)
    return part.sum(axis=0)


def _kind(kind: str, fmax: float, mbits: int, emin: int) -> tuple[int, float, float]:
    return (0, float(fmax), 0.0) if kind == "int" else (1, float(mbits), float(emin))


def rounding_sums(x: np.ndarray, scale: np.ndarray, kind: str, fmax: float = 0.0, mbits: int = 0,
                  emin: int = 0) -> np.ndarray:
    """The four sums of ``x`` (float32, finite, rows × cols) and its per-row rounding ``q``: ``kind="int"``:
    ``clamp(rint(x / s), −fmax, fmax) · s``; ``"float"``: torch's FP8 cast of ``x / s`` (``mbits``, ``emin``), ``· s``;
    ``|x / s| ≤ fmax`` (the amax scale)."""
    part = np.zeros((x.shape[0], 4))
    if kind == "int":
        run_parts(_int_part, x.shape[0], x.shape[1], x, scale, np.float32(fmax), None, part)
    else:
        run_parts(_fp_part, x.shape[0], x.shape[1], x, scale, int(mbits), int(emin), None, part)
    return part.sum(axis=0)


def rounded(x: np.ndarray, scale: np.ndarray, kind: str, fmax: float = 0.0, mbits: int = 0,
            emin: int = 0) -> np.ndarray:
    """The ``q`` :func:`rounding_sums` scores, written out (for tests)."""
    k, a, b = _kind(kind, fmax, mbits, emin)
    out = np.empty(x.shape, dtype=np.float32)
    run_parts(_round_part, x.shape[0], x.shape[1], x, scale, k, a, b, None, out)
    return out


def row_stats(x: np.ndarray) -> tuple[float, np.ndarray]:
    """``(Σx², amax)``: the float64 sum of squares of ``x`` (rows × cols, float32; NaN/inf propagate) and each row's
    max |x| (float32; what ``x.abs().amax(dim=1)`` gives for finite rows)."""
    part = np.zeros(x.shape[0])
    amax = np.zeros(x.shape[0], dtype=np.float32)
    run_parts(_stats_part, x.shape[0], x.shape[1], x, None, part, amax)
    return float(part.sum()), amax


def sq_sum(x: np.ndarray) -> float:
    """``Σx²`` (float64) of a flat float32 array."""
    return float(pair_sums(x, x)[0])
