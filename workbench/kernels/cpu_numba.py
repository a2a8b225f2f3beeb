"""numba kernels for the CPU paths of :func:`workbench.kernels.linear` (imported only when numba is installed).

Each kernel is a ``@njit(parallel=True)`` loop nest, parallel over output features (``prange``), compiled once per
process (and cached on disk by numba). Accumulation is in float32 (int for popcounts); ``fastmath`` allows only
reassociation and contraction, so the inner loops vectorize (AVX2/AVX-512) and the result stays within the usual
float32 summation bound ``K·u·Σ|x||w|`` (any summation order), with no assumptions about NaN/inf or denormals.

- ``xnor_*``: binary weights and binary activations (Hubara/Courbariaux et al. 2016; XNOR-Net, Rastegari et al.
  2016): 64 signs per ``uint64`` word, ``dot = k − 2·popcount(a XOR b)``; popcount is LLVM's ``ctpop`` (a
  ``popcnt``/``vpopcntq`` instruction), padding bits are 0 in both operands.
- ``gemv_*``: weight-only formats with dequantize-in-the-loop: each weight is decoded to float32 in registers as it is
  read (int8: convert; e4m3: its bits moved into a float32 with the exponent rebased, :func:`e4m3_to_f32`; bf16:
  the 16 bits moved to the top of a float32; binary: the sign bit of x flipped where the weight bit is 0; 2:4: the
  2-bit position picks the input column), multiplied by the activation, the per-row scale applied once at the end.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

_FM = {"reassoc", "contract"}


@intrinsic
def popcount64(typingctx, x):
    """``llvm.ctpop.i64``: the number of set bits of a uint64."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@intrinsic
