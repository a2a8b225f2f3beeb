"""Mask diversity: the number of masks a sparsity constraint allows for a tensor (Hubara et al. 2021, §3).

Exact Python integers (:func:`mask_diversity`) and their log10 computed in log space (:func:`log10_diversity`), for
a weight of ``shape`` with ``T`` entries:

* unstructured at density d (fraction kept): C(T, d·T);  log form: lgamma;
* N:M along the input dimension: C(M, N)^(T/M);
* transposable N:M: X(M, N)^(T/M²), where X(M, N) is the number of M×M 0/1 matrices with exactly N ones in every
  row and column. X has no closed form; :func:`transposable_count` counts it exactly by dynamic programming over
  the column counts (:mod:`workbench.formats.masks`). X(4, 2) = 90 and X(8, 4) = 116,963,796,250. (A formula
  sometimes quoted for this case, C(M, N)^M / …, counts row choices without the column constraint and overcounts:
  C(4, 2)^4 = 1296 ≠ 90.) Past the exact count's bound, :func:`log10_transposable_count` uses the Canfield–McKay
  asymptotic X(M, N) ≈ C(M, N)^(2M) / C(M², N·M) · e^(−1/2) (Canfield & McKay 2005, "Asymptotic enumeration of
  dense 0-1 matrices with equal row sums and equal column sums"; off by 0.015 in log10 at M = 14) and warns;
* block sparsity with blocks of shape (bh, bw) at density d: C(T/(bh·bw), d·T/(bh·bw)).

Counts grow astronomically: an exact count whose result would hold more than :data:`EXACT_BITS_LIMIT` bits
(math.comb(2^20, 2^19) alone takes 16 s) is refused with a :class:`~workbench.errors.CostLimitError` naming the
estimate; the log form costs microseconds at any size.
"""

from __future__ import annotations

import inspect
import math
import operator
import warnings
from collections.abc import Sequence
from typing import Any

from workbench.errors import CostLimitError, ShapeError, shorten
from workbench.formats.masks import DP_STATES_LIMIT, check_nm, transposable_count, transposable_count_states

EXACT_BITS_LIMIT = 1 << 18  # about 1 s for math.comb on a 2-core x86_64
KINDS = ("unstructured", "nm", "transposable", "block")
_LOG10_2 = math.log10(2)


class ApproximateCountWarning(UserWarning):
    """A log10 count that used an asymptotic approximation because the exact count is past its cost bound."""


