"""Storage size under formats: bits per weight and the bytes a model needs as it stands.

Bits per weight of a format on a weight stored in ``dtype_bits`` (32 for float32): the number format's bits
(8 for FP8/int8, B for intB, 1 for binary; ``dtype_bits`` for none), times the density N/M of a sparsity pattern,
plus ⌈log2 M⌉ index bits per kept value (2 bits for 2:4, as the sparse tensor cores' metadata); an unstructured
pattern keeping the fraction d stores d · value bits plus a 1-bit-per-weight bitmap. Per-channel scales
add one float32 per output channel; :func:`model_size_bytes` counts them, and every other parameter and buffer at
its own dtype.
"""

from __future__ import annotations

import math

from torch import nn
from torch.nn.utils import parametrize

from workbench.formats.api import _format_param, eligible_layers, original_weight
from workbench.formats.spec import Format, parse_format


def bits_per_weight(fmt: "str | Format", dtype_bits: int = 32) -> float:
    """Average storage bits per weight (scales excluded).

    >>> bits_per_weight("2:4"), bits_per_weight("fp8_e4m3"), bits_per_weight("2:4+fp8_e4m3", 16)
    (17.0, 8.0, 5.0)
    """
    f = parse_format(fmt)
    value_bits = f.number.bits if f.number is not None else dtype_bits
    if f.sparsity is None:
        return float(value_bits)
    if f.sparsity.kind == "unstructured":
        return f.sparsity.density * value_bits + 1.0
    if f.sparsity.kind == "block":  # one bit per block says whether it is kept
        bh, bw = f.sparsity.block
        return f.sparsity.density * value_bits + 1.0 / (bh * bw)
    index_bits = math.ceil(math.log2(f.sparsity.m)) if f.sparsity.m > 1 else 0
    return f.sparsity.density * (value_bits + index_bits)


def format_size_bits(numel: int, fmt: "str | Format", dtype_bits: int = 32, scale_numel: int = 0) -> int:
    """Bits to store ``numel`` weights stored in ``dtype_bits`` under ``fmt``, plus ``scale_numel`` float32 scales
    (one per output channel for a per-channel number format).

    >>> format_size_bits(4096, "int8", 16, scale_numel=64)
    34816
    """
    bits = math.ceil(numel * bits_per_weight(fmt, dtype_bits))
    return bits + scale_numel * 32


def layer_size_bits(module: nn.Module) -> int:
    """Bits to store one eligible layer's weight under its current format (per-channel scales included), counted
    on the layer's :func:`~workbench.formats.original_weight`."""
    p = _format_param(module)
    w = original_weight(module)
    dtype_bits = w.element_size() * 8
    if p is None:
        return w.numel() * dtype_bits
    return format_size_bits(w.numel(), p.fmt, dtype_bits, p.scale.numel() if p.scale is not None else 0)


def model_size_bytes(model: nn.Module) -> int:
    """Bytes to store the model: eligible weights under their formats, everything else at its dtype."""
    layers = eligible_layers(model)
    bits = sum(layer_size_bits(m) for m in layers.values())
    counted = set()
    for mod in layers.values():
        p = _format_param(mod)
        if parametrize.is_parametrized(mod, "weight"):  # the stored tensors behind the weight
            plist = mod.parametrizations["weight"]
            counted.update(id(getattr(plist, k)) for k, _ in plist.named_parameters(recurse=False))
            counted.update(id(getattr(plist, k)) for k, _ in plist.named_buffers(recurse=False))
        else:
            counted.add(id(mod.weight))
        if p is not None:  # masks and scales: scales are counted in layer_size_bits, masks are the index bits
            counted.update(id(b) for b in p.buffers())
    for t in [*model.parameters(), *model.buffers()]:
        if id(t) not in counted:
            bits += t.numel() * t.element_size() * 8
    return math.ceil(bits / 8)


__all__ = ["bits_per_weight", "format_size_bits", "layer_size_bits", "model_size_bytes"]
