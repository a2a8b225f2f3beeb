"""The sparsity patterns the lab compares, named in the one format grammar of :mod:`workbench.formats.spec`, and
the mask of a layer's weight for each.

A pattern is the sparsity part of a format name: ``"dense"``, ``"N:M"`` (``"2:4"``), ``"N:M-T"`` (``"4:8-T"``,
optimal solver; ``"4:8-T greedy"`` for Hubara et al. 2021's greedy), ``"unstructured 50%"`` (also
``"unstructured:0.5"``) or ``"block4x4@80%"`` (4×4 blocks of largest L2 norm at 80 % sparsity; Narang et al. 2017). :func:`parse_pattern` returns its :class:`~workbench.formats.Sparsity` (None for dense);
weights are seen as the 2-D matrix of :func:`workbench.formats.to_matrix` (out × in, conv input channels innermost).
"""

from __future__ import annotations

import warnings

import torch

from workbench.errors import FormatError, shorten
from workbench.formats import Format, Sparsity, parse_format
from workbench.formats.masks import (
    PaddedWeightWarning,
    block_mask,
    fits,
    nm_mask,
    too_costly,
    transposable_mask,
    unstructured_mask,
)
from workbench.sparsity.diversity import log10_diversity

DEFAULT_PATTERNS: tuple[str, ...] = ("1:2", "2:4", "4:8", "2:4-T", "4:8-T", "unstructured 50%")

Pattern = Sparsity  # the name the lab used for it


def parse_pattern(fmt: str | Format | Sparsity | None) -> Sparsity | None:
    """The sparsity of a pattern name (None for ``"dense"``); a FormatError when the name is malformed or carries
    a number format.

    >>> parse_pattern("4:8-T greedy").method, parse_pattern("unstructured 25%").density
    ('greedy', 0.25)
    """
    if fmt is None or isinstance(fmt, Sparsity):
        return fmt
    f = parse_format(fmt)
    if f.number is not None:
        raise FormatError(f"a sparsity pattern has no number format, got {shorten(f.name)}; use e.g. "
                          f"{', '.join(repr(p) for p in DEFAULT_PATTERNS)} or 'dense'")
    return f.sparsity


def pattern_name(pattern: Sparsity | None) -> str:
    """The canonical name of a parsed pattern (``"dense"`` for None)."""
    return "dense" if pattern is None else pattern.name


def pattern_kind(pattern: Sparsity | None) -> str:
    """``"dense" | "nm" | "transposable" | "unstructured" | "block"``."""
    return "dense" if pattern is None else pattern.kind


def pattern_fits(pattern: Sparsity | None, mat_shape: tuple[int, int]) -> str | None:
    """None when the pattern applies to a 2-D weight matrix of this shape, else why not."""
    if pattern is None:
        return None
    mat = torch.empty(mat_shape, device="meta")
    return fits(mat, pattern) or too_costly(mat, pattern)


def pattern_mask(mat: torch.Tensor, pattern: str | Sparsity | None) -> tuple[torch.Tensor, bool]:
    """``(mask, padded)`` for a 2-D weight; ``padded`` says the transposable solve zero-padded the matrix."""
    p = parse_pattern(pattern)
    if p is None:
        return torch.ones_like(mat, dtype=torch.bool), False
    if p.kind == "unstructured":
        return unstructured_mask(mat, p.density), False
    if p.kind == "block":
        return block_mask(mat, p.block, p.density), False
    if p.kind == "nm":
        return nm_mask(mat, p.n, p.m), False
    padded = bool(mat.shape[0] % p.m or mat.shape[1] % p.m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PaddedWeightWarning)  # reported through the flag instead
        return transposable_mask(mat, p.n, p.m, p.method), padded


def pattern_log10_diversity(pattern: str | Sparsity | None, mat_shape: tuple[int, int]) -> float:
    """log10 of the mask diversity of the pattern on a weight matrix (padded shape for transposable), in log space."""
    p = parse_pattern(pattern)
    rows, cols = mat_shape
    if p is None:
        return 0.0
    if p.kind == "unstructured":
        k = int(round(p.density * rows * cols))
        return log10_diversity("unstructured", shape=(rows * cols,), density=k / (rows * cols))
    if p.kind == "block":  # C(#blocks, #kept)
        bh, bw = p.block
        nb = (rows // bh) * (cols // bw)
        k = int(round(p.density * nb))
        return log10_diversity("block", shape=(rows, cols), density=k / nb, block=p.block)
    if p.kind == "nm":
        return log10_diversity("nm", p.n, p.m, shape=(rows, cols))
    rows, cols = rows + (-rows) % p.m, cols + (-cols) % p.m
    return log10_diversity("transposable", p.n, p.m, shape=(rows, cols))


__all__ = [
    "DEFAULT_PATTERNS",
    "Pattern",
    "parse_pattern",
    "pattern_fits",
    "pattern_kind",
    "pattern_log10_diversity",
    "pattern_mask",
    "pattern_name",
    "unstructured_mask",
]
