"""Compressed-weight linear layers and the binary XNOR GEMM: public API over the Triton kernels in ``kernels/``.

>>> import torch
>>> from workbench.kernels import pack, unpack, linear
>>> w = torch.randn(8, 16)
>>> p = pack(w, "fp8_e4m3")
>>> y = linear(torch.randn(2, 16), p, backend="torch")   # "triton" on CUDA, "emulated" = interpreter on CPU
>>> y.shape
torch.Size([2, 8])

Formats: ``"2:4"``, ``"fp8_e4m3"``, ``"2:4+fp8_e4m3"``, ``"binary"``, ``"int8"`` (layouts:
:mod:`workbench.kernels.packing`). CPU tensors take the CPU kernels (:mod:`workbench.kernels.cpu`).
Importing this package imports neither triton nor touches CUDA.
"""

from __future__ import annotations

# packing
from workbench.kernels.packing import FORMATS, LAYOUT_VERSION, TRITON_FORMATS, PackedWeight, dense_bytes, pack, packed_bytes, unpack

# bits
from workbench.kernels.bits import pack_bits, pack_positions, pack_signs, unpack_bits, unpack_positions, unpack_signs

# compute
from workbench.kernels.api import (
    ACTIVATIONS,
    BACKENDS,
    interpreter_mode,
    linear,
    linear_path,
    triton_available,
    xnor_gemm,
    xnor_path,
)
from workbench.kernels.reference import linear_reference, xnor_gemm_reference

# errors
from workbench.errors import DeviceError, DTypeError

__all__ = [
    "FORMATS",
    "TRITON_FORMATS",
    "LAYOUT_VERSION",
    "BACKENDS",
    "ACTIVATIONS",
    "PackedWeight",
    "pack",
    "unpack",
    "dense_bytes",
    "packed_bytes",
    "pack_bits",
    "unpack_bits",
    "pack_signs",
    "unpack_signs",
    "pack_positions",
    "unpack_positions",
    "linear",
    "linear_path",
    "xnor_gemm",
    "xnor_path",
    "triton_available",
    "interpreter_mode",
    "linear_reference",
    "xnor_gemm_reference",
    "DTypeError",
    "DeviceError",
]
