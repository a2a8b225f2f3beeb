"""Unseen-class splits: which classes a zero-shot model never sees an example of during training.

A :class:`ZeroShotSplit` partitions the classes ``0..C-1`` into *seen* classes (their training examples are used)
and *unseen* ones (their training examples are dropped; they are known only through their attribute rows). The
test examples of both are kept: the ZSL score reads the unseen ones, the GZSL scores read both (Xian, Lampert,
Schiele & Akata 2018, "Zero-shot learning — a comprehensive evaluation of the good, the bad and the ugly").

:func:`unseen_splits` draws several distinct seeded splits (by default 5 splits holding out 3 of the 10 digits),
so results are reported as mean ± sd over splits rather than for one lucky choice of unseen classes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from math import comb

import numpy as np

from workbench.errors import DataError


@dataclass(frozen=True)
class ZeroShotSplit:
    """Seen and unseen classes (sorted tuples of class indices) out of ``n_classes``; build with :func:`make_split`."""

    unseen: tuple[int, ...]
    n_classes: int = 10

    @property
    def seen(self) -> tuple[int, ...]:
        return tuple(c for c in range(self.n_classes) if c not in self.unseen)

    @property
    def name(self) -> str:
        """``"unseen 2,5,8"``: how tables and figures label the split."""
        return "unseen " + ",".join(str(c) for c in self.unseen)

    def unseen_mask(self) -> np.ndarray:
        """Boolean vector of length ``n_classes``: True for unseen classes."""
        m = np.zeros(self.n_classes, dtype=bool)
        m[list(self.unseen)] = True
        return m


def make_split(unseen: Iterable[int] | ZeroShotSplit, n_classes: int = 10) -> ZeroShotSplit:
    """A checked split holding out the classes ``unseen`` (class indices in ``0..n_classes-1``).

    Raises :class:`~workbench.errors.DataError` for an empty unseen set, one that holds every class (then nothing is
    seen and there is nothing to learn from), duplicates, and indices out of range.
    """
    if isinstance(unseen, ZeroShotSplit):
        if unseen.n_classes != int(n_classes):
            raise DataError(f"the split is over {unseen.n_classes} classes but the data has {int(n_classes)}")
        unseen = unseen.unseen
    if isinstance(unseen, (int, np.integer)):
        unseen = [int(unseen)]
    try:
        classes = [int(c) for c in unseen]
    except (TypeError, ValueError) as exc:
        raise DataError(f"unseen must be class indices (integers), got {unseen!r}") from exc
    n = int(n_classes)
    if not classes:
        raise DataError(f"the unseen split is empty: hold out at least one of the {n} classes (e.g. unseen=[2, 5, 8])")
    if len(set(classes)) != len(classes):
        raise DataError(f"the unseen split {classes} names a class twice")
    out = [c for c in classes if not 0 <= c < n]
    if out:
        raise DataError(f"unseen classes {out} are not classes of the data (0..{n - 1})")
    if len(classes) >= n:
        raise DataError(f"the unseen split {sorted(classes)} holds every one of the {n} classes: at least one class "
                        f"must be seen (hold out 1..{n - 1} classes)")
    return ZeroShotSplit(tuple(sorted(classes)), n)


def unseen_splits(n_splits: int = 5, n_unseen: int = 3, seed: int = 0, n_classes: int = 10) -> list[ZeroShotSplit]:
    """``n_splits`` distinct random splits, each holding out ``n_unseen`` of ``n_classes`` classes (seeded).

    >>> [s.unseen for s in unseen_splits(2, 3, seed=0)]
    [(5, 6, 9), (0, 8, 9)]
    """
    n = int(n_classes)
    k = int(n_unseen)
    if not 1 <= k < n:
        raise DataError(f"n_unseen must be between 1 and {n - 1} (some classes seen, some unseen), got {n_unseen!r}")
    if int(n_splits) < 1 or int(n_splits) > comb(n, k):
        raise DataError(f"n_splits must be between 1 and C({n},{k}) = {comb(n, k)}, got {n_splits!r}")
    rng = np.random.default_rng(int(seed))
    found: list[tuple[int, ...]] = []
    while len(found) < int(n_splits):
        pick = tuple(sorted(int(c) for c in rng.choice(n, size=k, replace=False)))
        if pick not in found:
            found.append(pick)
    return [ZeroShotSplit(p, n) for p in found]


__all__ = ["ZeroShotSplit", "make_split", "unseen_splits"]
