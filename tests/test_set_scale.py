"""SET at scale: memory ∝ connections (no dense out × in tensor anywhere, optimizer state included), prune/regrow
that keeps the count without duplicates, the memory estimate refused before allocating, the thread choice, and the
old implementation's results unchanged."""

from __future__ import annotations

import hashlib
import tracemalloc

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import workbench.checks
from workbench.errors import DataError, MemoryBudgetError
from workbench.topology import SparseLinear, SparseMLP, set_prune_regrow, train_set
from workbench.topology import set_training
from workbench.topology.set_training import PARALLEL_MIN_WORK, choose_threads
from workbench.topology.sparse_layers import (
    STATE_BYTES_PER_CONNECTION,
    WORK_BYTES_PER_CONNECTION,
    set_memory_estimate,
)


def _stored(t: torch.Tensor) -> int:
    """Elements a tensor really stores (values of a sparse tensor, not its dense shape)."""
    if t.layout == torch.strided:
        return t.numel()
    return t._nnz() if t.layout == torch.sparse_coo else t.values().numel()


class _LargestTensor(TorchDispatchMode):
    """Records the largest number of elements stored by any tensor an aten op returns."""

    def __init__(self) -> None:
        super().__init__()
        self.largest, self.op = 0, None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and _stored(t) > self.largest:
                self.largest, self.op = _stored(t), func
        return out


def _model_and_step(sizes, batch=16, seed=0):
    model = SparseMLP(sizes, epsilon=20, seed=seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)
    x = torch.randn(batch, sizes[0])
    y = torch.randint(0, sizes[-1], (batch,))
    return model, opt, x, y


def test_training_step_never_creates_a_dense_weight_sized_tensor():
    sizes = [400, 3000, 3000, 10]  # the 3000 × 3000 layer has 9 M dense entries and 120 k connections
    model, opt, x, y = _model_and_step(sizes)
    biggest_layer = max(l.n_connections for l in model.layers)
    dense = 3000 * 3000
    with _LargestTensor() as mode:
        for _ in range(2):  # the second step has the momentum buffers
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    # every tensor an op produced (activations, gradients, CSR copies, momentum) is at most ~ one layer's connections
    assert mode.largest <= max(biggest_layer, 16 * 3000), (mode.largest, mode.op)
    assert mode.largest < dense / 50


def test_model_and_optimizer_state_are_proportional_to_connections():
    for sizes in ([64, 2000, 10], [300, 6000, 10]):
        model, opt, x, y = _model_and_step(sizes)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        nnz = model.n_connections
        neurons = sum(sizes)
        tensors = list(model.parameters()) + list(model.buffers())
        tensors += [p.grad for p in model.parameters()]
        tensors += [v for st in opt.state.values() for v in st.values() if isinstance(v, torch.Tensor)]
        for layer in model.layers:
            tensors += [layer._order, layer._crow, layer._col, layer._t_perm, layer._t_crow, layer._t_col]
            assert layer._col.dtype == torch.int32 and layer._t_perm.dtype == torch.int32
        total = sum(t.numel() * t.element_size() for t in tensors)
        # exactly the documented bytes per connection, plus per-neuron vectors (biases, alive flags, CSR row pointers)
        assert STATE_BYTES_PER_CONNECTION * nnz <= total <= STATE_BYTES_PER_CONNECTION * nnz + 40 * neurons
        assert max(t.numel() for t in tensors) <= nnz


def test_prune_regrow_working_memory_is_proportional_to_connections():
    layer = SparseLinear(20_000, 20_000, epsilon=20, seed=0)  # 800 k connections, 400 M dense positions
    opt = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    layer(torch.randn(4, 20_000)).sum().backward()
    opt.step()
    rng = np.random.default_rng(0)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        set_prune_regrow(layer, 0.3, rng, optimizer=opt)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= WORK_BYTES_PER_CONNECTION * layer.n_connections  # the constant the memory estimate uses
    assert peak < 20_000 * 20_000 / 8  # not even a dense bit mask of the layer


