"""Samplers: unbiased importance weights (simulation), the sketch against the exact NW estimator, seeds, state,
bad input."""

import math

import numpy as np
import pytest
import torch

from workbench.errors import DataError, NonFiniteError, OptionError, ShapeError
from workbench.sampling import (
    SAMPLERS,
    LossSampler,
    NWSampler,
    NWSketchSampler,
    StaticSampler,
    UniformSampler,
    make_sampler,
)

N = 120


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 6, generator=gen) * 3
    y = torch.arange(N) % 4
    x = centers[y] + torch.randn(N, 6, generator=gen)
    losses = (y.double() + 1) * 0.5 + torch.rand(N, generator=gen, dtype=torch.float64)  # loss depends on the class
    return x, y, losses


def build(name, data, seed=0, **kw):
    x, y, losses = data
    s = make_sampler(name, x, y, seed=seed, scores=losses.numpy() if name == "static" else None, **kw)
    s.bind(lambda idx: losses[idx])
    return s


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_importance_weights_make_the_sampled_mean_loss_unbiased(name, data):
    _, _, losses = data
    s = build(name, data, seed=1)
    s.update(torch.arange(0, N, 2), losses[::2])  # half the samples seen: non-uniform weights
    p = s.weights()
    assert float(p.sum()) == pytest.approx(1.0) and float(p.min()) >= s.floor / N - 1e-15
    estimates = []
    for _ in range(1500):
        idx, w = s.sample(16)
        estimates.append(float((w.double() * losses[idx]).mean()))
    est = np.array(estimates)
    se = est.std() / math.sqrt(len(est))
    assert abs(est.mean() - float(losses.mean())) < 4 * se + 1e-9, (est.mean(), float(losses.mean()), se)
    if name != "uniform":  # the adaptive ones really are non-uniform
        assert float(p.max() / p.min()) > 1.5


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_same_seed_same_samples_and_state_round_trip(name, data):
    _, _, losses = data
    a, b = build(name, data, seed=5), build(name, data, seed=5)
    for s in (a, b):
        s.update(torch.tensor([3, 7, 7, 50]), losses[[3, 7, 7, 50]])
    first = [a.sample(8) for _ in range(3)]
    second = [b.sample(8) for _ in range(3)]
    for (i1, w1), (i2, w2) in zip(first, second):
        assert torch.equal(i1, i2) and torch.equal(w1, w2)
    state = a.state_dict()
    c = build(name, data, seed=99).load_state_dict(state)
    assert torch.equal(c.sample(8)[0], a.sample(8)[0])
    assert not torch.equal(build(name, data, seed=6).sample(32)[0], build(name, data, seed=5).sample(32)[0])


def test_sketch_tracks_the_exact_nw_estimator_and_error_falls_with_tables(data):
    x, _, losses = data
    seen = torch.arange(0, N, 3)
    exact = NWSampler(x, K=3, seed=0)
    exact.update(seen, losses[seen])
    ref = exact.estimate()
    # the reference: kernel-weighted mean of the seen losses with the closed-form SimHash kernel
    f = x - x.mean(0)
    f = f.double() / f.double().norm(dim=1, keepdim=True)
    k = (1 - torch.arccos((f @ f[seen].T).clamp(-1, 1)) / math.pi) ** 3
    assert torch.allclose(ref, (k @ losses[seen]) / k.sum(1))
    errs = {}
    for L in (2, 16, 128):
        e = []
        for seed in range(6):
            s = NWSketchSampler(x, K=3, L=L, seed=seed)
            s.update(seen, losses[seen])
            e.append(float(((s.estimate() - ref).abs() / ref).nanmean()))
        errs[L] = np.mean(e)
    assert errs[2] > errs[16] > errs[128] and errs[128] < 0.1, errs
    # numerator and denominator of one table are unbiased: averaging many one-table sketches recovers NW exactly
    num = torch.zeros(N, dtype=torch.float64)
    den = torch.zeros(N, dtype=torch.float64)
    for seed in range(400):
        s = NWSketchSampler(x, K=3, L=1, seed=1000 + seed)
        s.update(seen, losses[seen])
        a, b = s.tables.query(s.codes)
        num += a
        den += b
    assert float(((num / den - ref).abs() / ref).max()) < 0.05


