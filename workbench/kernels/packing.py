"""Compressed weight layouts for the kernels: ``pack(weight, fmt)`` and its exact inverse ``unpack(packed)``.

A weight is 2-D, ``[out_features, in_features]`` (``nn.Linear.weight``). Layouts, per output row:

``"2:4"`` (Mishra et al. 2021): in every group of 4 consecutive inputs keep the 2 of largest magnitude (ties to the
    lower index: ``workbench.formats.masks.nm_mask``, the rule the ``"2:4"`` format uses). ``values`` is
    ``[out, in/2]`` in the weight's dtype, the two kept values of group ``g`` at ``2g`` and ``2g+1`` in increasing
    input order; ``positions`` is ``[out, ceil(in/32)]`` int32 holding the 2-bit position (0..3) of kept value ``j``
    in word ``j // 16`` at bits ``2·(j % 16)``. So group ``g`` is the 4 bits at ``4·(g % 8)`` of word ``g // 8``.
    Needs ``in % 4 == 0``. Bytes: in/2 values + in/4 bytes of positions, 0.5625 of bf16.
    (This is our own layout, not NVIDIA's sparse-tensor-core metadata.)
``"fp8_e4m3"`` (Micikevicius et al. 2022): ``values`` ``[out, in]`` float8_e4m3fn and ``scale`` ``[out]`` float32
    with ``scale = amax(|row|) / 448`` (1 for an all-zero row); ``q = cast(w / scale)`` by torch (round to nearest
    even, saturating). Dequantized: ``q · scale``. Any ``in``.
``"2:4+fp8_e4m3"``: the 2:4 layout whose kept values are e4m3 codes, scaled per row after masking (the row's amax
    is always kept, so the scale equals the dense row's). 0.28 of bf16 bytes (+4 bytes a row).
``"int8"`` (weight-only int8, as torch's ``_weight_int8pack_mm`` takes it): ``values`` ``[out, in]`` int8 and ``scale``
    ``[out]`` float32 with ``scale = amax(|row|) / 127`` (1 for an all-zero row); ``q = clamp(round(w / scale), ±127)``
    (round half to even). Dequantized: ``q · scale``. Any ``in``. Runs on the CPU paths and the torch reference (no
    Triton kernel).
``"binary"`` (Hubara/Courbariaux et al. 2016; XNOR-Net scale): ``values`` ``[out, ceil(in/32)]`` int32 sign bits
    (bit ``c % 32`` of word ``c // 32``, 1 = +1, ``sign(0) = +1``, padding bits 0) and ``scale = mean(|row|)``
    (1 for an all-zero row). Dequantized: ``±scale``. Any ``in``; the kernel masks the padding.

``unpack(pack(w, fmt))`` equals ``workbench.formats.quantize(w, fmt, granularity="channel")`` bit for bit (the
format's fake-quantized weight), in the weight's dtype.

>>> w = torch.tensor([[1.0, -4.0, 3.0, 2.0, 0.5, 0.0, -0.25, 8.0]])
>>> p = pack(w, "2:4")
>>> p.values.tolist(), p.positions.tolist()
([[-4.0, 3.0, 0.5, 8.0]], [[201]])
>>> unpack(p).tolist()
[[0.0, -4.0, 3.0, 0.0, 0.5, 0.0, 0.0, 8.0]]
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from workbench.errors import DeviceError, DTypeError, FormatError, ShapeError
from workbench.kernels.bits import pack_positions, pack_signs, unpack_positions, unpack_signs, words_for

FORMATS: tuple[str, ...] = ("2:4", "fp8_e4m3", "2:4+fp8_e4m3", "binary", "int8")
TRITON_FORMATS: tuple[str, ...] = ("2:4", "fp8_e4m3", "2:4+fp8_e4m3", "binary")  # the GPU kernels in kernels/
LAYOUT_VERSION = 1  # bump when any layout below changes
INT8_MAX = 127.0
WEIGHT_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.bfloat16, torch.float16)
FP8_MAX = 448.0


@dataclass
class PackedWeight:
    """A weight in one of :data:`FORMATS`, as the kernels read it. Build with :func:`pack`.

    ``values``: kept values (2:4: weight dtype; fp8 formats: float8_e4m3fn; binary: int32 sign words).
    ``positions``: 2:4 position words (int32) or None. ``scale``: per-output-row float32 or None.
    ``shape``: the dense ``(out_features, in_features)``; ``dtype``: the dense weight's dtype (what unpack returns).
    ``layout``: the :data:`LAYOUT_VERSION` it was packed under (another version is refused).
    """

    fmt: str
    shape: tuple[int, int]
    dtype: torch.dtype
    values: torch.Tensor
    positions: torch.Tensor | None = None
    scale: torch.Tensor | None = None
    layout: int = LAYOUT_VERSION
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def out_features(self) -> int:
        return self.shape[0]

    @property
    def in_features(self) -> int:
        return self.shape[1]

    @property
    def device(self) -> torch.device:
        return self.values.device

    @property
    def sparse(self) -> bool:
        return self.fmt.startswith("2:4")

    def tensors(self) -> dict[str, torch.Tensor]:
        """The stored tensors by name (the bytes a kernel reads)."""
        out = {"values": self.values}
        if self.positions is not None:
            out["positions"] = self.positions
        if self.scale is not None:
            out["scale"] = self.scale
        return out

    @property
    def nbytes(self) -> int:
        """Bytes of all stored tensors."""
        return sum(t.numel() * t.element_size() for t in self.tensors().values())

    def to(self, device: torch.device | str) -> "PackedWeight":
        """A copy on ``device`` (the layout is the same everywhere)."""
        moved = {k: v.to(device) for k, v in self.tensors().items()}
        return replace(self, _cache={}, **moved)

    def __repr__(self) -> str:
        return (
            f"PackedWeight(fmt={self.fmt!r}, shape={self.shape}, dtype={self.dtype}, device={self.device}, "
            f"nbytes={self.nbytes})"
        )


def _check_weight(weight: torch.Tensor, fmt: str) -> None:
    if not isinstance(weight, torch.Tensor):
        raise DTypeError(f"pack({fmt!r}) expects a torch.Tensor weight, got {type(weight).__name__}")
    if fmt not in FORMATS:
        raise FormatError(f"the kernels take formats {', '.join(map(repr, FORMATS))}; got {fmt!r}")
    if weight.dim() != 2:
        raise ShapeError(f"pack({fmt!r}) expects a 2-D weight [out_features, in_features], got shape {tuple(weight.shape)}")
    if weight.dtype not in WEIGHT_DTYPES:
        raise DTypeError(
            f"pack({fmt!r}) takes float32, bfloat16 or float16 weights, got {weight.dtype} of shape {tuple(weight.shape)}"
        )
    if fmt.startswith("2:4") and weight.shape[1] % 4:
        raise ShapeError(
            f"pack({fmt!r}): in_features must be a multiple of 4 (groups of 4 inputs), got weight shape {tuple(weight.shape)}"
        )
    if weight.numel() == 0:
        raise ShapeError(f"pack({fmt!r}): empty weight of shape {tuple(weight.shape)}")
    if not torch.isfinite(weight).all():
        from workbench.errors import NonFiniteError

        raise NonFiniteError(f"pack({fmt!r}): weight of shape {tuple(weight.shape)} contains NaN or inf")


def _row_scale(wf: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-row float32 scale: amax/448 (fp8), amax/127 (int8) or mean|w| (binary); 1 for an all-zero row."""
    if kind == "binary":
        s = wf.abs().mean(dim=1)
    else:
        s = wf.abs().amax(dim=1) / (FP8_MAX if kind == "fp8" else INT8_MAX)
    return torch.where(s > 0, s, torch.ones_like(s))


