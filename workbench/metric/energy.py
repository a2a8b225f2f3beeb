"""The energy of a linear metric: minus the NCA objective, plus stochastic-neighbour constraint terms.

NCA (Goldberger, Roweis, Hinton & Salakhutdinov 2004): under a linear map ``L`` each sample ``i`` picks a neighbour
``j ≠ i`` with probability

    p_ij = exp(−‖Lx_i − Lx_j‖²) / Σ_{k≠i} exp(−‖Lx_i − Lx_k‖²),        p_ii = 0,

and ``f(L) = Σ_i Σ_{j: y_j = y_i} p_ij`` is the expected number of samples a stochastic nearest neighbour classifies
correctly (leave one out). Stosic, Stosic, Ludermir & Stosic 2021 ("Distance Metric Learning through Minimization of
the Free Energy", arXiv 2106.05495) read the distances as the constituents of a physical system with energy
``E(L) = −f(L)``, in units of samples (``−n ≤ E ≤ 0``), and minimize it by Metropolis Monte Carlo
(:mod:`workbench.metric.montecarlo`).

Constraints add terms of the same stochastic-neighbour kind, each in [0, 1] and weighted by ``weight``:

* must-link ``(i, j)``: ``−½(p_ij + p_ji)`` (reward being each other's stochastic neighbour);
* cannot-link ``(i, j)``: ``+½(p_ij + p_ji)``;
* relative triplet ``(a, b, c)`` ("a is closer to b than to c"): ``+σ(d_ab − d_ac)`` = the probability that ``a``
  picks ``c`` when it chooses between ``b`` and ``c`` with the same exponential kernel.

Everything is computed in log-sum-exp form: each row of ``exp(−D)`` is shifted by its smallest distance before the
exponential, so rows whose distances are all large (the exponentials underflow otherwise) keep exact ratios.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from workbench.errors import DataError

__all__ = ["Constraints", "as_constraints", "pairwise_sq_distances", "energy_from_distances", "nca_energy",
           "nca_objective"]


@dataclass(frozen=True)
class Constraints:
    """Must-link and cannot-link pairs ``(i, j)`` and relative triplets ``(a, b, c)`` (``a`` nearer ``b`` than
    ``c``), as sample indices into the training set, and the weight of their energy terms.

    >>> c = Constraints(must_link=[(0, 1)], triplets=[(0, 1, 2)])
    >>> c.must_link.shape, c.cannot_link.shape, c.triplets.shape
    ((1, 2), (0, 2), (1, 3))
    """

    must_link: Any = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    cannot_link: Any = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    triplets: Any = field(default_factory=lambda: np.zeros((0, 3), dtype=np.int64))
    weight: float = 1.0

    def __post_init__(self) -> None:
        for name, width in (("must_link", 2), ("cannot_link", 2), ("triplets", 3)):
            raw = getattr(self, name)
            arr = np.zeros((0, width), dtype=np.int64) if raw is None else np.asarray(raw)
            if arr.size == 0:
                arr = np.zeros((0, width), dtype=np.int64)
            if arr.ndim != 2 or arr.shape[1] != width:
                raise DataError(f"constraints.{name} must be a list of {width}-tuples of sample indices, "
                                f"got an array of shape {arr.shape}")
            if not np.issubdtype(arr.dtype, np.integer):
                if not np.all(np.equal(np.mod(arr, 1), 0)):
                    raise DataError(f"constraints.{name} must hold integer sample indices, got {arr.dtype}")
                arr = arr.astype(np.int64)
            object.__setattr__(self, name, arr.astype(np.int64))
        w = float(self.weight)
        if not np.isfinite(w) or w < 0:
            raise DataError(f"constraints.weight must be a finite number ≥ 0, got {self.weight!r}")
        object.__setattr__(self, "weight", w)

    def __len__(self) -> int:
        return len(self.must_link) + len(self.cannot_link) + len(self.triplets)

    def check(self, n: int) -> None:
        """Raise :class:`DataError` when an index is outside ``[0, n)`` or a pair repeats a sample."""
        for name in ("must_link", "cannot_link", "triplets"):
            arr = getattr(self, name)
            if arr.size and (arr.min() < 0 or arr.max() >= n):
                bad = arr[(arr < 0).any(1) | (arr >= n).any(1)][0].tolist()
                raise DataError(f"constraints.{name} names sample indices out of range: {tuple(bad)}; "
                                f"the training set has {n} samples (indices 0..{n - 1})")
            if arr.size and name != "triplets" and (arr[:, 0] == arr[:, 1]).any():
                bad = arr[arr[:, 0] == arr[:, 1]][0].tolist()
                raise DataError(f"constraints.{name} pairs a sample with itself: {tuple(bad)}")
            if arr.size and name == "triplets" and ((arr[:, 0] == arr[:, 1]) | (arr[:, 0] == arr[:, 2])
                                                    | (arr[:, 1] == arr[:, 2])).any():
                raise DataError("constraints.triplets must name three different samples (a, b, c)")


def as_constraints(constraints: Any) -> Constraints | None:
    """``None``, a :class:`Constraints`, or a mapping with keys ``must_link``, ``cannot_link``, ``triplets``,
    ``weight`` → :class:`Constraints` (``None`` when there is none)."""
    if constraints is None:
        return None
    if isinstance(constraints, Constraints):
        return constraints if len(constraints) else None
    if isinstance(constraints, Mapping):
        allowed = {"must_link", "cannot_link", "triplets", "weight"}
        unknown = set(constraints) - allowed
        if unknown:
            raise DataError(f"unknown constraint kinds {sorted(unknown)}; accepted: {sorted(allowed)}")
        c = Constraints(**dict(constraints))
        return c if len(c) else None
    raise DataError(f"constraints must be None, a Constraints or a dict with keys must_link / cannot_link / "
                    f"triplets / weight; got {type(constraints).__name__}")


def pairwise_sq_distances(Z: torch.Tensor) -> torch.Tensor:
    """``D_ij = ‖z_i − z_j‖²`` (n × n) with ``+inf`` on the diagonal (a sample is never its own neighbour)."""
    sq = (Z * Z).sum(1)
    D = (sq[:, None] + sq[None, :]) - 2.0 * (Z @ Z.T)
    D = D.clamp_min(0.0)
    return D.masked_fill(torch.eye(len(Z), dtype=torch.bool, device=Z.device), float("inf"))


def energy_from_distances(D: torch.Tensor, onehot: torch.Tensor, y: torch.Tensor,
                          constraints: Constraints | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Energy and per-sample ``p_i = Σ_{j: y_j = y_i} p_ij`` from squared distances (diagonal ``+inf``).

    ``onehot`` is ``n × C`` (same dtype as ``D``), ``y`` the class codes ``0..C−1``. Log-sum-exp form: row ``i`` is
    shifted by ``min_k D_ik``. Differentiable (used by the gradient baseline as well as by the Monte Carlo).
    """
    m = D.min(dim=1, keepdim=True).values
    e = torch.exp(m - D)  # in (0, 1], exactly 1 at each row's nearest neighbour, 0 on the diagonal
    S = e @ onehot  # n × C: per-class sums
    s_all = S.sum(1)
    p = S.gather(1, y[:, None]).squeeze(1) / s_all
    E = -p.sum()
    if constraints is not None and len(constraints):
        E = E + constraints.weight * constraint_energy(D, e, s_all, constraints)
    return E, p


