"""``L`` hash tables over one :class:`~workbench.hashing.families.HashFamily`: per-bucket sums and counts (the
sketch) and per-bucket item lists.

**The sketch** (RACE, Coleman & Shrivastava 2020; the NW sketch of "Adaptive Sampling for Deep Learning via Efficient
Nonparametric Proxies", arXiv 2311.13583). Table ``l`` keeps, for every bucket ``b``, ``S_l[b] = Σ_{i: h_l(x_i)=b}
w_i y_i`` and ``C_l[b] = Σ_{i: h_l(x_i)=b} w_i``. For a query ``x``, ``(1/L) Σ_l S_l[h_l(x)]`` is an unbiased estimate
(over the random hash functions) of ``Σ_i k(x, x_i) w_i y_i`` with ``k`` the per-table collision probability
(``p^K``); the same holds for ``C``. Their ratio :meth:`LSHTables.estimate` approximates the Nadaraya–Watson
estimator ``Σ_i k(x, x_i) y_i / Σ_i k(x, x_i)`` with the collision kernel; each estimate is a mean of L independent
tables, so its error shrinks as L grows (exponentially fast in L in probability, by Hoeffding's bound). Updating one
item costs ``O(L)``; querying one costs ``O(L)``, whatever the number of items.

**Item lists** (for LSH retrieval, as SLIDE and LSH softmax use them): :meth:`LSHTables.index` stores item ids by
bucket, :meth:`LSHTables.candidates` returns every (query, item) pair that collides in at least one table.

Every operation is vectorized over items and tables (``index_add_`` and gathers on a flattened ``(L, n_buckets)``
array).

>>> from workbench.hashing import SimHash
>>> t = LSHTables(SimHash(dim=3, K=2, L=4, seed=0))
>>> x = torch.tensor([[1.0, 0, 0], [0.9, 0.1, 0]])
>>> t.add(x, torch.tensor([2.0, 4.0]))
>>> float(t.estimate(x[:1])[0])  # both items share every bucket of these near-parallel vectors
3.0
"""

from __future__ import annotations

from typing import Any

import torch

from workbench.errors import DataError, NonFiniteError, ShapeError
from workbench.hashing.families import HashFamily, from_state_dict

DEFAULT_MAX_BUCKETS = 2 ** 20


