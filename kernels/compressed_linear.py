"""Triton kernel: ``out = x · Wᵀ (+ bias)`` with W stored as 2:4, FP8 E4M3 (per-row scale) or 2:4 + FP8.

Design for the memory-bound regime (batch 1–64, Mishra et al. 2021 for 2:4; Micikevicius et al. 2022 for FP8):
each program owns ``BLOCK_N`` output features and ``BLOCK_M`` rows of ``x`` and walks K in ``BLOCK_K`` steps. Every
compressed byte of W is loaded once per M-block; the dense ``[BLOCK_N, BLOCK_K]`` tile is rebuilt in registers and
fed to ``tl.dot`` with fp32 accumulation. The per-row FP8 scale multiplies the accumulator once at the end. With FP8 weights and
bf16 activations the dot runs in fp16 (x converted once per call), because e4m3 → fp16 is a single packed
conversion on sm_89+ while e4m3 → bf16 costs three times as many conversion instructions.

2:4 decompression (layout in ``workbench.kernels.packing``): the ``BLOCK_K/2`` kept values of a row tile are split
into the first and second kept value of each group (``v0``, ``v1``); the group's 4 position bits come from word
``g // 8`` at bit ``4·(g % 8)``; dense column ``p`` of a group is ``v0`` if ``p0 == p``, ``v1`` if ``p1 == p``, else 0 (the layout guarantees
``p0 < p1``, so columns 0 and 3 need one test each);
the four columns are interleaved back with ``tl.join`` + ``tl.reshape``. Position words are loaded once per tile
(``BLOCK_K / 32`` per row) and split into 4-bit group codes by shifts. ``BLOCK_K`` is a multiple of 32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels._runtime import Kernel, cdiv, interpreting, prune_by_tile


def _compressed_linear_kernel(
    x_ptr, v_ptr, p_ptr, s_ptr, b_ptr, o_ptr,
    M, N, K,
    stride_xm, stride_om,
    SPARSE: tl.constexpr, SCALED: tl.constexpr, HAS_BIAS: tl.constexpr, DOT_F32: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = rm < M
    n_ok = rn < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    KH = K // 2  # kept values per row (2:4)
    WORDS = (K + 31) // 32  # position words per row (2:4)
    for k0 in range(0, K, BLOCK_K):
        rk = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(x_ptr + rm[:, None] * stride_xm + rk[None, :], mask=m_ok[:, None] & (rk < K)[None, :], other=0.0)
        if SPARSE:
            rj = k0 // 2 + tl.arange(0, BLOCK_K // 2)
            v = tl.load(v_ptr + rn[:, None] * KH + rj[None, :], mask=n_ok[:, None] & (rj < KH)[None, :], other=0.0)
            v = v.to(tl.float32) if DOT_F32 else v.to(x.dtype)
            v0, v1 = tl.split(tl.reshape(v, (BLOCK_N, BLOCK_K // 4, 2)))
            rw = k0 // 32 + tl.arange(0, BLOCK_K // 32)  # position words: 8 groups of 4 bits each
            words = tl.load(p_ptr + rn[:, None] * WORDS + rw[None, :], mask=n_ok[:, None] & (rw < WORDS)[None, :], other=0)
            nib = tl.reshape((words[:, :, None] >> (tl.arange(0, 8) * 4)[None, None, :]) & 15, (BLOCK_N, BLOCK_K // 4))
            p0 = nib & 3
            p1 = nib >> 2
            zero = tl.zeros_like(v0)
            # the layout keeps p0 < p1, so column 0 can only be v0 and column 3 only v1
            d0 = tl.where(p0 == 0, v0, zero)
            d1 = tl.where(p0 == 1, v0, tl.where(p1 == 1, v1, zero))
            d2 = tl.where(p0 == 2, v0, tl.where(p1 == 2, v1, zero))
            d3 = tl.where(p1 == 3, v1, zero)
            w = tl.reshape(tl.join(tl.join(d0, d2), tl.join(d1, d3)), (BLOCK_N, BLOCK_K))
        else:
            w = tl.load(v_ptr + rn[:, None] * K + rk[None, :], mask=n_ok[:, None] & (rk < K)[None, :], other=0.0)
            w = w.to(tl.float32) if DOT_F32 else w.to(x.dtype)
        if DOT_F32:
            acc += tl.dot(x.to(tl.float32), tl.trans(w), input_precision="ieee")
        else:
            acc += tl.dot(x, tl.trans(w))
    if SCALED:
        s = tl.load(s_ptr + rn, mask=n_ok, other=1.0)
        acc = acc * s[None, :]
    if HAS_BIAS:
        b = tl.load(b_ptr + rn, mask=n_ok, other=0.0)
        acc = acc + b.to(tl.float32)[None, :]
    tl.store(o_ptr + rm[:, None] * stride_om + rn[None, :], acc.to(o_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


def _sparse_gemv_kernel(
    x_ptr, v_ptr, p_ptr, s_ptr, b_ptr, o_ptr,
    M, N, K,
    stride_xm, stride_om,
    SCALED: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_J: tl.constexpr,
):
    """2:4 (and 2:4+FP8) for 1–4 rows of x: gather x by the 2-bit positions instead of rebuilding W.

    Per kept weight: its input column ``4·(j // 2) + p_j`` indexes x (an L1-resident gather), one fp32 FMA per row
    of x. No tile rebuild, no tensor cores: about 3× fewer instructions a weight than the tl.dot kernel at batch 1
    (sm_90 SASS), which would otherwise make 2:4 ALU-bound above its bandwidth floor.
    """
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = rm < M
    n_ok = rn < N
    KH = K // 2
    WORDS = (K + 31) // 32
    acc3 = tl.zeros((BLOCK_M, BLOCK_N, BLOCK_J), dtype=tl.float32)  # reduced once after the loop: no shuffles inside
    for j0 in range(0, KH, BLOCK_J):
        rj = j0 + tl.arange(0, BLOCK_J)
        j_ok = n_ok[:, None] & (rj < KH)[None, :]
        v = tl.load(v_ptr + rn[:, None] * KH + rj[None, :], mask=j_ok, other=0.0).to(tl.float32)
        rw = j0 // 16 + tl.arange(0, BLOCK_J // 16)
        words = tl.load(p_ptr + rn[:, None] * WORDS + rw[None, :], mask=n_ok[:, None] & (rw < WORDS)[None, :], other=0)
        pos = tl.reshape((words[:, :, None] >> (tl.arange(0, 16) * 2)[None, None, :]) & 3, (BLOCK_N, BLOCK_J))
        col = (rj // 2 * 4)[None, :] + pos
        xg = tl.load(
            x_ptr + rm[:, None, None] * stride_xm + col[None, :, :], mask=m_ok[:, None, None] & j_ok[None, :, :], other=0.0
        ).to(tl.float32)
        acc3 += xg * v[None, :, :]
    acc = tl.sum(acc3, axis=2)
    if SCALED:
        s = tl.load(s_ptr + rn, mask=n_ok, other=1.0)
        acc = acc * s[None, :]
    if HAS_BIAS:
        b = tl.load(b_ptr + rn, mask=n_ok, other=0.0)
        acc = acc + b.to(tl.float32)[None, :]
    tl.store(o_ptr + rm[:, None] * stride_om + rn[None, :], acc.to(o_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


GEMV_MAX_M = 4  # rows of x up to which 2:4 formats take the gather kernel

GEMV = Kernel(
    _sparse_gemv_kernel,
    configs=[
        triton.Config({"BLOCK_N": bn, "BLOCK_J": bj}, num_warps=w, num_stages=st)
        for bn, bj, w, st in [(4, 256, 2, 3), (8, 128, 2, 3), (8, 256, 4, 3), (16, 128, 4, 3), (16, 256, 4, 2), (32, 64, 4, 3)]
    ],
    key=["M", "N", "K", "SCALED"],
    interp_meta={"BLOCK_N": 8, "BLOCK_J": 32},
)


def _configs() -> list[triton.Config]:
    out = []
    for bn, bk, warps, stages in [
        (16, 256, 4, 3), (16, 128, 2, 4), (32, 128, 4, 4), (32, 256, 4, 3),
        (64, 64, 4, 4), (64, 128, 4, 3), (64, 256, 8, 3), (128, 64, 8, 3), (128, 128, 8, 3),
        (16, 512, 4, 3), (32, 512, 8, 3), (64, 64, 8, 3),
    ]:
        out.append(triton.Config({"BLOCK_N": bn, "BLOCK_K": bk}, num_warps=warps, num_stages=stages))
    return out


KERNEL = Kernel(
    _compressed_linear_kernel,
    configs=_configs(),
    key=["M", "N", "K", "SPARSE", "SCALED"],
    interp_meta={"BLOCK_N": 16, "BLOCK_K": 32},
    prune=prune_by_tile,
)


def block_m(m: int) -> int:
    """Rows of x per program: the next power of two >= m between 16 (tl.dot's minimum) and 64; 128 beyond 64."""
    if m > 64:
        return 128
    return max(16, triton.next_power_of_2(m))


def run(
    x: torch.Tensor,
    values: torch.Tensor,
    positions: torch.Tensor | None,
    scale: torch.Tensor | None,
    bias: torch.Tensor | None,
    out: torch.Tensor,
    n: int,
    k: int,
) -> torch.Tensor:
    """Launch on ``x``'s device. ``x`` [M, K] with unit stride along K; ``out`` [M, N] with unit stride along N.

    Every element of ``out`` is written (the tests fill it with NaN first)."""
    m = x.shape[0]
    target = out
    if interpreting() and out.dtype != torch.float32:  # the interpreter's fp32→bf16 cast truncates: round in torch
        out = torch.full(out.shape, float("nan"), dtype=torch.float32)
    sparse = positions is not None
    dummy = values  # never read when the matching flag is off
    if sparse and m <= GEMV_MAX_M:
        bm = triton.next_power_of_2(m)
        GEMV.launch(
            lambda meta: (cdiv(n, meta["BLOCK_N"]), cdiv(m, meta["BLOCK_M"])),
            x, values, positions, scale if scale is not None else dummy, bias if bias is not None else dummy, out,
            m, n, k, x.stride(0), out.stride(0),
            SCALED=scale is not None, HAS_BIAS=bias is not None, BLOCK_M=bm,
        )
        if out is not target:
            target.copy_(out)
        return target
    bm = block_m(m)
    if values.dtype == torch.float8_e4m3fn and x.dtype == torch.bfloat16:
        # e4m3 → fp16 is one packed cvt per 2 values on sm_89+; e4m3 → bf16 adds a scalar cvt per value (ptxas
        # listing: 1.5 vs 0.5 conversions a weight), which would cap the FP8 GEMV below the bandwidth floor. So the
        # dot runs in fp16: x is rounded bf16 → fp16 once here (exact for 2^-14 <= |x| <= 65504; fp16 has more
        # mantissa bits), accumulation stays fp32 and the output bf16.
        x = x.to(torch.float16)

    def grid(meta):
        return (cdiv(n, meta["BLOCK_N"]), cdiv(m, meta["BLOCK_M"]))

    KERNEL.launch(
        grid,
        x, values, positions if sparse else dummy, scale if scale is not None else dummy,
        bias if bias is not None else dummy, out,
        m, n, k, x.stride(0), out.stride(0),
        SPARSE=sparse, SCALED=scale is not None, HAS_BIAS=bias is not None,
        DOT_F32=interpreting() or x.dtype == torch.float32, BLOCK_M=bm,
    )
    if out is not target:
        target.copy_(out)
    return target