def _shape(shape: object) -> tuple[int, ...]:
    """A shape of positive ints (ints or numpy integers; no floats, bools or strings), else a ShapeError."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or len(shape) == 0:
        raise ShapeError(f"mask diversity needs `shape` as a tuple of positive ints such as (64, 512), "
                         f"got {shorten(shape)}")
    out = []
    for s in shape:
        try:
            v = operator.index(s) if not isinstance(s, bool) else None
        except TypeError:
            v = None
        if v is None or v <= 0:
            raise ShapeError(f"mask diversity needs `shape` as a tuple of positive ints such as (64, 512), "
                             f"got {shorten(shape)} (entry {shorten(s)})")
        out.append(int(v))
    return tuple(out)


def _kept(total: int, density: float | None, what: str) -> int:
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not (0.0 <= density <= 1.0):
        raise ShapeError(f"{what} mask diversity needs `density` in [0, 1], got {shorten(density)}")
    k = round(density * total)
    if abs(k - density * total) > 1e-9 * max(total, 1):
        raise ShapeError(f"{what} mask diversity: density {density} of {total} entries is not a whole number")
    return k


def _log10_comb(n: int, k: int) -> float:
    if n < 1000:
        return math.log10(math.comb(n, k))
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(10)


def log10_transposable_count(n: int, m: int) -> float:
    """log10 X(m, n): exact (from :func:`transposable_count`) within its bound, else the Canfield–McKay
    approximation with an :class:`ApproximateCountWarning`.

    >>> round(log10_transposable_count(2, 4), 6)
    1.954243
    """
    check_nm(n, m)
    if transposable_count_states(n, m) <= DP_STATES_LIMIT:
        return log10_int(transposable_count(n, m))
    warnings.warn(f"log10 X({m}, {n}): the exact count is past its bound ({DP_STATES_LIMIT:,} states); using the "
                  "Canfield-McKay approximation (about 0.01 off in log10)", ApproximateCountWarning, stacklevel=2)
    return 2 * m * _log10_comb(m, n) - _log10_comb(m * m, n * m) - 0.5 / math.log(10)


def _diversity_plan(kind: str, n: int | None, m: int | None, shape: object, density: float | None,
                    block: tuple[int, int] | None) -> tuple[str, tuple]:
    """Validate the arguments once; returns ``(how, params)`` for the exact and the log form."""
    if kind not in KINDS:
        raise ShapeError(f"unknown mask kind {shorten(kind)}; use 'unstructured', 'nm', 'transposable' or 'block'")
    shape = _shape(shape)
    total = math.prod(shape)
    if kind == "unstructured":
        return "comb", (total, _kept(total, density, "unstructured"))
    if kind in ("nm", "transposable"):
        if n is None or m is None:
            raise ShapeError(f"{kind} mask diversity needs n and m")
        check_nm(n, m)
        if shape[-1] % m:
            raise ShapeError(f"{n}:{m} mask diversity: last dimension of shape {shape} is not a multiple of M={m}")
        if kind == "nm":
            return "nm", (n, m, total // m)
        if len(shape) != 2 or shape[0] % m:
            raise ShapeError(f"{n}:{m}-T mask diversity needs a 2-D shape with both sides multiples of {m}, got {shape}")
        return "transposable", (n, m, total // (m * m))
    if block is None or len(shape) != 2 or len(block) != 2:
        raise ShapeError(f"block mask diversity needs a 2-D shape and block=(bh, bw), got {shape}, {shorten(block)}")
    bh, bw = _shape(block)
    if shape[0] % bh or shape[1] % bw:
        raise ShapeError(f"block mask diversity: block {block} does not tile shape {shape}")
    nb = total // (bh * bw)
    return "comb", (nb, _kept(nb, density, "block"))


def _log10_of(how: str, params: tuple) -> float:
    if how == "comb":
        return _log10_comb(*params)
    if how == "nm":
        n, m, groups = params
        return groups * math.log10(math.comb(m, n))
    n, m, tiles = params
    return tiles * log10_transposable_count(n, m)


def mask_diversity(
    kind: str,
    n: int | None = None,
    m: int | None = None,
    shape: tuple[int, ...] = (8, 8),
    density: float | None = None,
    block: tuple[int, int] | None = None,
) -> int:
    """Exact number of masks of ``shape`` allowed by a sparsity constraint, as a Python int.

    ``kind``: ``"unstructured"`` (``density``), ``"nm"`` (``n``, ``m``; groups along the last dimension),
    ``"transposable"`` (``n``, ``m``; M×M tiles on a 2-D shape), ``"block"`` (``block=(bh, bw)``, ``density``).
    A count of more than :data:`EXACT_BITS_LIMIT` bits is refused (:class:`~workbench.errors.CostLimitError`):
    use :func:`log10_diversity`.

    >>> mask_diversity("nm", 2, 4, shape=(1, 8))
    36
    >>> mask_diversity("transposable", 2, 4, shape=(4, 8))
    8100
    >>> mask_diversity("unstructured", shape=(1, 4), density=0.5)
    6
    """
    how, params = _diversity_plan(kind, n, m, shape, density, block)
    if how == "transposable" and transposable_count_states(params[0], params[1]) > DP_STATES_LIMIT:
        transposable_count(params[0], params[1])  # raises the CostLimitError that names the estimate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ApproximateCountWarning)
        bits = _log10_of(how, params) / _LOG10_2
    if bits > EXACT_BITS_LIMIT:
        raise CostLimitError(
            f"mask_diversity({kind!r}, shape={shorten(shape)}): the exact count has about {bits:,.0f} bits (limit "
            f"{EXACT_BITS_LIMIT:,}; math.comb alone would take minutes); use log10_diversity with the same "
            "arguments for its log10")
    if how == "comb":
        return math.comb(*params)
    if how == "nm":
        n, m, groups = params
        return math.comb(m, n) ** groups
    n, m, tiles = params
    return transposable_count(n, m) ** tiles


def log10_int(x: int) -> float:
    """log10 of a positive Python int of any size (exact digits, float mantissa).

    >>> round(log10_int(10**400), 6)
    400.0
    """
    if isinstance(x, bool) or not isinstance(x, int) or x <= 0:
        raise ShapeError(f"log10 of a mask count needs a positive integer, got {shorten(x)}")
    bits = x.bit_length()
    if bits < 1000:
        return math.log10(x)
    shift = bits - 64
    return math.log10(x >> shift) + shift * _LOG10_2


def log10_diversity(*args: Any, **kwargs: Any) -> float:
    """``log10(mask_diversity(...))``, same arguments, computed in log space (lgamma; no big integers), so it
    answers at any size; transposable counts past their exact bound use the Canfield–McKay approximation and warn.

    >>> round(log10_diversity("nm", 2, 4, shape=(10**6, 10**6)), 3)
    194537812595.911
    """
    bound = _SIGNATURE.bind(*args, **kwargs)
    bound.apply_defaults()
    return _log10_of(*_diversity_plan(**bound.arguments))


_SIGNATURE = inspect.signature(mask_diversity)
log10_diversity.__signature__ = _SIGNATURE.replace(return_annotation=float)  # type: ignore[attr-defined]


__all__ = [
    "ApproximateCountWarning",
    "EXACT_BITS_LIMIT",
    "log10_diversity",
    "log10_int",
    "log10_transposable_count",
    "mask_diversity",
    "transposable_count",
]
