"""Sparse linear layers for sparse evolutionary training: truly sparse (CSR) and masked-dense.

Truly sparse (Curci, Mocanu, Pechenizkiy 2021, "Truly Sparse Neural Networks at Scale"): a layer stores only its
connections, ``keys`` (``row * in_features + col``, int64) and ``values`` (the trainable parameter), so memory and
time follow the number of connections. The forward pass is a CSR sparse × dense product; the backward pass gives
the input gradient with the transposed CSR matrix and the value gradient as a sampled dense-dense product
(:func:`torch.sparse.sampled_addmm`, computed only at the connections), never a dense ``out × in`` matrix.

Masked-dense: the usual simulation, a dense weight times a 0/1 mask, for comparison (memory ∝ out × in).

Both expose the same connection API (``connection_keys``, ``connection_values``, ``replace_connections``,
``topology_mask``), which :mod:`workbench.topology.set_training` uses for SET's prune-and-regrow step and
:func:`workbench.topology.nnstd` reads.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from workbench.errors import DataError, ShapeError

# torch announces on first use that sparse CSR support is "beta"; we rely on spmm and sampled_addmm only.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


def erdos_renyi_density(n_in: int, n_out: int, epsilon: float = 20.0) -> float:
    """SET's Erdős–Rényi density ``ε (n_in + n_out) / (n_in · n_out)`` (Mocanu et al. 2018), capped at 1."""
    from workbench.checks import number

    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0 for v in (n_in, n_out)):
        raise ShapeError(f"layer sizes must be positive integers, got {n_in!r} inputs and {n_out!r} outputs")
    epsilon = number("epsilon", epsilon, low=0, low_open=True, where="erdos_renyi_density")
    return min(1.0, epsilon * (n_in + n_out) / (n_in * n_out))


def random_empty_keys(n_in: int, n_out: int, count: int, occupied: np.ndarray, rng: np.random.Generator,
                      rows: np.ndarray | None = None, cols: np.ndarray | None = None) -> np.ndarray:
    """``count`` distinct random positions ``row * n_in + col`` not in ``occupied`` (sorted int64 keys).

    Positions are uniform over ``rows × cols`` (all rows / columns by default; SET passes the alive neurons). Sparse
    layers use rejection sampling (cost ∝ count); nearly full ones enumerate the free positions.
    """
    rows = np.arange(n_out) if rows is None else np.asarray(rows, dtype=np.int64)
    cols = np.arange(n_in) if cols is None else np.asarray(cols, dtype=np.int64)
    total = rows.size * cols.size
    occupied = np.asarray(occupied, dtype=np.int64)
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    if occupied.size > 1 and np.any(occupied[1:] < occupied[:-1]):
        occupied = np.sort(occupied)
    if total - occupied.size < 4 * count or total <= 4_000_000 and total - occupied.size < total // 2:
        # few free positions (at most ~4× the count, or a small layer over half full): list them. The grid is sorted
        # (rows and columns ascending), so membership is a binary search, not numpy's hashing unique.
        rows, cols = np.sort(rows), np.sort(cols)
        grid = (rows[:, None] * n_in + cols[None, :]).ravel()
        if occupied.size:
            pos = np.minimum(np.searchsorted(occupied, grid), occupied.size - 1)
            free = grid[occupied[pos] != grid]
        else:
            free = grid
        del grid
        if free.size < count:
            raise DataError(f"cannot place {count} connections: only {free.size} free positions in a "
                            f"{n_out}×{n_in} layer")
        return np.sort(rng.choice(free, size=count, replace=False))
    out = np.empty(0, dtype=np.int64)
    while out.size < count:  # sort-based set operations: np.unique's hashing is slow on millions of keys
        need = count - out.size
        m = int(need * 1.2) + 16
        cand = np.sort(rows[rng.integers(0, rows.size, m)] * n_in + cols[rng.integers(0, cols.size, m)])
        cand = cand[np.concatenate(([True], cand[1:] != cand[:-1]))]
        for taken in (occupied, out):
            if taken.size:
                pos = np.minimum(np.searchsorted(taken, cand), taken.size - 1)
                cand = cand[taken[pos] != cand]
        cand = rng.permutation(cand)[:need]
        out = np.sort(np.concatenate([out, cand]))
    return out


def index_dtype(nnz: int, n_in: int, n_out: int) -> type:
    """``np.int32`` when a layer's CSR index arrays (positions < nnz, rows < n_out, columns < n_in) fit, else
    ``np.int64``."""
    return np.int32 if max(nnz, n_in, n_out) < 2**31 - 1 else np.int64


