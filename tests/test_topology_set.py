"""Truly sparse layers and SET: gradients against dense references, prune/regrow rules, All-ReLU, importance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.data import digits_split
from workbench.errors import DataError, ShapeError
from workbench.topology import (
    MaskedLinear,
    SparseLinear,
    SparseMLP,
    accuracy_table,
    all_relu,
    connection_table,
    erdos_renyi_density,
    neuron_importance,
    nnstd,
    nnstd_over_epochs,
    prune_neurons,
    random_empty_keys,
    set_prune_regrow,
    train_set,
)


def test_erdos_renyi_density():
    assert erdos_renyi_density(784, 1000, 20) == pytest.approx(20 * 1784 / 784000)
    assert erdos_renyi_density(64, 10, 20) == 1.0
    layer = SparseLinear(300, 200, epsilon=20, seed=0)
    assert layer.n_connections == round(20 * 500 / 60000 * 60000)
    with pytest.raises(DataError):
        erdos_renyi_density(10, 10, -1)


def test_random_empty_keys_avoid_occupied_and_are_unique():
    rng = np.random.default_rng(0)
    occ = np.sort(rng.choice(10_000, 3000, replace=False))
    for count in (10, 2000, 6900):
        k = random_empty_keys(100, 100, count, occ, rng)
        assert k.size == count and np.unique(k).size == count
        assert not np.isin(k, occ).any()
        assert k.min() >= 0 and k.max() < 10_000
    rows, cols = np.array([1, 5]), np.array([0, 2, 3])
    k = random_empty_keys(100, 100, 6, np.empty(0, np.int64), rng, rows, cols)
    assert set((k // 100).tolist()) <= {1, 5} and set((k % 100).tolist()) <= {0, 2, 3}
    with pytest.raises(DataError):
        random_empty_keys(10, 10, 101, np.empty(0, np.int64), rng)


def test_sparse_linear_forward_backward_match_dense_float64_reference():
    layer = SparseLinear(40, 30, density=0.2, seed=1)
    x = torch.randn(7, 40, requires_grad=True)
    y = layer(x)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    w = layer.dense_weight().double().requires_grad_(True)
    x64 = x.detach().double().requires_grad_(True)
    y64 = x64 @ w.T + layer.bias.detach().double()
    (y64 * g.double()).sum().backward()
    assert torch.allclose(y.double(), y64, atol=1e-5)
    assert torch.allclose(x.grad.double(), x64.grad, atol=1e-5)
    assert torch.allclose(layer.values.grad.double(), w.grad.reshape(-1)[layer.keys], atol=1e-5)
    assert torch.allclose(layer.bias.grad.double(), g.double().sum(0), atol=1e-5)


def test_sparse_and_masked_dense_agree_through_training_steps():
    torch.manual_seed(0)
    a = SparseMLP([20, 16, 12, 5], mode="sparse", epsilon=3, seed=4)
    b = SparseMLP([20, 16, 12, 5], mode="dense", epsilon=3, seed=4)
    oa = torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.9)
    ob = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(32, 20), torch.randint(0, 5, (32,))
    for step in range(4):
        for net, opt in ((a, oa), (b, ob)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        if step == 1:  # a SET step with the same randomness keeps both modes identical
            for la, lb in zip(a.layers, b.layers):
                set_prune_regrow(la, 0.3, np.random.default_rng(9), optimizer=oa)
                set_prune_regrow(lb, 0.3, np.random.default_rng(9), optimizer=ob)
    for la, lb in zip(a.layers, b.layers):
        assert np.array_equal(np.sort(la.connection_keys()), lb.connection_keys())
        assert torch.allclose(la.dense_weight(), lb.dense_weight(), atol=1e-5)
    assert nnstd(a, b).mean == 0


def test_set_step_removes_closest_to_zero_per_sign_and_regrows_as_many():
    layer = SparseLinear(50, 40, density=0.2, seed=2)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    layer(torch.randn(4, 50)).sum().backward()
    opt.step()
    before_keys, before_vals = layer.connection_keys(), layer.connection_values()
    pos, neg = before_vals[before_vals > 0], before_vals[before_vals < 0]
    stats = set_prune_regrow(layer, 0.3, np.random.default_rng(0), regrow_std=0.1, optimizer=opt)
    assert stats["removed"] == round(0.3 * pos.size) + round(0.3 * neg.size) == stats["regrown"]
    keys, vals = layer.connection_keys(), layer.connection_values()
    assert keys.size == before_keys.size and np.unique(keys).size == keys.size
    changed = keys != before_keys
    assert changed.sum() <= stats["removed"]
    removed_vals = before_vals[changed]
    kept_vals = before_vals[~changed]
    # every removed positive is <= every kept positive; every removed negative >= every kept negative
    if (removed_vals > 0).any():
        assert removed_vals[removed_vals > 0].max() <= kept_vals[kept_vals > 0].min()
    if (removed_vals < 0).any():
        assert removed_vals[removed_vals < 0].min() >= kept_vals[kept_vals < 0].max()
    buf = opt.state[layer.values]["momentum_buffer"]
    assert torch.all(buf[torch.from_numpy(np.flatnonzero(changed))] == 0)
    assert np.isin(keys[changed], before_keys[~changed]).sum() == 0  # no regrowth on a kept connection


def test_all_relu_slopes_alternate():
    x = torch.tensor([-2.0, 0.0, 3.0])
    assert torch.equal(all_relu(x, 1, 0.5), torch.tensor([1.0, 0.0, 3.0]))
    assert torch.equal(all_relu(x, 2, 0.5), torch.tensor([-1.0, 0.0, 3.0]))


def test_importance_and_neuron_pruning():
    net = SparseMLP([20, 16, 12, 5], epsilon=4, seed=0)
    imp = neuron_importance(net)
    w0 = net.layers[0].dense_weight()
    assert np.allclose(imp[imp.layer == 0].importance, w0.abs().sum(1).numpy(), atol=1e-6)
    pruned = prune_neurons(net, 0.25)
    assert len(pruned) == 4 + 3
    dead0 = pruned[pruned.layer == 0].neuron.to_numpy().astype(np.int64).copy()
    assert (net.layers[0].dense_weight()[dead0] == 0).all()
    assert (net.layers[1].dense_weight()[:, dead0] == 0).all()
    # regrowth never reconnects dead neurons
    for _ in range(3):
        set_prune_regrow(net.layers[1], 0.5, np.random.default_rng(1))
    assert (net.layers[1].dense_weight()[:, dead0] == 0).all()
    assert net(torch.randn(3, 20)).shape == (3, 5)


def test_truly_sparse_storage_follows_connections():
    n = 10_000
    layer = SparseLinear(n, n, epsilon=20, seed=0)
    nnz = layer.n_connections
    assert nnz == round(20 * 2 * n)
    stored = sum(t.numel() for t in list(layer.parameters()) + list(layer.buffers()))
    assert stored == 2 * nnz + 3 * n  # keys + values + bias + alive flags, no dense matrix
    y = layer(torch.randn(2, n))
    y.sum().backward()
    assert layer.values.grad.shape == (nnz,)


def test_train_set_on_digits_learns_and_snapshots():
    run = train_set((64, 48, 48, 10), epochs=3, epsilon=10, seed=1, progress=False, prune_neurons_at=(2,))
    assert run.accuracy > 0.85
    assert len(run.snapshots) == 4 and list(run.history.epoch) == [1, 2, 3]
    assert run.history.connections.iloc[-1] < run.history.connections.iloc[0]
    # snapshots change (SET moved connections) but keep their size between prunings
    assert nnstd(run.snapshots[0], run.snapshots[1]).mean > 0
    assert run.snapshots[1].masks[0].nnz == run.snapshots[0].masks[0].nnz
    table = accuracy_table([run])
    assert list(table.columns) == ["seed", "test_accuracy", "connections", "density", "epochs"]


def test_sparse_and_dense_modes_train_identically():
    kw = dict(sizes=(64, 32, 10), epochs=2, epsilon=5, seed=3, progress=False)
    a, b = train_set(mode="sparse", **kw), train_set(mode="dense", **kw)
    assert np.allclose(a.history.train_loss, b.history.train_loss, rtol=1e-4)
    assert nnstd(a.snapshots[-1], b.snapshots[-1]).mean == 0


def test_shared_topology_seed_then_drift_and_connection_table():
    runs = [train_set((64, 24, 10), epochs=3, epsilon=5, seed=s, topology_seed=0, progress=False) for s in (0, 1)]
    df = nnstd_over_epochs(runs)
    assert list(df.columns) == ["epoch", "a", "b", "layer", "name", "distance"]
    first = df[df.epoch == 0].distance
    assert (first == 0).all() and df[df.epoch == 2].distance.iloc[0] > 0
    init = nnstd_over_epochs(runs, against="init")
    assert (init[init.epoch == 0].distance == 0).all()
    ct = connection_table(runs[0])
    assert set(ct.columns) == {"level", "source", "target", "weight"} and ct.attrs["sizes"] == [64, 24, 10]
    assert len(ct) == runs[0].model.n_connections
    with pytest.raises(DataError, match="too large"):
        connection_table(runs[0], max_neurons=20)


def test_bad_set_input():
    with pytest.raises(DataError, match="mode"):
        SparseMLP([4, 3], mode="blocky")
    with pytest.raises(ShapeError):
        SparseMLP([4])
    with pytest.raises(ShapeError, match="features"):
        train_set((10, 5, 3), epochs=1, progress=False, data=digits_split())
    with pytest.raises(DataError):
        train_set((64, 5, 10), epochs=0, progress=False)
    with pytest.raises(ShapeError):
        SparseLinear(8, 4, density=0.5, seed=0)(torch.zeros(2, 7))
    with pytest.raises(DataError):
        MaskedLinear(8, 4, density=1.5)