@pytest.mark.parametrize("shape,density,alive_rows", [((300, 200), 0.05, None), ((40, 30), 0.9, None),
                                                      ((200, 100), 0.1, 60)])
def test_prune_regrow_keeps_the_count_and_never_duplicates(shape, density, alive_rows):
    n_in, n_out = shape
    layer = SparseLinear(n_in, n_out, density=density, seed=3)
    if alive_rows is not None:  # pruned neurons get no regrowth
        layer.alive_out[alive_rows:] = False
        keys = layer.connection_keys()
        layer.keep_connections(np.flatnonzero(keys // n_in < alive_rows))
    opt = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    layer(torch.randn(3, n_in)).sum().backward()
    opt.step()
    rng = np.random.default_rng(1)
    n = layer.n_connections
    for _ in range(5):
        before = set(layer.connection_keys().tolist())
        counts = set_prune_regrow(layer, 0.3, rng, optimizer=opt)
        keys = layer.connection_keys()
        assert keys.size == n and np.unique(keys).size == n
        assert counts["removed"] > 0 and counts["regrown"] <= counts["removed"]
        if alive_rows is not None:
            assert (keys // n_in).max() < alive_rows
        new = np.flatnonzero(~np.isin(keys, list(before)))
        assert 0 < new.size <= counts["regrown"]  # a regrown connection may land where one was just removed
        mom = opt.state[layer.values]["momentum_buffer"]
        assert torch.all(mom[torch.from_numpy(new)] == 0)  # regrown slots start with no momentum
        w = layer.dense_weight()  # small layers only: the layer still computes with exactly its connections
        assert int((w != 0).sum()) <= n


def test_memory_estimate_is_refused_before_allocating(monkeypatch):
    monkeypatch.setattr(workbench.checks, "available_memory", lambda: 2 * 2**30)

    def no_model(*a, **k):
        raise AssertionError("the model was built although its memory does not fit")

    monkeypatch.setattr(set_training, "SparseMLP", no_model)
    with pytest.raises(MemoryBudgetError, match=r"784-1000000-10 .*30,015,680 connections.* needs an estimated "
                                                r"3\.\d\d GiB, more than the 2\.00 GiB available"):
        train_set((784, 1_000_000, 10), epochs=3, data=_data784(), progress=False)
    with pytest.raises(MemoryBudgetError, match="more than the 1.00 KiB available"):
        train_set((64, 32, 10), epochs=1, progress=False, memory_limit=1024)
    assert isinstance(MemoryBudgetError("x"), MemoryError)


def test_memory_estimate_is_proportional_to_connections():
    small, big = set_memory_estimate([784, 100_000, 10]), set_memory_estimate([784, 1_000_000, 10])
    assert big["state"] / big["connections"] == small["state"] / small["connections"] == STATE_BYTES_PER_CONNECTION
    assert 9 < big["total"] / small["total"] < 11
    dense = set_memory_estimate([784, 100_000, 10], mode="dense")
    assert dense["state"] == (784 * 100_000 + 100_000 * 10) * 13


def _data784():
    from types import SimpleNamespace

    return SimpleNamespace(x_train=torch.zeros(64, 784), y_train=torch.zeros(64, dtype=torch.long),
                           x_test=torch.zeros(8, 784), y_test=torch.zeros(8, dtype=torch.long))


def test_thread_choice():
    def never():
        raise AssertionError("small models must not pay for the probe")

    assert choose_threads(85_680, 32, max_threads=2, probe=never) == 1  # 784-1000-1000-10
    assert choose_threads(715_680, 32, max_threads=2, probe=never) == 1  # 784-10000-10000-10
    assert choose_threads(7_015_680, 32, max_threads=2, probe=lambda: True) == 2  # 784-100000-100000-10, free core
    assert choose_threads(7_015_680, 32, max_threads=2, probe=lambda: False) == 1  # ... second core busy
    assert choose_threads(7_015_680, 32, max_threads=1, probe=never) == 1
    assert choose_threads(int(PARALLEL_MIN_WORK // 1024) + 1, 1024, max_threads=2, probe=lambda: True) == 2  # batch
    assert choose_threads(int(PARALLEL_MIN_WORK // 1024), 8, max_threads=2, probe=never) == 1


def test_train_set_threads_argument_and_history(monkeypatch):
    before = torch.get_num_threads()
    run = train_set((64, 16, 10), epochs=2, epsilon=5, progress=False, threads=1)
    assert list(run.history.threads) == [1, 1] and (run.history.evolve_seconds >= 0).all()
    assert torch.get_num_threads() == before
    with pytest.raises(DataError, match="threads"):
        train_set((64, 16, 10), epochs=1, progress=False, threads=0)
    with pytest.raises(DataError, match="threads"):
        train_set((64, 16, 10), epochs=1, progress=False, threads="fast")


# The old implementation (commit c7ebefa, before int32 CSR caches, the thread choice and the evolve timing) gave these
# losses, accuracies, topology digests (all snapshots + final keys) and weight sums on this machine's torch/numpy; the
# training semantics did not change, so neither may they.
OLD = {
    "a": dict(loss=[1.387286, 0.432578, 0.282359], acc=[0.8277777777777777, 0.9055555555555556, 0.9111111111111111],
              topo="373658edc0cb3f7a", wsum=[15.97347, 0.16133, -1.73897]),
    "b": dict(loss=[1.266717, 0.384887, 0.239163], acc=[0.8861111111111111, 0.9277777777777778, 0.9444444444444444],
              topo="f3ae31bb71d3abec", wsum=[26.5326, 1.00561]),
}


@pytest.mark.parametrize("name,kw", [("a", dict(sizes=(64, 32, 32, 10), epochs=3, epsilon=5, seed=1)),
                                     ("b", dict(sizes=(64, 48, 10), epochs=3, seed=2, prune_neurons_at=(1,),
                                                neuron_fraction=0.2))])
def test_same_results_as_the_old_implementation(name, kw):
    run = train_set(progress=False, **kw)
    h = hashlib.sha256()
    for t in run.snapshots:
        for m in t.masks:
            h.update(m.indptr.astype(np.int64).tobytes())
            h.update(m.indices.astype(np.int64).tobytes())
    for layer in run.model.layers:
        h.update(np.sort(layer.connection_keys()).tobytes())
    ref = OLD[name]
    assert h.hexdigest()[:16] == ref["topo"]
    assert np.allclose(run.history.train_loss, ref["loss"], atol=2e-6)
    assert list(run.history.test_accuracy) == pytest.approx(ref["acc"])
    assert [layer.dense_weight().double().sum().item() for layer in run.model.layers] == pytest.approx(ref["wsum"],
                                                                                                      abs=2e-5)


def test_set_scale_figure_fits_bytes_per_connection_and_refuses_bad_tables():
    import pandas as pd

    from workbench.viz.topology import set_scale_figure

    df = pd.DataFrame([
        dict(part="scale", hidden=h, connections=c, above_start_gib=(2**28 + 80 * c) / 2**30)
        for h, c in ((10_000, 315_680), (100_000, 3_015_680), (1_000_000, 30_015_680))
    ] + [dict(part="threads", hidden=h, connections=c, auto_s=a, one_thread_s=a, two_threads_s=3 * a)
         for h, c, a in ((1000, 85_680, 0.1), (10_000, 715_680, 0.3))])
    fig = set_scale_figure(df)
    names = [t.name for t in fig.data]
    assert "fit: 80 B per connection" in names and {"automatic", "1 thread", "2 threads"} <= set(names)
    with pytest.raises(DataError, match="set_scale_figure: need a table with columns"):
        set_scale_figure(pd.DataFrame())


def test_second_thread_is_refused_when_the_cores_are_busy(monkeypatch):
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.0, 3.0, 3.0))  # two other processes besides ours
    before = torch.get_num_threads()
    assert set_training.second_thread_pays() is False
    monkeypatch.setattr(os, "getloadavg", lambda: (2.2, 2.0, 2.0))  # our own two threads of the last epoch
    set_training.second_thread_pays(own_threads=2)  # decided by timing now; either answer, threads restored
    assert torch.get_num_threads() == before
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert set_training.second_thread_pays() is False
