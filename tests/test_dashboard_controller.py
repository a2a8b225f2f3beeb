"""The dashboard's controller without any widget: load, toggle, errors, cancel-free revert, exact restore.

:class:`workbench.widgets.controller.DashboardController` is the headless half of the dashboard; these tests drive
it with a recording listener and no ipywidgets (a subprocess checks that importing it imports no ipywidgets).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import workbench
from workbench import formats as F
from workbench.errors import FormatError
from workbench.widgets.controller import DashboardController, DashboardListener
from workbench.widgets.state import DashboardState


class Recorder(DashboardListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def on_controls(self, state):
        self.events.append(("controls", state.copy()))

    def on_model(self, session):
        self.events.append(("model", session.spec))

    def on_result(self, snap):
        self.events.append(("result", dict(snap.metrics)))

    def on_message(self, level, text, error=None):
        self.events.append(("message", (level, text)))

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]


@pytest.fixture(scope="module")
def mlp():
    h = workbench.load_model("digits-mlp")
    return h, h.evaluate()


def test_importing_the_controller_imports_no_ipywidgets():
    code = ("import sys, workbench.widgets.controller, workbench.widgets.readouts, workbench.widgets.state; "
            "print('ipywidgets' in sys.modules, 'plotly' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_controller_loads_toggles_and_restores_exactly(mlp):
    handle, base = mlp
    rec = Recorder()
    c = DashboardController(handle, sync=True, listener=rec)
    try:
        assert c.handle is handle and c.metrics == base and rec.kinds()[:2] == ["model", "result"]
        c.set_format("int8")
        assert set(F.current_formats(handle.model).values()) == {"int8"}
        assert c.metrics == handle.evaluate() and c.metrics != base
        assert rec.events[-1] == ("message", ("", ""))  # nothing to say: the message line is cleared
        r = c.readouts
        assert float(r[(r.metric == "size_bytes") & (r.which == "current")]["value"].iloc[0]) == \
            F.model_size_bytes(handle.model)
        assert list(c.layer_errors["layer"]) == ["fc1", "fc2", "fc3"]
        c.set_format("binary", layer="fc3")
        assert F.current_formats(handle.model) == {"fc1": "int8", "fc2": "int8", "fc3": "binary"}
        assert c.state == DashboardState("digits-mlp", "int8", {"fc3": "binary"})
        assert ("controls", c.state) in rec.events  # the view is told to show the state it asked for
        c.set_activations(True)
        assert (F.format_table(handle.model)["activations"] != "").all()
        c.restore_dense()
        assert F.current_formats(handle.model) == {} and c.metrics == base
        assert rec.kinds()[-3:] == ["controls", "result", "message"]
        assert rec.events[-3] == ("controls", DashboardState("digits-mlp"))
        assert c.refresh_count == 5
    finally:
        c.close()


def test_controller_error_keeps_the_shown_state(mlp, tmp_path):
    handle, base = mlp
    rec = Recorder()
    c = DashboardController(handle, sync=True, listener=rec)
    try:
        c.set_format("int4")
        shown = dict(c.metrics)
        c.load(tmp_path / "missing.pt")
        assert c.handle is handle and c.metrics == shown
        level, text = c.message_log[-1]
        assert level == "error" and "missing.pt" in text
        assert rec.events[-2:] == [("controls", c.state), ("message", ("error", text))]  # the view reverts
        for layer in (None, "fc2"):  # an unknown format is refused before anything changes
            with pytest.raises(FormatError, match="bogus_format_42"):
                c.set_format("bogus_format_42", layer=layer)
        assert set(F.current_formats(handle.model).values()) == {"int4"}
        assert c.state == DashboardState("digits-mlp", "int4") and c.metrics == shown
    finally:
        c.restore_dense()
        c.close()
    assert F.current_formats(handle.model) == {}


def test_controller_threaded_supersedes_and_waits(mlp):
    handle, base = mlp
    c = DashboardController(handle)  # worker thread
    try:
        assert c.wait(120) and c.metrics == base
        for fmt in ("fp8_e4m3", "int4", "binary", "int8"):
            c.set_format(fmt)
        assert c.wait(120)
        assert set(F.current_formats(handle.model).values()) == {"int8"} and c.metrics == handle.evaluate()
        assert c.refresh_count <= 5
        c.restore_dense()
        assert c.wait(120) and c.metrics == base
        for name, p in handle.model.state_dict().items():
            assert torch.isfinite(p).all(), name
    finally:
        c.close()


def test_no_model_and_no_state_is_a_model_spec_error():
    from workbench.errors import ModelSpecError
    from workbench.widgets.controller import DashboardController

    with pytest.raises(ModelSpecError, match="model=None needs state="):
        DashboardController(None, sync=True)