class LSHTables:
    """Sketch and item index over ``family.L`` tables of ``family.n_buckets`` buckets (dense storage).

    ``max_buckets`` bounds the buckets per table (dense storage is ``L × n_buckets`` float64 twice): a family whose
    ``K`` implies more raises :class:`~workbench.errors.DataError` asking for a smaller ``K``.
    """

    def __init__(self, family: HashFamily, max_buckets: int = DEFAULT_MAX_BUCKETS,
                 dtype: torch.dtype = torch.float64) -> None:
        if not isinstance(family, HashFamily):
            raise DataError(f"LSHTables: family must be a workbench.hashing HashFamily, got {type(family).__name__}")
        if family.n_buckets > max_buckets:
            raise DataError(f"LSHTables: {family!r} has {family.n_buckets} buckets per table, more than "
                            f"max_buckets={max_buckets} (dense storage); use a smaller K (at most "
                            f"{_largest_k(family, max_buckets)} for this family) or raise max_buckets")
        self.family = family
        self.L, self.n_buckets = family.L, family.n_buckets
        device = family.device
        self.sums = torch.zeros(self.L, self.n_buckets, dtype=dtype, device=device)
        self.counts = torch.zeros(self.L, self.n_buckets, dtype=dtype, device=device)
        self._offsets = torch.arange(self.L, device=device, dtype=torch.int64) * self.n_buckets
        self._ids: torch.Tensor | None = None  # item index: ids and their codes
        self._codes: torch.Tensor | None = None
        self._sorted: tuple[torch.Tensor, torch.Tensor] | None = None
        self._starts: torch.Tensor | None = None  # bucket start offsets into the sorted index (built on demand)

    # ------------------------------------------------------------------ codes
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, L)`` bucket codes: ``x`` itself when it already is an int64 ``(n, L)`` code tensor, else
        ``family.codes(x)``."""
        if not (isinstance(x, torch.Tensor) and x.dtype == torch.int64 and x.ndim == 2 and x.shape[1] == self.L):
            return self.family.codes(x)
        codes = x
        if len(codes) and (int(codes.min()) < 0 or int(codes.max()) >= self.n_buckets):
            raise DataError(f"LSHTables: bucket codes must lie in [0, {self.n_buckets}), got "
                            f"[{int(codes.min())}, {int(codes.max())}]")
        return codes.to(self._offsets.device)

    def _flat(self, codes: torch.Tensor) -> torch.Tensor:
        return (codes + self._offsets).reshape(-1)

    # ------------------------------------------------------------------ sketch
    def add(self, x: torch.Tensor, values: torch.Tensor, weights: torch.Tensor | float = 1.0) -> None:
        """Insert items: ``counts += w``, ``sums += w·value`` in each item's bucket of every table. Negative
        weights remove items inserted with the same value. NaN/inf values are refused and nothing changes."""
        codes = self.codes(x)
        v = self._values(values, len(codes), "values")
        w = self._values(torch.as_tensor(weights, dtype=self.sums.dtype).expand(len(codes)), len(codes), "weights")
        flat = self._flat(codes)
        self.counts.view(-1).index_add_(0, flat, w.repeat_interleave(self.L))
        self.sums.view(-1).index_add_(0, flat, (w * v).repeat_interleave(self.L))

    def add_values(self, x: torch.Tensor, delta: torch.Tensor) -> None:
        """``sums += delta`` in each item's buckets, counts unchanged (an item's value changed by ``delta``)."""
        codes = self.codes(x)
        d = self._values(delta, len(codes), "delta")
        self.sums.view(-1).index_add_(0, self._flat(codes), d.repeat_interleave(self.L))

    def _values(self, values: Any, n: int, name: str) -> torch.Tensor:
        v = torch.as_tensor(values, dtype=self.sums.dtype, device=self.sums.device).reshape(-1)
        if len(v) != n:
            raise ShapeError(f"LSHTables: {name} must hold one number per item ({n}), got {len(v)}")
        if not bool(torch.isfinite(v).all()):
            bad = int((~torch.isfinite(v)).nonzero()[0])
            raise NonFiniteError(f"LSHTables: {name} must be finite, got {float(v[bad])} at position {bad}; "
                                 "the tables are unchanged")
        return v

    def keys(self, x: torch.Tensor) -> torch.Tensor:
        """Flat bucket keys ``(n·L,)`` (``l·n_buckets + code``) of ``x`` or of codes: precompute them for items
        queried again and again (:meth:`query_keys`)."""
        return self._flat(self.codes(x))

    def query(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(num, den)``: the per-table means of the sums and of the counts in each query's buckets, unbiased
        estimates of ``Σ_i k(x, x_i) w_i y_i`` and ``Σ_i k(x, x_i) w_i``."""
        return self.query_keys(self.keys(x))

    def query_keys(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`query` from precomputed :meth:`keys` (no hashing, no checks: the fast path)."""
        if self.sums.device.type == "cpu":
            # numpy's single-threaded gather: torch's intra-op threads cost more than they save at these sizes,
            # and far more on a loaded machine (measured: 1.5 ms vs 15 ms for 46k keys on 2 busy cores)
            k = keys.numpy()
            num = torch.from_numpy(self.sums.numpy().reshape(-1)[k].reshape(-1, self.L).sum(1) / self.L)
            den = torch.from_numpy(self.counts.numpy().reshape(-1)[k].reshape(-1, self.L).sum(1) / self.L)
            return num, den
        num = self.sums.view(-1)[keys].view(-1, self.L).sum(1) / self.L
        den = self.counts.view(-1)[keys].view(-1, self.L).sum(1) / self.L
        return num, den

    def estimate(self, x: torch.Tensor, empty: float = float("nan")) -> torch.Tensor:
        """The sketch's Nadaraya–Watson estimate ``num / den`` per query; ``empty`` where no item collides."""
        return self._ratio(*self.query(x), empty)

    def estimate_keys(self, keys: torch.Tensor, empty: float = float("nan")) -> torch.Tensor:
        """:meth:`estimate` from precomputed :meth:`keys` (the fast path)."""
        return self._ratio(*self.query_keys(keys), empty)

    @staticmethod
    def _ratio(num: torch.Tensor, den: torch.Tensor, empty: float) -> torch.Tensor:
        return torch.where(den > 0, num / den.clamp_min(1e-300), torch.full_like(num, empty))

    def clear(self) -> None:
        self.sums.zero_()
        self.counts.zero_()

    # ------------------------------------------------------------------ item lists
    def index(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> None:
        """Store item ids (default ``0..n-1``) by bucket; replaces a previous index."""
        codes = self.codes(x)
        ids = torch.arange(len(codes), device=codes.device) if ids is None else torch.as_tensor(ids).reshape(-1)
        if len(ids) != len(codes):
            raise ShapeError(f"LSHTables.index: {len(ids)} ids for {len(codes)} items")
        self._ids, self._codes = ids.to(codes.device, torch.int64), codes
        keys = self._flat(codes)
        order = keys.argsort(stable=True)
        self._sorted = (keys[order], self._ids.repeat_interleave(self.L)[order])
        self._starts = None

    def bucket_items(self, table: int, bucket: int) -> torch.Tensor:
        """The ids stored in one bucket of one table."""
        keys, ids = self._need_index()
        key = int(table) * self.n_buckets + int(bucket)
        lo = int(torch.searchsorted(keys, key))
        hi = int(torch.searchsorted(keys, key, right=True))
        return ids[lo:hi]

    def bucket_ranges(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(lo, hi, ids)``: the items in query ``i``'s bucket of table ``l`` are ``ids[lo[i, l]:hi[i, l]]``
        (``lo``, ``hi`` int64 ``(n, L)``; two reads of :meth:`bucket_starts` per bucket, no copies of the items).
        The raw form of :meth:`candidates` for callers that union the buckets themselves (SLIDE's active sets)."""
        starts, ids = self.bucket_starts()
        q = self._flat(self.codes(x))
        return starts[q].view(-1, self.L), starts[q + 1].view(-1, self.L), ids

    def candidates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(query, item)``: every pair whose codes agree in at least one table, each pair once, sorted by query
        then item (vectorized: searchsorted ranges expanded with ``repeat_interleave``)."""
        keys, ids = self._need_index()
        q = self._flat(self.codes(x))
        lo = torch.searchsorted(keys, q)
        hi = torch.searchsorted(keys, q, right=True)
        lengths = hi - lo
        query_of = torch.arange(len(q), device=q.device).div(self.L, rounding_mode="floor")
        qi = query_of.repeat_interleave(lengths)
        starts = lo.repeat_interleave(lengths)
        within = torch.arange(int(lengths.sum()), device=q.device) - (lengths.cumsum(0) - lengths).repeat_interleave(
            lengths)
        items = ids[starts + within]
        big = int(ids.max()) + 1 if len(ids) else 1
        pair = torch.unique(qi * big + items)
        return pair.div(big, rounding_mode="floor"), pair % big

    def _need_index(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._sorted is None:
            raise DataError("LSHTables: no item index yet; call .index(x) first")
        return self._sorted

    def bucket_starts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(starts, ids)``: bucket ``key`` (a flat :meth:`keys` value, ``l·n_buckets + code``) holds
        ``ids[starts[key]:starts[key + 1]]``. ``starts`` has ``L·n_buckets + 1`` entries, built once per
        :meth:`index`; a look-up is one read whatever the number of items (LSH sampling draws from a bucket in O(1)).
        """
        sorted_keys, ids = self._need_index()
        if self._starts is None:
            counts = torch.bincount(sorted_keys, minlength=self.L * self.n_buckets)
            self._starts = torch.zeros(self.L * self.n_buckets + 1, dtype=torch.int64, device=sorted_keys.device)
            self._starts[1:] = counts.cumsum(0)
        return self._starts, ids

    def item_codes(self) -> torch.Tensor:
        """The ``(n, L)`` bucket codes of the indexed items, in the order they were given to :meth:`index` (row
        ``i`` is item ``i`` when :meth:`index` used its default ids)."""
        self._need_index()
        return self._codes

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        out = {"family": self.family.state_dict(), "sums": self.sums.cpu().clone(),
               "counts": self.counts.cpu().clone()}
        if self._codes is not None:
            out["index_ids"], out["index_codes"] = self._ids.cpu().clone(), self._codes.cpu().clone()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> LSHTables:
        for key in ("sums", "counts"):
            if tuple(state[key].shape) != tuple(getattr(self, key).shape):
                raise ShapeError(f"LSHTables.load_state_dict: {key} has shape {tuple(state[key].shape)}, expected "
                                 f"{tuple(getattr(self, key).shape)}")
        self.family.load_state_dict(state["family"])
        self.sums.copy_(state["sums"])
        self.counts.copy_(state["counts"])
        if "index_ids" in state:
            self.index(state["index_codes"].to(self.sums.device), state["index_ids"])
        return self

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], max_buckets: int = DEFAULT_MAX_BUCKETS) -> LSHTables:
        return cls(from_state_dict(state["family"]), max_buckets=max_buckets).load_state_dict(state)

    def to(self, device: Any) -> LSHTables:
        self.family.to(device)
        self.sums, self.counts, self._offsets = (t.to(device) for t in (self.sums, self.counts, self._offsets))
        if self._codes is not None:
            self.index(self._codes.to(device), self._ids.to(device))
        return self

    def __repr__(self) -> str:
        return f"LSHTables({self.family!r}, items={float(self.counts[0].sum()):g})"


def _largest_k(family: HashFamily, max_buckets: int) -> int:
    k = 1
    while family.base ** (k + 1) <= max_buckets:
        k += 1
    return k


__all__ = ["LSHTables", "DEFAULT_MAX_BUCKETS"]
