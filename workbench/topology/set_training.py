"""Sparse evolutionary training (SET) of truly sparse MLPs, with topology snapshots for NNSTD.

* SET (Mocanu et al. 2018, Nature Communications): each layer starts as an Erdős–Rényi random graph of density
  ``ε (n_in + n_out) / (n_in · n_out)`` (``ε = 20``); after every training epoch but the last, the fraction ``ζ = 0.3``
  of the weights closest to zero is removed — the smallest positive and the largest negative weights, counted
  separately (exact zeros go too) — and as many connections are regrown at random empty positions, with small normal
  values (std ``regrow_std``) and zeroed optimizer state.
* Truly sparse training (Curci, Mocanu, Pechenizkiy 2021): layers store only their connections
  (:class:`~workbench.topology.sparse_layers.SparseLinear`, ``mode="sparse"``); ``mode="dense"`` is the masked-dense
  simulation for comparison. All-ReLU activation: ``f(x) = x`` for ``x > 0``, else ``-α x`` on odd hidden layers
  (1-based) and ``α x`` on even ones (``α = 0.6`` by default). Neuron importance = Σ |incoming weights|; importance
  pruning removes every connection of the least important hidden neurons (``prune_neurons_at`` epochs,
  ``neuron_fraction`` of the alive neurons per layer), which then receive no regrowth.

``train_set`` returns a :class:`SETRun`: the model, a per-epoch history DataFrame and one :class:`Topology` snapshot
per epoch (``snapshots[0]`` is the initial topology, ``snapshots[e]`` the one after epoch ``e`` and its evolution
step) for :func:`nnstd_over_epochs`.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from workbench.config import torch_threads
from workbench.progress import progress_bar

from workbench.errors import DataError, ShapeError
from workbench.topology.nnstd import Topology, nnstd, topology_of
from workbench.checks import memory_budget
from workbench.topology.sparse_layers import (MaskedLinear, SparseLinear, _he_bound, random_empty_keys,
                                              set_memory_estimate)


# ------------------------------------------------------------------------------------------------------ the model
def all_relu(x: torch.Tensor, layer: int, alpha: float = 0.6) -> torch.Tensor:
    """All-ReLU of Curci et al. 2021 for hidden layer ``layer`` (1-based): slope ``-α`` (odd) or ``α`` (even) below 0."""
    slope = -alpha if layer % 2 == 1 else alpha
    return torch.where(x > 0, x, slope * x)


MODES = ("sparse", "dense")


class SparseMLP(nn.Module):
    """An MLP of sparse layers (``mode="sparse"``: :class:`SparseLinear`; ``"dense"``: :class:`MaskedLinear`) with
    All-ReLU between layers. The same ``seed`` gives the same initial connections and values in both modes.

    >>> net = SparseMLP([64, 32, 10], epsilon=5, seed=0)
    >>> net(torch.zeros(3, 64)).shape
    torch.Size([3, 10])
    """

    def __init__(self, sizes: Sequence[int], *, mode: str = "sparse", epsilon: float = 20.0, alpha: float = 0.6,
                 seed: int = 0) -> None:
        super().__init__()
        from workbench.checks import number, option

        if isinstance(sizes, (str, bytes)) or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                                                      for s in sizes):
            raise ShapeError(f"SparseMLP: sizes must be a sequence of positive integers, got {sizes!r}")
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) <= 0:
            raise ShapeError(f"an MLP needs at least two positive sizes (inputs, outputs), got {sizes}")
        option("mode", mode, MODES, where="SparseMLP (sparse: truly sparse, dense: masked-dense)")
        epsilon = number("epsilon", epsilon, low=0, low_open=True, where="SparseMLP")
        alpha = number("alpha", alpha, where="SparseMLP")
        cls = SparseLinear if mode == "sparse" else MaskedLinear
        rng = np.random.default_rng(seed)
        self.sizes, self.mode, self.alpha, self.epsilon = sizes, mode, float(alpha), float(epsilon)
        self.layers = nn.ModuleList(cls(i, o, epsilon=epsilon, seed=rng) for i, o in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for k, layer in enumerate(self.layers):
            x = layer(x)
            if k < last:
                x = all_relu(x, k + 1, self.alpha)
        return x

    def topology(self) -> Topology:
        """The current connections of every layer (for :func:`workbench.topology.nnstd`)."""
        return Topology(tuple(l.topology_mask() for l in self.layers),
                        tuple(f"layers.{k}" for k in range(len(self.layers))))

    @property
    def n_connections(self) -> int:
        return sum(l.n_connections for l in self.layers)


# ---------------------------------------------------------------------------------------------------------- SET
def set_prune_regrow(layer: SparseLinear | MaskedLinear, zeta: float, rng: np.random.Generator,
                     regrow_std: float = 0.1, optimizer: torch.optim.Optimizer | None = None) -> dict[str, int]:
    """One SET step on a layer: remove the fraction ``zeta`` of positive and of negative weights closest to zero
    (and exact zeros), regrow as many at random empty positions between alive neurons. Returns counts."""
    from workbench.checks import number

    zeta = number("zeta", zeta, low=0, high=1, high_open=True, where="set_prune_regrow")
    regrow_std = number("regrow_std", regrow_std, low=0, where="set_prune_regrow")
    keys = layer.connection_keys()
    vals = layer.connection_values()
    pos = np.flatnonzero(vals > 0)
    neg = np.flatnonzero(vals < 0)
    k_pos, k_neg = int(round(zeta * pos.size)), int(round(zeta * neg.size))
    drop = [np.flatnonzero(vals == 0)]
    if k_pos:
        drop.append(pos[np.argpartition(vals[pos], k_pos - 1)[:k_pos]])
    if k_neg:
        drop.append(neg[np.argpartition(-vals[neg], k_neg - 1)[:k_neg]])
    slots = np.concatenate(drop).astype(np.int64)
    del pos, neg, drop
    if slots.size == 0:
        return dict(removed=0, regrown=0)
    kept = np.delete(keys, slots)
    kept.sort()
    rows = np.flatnonzero(layer.alive_out.numpy())
    cols = np.flatnonzero(layer.alive_in.numpy())
    free = rows.size * cols.size - kept.size
    n_new = min(slots.size, free)
    back = slots[n_new:]  # not enough room (tiny, nearly full layers): the rest go back where they were
    back_keys, back_vals = keys[back], vals[back]
    del keys, vals  # working memory: only what the regrowth still needs stays alive
    new_keys = random_empty_keys(layer.in_features, layer.out_features, n_new, kept, rng, rows, cols)
    del kept
    new_vals = (rng.standard_normal(n_new) * regrow_std).astype(np.float32)
    if back.size:
        new_keys = np.concatenate([new_keys, back_keys])
        new_vals = np.concatenate([new_vals, back_vals])
    layer.replace_connections(slots, new_keys, new_vals, optimizer)
    return dict(removed=int(slots.size), regrown=int(n_new))


def neuron_importance(model: SparseMLP) -> pd.DataFrame:
    """Curci et al.'s neuron importance, Σ |incoming weights|, for every hidden neuron: columns
    ``layer, neuron, importance, alive``."""
    frames = []
    for k, layer in enumerate(model.layers[:-1]):
        keys, vals = layer.connection_keys(), np.abs(layer.connection_values())
        imp = np.bincount(keys // layer.in_features, weights=vals, minlength=layer.out_features)
        frames.append(pd.DataFrame(dict(layer=k, neuron=np.arange(layer.out_features), importance=imp,
                                        alive=layer.alive_out.numpy())))
    return pd.concat(frames, ignore_index=True)


def prune_neurons(model: SparseMLP, fraction: float) -> pd.DataFrame:
    """Importance pruning: remove all connections of the ``fraction`` least important alive neurons of each hidden
    layer (incoming in layer ``k``, outgoing in layer ``k + 1``); they are marked dead and get no regrowth. Returns the
    pruned neurons (``layer, neuron, importance``). Parameters are replaced: rebuild the optimizer afterwards."""
    from workbench.checks import number

    fraction = number("fraction (of neurons)", fraction, low=0, high=1, high_open=True, where="prune_neurons")
    imp = neuron_importance(model)
    pruned = []
    for k in range(len(model.layers) - 1):
        sub = imp[(imp.layer == k) & imp.alive]
        n = int(fraction * len(sub))
        if n == 0:
            continue
        dead = sub.nsmallest(n, "importance")
        pruned.append(dead)
        ids = dead.neuron.to_numpy().astype(np.int64).copy()
        lin, nxt = model.layers[k], model.layers[k + 1]
        lin.alive_out[torch.from_numpy(ids)] = False
        nxt.alive_in[torch.from_numpy(ids)] = False
        keys = lin.connection_keys()
        lin.keep_connections(np.flatnonzero(~np.isin(keys // lin.in_features, ids)))
        keys = nxt.connection_keys()
        nxt.keep_connections(np.flatnonzero(~np.isin(keys % nxt.in_features, ids)))
    cols = ["layer", "neuron", "importance"]
    return pd.concat(pruned, ignore_index=True)[cols] if pruned else pd.DataFrame(columns=cols)


# ------------------------------------------------------------------------------------------------------ training
@dataclass
class SETRun:
    """One SET training run: ``model``, ``history`` (``epoch, train_loss, test_accuracy, connections, seconds`` of
    training, ``evolve_seconds`` of the prune/regrow step, ``threads`` used),
    ``snapshots`` (``snapshots[e]`` = topology after ``e`` epochs), ``seed`` and the ``config`` used."""

    model: SparseMLP
    history: pd.DataFrame
    snapshots: list[Topology]
    seed: int
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def table(self) -> pd.DataFrame:
        """The per-epoch history (the lab-wide ``.table`` of a result object)."""
        return self.history

    @property
    def accuracy(self) -> float:
        """Final test accuracy."""
        return float(self.history["test_accuracy"].iloc[-1])


#: Below this many connection·samples per batch (connections × batch size) SET trains on one torch thread: a
#: 784-10,000-10,000-10 net (0.72 M connections) at batch 32 is 0.72 M × 32 = 2.3e7 and runs as fast or faster on one thread
#: even on an idle 2-core machine, while 784-100,000-100,000-10 (7.0 M connections, 2.2e8) runs 2× faster on two
#: (benchmarks/topology_scale_set.py). Every torch op with more than 32,768 elements opens an OpenMP parallel region,
#: and when the second core is busy each region waits for a scheduler slice: 1.4-12× slower epochs at every size.
PARALLEL_MIN_WORK = 1e8


def second_thread_pays(reps: int = 5, own_threads: int = 1) -> bool:
    """Whether a second torch thread speeds up a sparse product right now.

    First the load: when the 1-minute load average minus this process's own ``own_threads`` leaves less than half a
    core idle beside the two threads (``load − own > cores − 1.5``), no: the second thread would share a core with
    another process, and every parallel region would wait for it (measured 1.4-12× slower epochs on a loaded 2-core
    machine). Otherwise a CSR × dense product (20,000 × 20,000, 400,000 connections, 32 columns; ~10 ms on one
    core) is timed ``reps`` times on one and on two threads, interleaved, and two threads must take under 80 % of one
    thread's median time. Restores the thread count."""
    cores = os.cpu_count() or 1
    if cores < 2:
        return False
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):  # no load average on this platform: the timing alone decides
        load = 0.0
    if load - own_threads > cores - 1.5:
        return False
    n, per_row, cols = 20_000, 20, 32
    crow = torch.arange(0, n * per_row + 1, per_row, dtype=torch.int32)
    col = ((torch.arange(n)[:, None] * 7 + torch.arange(per_row)[None, :] * 997) % n).sort(dim=1).values
    w = torch.sparse_csr_tensor(crow, col.reshape(-1).to(torch.int32), torch.full((n * per_row,), 0.5), (n, n),
                                check_invariants=False)
    x = torch.full((n, cols), 0.25)
    times: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(reps):
        for t in (1, 2):
            with torch_threads(t):
                t0 = time.perf_counter()
                torch.sparse.mm(w, x)
                times[t].append(time.perf_counter() - t0)
    return float(np.median(times[2])) < 0.8 * float(np.median(times[1]))


