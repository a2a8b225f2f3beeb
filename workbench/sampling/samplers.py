"""Data samplers with one interface: ``weights()``, ``update(indices, losses)``, ``sample(batch_size)``.

A sampler keeps a non-negative score per training sample and samples with probability

    p_i = (1 − floor) · s_i / Σ_j s_j + floor / N,

the uniform ``floor`` keeping every sample reachable. ``sample(B)`` draws B indices (with replacement) and returns
importance weights ``1/(N·p_i)``: the weighted mean ``(1/B) Σ_b ℓ_{i_b} / (N p_{i_b})`` is an unbiased estimate of
the full mean loss ``(1/N) Σ_i ℓ_i`` (its expectation is ``Σ_i p_i ℓ_i / (N p_i)``).

* ``uniform``: ``s_i = 1``; without replacement (each batch distinct samples) by default, weights 1.
* ``static``: fixed scores from a proxy fitted before training (:func:`workbench.sampling.proxy.static_scores`:
  out-of-fold losses of a logistic regression): cheap, but blind to what the network learns.
* ``loss``: the dynamic baseline: each step a uniform pool of ``pool × B`` candidates is scored by an explicit
  forward pass of the current model, and the batch is drawn from the pool ∝ loss (with the floor); weights
  ``1/(P·q_j)`` for a pool of P make the estimate unbiased for the pool's mean, hence for the full mean. Strong,
  but every step pays a forward pass over the pool.
* ``nw``: exact Nadaraya–Watson regression of the last observed losses over the inputs with the LSH collision
  kernel ``k(x, x') = p(x, x')^K`` (SimHash: ``(1 − θ/π)^K``): ``s_i = Σ_j k(x_i, x_j) ℓ_j / Σ_j k(x_i, x_j)`` over
  the samples seen so far. The reference: ``O(N²)`` per refresh.
* ``nw_sketch``: the paper's method ("Adaptive Sampling for Deep Learning via Efficient Nonparametric Proxies",
  arXiv 2311.13583): the same estimator from L hash tables holding per-bucket sums of losses and counts
  (:class:`workbench.hashing.LSHTables`); updating B losses costs ``O(B·L)``, scoring all samples ``O(N·L)``, no
  extra forward pass.

Losses given to ``update`` must be finite (NaN/inf are refused and nothing changes); indices must lie in
``[0, N)``. Samplers are seeded: the same seed and the same updates give the same samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from workbench.checks import integer, number, option
from workbench.errors import DataError, NonFiniteError, ShapeError
from workbench.hashing import HASH_FAMILIES, HashFamily, LSHTables, make_family

LossFn = Callable[[torch.Tensor], torch.Tensor]


def _as_index(indices: Any, n: int, where: str) -> torch.Tensor:
    idx = torch.as_tensor(indices)
    if idx.ndim != 1:
        idx = idx.reshape(-1)
    if len(idx) and (torch.is_floating_point(idx) or idx.dtype == torch.bool):
        raise DataError(f"{where}: indices must be integers, got dtype {idx.dtype}")
    idx = idx.to(torch.int64)
    if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= n):
        bad = int(idx[(idx < 0) | (idx >= n)][0])
        raise DataError(f"{where}: index {bad} is out of range for a data set of {n} samples (valid: 0..{n - 1})")
    return idx


class Sampler:
    """Base class: ``n`` samples, a uniform ``floor`` in [0, 1], a seed. Subclasses define :meth:`scores`."""

    name = "base"
    needs_loss_fn = False

    def __init__(self, n: int, *, floor: float = 0.1, seed: int = 0, replacement: bool = True) -> None:
        where = type(self).__name__
        self.n = integer("n", n, low=1, where=where)
        self.floor = number("floor", floor, low=0, high=1, where=where)
        self.seed = integer("seed", seed, where=where)
        self.replacement = bool(replacement)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.loss_fn: LossFn | None = None
        self.seconds = {"update": 0.0, "sample": 0.0}
        self.calls = {"update": 0, "sample": 0}
        self._p: torch.Tensor | None = None

    # ------------------------------------------------------------------ scores and probabilities
    def scores(self) -> torch.Tensor:
        """Non-negative score per sample ``(n,)`` (float64)."""
        raise NotImplementedError

    def weights(self) -> torch.Tensor:
        """The sampling probabilities ``p`` ``(n,)`` float64 (sum 1): scores normalised, mixed with the floor."""
        if self._p is None:
            s = self.scores()
            total = float(s.sum())
            if not np.isfinite(total) or total <= 0:
                if self.floor == 0:
                    raise DataError(f"{type(self).__name__}: every score is zero and floor=0, so the sampling "
                                    "weights would all be zero; use floor > 0 or scores with a positive entry")
                p = torch.full((self.n,), 1.0 / self.n, dtype=torch.float64)
            else:
                p = (1 - self.floor) * s / total + self.floor / self.n
            self._p = p
        return self._p

    # ------------------------------------------------------------------ update
    def update(self, indices: Any, losses: Any) -> None:
        """Record the losses just observed for ``indices`` (duplicates averaged). Refuses indices out of range and
        non-finite losses before changing anything."""
        where = f"{type(self).__name__}.update"
        idx = _as_index(indices, self.n, where)
        loss = torch.as_tensor(losses, dtype=torch.float64).detach().reshape(-1).cpu()
        if len(loss) != len(idx):
            raise ShapeError(f"{where}: {len(loss)} losses for {len(idx)} indices")
        if not bool(torch.isfinite(loss).all()):
            bad = int((~torch.isfinite(loss)).nonzero()[0])
            raise NonFiniteError(f"{where}: losses must be finite, got {float(loss[bad])} for index "
                                 f"{int(idx[bad])}; the sampler is unchanged")
        if len(idx) == 0:
            return
        t0 = time.perf_counter()
        uniq, inverse = torch.unique(idx, return_inverse=True)
        if len(uniq) != len(idx):
            total = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, loss)
            count = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, torch.ones_like(loss))
            loss = total / count
        else:
            loss = torch.zeros(len(uniq), dtype=torch.float64).index_copy_(0, inverse, loss)
        self._update(uniq, loss)
        self._p = None
        self.seconds["update"] += time.perf_counter() - t0
        self.calls["update"] += 1

    def _update(self, indices: torch.Tensor, losses: torch.Tensor) -> None:
        """Unique, checked indices and their losses."""

    def bind(self, loss_fn: LossFn | None) -> None:
        """Give the sampler a function ``indices -> per-sample losses`` of the current model (the ``loss``
        sampler's explicit forward passes; :func:`workbench.dynamics.train.train` binds it)."""
        self.loss_fn = loss_fn

    # ------------------------------------------------------------------ sampling
    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(indices, importance)``: ``batch_size`` indices and weights ``1/(N·p_i)`` (float32)."""
        where = f"{type(self).__name__}.sample"
        b = integer("batch_size", batch_size, low=1, where=where)
        if not self.replacement and b > self.n:
            raise DataError(f"{where}: batch_size={b} is larger than the data set of {self.n} samples without "
                            f"replacement; use batch_size <= {self.n} or replacement=True")
        t0 = time.perf_counter()
        idx, w = self._sample(b)
        self.seconds["sample"] += time.perf_counter() - t0
        self.calls["sample"] += 1
        return idx, w

    def _sample(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.weights()
        idx = torch.multinomial(p, b, replacement=True, generator=self.generator)
        return idx, (1.0 / (self.n * p[idx])).float()

    def cost_per_step(self) -> float:
        """Mean seconds of ``update`` + ``sample`` per sampled batch so far."""
        steps = max(1, self.calls["sample"])
        return (self.seconds["update"] + self.seconds["sample"]) / steps

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "n": self.n, "floor": self.floor, "seed": self.seed,
                "generator": self.generator.get_state(), **self._state()}

    def _state(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> Sampler:
        if state.get("name") != self.name or state.get("n") != self.n:
            raise DataError(f"{type(self).__name__}.load_state_dict: state of a {state.get('name')!r} sampler of "
                            f"{state.get('n')} samples does not fit a {self.name!r} sampler of {self.n}")
        self.generator.set_state(state["generator"])
        self._load(state)
        self._p = None
        return self

    def _load(self, state: dict[str, Any]) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, floor={self.floor}, seed={self.seed})"


class UniformSampler(Sampler):
    """Every sample equally likely; without replacement by default (a batch holds distinct samples), weights 1."""

    name = "uniform"

    def __init__(self, n: int, *, seed: int = 0, replacement: bool = False, floor: float = 1.0) -> None:
        super().__init__(n, floor=floor, seed=seed, replacement=replacement)

    def scores(self) -> torch.Tensor:
        return torch.ones(self.n, dtype=torch.float64)

    def _sample(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.replacement:
            idx = torch.randint(0, self.n, (b,), generator=self.generator)
        else:
            idx = torch.randperm(self.n, generator=self.generator)[:b]
        return idx, torch.ones(b)


class StaticSampler(Sampler):
    """Fixed scores (for example :func:`workbench.sampling.proxy.static_scores`), never updated.

    The default ``floor`` is 0.5, not the 0.1 of the adaptive samplers: a proxy's out-of-fold losses are heavy-tailed
    and never flatten as the network learns (on digits the top 1 % of samples hold 37 % of the score mass, the median
    score is 0.0045 nats), so with floor 0.1 a batch of 32 holds about ten draws of the same 14 samples and
    digits-cnn's BatchNorm training collapsed to chance (test accuracy 0.100 after 600 steps of B = 32, lr 0.05, seed
    0; 0.981 with floor 0.5; the loss sampler reached 0.992 with floor 0.1 on the same run). The floor also bounds the
    importance weight ``1/(N·p_i)`` by ``1/floor``.
    """

    name = "static"

    def __init__(self, n: int, scores: Any, *, floor: float = 0.5, seed: int = 0) -> None:
        super().__init__(n, floor=floor, seed=seed)
        s = torch.as_tensor(np.asarray(scores, dtype=np.float64)).reshape(-1)
        if len(s) != self.n:
            raise ShapeError(f"StaticSampler: scores must hold one number per sample ({self.n}), got {len(s)}")
        if not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
            raise DataError("StaticSampler: scores must be finite and non-negative")
        if self.floor == 0 and float(s.sum()) <= 0:
            raise DataError("StaticSampler: every score is zero and floor=0, so the sampling weights would all be "
                            "zero; use floor > 0 or scores with a positive entry")
        self._scores = s

    def scores(self) -> torch.Tensor:
        return self._scores


class _LastLoss(Sampler):
    """Keeps the last observed loss of every sample and which samples were seen."""

    def __init__(self, n: int, **kw: Any) -> None:
        super().__init__(n, **kw)
        self.last = torch.zeros(self.n, dtype=torch.float64)
        self.seen = torch.zeros(self.n, dtype=torch.bool)

    def _record(self, idx: torch.Tensor, loss: torch.Tensor) -> None:
        self.last[idx] = loss
        self.seen[idx] = True

    def prior(self) -> float:
        """The score of a sample no estimate reaches: the mean observed loss (1 before any)."""
        return float(self.last[self.seen].mean()) if bool(self.seen.any()) else 1.0

    def _state(self) -> dict[str, Any]:
        return {"last": self.last.clone(), "seen": self.seen.clone()}

    def _load(self, state: dict[str, Any]) -> None:
        self.last.copy_(state["last"])
        self.seen.copy_(state["seen"])


class LossSampler(_LastLoss):
    """Dynamic baseline: explicit losses of a uniform candidate pool each step (``pool`` × batch candidates)."""

    name = "loss"
    needs_loss_fn = True

    def __init__(self, n: int, *, pool: float = 4.0, floor: float = 0.1, seed: int = 0) -> None:
        super().__init__(n, floor=floor, seed=seed)
        self.pool = number("pool", pool, low=1, where="LossSampler")

    def _update(self, indices: torch.Tensor, losses: torch.Tensor) -> None:
        self._record(indices, losses)

    def scores(self) -> torch.Tensor:
        return torch.where(self.seen, self.last, torch.full_like(self.last, self.prior()))

    def _sample(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.loss_fn is None:
            raise DataError("LossSampler.sample: no loss function bound; train(..., sampler=...) binds the model's "
                            "per-sample loss, or call sampler.bind(fn) with fn(indices) -> losses")
        size = min(self.n, max(b, int(round(self.pool * b))))
        pool = torch.randperm(self.n, generator=self.generator)[:size]
        with torch.no_grad():
            losses = torch.as_tensor(self.loss_fn(pool), dtype=torch.float64).reshape(-1).cpu()
        if len(losses) != size or not bool(torch.isfinite(losses).all()):
            raise NonFiniteError(f"LossSampler.sample: the bound loss function must return {size} finite losses")
        self._record(pool, losses)
        self._p = None
        total = float(losses.clamp_min(0).sum())
        q = losses.clamp_min(0) / total if total > 0 else torch.full_like(losses, 1.0 / size)
        q = (1 - self.floor) * q + self.floor / size
        pick = torch.multinomial(q, b, replacement=True, generator=self.generator)
        return pool[pick], (1.0 / (size * q[pick])).float()


def _features(features: Any, n: int, center: bool, where: str) -> torch.Tensor:
    f = torch.as_tensor(np.asarray(features, dtype=np.float32) if not isinstance(features, torch.Tensor)
                        else features).float()
    f = f.reshape(len(f), -1)
    if len(f) != n:
        raise ShapeError(f"{where}: features must have one row per sample ({n}), got {len(f)}")
    if not bool(torch.isfinite(f).all()):
        raise NonFiniteError(f"{where}: features must be finite")
    return f - f.mean(0) if center else f


class _NWBase(_LastLoss):
    def __init__(self, features: Any, *, K: int = 8, L: int = 32, family: str = "simhash", floor: float = 0.1,
                 seed: int = 0, center: bool = True, family_kw: dict[str, Any] | None = None) -> None:
        where = type(self).__name__
        f = torch.as_tensor(features) if not isinstance(features, torch.Tensor) else features
        super().__init__(len(f), floor=floor, seed=seed)
        option("family", family, tuple(HASH_FAMILIES), where=where)
        self.features = _features(features, self.n, center, where)
        self.family: HashFamily = make_family(family, self.features.shape[1], K, L, seed=seed,
                                              **(family_kw or {}))
        self.K, self.L = self.family.K, self.family.L


class NWSampler(_NWBase):
    """Exact Nadaraya–Watson over the seen samples with the collision kernel (reference, ``O(N²)``).

    With SimHash the kernel is the closed form ``(1 − θ/π)^K``; with a family without one (DWTA) it is the kernel the
    family's own L tables realise, ``(1/L) Σ_l [h_l(x) = h_l(x')]``.
    """

    name = "nw"

    def __init__(self, features: Any, **kw: Any) -> None:
        super().__init__(features, **kw)
        self.kernel = collision_kernel(self.family, self.features)

    def _update(self, indices: torch.Tensor, losses: torch.Tensor) -> None:
        self._record(indices, losses)

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "family": self.family.state_dict()}

    def _load(self, state: dict[str, Any]) -> None:
        super()._load(state)
        self.family.load_state_dict(state["family"])
        self.kernel = collision_kernel(self.family, self.features)

    def estimate(self) -> torch.Tensor:
        """The NW estimate at every sample (NaN where no seen sample has kernel weight)."""
        m = self.seen.double()
        num = self.kernel @ (m * self.last)
        den = self.kernel @ m
        return torch.where(den > 0, num / den.clamp_min(1e-300), torch.full_like(num, float("nan")))

    def scores(self) -> torch.Tensor:
        e = self.estimate()
        return torch.where(torch.isnan(e), torch.full_like(e, self.prior()), e).clamp_min(0)


class NWSketchSampler(_NWBase):
    """The NW estimator from an LSH sketch: per-bucket sums of the last losses and counts, L tables."""

    name = "nw_sketch"

    def __init__(self, features: Any, **kw: Any) -> None:
        super().__init__(features, **kw)
        self.tables = LSHTables(self.family)
        self.codes = self.tables.codes(self.features)  # (n, L): hashed once, the inputs do not change
        self._keys = self.tables.keys(self.codes)  # flat keys of every sample, for the O(N·L) gather

    def _update(self, indices: torch.Tensor, losses: torch.Tensor) -> None:
        old = self.seen[indices]
        new_idx, old_idx = indices[~old], indices[old]
        if len(new_idx):
            self.tables.add(self.codes[new_idx], losses[~old])
        if len(old_idx):
            self.tables.add_values(self.codes[old_idx], losses[old] - self.last[old_idx])
        self._record(indices, losses)

    def estimate(self, indices: Any = None) -> torch.Tensor:
        """The sketch's NW estimate at every sample (or at ``indices``); NaN where no seen sample collides."""
        if indices is None:
            return self.tables.estimate_keys(self._keys)
        return self.tables.estimate(self.codes[_as_index(indices, self.n, "estimate")])

    def scores(self) -> torch.Tensor:
        e = self.estimate()
        return torch.where(torch.isnan(e), torch.full_like(e, self.prior()), e).clamp_min(0)

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "tables": self.tables.state_dict()}

    def _load(self, state: dict[str, Any]) -> None:
        super()._load(state)
        self.tables.load_state_dict(state["tables"])  # the hash functions too: rehash the samples
        self.codes = self.tables.codes(self.features)
        self._keys = self.tables.keys(self.codes)