def _select_24(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Kept values ``[out, in/2]`` (input order within each group) and their positions 0..3 ``[out, in/2]``."""
    from workbench.formats.masks import nm_mask

    out, k = weight.shape
    mask = nm_mask(weight, 2, 4).reshape(out, k // 4, 4)
    # positions of the two kept entries, increasing: sort the kept flags' indices
    idx = torch.arange(4, device=weight.device).expand_as(mask)
    keyed = torch.where(mask, idx, idx + 4)  # kept first, in index order
    pos = keyed.sort(dim=-1).values[..., :2]
    vals = torch.gather(weight.reshape(out, k // 4, 4), -1, pos)
    return vals.reshape(out, k // 2), pos.reshape(out, k // 2)


def pack(weight: torch.Tensor, fmt: str) -> PackedWeight:
    """Compress a 2-D weight into ``fmt`` (one of :data:`FORMATS`), on the weight's device.

    >>> p = pack(torch.tensor([[0.5, -1.0, 0.0, 2.0]]), "binary")
    >>> p.values.tolist(), p.scale.tolist()
    ([[13]], [0.875])
    """
    _check_weight(weight, fmt)
    w = weight.detach()
    shape = (int(w.shape[0]), int(w.shape[1]))
    if fmt == "binary":
        wf = w.float()
        return PackedWeight(fmt, shape, w.dtype, pack_signs(wf).contiguous(), None, _row_scale(wf, "binary").contiguous())
    if fmt == "int8":
        wf = w.float()
        scale = _row_scale(wf, "int8")
        q = torch.clamp(torch.round(wf / scale[:, None]), -INT8_MAX, INT8_MAX).to(torch.int8)
        return PackedWeight(fmt, shape, w.dtype, q.contiguous(), None, scale.contiguous())
    if fmt == "fp8_e4m3":
        wf = w.float()
        scale = _row_scale(wf, "fp8")
        q = (wf / scale[:, None]).to(torch.float8_e4m3fn)
        return PackedWeight(fmt, shape, w.dtype, q.contiguous(), None, scale.contiguous())
    vals, pos = _select_24(w)
    positions = pack_positions(pos).contiguous()
    if fmt == "2:4":
        return PackedWeight(fmt, shape, w.dtype, vals.contiguous(), positions, None)
    vf = vals.float()
    scale = _row_scale(vf, "fp8")
    q = (vf / scale[:, None]).to(torch.float8_e4m3fn)
    return PackedWeight(fmt, shape, w.dtype, q.contiguous(), positions, scale.contiguous())


def check_packed(packed: Any, where: str = "linear") -> PackedWeight:
    """Raise unless ``packed`` is a well-formed :class:`PackedWeight`; return it."""
    if not isinstance(packed, PackedWeight):
        raise FormatError(
            f"{where} expects a PackedWeight from workbench.kernels.pack(weight, fmt), got {type(packed).__name__}"
        )
    layout = vars(packed).get("layout")  # the instance's own field: a pickle from before versions has none
    if layout != LAYOUT_VERSION:
        raise FormatError(
            f"{where}: packed weight {packed.shape} {packed.fmt!r} has layout version {layout!r}, this workbench reads "
            f"layout version {LAYOUT_VERSION} only; re-pack the original weight with workbench.kernels.pack(weight, fmt)"
        )
    out, k = packed.shape
    fmt = packed.fmt
    if fmt not in FORMATS:
        raise FormatError(f"{where}: packed weight has unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    expect: dict[str, tuple[tuple[int, ...], torch.dtype | None]] = {}
    if fmt == "binary":
        expect["values"] = ((out, words_for(k)), torch.int32)
        expect["scale"] = ((out,), torch.float32)
    elif fmt == "fp8_e4m3":
        expect["values"] = ((out, k), torch.float8_e4m3fn)
        expect["scale"] = ((out,), torch.float32)
    elif fmt == "int8":
        expect["values"] = ((out, k), torch.int8)
        expect["scale"] = ((out,), torch.float32)
    else:
        expect["values"] = ((out, k // 2), torch.float8_e4m3fn if fmt == "2:4+fp8_e4m3" else packed.dtype)
        expect["positions"] = ((out, words_for(k, 32)), torch.int32)
        if fmt == "2:4+fp8_e4m3":
            expect["scale"] = ((out,), torch.float32)
    tensors = packed.tensors()
    for name, (shape, dtype) in expect.items():
        t = tensors.get(name)
        if t is None:
            raise FormatError(f"{where}: {fmt!r} packed weight {packed.shape} lacks its {name} tensor")
        if tuple(t.shape) != shape or t.dtype != dtype:
            raise FormatError(
                f"{where}: {fmt!r} packed weight {packed.shape} has {name} {tuple(t.shape)} {t.dtype}, "
                f"expected {shape} {dtype} (was it packed for another format?)"
            )
        if t.device != packed.values.device:
            raise DeviceError(f"{where}: {fmt!r} packed weight {packed.shape} has tensors on different devices")
    extra = set(tensors) - set(expect)
    if extra:
        raise FormatError(f"{where}: {fmt!r} packed weight {packed.shape} carries {sorted(extra)}, which {fmt!r} has not")
    return packed


def unpack(packed: PackedWeight) -> torch.Tensor:
    """The dense fake-quantized weight ``[out, in]`` in the original dtype, on the packed weight's device."""
    check_packed(packed, "unpack")
    out, k = packed.shape
    if packed.fmt == "binary":
        signs = unpack_signs(packed.values, k, torch.float32)
        return (signs * packed.scale[:, None]).to(packed.dtype)
    if packed.fmt in ("fp8_e4m3", "int8"):
        return (packed.values.float() * packed.scale[:, None]).to(packed.dtype)
    vals = packed.values
    if packed.fmt == "2:4+fp8_e4m3":
        vals = (vals.float() * packed.scale[:, None]).to(packed.dtype)
    pos = unpack_positions(packed.positions, k // 2).reshape(out, k // 4, 2)
    dense = torch.zeros(out, k // 4, 4, dtype=packed.dtype, device=packed.device)
    dense.scatter_(-1, pos, vals.reshape(out, k // 4, 2))
    return dense.reshape(out, k)


def dense_bytes(shape: tuple[int, int], dtype_bytes: int = 2) -> int:
    """Bytes of the dense weight (bf16 by default), the baseline the compressed formats are compared to."""
    return int(shape[0]) * int(shape[1]) * dtype_bytes


def packed_bytes(fmt: str, shape: tuple[int, int], value_bytes: int = 2) -> int:
    """Bytes a kernel must read for a weight of ``shape`` in ``fmt`` (values + positions + scales), without packing."""
    out, k = int(shape[0]), int(shape[1])
    if fmt == "dense":
        return out * k * value_bytes
    if fmt in ("fp8_e4m3", "int8"):
        return out * k + 4 * out
    if fmt == "binary":
        return out * words_for(k) * 4 + 4 * out
    if fmt in ("2:4", "2:4+fp8_e4m3"):
        vb = 1 if fmt.endswith("fp8_e4m3") else value_bytes
        return out * (k // 2) * vb + out * words_for(k) * 4 + (4 * out if fmt.endswith("fp8_e4m3") else 0)
    raise FormatError(f"unknown kernel format {fmt!r}; known: dense, {', '.join(FORMATS)}")


__all__ = ["FORMATS", "TRITON_FORMATS", "LAYOUT_VERSION", "PackedWeight", "pack", "unpack", "check_packed", "dense_bytes", "packed_bytes"]
