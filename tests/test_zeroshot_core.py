"""Zero-shot lab: soft labels, ESZSL's closed form, the metrics against direct computations, and bad inputs."""

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.errors import DataError, NonFiniteError, ShapeError, WorkbenchError
from workbench.zeroshot import (
    attribute_similarity,
    ausuc,
    check_attributes,
    class_signatures,
    dap_fit,
    digits_attributes,
    eszsl_fit,
    eszsl_scores,
    make_split,
    soft_label_matrix,
    soft_labels,
    summarize,
    tradeoff_curve,
    unseen_splits,
    zero_shot_metrics,
)

A = digits_attributes()
SPLIT = make_split([2, 5, 8])
SEEN_Y = torch.tensor([c for c in range(10) if c not in SPLIT.unseen] * 3)


# ------------------------------------------------------------------------------------------------ attributes
def test_digits_attributes_are_documented_and_distinct():
    assert A.shape[0] == 10 and list(A.index) == list(range(10))
    assert set(A.attrs["docs"]) == set(A.columns) and all(len(d) > 20 for d in A.attrs["docs"].values())
    assert set(A.attrs["notes"]) == set(range(10))
    check_attributes(A, 10)
    assert len({tuple(r) for r in A.to_numpy()}) == 10  # every digit has its own row
    s = attribute_similarity(A)
    assert np.allclose(s, s.T) and np.allclose(np.diag(s), 1)
    assert A.loc[8, "closed_loops"] == 2 and A.loc[1, "closed_loops"] == 0