def test_sketch_updates_replace_old_losses(data):
    x, _, losses = data
    s = NWSketchSampler(x, K=4, L=8, seed=2)
    s.update(torch.tensor([1, 2, 3]), torch.tensor([5.0, 6.0, 7.0]))
    s.update(torch.tensor([2, 3, 4, 4]), torch.tensor([1.0, 2.0, 3.0, 5.0]))  # duplicates are averaged (4 -> 4.0)
    fresh = NWSketchSampler(x, K=4, L=8, seed=2)
    fresh.update(torch.tensor([1, 2, 3, 4]), torch.tensor([5.0, 1.0, 2.0, 4.0]))
    assert torch.allclose(s.tables.sums, fresh.tables.sums) and torch.equal(s.tables.counts, fresh.tables.counts)
    assert torch.allclose(s.estimate(), fresh.estimate(), equal_nan=True)


def test_bad_input_is_refused_and_nothing_changes(data):
    x, y, losses = data
    s = build("nw_sketch", data)
    s.update(torch.arange(10), losses[:10])
    before = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in s.tables.state_dict().items()
              if k != "family"}
    p_before = s.weights().clone()
    with pytest.raises(NonFiniteError, match="nan.*unchanged"):
        s.update(torch.tensor([11, 12]), torch.tensor([1.0, float("nan")]))
    with pytest.raises(NonFiniteError, match="inf"):
        s.update(torch.tensor([1]), torch.tensor([float("inf")]))
    with pytest.raises(DataError, match=f"index 120 is out of range.*0..{N - 1}"):
        s.update(torch.tensor([0, 120]), torch.tensor([1.0, 1.0]))
    with pytest.raises(DataError, match="index -1"):
        s.update(torch.tensor([-1]), torch.tensor([1.0]))
    with pytest.raises(ShapeError, match="2 losses for 1 indices"):
        s.update(torch.tensor([1]), torch.tensor([1.0, 2.0]))
    after = s.tables.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(p_before, s.weights()) and not bool(s.seen[11])
    with pytest.raises(OptionError, match="'uniform', 'static', 'loss', 'nw', 'nw_sketch'"):
        make_sampler("importance", x, y)
    with pytest.raises(OptionError, match="'simhash', 'dwta'"):
        NWSketchSampler(x, family="minhash")
    with pytest.raises(DataError, match="K must be"):
        NWSketchSampler(x, K=0)
    with pytest.raises(DataError, match="L must be"):
        NWSampler(x, L=0)
    with pytest.raises(DataError, match="K=70 is too large"):
        NWSketchSampler(x, K=70)
    with pytest.raises(DataError, match="larger than the data set of 120 samples without replacement"):
        UniformSampler(N).sample(121)
    assert len(UniformSampler(N, replacement=True).sample(500)[0]) == 500
    with pytest.raises(DataError, match="would all be zero"):
        StaticSampler(N, np.zeros(N), floor=0.0)
    zero = StaticSampler(N, np.zeros(N), floor=0.5)  # the floor keeps it uniform
    assert torch.allclose(zero.weights(), torch.full((N,), 1 / N, dtype=torch.float64))
    nw0 = NWSampler(x, floor=0.0)
    nw0.update(torch.arange(N), torch.zeros(N))
    with pytest.raises(DataError, match="would all be zero"):
        nw0.weights()
    with pytest.raises(DataError, match="no loss function bound"):
        LossSampler(N).sample(4)
    with pytest.raises(DataError, match="floor must be"):
        LossSampler(N, floor=1.5)
    with pytest.raises(DataError, match="indices must be integers"):
        s.update(torch.tensor([1.0]), torch.tensor([1.0]))


def test_dwta_sketch_equals_the_kernel_its_tables_realise(data):
    """Without a closed form, the exact NW reference uses the DWTA tables' own collision kernel; the sketch then
    computes exactly the same estimate (sums over tables commute)."""
    x, _, losses = data
    seen = torch.arange(0, N, 2)
    a = NWSampler(x, family="dwta", K=2, L=16, seed=3, family_kw={"bin_size": 4})
    b = NWSketchSampler(x, family="dwta", K=2, L=16, seed=3, family_kw={"bin_size": 4})
    for s in (a, b):
        s.update(seen, losses[seen])
    assert torch.allclose(a.estimate(), b.estimate(), equal_nan=True)
    assert torch.allclose(a.weights(), b.weights())