def f32_from_bits(typingctx, x):
    """Reinterpret a uint32 bit pattern as a float32 (no conversion)."""
    from llvmlite import ir

    sig = types.float32(types.uint32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@njit(inline="always")
def e4m3_to_f32(code):  # pragma: no cover - compiled
    """The value of an e4m3fn code (uint8) as float32, by bit moves (vectorizes, unlike a table gather).

    Normal codes (exponent field e > 0): sign to bit 31, the 7 exponent+mantissa bits to bits 20..26, exponent
    rebased by 127 − 7 = 120: exact. Subnormal codes (e = 0): ±m·2⁻⁹. The NaN codes (0x7F, 0xFF; ``pack`` never makes
    them, its cast saturates) decode as ±480.
    """
    u = np.uint32(code)
    mag = u & np.uint32(0x7F)
    sign = (u & np.uint32(0x80)) << np.uint32(24)
    normal = f32_from_bits(((mag << np.uint32(20)) + np.uint32(120 << 23)) | sign)
    sub = f32_from_bits(sign | np.uint32(0x3F800000)) * np.float32(mag) * np.float32(2.0**-9)
    return normal if mag >= np.uint32(8) else sub


@njit(parallel=True, cache=True)
def sign_pack64(x, k, out):  # pragma: no cover - compiled
    """``out[i, w]`` bit ``t`` = ``x[i, 64w + t] >= 0`` (sign(0) = +1); padding bits past ``k`` are 0."""
    m, n_words = out.shape
    for i in prange(m):
        for w in range(n_words):
            word = np.uint64(0)
            base = w * 64
            top = min(64, k - base)
            for t in range(top):
                if x[i, base + t] >= 0:
                    word |= np.uint64(1) << np.uint64(t)
            out[i, w] = word


@njit(parallel=True, cache=True)
def xnor_int(a, b, k, out):  # pragma: no cover - compiled
    """``out[i, j] = k − 2·Σ_w popcount(a[i, w] ^ b[j, w])`` (int32)."""
    m, n_words = a.shape
    n = b.shape[0]
    for j in prange(n):
        for i in range(m):
            acc = 0
            for w in range(n_words):
                acc += popcount64(a[i, w] ^ b[j, w])
            out[i, j] = k - 2 * acc


@njit(parallel=True, cache=True)
def xnor_linear(a, b, k, scale, out):  # pragma: no cover - compiled
    """``out[i, j] = scale[j]·(k − 2·Σ_w popcount(a[i, w] ^ b[j, w]))`` (float32)."""
    m, n_words = a.shape
    n = b.shape[0]
    for j in prange(n):
        s = scale[j]
        for i in range(m):
            acc = 0
            for w in range(n_words):
                acc += popcount64(a[i, w] ^ b[j, w])
            out[i, j] = np.float32(k - 2 * acc) * s


@njit(parallel=True, fastmath=_FM, cache=True)
def gemv_int8(x, w, scale, out):  # pragma: no cover - compiled
    """``out[i, j] = scale[j]·Σ_c x[i, c]·float(w[j, c])`` for int8 ``w``."""
    m, k = x.shape
    n = w.shape[0]
    for j in prange(n):
        for i in range(m):
            acc = np.float32(0.0)
            for c in range(k):
                acc += x[i, c] * np.float32(w[j, c])
            out[i, j] = acc * scale[j]


@njit(parallel=True, fastmath=_FM, cache=True)
def gemv_e4m3(x, codes, scale, out):  # pragma: no cover - compiled
    """``out[i, j] = scale[j]·Σ_c x[i, c]·e4m3(codes[j, c])`` (uint8 e4m3fn codes)."""
    m, k = x.shape
    n = codes.shape[0]
    for j in prange(n):
        for i in range(m):
            acc = np.float32(0.0)
            for c in range(k):
                acc += x[i, c] * e4m3_to_f32(codes[j, c])
            out[i, j] = acc * scale[j]


@njit(parallel=True, fastmath=_FM, cache=True)
def gemv_binary(xbits, bits, k, scale, out):  # pragma: no cover - compiled
    """``out[i, j] = scale[j]·Σ_c ±x[i, c]`` (+ where bit ``c`` of row ``j`` is 1): real activations, 1-bit weights.

    ``xbits`` is x as uint32 bit patterns; ``−x`` is x with its sign bit flipped, so each term is one shift, one
    XOR into the sign bit and one add (no select, no multiply). Full words in a fixed 64-step loop, the last apart.
    """
    m = xbits.shape[0]
    n, n_words = bits.shape
    one = np.uint64(1)
    for j in prange(n):
        for i in range(m):
            acc = np.float32(0.0)
            for w in range(n_words):
                word = ~bits[j, w]  # 1 where the weight is −1
                base = w * 64
                top = min(64, k - base)
                if top == 64:
                    for t in range(64):
                        flip = np.uint32((word >> np.uint64(t)) & one) << np.uint32(31)
                        acc += f32_from_bits(xbits[i, base + t] ^ flip)
                else:
                    for t in range(top):
                        flip = np.uint32((word >> np.uint64(t)) & one) << np.uint32(31)
                        acc += f32_from_bits(xbits[i, base + t] ^ flip)
            out[i, j] = acc * scale[j]


@njit(inline="always")
def _pos(positions, j, g):  # pragma: no cover - compiled
    """Group ``g``'s 4-bit nibble of row ``j``: low 2 bits the first kept column, high 2 bits the second."""
    return (positions[j, g >> 3] >> np.uint32(4 * (g & 7))) & np.uint32(15)


@njit(parallel=True, fastmath=_FM, cache=True)
def gemv_24_f32(x, values, positions, scale, out):  # pragma: no cover - compiled
    """2:4 with float32 kept values: ``Σ_g v[2g]·x[4g + p0] + v[2g+1]·x[4g + p1]``, times ``scale[j]``."""
    m, k = x.shape
    n = values.shape[0]
    for j in prange(n):
        for i in range(m):
            acc = np.float32(0.0)
            for g in range(k // 4):
                nib = _pos(positions, j, g)
                acc += values[j, 2 * g] * x[i, 4 * g + (nib & np.uint32(3))]
                acc += values[j, 2 * g + 1] * x[i, 4 * g + (nib >> np.uint32(2))]
            out[i, j] = acc * scale[j]


@njit(parallel=True, fastmath=_FM, cache=True)
def gemv_24_bf16(x, values, positions, scale, out):  # pragma: no cover - compiled
    """2:4 with bfloat16 kept values (their uint16 bit patterns, moved to the top half of a float32: exact)."""
    m, k = x.shape
    n = values.shape[0]
    for j in prange(n):
        for i in range(m):
            acc = np.float32(0.0)
            for g in range(k // 4):
                nib = _pos(positions, j, g)
                v0 = f32_from_bits(np.uint32(values[j, 2 * g]) << np.uint32(16))
                v1 = f32_from_bits(np.uint32(values[j, 2 * g + 1]) << np.uint32(16))
                acc += v0 * x[i, 4 * g + (nib & np.uint32(3))]
                acc += v1 * x[i, 4 * g + (nib >> np.uint32(2))]
            out[i, j] = acc * scale[j]


@njit(parallel=True, fastmath=_FM, cache=True)
def gemv_24_e4m3(x, codes, positions, scale, out):  # pragma: no cover - compiled
    """2:4 with uint8 e4m3fn codes as kept values, times ``scale[j]``."""
    m, k = x.shape
    n = codes.shape[0]
    for j in prange(n):
        for i in range(m):
            acc = np.float32(0.0)
            for g in range(k // 4):
                nib = _pos(positions, j, g)
                acc += e4m3_to_f32(codes[j, 2 * g]) * x[i, 4 * g + (nib & np.uint32(3))]
                acc += e4m3_to_f32(codes[j, 2 * g + 1]) * x[i, 4 * g + (nib >> np.uint32(2))]
            out[i, j] = acc * scale[j]


__all__ = [
    "popcount64",
    "sign_pack64",
    "xnor_int",
    "xnor_linear",
    "gemv_int8",
    "gemv_e4m3",
    "gemv_binary",
    "gemv_24_f32",
    "gemv_24_bf16",
    "gemv_24_e4m3",
    "e4m3_to_f32",
]
