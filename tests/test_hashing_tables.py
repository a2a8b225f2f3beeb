"""LSH tables: the sketch against the exact collision-kernel sums, item lists, state, bad input."""

import math

import pytest
import torch

from workbench.errors import DataError, NonFiniteError, ShapeError
from workbench.hashing import DWTA, LSHTables, SimHash


def exact_sums(x, values, q, K):
    xn = x.double() / x.double().norm(dim=1, keepdim=True)
    qn = q.double() / q.double().norm(dim=1, keepdim=True)
    cos = (qn @ xn.T).clamp(-1, 1)
    k = (1 - torch.arccos(cos) / math.pi) ** K
    return k @ values.double(), k.sum(1)


def test_sketch_is_unbiased_for_the_collision_kernel_sums_and_error_falls_with_L():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 10, generator=gen)
    values = torch.rand(200, generator=gen) * 3
    q = torch.randn(20, 10, generator=gen)
    K = 3
    num_exact, den_exact = exact_sums(x, values, q, K)
    nw_exact = num_exact / den_exact
    # expectation over independent hash functions: the mean of many one-table sketches
    runs = []
    for seed in range(300):
        t = LSHTables(SimHash(10, K=K, L=1, seed=seed))
        t.add(x, values)
        runs.append(torch.stack(t.query(q)))
    mean = torch.stack(runs).mean(0)
    sd = torch.stack(runs).std(0) / math.sqrt(len(runs))
    assert bool(((mean[0] - num_exact).abs() < 4 * sd[0] + 1e-9).all())
    assert bool(((mean[1] - den_exact).abs() < 4 * sd[1] + 1e-9).all())
    # the NW ratio's relative error falls as tables are added
    errs = []
    for L in (1, 8, 64):
        e = []
        for seed in range(8):
            t = LSHTables(SimHash(10, K=K, L=L, seed=100 + seed))
            t.add(x, values)
            e.append(((t.estimate(q) - nw_exact).abs() / nw_exact).mean())
        errs.append(float(torch.stack(e).mean()))
    assert errs[0] > errs[1] > errs[2], errs
    assert errs[2] < 0.5 * errs[0]


def test_add_remove_values_and_refusals_leave_tables_unchanged():
    t = LSHTables(DWTA(6, K=2, L=3, bin_size=3, seed=0))
    x = torch.rand(5, 6) + 0.1
    t.add(x, torch.arange(5.0))
    before = (t.sums.clone(), t.counts.clone())
    assert float(t.counts.sum()) == 15 and float(t.sums.sum()) == 3 * 10
    with pytest.raises(NonFiniteError, match="nan.*unchanged"):
        t.add(x, torch.tensor([1.0, 2.0, float("nan"), 0.0, 1.0]))
    with pytest.raises(NonFiniteError):
        t.add_values(x[:1], torch.tensor([float("inf")]))
    with pytest.raises(ShapeError, match="one number per item"):
        t.add(x, torch.ones(4))
    with pytest.raises(DataError, match="codes must lie"):
        t.add(torch.full((1, 3), 10 ** 6, dtype=torch.int64), torch.ones(1))
    assert torch.equal(before[0], t.sums) and torch.equal(before[1], t.counts)
    t.add_values(x[2:3], torch.tensor([5.0]))  # item 2's value 2 -> 7
    t.add(x[2:3], torch.tensor([7.0]), weights=-1.0)  # remove it
    t.add(x[:2], torch.tensor([0.0, 1.0]), weights=-1.0)
    t.add(x[3:], torch.tensor([3.0, 4.0]), weights=-1.0)
    assert float(t.counts.abs().max()) == 0 and float(t.sums.abs().max()) < 1e-12
    assert bool(t.estimate(x).isnan().all())


def test_item_lists_and_candidates_match_brute_force():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(60, 8, generator=gen)
    q = torch.randn(7, 8, generator=gen)
    t = LSHTables(SimHash(8, K=4, L=3, seed=2))
    with pytest.raises(DataError, match="index"):
        t.candidates(q)
    t.index(x, ids=torch.arange(100, 160))
    cx, cq = t.codes(x), t.codes(q)
    qi, items = t.candidates(q)
    brute = {(i, 100 + j) for i in range(7) for j in range(60) if bool((cq[i] == cx[j]).any())}
    assert set(zip(qi.tolist(), items.tolist())) == brute
    got = set(t.bucket_items(1, int(cx[0, 1])).tolist())
    assert got == {100 + j for j in range(60) if int(cx[j, 1]) == int(cx[0, 1])}


def test_state_dict_round_trip_and_too_many_buckets():
    t = LSHTables(SimHash(5, K=3, L=4, seed=1))
    x = torch.randn(9, 5)
    t.add(x, torch.rand(9))
    t.index(x)
    u = LSHTables.from_state_dict(t.state_dict())
    assert torch.equal(u.estimate(x), t.estimate(x)) and torch.equal(u.candidates(x)[1], t.candidates(x)[1])
    with pytest.raises(DataError, match="smaller K \\(at most 10"):
        LSHTables(SimHash(5, K=30, L=2), max_buckets=2 ** 10)
