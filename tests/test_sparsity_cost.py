"""Size guards: every exact count or solve estimates its cost first and refuses past a bound (or takes the log
form, saying so); the log forms agree with the exact counts where both run."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

from workbench.errors import CostLimitError, ShapeError, WorkbenchError
from workbench.formats import apply, current_formats, restore
from workbench.formats.masks import (
    DP_STATES_LIMIT,
    is_transposable,
    transposable_count,
    transposable_count_states,
    transposable_mask,
    transposable_solve_seconds,
)
from workbench.sparsity import (
    ApproximateCountWarning,
    log10_diversity,
    log10_int,
    log10_transposable_count,
    mask_diversity,
)
from workbench.sparsity.patterns import pattern_log10_diversity

SMALL_CASES = [
    dict(kind="unstructured", shape=(4, 4), density=0.5),
    dict(kind="unstructured", shape=(64, 64), density=0.25),
    dict(kind="unstructured", shape=(3, 50), density=0.2),
    dict(kind="nm", n=2, m=4, shape=(8, 16)),
    dict(kind="nm", n=1, m=3, shape=(5, 9)),
    dict(kind="transposable", n=2, m=4, shape=(8, 8)),
    dict(kind="transposable", n=4, m=8, shape=(16, 24)),
    dict(kind="transposable", n=3, m=7, shape=(7, 7)),
    dict(kind="block", shape=(8, 8), block=(2, 2), density=0.5),
]


@pytest.mark.parametrize("kw", SMALL_CASES)
def test_log_form_agrees_with_the_exact_count(kw) -> None:
    exact = log10_int(mask_diversity(**kw))
    assert log10_diversity(**kw) == pytest.approx(exact, rel=1e-12, abs=1e-12)


def test_log_of_binomials_agrees_past_the_lgamma_switch() -> None:
    for total, keep in [(1000, 500), (4096, 1024), (20000, 10000)]:
        exact = log10_int(math.comb(total, keep))
        assert log10_diversity("unstructured", shape=(total,), density=keep / total) == pytest.approx(exact, rel=1e-12)


def test_transposable_count_takes_n_then_m_and_refuses_past_its_bound() -> None:
    assert transposable_count(2, 4) == 90 and transposable_count(6, 8) == transposable_count(2, 8)
    with pytest.raises(ShapeError, match="n first"):
        transposable_count(4, 2)
    assert transposable_count_states(8, 16) > DP_STATES_LIMIT
    with pytest.raises(CostLimitError, match=r"transposable_count\(n=8, m=16\).*states.*log10_transposable_count"):
        transposable_count(8, 16)
    assert isinstance(CostLimitError("x"), WorkbenchError)


def test_log10_transposable_count_exact_then_approximate_with_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert log10_transposable_count(6, 12) == pytest.approx(log10_int(transposable_count(6, 12)), rel=1e-15)
    with pytest.warns(ApproximateCountWarning, match="Canfield-McKay"):
        big = log10_transposable_count(8, 16)
    # the approximation is within 0.02 of log10 X at the largest exact case and grows like it
    lhs = 2 * 12 * math.log10(math.comb(12, 6)) - math.log10(math.comb(144, 72)) - 0.5 / math.log(10)
    assert abs(lhs - log10_transposable_count(6, 12)) < 0.02
    assert log10_transposable_count(6, 12) < big < 2 * 16 * math.log10(math.comb(16, 8))


def test_exact_counts_past_the_bit_bound_are_refused_and_the_log_answers() -> None:
    with pytest.raises(CostLimitError, match="bits.*log10_diversity"):
        mask_diversity("unstructured", shape=(4096, 4096), density=0.5)
    with pytest.raises(CostLimitError):
        mask_diversity("nm", 2, 4, shape=(10**6, 10**6))
    with pytest.raises(CostLimitError):
        mask_diversity("transposable", 8, 16, shape=(16, 16))
    assert log10_diversity("nm", 2, 4, shape=(10**6, 10**6)) == pytest.approx(10**12 / 4 * math.log10(6), rel=1e-12)
    u = log10_diversity("unstructured", shape=(4096, 4096), density=0.5)
    t = 4096 * 4096  # log10 C(T, T/2) ~ T log10 2 - log10(sqrt(pi T / 2))
    assert u == pytest.approx(t * math.log10(2) - 0.5 * math.log10(math.pi * t / 2), rel=1e-9)
    with pytest.warns(ApproximateCountWarning):
        assert log10_diversity("transposable", 8, 16, shape=(32, 32)) == pytest.approx(
            4 * log10_transposable_count(8, 16), rel=1e-12)


@pytest.mark.parametrize("shape", [(4.5, 8), "48", (4, True), (4, -8), (), None, (4, 8.0)])
def test_shapes_are_positive_ints_only(shape) -> None:
    with pytest.raises(ShapeError, match="shape"):
        mask_diversity("nm", 2, 4, shape=shape)
    with pytest.raises(ShapeError, match="shape"):
        log10_diversity("nm", 2, 4, shape=shape)


def test_mask_report_diversity_is_the_log_form() -> None:
    rows, cols = 384, 384  # a MiniLM layer: the exact unstructured count has ~147,000 bits
    got = pattern_log10_diversity("unstructured 50%", (rows, cols))
    assert got == pytest.approx(log10_diversity("unstructured", shape=(rows * cols,), density=0.5), rel=1e-15)
    assert pattern_log10_diversity("4:8-T", (rows, cols)) == pytest.approx(
        (rows * cols // 64) * log10_int(transposable_count(4, 8)), rel=1e-12)


def test_large_m_transposable_solves_are_estimated_first() -> None:
    # 8:16-T never asks the exact count of X(16, 8) (that DP alone took over a minute): the solve is quick
    assert transposable_solve_seconds((16, 32), 8, 16) < 0.01
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 16))
    apply(model, "8:16-T")
    assert is_transposable(model[0].weight != 0, 8, 16, exact=True)
    restore(model)
    # far past the bound: refused before any work, skipped when not named
    assert transposable_solve_seconds((1024, 1024), 512, 1024) > 60
    with pytest.raises(CostLimitError, match="estimated"):
        transposable_mask(torch.randn(1024, 1024), 512, 1024)
    big = nn.Sequential(nn.Linear(1024, 1024), nn.Linear(1024, 256))
    rep = apply(big, "512:1024-T").set_index("layer")
    assert (rep.status == "skipped").all() and rep.reason.str.contains("estimated").all()
    restore(big)
    with pytest.raises(CostLimitError, match="layer '0'"):
        apply(big, "512:1024-T", layers=["0"])
    assert current_formats(big) == {}