def _pair_p(e: torch.Tensor, s_all: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    i, j = pairs[:, 0], pairs[:, 1]
    return 0.5 * (e[i, j] / s_all[i] + e[j, i] / s_all[j])


def constraint_energy(D: torch.Tensor, e: torch.Tensor, s_all: torch.Tensor, c: Constraints) -> torch.Tensor:
    """Unweighted constraint energy: ``−Σ_ml p̄_ij + Σ_cl p̄_ij + Σ_trip σ(d_ab − d_ac)`` (see the module doc)."""
    out = D.new_zeros(())
    dev = D.device
    if len(c.must_link):
        out = out - _pair_p(e, s_all, torch.as_tensor(c.must_link, device=dev)).sum()
    if len(c.cannot_link):
        out = out + _pair_p(e, s_all, torch.as_tensor(c.cannot_link, device=dev)).sum()
    if len(c.triplets):
        t = torch.as_tensor(c.triplets, device=dev)
        out = out + torch.sigmoid(D[t[:, 0], t[:, 1]] - D[t[:, 0], t[:, 2]]).sum()
    return out


def _encode(y: Any) -> tuple[np.ndarray, np.ndarray]:
    classes, codes = np.unique(np.asarray(y), return_inverse=True)
    return classes, codes.astype(np.int64)


def nca_energy(X: Any, y: Any, L: Any, constraints: Any = None, *, dtype: torch.dtype = torch.float64) -> float:
    """``E(L) = −f(L)`` (plus constraint terms) of the data ``X`` (n × D), labels ``y`` under the map ``L``
    (d × D), computed from scratch in ``dtype`` (float64 by default).

    >>> X = np.array([[0.0], [0.1], [5.0], [5.1]]); y = [0, 0, 1, 1]
    >>> round(nca_energy(X, y, np.eye(1)), 6)
    -4.0
    """
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float64), dtype=dtype)
    Lt = torch.as_tensor(np.asarray(L, dtype=np.float64), dtype=dtype)
    _, codes = _encode(y)
    yt = torch.as_tensor(codes)
    onehot = torch.nn.functional.one_hot(yt, int(codes.max()) + 1).to(dtype)
    E, _ = energy_from_distances(pairwise_sq_distances(Xt @ Lt.T), onehot, yt, as_constraints(constraints))
    return float(E)


def nca_objective(X: Any, y: Any, L: Any) -> float:
    """The NCA objective ``f(L)`` divided by ``n``: the expected leave-one-out accuracy of the stochastic
    nearest-neighbour classifier (in [0, 1])."""
    return -nca_energy(X, y, L) / len(np.asarray(y))
