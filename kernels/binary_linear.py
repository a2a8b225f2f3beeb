"""Triton kernel: ``out = x · (scale ⊙ sign(W))ᵀ (+ bias)`` with 32 signs of W per int32 word.

Binarized weights (Hubara/Courbariaux et al. 2016) with the XNOR-Net per-row scale mean|w| (Rastegari et al. 2016).
Each program owns ``BLOCK_N`` output features and ``BLOCK_M`` rows of ``x``; per K step it loads
``BLOCK_N × BLOCK_K/32`` words (1/16 of the bf16 bytes), expands each bit to ±1 in ``x``'s dtype in registers
(bit ``c % 32`` of word ``c // 32``; 1 = +1) and accumulates ``tl.dot`` in fp32; the scale multiplies once at the end.
The ±1 are made from bit patterns (shift the weight bit onto the sign bit of −1, XOR): 3 integer ops a weight
instead of two conversions (int→fp32→bf16), which run at a quarter of the integer rate on sm_90.
Padding bits past ``K`` meet ``x`` loaded as 0, so they add nothing.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels._runtime import Kernel, cdiv, interpreting, prune_by_tile


def _binary_linear_kernel(
    x_ptr, w_ptr, s_ptr, b_ptr, o_ptr,
    M, N, K,
    stride_xm, stride_om,
    HAS_BIAS: tl.constexpr, DOT_F32: tl.constexpr, W16: tl.constexpr, NEG_ONE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = rm < M
    n_ok = rn < N
    WORDS = (K + 31) // 32
    bit = tl.arange(0, 32)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        rk = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(x_ptr + rm[:, None] * stride_xm + rk[None, :], mask=m_ok[:, None] & (rk < K)[None, :], other=0.0)
        rw = k0 // 32 + tl.arange(0, BLOCK_K // 32)
        words = tl.load(w_ptr + rn[:, None] * WORDS + rw[None, :], mask=n_ok[:, None] & (rw < WORDS)[None, :], other=0)
        # ±1 built from its bit pattern, no int→float conversion: NEG_ONE is −1 in x's format, the weight bit
        # (1 = +1) lands on the sign bit and flips it
        if W16:
            sgn = ((words[:, :, None] >> bit[None, None, :]) << 15) & 0x8000
            w = tl.reshape((sgn ^ NEG_ONE).to(tl.int16).to(x.dtype, bitcast=True), (BLOCK_N, BLOCK_K))
        else:
            sgn = (words[:, :, None] >> bit[None, None, :]) << 31
            w = tl.reshape((sgn ^ NEG_ONE).to(tl.float32, bitcast=True), (BLOCK_N, BLOCK_K))
        if DOT_F32:
            acc += tl.dot(x.to(tl.float32), tl.trans(w.to(tl.float32)), input_precision="ieee")
        else:
            acc += tl.dot(x, tl.trans(w))
    s = tl.load(s_ptr + rn, mask=n_ok, other=1.0)
    acc = acc * s[None, :]
    if HAS_BIAS:
        b = tl.load(b_ptr + rn, mask=n_ok, other=0.0)
        acc = acc + b.to(tl.float32)[None, :]
    tl.store(o_ptr + rm[:, None] * stride_om + rn[None, :], acc.to(o_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


def _binary_gemv_kernel(
    x_ptr, w_ptr, s_ptr, b_ptr, o_ptr,
    M, N, K,
    stride_xm, stride_om,
    HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """Binary weights for 1–4 rows of x: flip the sign bit of x where the weight is −1 and add, no tensor cores.

    Per weight and row: a shift (the weight bit onto bit 31; the shift amounts are loop-invariant), one LOP3
    ``(~w_shifted & 0x80000000) ^ x_bits`` and one FADD into a per-lane accumulator reduced once after the loop.
    """
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = rm < M
    n_ok = rn < N
    WORDS = (K + 31) // 32
    to_top = 31 - tl.arange(0, 32)  # bit c of a word → bit 31
    acc3 = tl.zeros((BLOCK_M, BLOCK_N, BLOCK_K), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        rk = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(x_ptr + rm[:, None] * stride_xm + rk[None, :], mask=m_ok[:, None] & (rk < K)[None, :], other=0.0)
        xb = x.to(tl.float32).to(tl.int32, bitcast=True)
        rw = k0 // 32 + tl.arange(0, BLOCK_K // 32)
        words = tl.load(w_ptr + rn[:, None] * WORDS + rw[None, :], mask=n_ok[:, None] & (rw < WORDS)[None, :], other=0)
        flip = tl.reshape(((~words)[:, :, None] << to_top[None, None, :]) & -2147483648, (BLOCK_N, BLOCK_K))
        acc3 += (xb[:, None, :] ^ flip[None, :, :]).to(tl.float32, bitcast=True)
    acc = tl.sum(acc3, axis=2)
    s = tl.load(s_ptr + rn, mask=n_ok, other=1.0)
    acc = acc * s[None, :]
    if HAS_BIAS:
        b = tl.load(b_ptr + rn, mask=n_ok, other=0.0)
        acc = acc + b.to(tl.float32)[None, :]
    tl.store(o_ptr + rm[:, None] * stride_om + rn[None, :], acc.to(o_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


GEMV_MAX_M = 4

GEMV = Kernel(
    _binary_gemv_kernel,
    configs=[
        triton.Config({"BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=st)
        for bn, bk, w, st in [(4, 512, 4, 3), (8, 256, 4, 3), (8, 512, 4, 3), (16, 256, 4, 3), (16, 512, 8, 3), (32, 256, 8, 2)]
    ],
    key=["M", "N", "K"],
    interp_meta={"BLOCK_N": 8, "BLOCK_K": 64},
)


def _configs() -> list[triton.Config]:
    return [
        triton.Config({"BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
        for bn, bk, w, s in [
            (16, 256, 4, 3), (32, 256, 4, 3), (32, 512, 4, 3), (64, 128, 4, 3),
            (64, 256, 8, 3), (128, 128, 8, 3), (16, 512, 4, 2), (128, 64, 8, 3), (64, 64, 8, 3),
        ]
    ]


KERNEL = Kernel(
    _binary_linear_kernel, configs=_configs(), key=["M", "N", "K"], interp_meta={"BLOCK_N": 16, "BLOCK_K": 64},
    prune=prune_by_tile,
)


# −1 as a bit pattern: bf16 0xBF80, fp16 0xBC00, fp32 0xBF800000 (as a signed int32)
_NEG_ONE = {torch.bfloat16: 0xBF80, torch.float16: 0xBC00, torch.float32: 0xBF800000 - (1 << 32)}


def run(x, words, scale, bias, out, n: int, k: int) -> torch.Tensor:
    """Launch on ``x``'s device; ``x`` [M, K] unit stride along K, ``out`` [M, N] unit stride along N."""
    from kernels.compressed_linear import block_m

    m = x.shape[0]
    target = out
    if interpreting() and out.dtype != torch.float32:  # the interpreter's fp32→bf16 cast truncates: round in torch
        out = torch.full(out.shape, float("nan"), dtype=torch.float32)

    def grid(meta):
        return (cdiv(n, meta["BLOCK_N"]), cdiv(m, meta["BLOCK_M"]))

    if m <= GEMV_MAX_M:
        GEMV.launch(
            grid, x, words, scale, bias if bias is not None else scale, out, m, n, k, x.stride(0), out.stride(0),
            HAS_BIAS=bias is not None, BLOCK_M=triton.next_power_of_2(m),
        )
        if out is not target:
            target.copy_(out)
        return target
    KERNEL.launch(
        grid, x, words, scale, bias if bias is not None else scale, out, m, n, k, x.stride(0), out.stride(0),
        HAS_BIAS=bias is not None, DOT_F32=interpreting() or x.dtype == torch.float32,
        W16=x.dtype != torch.float32, NEG_ONE=_NEG_ONE[x.dtype],
        BLOCK_M=block_m(m),
    )
    if out is not target:
        target.copy_(out)
    return target
