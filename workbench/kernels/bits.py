"""Bit packing helpers: 32 signs or flags per int32 word, and 2-bit positions 16 per word.

Layout (little-endian within a word): element ``c`` of a row lives in word ``c // 32`` at bit ``c % 32``. A row of
``k`` elements takes ``ceil(k / 32)`` words; the padding bits of the last word are 0. Words are stored as int32
(two's complement), since torch has no uint32 arithmetic on every device; bit 31 set gives a negative word.

Signs follow the binarization rule of Hubara/Courbariaux et al. 2016: ``sign(0) = +1``, bit 1 means +1, bit 0
means −1. For two ±1 vectors of length ``k`` packed this way, ``dot = k − 2·popcount(a XOR b)`` (XNOR-Net,
Rastegari et al. 2016), counting only the ``k`` real bits.

>>> w = pack_signs(torch.tensor([[1.0, -2.0, 0.0, -0.5]]))
>>> w.tolist(), unpack_signs(w, 4).tolist()
([[5]], [[1.0, -1.0, 1.0, -1.0]])
"""

from __future__ import annotations

import torch

from workbench.errors import DTypeError, ShapeError

_WORD = 32


def words_for(k: int, per_word: int = _WORD) -> int:
    """Number of int32 words that hold ``k`` entries at ``per_word`` entries a word."""
    return -(-int(k) // per_word)


def _to_int32(v: torch.Tensor) -> torch.Tensor:
    """Map int64 values in [0, 2^32) onto int32 with the same bit pattern."""
    return (v - ((v >> 31) & 1) * (1 << 32)).to(torch.int32)


def _from_int32(w: torch.Tensor) -> torch.Tensor:
    """int32 words as int64 in [0, 2^32)."""
    return w.to(torch.int64) & 0xFFFFFFFF


def pack_bits(flags: torch.Tensor) -> torch.Tensor:
    """Pack a boolean tensor ``[..., k]`` into int32 words ``[..., ceil(k/32)]`` along the last dimension.

    >>> pack_bits(torch.tensor([True, False, True])).tolist()
    [5]
    """
    if flags.dtype != torch.bool:
        raise DTypeError(f"pack_bits expects a bool tensor, got {flags.dtype} of shape {tuple(flags.shape)}")
    if flags.dim() == 0:
        raise ShapeError("pack_bits expects at least one dimension, got a scalar")
    k = flags.shape[-1]
    n_words = words_for(k)
    pad = n_words * _WORD - k
    f = torch.nn.functional.pad(flags.to(torch.int64), (0, pad))
    f = f.reshape(*flags.shape[:-1], n_words, _WORD)
    shifts = torch.arange(_WORD, device=flags.device, dtype=torch.int64)
    return _to_int32((f << shifts).sum(-1))


def unpack_bits(words: torch.Tensor, k: int) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: int32 words ``[..., W]`` to a bool tensor ``[..., k]`` (needs ``W = ceil(k/32)``)."""
    if words.dtype != torch.int32:
        raise DTypeError(f"unpack_bits expects int32 words, got {words.dtype} of shape {tuple(words.shape)}")
    if words.dim() == 0 or words.shape[-1] != words_for(k):
        raise ShapeError(
            f"unpack_bits: {k} bits need ceil({k}/32) = {words_for(k)} words in the last dimension, "
            f"got shape {tuple(words.shape)}"
        )
    shifts = torch.arange(_WORD, device=words.device, dtype=torch.int64)
    bits = (_from_int32(words).unsqueeze(-1) >> shifts) & 1
    return bits.reshape(*words.shape[:-1], -1)[..., :k].to(torch.bool)


def pack_signs(x: torch.Tensor) -> torch.Tensor:
    """Pack the signs of a real tensor ``[..., k]`` (``x >= 0`` gives bit 1 = +1) into int32 words."""
    if not x.is_floating_point():
        raise DTypeError(f"pack_signs expects a floating tensor of ±1 (or any reals), got {x.dtype}")
    return pack_bits(x >= 0)


def unpack_signs(words: torch.Tensor, k: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Inverse of :func:`pack_signs`: ±1 values of ``dtype``, shape ``[..., k]``."""
    return unpack_bits(words, k).to(dtype) * 2 - 1


def pack_positions(pos: torch.Tensor) -> torch.Tensor:
    """Pack 2-bit positions (ints in 0..3) ``[..., j]`` into int32 words ``[..., ceil(j/16)]``, 16 per word.

    Entry ``i`` lives in word ``i // 16`` at bits ``2·(i % 16)`` and ``2·(i % 16) + 1``.

    >>> pack_positions(torch.tensor([1, 3, 0, 2])).tolist()
    [141]
    """
    if pos.dtype not in (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64):
        raise DTypeError(f"pack_positions expects integer positions, got {pos.dtype}")
    if pos.numel() and (int(pos.min()) < 0 or int(pos.max()) > 3):
        raise ShapeError("pack_positions: positions must lie in 0..3")
    j = pos.shape[-1]
    n_words = words_for(j, 16)
    p = torch.nn.functional.pad(pos.to(torch.int64), (0, n_words * 16 - j)).reshape(*pos.shape[:-1], n_words, 16)
    shifts = 2 * torch.arange(16, device=pos.device, dtype=torch.int64)
    return _to_int32((p << shifts).sum(-1))


def unpack_positions(words: torch.Tensor, j: int) -> torch.Tensor:
    """Inverse of :func:`pack_positions`: int64 positions ``[..., j]``."""
    if words.dtype != torch.int32:
        raise DTypeError(f"unpack_positions expects int32 words, got {words.dtype}")
    if words.dim() == 0 or words.shape[-1] != words_for(j, 16):
        raise ShapeError(
            f"unpack_positions: {j} positions need ceil({j}/16) = {words_for(j, 16)} words, got shape {tuple(words.shape)}"
        )
    shifts = 2 * torch.arange(16, device=words.device, dtype=torch.int64)
    p = (_from_int32(words).unsqueeze(-1) >> shifts) & 3
    return p.reshape(*words.shape[:-1], -1)[..., :j]


def popcount32(words: torch.Tensor) -> torch.Tensor:
    """Number of set bits of each int32 word (SWAR bit counting in int64), as int64."""
    v = _from_int32(words)
    v = v - ((v >> 1) & 0x55555555)
    v = (v & 0x33333333) + ((v >> 2) & 0x33333333)
    v = (v + (v >> 4)) & 0x0F0F0F0F
    v = v + (v >> 8)
    v = v + (v >> 16)
    return v & 0x3F


def tail_mask(k: int) -> int:
    """The int32 bit mask of the real bits in the last word of a ``k``-bit row (−1 when ``k`` is a multiple of 32)."""
    tail = k - (words_for(k) - 1) * _WORD
    return -1 if tail == _WORD else (1 << tail) - 1


__all__ = [
    "words_for",
    "pack_bits",
    "unpack_bits",
    "pack_signs",
    "unpack_signs",
    "pack_positions",
    "unpack_positions",
    "popcount32",
    "tail_mask",
]
