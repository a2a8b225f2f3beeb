"""DynamicsView and the dynamics figures, driven headlessly: click, wait, look at the figures' data."""

import numpy as np
import pandas as pd
import pytest

import workbench
from workbench.dynamics import fit_growth, predict_growth, simulate_walk
from workbench.viz.dynamics import accuracy_figure, distance_figure, metrics_figure, walk_figure


@pytest.fixture(scope="module")
def cnn():
    return workbench.load_model("digits-cnn")


def test_distance_figure_from_frames():
    t = np.arange(0, 101)
    df = pd.concat([pd.DataFrame({"step": t, "layer": name, "distance": k * np.log1p(t)})
                    for name, k in [("fc1", 1.0), ("total", 2.0)]])
    fits = fit_growth(df)
    fig = distance_figure(df, curves=predict_growth(fits, t[1:], models=["log", "sqrt"]), fits=fits)
    names = [tr.name for tr in fig.data]
    assert names[:2] == ["fc1", "total"] and any(n.startswith("fit sqrt (R²=") for n in names)
    assert fig.layout.xaxis.type == "log" and min(fig.data[0].x) == 1  # step 0 dropped on a log axis
    walks = pd.concat([simulate_walk("free", dim=5, steps=100, progress=False),
                       simulate_walk("random_landscape", dim=5, steps=100, progress=False)])
    wf = walk_figure(walks)
    assert [tr.name for tr in wf.data] == ["free walk", "random_landscape walk"]
    assert wf.data[0].y[-1] == pytest.approx(1.0)
    runs = pd.DataFrame({"regime": ["small", "small", "large", "large"], "test_acc": [0.9, 0.92, 0.8, 0.84]})
    af = accuracy_figure(runs)
    assert list(af.data[0].x) == ["small", "large"]
    np.testing.assert_allclose(af.data[0].y, [91.0, 82.0])
    np.testing.assert_allclose(af.data[0].error_y.array, [100 * np.std([0.9, 0.92], ddof=1),
                                                          100 * np.std([0.8, 0.84], ddof=1)])
    mf = metrics_figure(pd.DataFrame({"run": ["a", "a"], "epoch": [0, 1], "test_acc": [0.1, 0.9]}))
    assert mf.data[0].name == "a"


def test_view_trains_live_and_stops(cnn):
    from workbench.widgets.dynamics import DynamicsView

    view = DynamicsView(cnn, quick=True, refresh_s=0.0)
    view.steps.value = 40
    view.batch.value = 32
    view.train_button.click()
    assert view.wait(120) and view.error is None
    names = [t.name for t in view.fig.data]
    assert {"conv1", "fc1", "total"} <= set(names) and any(n.startswith("fit ") and "★" in n for n in names)
    total = next(t for t in view.fig.data if t.name == "total")
    expected = view.result.distances.query("layer == 'total' and step > 0")
    np.testing.assert_allclose(total.y, expected["distance"])
    assert view.result.steps == 40 and "test accuracy" in view.status.value
    assert view.fits is not None and view.fits.attrs["best"] in ("log", "log^β", "sqrt", "power")

    # stop: the event is set from the live callback's thread as soon as we see rows; what was recorded stays
    view.steps.value = 100_000
    view.train_button.click()
    import time
    deadline = time.time() + 60
    while not any(r["step"] >= 3 for r in list(view._rows)) and time.time() < deadline:
        time.sleep(0.05)
    view.stop_button.click()
    assert view.wait(60)
    assert view.result.stopped and 0 < view.result.steps < 100_000
    assert view.result.distances["step"].max() == view.result.steps


def test_view_compares_regimes(cnn):
    from workbench.widgets.dynamics import DynamicsView

    view = DynamicsView(cnn, quick=True, threaded=False)
    view.small.value, view.large.value, view.epochs.value, view.seeds.value = 32, 128, 0.15, 2
    view.regimes.value = ("small", "large+LR+GBN")
    view.compare_button.click()
    assert view.error is None and len(view.runs) == 4
    bars = view.acc_fig.data[0]
    assert list(bars.x) == ["small", "large+LR+GBN"]
    np.testing.assert_allclose(bars.y, 100 * view.runs.groupby("regime", sort=False)["test_acc"].mean().to_numpy())
    assert "±" in view.table.value
