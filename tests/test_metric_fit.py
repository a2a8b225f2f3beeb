"""Metric lab: fit_metric's methods, bad input, cancellation, the spurious minimum, compare_metrics."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from workbench.errors import DataError, NonFiniteError, ShapeError, UnavailableError, WorkbenchError
from workbench.metric import METHODS, compare_metrics, fit_metric, metric_learn_status, nca_energy, \
    spurious_minimum_data


def _data(n=60, d=4, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1, 2], n // 3)
    return rng.normal(size=(n, d)) + y[:, None] * 0.8, y


def test_fit_returns_a_map_its_energy_and_a_trace():
    X, y = _data()
    m = fit_metric(X, y, "free_energy", steps=300, block=30, progress=False)
    assert m.L.shape == (4, 4) and m.transform(X).shape == (60, 4)
    assert m.energy == pytest.approx(nca_energy(X, y, m.L), abs=1e-9)
    assert m.energy < fit_metric(X, y, "euclidean").energy
    assert list(m.trace["step"]) == list(range(30, 301, 30))
    assert (m.trace["temperature"].diff().dropna() < 0).all()  # geometric cooling
    assert np.allclose(m.M, m.L.T @ m.L)
    assert m.trace["free_energy"].notna().all()


def test_adaptive_schedule_follows_its_acceptance_target_downwards():
    X, y = _data()
    m = fit_metric(X, y, "free_energy", steps=600, block=30, schedule="adaptive", progress=False)
    t = m.trace
    assert t["temperature"].iloc[-1] < t["temperature"].iloc[0]
    assert t["acceptance"].iloc[-5:].mean() < t["acceptance"].iloc[:5].mean()


def test_nca_is_scikit_learn_and_dim_reduces():
    from sklearn.neighbors import NeighborhoodComponentsAnalysis

    X, y = _data()
    m = fit_metric(X, y, "nca", dim=2, seed=0)
    ref = NeighborhoodComponentsAnalysis(n_components=2, random_state=0).fit(X, y)
    assert np.allclose(m.L, ref.components_)


def test_spurious_minimum_monte_carlo_beats_gradient_nca():
    X, y, cons = spurious_minimum_data(seed=0)
    for c in (None, cons):
        grad = fit_metric(X, y, "nca", dim=1, constraints=c, max_iter=30)
        mc = fit_metric(X, y, "free_energy", dim=1, constraints=c, steps=800, progress=False)
        assert mc.energy < grad.energy - 20  # gradient NCA is stuck near feature 1; MC finds feature 2
        assert abs(mc.L[0, 1]) > abs(mc.L[0, 0]) and abs(grad.L[0, 0]) > abs(grad.L[0, 1])


def test_cancel_returns_best_map_so_far_marked_cancelled():
    X, y = _data()
    ev = threading.Event()
    seen = []

    def on_step(info):
        seen.append(info["step"])
        if info["step"] >= 60:
            ev.set()

    m = fit_metric(X, y, "free_energy", steps=1000, block=20, stop=ev, on_step=on_step, progress=False)
    assert m.cancelled and m.info["moves"] == 60 and seen == [20, 40, 60]
    assert m.energy == pytest.approx(m.trace["best_energy"].min(), abs=1e-3)
    assert np.isfinite(m.L).all()


@pytest.mark.parametrize("call, err, words", [
    (lambda X, y: fit_metric(np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X), y), NonFiniteError, "NaN"),
    (lambda X, y: fit_metric(np.where(np.arange(X.size).reshape(X.shape) == 5, np.inf, X), y), NonFiniteError, "inf"),
    (lambda X, y: fit_metric(X, y[:-1]), ShapeError, "different lengths"),
    (lambda X, y: fit_metric(X, np.zeros(len(y))), DataError, "one class"),
    (lambda X, y: fit_metric(X, np.r_[y[:-1], 7]), DataError, "class 7 has 1 sample"),
    (lambda X, y: fit_metric(X, y, dim=0), DataError, "dim must be"),
    (lambda X, y: fit_metric(X, y, dim=5), DataError, "1..4"),
    (lambda X, y: fit_metric(X, y, t_start=0.0), DataError, "t_start"),
    (lambda X, y: fit_metric(X, y, t_start=-1.0), DataError, "temperature > 0"),
    (lambda X, y: fit_metric(X, y, t_end=0), DataError, "t_end"),
    (lambda X, y: fit_metric(X, y, constraints={"must_link": [(0, 60)]}), DataError, "out of range"),
    (lambda X, y: fit_metric(X, y, constraints={"triplets": [(-1, 2, 3)]}), DataError, "out of range"),
    (lambda X, y: fit_metric(X, y, "gradient"), DataError, "free_energy, nca, lmnn, itml, euclidean"),
    (lambda X, y: fit_metric(X, y, schedule="linear"), DataError, "geometric"),
    (lambda X, y: fit_metric(X, y, stepz=3), DataError, "unknown options"),
    (lambda X, y: compare_metrics({"d": (X, y)}, ["nca"], k=0), DataError, "k (neighbours"),
    (lambda X, y: compare_metrics({"d": (X, np.r_[y[:-1], 7])}, ["nca"]), DataError, "has 1 sample"),
    (lambda X, y: compare_metrics({"d": (X, y)}, ["knn"]), DataError, "accepted"),
    (lambda X, y: compare_metrics(["mnist"], ["nca"]), DataError, "unknown data set"),
])
def test_bad_input_raises_a_clear_error_before_any_work(call, err, words):
    X, y = _data()
    X0, y0 = X.copy(), y.copy()
    with pytest.raises(err, match=words.replace("(", r"\(").replace(".", r"\.")) as info:
        call(X, y)
    assert isinstance(info.value, WorkbenchError)
    assert np.array_equal(X, X0) and np.array_equal(y, y0)


def test_lmnn_itml_run_or_say_why():
    X, y = _data()
    status = metric_learn_status()
    for method in ("lmnn", "itml"):
        if status == "ok":
            assert fit_metric(X, y, method).L.shape[1] == 4
        else:
            with pytest.raises(UnavailableError, match="metric-learn"):
                fit_metric(X, y, method)


def test_compare_metrics_same_splits_paired_against_nca():
    X, y = _data(90)
    df = compare_metrics({"toy": (X, y)}, ["euclidean", "nca", "free_energy", "lmnn"], k=3, splits=3,
                         options={"free_energy": {"steps": 200}}, progress=False)
    assert list(df["method"]) == ["euclidean", "nca", "free_energy", "lmnn"]
    ok = df[df.status == "ok"].set_index("method")
    for m in ok.index:
        accs = np.array(ok.loc[m, "accuracies"])
        assert len(accs) == 3 and ok.loc[m, "accuracy_mean"] == pytest.approx(accs.mean())
        assert ok.loc[m, "diff_vs_nca"] == pytest.approx((accs - np.array(ok.loc["nca", "accuracies"])).mean())
    assert ok.loc["nca", "p_vs_nca"] == 1.0
    lm = df.set_index("method").loc["lmnn"]
    assert lm["status"] == "ok" or lm["status"].startswith("unavailable")
    assert set(METHODS) >= set(df["method"])
