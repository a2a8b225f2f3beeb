"""Mask diversity as exact integers, against brute-force enumeration of every mask small enough to list."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from workbench.errors import ShapeError
from workbench.sparsity.diversity import (
    log10_diversity,
    log10_int,
    mask_diversity,
    transposable_count,
)
from workbench.sparsity.masks import transposable_patterns


def all_masks(shape: tuple[int, int]) -> np.ndarray:
    """Every 0/1 matrix of ``shape`` (2^(rows·cols) of them), as (count, rows, cols) uint8."""
    k = shape[0] * shape[1]
    bits = (np.arange(2**k)[:, None] >> np.arange(k)[None, :]) & 1
    return bits.reshape(-1, *shape).astype(np.uint8)


def count_nm(masks: np.ndarray, n: int, m: int) -> int:
    g = masks.reshape(masks.shape[0], masks.shape[1], -1, m).sum(-1)
    return int((g == n).all((1, 2)).sum())


def count_transposable(masks: np.ndarray, n: int, m: int) -> int:
    c, r, k = masks.shape
    tiles = masks.reshape(c, r // m, m, k // m, m)
    return int(((tiles.sum(4) == n).all((1, 2, 3)) & (tiles.sum(2) == n).all((1, 2, 3))).sum())


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_transposable_count_equals_brute_force(m):
    masks = all_masks((m, m))
    for n in range(1, m + 1):
        assert transposable_count(n, m) == count_transposable(masks, n, m)


def test_transposable_count_by_an_independent_dp_over_full_column_vectors():
    """A different DP (state = the full vector of column counts) agrees up to 7x7; X(8,4) against OEIS."""

    def full_dp(m: int, n: int) -> int:
        rows = [tuple(1 if j in c else 0 for j in range(m)) for c in itertools.combinations(range(m), n)]
        states = {(0,) * m: 1}
        for _ in range(m):
            nxt: dict[tuple[int, ...], int] = {}
            for st, ways in states.items():
                for r in rows:
                    new = tuple(a + b for a, b in zip(st, r))
                    if max(new) <= n:
                        nxt[new] = nxt.get(new, 0) + ways
            states = nxt
        return states.get((n,) * m, 0)

    for m, n in [(5, 2), (6, 3), (6, 2), (7, 3)]:
        assert transposable_count(n, m) == full_dp(m, n)
    assert transposable_count(4, 8) == 116_963_796_250  # OEIS A058527: 2n×2n with n ones per row and column
    assert transposable_count(2, 5) == 2040 and transposable_count(3, 6) == 297_200


def test_the_overcounting_formula_is_not_used():
    assert transposable_count(2, 4) == 90 != math.comb(4, 2) ** 4


def test_pattern_list_length_is_the_count():
    for n, m in [(1, 3), (2, 4), (2, 5)]:
        pats = transposable_patterns(n, m)
        assert len(pats) == transposable_count(n, m)
        assert len({tuple(p.flatten().tolist()) for p in pats}) == len(pats)


def test_mask_diversity_small_cases_by_enumeration():
    m24 = all_masks((2, 4))
    assert mask_diversity("nm", 2, 4, shape=(2, 4)) == count_nm(m24, 2, 4) == 36
    assert mask_diversity("nm", 1, 2, shape=(2, 4)) == count_nm(m24, 1, 2) == 16
    assert mask_diversity("unstructured", shape=(2, 4), density=0.5) == int((m24.sum((1, 2)) == 4).sum()) == 70
    m44 = all_masks((4, 4))
    assert mask_diversity("transposable", 2, 4, shape=(4, 4)) == count_transposable(m44, 2, 4) == 90
    assert mask_diversity("transposable", 1, 2, shape=(4, 4)) == count_transposable(m44, 1, 2) == 16
    assert mask_diversity("nm", 2, 4, shape=(4, 4)) == count_nm(m44, 2, 4)
    # block sparsity: 2x2 blocks, half of them kept
    blocky = m44[(m44[:, ::2, ::2] == m44[:, 1::2, ::2]).all((1, 2))]
    blocky = blocky[(blocky[:, :, ::2] == blocky[:, :, 1::2]).all((1, 2))]
    assert mask_diversity("block", shape=(4, 4), block=(2, 2), density=0.5) == int((blocky.sum((1, 2)) == 8).sum())
    assert mask_diversity("unstructured", shape=(4, 4), density=0.25) == int((m44.sum((1, 2)) == 4).sum())


def test_transposable_two_tiles_by_row_enumeration():
    """4x8 at 2:4-T: rows of 8 with 2 per group of 4 (36 choices), all 36^4 stacks, check tile columns."""
    row_choices = [
        np.array(a + b)
        for a in [tuple(1 if j in c else 0 for j in range(4)) for c in itertools.combinations(range(4), 2)]
        for b in [tuple(1 if j in c else 0 for j in range(4)) for c in itertools.combinations(range(4), 2)]
    ]
    rows = np.stack(row_choices).astype(np.uint8)  # (36, 8)
    idx = np.array(list(itertools.product(range(36), repeat=4)))
    col = rows[idx].sum(1)  # (36^4, 8)
    brute = int((col == 2).all(1).sum())
    assert mask_diversity("transposable", 2, 4, shape=(4, 8)) == brute == 90**2


def test_ordering_of_constraints():
    shape = (64, 64)
    u = mask_diversity("unstructured", shape=shape, density=0.5)
    nm = mask_diversity("nm", 2, 4, shape=shape)
    t = mask_diversity("transposable", 2, 4, shape=shape)
    t8 = mask_diversity("transposable", 4, 8, shape=shape)
    assert u > nm > t8 > t  # 4:8-T is more diverse than 2:4-T (Hubara et al. 2021, Fig. 2)
    assert isinstance(u, int) and u.bit_length() > 3000


def test_log10_int():
    for x in [1, 7, 10**20, 3**200]:
        assert log10_int(x) == pytest.approx(math.log10(x), rel=1e-12)
    assert log10_int(10**5000) == pytest.approx(5000, rel=1e-12)
    assert log10_int(7 * 10**4000) == pytest.approx(4000 + math.log10(7), rel=1e-12)
    assert log10_diversity("nm", 2, 4, shape=(4, 4)) == pytest.approx(4 * math.log10(6))
    with pytest.raises(ShapeError):
        log10_int(0)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kind="nm", n=2, m=4, shape=(4, 6)),
        dict(kind="nm", n=5, m=4, shape=(4, 4)),
        dict(kind="transposable", n=2, m=4, shape=(6, 8)),
        dict(kind="transposable", n=2, m=4, shape=(4, 4, 4)),
        dict(kind="unstructured", shape=(4, 4), density=None),
        dict(kind="unstructured", shape=(3, 3), density=0.5),
        dict(kind="block", shape=(4, 4), block=(3, 2), density=0.5),
        dict(kind="nope", shape=(4, 4)),
        dict(kind="nm", n=2, m=4, shape=(0, 4)),
    ],
)
def test_bad_input(kwargs):
    with pytest.raises(ShapeError):
        mask_diversity(**kwargs)
