"""Locality-sensitive hash families with one interface: ``K`` hashes per table concatenated into one bucket code,
``L`` independent tables, a whole batch hashed in one torch call.

* :class:`SimHash`: signed random projections (Charikar 2002). Each bit is ``sign(⟨r, x⟩)`` for a Gaussian ``r``;
  two vectors at angle ``θ`` get the same bit with probability ``p = 1 − θ/π`` (Goemans & Williamson 1995), the same
  K-bit bucket with ``p^K``, and the same bucket in at least one of L tables with ``1 − (1 − p^K)^L``.
* :class:`DWTA`: densified winner-take-all (Yagnik et al. 2011; densification by Chen & Shrivastava 2018, the family
  SLIDE uses). Each hash looks at ``bin_size`` random coordinates and returns the position of the largest; a hash
  whose coordinates are all zero (sparse non-negative input) borrows the value of another, randomly chosen hash of
  the same item ("densification"). It depends only on the order of coordinates, not their scale. Its collision
  probability has no closed form in terms of one similarity for ``bin_size > 2`` (use :func:`measured_collision`
  to measure it); for ``bin_size = 2`` and inputs without zeros or ties it is the probability that a random
  coordinate pair is ordered alike, ``(1 + τ)/2`` with Kendall's τ, and ``collision_probability`` gives it.

A family is seeded (the same seed gives the same functions on any device), moves with ``.to(device)`` and
round-trips through ``state_dict()`` / ``load_state_dict()``. ``codes(x)`` gives an ``(n, L)`` int64 tensor of bucket
ids in ``[0, n_buckets)``.

>>> h = SimHash(dim=4, K=3, L=2, seed=0)
>>> h.codes(torch.eye(4)).shape
torch.Size([4, 2])
>>> round(float(h.collision_probability(1.0)), 6), round(float(h.collision_probability(0.0)), 6)
(1.0, 0.125)
"""

from __future__ import annotations

import math
from typing import Any

import torch

from workbench.checks import integer, option
from workbench.errors import DataError, ShapeError

MAX_CODE_BITS = 62  # a bucket code must fit in an int64


