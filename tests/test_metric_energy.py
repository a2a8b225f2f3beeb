"""Metric lab: the energy against an independent float64 NCA objective, the Metropolis rule, the moves."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.metric import MCOptions, MetricChain, anneal, metropolis_accept, nca_energy
from workbench.metric.energy import Constraints


def _nca_reference(X, y, L):
    """Goldberger et al. 2004 written directly: loops over samples, float64, no shifting."""
    Z = X @ L.T
    f = 0.0
    for i in range(len(X)):
        w = np.array([math.exp(-float(np.sum((Z[i] - Z[j]) ** 2))) if j != i else 0.0 for j in range(len(X))])
        f += w[y == y[i]].sum() / w.sum()
    return -f


def test_energy_equals_independent_float64_nca_objective():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    L = rng.normal(size=(3, 4)) * 0.5
    assert nca_energy(X, y, L) == pytest.approx(_nca_reference(X, y, L), rel=1e-12, abs=1e-12)


def test_log_sum_exp_form_survives_far_apart_points():
    X = np.array([[0.0], [0.1], [50.0], [50.2]]) * 10  # exp(-d²) underflows to 0 in every row without shifting
    y = np.array([0, 0, 1, 1])
    assert nca_energy(X, y, np.eye(1)) == pytest.approx(-4.0)


def test_incremental_delta_matches_recomputed_energy_after_many_moves():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 5)), rng.integers(0, 3, 40)
    c = Constraints(must_link=[(0, 1)], cannot_link=[(2, 3)], triplets=[(4, 5, 6)], weight=0.7)
    ch = MetricChain(torch.tensor(X), y, np.eye(3, 5), c, torch.float64)
    assert ch.energy == pytest.approx(nca_energy(X, y, np.eye(3, 5), c), abs=1e-10)
    for _ in range(200):
        E0 = ch.energy
        dE = ch.delta(ch.propose(rng, 0.5, 0.3, 0.3))
        if rng.random() < 0.5:
            ch.accept()
            assert ch.energy - E0 == pytest.approx(dE, abs=1e-9)
            assert ch.energy == pytest.approx(nca_energy(X, y, ch.L.numpy(), c), abs=1e-9)


def test_constraint_terms_match_their_definition():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(10, 2)), np.repeat([0, 1], 5)
    L = np.eye(2)
    Z = X @ L.T
    D = ((Z[:, None] - Z[None]) ** 2).sum(-1)
    P = np.exp(-D)
    np.fill_diagonal(P, 0)
    P /= P.sum(1, keepdims=True)
    c = Constraints(must_link=[(0, 7)], cannot_link=[(1, 2)], triplets=[(3, 4, 8)], weight=2.0)
    expected = -(0.5 * (P[0, 7] + P[7, 0])) + 0.5 * (P[1, 2] + P[2, 1]) + 1 / (1 + np.exp(D[3, 8] - D[3, 4]))
    assert nca_energy(X, y, L, c) - nca_energy(X, y, L) == pytest.approx(2.0 * expected, rel=1e-10)


def test_metropolis_rule_at_zero_and_infinite_temperature():
    rng = np.random.default_rng(0)
    ups = rng.uniform(1e-6, 10, 500)
    us = rng.random(500)
    assert not any(metropolis_accept(d, 1e-300, u) for d, u in zip(ups, us))
    assert all(metropolis_accept(d, math.inf, u) for d, u in zip(ups, us))
    assert all(metropolis_accept(-d, 1e-300, u) for d, u in zip(ups, us))
    assert not metropolis_accept(float("nan"), 1.0, 0.0)


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(60, 4)), rng.integers(0, 3, 60)


def test_chain_at_tiny_temperature_never_goes_uphill():
    X, y = _data()
    r = anneal(X, y, np.eye(4), MCOptions(steps=300, block=10, schedule="constant", t_start=1e-12), progress=False)
    e = r.trace["energy"].to_numpy()
    assert np.all(np.diff(e) <= 1e-4)  # float32 chain: energies only ever go down
    assert r.trace["acceptance"].max() < 1.0


def test_chain_at_huge_temperature_accepts_every_move():
    X, y = _data()
    r = anneal(X, y, np.eye(4), MCOptions(steps=200, block=20, schedule="constant", t_start=1e30,
                                          max_log_stretch=50.0), progress=False)
    assert r.info["accepted"] == r.info["moves"] == 200


def test_moves_keep_L_finite_and_full_rank():
    X, y = _data()
    r = anneal(X, y, np.eye(4), MCOptions(steps=1000, block=50, schedule="constant", t_start=1e30,
                                          stretch_scale=0.5, rotation_scale=1.0), progress=False)
    for L in (r.L, r.L_final):
        assert np.isfinite(L).all()
        s = np.linalg.svd(L, compute_uv=False)
        assert s.min() > 0 and np.linalg.matrix_rank(L) == 4
        assert s.max() / s.min() <= math.exp(2 * 12.0) * 1.0001  # the stretch bound
    # L = diag(s) Q with orthonormal rows Q: rows are orthogonal at every step
    G = r.L_final @ r.L_final.T
    assert np.allclose(G - np.diag(np.diag(G)), 0, atol=1e-8 * np.abs(G).max())


def test_same_seed_same_map_other_seed_other_map():
    X, y = _data()
    opt = MCOptions(steps=200, block=20)
    a = anneal(X, y, np.eye(4), opt, seed=5, progress=False)
    b = anneal(X, y, np.eye(4), opt, seed=5, progress=False)
    c = anneal(X, y, np.eye(4), opt, seed=6, progress=False)
    assert np.array_equal(a.L, b.L) and a.trace["energy"].equals(b.trace["energy"])
    assert not np.array_equal(a.L, c.L)
