"""Mask diversity: the number of masks a sparsity constraint allows for a tensor (Hubara et al. 2021, §3).

Exact Python integers (no floating point), for a weight of ``shape`` with ``T`` entries:

* unstructured at density d (fraction kept): C(T, d·T);
* N:M along the input dimension: C(M, N)^(T/M);
* transposable N:M: X(M, N)^(T/M²), where X(M, N) is the number of M×M 0/1 matrices with exactly N ones in every
  row and column. X has no closed form; :func:`transposable_count` counts it exactly by dynamic programming over
  the column counts (rows are filled one at a time; the state is how many columns still need 0, 1, …, N ones).
  X(4, 2) = 90 and X(8, 4) = 116,963,796,250. (A formula sometimes quoted for this case, C(M, N)^M / …, counts row
  choices without the column constraint and overcounts: C(4, 2)^4 = 1296 ≠ 90.)
* block sparsity with blocks of shape (bh, bw) at density d: C(T/(bh·bw), d·T/(bh·bw)).

Counts grow astronomically; :func:`log10_int` gives log10 of a Python int without overflow, for plots.
"""

from __future__ import annotations

import math
from functools import cache

from workbench.errors import ShapeError
from workbench.sparsity.masks import check_nm


@cache
def transposable_count(m: int, n: int) -> int:
    """X(m, n): the number of m×m 0/1 matrices with exactly ``n`` ones in every row and every column.

    >>> transposable_count(4, 2), transposable_count(3, 1), transposable_count(8, 4)
    (90, 6, 116963796250)
    """
    check_nm(n, m)

    @cache
    def rows_left(r: int, state: tuple[int, ...]) -> int:
        # state[k] = number of columns that still need k ones (k = 0..n); r rows still to fill
        if r == 0:
            return 1 if all(v == 0 for v in state[1:]) else 0
        total = 0

        def pick(k: int, left: int, st: list[int], ways: int) -> None:
            nonlocal total
            if left == 0:
                total += ways * rows_left(r - 1, tuple(st))
                return
            if k > n:
                return
            avail = state[k]
            for take in range(min(avail, left) + 1):
                new = st.copy()
                new[k] -= take
                new[k - 1] += take
                pick(k + 1, left - take, new, ways * math.comb(avail, take))

        pick(1, n, list(state), 1)
        return total

    start = [0] * (n + 1)
    start[n] = m
    return rows_left(m, tuple(start))


def _numel(shape: tuple[int, ...]) -> int:
    if len(shape) == 0 or any((not isinstance(s, int)) or s <= 0 for s in shape):
        raise ShapeError(f"mask diversity needs a shape of positive ints, got {shape}")
    return math.prod(shape)


def _kept(total: int, density: float | None, what: str) -> int:
    if density is None or not (0.0 <= density <= 1.0):
        raise ShapeError(f"{what} mask diversity needs a density in [0, 1], got {density}")
    k = round(density * total)
    if abs(k - density * total) > 1e-9 * max(total, 1):
        raise ShapeError(f"{what} mask diversity: density {density} of {total} entries is not a whole number")
    return k


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

    >>> mask_diversity("nm", 2, 4, shape=(1, 8))
    36
    >>> mask_diversity("transposable", 2, 4, shape=(4, 8))
    8100
    >>> mask_diversity("unstructured", shape=(1, 4), density=0.5)
    6
    """
    shape = tuple(int(s) for s in shape)
    total = _numel(shape)
    if kind == "unstructured":
        return math.comb(total, _kept(total, density, "unstructured"))
    if kind in ("nm", "transposable"):
        if n is None or m is None:
            raise ShapeError(f"{kind} mask diversity needs n and m")
        check_nm(n, m)
        if shape[-1] % m:
            raise ShapeError(f"{n}:{m} mask diversity: last dimension of shape {shape} is not a multiple of M={m}")
        if kind == "nm":
            return math.comb(m, n) ** (total // m)
        if len(shape) != 2 or shape[0] % m:
            raise ShapeError(f"{n}:{m}-T mask diversity needs a 2-D shape with both sides multiples of {m}, got {shape}")
        return transposable_count(m, n) ** (total // (m * m))
    if kind == "block":
        if block is None or len(shape) != 2 or len(block) != 2:
            raise ShapeError(f"block mask diversity needs a 2-D shape and block=(bh, bw), got {shape}, {block}")
        bh, bw = block
        if bh <= 0 or bw <= 0 or shape[0] % bh or shape[1] % bw:
            raise ShapeError(f"block mask diversity: block {block} does not tile shape {shape}")
        nb = total // (bh * bw)
        return math.comb(nb, _kept(nb, density, "block"))
    raise ShapeError(f"unknown mask kind {kind!r}; use 'unstructured', 'nm', 'transposable' or 'block'")


def log10_int(x: int) -> float:
    """log10 of a positive Python int of any size (exact digits, float mantissa).

    >>> round(log10_int(10**400), 6)
    400.0
    """
    if x <= 0:
        raise ShapeError(f"log10 of a mask count needs a positive integer, got {x}")
    bits = x.bit_length()
    if bits < 1000:
        return math.log10(x)
    shift = bits - 64
    return math.log10(x >> shift) + shift * math.log10(2)


def log10_diversity(*args, **kwargs) -> float:
    """``log10(mask_diversity(...))``, same arguments."""
    return log10_int(mask_diversity(*args, **kwargs))


__all__ = ["log10_diversity", "log10_int", "mask_diversity", "transposable_count"]
