"""LargeOutputsView and the large-outputs figures, driven headlessly."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.errors import DataError
from workbench.viz.large_outputs import (accuracy_time_figure, active_fraction_figure, speedup_figure,
                                         step_cost_figure)


def _rows():
    rows = []
    for kind, sec, p in (("full", 4.0, [0.0, 0.3, 0.4]), ("lsh", 1.0, [0.0, 0.28, 0.41])):
        for e in range(3):
            rows.append({"kind": kind, "width": 1000, "epoch": float(e), "step": 10 * e,
                         "seconds": sec if e else 0.0, "p_at_1": p[e],
                         "active_fraction": 1.0 if kind == "full" else 0.05})
    return pd.DataFrame(rows)


def test_figures_from_frames():
    t = _rows()
    acc = accuracy_time_figure(t)
    assert [tr.name for tr in acc.data] == ["full · 1,000", "lsh · 1,000"]
    assert list(acc.data[0].x) == [0.0, 4.0, 8.0] and list(acc.data[1].y) == [0.0, 0.28, 0.41]
    act = active_fraction_figure(t)
    assert list(act.data[1].y) == [0.05, 0.05] and act.layout.yaxis.type == "log"  # epoch 0 dropped
    steps = pd.DataFrame({"kind": ["full", "full", "lsh", "lsh"], "width": [10, 100, 100, 10],
                          "seconds_per_step": [1.0, 2.0, 0.5, 0.4]})
    sc = step_cost_figure(steps)
    assert list(sc.data[1].x) == [10, 100] and list(sc.data[1].y) == [0.4, 0.5]
    sp = speedup_figure(pd.DataFrame({"kind": ["lsh"], "width": [100000], "speedup": [6.0], "p_at_1_gap": [1.5]}))
    assert list(sp.data[0].x) == ["100,000"] and list(sp.data[0].customdata) == [1.5]
    again = accuracy_time_figure(t, fig=acc)
    assert again is acc
    with pytest.raises(DataError, match="lacks the columns"):
        accuracy_time_figure(t.drop(columns="p_at_1"))
    with pytest.raises(DataError, match="empty"):
        step_cost_figure(steps.iloc[:0])


def test_view_is_a_dashboard_tab_and_trains():
    from workbench.widgets import LAB_VIEWS, load_view
    from workbench.widgets.large_outputs import LargeOutputsView

    assert LAB_VIEWS["large outputs"] == ("workbench.widgets.large_outputs", "LargeOutputsView")
    assert load_view("large outputs") is LargeOutputsView
    view = LargeOutputsView(None, sync=True, quick=True)
    view.width.value = 1000
    view.kinds.value = ("full", "lsh")
    view.samples.value = 1000
    view.epochs.value = 0.5
    view.negatives.value = 16
    view.bits.value = 4
    view.tables.value = 4
    view.train_button.click()
    assert view.wait(120) and view.error is None, view.error
    assert set(view.table["kind"]) == {"full", "lsh"} and (view.table["width"] == 1000).all()
    assert {t.name for t in view.accuracy.data} == {"full · 1,000", "lsh · 1,000"}
    assert "speedup" in view.summary.value and "done" in view.status.value
    lsh = view.table[view.table["kind"] == "lsh"]
    assert lsh["active_fraction"].iloc[-1] == pytest.approx(16 / 999)


def test_view_refuses_an_empty_choice():
    from workbench.widgets.large_outputs import LargeOutputsView

    view = LargeOutputsView(None, sync=True, quick=True)
    view.kinds.value = ()
    view.train_button.click()
    assert "choose at least one" in view.status.value and view.table is None
