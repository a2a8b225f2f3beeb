"""Triton kernels for compressed-weight linear layers and the binary XNOR GEMM.

Modules (each imports triton at its top, so import them only when a kernel is to run):

- ``kernels.compressed_linear``: ``y = x · Wᵀ`` for 2:4 (bf16/fp16/fp32 values + 2-bit positions), FP8 E4M3 with a
  per-row scale, and 2:4+FP8; decompression in registers, fp32 accumulation.
- ``kernels.binary_linear``: ``y = x · (scale ⊙ sign(W))ᵀ`` with 32 signs per int32.
- ``kernels.xnor_gemm``: ``k − 2·popcount(a XOR b)`` for ±1 × ±1 (a popcount kernel and an int8 tensor-core one).

The public API is :mod:`workbench.kernels` (``pack``, ``linear``, ``xnor_gemm``); the layouts are documented in
``workbench.kernels.packing`` and ``docs/kernels.md``. Importing this package does not import triton.
"""

from __future__ import annotations

import importlib
from types import ModuleType

KERNEL_MODULES: tuple[str, ...] = ("compressed_linear", "binary_linear", "xnor_gemm")


def load(name: str) -> ModuleType:
    """Import ``kernels.<name>`` (this imports triton)."""
    if name not in KERNEL_MODULES:
        raise KeyError(f"no kernel module {name!r}; known: {', '.join(KERNEL_MODULES)}")
    return importlib.import_module(f"kernels.{name}")


__all__ = ["KERNEL_MODULES", "load"]
