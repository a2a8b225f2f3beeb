"""The metric-learn adapter: the renamed scikit-learn keyword is passed on with its meaning, and LMNN / ITML fit
beside the installed scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.metric import compare_metrics, fit_metric, metric_learn_status
from workbench.metric.baselines import _renamed, metric_learn_module, needs_keyword_adapter

pytest.importorskip("metric_learn")


def test_renamed_keyword_keeps_its_meaning():
    def new_api(X, *, ensure_all_finite=True):
        return ensure_all_finite

    def old_api(X, *, force_all_finite=True, ensure_all_finite=None):
        return force_all_finite

    assert needs_keyword_adapter(new_api) and not needs_keyword_adapter(old_api)
    assert _renamed(new_api)(0, force_all_finite="allow-nan") == "allow-nan"
    assert _renamed(new_api)(0) is True
    ml = metric_learn_module()
    util = ml._util
    assert metric_learn_module() is ml and not hasattr(util.check_X_y.__wrapped__, "__wrapped__")  # wrapped once
    X, y = np.ones((4, 2)), np.array([0, 0, 1, 1])
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        util.check_X_y(X, y, force_all_finite=True)
    assert np.isnan(util.check_X_y(X, y, force_all_finite=False)[0][0, 0])


def test_lmnn_and_itml_fit_and_separate_the_classes():
    assert metric_learn_status() == "ok"
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    X = np.c_[rng.normal(size=40) * 5, y * 3.0 + rng.normal(size=40) * 0.3]  # feature 0 is noise, 1 decides
    for method in ("lmnn", "itml"):
        m = fit_metric(X, y, method, seed=0, progress=False)
        assert m.L.shape == (2, 2) and np.isfinite(m.L).all()
        M = m.L.T @ m.L
        assert M[1, 1] > M[0, 0]  # the deciding feature gets the larger weight
    df = compare_metrics({"toy": (X, y)}, ["lmnn", "itml"], splits=2, progress=False)
    assert (df["status"] == "ok").all() and df["accuracy_mean"].between(0.9, 1.0).all()