class HashFamily:
    """Base class: ``dim`` inputs, ``K`` hashes per table, ``L`` tables. Subclasses fill :meth:`_hashes`."""

    name = "base"
    #: True when :meth:`collision_probability` has a closed form
    closed_form = False

    def __init__(self, dim: int, K: int, L: int, seed: int = 0) -> None:
        where = type(self).__name__
        self.dim = integer("dim", dim, low=1, where=where)
        self.K = integer("K", K, low=1, where=where)
        self.L = integer("L", L, low=1, where=where)
        self.seed = integer("seed", seed, where=where)
        if self.K > self.max_K():
            raise DataError(f"{where}: K={K} is too large: {self.K} hashes of {self.bits_per_hash():g} bits give "
                            f"{self.K * self.bits_per_hash():g}-bit bucket codes, more than the {MAX_CODE_BITS} an "
                            f"int64 holds; use K <= {self.max_K()}")
        self._generator = torch.Generator().manual_seed(self.seed)

    # ------------------------------------------------------------------ sizes
    def bits_per_hash(self) -> float:
        raise NotImplementedError

    def max_K(self) -> int:
        """The largest K whose bucket codes fit in an int64."""
        return max(1, int(MAX_CODE_BITS // self.bits_per_hash()))

    @property
    def base(self) -> int:
        """Number of values one hash takes (2 for SimHash, ``bin_size`` for DWTA)."""
        raise NotImplementedError

    @property
    def n_buckets(self) -> int:
        """Buckets per table: ``base ** K``."""
        return int(self.base) ** self.K

    # ------------------------------------------------------------------ hashing
    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ShapeError(f"{type(self).__name__}: inputs must have shape (n, {self.dim}) or ({self.dim},), "
                             f"got {tuple(x.shape)}")
        if not torch.is_floating_point(x):
            x = x.float()
        return x

    def _hashes(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, L, K)`` int64 hash values in ``[0, base)``."""
        raise NotImplementedError

    def hashes(self, x: torch.Tensor) -> torch.Tensor:
        """The individual hash values, ``(n, L, K)`` int64 in ``[0, base)``."""
        return self._hashes(self._check_input(x))

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Bucket ids ``(n, L)`` int64 in ``[0, n_buckets)``: the K hashes of a table read as digits in ``base``."""
        h = self.hashes(x)
        weights = self.base ** torch.arange(self.K, device=h.device, dtype=torch.int64)
        return (h * weights).sum(-1)

    # ------------------------------------------------------------------ collision probabilities
    def hash_collision_probability(self, similarity: Any) -> torch.Tensor:
        """Probability that one hash agrees, as a function of the family's similarity."""
        raise DataError(f"{self!r} has no closed-form collision probability; measure it with "
                        "workbench.hashing.measured_collision")

    def collision_probability(self, similarity: Any, tables: int | str = 1) -> torch.Tensor:
        """``p^K`` (one table, ``tables=1``), or ``1 − (1 − p^K)^L`` for colliding in at least one of the L tables
        (``tables="any"``), with ``p`` the per-hash probability at ``similarity``."""
        pk = self.hash_collision_probability(similarity) ** self.K
        if tables == 1:
            return pk
        option("tables", tables, (1, "any"), where="collision_probability")
        return 1 - (1 - pk) ** self.L

    # ------------------------------------------------------------------ state
    def _tensors(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Parameters and the random functions, enough to rebuild the same hashes."""
        return {"family": self.name, "dim": self.dim, "K": self.K, "L": self.L, "seed": self.seed,
                **self._config(), **{k: v.detach().cpu().clone() for k, v in self._tensors().items()}}

    def _config(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> HashFamily:
        for key in ("dim", "K", "L", *self._config()):
            if state.get(key) != getattr(self, key):
                raise DataError(f"{type(self).__name__}.load_state_dict: {key}={state.get(key)!r} does not match "
                                f"this family's {getattr(self, key)!r}")
        for key, value in self._tensors().items():
            if tuple(state[key].shape) != tuple(value.shape):
                raise ShapeError(f"{type(self).__name__}.load_state_dict: {key} has shape {tuple(state[key].shape)},"
                                 f" expected {tuple(value.shape)}")
            value.copy_(state[key].to(value.device))
        self.seed = int(state.get("seed", self.seed))
        return self

    def to(self, device: Any) -> HashFamily:
        for key, value in self._tensors().items():
            setattr(self, key, value.to(device))
        return self

    @property
    def device(self) -> torch.device:
        return next(iter(self._tensors().values())).device

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self._config().items())
        return f"{type(self).__name__}(dim={self.dim}, K={self.K}, L={self.L}{extra}, seed={self.seed})"


class SimHash(HashFamily):
    """Signed random projections: bit ``k`` of table ``l`` is ``[⟨r_lk, x⟩ ≥ 0]`` with ``r_lk ~ N(0, I)``.

    Similarity is the cosine; ``hash_collision_probability(cos) = 1 − arccos(cos)/π`` (Charikar 2002). One matrix
    product hashes a batch through all tables.
    """

    name = "simhash"
    closed_form = True

    def __init__(self, dim: int, K: int, L: int, seed: int = 0) -> None:
        super().__init__(dim, K, L, seed)
        self.projections = torch.randn(self.dim, self.L * self.K, generator=self._generator)

    def bits_per_hash(self) -> float:
        return 1.0

    @property
    def base(self) -> int:
        return 2

    def _hashes(self, x: torch.Tensor) -> torch.Tensor:
        proj = x.to(self.projections.dtype) @ self.projections.to(x.device)
        return (proj >= 0).to(torch.int64).view(len(x), self.L, self.K)

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Bucket ids ``(n, L)``: as :meth:`HashFamily.codes`, the bits weighted by powers of two in one float32
        product (exact: the sums are integers below ``2^24``) instead of int64 passes over ``(n, L, K)``."""
        if self.K > 24:
            return super().codes(x)
        x = self._check_input(x)
        proj = x.to(self.projections.dtype) @ self.projections.to(x.device)
        bits = (proj >= 0).view(len(x), self.L, self.K).to(torch.float32)
        pow2 = 2.0 ** torch.arange(self.K, device=bits.device, dtype=torch.float32)
        return (bits @ pow2).to(torch.int64)

    def hash_collision_probability(self, similarity: Any) -> torch.Tensor:
        cos = torch.as_tensor(similarity, dtype=torch.float64).clamp(-1.0, 1.0)
        return 1.0 - torch.arccos(cos) / math.pi

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {"projections": self.projections}


class DWTA(HashFamily):
    """Densified winner-take-all: hash ``j`` of an item is the position (in ``[0, bin_size)``) of the largest of
    ``bin_size`` randomly chosen coordinates; a hash whose coordinates are all zero takes the value of hash
    ``σ_t(j)`` for the first of ``probes`` random re-draws ``σ_t`` that lands on a non-empty hash (Chen &
    Shrivastava 2018, "Densified winner take all (WTA) hashing for sparse datasets"). A hash still empty after the
    probes (an all-zero item) is 0. No closed-form collision probability: see :func:`measured_collision`.
    """

    name = "dwta"

    def __init__(self, dim: int, K: int, L: int, seed: int = 0, bin_size: int = 8, probes: int = 16) -> None:
        self.bin_size = integer("bin_size", bin_size, low=2, high=max(2, int(dim)), where="DWTA")
        self.probes = integer("probes", probes, low=0, where="DWTA")
        super().__init__(dim, K, L, seed)
        n = self.L * self.K
        # bin_size distinct coordinates per hash: the first bin_size of a random permutation
        keys = torch.rand(n, self.dim, generator=self._generator)
        self.bins = keys.argsort(dim=1)[:, : self.bin_size].contiguous()
        self.redraws = torch.randint(0, n, (max(1, self.probes), n), generator=self._generator)

    def bits_per_hash(self) -> float:
        return math.log2(self.bin_size)

    @property
    def base(self) -> int:
        return self.bin_size

    def _config(self) -> dict[str, Any]:
        return {"bin_size": self.bin_size, "probes": self.probes}

    def _hashes(self, x: torch.Tensor) -> torch.Tensor:
        bins = self.bins.to(x.device)
        vals = x[:, bins]  # (n, L*K, bin_size)
        h = vals.argmax(-1)
        empty = (vals == 0).all(-1)
        if self.probes and bool(empty.any()):
            redraws = self.redraws.to(x.device)
            for t in range(self.probes):  # a fixed number of vectorized probes (not a loop over items or tables)
                src = redraws[t]
                fill = empty & ~empty[:, src]
                h = torch.where(fill, h[:, src], h)
                empty = empty & ~fill
                if not bool(empty.any()):
                    break
        h = torch.where(empty, torch.zeros_like(h), h)
        return h.view(len(x), self.L, self.K)

    @property
    def closed_form(self) -> bool:  # type: ignore[override]
        return self.bin_size == 2

    def hash_collision_probability(self, similarity: Any) -> torch.Tensor:
        """Only for ``bin_size = 2`` on inputs without zeros or ties: a hash compares two random coordinates, so
        it agrees when their order agrees: ``(1 + τ)/2`` with ``similarity`` = Kendall's τ-a."""
        if self.bin_size != 2:
            return super().hash_collision_probability(similarity)
        tau = torch.as_tensor(similarity, dtype=torch.float64).clamp(-1.0, 1.0)
        return (1.0 + tau) / 2.0

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {"bins": self.bins, "redraws": self.redraws}


HASH_FAMILIES: dict[str, type[HashFamily]] = {"simhash": SimHash, "dwta": DWTA}


def make_family(name: str, dim: int, K: int, L: int, seed: int = 0, **kw: Any) -> HashFamily:
    """The hash family registered as ``name`` (``"simhash"`` or ``"dwta"``); unknown names raise
    :class:`~workbench.errors.OptionError` listing them."""
    option("family", name, tuple(HASH_FAMILIES), where="make_family")
    return HASH_FAMILIES[name](dim, K, L, seed=seed, **kw)


def from_state_dict(state: dict[str, Any]) -> HashFamily:
    """Rebuild a family saved with ``state_dict()``."""
    name = state.get("family")
    option("family", name, tuple(HASH_FAMILIES), where="from_state_dict")
    kw = {k: state[k] for k in ("bin_size", "probes") if k in state}
    fam = HASH_FAMILIES[name](state["dim"], state["K"], state["L"], seed=state["seed"], **kw)
    return fam.load_state_dict(state)


def measured_collision(family: HashFamily, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of the family's ``L·K`` individual hashes on which each pair ``(x[i], y[i])`` agrees: an unbiased
    estimate of the per-hash collision probability (the measured curve for families without a closed form)."""
    hx, hy = family.hashes(x), family.hashes(y)
    if hx.shape != hy.shape:
        raise ShapeError(f"measured_collision: x and y must hold the same number of items, got {len(hx)} and "
                         f"{len(hy)}")
    return (hx == hy).double().mean(dim=(1, 2))


__all__ = ["HashFamily", "SimHash", "DWTA", "HASH_FAMILIES", "make_family", "from_state_dict",
           "measured_collision", "MAX_CODE_BITS"]