# ------------------------------------------------------------------------------------------------ soft labels
@pytest.mark.parametrize("temperature,mass", [(0.05, 0.3), (1.0, 0.5), (10.0, 0.9)])
def test_soft_labels_sum_to_one_and_put_the_asked_mass_on_unseen(temperature, mass):
    t = soft_labels(SEEN_Y, A, temperature, mass, unseen=SPLIT).double()
    assert t.shape == (len(SEEN_Y), 10)
    assert torch.allclose(t.sum(1), torch.ones(len(t), dtype=torch.float64), atol=1e-6)
    unseen = list(SPLIT.unseen)
    assert torch.allclose(t[:, unseen].sum(1), torch.full((len(t),), mass, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(t[torch.arange(len(t)), SEEN_Y], torch.full((len(t),), 1 - mass, dtype=torch.float64),
                          atol=1e-6)
    other = torch.ones_like(t, dtype=torch.bool)
    other[:, unseen] = False
    other[torch.arange(len(t)), SEEN_Y] = False
    assert (t[other] == 0).all()  # nothing on the other seen classes


def test_soft_labels_follow_a_softmax_of_similarity_computed_directly():
    z = A.to_numpy(float)
    z = (z - z.mean(0)) / z.std(0)
    cos = (z @ z.T) / np.outer(np.linalg.norm(z, axis=1), np.linalg.norm(z, axis=1))
    T, m = 0.3, 0.4
    t = soft_label_matrix(A, T, m, unseen=SPLIT)
    for y in SPLIT.seen:
        e = np.array([np.exp(cos[y, u] / T) for u in SPLIT.unseen])
        assert np.allclose(t[y, list(SPLIT.unseen)], m * e / e.sum())
    # the most similar unseen class gets the largest share, more so at a lower temperature
    cold = soft_label_matrix(A, 0.01, m, unseen=SPLIT)
    y = SPLIT.seen[0]
    best = SPLIT.unseen[int(np.argmax(cos[y, list(SPLIT.unseen)]))]
    assert cold[y, best] > t[y, best] > m / 3 and cold[y, best] > 0.99 * m


def test_soft_labels_at_zero_mass_are_one_hot():
    t = soft_labels(SEEN_Y, A, 0.5, 0.0, unseen=SPLIT)
    assert torch.equal(t, torch.nn.functional.one_hot(SEEN_Y, 10).float())


# ------------------------------------------------------------------------------------------------ ESZSL
def test_eszsl_equals_its_closed_form_in_float64():
    rng = np.random.default_rng(0)
    n, d, C = 40, 6, 10
    x = rng.normal(size=(n, d))
    seen = [0, 1, 3, 4, 6, 7, 9]
    y = rng.choice(seen, size=n)
    sig = class_signatures(A)  # (C, a)
    gamma, lam = 0.7, 2.5
    v = eszsl_fit(x, y, sig, seen, gamma=gamma, lam=lam)
    # the paper's notation: X is d × m, Y ∈ {-1, 1}^{m × z}, S is a × z
    X = x.T
    Y = -np.ones((n, len(seen)))
    Y[np.arange(n), [seen.index(c) for c in y]] = 1
    S = sig[seen].T
    ref = np.linalg.inv(X @ X.T + gamma * np.eye(d)) @ X @ Y @ S.T @ np.linalg.inv(S @ S.T + lam * np.eye(len(S)))
    assert np.allclose(v, ref, rtol=1e-10, atol=1e-12)
    # and it is the stationary point of the regularised objective
    grad = (2 * X @ (X.T @ v @ S - Y) @ S.T + 2 * gamma * v @ S @ S.T + 2 * lam * X @ X.T @ v
            + 2 * gamma * lam * v)
    assert np.abs(grad).max() < 1e-8
    assert np.allclose(eszsl_scores(x, v, sig), x @ v @ sig.T)


def test_dap_recovers_attributes_it_can_see():
    rng = np.random.default_rng(1)
    seen = list(SPLIT.seen)
    y = np.repeat(seen, 30)
    from workbench.zeroshot import binary_attributes

    b = binary_attributes(A)
    x = b[y] * 4 + rng.normal(scale=0.3, size=(len(y), b.shape[1]))  # features that show the attributes
    model = dap_fit(x, y, A, seen)
    xt = b[list(range(10))] * 4  # one clean example per class, unseen included
    pred = model.scores(xt).argmax(1)
    assert (pred == np.arange(10)).mean() >= 0.8


# ------------------------------------------------------------------------------------------------ metrics
def _direct_metrics(scores, y, unseen):
    seen = [c for c in range(scores.shape[1]) if c not in unseen]
    def mean_acc(pred_of, classes):
        accs = []
        for c in classes:
            idx = [i for i in range(len(y)) if y[i] == c]
            if idx:
                accs.append(sum(pred_of(i) == c for i in idx) / len(idx))
        return sum(accs) / len(accs)
    zsl = mean_acc(lambda i: max(unseen, key=lambda u: scores[i, u]), unseen)
    s = mean_acc(lambda i: int(np.argmax(scores[i])), seen)
    u = mean_acc(lambda i: int(np.argmax(scores[i])), unseen)
    return zsl, s, u, (2 * s * u / (s + u) if s + u else 0.0)


def test_metrics_equal_a_direct_computation():
    rng = np.random.default_rng(2)
    y = np.concatenate([rng.integers(0, 10, 80), np.arange(10)])
    scores = rng.normal(size=(len(y), 10))
    scores[np.arange(len(y)), y] += rng.uniform(0, 2, len(y))  # better than chance, unequal per class
    m = zero_shot_metrics(scores, y, SPLIT)
    zsl, s, u, h = _direct_metrics(scores, y, list(SPLIT.unseen))
    assert m["zsl"] == pytest.approx(zsl) and m["seen"] == pytest.approx(s)
    assert m["unseen"] == pytest.approx(u) and m["H"] == pytest.approx(h)
    curve = tradeoff_curve(scores, y, SPLIT)
    at0 = curve[curve.gamma == 0].iloc[0]
    assert at0.seen == pytest.approx(s) and at0.unseen == pytest.approx(u)
    first, last = curve.sort_values("gamma").iloc[[0, -1]].itertuples()
    assert first.unseen == 0 and last.seen == 0
    assert last.unseen == pytest.approx(zsl)  # everything sent to unseen classes = the ZSL prediction
    assert np.all(np.diff(curve.sort_values("gamma").unseen) >= 0)
    # an added constant on seen classes moves the γ=0 point along the curve: calibrated stacking by hand
    shifted = scores.copy()
    shifted[:, list(SPLIT.seen)] -= 0.5
    m2 = zero_shot_metrics(shifted, y, SPLIT)
    row = curve[curve.gamma <= 0.5].iloc[-1]
    assert m2["seen"] == pytest.approx(row.seen) and m2["unseen"] == pytest.approx(row.unseen)
    assert 0 <= ausuc(curve) <= 1


def test_ausuc_of_a_perfect_and_a_known_curve():
    y = np.array([0, 1, 2])
    scores = np.eye(3) * 5  # perfect: both accuracies 1 at γ = 0
    assert ausuc(tradeoff_curve(scores, y, make_split([2], 3))) == pytest.approx(1.0)
    curve = pd.DataFrame({"gamma": [-np.inf, 0, np.inf], "seen": [1.0, 0.5, 0.0], "unseen": [0.0, 0.5, 1.0]})
    assert ausuc(curve) == pytest.approx(0.5)


def test_summarize_is_mean_and_sample_sd():
    runs = pd.DataFrame({"method": ["a", "a", "b"], "zsl": [0.2, 0.4, 0.5], "seen": [1, 1, 1.0],
                         "unseen": [0.1, 0.3, 0.2], "H": [0.1, 0.2, 0.3]})
    t = summarize(runs).set_index("method")
    assert t.loc["a", "zsl_mean"] == pytest.approx(0.3) and t.loc["a", "zsl_sd"] == pytest.approx(np.std([.2, .4], ddof=1))
    assert t.loc["b", "zsl_sd"] == 0 and t.loc["a", "runs"] == 2


def test_splits_are_seeded_distinct_and_hold_out_k():
    a, b = unseen_splits(6, 3, seed=1), unseen_splits(6, 3, seed=1)
    assert a == b and len({s.unseen for s in a}) == 6
    assert all(len(s.unseen) == 3 and len(s.seen) == 7 for s in a)


# ------------------------------------------------------------------------------------------------ bad input
BAD = [
    (lambda: check_attributes(A.iloc[:9], 10), ShapeError, "9 rows"),
    (lambda: check_attributes(A.assign(closed_loops=np.nan), 10), NonFiniteError, "NaN"),
    (lambda: check_attributes(A.assign(extra=1.0), 10), DataError, "constant"),
    (lambda: make_split([]), DataError, "empty"),
    (lambda: make_split(range(10)), DataError, "every one"),
    (lambda: make_split([3, 11]), DataError, "not classes"),
    (lambda: soft_labels(SEEN_Y, A, 0.0, 0.2, unseen=SPLIT), DataError, "temperature"),
    (lambda: soft_labels(SEEN_Y, A, -1.0, 0.2, unseen=SPLIT), DataError, "temperature"),
    (lambda: soft_labels(SEEN_Y, A, 1.0, 1.0, unseen=SPLIT), DataError, "unseen_mass"),
    (lambda: soft_labels(SEEN_Y, A, 1.0, -0.1, unseen=SPLIT), DataError, "unseen_mass"),
    (lambda: soft_labels(torch.tensor([2, 0]), A, 1.0, 0.2, unseen=SPLIT), DataError, "unseen classes"),
    (lambda: soft_labels(SEEN_Y, A.iloc[:, :1].assign(a=np.arange(10.0)), 1.0, 0.2, unseen=[]), DataError, "empty"),
]


@pytest.mark.parametrize("call,error,words", BAD)
def test_bad_input_raises_a_clear_error(call, error, words):
    with pytest.raises(error, match=words) as info:
        call()
    assert isinstance(info.value, WorkbenchError)


def test_bad_input_leaves_the_attributes_unchanged():
    a = A.copy()
    a.iloc[3, 2] = np.nan
    before = a.copy()
    with pytest.raises(NonFiniteError):
        soft_labels(SEEN_Y, a, 1.0, 0.2, unseen=SPLIT)
    assert a.equals(before)


def test_figures_refuse_empty_tables_with_a_data_error():
    """The zero-shot figures name what they were given and what they need (a DataError, not a bare ValueError)."""
    from workbench.viz.zeroshot import metrics_table_figure, soft_label_figure, tradeoff_figure

    with pytest.raises(DataError, match=r"tradeoff_figure: empty curve table; .*columns method, gamma, seen, unseen"):
        tradeoff_figure(pd.DataFrame(columns=["method", "gamma", "seen", "unseen"]))
    with pytest.raises(DataError, match=r"metrics_table_figure: empty table; pass summarize's output"):
        metrics_table_figure(pd.DataFrame(columns=["method", "zsl_mean", "zsl_sd"]))
    with pytest.raises(DataError, match=r"soft_label_figure: target must be a non-empty vector .*got shape \(0,\)"):
        soft_label_figure([], 0, [2])
