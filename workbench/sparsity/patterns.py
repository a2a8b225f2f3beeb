"""Sparsity patterns the lab compares, by name, and the mask of a layer's weight for each.

Names: ``"dense"``, ``"N:M"`` (``"2:4"``: N of every M consecutive weights along the input dimension, Mishra et al.
2021), ``"N:M-T"`` (``"4:8-T"``: transposable, optimal solver; ``"4:8-T greedy"`` for Hubara et al. 2021's greedy)
and ``"unstructured 50%"`` (the largest |w| of the whole layer, ``"unstructured:0.5"`` also accepted).
Weights are seen as the 2-D matrix of :func:`workbench.formats.to_matrix` (out × in, conv input channels innermost).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import torch

from workbench.errors import FormatError, ShapeError
from workbench.sparsity.diversity import log10_int, mask_diversity
from workbench.sparsity.masks import (
    PaddedWeightWarning,
    check_nm,
    nm_mask,
    transposable_mask,
)

DEFAULT_PATTERNS: tuple[str, ...] = ("1:2", "2:4", "4:8", "2:4-T", "4:8-T", "unstructured 50%")

_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*(-T)?\s*(greedy|optimal)?\s*$", re.IGNORECASE)
_UNSTRUCTURED = re.compile(r"^\s*unstructured\s*[:\s\-_]?\s*(\d+(?:\.\d+)?)?\s*(%?)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Pattern:
    """A parsed pattern name: ``kind`` is ``"dense" | "nm" | "transposable" | "unstructured"``."""

    name: str
    kind: str
    n: int | None = None
    m: int | None = None
    density: float = 1.0
    method: str = "optimal"

    def fits(self, mat_shape: tuple[int, int]) -> str | None:
        """None when the pattern applies to a 2-D weight of this shape, else why not."""
        if self.kind in ("nm", "transposable") and mat_shape[1] % self.m:
            return f"{self.name}: input dimension {mat_shape[1]} is not a multiple of M={self.m}"
        return None


def parse_pattern(name: str) -> Pattern:
    """Parse a pattern name.

    >>> parse_pattern("4:8-T")
    Pattern(name='4:8-T', kind='transposable', n=4, m=8, density=0.5, method='optimal')
    >>> parse_pattern("unstructured 25%").density
    0.25
    """
    if not isinstance(name, str):
        raise FormatError(f"a sparsity pattern name must be a string, got {name!r}")
    if name.strip().lower() == "dense":
        return Pattern("dense", "dense")
    mt = _NM.match(name)
    if mt:
        n, m = int(mt.group(1)), int(mt.group(2))
        try:
            check_nm(n, m)
        except ShapeError as exc:
            raise FormatError(f"sparsity pattern {name!r}: {exc}") from None
        transposable = mt.group(3) is not None
        method = (mt.group(4) or "optimal").lower()
        if method == "greedy" and not transposable:
            raise FormatError(f"sparsity pattern {name!r}: 'greedy' applies to transposable patterns only")
        return Pattern(name.strip(), "transposable" if transposable else "nm", n, m, n / m, method)
    mt = _UNSTRUCTURED.match(name)
    if mt:
        value = float(mt.group(1)) if mt.group(1) else 50.0
        density = value / 100 if (mt.group(2) or value > 1) else value
        if not 0 < density <= 1:
            raise FormatError(f"sparsity pattern {name!r}: density must be in (0, 1], got {density}")
        return Pattern(name.strip(), "unstructured", density=density)
    raise FormatError(
        f"unknown sparsity pattern {name!r}; use 'dense', 'N:M' (e.g. '2:4'), 'N:M-T' (e.g. '4:8-T', "
        "'4:8-T greedy') or 'unstructured 50%'"
    )


def unstructured_mask(mat: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the ``round(density · numel)`` largest |w| of the whole matrix (ties: lower flat index first)."""
    k = int(round(density * mat.numel()))
    order = torch.sort(mat.detach().abs().flatten(), descending=True, stable=True).indices[:k]
    mask = torch.zeros(mat.numel(), dtype=torch.bool, device=mat.device)
    mask[order] = True
    return mask.reshape(mat.shape)


def pattern_mask(mat: torch.Tensor, pattern: str | Pattern) -> tuple[torch.Tensor, bool]:
    """``(mask, padded)`` for a 2-D weight; ``padded`` says the transposable solve zero-padded the matrix."""
    p = parse_pattern(pattern) if isinstance(pattern, str) else pattern
    if p.kind == "dense":
        return torch.ones_like(mat, dtype=torch.bool), False
    if p.kind == "unstructured":
        return unstructured_mask(mat, p.density), False
    if p.kind == "nm":
        return nm_mask(mat, p.n, p.m), False
    padded = bool(mat.shape[0] % p.m or mat.shape[1] % p.m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PaddedWeightWarning)  # reported through the flag instead
        return transposable_mask(mat, p.n, p.m, p.method), padded


def pattern_log10_diversity(pattern: str | Pattern, mat_shape: tuple[int, int]) -> float:
    """log10 of the exact mask diversity of the pattern on a weight matrix (padded shape for transposable)."""
    p = parse_pattern(pattern) if isinstance(pattern, str) else pattern
    rows, cols = mat_shape
    if p.kind == "dense":
        return 0.0
    if p.kind == "unstructured":
        k = int(round(p.density * rows * cols))
        return log10_int(mask_diversity("unstructured", shape=(rows * cols,), density=k / (rows * cols)))
    if p.kind == "nm":
        return log10_int(mask_diversity("nm", p.n, p.m, shape=(rows, cols)))
    rows, cols = rows + (-rows) % p.m, cols + (-cols) % p.m
    return log10_int(mask_diversity("transposable", p.n, p.m, shape=(rows, cols)))


__all__ = ["DEFAULT_PATTERNS", "Pattern", "parse_pattern", "pattern_log10_diversity", "pattern_mask", "unstructured_mask"]
