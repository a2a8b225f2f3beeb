"""allocate_bits: the MILP optimum equals exhaustive search; infeasible budgets name the feasible range."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from workbench.errors import DataError, WorkbenchError
from workbench.quant.sensitivity import allocate_bits, allocate_exhaustive, frontier


def _random_case(rng: np.random.Generator, n_layers: int, fmts: list[str]) -> tuple[pd.DataFrame, dict]:
    rows, sizes = [], {}
    bits = {"fp32": 32, "int8": 8, "fp8_e4m3": 8, "int4": 4, "binary": 1}
    for i in range(n_layers):
        params = int(rng.integers(10, 500))
        for f in fmts:
            # lower bits -> larger ΔL on average, with noise (sometimes negative, as measured ΔL can be)
            dl = rng.exponential(1.0 / bits[f]) * 4 + rng.normal(0, 0.01)
            rows.append({"layer": f"l{i}", "format": f, "delta_loss": dl})
            sizes[(f"l{i}", f)] = params * bits[f] / 8
    return pd.DataFrame(rows), sizes


def _cost(sens: pd.DataFrame, assignment: dict) -> float:
    d = sens.set_index(["layer", "format"])["delta_loss"]
    return float(sum(d[(la, f)] for la, f in assignment.items()))


def _size(sizes: dict, assignment: dict) -> float:
    return float(sum(sizes[(la, f)] for la, f in assignment.items()))


@pytest.mark.parametrize("seed", range(12))
def test_milp_equals_exhaustive(seed: int) -> None:
    rng = np.random.default_rng(seed)
    fmts = ["fp32", "int8", "int4", "binary"][: 2 + seed % 3]
    n_layers = 2 + seed % 4
    sens, sizes = _random_case(rng, n_layers, fmts)
    lo = sum(min(sizes[(f"l{i}", f)] for f in fmts) for i in range(n_layers))
    hi = sum(max(sizes[(f"l{i}", f)] for f in fmts) for i in range(n_layers))
    for budget in np.linspace(lo, hi, 7):
        a = allocate_bits(sens, sizes, budget)
        ref = allocate_exhaustive(sens, sizes, budget)
        assert _size(sizes, a.assignment) <= budget + 1e-6
        assert _cost(sens, a.assignment) == pytest.approx(_cost(sens, ref), abs=1e-9)
        assert a.predicted_delta == pytest.approx(_cost(sens, a.assignment), abs=1e-12)
        assert a.size_bytes == pytest.approx(_size(sizes, a.assignment))


def test_exhaustive_reference_is_brute_force() -> None:
    """The reference itself against an independent enumeration written here."""
    rng = np.random.default_rng(99)
    fmts = ["int8", "int4", "binary"]
    sens, sizes = _random_case(rng, 3, fmts)
    budget = float(np.mean([_size(sizes, dict(zip(["l0", "l1", "l2"], c)))
                            for c in itertools.product(fmts, repeat=3)]))
    best = min((c for c in itertools.product(fmts, repeat=3)
                if _size(sizes, dict(zip(["l0", "l1", "l2"], c))) <= budget),
               key=lambda c: _cost(sens, dict(zip(["l0", "l1", "l2"], c))))
    got = allocate_bits(sens, sizes, budget).assignment
    assert _cost(sens, got) == pytest.approx(_cost(sens, dict(zip(["l0", "l1", "l2"], best))))


def test_budget_extremes_give_uniform_assignments() -> None:
    rng = np.random.default_rng(3)
    sens, sizes = _random_case(rng, 4, ["fp32", "int8", "binary"])
    lo = sum(sizes[(f"l{i}", "binary")] for i in range(4))
    assert set(allocate_bits(sens, sizes, lo).assignment.values()) == {"binary"}


@pytest.mark.parametrize("factor", [0.5, 1.5])
def test_infeasible_budget_names_range(factor: float) -> None:
    sens = pd.DataFrame({"layer": ["a", "a", "b", "b"], "format": ["int8", "int4"] * 2,
                         "delta_loss": [0.0, 0.5, 0.0, 0.1]})
    sizes = {("a", "int8"): 800, ("a", "int4"): 400, ("b", "int8"): 80, ("b", "int4"): 40}
    budget = 440 * factor if factor < 1 else 880 * factor
    with pytest.raises(DataError, match=r"feasible range is \[440\.0, 880\.0\]") as e:
        allocate_bits(sens, sizes, budget)
    assert isinstance(e.value, WorkbenchError)


def test_bad_tables() -> None:
    with pytest.raises(DataError, match="empty"):
        allocate_bits(pd.DataFrame(columns=["layer", "format", "delta_loss"]), {}, 1.0)
    sens = pd.DataFrame({"layer": ["a"], "format": ["int8"], "delta_loss": [0.1]})
    with pytest.raises(DataError, match="no size for layer 'a' in format 'int8'"):
        allocate_bits(sens, {("b", "int8"): 1.0}, 1.0)


def test_frontier_is_monotone() -> None:
    rng = np.random.default_rng(5)
    sens, sizes = _random_case(rng, 5, ["fp32", "int8", "int4", "binary"])
    sens.attrs["baseline"] = {"loss": 1.0}
    f = frontier(sens, sizes, 9, progress=False)
    alloc = f[f["kind"] == "allocated"].sort_values("budget")
    # a larger budget can only lower (or keep) the optimum
    assert np.all(np.diff(alloc["predicted_loss"].to_numpy()) <= 1e-12)
    assert np.all(alloc["size_bytes"] <= alloc["budget"] + 1e-6)
    assert set(f[f["kind"] == "uniform"]["assignment"]) == {"fp32", "int8", "int4", "binary"}
    # every uniform point is feasible for the allocator at its own size, so the frontier is never worse
    for _, u in f[f["kind"] == "uniform"].iterrows():
        a = allocate_bits(sens, sizes, u["size_bytes"], baseline_loss=1.0)
        assert a.predicted_loss <= u["predicted_loss"] + 1e-12
