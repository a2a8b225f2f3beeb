"""Hash families: collision rates against their formulas, batch hashing, seeds, state, bad input."""

import math

import numpy as np
import pytest
import torch

from workbench.errors import DataError, OptionError, ShapeError
from workbench.hashing import DWTA, HASH_FAMILIES, SimHash, from_state_dict, make_family, measured_collision


def pairs_at_angle(n, dim, theta, gen):
    """n random pairs of unit vectors at exactly angle theta."""
    u = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    v = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    v = v - (v * u).sum(1, keepdim=True) * u
    v = v / v.norm(dim=1, keepdim=True)
    return u, math.cos(theta) * u + math.sin(theta) * v


@pytest.mark.parametrize("theta", [0.15, 0.7, 1.4, 2.2, 3.0])
def test_simhash_bit_collisions_match_one_minus_theta_over_pi(theta):
    gen = torch.Generator().manual_seed(1)
    x, y = pairs_at_angle(400, 16, theta, gen)
    fam = SimHash(dim=16, K=4, L=16, seed=3)
    rate = float(measured_collision(fam, x.float(), y.float()).mean())
    p = 1 - theta / math.pi
    assert float(fam.hash_collision_probability(math.cos(theta))) == pytest.approx(p)
    # 400 pairs x 64 bits; the bits of one pair share the pair, so use pairs as the sample size (conservative)
    se = math.sqrt(p * (1 - p) / 400) + 1e-3
    assert abs(rate - p) < 4 * se, (rate, p)


def test_simhash_table_and_any_table_probabilities():
    gen = torch.Generator().manual_seed(2)
    theta = 0.9
    x, y = pairs_at_angle(3000, 8, theta, gen)
    fam = SimHash(dim=8, K=3, L=5, seed=7)
    same = fam.codes(x.float()) == fam.codes(y.float())  # (n, L)
    p = 1 - theta / math.pi
    assert float(fam.collision_probability(math.cos(theta))) == pytest.approx(p ** 3)
    assert float(fam.collision_probability(math.cos(theta), tables="any")) == pytest.approx(1 - (1 - p ** 3) ** 5)
    per_table = float(same.double().mean())
    assert abs(per_table - p ** 3) < 4 * math.sqrt(p ** 3 * (1 - p ** 3) / 3000)
    anyt = float(same.any(1).double().mean())
    q = 1 - (1 - p ** 3) ** 5
    assert abs(anyt - q) < 4 * math.sqrt(q * (1 - q) / 3000)
    with pytest.raises(OptionError, match="'any'"):
        fam.collision_probability(0.5, tables=2)


def kendall_tau(a, b):
    i, j = np.triu_indices(len(a), 1)
    return float(np.mean(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])))


def test_dwta_bin2_matches_kendall_formula_and_bigger_bins_are_measured():
    rng = np.random.default_rng(0)
    dim = 24
    base = rng.normal(size=(300, dim))
    noisy = base + rng.normal(size=(300, dim)) * 0.8
    x, y = torch.tensor(base + 10, dtype=torch.float32), torch.tensor(noisy + 10, dtype=torch.float32)  # no zeros
    taus = np.array([kendall_tau(base[i], noisy[i]) for i in range(300)])
    fam = DWTA(dim=dim, K=2, L=64, bin_size=2, seed=0)
    assert fam.closed_form
    rate = float(measured_collision(fam, x, y).mean())
    predicted = float(fam.hash_collision_probability(torch.tensor(taus)).mean())
    assert abs(rate - predicted) < 0.02, (rate, predicted)
    # bin_size 8: no closed form, said plainly; the measured curve rises with similarity and is scale-free
    big = DWTA(dim=dim, K=2, L=32, bin_size=8, seed=0)
    assert not big.closed_form
    with pytest.raises(DataError, match="no closed-form"):
        big.collision_probability(0.5)
    rates = [float(measured_collision(big, x, torch.tensor(base + s * rng.normal(size=(300, dim)) + 10,
                                                            dtype=torch.float32)).mean()) for s in (0.1, 0.5, 2.0)]
    assert rates[0] > rates[1] > rates[2]
    assert torch.equal(big.codes(x), big.codes(3 * x + 1))  # order statistics only


def test_dwta_densification_fills_empty_bins():
    dim = 64
    x = torch.zeros(50, dim)
    x[torch.arange(50), torch.arange(50)] = 1.0  # one non-zero coordinate each: nearly every bin is empty
    x[:, 60] = 0.5
    fam = DWTA(dim=dim, K=4, L=8, bin_size=4, probes=32, seed=1)
    h = fam.hashes(x)
    assert h.shape == (50, 8, 4) and int(h.max()) < 4
    # identical items collide everywhere, and the result is deterministic
    assert torch.equal(fam.codes(x), fam.codes(x.clone()))
    # undensified (probes=0), empty hashes are all 0: densification changes them
    raw = DWTA(dim=dim, K=4, L=8, bin_size=4, probes=0, seed=1)
    assert not torch.equal(raw.hashes(x), h)
    # densified: every hash of an item equals the winner of some non-empty bin of that item
    vals = x[:, fam.bins]  # (n, L*K, bin_size)
    nonempty = ~(vals == 0).all(-1)
    winners = vals.argmax(-1)
    flat = h.view(50, -1)
    for i in range(0, 50, 7):
        allowed = set(winners[i][nonempty[i]].tolist())
        assert set(flat[i].tolist()) <= allowed

@pytest.mark.parametrize("name", sorted(HASH_FAMILIES))
def test_batch_shapes_seed_state_and_device(name):
    x = torch.randn(37, 12).abs()
    fam = make_family(name, 12, K=3, L=5, seed=4)
    codes = fam.codes(x)
    assert codes.shape == (37, 5) and codes.dtype == torch.int64
    assert int(codes.min()) >= 0 and int(codes.max()) < fam.n_buckets
    # one item at a time gives the same codes as the batch
    assert torch.equal(torch.cat([fam.codes(x[i]) for i in range(5)]), codes[:5])
    assert torch.equal(make_family(name, 12, K=3, L=5, seed=4).codes(x), codes)
    assert not torch.equal(make_family(name, 12, K=3, L=5, seed=5).codes(x), codes)
    again = from_state_dict(fam.state_dict())
    assert torch.equal(again.codes(x), codes) and repr(again) == repr(fam)
    assert torch.equal(fam.to("cpu").codes(x.double()), codes)


def test_bad_input():
    with pytest.raises(DataError, match="K must be an integer in \\[1"):
        SimHash(8, K=0, L=2)
    with pytest.raises(DataError, match="L must be"):
        DWTA(8, K=2, L=0)
    with pytest.raises(DataError, match="K=63 is too large.*K <= 62"):
        SimHash(8, K=63, L=1)
    with pytest.raises(DataError, match="K <= 20"):
        DWTA(16, K=21, L=1, bin_size=8)
    with pytest.raises(OptionError, match="'simhash', 'dwta'"):
        make_family("minhash", 8, 2, 2)
    with pytest.raises(ShapeError, match="\\(n, 8\\)"):
        SimHash(8, 2, 2).codes(torch.zeros(3, 7))
    with pytest.raises(DataError, match="bin_size"):
        DWTA(4, 2, 2, bin_size=9)