#: Bytes per connection a truly sparse layer holds while training: int64 key; float32 value, gradient and SGD
#: momentum; the cached CSR order, columns, transposed permutation and transposed columns (int32 when they fit).
STATE_BYTES_PER_CONNECTION = 8 + 3 * 4 + 4 * 4
#: Extra bytes per connection of the largest layer while it is rebuilt or evolved (SET's prune/regrow step and the CSR
#: rebuild: argsorts, sorted keys, rows and columns as int64 temporaries), measured with tracemalloc (see
#: ``tests/test_set_scale.py``) and rounded up.
WORK_BYTES_PER_CONNECTION = 64
#: Bytes per connection of one epoch's topology snapshot (a boolean scipy CSR matrix: 1 byte of data, int32 index).
SNAPSHOT_BYTES_PER_CONNECTION = 5


def set_memory_estimate(sizes, epsilon: float = 20.0, batch_size: int = 32, snapshots: int = 1,
                        mode: str = "sparse") -> dict[str, int]:
    """Estimated bytes to train a SET MLP of ``sizes`` (before allocating anything): the connections' training state
    (:data:`STATE_BYTES_PER_CONNECTION` each for ``mode="sparse"``; weight, gradient, momentum and mask per dense
    entry, 13 bytes, for ``"dense"``), the working space of the largest layer's evolution step, ``snapshots``
    topology snapshots, and the activations of one batch (forward values, All-ReLU outputs and their gradients:
    6 float32 per hidden or output neuron and sample, + the input batch). Returns the parts and ``total``.

    >>> est = set_memory_estimate([784, 1000, 10])
    >>> est["connections"], est["total"] > est["state"] > 0
    (45680, True)
    """
    sizes = [int(s) for s in sizes]
    nnz = [max(1, int(round(erdos_renyi_density(i, o, epsilon) * i * o))) for i, o in zip(sizes[:-1], sizes[1:])]
    total_nnz = sum(nnz)
    if mode == "sparse":
        state = total_nnz * STATE_BYTES_PER_CONNECTION
        work = max(nnz) * WORK_BYTES_PER_CONNECTION
    else:
        state = sum(i * o for i, o in zip(sizes[:-1], sizes[1:])) * 13
        work = max(i * o for i, o in zip(sizes[:-1], sizes[1:])) * 16
    snaps = total_nnz * SNAPSHOT_BYTES_PER_CONNECTION * max(0, int(snapshots))
    acts = int(batch_size) * (6 * sum(sizes[1:]) + sizes[0]) * 4
    return dict(connections=total_nnz, state=state, work=work, snapshots=snaps, activations=acts,
                total=state + work + snaps + acts)


class _CSRLinearFn(torch.autograd.Function):
    """``y = x Wᵀ`` for a CSR weight whose values are differentiable; gradients touch connections only."""

    @staticmethod
    def forward(ctx, values, x, crow, col, t_perm, t_crow, t_col, n_out, n_in):  # type: ignore[override]
        w = torch.sparse_csr_tensor(crow, col, values, (n_out, n_in), check_invariants=False)
        ctx.save_for_backward(values, x, crow, col, t_perm, t_crow, t_col)
        ctx.shape = (n_out, n_in)
        return torch.sparse.mm(w, x.t()).t()

    @staticmethod
    def backward(ctx, grad_y):  # type: ignore[override]
        values, x, crow, col, t_perm, t_crow, t_col = ctx.saved_tensors
        n_out, n_in = ctx.shape
        grad_values = grad_x = None
        if ctx.needs_input_grad[1]:
            wt = torch.sparse_csr_tensor(t_crow, t_col, values[t_perm], (n_in, n_out), check_invariants=False)
            grad_x = torch.sparse.mm(wt, grad_y.t().contiguous()).t()
        if ctx.needs_input_grad[0]:
            pattern = torch.sparse_csr_tensor(crow, col, torch.zeros_like(values), (n_out, n_in),
                                              check_invariants=False)
            grad_values = torch.sparse.sampled_addmm(pattern, grad_y.t(), x, beta=0.0).values()
        return grad_values, grad_x, None, None, None, None, None, None, None


def _he_bound(n_in: int, density: float) -> float:
    return math.sqrt(6.0 / max(1.0, density * n_in))


