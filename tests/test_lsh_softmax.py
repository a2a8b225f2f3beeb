"""LSHSoftmax: exact when sampler='full', the corrected sampled softmax unbiased for the partition function, LSH
negatives valid with a cost that does not grow with n_classes, and every bad input refused with nothing changed."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.errors import DataError, NonFiniteError, OptionError, ShapeError, WorkbenchError
from workbench.hashing.output import OutputLayer
from workbench.hashing.softmax import LSHSoftmax


def test_full_equals_linear_plus_cross_entropy_values_and_gradients():
    torch.manual_seed(0)
    layer = LSHSoftmax(12, 37, sampler="full")
    ref = nn.Linear(12, 37)
    with torch.no_grad():
        ref.weight.copy_(layer.weight)
        ref.bias.copy_(layer.bias)
    h1 = torch.randn(9, 12, requires_grad=True)
    h2 = h1.detach().clone().requires_grad_(True)
    y = torch.randint(0, 37, (9,))
    ours, theirs = layer.loss(h1, y), F.cross_entropy(ref(h2), y)
    assert torch.allclose(ours, theirs, atol=1e-6)
    ours.backward()
    theirs.backward()
    assert torch.allclose(layer.weight.grad, ref.weight.grad, atol=1e-7)
    assert torch.allclose(layer.bias.grad, ref.bias.grad, atol=1e-7)
    assert torch.allclose(h1.grad, h2.grad, atol=1e-7)
    assert torch.allclose(layer.full_logits(h1), ref(h1), atol=1e-6)
    assert isinstance(layer, OutputLayer)


def _exact_lsh_q(layer: LSHSoftmax, h: torch.Tensor, y: int) -> torch.Tensor:
    """The LSH proposal written out by brute force over classes and tables (plain loops)."""
    tables = layer._tables
    hq = tables.codes(torch.cat([h, torch.ones(1)])[None])[0]
    items = tables.item_codes()
    sizes = []
    for l in range(layer.L):
        members = [c for c in range(layer.n_classes) if int(items[c, l]) == int(hq[l]) and c != y]
        sizes.append(len(members))
    valid = [l for l in range(layer.L) if sizes[l] > 0]
    q = torch.zeros(layer.n_classes, dtype=torch.float64)
    for c in range(layer.n_classes):
        if c == y:
            continue
        q[c] = sum(1.0 / sizes[l] for l in valid if int(items[c, l]) == int(hq[l])) / len(valid)
    return q


@pytest.mark.parametrize("sampler", ["uniform", "unigram", "lsh"])
def test_sampled_partition_estimate_is_unbiased_and_q_is_the_sampling_distribution(sampler):
    torch.manual_seed(1)
    n, d, m, rows = 12, 6, 3, 40_000
    counts = torch.arange(1, n + 1, dtype=torch.float64)
    layer = LSHSoftmax(d, n, sampler=sampler, negatives=m, K=2, L=6, class_counts=counts, seed=3)
    with torch.no_grad():
        layer.weight.mul_(4)
    h0, y0 = torch.randn(d), 5
    h, y = h0.expand(rows, d).contiguous(), torch.full((rows,), y0)
    layer.rebuild()
    neg, logq = layer.sample(h, y)
    assert bool((neg != y0).all())
    o = layer.full_logits(h0[None])[0].detach().double()
    # q returned with each draw is the probability of drawing it: compare with the empirical frequencies
    freq = torch.bincount(neg.reshape(-1), minlength=n).double() / neg.numel()
    q = torch.zeros(n, dtype=torch.float64)
    q[neg.reshape(-1)] = logq.reshape(-1).double().exp()
    if sampler == "lsh":
        exact = _exact_lsh_q(layer, h0, y0)
        assert torch.allclose(q[freq > 0], exact[freq > 0], atol=1e-6)
        q = exact
    assert abs(float(q.sum()) - 1.0) < 1e-6
    assert float((freq - q).abs().max()) < 0.01
    # E[Σ_j e^{o_s} / (m q_s)] = Σ_{c ≠ y, q_c > 0} e^{o_c}: the corrected estimate of the partition function
    est = (o[neg] - logq.double() - math.log(m)).exp().sum(1)
    reach = (q > 0) & (torch.arange(n) != y0)
    target = float(o[reach].exp().sum())
    se = float(est.std() / math.sqrt(rows))
    assert abs(float(est.mean()) - target) < 4 * se + 1e-9
    if sampler != "lsh":
        assert bool(reach.sum() == n - 1)  # these proposals reach every other class


def test_sampled_loss_approaches_the_full_loss_as_negatives_grow():
    torch.manual_seed(2)
    n = 30
    full = LSHSoftmax(8, n, sampler="full")
    h, y = torch.randn(64, 8), torch.randint(0, n, (64,))
    with torch.no_grad():
        exact = float(full.loss(h, y))
    gaps = []
    for m in (2, 29):
        layer = LSHSoftmax(8, n, sampler="uniform", negatives=m, seed=0)
        layer.load_state_dict(full.state_dict())
        with torch.no_grad():
            gaps.append(abs(sum(float(layer.loss(h, y)) for _ in range(200)) / 200 - exact))
    assert gaps[1] < gaps[0] and gaps[1] < 0.05 * exact


def test_lsh_negatives_valid_never_the_target_and_from_the_query_buckets():
    torch.manual_seed(3)
    n = 2000
    layer = LSHSoftmax(16, n, sampler="lsh", negatives=32, K=6, L=8, seed=0)
    h, y = torch.randn(128, 16), torch.randint(0, n, (128,))
    layer.rebuild()
    neg, logq = layer.sample(h, y)
    assert neg.shape == (128, 32) and neg.dtype == torch.int64
    assert bool(((neg >= 0) & (neg < n)).all()) and bool((neg != y[:, None]).all())
    assert bool(torch.isfinite(logq).all()) and bool((logq <= 0).all())
    hq = layer._tables.codes(torch.cat([h, torch.ones(128, 1)], 1))
    shares = (layer._tables.item_codes()[neg] == hq[:, None, :]).any(-1)
    assert bool(shares.all())  # every negative shares a bucket with its query


def test_lsh_cost_per_sample_does_not_grow_with_n_classes():
    touched = []
    for n in (1_000, 200_000):
        layer = LSHSoftmax(16, n, sampler="lsh", negatives=20, K=8, L=10, seed=0)
        layer.rebuild()
        layer.sample(torch.randn(64, 16), torch.randint(0, n, (64,)))
        touched.append(layer.stats()["touched_per_sample"])
    assert touched[0] == touched[1] == 2 * 10 + 20 + 20 * 10
    full = LSHSoftmax(16, 1000, sampler="full")
    full.loss(torch.randn(4, 16), torch.zeros(4, dtype=torch.long))
    assert full.stats()["touched_per_sample"] == 1000


def test_sampled_gradient_touches_only_target_and_negative_rows():
    torch.manual_seed(4)
    layer = LSHSoftmax(8, 500, sampler="lsh", negatives=5, K=4, L=4)
    h, y = torch.randn(3, 8), torch.tensor([1, 2, 3])
    layer.rebuild()
    torch.manual_seed(0)
    gen_state = layer._generator.get_state()
    neg, _ = layer.sample(h, y)
    layer._generator.set_state(gen_state)
    layer.loss(h, y).backward()
    g = layer.weight.grad
    assert g.is_sparse
    rows = set(g.coalesce().indices()[0].tolist())
    assert rows <= set(y.tolist()) | set(neg.reshape(-1).tolist())


def test_rebuild_schedule_counts_training_steps():
    layer = LSHSoftmax(8, 100, sampler="lsh", negatives=4, K=3, L=2, rebuild_every=3)
    h, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 3])
    for _ in range(7):
        layer.loss(h, y)
    assert layer.stats()["rebuilds"] == 3  # first call, then steps 4 and 7
    with torch.no_grad():
        layer.loss(h, y)
    assert layer.stats()["steps"] == 7


@pytest.mark.parametrize("kwargs, error", [
    ({"n_classes": 1}, DataError),
    ({"negatives": 0}, DataError),
    ({"negatives": 50}, DataError),
    ({"K": 0}, DataError),
    ({"L": 0}, DataError),
    ({"sampler": "softmax"}, OptionError),
    ({"sampler": "unigram"}, DataError),  # no class_counts
    ({"sampler": "unigram", "class_counts": [1.0] * 49}, ShapeError),
])
def test_bad_construction_arguments(kwargs, error):
    args = {"in_features": 4, "n_classes": 50, "sampler": "lsh", "negatives": 5, **kwargs}
    with pytest.raises(error) as info:
        LSHSoftmax(**args)
    assert isinstance(info.value, WorkbenchError)
    name = next(iter(kwargs))
    assert name in str(info.value) or "class_counts" in str(info.value)


@pytest.mark.parametrize("sampler", ["lsh", "uniform", "full"])
def test_bad_inputs_change_nothing(sampler):
    layer = LSHSoftmax(4, 20, sampler=sampler, negatives=3, K=2, L=2)
    layer.loss(torch.randn(2, 4), torch.tensor([0, 1]))
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    stats = layer.stats()
    tables = layer._tables
    bad = [(torch.randn(2, 4), torch.tensor([0, 20]), DataError),
           (torch.randn(2, 4), torch.tensor([-1, 0]), DataError),
           (torch.tensor([[float("nan"), 0, 0, 0], [0, 0, 0, 0]]), torch.tensor([0, 1]), NonFiniteError),
           (torch.randn(2, 5), torch.tensor([0, 1]), ShapeError),
           (torch.randn(2, 4), torch.tensor([0.0, 1.0]), ShapeError)]
    for h, y, error in bad:
        with pytest.raises(error):
            layer.loss(h, y)
    with pytest.raises(NonFiniteError):
        layer.full_logits(torch.full((1, 4), float("inf")))
    assert layer.stats() == stats
    assert all(torch.equal(before[k], v) for k, v in layer.state_dict().items())
    assert layer._tables is tables


def test_rebuild_refuses_non_finite_weights_and_keeps_the_tables():
    layer = LSHSoftmax(4, 20, sampler="lsh", negatives=3, K=2, L=2)
    layer.rebuild()
    tables, rebuilds = layer._tables, layer.stats()["rebuilds"]
    with torch.no_grad():
        layer.weight[3, 1] = float("nan")
    with pytest.raises(NonFiniteError, match="unchanged"):
        layer.rebuild()
    assert layer._tables is tables and layer.stats()["rebuilds"] == rebuilds
