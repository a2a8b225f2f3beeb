"""Benchmark tables, figures and the KernelBenchView widget, driven headlessly."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from workbench.kernels.bench import COLUMNS, load_results, predicted_table, traffic_bytes
from workbench.kernels import packed_bytes


def test_predicted_table_is_the_bytes_ratio():
    df = predicted_table(shapes=((4096, 4096),), batches=(1,))
    assert list(df.columns) == COLUMNS and len(df) == 5
    s = df.set_index("format")["speedup_vs_dense"]
    # weights dominate at batch 1: ratios near 1/0.5625, 2, 1/0.3125, 16
    assert s["2:4"] == pytest.approx(1 / 0.5625, rel=2e-3)
    assert s["fp8_e4m3"] == pytest.approx(2.0, rel=2e-3)
    assert s["2:4+fp8_e4m3"] == pytest.approx(1 / 0.3125, rel=3e-3)
    assert s["binary"] == pytest.approx(16.0, rel=2e-2)
    assert traffic_bytes("fp8_e4m3", 8, 16, 2) == packed_bytes("fp8_e4m3", (8, 16)) + 2 * 2 * (16 + 8)
    assert (df["source"] == "predicted").all()


def _measured(tmp_path):
    df = predicted_table(shapes=((64, 128),), batches=(1, 16))
    df["source"] = "measured"
    df["time_us"] = df["time_us"] * 2  # half the floor speed
    dense_t = df[df.format == "dense"].set_index("batch")["time_us"]
    df["speedup_vs_dense"] = [dense_t[b] / t for b, t in zip(df.batch, df.time_us)]
    df["floor_fraction"] = 0.5
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"device": "Fake GPU", "copy_tbps": 3.0, "rows": df.to_dict("records")}))
    return p


def test_load_results_reads_recorded_json_else_predicts(tmp_path):
    df, meta = load_results(tmp_path / "missing.json")
    assert meta["source"] == "predicted" and "not a measurement" in meta["note"]
    df, meta = load_results(_measured(tmp_path))
    assert meta["source"] == "measured" and meta["device"] == "Fake GPU" and len(df) == 10


def test_figures_show_bars_and_floor_markers(tmp_path):
    from workbench.viz.kernels import floor_figure, speedup_figure

    df, meta = load_results(_measured(tmp_path))
    fig = speedup_figure(df, meta)
    bars = {t.name: t for t in fig.data if t.type == "bar"}
    marks = {t.name: t for t in fig.data if t.type == "scatter"}
    assert set(bars) == {"dense", "2:4", "fp8_e4m3", "2:4+fp8_e4m3", "binary"}
    assert list(bars["dense"].y) == [1.0, 1.0]
    # floor marker = dense bytes / format bytes
    b = df[(df.format == "fp8_e4m3")].set_index("batch")["bytes"]
    d = df[(df.format == "dense")].set_index("batch")["bytes"]
    assert list(marks["fp8_e4m3 floor"].y) == pytest.approx([d[1] / b[1], d[16] / b[16]])
    assert "Fake GPU" in fig.layout.title.text
    f2 = floor_figure(df, meta)
    assert all(list(t.y) == [0.5, 0.5] for t in f2.data)
    assert "PREDICTED" in speedup_figure(*load_results(tmp_path / "none.json")).layout.title.text


def test_widget_redraws_its_one_figure(tmp_path):
    from workbench.widgets.kernels import KernelBenchView

    v = KernelBenchView(path=_measured(tmp_path))
    fig = v.fig
    assert "Measured" in v.note.value and "Fake GPU" in v.note.value
    n_bars = sum(t.type == "bar" for t in fig.data)
    assert n_bars == 5 and len(fig.data[0].x) == 2
    v.batch.value = 16
    assert v.fig is fig and len(fig.data[0].x) == 1 and fig.data[0].x[0].endswith("b16")
    v.formats.value = ("2:4", "binary")
    assert [t.name for t in fig.data if t.type == "bar"] == ["2:4", "binary"]
    assert "binary" in v.table.value and "fp8_e4m3" not in v.table.value
    v.view.value = "fraction of bandwidth floor"
    assert fig.layout.yaxis.tickformat == ".0%" and [t.y[0] for t in fig.data] == [0.5, 0.5]
    assert v.markdown().startswith("| out_features") and "| binary |" in v.markdown()


def test_widget_without_results_says_predicted_and_lists_model_layers():
    from workbench.widgets.kernels import KernelBenchView

    class Handle:
        layers = pd.DataFrame(
            [dict(name="fc1", kind="Linear", in_features=64, out_features=32), dict(name="c", kind="Conv2d", in_features=3, out_features=8)]
        )

    v = KernelBenchView(Handle(), path="/nonexistent/kernels_results.json")
    assert "Predicted, not measured" in v.note.value
    assert "fc1" in v.layers.value and "Conv2d" not in v.layers.value
    assert str(packed_bytes("binary", (32, 64))) in v.layers.value