def collision_kernel(family: HashFamily, features: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
    """``(n, m)`` float64 collision kernel between rows of ``features`` and ``other`` (default: itself): the closed
    form ``p^K`` where the family has one (SimHash: cosine similarity), else the fraction of the family's tables in
    which the two collide."""
    other = features if other is None else other
    if isinstance(family, HASH_FAMILIES["simhash"]):
        a = features.double() / features.double().norm(dim=1, keepdim=True).clamp_min(1e-12)
        b = other.double() / other.double().norm(dim=1, keepdim=True).clamp_min(1e-12)
        return family.collision_probability(a @ b.T)
    ca, cb = family.codes(features), family.codes(other)
    out = torch.zeros(len(ca), len(cb), dtype=torch.float64)
    for t in range(family.L):  # a reference over the L tables: O(n·m) per table
        out += (ca[:, t, None] == cb[None, :, t]).double()
    return out / family.L


SAMPLERS: dict[str, type[Sampler]] = {"uniform": UniformSampler, "static": StaticSampler, "loss": LossSampler,
                                      "nw": NWSampler, "nw_sketch": NWSketchSampler}


def make_sampler(name: str, x: Any, y: Any = None, *, seed: int = 0, scores: Any = None, **kw: Any) -> Sampler:
    """The sampler registered as ``name`` for training inputs ``x`` (labels ``y``, needed by ``static`` to fit
    its proxy unless ``scores`` are given). Unknown names raise :class:`~workbench.errors.OptionError` listing
    them. Extra keywords go to the sampler (``floor``, ``K``, ``L``, ``family``, ``pool``)."""
    option("sampler", name, tuple(SAMPLERS), where="make_sampler")
    n = len(x)
    if name == "uniform":
        return UniformSampler(n, seed=seed, **kw)
    if name == "static":
        if scores is None:
            if y is None:
                raise DataError("make_sampler('static'): give the labels y (to fit the proxy) or scores=")
            from workbench.sampling.proxy import static_scores

            scores = static_scores(x, y, seed=seed)
        return StaticSampler(n, scores, seed=seed, **kw)
    if name == "loss":
        return LossSampler(n, seed=seed, **kw)
    return SAMPLERS[name](x, seed=seed, **kw)  # type: ignore[call-arg]


__all__ = ["Sampler", "UniformSampler", "StaticSampler", "LossSampler", "NWSampler", "NWSketchSampler",
           "SAMPLERS", "make_sampler", "collision_kernel"]
