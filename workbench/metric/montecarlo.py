"""Free-energy metric learning: Metropolis Monte Carlo over linear maps that stretch and rotate the space.

Stosic, Stosic, Ludermir & Stosic 2021 ("Distance Metric Learning through Minimization of the Free Energy",
arXiv 2106.05495). The state is a linear map ``L`` (d × D); its energy ``E(L)`` is minus the NCA objective plus
constraint terms (:mod:`workbench.metric.energy`). A move is one of

* **stretch**: scale row ``r`` of ``L`` by ``s = exp(σ_s ξ)`` (one direction of the learned space grows or shrinks);
* **rotation**: ``L ← L G`` with ``G`` a Givens rotation by ``θ ~ N(0, σ_r²)`` in the plane of input coordinates
  ``(p, q)`` (rotating on the left would not change any distance).

Started from orthonormal rows (identity, PCA), ``L = diag(s)·Q`` with ``Q``'s rows orthonormal at every step, so
``L`` stays full rank with condition number ``max s / min s`` (stretches are bounded to keep it finite). A move is
accepted with the Metropolis probability ``min(1, exp(−ΔE/T))``; the temperature falls block by block (geometric
annealing ``T_k = T_0 (T_end/T_0)^{k/(K−1)}``, or an adaptive schedule that moves ``T`` so the measured acceptance
rate follows a target falling geometrically from ``a_0`` to ``a_end``).

**Incremental ΔE.** A move changes ``Z = X Lᵀ`` by a rank-1 (stretch) or rank-2 (rotation) term, so every squared
distance changes by ``Δ_ij = h_i + h_j − 2 (U Vᵀ)_ij`` with ``U, V`` of 1 or 4 columns:

* stretch of row ``r`` by ``s``, ``c = Z[:, r]``: ``h = (s²−1) c²``, ``U = (s²−1) c``, ``V = c``;
* rotation in ``(p, q)``: ``A = X[:, (p, q)]``, ``B = L'[:, (p, q)] − L[:, (p, q)]``, ``W = Z B``, ``G = BᵀB``;
  ``h_i = 2 w_i·a_i + a_iᵀ G a_i``, ``U = [W + A G, A]``, ``V = [A, W]``.

So the candidate distance matrix costs one ``n × k × n`` ``addmm`` and two broadcasts instead of an ``n × d × n``
product, and the energy is then two passes over it in log-sum-exp form (row minimum, shifted exponentials, a
product with the one-hot labels): all in torch, batched, into preallocated buffers; no Python loop over pairs.
Distances are recomputed from ``L`` every ``resync`` moves so rounding does not drift.

**Free energy.** ``F = ⟨E⟩ − T·S`` per block, with the entropy from thermodynamic integration along the schedule
(``dS = d⟨E⟩ / T`` at equilibrium), relative to the first block (``S = 0`` there; units of ``k_B``): the absolute
entropy of an unbounded space of maps is not defined, its changes are.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.config import torch_threads
from workbench.errors import DataError
from workbench.metric.energy import Constraints, constraint_energy, pairwise_sq_distances
from workbench.progress import progress_bar

__all__ = ["MCOptions", "AnnealResult", "MetricChain", "anneal", "metropolis_accept", "SCHEDULES",
           "TRACE_COLUMNS"]

SCHEDULES = ("geometric", "adaptive", "constant")
TRACE_COLUMNS = ["step", "temperature", "energy", "mean_energy", "best_energy", "acceptance", "objective",
                 "entropy", "free_energy", "seconds"]
_MAX_LOG_STRETCH = 12.0  # a row never grows or shrinks by more than e^12 from where it started


def metropolis_accept(delta_e: float, temperature: float, u: float) -> bool:
    """Metropolis rule: accept when ``ΔE ≤ 0`` or ``u < exp(−ΔE/T)`` (``u`` uniform in [0, 1)).

    ``T → 0`` never accepts an uphill move; ``T = inf`` accepts every finite one; a NaN ``ΔE`` is rejected.

    >>> metropolis_accept(1.0, 1e-12, 0.0), metropolis_accept(1e6, float("inf"), 0.999), metropolis_accept(-1, 1, .9)
    (False, True, True)
    """
    if not math.isfinite(delta_e):
        return False
    if delta_e <= 0.0:
        return True
    if temperature <= 0.0:
        return False
    return u < math.exp(-delta_e / temperature)


@dataclass(frozen=True)
class MCOptions:
    """Options of the free-energy Monte Carlo (``fit_metric(..., method="free_energy", **options)``).

    steps: moves in all; block: moves per temperature (one trace row each); schedule: ``"geometric"``,
    ``"adaptive"`` or ``"constant"``; t_start: ``"auto"`` (the median uphill ΔE of ``probe`` trial moves from the
    start, over ln 2, so half of the typical uphill moves are accepted at first) or a temperature > 0; t_end: the
    final temperature (default ``t_start · t_ratio``; ending warm, not frozen, keeps the map from overfitting the
    training neighbours); target_acceptance: ``(a_0, a_end)`` of the adaptive schedule;
    p_rotate: probability of a rotation move (else a stretch); ``"auto"``: 0.5 up to 32 features, 0.2 above
    (with D features there are D(D−1)/2 rotation planes against d stretch directions; on digits, 64 features,
    stretches lower the energy faster); stretch_scale σ_s and rotation_scale σ_r (radians);
    shrink_moves: scale both move sizes by ``√(T/T_0)`` so moves stay acceptable as the system cools;
    max_log_stretch: a row of ``L`` never grows or shrinks by more than ``e^max_log_stretch`` (keeps ``L``
    finite and well conditioned); init: ``"identity"`` (first d rows), ``"pca"`` or a d × D array; resync: recompute distances every so many
    moves; dtype: ``"float32"`` or ``"float64"``; threads: torch threads while the chain runs (the moves are
    small passes over an n × n matrix that extra threads slow down on a shared machine; ``None`` keeps torch's
    setting; torch's setting is process-wide and restored afterwards).
    """

    steps: int = 2000
    block: int = 50
    schedule: str = "geometric"
    t_start: float | str = "auto"
    t_end: float | None = None
    t_ratio: float = 0.05
    max_log_stretch: float = 12.0
    target_acceptance: tuple[float, float] = (0.5, 0.02)
    p_rotate: float | str = "auto"
    stretch_scale: float = 0.3
    rotation_scale: float = 0.3
    shrink_moves: bool = True
    init: Any = "identity"
    resync: int = 500
    probe: int = 64
    dtype: str = "float32"
    threads: int | None = 1

    def __post_init__(self) -> None:
        def pos_int(name: str) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise DataError(f"{name} must be an integer ≥ 1, got {v!r}")

        for name in ("steps", "block", "resync", "probe"):
            pos_int(name)
        if self.schedule not in SCHEDULES:
            raise DataError(f"unknown schedule {self.schedule!r}; accepted: {', '.join(SCHEDULES)}")
        if isinstance(self.t_start, str):
            if self.t_start != "auto":
                raise DataError(f"t_start must be 'auto' or a temperature > 0, got {self.t_start!r}")
        elif not _positive(self.t_start):
            raise DataError(f"t_start must be a temperature > 0 (or 'auto'), got {self.t_start!r}")
        if self.t_end is not None and not _positive(self.t_end):
            raise DataError(f"t_end must be a temperature > 0, got {self.t_end!r}")
        a = tuple(self.target_acceptance)
        if len(a) != 2 or not all(isinstance(v, (int, float)) and 0 < v < 1 for v in a):
            raise DataError(f"target_acceptance must be two rates in (0, 1) (start, end), got {self.target_acceptance!r}")
        if self.p_rotate != "auto" and not (isinstance(self.p_rotate, (int, float)) and 0 <= self.p_rotate <= 1):
            raise DataError(f"p_rotate must be 'auto' or a probability in [0, 1], got {self.p_rotate!r}")
        for name in ("stretch_scale", "rotation_scale"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise DataError(f"{name} must be a finite number > 0, got {v!r}")
        for name in ("t_ratio", "max_log_stretch"):
            if not _positive(getattr(self, name)) or not math.isfinite(getattr(self, name)):
                raise DataError(f"{name} must be a finite number > 0, got {getattr(self, name)!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise DataError(f"threads must be None or an integer ≥ 1, got {self.threads!r}")
        if self.dtype not in ("float32", "float64"):
            raise DataError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if isinstance(self.init, str) and self.init not in ("identity", "pca"):
            raise DataError(f"init must be 'identity', 'pca' or a d × D array, got {self.init!r}")


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool) and v > 0 \
        and not math.isnan(v)


@dataclass
class _Move:
    kind: str  # "stretch" | "rotate"
    index: tuple[int, ...]
    amount: float  # log-stretch or angle


class MetricChain:
    """The Monte Carlo state: ``L``, ``Z = X Lᵀ``, the distance matrix and the current energy; proposes moves,
    computes their ΔE incrementally (see the module doc) and applies accepted ones.

    ``X``: n × D tensor; ``codes``: class codes 0..C−1; ``L``: d × D initial map.
    """

    def __init__(self, X: torch.Tensor, codes: np.ndarray, L: np.ndarray, constraints: Constraints | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        self.dtype = dtype
        order = np.argsort(codes, kind="stable")  # samples sorted by class: same-class sums are diagonal blocks
        self.order = order
        codes = np.asarray(codes)[order]
        self.X = X.to(dtype)[torch.as_tensor(order)]
        self.y = torch.as_tensor(codes, dtype=torch.long)
        bounds = np.flatnonzero(np.diff(codes)) + 1
        edges = [0, *bounds.tolist(), len(codes)]
        self.blocks = [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]
        self.constraints = _reindex(constraints, order)
        self.L = torch.as_tensor(np.asarray(L), dtype=torch.float64).clone()  # the map itself in float64
        self.log_stretch = np.zeros(self.L.shape[0])
        self.max_log_stretch = _MAX_LOG_STRETCH
        self.n, self.D_in = self.X.shape
        self.d = self.L.shape[0]
        self._floor = -80.0 if dtype == torch.float32 else -700.0  # exp below this is < 1e-34: no denormals
        self._cand = torch.empty(self.n, self.n, dtype=dtype)
        self._e = torch.empty(self.n, self.n, dtype=dtype)
        self._pending: tuple[Any, ...] | None = None
        self.resync()

    # ------------------------------------------------------------------------------------------ energy
    def resync(self) -> None:
        """Recompute ``Z``, the distances and the energy from ``L`` (no accumulated rounding)."""
        self.Z = self.X @ self.L.to(self.dtype).T
        self.D = pairwise_sq_distances(self.Z).contiguous()
        self.energy, self.objective = self._energy(self.D)

    def _energy(self, D: torch.Tensor) -> tuple[float, float]:
        m = D.amin(dim=1, keepdim=True)
        e = torch.sub(m, D, out=self._e)
        e.clamp_(min=self._floor).exp_()  # diagonal: exp(−inf) clamped to exp(floor) ≈ 0, removed below
        e.diagonal().zero_()
        s_all = e.sum(1)
        s_same = torch.cat([e[b, b].sum(1) for b in self.blocks])
        p = s_same / s_all
        E = -p.sum()
        if self.constraints is not None and len(self.constraints):
            E = E + self.constraints.weight * constraint_energy(D, e, s_all, self.constraints)
        return float(E), float(p.mean())

    # ------------------------------------------------------------------------------------------ moves
    def propose(self, rng: np.random.Generator, p_rotate: float, stretch_scale: float,
                rotation_scale: float) -> _Move:
        """A random move (uses ``rng`` only, so a seed fixes the chain)."""
        rotate = self.D_in >= 2 and rng.random() < p_rotate
        if rotate:
            p, q = rng.choice(self.D_in, size=2, replace=False)
            return _Move("rotate", (int(min(p, q)), int(max(p, q))), float(rng.normal() * rotation_scale))
        r = int(rng.integers(self.d))
        return _Move("stretch", (r,), float(rng.normal() * stretch_scale))

    def _low_rank(self, mv: _Move) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any]:
        """(h, U, V, payload) of the distance change ``Δ = h_i + h_j − 2 U Vᵀ`` of a move."""
        if mv.kind == "stretch":
            (r,) = mv.index
            c = self.Z[:, r:r + 1]
            f = math.exp(2.0 * mv.amount) - 1.0
            return f * (c * c).squeeze(1), f * c, c, None
        p, q = mv.index
        cos, sin = math.cos(mv.amount), math.sin(mv.amount)
        Lpq = self.L[:, [p, q]]
        R = torch.tensor([[cos, -sin], [sin, cos]], dtype=torch.float64)
        new_pq = Lpq @ R
        B = (new_pq - Lpq).to(self.dtype)  # d × 2
        A = self.X[:, [p, q]]  # n × 2
        W = self.Z @ B  # n × 2
        G = B.T @ B  # 2 × 2
        AG = A @ G
        h = 2.0 * (W * A).sum(1) + (AG * A).sum(1)
        return h, torch.cat([W + AG, A], 1), torch.cat([A, W], 1), (new_pq, A, B)

    def delta(self, mv: _Move) -> float:
        """ΔE of a move (the candidate distances are kept until :meth:`accept` or the next :meth:`delta`)."""
        if mv.kind == "stretch" and abs(self.log_stretch[mv.index[0]] + mv.amount) > self.max_log_stretch:
            self._pending = None
            return math.inf
        h, U, V, payload = self._low_rank(mv)
        if U.shape[1] == 1:
            cand = torch.addr(self.D, U[:, 0], V[:, 0], beta=1.0, alpha=-2.0, out=self._cand)
        else:
            cand = torch.addmm(self.D, U, V.T, beta=1.0, alpha=-2.0, out=self._cand)
        cand.add_(h[:, None]).add_(h[None, :])
        cand.clamp_(min=0.0)
        E, obj = self._energy(cand)
        self._pending = (mv, payload, E, obj)
        return E - self.energy

    def accept(self) -> None:
        """Apply the move whose ΔE was computed last."""
        if self._pending is None:
            raise RuntimeError("accept() without a pending move")
        mv, payload, E, obj = self._pending
        if mv.kind == "stretch":
            (r,) = mv.index
            s = math.exp(mv.amount)
            self.L[r] *= s
            self.Z[:, r] *= s
            self.log_stretch[r] += mv.amount
        else:
            p, q = mv.index
            new_pq, A, B = payload
            self.L[:, [p, q]] = new_pq
            self.Z.addmm_(A, B.T)
        self.D, self._cand = self._cand, self.D
        self.energy, self.objective = E, obj
        self._pending = None


def _reindex(c: Constraints | None, order: np.ndarray) -> Constraints | None:
    """Constraints with sample indices mapped into the class-sorted order of the chain."""
    if c is None or not len(c):
        return None
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return Constraints(inv[c.must_link], inv[c.cannot_link], inv[c.triplets], c.weight)


def initial_map(X: np.ndarray, dim: int, init: Any) -> np.ndarray:
    """The starting map: ``"identity"`` (first ``dim`` rows of I), ``"pca"`` (top principal directions) or an
    array of shape ``dim × D``."""
    D = X.shape[1]
    if isinstance(init, str):
        if init == "identity":
            return np.eye(dim, D)
        Xc = X - X.mean(0)
        _, _, vt = np.linalg.svd(Xc, full_matrices=False)
        return vt[:dim].copy() if vt.shape[0] >= dim else np.eye(dim, D)
    L = np.asarray(init, dtype=np.float64)
    if L.shape != (dim, D) or not np.isfinite(L).all():
        raise DataError(f"init must be a finite array of shape ({dim}, {D}), got shape {L.shape}")
    return L.copy()


@dataclass
class AnnealResult:
    """What :func:`anneal` returns: the best and the last map, the trace (one row per block), counters."""

    L: np.ndarray  # the map of lowest energy seen
    L_final: np.ndarray
    energy: float  # energy of L
    trace: pd.DataFrame
    cancelled: bool = False
    info: dict[str, Any] = field(default_factory=dict)


def _auto_temperature(chain: MetricChain, rng: np.random.Generator, opt: MCOptions) -> float:
    ups = []
    for _ in range(opt.probe):
        d = chain.delta(chain.propose(rng, opt.p_rotate, opt.stretch_scale, opt.rotation_scale))
        if math.isfinite(d) and d > 0:
            ups.append(d)
    chain._pending = None
    if not ups:
        return max(1e-3, 1e-3 * abs(chain.energy))
    return float(np.median(ups)) / math.log(2.0)


def anneal(X: np.ndarray, codes: np.ndarray, L0: np.ndarray, opt: MCOptions, *,
           constraints: Constraints | None = None, seed: int = 0, progress: bool = True,
           stop: Callable[[], bool] | None = None,
           on_step: Callable[[dict[str, Any]], None] | None = None) -> AnnealResult:
    """Run the Metropolis chain from ``L0`` under the schedule of ``opt`` (see the module doc).

    ``on_step(info)`` is called after every block with the trace row plus ``"L"`` (a copy of the current map) and
    ``"total_steps"``. ``stop()`` is checked before every move; when it turns true the best map so far is returned
    with ``cancelled=True``.
    """
    with torch_threads(opt.threads):
        return _anneal(X, codes, L0, opt, constraints, seed, progress, stop, on_step)


def _anneal(X: np.ndarray, codes: np.ndarray, L0: np.ndarray, opt: MCOptions, constraints: Constraints | None,
            seed: int, progress: bool, stop: Callable[[], bool] | None,
            on_step: Callable[[dict[str, Any]], None] | None) -> AnnealResult:
    t0 = time.perf_counter()
    dtype = torch.float64 if opt.dtype == "float64" else torch.float32
    rng = np.random.default_rng(seed)
    p_rotate = (0.5 if np.shape(X)[1] <= 32 else 0.2) if opt.p_rotate == "auto" else float(opt.p_rotate)
    opt = dataclasses.replace(opt, p_rotate=p_rotate)
    chain = MetricChain(torch.as_tensor(np.asarray(X, dtype=np.float64)), codes, L0, constraints, dtype)
    chain.max_log_stretch = opt.max_log_stretch
    stop = stop or (lambda: False)
    T_start = _auto_temperature(chain, rng, opt) if opt.t_start == "auto" else float(opt.t_start)
    T_end = float(opt.t_end) if opt.t_end is not None else T_start * opt.t_ratio
    n_blocks = max(1, math.ceil(opt.steps / opt.block))
    best_E, best_L = chain.energy, chain.L.clone()
    rows: list[dict[str, Any]] = []
    T = T_start
    moves = accepted_total = 0
    cancelled = False
    entropy, prev_mean, prev_T = 0.0, None, None
    a0, a1 = opt.target_acceptance
    with progress_bar(total=opt.steps, desc="free-energy MC", disable=not progress, leave=False) as bar:
        for k in range(n_blocks):
            frac = k / (n_blocks - 1) if n_blocks > 1 else 1.0
            if opt.schedule == "geometric":
                T = T_start * (T_end / T_start) ** frac
            elif opt.schedule == "constant":
                T = T_start
            scale = math.sqrt(min(1.0, T / T_start)) if opt.shrink_moves and math.isfinite(T_start) else 1.0
            n_here = min(opt.block, opt.steps - moves)
            acc = 0
            e_sum = 0.0
            done = 0
            for _ in range(n_here):
                if stop():
                    cancelled = True
                    break
                mv = chain.propose(rng, opt.p_rotate, opt.stretch_scale * scale, opt.rotation_scale * scale)
                dE = chain.delta(mv)
                if metropolis_accept(dE, T, float(rng.random())):
                    chain.accept()
                    acc += 1
                    if chain.energy < best_E:
                        best_E, best_L = chain.energy, chain.L.clone()
                moves += 1
                done += 1
                e_sum += chain.energy
                if moves % opt.resync == 0:
                    chain.resync()
            if done == 0:
                break
            accepted_total += acc
            rate = acc / done
            mean_E = e_sum / done
            if prev_mean is not None and math.isfinite(T) and math.isfinite(prev_T):
                entropy += (mean_E - prev_mean) * 2.0 / (T + prev_T)
            prev_mean, prev_T = mean_E, T
            row = dict(step=moves, temperature=T, energy=chain.energy, mean_energy=mean_E, best_energy=best_E,
                       acceptance=rate, objective=chain.objective, entropy=entropy,
                       free_energy=mean_E - T * entropy if math.isfinite(T) else float("nan"),
                       seconds=time.perf_counter() - t0)
            rows.append(row)
            bar.update(done)
            if on_step is not None:
                on_step({**row, "L": chain.L.numpy().copy(), "total_steps": opt.steps})
            if cancelled:
                break
            if opt.schedule == "adaptive":
                target = a0 * (a1 / a0) ** frac
                T = T * float(np.clip(math.exp(3.0 * (target - rate)), 0.3, 3.0))
    seconds = time.perf_counter() - t0
    info = dict(moves=moves, accepted=accepted_total, acceptance=accepted_total / max(moves, 1),
                t_start=T_start, t_end=T if opt.schedule == "adaptive" else T_end, seconds=seconds,
                moves_per_second=moves / seconds if seconds > 0 else float("nan"), schedule=opt.schedule)
    trace = pd.DataFrame(rows, columns=TRACE_COLUMNS)
    return AnnealResult(best_L.numpy().copy(), chain.L.numpy().copy(), float(best_E), trace, cancelled, info)