class _ConnectionsMixin:
    in_features: int
    out_features: int

    def _init_alive(self) -> None:
        self.register_buffer("alive_in", torch.ones(self.in_features, dtype=torch.bool))  # type: ignore[attr-defined]
        self.register_buffer("alive_out", torch.ones(self.out_features, dtype=torch.bool))  # type: ignore

    def topology_mask(self) -> sp.csr_matrix:
        """The connections as a boolean scipy CSR matrix (out × in), for :func:`workbench.topology.nnstd`."""
        keys = self.connection_keys()  # type: ignore[attr-defined]
        m = sp.csr_matrix((np.ones(keys.size, dtype=bool), (keys // self.in_features, keys % self.in_features)),
                          shape=(self.out_features, self.in_features))
        m.sort_indices()
        return m

    @property
    def n_connections(self) -> int:
        return int(self.connection_keys().size)  # type: ignore[attr-defined]

    @property
    def density(self) -> float:
        return self.n_connections / (self.in_features * self.out_features)


def _initial_connections(in_features: int, out_features: int, density: float | None, epsilon: float,
                         seed: int | np.random.Generator | None) -> tuple[np.ndarray, torch.Tensor]:
    """Erdős–Rényi connection keys (``row * in_features + col``) and their uniform initial values, shared by
    both storage modes so that the same ``seed`` gives the same start."""
    from workbench.checks import number

    if density is not None:
        number("density", density, low=0, high=1, low_open=True, where=f"a {out_features}×{in_features} layer")
    density = erdos_renyi_density(in_features, out_features, epsilon) if density is None else float(density)
    if not 0 < density <= 1:
        raise DataError(f"density must be in (0, 1], got {density} for a {out_features}×{in_features} layer")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    nnz = max(1, int(round(density * in_features * out_features)))
    keys = random_empty_keys(in_features, out_features, nnz, np.empty(0, np.int64), rng)
    bound = _he_bound(in_features, density)
    return keys, torch.from_numpy(rng.uniform(-bound, bound, nnz).astype(np.float32))


class SparseLinear(_ConnectionsMixin, nn.Module):
    """A truly sparse linear layer: ``values`` (nnz,) is the parameter, ``keys`` (nnz,) the connection positions.

    Values are kept in *slot* order (a slot keeps its index when SET gives it a new position, so optimizer state can
    be reset per slot); a cached CSR ordering is rebuilt whenever the connections change.

    >>> layer = SparseLinear(64, 32, density=0.1, seed=0)
    >>> layer(torch.zeros(5, 64)).shape, layer.n_connections
    (torch.Size([5, 32]), 205)
    """

    def __init__(self, in_features: int, out_features: int, *, density: float | None = None, epsilon: float = 20.0,
                 bias: bool = True, seed: int | np.random.Generator | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        keys, vals = _initial_connections(in_features, out_features, density, epsilon, seed)
        self.register_buffer("keys", torch.from_numpy(keys))
        self.values = nn.Parameter(vals)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self._init_alive()
        self._rebuild()

    def _rebuild(self) -> None:
        # numpy sorts: torch.argsort is much slower on CPU for these int64 keys. The cached CSR index arrays are int32
        # whenever the counts fit (16 bytes per connection instead of 32; torch's CSR kernels take int32 directly).
        keys = self.keys.numpy()
        idx = index_dtype(keys.size, self.in_features, self.out_features)
        order = np.argsort(keys, kind="stable")
        rows = keys[order]
        cols = rows % self.in_features
        rows //= self.in_features
        crow = np.zeros(self.out_features + 1, dtype=idx)
        np.cumsum(np.bincount(rows, minlength=self.out_features), out=crow[1:])
        t_crow = np.zeros(self.in_features + 1, dtype=idx)
        np.cumsum(np.bincount(cols, minlength=self.in_features), out=t_crow[1:])
        order = order.astype(idx, copy=False)
        tkey = cols * self.out_features
        tkey += rows
        t_perm = np.argsort(tkey, kind="stable")  # CSR position of each transposed entry
        del tkey
        cols = cols.astype(idx)
        t_col = rows[t_perm].astype(idx)
        del rows
        self._order, self._crow, self._col = torch.from_numpy(order), torch.from_numpy(crow), torch.from_numpy(cols)
        self._t_perm, self._t_crow, self._t_col = (torch.from_numpy(t_perm.astype(idx, copy=False)),
                                                   torch.from_numpy(t_crow), torch.from_numpy(t_col))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ShapeError(f"SparseLinear expects {self.in_features} input features, got shape {tuple(x.shape)}")
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        y = _CSRLinearFn.apply(self.values[self._order], x2, self._crow, self._col, self._t_perm, self._t_crow,
                               self._t_col, self.out_features, self.in_features)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    # connection API ---------------------------------------------------------------------------------------------
    def connection_keys(self) -> np.ndarray:
        return self.keys.numpy().copy()

    def connection_values(self) -> np.ndarray:
        return self.values.detach().numpy().copy()

    def replace_connections(self, slots: np.ndarray, new_keys: np.ndarray, new_values: np.ndarray,
                            optimizer: torch.optim.Optimizer | None = None) -> None:
        """Give ``slots`` new positions and values (SET regrowth); their optimizer state is reset to zero."""
        slots_t = torch.as_tensor(slots, dtype=torch.int64)
        with torch.no_grad():
            self.keys[slots_t] = torch.as_tensor(new_keys, dtype=torch.int64)
            self.values[slots_t] = torch.as_tensor(new_values, dtype=self.values.dtype)
        if optimizer is not None:
            for k, v in optimizer.state.get(self.values, {}).items():
                if isinstance(v, torch.Tensor) and v.shape == self.values.shape:
                    v[slots_t] = 0
        self._rebuild()

    def keep_connections(self, keep: np.ndarray) -> None:
        """Keep only the connections at slots ``keep`` (neuron pruning); the parameter is replaced."""
        keep_t = torch.as_tensor(np.sort(keep), dtype=torch.int64)
        self.keys = self.keys[keep_t].clone()
        self.values = nn.Parameter(self.values.detach()[keep_t].clone())
        self._rebuild()

    def dense_weight(self) -> torch.Tensor:
        """The weight as a dense (out × in) tensor (small layers only: plots and tests)."""
        w = torch.zeros(self.out_features * self.in_features)
        w[self.keys] = self.values.detach()
        return w.reshape(self.out_features, self.in_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, connections={self.n_connections}"


class MaskedLinear(_ConnectionsMixin, nn.Module):
    """Masked-dense linear layer: a dense ``weight`` and a boolean ``mask`` buffer; ``y = x (weight ⊙ mask)ᵀ + b``.

    Same initialization and connection API as :class:`SparseLinear`; given the same ``seed`` both start from the same
    connections and values, so the two modes can be compared step by step.
    """

    def __init__(self, in_features: int, out_features: int, *, density: float | None = None, epsilon: float = 20.0,
                 bias: bool = True, seed: int | np.random.Generator | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        keys, vals = _initial_connections(in_features, out_features, density, epsilon, seed)
        w = torch.zeros(out_features * in_features)
        w[torch.from_numpy(keys)] = vals
        mask = torch.zeros(out_features * in_features, dtype=torch.bool)
        mask[torch.from_numpy(keys)] = True
        self.weight = nn.Parameter(w.reshape(out_features, in_features))
        self.register_buffer("mask", mask.reshape(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self._init_alive()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ShapeError(f"MaskedLinear expects {self.in_features} input features, got shape {tuple(x.shape)}")
        return nn.functional.linear(x, self.weight * self.mask, self.bias)

    def connection_keys(self) -> np.ndarray:
        return torch.nonzero(self.mask.reshape(-1)).reshape(-1).numpy()

    def connection_values(self) -> np.ndarray:
        return self.weight.detach().reshape(-1)[torch.from_numpy(self.connection_keys())].numpy().copy()

    def replace_connections(self, slots: np.ndarray, new_keys: np.ndarray, new_values: np.ndarray,
                            optimizer: torch.optim.Optimizer | None = None) -> None:
        """Move the connections at positions ``connection_keys()[slots]`` to ``new_keys`` with ``new_values``."""
        old = torch.from_numpy(self.connection_keys()[np.asarray(slots, dtype=np.int64)])
        new = torch.as_tensor(new_keys, dtype=torch.int64)
        with torch.no_grad():
            m, w = self.mask.view(-1), self.weight.view(-1)
            m[old] = False
            w[old] = 0
            m[new] = True
            w[new] = torch.as_tensor(new_values, dtype=w.dtype)
        if optimizer is not None:
            for v in optimizer.state.get(self.weight, {}).values():
                if isinstance(v, torch.Tensor) and v.shape == self.weight.shape:
                    v.view(-1)[old] = 0
                    v.view(-1)[new] = 0

    def keep_connections(self, keep: np.ndarray) -> None:
        keys = self.connection_keys()
        drop = np.setdiff1d(np.arange(keys.size), keep)
        with torch.no_grad():
            self.mask.view(-1)[torch.from_numpy(keys[drop])] = False
            self.weight.view(-1)[torch.from_numpy(keys[drop])] = 0

    def dense_weight(self) -> torch.Tensor:
        return (self.weight * self.mask).detach().clone()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, connections={self.n_connections}"


__all__ = ["SparseLinear", "MaskedLinear", "erdos_renyi_density", "random_empty_keys", "set_memory_estimate",
           "index_dtype", "STATE_BYTES_PER_CONNECTION", "WORK_BYTES_PER_CONNECTION", "SNAPSHOT_BYTES_PER_CONNECTION"]
