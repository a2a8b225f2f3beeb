"""HashedSparseLinear (SLIDE): equal to nn.Linear when every neuron is active, gradients only on active rows, active
sets equal to the brute-force union of colliding buckets, the rebuild schedule, and every bad input refused with the
right WorkbenchError and nothing changed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from workbench.errors import DataError, NonFiniteError, OptionError, ShapeError, WorkbenchError
from workbench.hashing import SimHash
from workbench.hashing.slide import HashedSparseLinear

BACKENDS = ["numba", "torch"]


def _twin(layer: HashedSparseLinear) -> torch.nn.Linear:
    lin = torch.nn.Linear(layer.in_features, layer.out_features, dtype=layer.weight.dtype)
    with torch.no_grad():
        lin.weight.copy_(layer.weight)
        lin.bias.copy_(layer.bias)
    return lin


def _dense(g: torch.Tensor | None) -> torch.Tensor:
    return g.to_dense() if g.is_sparse else g


def _brute_active(layer: HashedSparseLinear, h: torch.Tensor) -> list[set[int]]:
    """Neuron j is active for input b when their codes agree in at least one table (naive double loop over codes)."""
    ch = layer.family.codes(h).tolist()
    cw = layer.family.codes(layer.weight.detach()).tolist()
    return [{j for j, cj in enumerate(cw) if any(a == c for a, c in zip(cb, cj))} for cb in ch]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sparse_grad", [True, False])
def test_all_active_equals_nn_linear(backend, sparse_grad):
    torch.manual_seed(0)
    layer = HashedSparseLinear(12, 40, all_active=True, backend=backend, sparse_grad=sparse_grad, seed=3,
                               dtype=torch.float64)
    lin = _twin(layer)
    h1 = torch.randn(9, 12, dtype=torch.float64, requires_grad=True)
    h2 = h1.detach().clone().requires_grad_(True)
    t = torch.randint(0, 40, (9,))
    a, b = layer.loss(h1, t), F.cross_entropy(lin(h2), t)
    a.backward()
    b.backward()
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(_dense(layer.weight.grad), lin.weight.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(_dense(layer.bias.grad), lin.bias.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h1.grad, h2.grad, rtol=1e-12, atol=1e-12)
    assert layer.stats()["active_fraction"] == 1.0
    # forward: the activations in dense form are nn.Linear's output, and so are their gradients
    h3 = h1.detach().clone().requires_grad_(True)
    h4 = h1.detach().clone().requires_grad_(True)
    layer.zero_grad()
    lin.zero_grad()
    out = layer(h3)
    assert out.mask.all()
    w = torch.randn(9, 40, dtype=torch.float64)
    (out.to_dense(40) * w).sum().backward()
    (lin(h4) * w).sum().backward()
    torch.testing.assert_close(out.to_dense(40), lin(h4), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(_dense(layer.weight.grad), lin.weight.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h3.grad, h4.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer.full_logits(h1), lin(h1), rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("family, K", [("simhash", 5), ("dwta", 2)])
def test_active_sets_equal_brute_force(backend, family, K):
    torch.manual_seed(1)
    layer = HashedSparseLinear(10, 300, K=K, L=3, backend=backend, seed=2, family=family)
    h = torch.randn(7, 10)
    idx, count = layer.active_sets(h)
    brute = _brute_active(layer, h)
    for b in range(7):
        got = idx[b, : count[b]].tolist()
        assert len(got) == len(set(got)), "an id appears twice in one active set"
        assert set(got) == brute[b]
        assert (idx[b, count[b]:] == 0).all()
    assert 0 < int(count.min()) and int(count.max()) < 300  # a real subset: the check above is not vacuous
    # with the labels: the label first, then the union (the label not repeated)
    t = torch.tensor([brute[0].copy().pop(), 0, 1, 2, 3, 4, 299])
    idx, count = layer.active_sets(h, t)
    for b in range(7):
        got = idx[b, : count[b]].tolist()
        assert got[0] == int(t[b]) and len(got) == len(set(got)) and set(got) == brute[b] | {int(t[b])}


def test_backends_agree_on_active_sets_and_loss():
    torch.manual_seed(2)
    a = HashedSparseLinear(16, 500, K=6, L=4, backend="numba", seed=5, dtype=torch.float64)
    b = HashedSparseLinear(16, 500, K=6, L=4, backend="torch", seed=5, dtype=torch.float64)
    h, t = torch.randn(11, 16, dtype=torch.float64), torch.randint(0, 500, (11,))
    (ia, ca), (ib, cb) = a.active_sets(h, t), b.active_sets(h, t)
    assert torch.equal(ca, cb)
    assert all(set(ia[r, : ca[r]].tolist()) == set(ib[r, : cb[r]].tolist()) for r in range(11))
    la, lb = a.loss(h, t), b.loss(h, t)
    la.backward()
    lb.backward()
    torch.testing.assert_close(la, lb, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(_dense(a.weight.grad), _dense(b.weight.grad), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_loss_is_cross_entropy_over_the_active_set(backend):
    torch.manual_seed(3)
    layer = HashedSparseLinear(8, 200, K=4, L=2, backend=backend, seed=1, dtype=torch.float64)
    h, t = torch.randn(6, 8, dtype=torch.float64), torch.randint(0, 200, (6,))
    idx, count = layer.active_sets(h, t)
    ref = 0.0
    for b in range(6):
        act = idx[b, : count[b]]
        logits = h[b] @ layer.weight.detach()[act].T + layer.bias.detach()[act]
        ref += float(torch.logsumexp(logits, 0) - logits[0]) / 6
    assert abs(float(layer.loss(h, t).detach()) - ref) < 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sparse_grad", [True, False])
def test_gradients_reach_only_active_rows(backend, sparse_grad):
    torch.manual_seed(4)
    layer = HashedSparseLinear(10, 400, K=6, L=3, backend=backend, sparse_grad=sparse_grad, seed=0)
    h, t = torch.randn(5, 10), torch.randint(0, 400, (5,))
    idx, count = layer.active_sets(h, t)
    active = torch.zeros(400, dtype=torch.bool)
    for b in range(5):
        active[idx[b, : count[b]]] = True
    assert 0 < int(active.sum()) < 400
    layer.loss(h, t).backward()
    gw, gb = _dense(layer.weight.grad), _dense(layer.bias.grad)
    assert (gw[~active] == 0).all() and (gb[~active] == 0).all()
    assert (gw[active].abs().sum(1) > 0).all()  # every active row does get a gradient
    if sparse_grad and backend == "numba":  # the sparse gradient holds exactly the active rows
        assert layer.weight.grad.is_sparse
        assert set(layer.weight.grad.coalesce().indices()[0].tolist()) == set(active.nonzero()[:, 0].tolist())
    # an SGD step moves only the active rows
    before = layer.weight.detach().clone()
    torch.optim.SGD(layer.parameters(), lr=0.5).step()
    moved = (layer.weight.detach() != before).any(1)
    assert not moved[~active].any() and moved[active].all()


def test_forward_gradients_reach_only_active_rows():
    torch.manual_seed(5)
    layer = HashedSparseLinear(10, 400, K=6, L=2, seed=0)
    h = torch.randn(4, 10)
    out = layer(h)
    active = torch.zeros(400, dtype=torch.bool)
    active[out.index[out.mask]] = True
    assert 0 < int(active.sum()) < 400
    torch.relu(out.values).pow(2).sum().backward()
    assert (_dense(layer.weight.grad)[~active] == 0).all()
    # values are the dense output at the active positions, 0 at padding
    dense = layer.full_logits(h).detach()
    torch.testing.assert_close(out.values[out.mask], dense.gather(1, out.index)[out.mask])
    assert (out.values[~out.mask] == 0).all()


def test_rebuild_schedule_and_stats():
    torch.manual_seed(6)
    layer = HashedSparseLinear(8, 100, K=3, L=2, rebuild_every=3, seed=0)
    h, t = torch.randn(4, 8), torch.randint(0, 100, (4,))
    rebuilds = []
    for _ in range(7):
        layer.loss(h, t)
        rebuilds.append(int(layer.stats()["rebuilds"]))
    assert rebuilds == [1, 1, 1, 2, 2, 2, 3]
    layer.eval()  # evaluation calls are not training steps
    layer.loss(h, t)
    layer(h)
    s = layer.stats()
    assert s["rebuilds"] == 3 and s["steps"] == 7
    assert 0 < s["active_fraction"] <= 1 and 0 < s["active_fraction_mean"] <= 1
    # a rebuild hashes the current weights: after they move, the active sets follow the new codes
    layer.train()
    with torch.no_grad():
        layer.weight.mul_(-1.0)
    layer.rebuild()
    idx, count = layer.active_sets(h)
    assert [set(idx[b, : count[b]].tolist()) for b in range(4)] == _brute_active(layer, h)
    # loading weights marks the tables stale: the next call hashes the loaded weights
    other = HashedSparseLinear(8, 100, K=3, L=2, rebuild_every=None, seed=0)
    other.active_sets(h)
    other.load_state_dict(layer.state_dict())
    idx, count = other.active_sets(h)
    assert other.stats()["rebuilds"] == 2
    assert [set(idx[b, : count[b]].tolist()) for b in range(4)] == _brute_active(layer, h)
    never = HashedSparseLinear(8, 100, K=3, L=2, rebuild_every=None, seed=0)
    for _ in range(5):
        never.loss(h, t)
    assert never.stats()["rebuilds"] == 1


@pytest.mark.parametrize("kw, err", [({"out_features": 1}, DataError), ({"K": 0}, DataError),
                                     ({"L": 0}, DataError), ({"rebuild_every": 0}, DataError),
                                     ({"family": "minhash"}, OptionError), ({"backend": "cuda"}, OptionError)])
def test_bad_construction(kw, err):
    args = {"in_features": 8, "out_features": 50, **kw}
    with pytest.raises(err) as e:
        HashedSparseLinear(**args)
    assert isinstance(e.value, WorkbenchError)
    key = next(iter(kw))
    assert key in str(e.value) and repr(kw[key]) in str(e.value)


def test_bad_inputs_change_nothing():
    torch.manual_seed(7)
    layer = HashedSparseLinear(8, 50, K=3, L=2, rebuild_every=1, seed=0)
    h, t = torch.randn(4, 8), torch.randint(0, 50, (4,))
    layer.loss(h, t)
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    keys = layer.tables._sorted[0].clone()
    stats = layer.stats()
    bad_h = h.clone()
    bad_h[2, 3] = float("nan")
    cases = [(lambda: layer.loss(h, torch.tensor([0, 1, 50, 2])), DataError, "50"),
             (lambda: layer.loss(h, torch.tensor([0, -1, 2, 2])), DataError, "-1"),
             (lambda: layer.loss(bad_h, t), NonFiniteError, "nan"),
             (lambda: layer(bad_h), NonFiniteError, "nan"),
             (lambda: layer.loss(torch.randn(4, 7), t), ShapeError, "(4, 7)"),
             (lambda: layer.loss(h, t[:3]), ShapeError, "(3,)")]
    for call, err, text in cases:
        with pytest.raises(err) as e:
            call()
        assert text in str(e.value)
        assert layer.stats() == stats
        assert all(torch.equal(v, state[k]) for k, v in layer.state_dict().items())
        assert torch.equal(layer.tables._sorted[0], keys)


def test_rebuild_refuses_non_finite_weights():
    layer = HashedSparseLinear(8, 50, K=3, L=2, seed=0)
    layer.rebuild()
    keys, ids = (x.clone() for x in layer.tables._sorted)
    with torch.no_grad():
        layer.weight[7, 1] = float("inf")
    with pytest.raises(NonFiniteError, match=r"inf.*\[7, 1\]"):
        layer.rebuild()
    assert layer.stats()["rebuilds"] == 1
    assert torch.equal(layer.tables._sorted[0], keys) and torch.equal(layer.tables._sorted[1], ids)


def test_bucket_ranges_match_candidates():
    fam = SimHash(dim=6, K=3, L=4, seed=0)
    from workbench.hashing import LSHTables

    tab = LSHTables(fam)
    items = torch.randn(60, 6)
    tab.index(items)
    q = torch.randn(5, 6)
    lo, hi, ids = tab.bucket_ranges(q)
    qi, it = tab.candidates(q)
    for b in range(5):
        mine = {int(i) for t in range(4) for i in ids[lo[b, t]:hi[b, t]]}
        assert mine == set(it[qi == b].tolist())


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_bias_equals_nn_linear_without_bias(backend):
    torch.manual_seed(8)
    layer = HashedSparseLinear(6, 20, all_active=True, bias=False, backend=backend, dtype=torch.float64)
    lin = torch.nn.Linear(6, 20, bias=False, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(layer.weight)
    h, t = torch.randn(5, 6, dtype=torch.float64), torch.randint(0, 20, (5,))
    a, b = layer.loss(h, t), F.cross_entropy(lin(h), t)
    a.backward()
    b.backward()
    assert layer.bias is None
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(_dense(layer.weight.grad), lin.weight.grad, rtol=1e-12, atol=1e-12)
