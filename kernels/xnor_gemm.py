"""Triton kernels: binary × binary GEMM, ``out[i, j] = k − 2·popcount(a_i XOR b_j)`` (XNOR-Net, Rastegari et al. 2016).

``a`` ``[M, W]`` and ``b`` ``[N, W]`` hold ±1 rows packed 32 per int32 along K (bit 1 = +1), ``W = ceil(k/32)``.

- ``popcount`` kernel: a ``BLOCK_M × BLOCK_N`` tile, per step ``BLOCK_W`` words of each row; XOR of every pair,
  masked to the ``k`` real bits (the last word's tail mask), popcount, sum. On CUDA popcount is the ``popc.b32``
  instruction (inline PTX); in the interpreter a SWAR bit count. CUDA-core integer work: good for skinny shapes.
- ``mma`` kernel: expands the bits of an ``a`` tile and a ``b`` tile to ±1 int8 (0 past ``k``) in registers and
  multiplies them on the int8 tensor cores (``tl.dot`` → int32): the same exact integers, at tensor-core rate,
  for large square shapes (8192³), where popcount on CUDA cores cannot match a bf16 tensor-core GEMM.
- ``int8`` method: an expansion kernel writes each operand once as ±1 int8 (0 past ``k``) and ``torch._int_mm``
  (cuBLAS int8 tensor cores) multiplies them: the bits are expanded once, not once per output tile as in ``mma``;
  costs ``(M + N)·32·W`` bytes of scratch.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels._runtime import Kernel, cdiv, interpreting


def _xnor_popcount_kernel(
    a_ptr, b_ptr, o_ptr, M, N, W, k, last_mask,
    USE_PTX: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_W: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = rm < M
    n_ok = rn < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    for w0 in range(0, W, BLOCK_W):
        rw = w0 + tl.arange(0, BLOCK_W)
        w_ok = rw < W
        a = tl.load(a_ptr + rm[:, None] * W + rw[None, :], mask=m_ok[:, None] & w_ok[None, :], other=0)
        b = tl.load(b_ptr + rn[:, None] * W + rw[None, :], mask=n_ok[:, None] & w_ok[None, :], other=0)
        keep = tl.where(rw == W - 1, last_mask, -1)
        x = (a[:, None, :] ^ b[None, :, :]) & keep[None, None, :]
        if USE_PTX:
            pc = tl.inline_asm_elementwise("popc.b32 $0, $1;", "=r,r", [x], dtype=tl.int32, is_pure=True, pack=1)
        else:
            u = x.to(tl.uint32, bitcast=True)
            u = u - ((u >> 1) & 0x55555555)
            u = (u & 0x33333333) + ((u >> 2) & 0x33333333)
            u = (u + (u >> 4)) & 0x0F0F0F0F
            u = u + (u >> 8)
            u = u + (u >> 16)
            pc = (u & 0x3F).to(tl.int32)
        acc += tl.sum(pc, axis=2)
    out = k - 2 * acc
    tl.store(o_ptr + rm[:, None] * N + rn[None, :], out, mask=m_ok[:, None] & n_ok[None, :])


def _xnor_mma_kernel(
    a_ptr, b_ptr, o_ptr, M, N, W, k,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_W: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = rm < M
    n_ok = rn < N
    bit = tl.arange(0, 32)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    for w0 in range(0, W, BLOCK_W):
        rw = w0 + tl.arange(0, BLOCK_W)
        w_ok = rw < W
        kk = tl.reshape(rw[:, None] * 32 + bit[None, :], (BLOCK_W * 32,))
        k_ok = (kk < k)[None, :]
        a = tl.load(a_ptr + rm[:, None] * W + rw[None, :], mask=m_ok[:, None] & w_ok[None, :], other=0)
        b = tl.load(b_ptr + rn[:, None] * W + rw[None, :], mask=n_ok[:, None] & w_ok[None, :], other=0)
        a_pm = tl.reshape(((a[:, :, None] >> bit[None, None, :]) & 1) * 2 - 1, (BLOCK_M, BLOCK_W * 32))
        b_pm = tl.reshape(((b[:, :, None] >> bit[None, None, :]) & 1) * 2 - 1, (BLOCK_N, BLOCK_W * 32))
        a8 = tl.where(k_ok, a_pm, 0).to(tl.int8)
        b8 = tl.where(k_ok, b_pm, 0).to(tl.int8)
        acc += tl.dot(a8, tl.trans(b8), out_dtype=tl.int32)
    tl.store(o_ptr + rm[:, None] * N + rn[None, :], acc, mask=m_ok[:, None] & n_ok[None, :])


def _expand_signs_kernel(w_ptr, o_ptr, R, W, k, BLOCK_R: tl.constexpr, BLOCK_W: tl.constexpr):
    """±1 int8 ``[R, 32·W]`` from sign words ``[R, W]`` (bit 1 = +1), 0 at and past column ``k``."""
    rr = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    rw = tl.program_id(1) * BLOCK_W + tl.arange(0, BLOCK_W)
    bit = tl.arange(0, 32)
    ok = (rr < R)[:, None] & (rw < W)[None, :]
    words = tl.load(w_ptr + rr[:, None] * W + rw[None, :], mask=ok, other=0)
    pm = ((words[:, :, None] >> bit[None, None, :]) & 1) * 2 - 1
    col = rw[None, :, None] * 32 + bit[None, None, :]
    val = tl.where(col < k, pm, 0).to(tl.int8)
    dst = o_ptr + rr[:, None, None] * (W * 32) + col
    tl.store(dst, val, mask=ok[:, :, None])


EXPAND = Kernel(
    _expand_signs_kernel,
    configs=[triton.Config({"BLOCK_R": 32, "BLOCK_W": 8}, num_warps=4), triton.Config({"BLOCK_R": 64, "BLOCK_W": 16}, num_warps=8)],
    key=["W"],
    interp_meta={"BLOCK_R": 8, "BLOCK_W": 2},
)


POPCOUNT = Kernel(
    _xnor_popcount_kernel,
    configs=[
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_W": bw}, num_warps=w, num_stages=s)
        for bm, bn, bw, w, s in [(16, 64, 8, 4, 2), (32, 32, 8, 4, 2), (64, 64, 4, 8, 2), (16, 128, 4, 4, 2), (8, 128, 8, 4, 2)]
    ],
    key=["M", "N", "W"],
    interp_meta={"BLOCK_M": 8, "BLOCK_N": 8, "BLOCK_W": 2},
)

MMA = Kernel(
    _xnor_mma_kernel,
    configs=[
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_W": bw}, num_warps=w, num_stages=s)
        for bm, bn, bw, w, s in [(128, 128, 2, 8, 3), (128, 256, 2, 8, 3), (256, 128, 2, 8, 3), (128, 128, 4, 8, 3), (64, 128, 4, 4, 4)]
    ],
    key=["M", "N", "W"],
    interp_meta={"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_W": 1},
)


def expand_signs(words: torch.Tensor, k: int) -> torch.Tensor:
    """±1 int8 ``[R, 32·W]`` (0 past ``k``) from int32 sign words ``[R, W]``, by the expansion kernel."""
    r, w = words.shape
    out = torch.empty(r, w * 32, dtype=torch.int8, device=words.device)
    EXPAND.launch(lambda meta: (cdiv(r, meta["BLOCK_R"]), cdiv(w, meta["BLOCK_W"])), words, out, r, w, k)
    return out


def run(a: torch.Tensor, b: torch.Tensor, k: int, last_mask: int, out: torch.Tensor, method: str) -> torch.Tensor:
    """Launch ``method`` ("popcount", "mma" or "int8") on ``a``'s device; fills every element of ``out`` [M, N] int32.

    ``int8``: expand both operands once to ±1 int8 in memory (0 past k) and multiply with ``torch._int_mm``
    (cuBLAS int8 tensor-core GEMM, int32 out): each bit is expanded once instead of once per output tile."""
    m, w = a.shape
    n = b.shape[0]

    def grid(meta):
        return (cdiv(n, meta["BLOCK_N"]), cdiv(m, meta["BLOCK_M"]))

    if method == "int8":
        out.copy_(torch._int_mm(expand_signs(a, k), expand_signs(b, k).t()))
    elif method == "mma":
        MMA.launch(grid, a, b, out, m, n, w, k)
    else:
        POPCOUNT.launch(grid, a, b, out, m, n, w, k, last_mask, USE_PTX=not interpreting())
    return out
