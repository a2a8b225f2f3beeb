"""Plain-torch references for the kernels: what each Triton kernel must compute.

- ``linear_reference(x, packed, bias)``: ``x @ unpack(packed).T + bias``, accumulated in float32 and rounded once to
  ``x``'s dtype, the same contract as the kernels (fp32 accumulation, one rounding at the end).
- ``xnor_gemm_reference(a_bits, b_bits, k)``: for ±1 rows packed 32 per int32 along K,
  ``out[i, j] = k − 2·popcount(a_i XOR b_j)`` over the ``k`` real bits (XNOR-Net, Rastegari et al. 2016), by bit
  counting, independent of any matrix product (the tests compare it with the ±1 float product).
"""

from __future__ import annotations

import torch

from workbench.kernels.bits import popcount32, tail_mask, words_for
from workbench.kernels.packing import PackedWeight, unpack


def linear_reference(x: torch.Tensor, packed: PackedWeight, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ unpack(packed).T (+ bias)`` with float32 accumulation, returned in ``x.dtype``."""
    w = unpack(packed).to(torch.float32)
    acc_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    out = x.to(acc_dtype) @ w.to(acc_dtype).T
    if bias is not None:
        out = out + bias.to(acc_dtype)
    return out.to(x.dtype)


def xnor_gemm_reference(a_bits: torch.Tensor, b_bits: torch.Tensor, k: int, chunk: int = 64) -> torch.Tensor:
    """``k − 2·popcount(a XOR b)`` for every row pair: int32 ``[a_rows, b_rows]``."""
    n_words = words_for(k)
    mask = torch.full((n_words,), -1, dtype=torch.int32, device=a_bits.device)
    mask[-1] = tail_mask(k)
    out = torch.empty(a_bits.shape[0], b_bits.shape[0], dtype=torch.int32, device=a_bits.device)
    for i in range(0, a_bits.shape[0], chunk):
        x = (a_bits[i : i + chunk, None, :] ^ b_bits[None, :, :]) & mask
        out[i : i + chunk] = (k - 2 * popcount32(x).sum(-1)).to(torch.int32)
    return out


__all__ = ["linear_reference", "xnor_gemm_reference"]