def choose_threads(connections: int, batch_size: int, *, max_threads: int | None = None,
                   probe: Any = None) -> int:
    """Torch threads for a SET epoch: 1 when ``connections × batch_size`` is below :data:`PARALLEL_MIN_WORK` (sparse
    products too short to gain from a second thread) or when ``max_threads`` (default: torch's current count) is 1;
    else ``max_threads`` if ``probe()`` (default :func:`second_thread_pays`) finds a free core now, 1 if not.
    What decides is whether the second core is free (see :data:`PARALLEL_MIN_WORK`); size only decides whether a free
    one is worth waking.

    >>> choose_threads(85_680, 32, max_threads=2)
    1
    >>> choose_threads(7_015_680, 32, max_threads=2, probe=lambda: True)
    2
    """
    limit = torch.get_num_threads() if max_threads is None else int(max_threads)
    if limit <= 1 or connections * batch_size < PARALLEL_MIN_WORK:
        return 1
    return limit if (second_thread_pays if probe is None else probe)() else 1


def _optimizer(model: nn.Module, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def _eval_batch(model: SparseMLP, batch_size: int) -> int:
    """Test batch: up to 1,024 samples, but no more activations than ``2**22`` floats per layer (16 MiB) unless the
    training batch itself is larger, so that evaluating a million-neuron layer costs no more memory than training."""
    return max(batch_size, min(1024, 2**22 // max(model.sizes)))


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> float:
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x[i:i + batch]).argmax(-1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    model.train()
    return correct / max(1, len(x))


def train_set(sizes: Sequence[int] = (64, 128, 128, 10), *, epochs: int = 10, epsilon: float = 20.0,
              zeta: float = 0.3, alpha: float = 0.6, lr: float = 0.05, momentum: float = 0.9,
              weight_decay: float = 2e-4, batch_size: int = 32, mode: str = "sparse", seed: int = 0,
              topology_seed: int | None = None, regrow_std: float = 0.1, prune_neurons_at: Sequence[int] = (),
              neuron_fraction: float = 0.1, data: Any = None, progress: bool = True, threads: int | str = "auto",
              memory_limit: int | None = None) -> SETRun:
    """Train a :class:`SparseMLP` with SET on ``data`` (default: :func:`workbench.data.digits_split`).

    ``seed`` drives the weights, batch order and regrowth; ``topology_seed`` (default ``seed``) the initial
    Erdős–Rényi connections, so several runs can start from one topology and drift apart. ``data`` is anything with
    ``x_train, y_train, x_test, y_test`` tensors.

    ``threads="auto"`` picks the torch threads of every epoch with :func:`choose_threads` (one thread unless the
    sparse products are long and a second core is free now); an integer forces that many. The estimated memory
    (:func:`~workbench.topology.sparse_layers.set_memory_estimate`: connections × bytes per connection, incl.
    optimizer state, working space and the snapshots) is checked against ``memory_limit`` (default: the memory
    available now) before anything is allocated; :class:`~workbench.errors.MemoryBudgetError` if it does not fit.
    With ``progress`` a bar counts the epochs, and an inner one the batches of large models (≥ 1 M connections).

    >>> run = train_set((64, 32, 10), epochs=1, epsilon=5, progress=False)
    >>> len(run.snapshots), 0 <= run.accuracy <= 1
    (2, True)
    """
    from workbench.checks import integer, number, option

    where = "train_set"
    epochs = integer("epochs", epochs, low=1, where=where)
    number("epsilon", epsilon, low=0, low_open=True, where=where)
    zeta = number("zeta", zeta, low=0, high=1, high_open=True, where=where)
    number("alpha", alpha, where=where)
    lr = number("lr", lr, low=0, low_open=True, where=where)
    momentum = number("momentum", momentum, low=0, high=1, high_open=True, where=where)
    weight_decay = number("weight_decay", weight_decay, low=0, where=where)
    batch_size = integer("batch_size", batch_size, low=1, where=where)
    option("mode", mode, MODES, where=where)
    seed = integer("seed", seed, where=where)
    regrow_std = number("regrow_std", regrow_std, low=0, where=where)
    neuron_fraction = number("neuron_fraction", neuron_fraction, low=0, high=1, high_open=True, where=where)
    prune_neurons_at = [integer("prune_neurons_at", e, low=1, where=where) for e in prune_neurons_at]
    if isinstance(sizes, (str, bytes)) or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                                  and v > 0 for v in sizes) or len(sizes) < 2:
        raise ShapeError(f"{where}: sizes must be a sequence of at least two positive integers, got {sizes!r}")
    if not (isinstance(threads, str) and threads == "auto"):
        threads = integer("threads", threads, low=1, where=f"{where} (an integer or 'auto')")
    if memory_limit is not None:
        memory_limit = integer("memory_limit", memory_limit, low=1, where=f"{where} (bytes)")
    if data is None:
        from workbench.data import digits_split
        data = digits_split()
    xtr, ytr, xte, yte = data.x_train.float(), data.y_train.long(), data.x_test.float(), data.y_test.long()
    if len(xtr) == 0:
        raise DataError("train_set: empty training data")
    if xtr.shape[-1] != sizes[0]:
        raise ShapeError(f"the data has {xtr.shape[-1]} features but the network takes {sizes[0]} inputs")
    if batch_size > len(xtr):
        raise DataError(f"{where}: batch_size={batch_size} is larger than the training set of {len(xtr)} samples; "
                        f"use a batch_size of at most {len(xtr)}")
    est = set_memory_estimate(sizes, epsilon, batch_size, snapshots=epochs + 1, mode=mode)
    memory_budget(est["total"], f"SET training of a {'-'.join(str(int(v)) for v in sizes)} MLP ({mode}, "
                  f"ε = {epsilon:g}: {est['connections']:,} connections, {epochs + 1} snapshots)", limit=memory_limit,
                  advice="use fewer hidden neurons, a smaller epsilon or fewer epochs (snapshots)", where=where)
    tseed = seed if topology_seed is None else topology_seed
    model = SparseMLP(sizes, mode=mode, epsilon=epsilon, alpha=alpha, seed=tseed)
    torch.manual_seed(seed)
    if topology_seed is not None and topology_seed != seed:  # same connections, weights from this run's seed
        g = np.random.default_rng(seed)
        with torch.no_grad():
            for layer in model.layers:
                p = layer.values if mode == "sparse" else layer.weight
                bound = _he_bound(layer.in_features, layer.density)
                vals = torch.from_numpy(g.uniform(-1, 1, layer.n_connections).astype(np.float32))
                if mode == "sparse":
                    p.copy_(vals * bound)
                else:
                    p.view(-1)[torch.from_numpy(layer.connection_keys())] = vals * bound
    rng = np.random.default_rng(seed + 7919)
    gen = torch.Generator().manual_seed(seed)
    opt = _optimizer(model, lr, momentum, weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    snapshots = [model.topology()]
    rows = []
    prune_at = set(int(e) for e in prune_neurons_at)
    eval_batch = _eval_batch(model, batch_size)
    n_batches = -(-len(xtr) // batch_size)
    for epoch in progress_bar(range(1, epochs + 1), desc=f"SET seed {seed}", disable=not progress, leave=False):
        t0 = time.perf_counter()
        if threads == "auto":  # the last epoch's threads count in the load average: do not mistake them for others
            own = rows[-1]["threads"] if rows else 1
            n_threads = choose_threads(model.n_connections, batch_size,
                                       probe=lambda: second_thread_pays(own_threads=own))
        else:
            n_threads = threads
        with torch_threads(n_threads):
            perm = torch.randperm(len(xtr), generator=gen)
            total, count = 0.0, 0
            starts = range(0, len(xtr), batch_size)
            if progress and model.n_connections >= 1_000_000:
                starts = progress_bar(starts, total=n_batches, desc=f"epoch {epoch}", leave=False)
            for i in starts:
                idx = perm[i:i + batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(xtr[idx]), ytr[idx])
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
                count += len(idx)
            seconds = time.perf_counter() - t0
            acc = _accuracy(model, xte, yte, eval_batch)
            t1 = time.perf_counter()
            if epoch < epochs:
                for layer in model.layers:
                    set_prune_regrow(layer, zeta, rng, regrow_std, opt)
                if epoch in prune_at:
                    prune_neurons(model, neuron_fraction)
                    opt = _optimizer(model, lr, momentum, weight_decay)
            evolve = time.perf_counter() - t1
        snapshots.append(model.topology())
        rows.append(dict(epoch=epoch, train_loss=total / count, test_accuracy=acc,
                         connections=model.n_connections, seconds=seconds, evolve_seconds=evolve, threads=n_threads))
    config = dict(sizes=list(sizes), epochs=epochs, epsilon=epsilon, zeta=zeta, alpha=alpha, lr=lr,
                  momentum=momentum, weight_decay=weight_decay, batch_size=batch_size, mode=mode, seed=seed,
                  topology_seed=topology_seed, threads=threads)
    return SETRun(model, pd.DataFrame(rows), snapshots, seed, config)


def train_set_runs(seeds: Sequence[int], progress: bool = True, **kwargs: Any) -> list[SETRun]:
    """:func:`train_set` once per seed (same keyword arguments)."""
    return [train_set(seed=s, progress=progress, **kwargs) for s in progress_bar(list(seeds), desc="SET runs",
                                                                           disable=not progress)]


def accuracy_table(runs: Sequence[SETRun]) -> pd.DataFrame:
    """One row per run: ``seed, test_accuracy, connections, density, epochs``."""
    rows = []
    for r in runs:
        dense = sum(a * b for a, b in zip(r.model.sizes[:-1], r.model.sizes[1:]))
        rows.append(dict(seed=r.seed, test_accuracy=r.accuracy, connections=r.model.n_connections,
                         density=r.model.n_connections / dense, epochs=len(r.history)))
    return pd.DataFrame(rows)


def nnstd_over_epochs(runs: Sequence[SETRun], names: Sequence[str] | None = None, against: str = "pairs",
                      epochs: Sequence[int] | None = None) -> pd.DataFrame:
    """Per-layer NNSTD along training: columns ``epoch, a, b, layer, name, distance``.

    ``against="pairs"``: every pair of runs at the same epoch (do topologies drift apart?);
    ``against="init"``: every run against its own initial topology (how far has SET moved it?).
    """
    if not runs:
        raise DataError("nnstd_over_epochs: no runs given")
    names = [f"seed {r.seed}" for r in runs] if names is None else [str(n) for n in names]
    n_ep = min(len(r.snapshots) for r in runs)
    epochs = range(n_ep) if epochs is None else [e for e in epochs if 0 <= e < n_ep]
    if against == "pairs":
        pairs = list(itertools.combinations(range(len(runs)), 2))
    elif against == "init":
        pairs = [(i, i) for i in range(len(runs))]
    else:
        from workbench.checks import option

        option("against", against, ("pairs", "init"), where="nnstd_over_epochs")
    rows = []
    for e in epochs:
        for i, j in pairs:
            ta = runs[i].snapshots[e]
            tb = runs[j].snapshots[e] if against == "pairs" else runs[i].snapshots[0]
            res = nnstd(ta, tb).layers
            for rec in res.itertuples():
                rows.append((e, names[i], names[j] if against == "pairs" else f"{names[i]} @0", rec.layer,
                             rec.name, rec.distance))
    return pd.DataFrame(rows, columns=["epoch", "a", "b", "layer", "name", "distance"])


def connection_table(net: Any, max_neurons: int = 64) -> pd.DataFrame:
    """The connections of a small network for drawing: ``level, source, target, weight`` (``level`` k connects
    neurons of level k to level k + 1; ``weight`` is NaN when only a mask is known). Raises
    :class:`DataError` when a level has more than ``max_neurons`` neurons (the picture would be unreadable)."""
    if isinstance(net, SETRun):
        net = net.model
    if isinstance(net, SparseMLP):
        frames = []
        for k, layer in enumerate(net.layers):
            keys = layer.connection_keys()
            frames.append(pd.DataFrame(dict(level=k, source=keys % layer.in_features,
                                            target=keys // layer.in_features, weight=layer.connection_values())))
        sizes = net.sizes
    else:
        top = topology_of(net)
        frames = []
        for k, m in enumerate(top.masks):
            coo = m.tocoo()
            frames.append(pd.DataFrame(dict(level=k, source=coo.col, target=coo.row, weight=np.nan)))
        sizes = list(top.sizes)
    if max(sizes) > max_neurons:
        raise DataError(f"network too large to draw: level sizes {sizes}, at most {max_neurons} neurons per level")
    df = pd.concat(frames, ignore_index=True)
    df.attrs["sizes"] = list(sizes)
    return df


__all__ = [
    "all_relu",
    "SparseMLP",
    "set_prune_regrow",
    "neuron_importance",
    "prune_neurons",
    "SETRun",
    "train_set",
    "train_set_runs",
    "accuracy_table",
    "nnstd_over_epochs",
    "connection_table",
    "choose_threads",
    "second_thread_pays",
    "PARALLEL_MIN_WORK",
]
