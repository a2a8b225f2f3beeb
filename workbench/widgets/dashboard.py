"""The workbench dashboard: load a model, toggle sparsity and number formats live, watch every readout move.

``Workbench(spec_or_handle)`` is a thin ipywidgets view over :class:`~workbench.widgets.controller.DashboardController`
(state, jobs, apply/restore, readouts: no widgets there), the way captum's Insights widget is a view over its
controller:

- model picker (bundled zoo, a path, the MiniLM package) → :meth:`DashboardController.load`;
- whole-model switches (sparsity ``dense | 2:4 | 4:8-T`` × numbers ``fp32 | fp8_e4m3 | fp8_e5m2 | int8 | int4 |
  binary``, weights or weights+activations) and a per-layer override dropdown in the layer table →
  :meth:`DashboardController.set_default` / :meth:`~DashboardController.set_format` (reversible
  parametrizations, so going back to dense gives back the bit-identical model);
- readouts (accuracy and loss, or embedding cosine for sentence-embedding models, against the unmodified model;
  size; per-layer weight SQNR) drawn by :mod:`workbench.viz.dashboard` into one
  :class:`~workbench.widgets.plot.PlotView` per plot (a plain figure in an Output widget, the whole figure resent
  on every redraw, so a page reload or a reopened notebook shows the latest figure);
- tabs for the lab views registered in :data:`workbench.widgets.LAB_VIEWS`, each imported and built the first
  time its tab is selected.

Every toggle becomes a job on the controller's :class:`~workbench.widgets._async.LatestJobRunner` (progress bar,
cancel button; a newer toggle supersedes an older one still running). Errors (a model that does not load, a
format that does not fit a layer) appear inline and the model and controls go back to the last state that worked.
Tests and benchmarks call :meth:`Workbench.wait` or pass ``sync=True``.
"""

from __future__ import annotations

import html
import importlib
import math
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import ipywidgets as W
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.viz.dashboard import layer_error_figure, readout_figure
from workbench.widgets.controller import (
    FOLLOW,
    MINILM_SPEC,
    DashboardController,
    DashboardListener,
    Session,
    Snapshot,
    task_metric,
    zoo_specs,
)
from workbench.widgets.plot import PlotView
from workbench.widgets.state import (
    NUMBER_CHOICES,
    SPARSITY_CHOICES,
    DashboardState,
    combine_format,
    format_choices,
    split_format,
)

__all__ = ["Workbench", "MINILM_SPEC", "FOLLOW", "zoo_specs"]

ACTIVATION_CHOICES = ("weights", "weights+activations")


class Workbench(DashboardListener):
    """The dashboard. ``Workbench("digits-cnn")`` in a notebook shows it; ``.ui`` is the widget tree.

    Parameters: ``model`` is a spec for :func:`workbench.load_model`, a ``ModelHandle``; ``state`` a
    :class:`DashboardState` (or a path to its JSON) to start from; ``sync=True`` runs every job inline (tests);
    ``views=False`` leaves out the lab tabs. The work is done by :attr:`controller`
    (:class:`~workbench.widgets.controller.DashboardController`); this class draws what it hears from it.

    Headless use: set widget values (``wb.sparsity.value = "2:4"``) or call :meth:`set_format`, then
    :meth:`wait`; the numbers are in :attr:`metrics`, :attr:`readouts` and :attr:`layer_errors`.
    """

    def __init__(
        self,
        model: Any = "digits-cnn",
        *,
        state: DashboardState | str | Path | None = None,
        sync: bool = False,
        views: bool = True,
    ) -> None:
        self.controller = DashboardController(model, state=state, sync=sync, listener=self, start=False)
        self.runner = self.controller.runner
        self._syncing = False
        self._layer_rows: dict[str, dict[str, W.Widget]] = {}
        self._view_threads: list[threading.Thread] = []
        self._build_ui(views)
        self.controller.start()

    # --- the controller's numbers -----------------------------------------------------------------------------
    @property
    def state(self) -> DashboardState:
        """The state the controls ask for (model spec, formats, activations flag)."""
        return self.controller.state

    @property
    def handle(self) -> Any:
        """The loaded ``ModelHandle`` (``None`` until the first load finished)."""
        return self.controller.handle

    @property
    def metrics(self) -> dict[str, float]:
        """The metrics of the model as the readouts show it."""
        return self.controller.metrics

    @property
    def readouts(self) -> pd.DataFrame:
        """Tidy ``metric, which, value`` rows behind the readout table and figure."""
        return self.controller.readouts

    @property
    def layer_errors(self) -> pd.DataFrame:
        """``layer, format, sqnr_db, skipped`` of the model as the readouts show it."""
        return self.controller.layer_errors

    @property
    def message_log(self) -> list[tuple[str, str]]:
        """(level, text) of every inline message, newest last."""
        return self.controller.message_log

    @property
    def refresh_count(self) -> int:
        """How many jobs published their numbers."""
        return self.controller.refresh_count

    # --- public API -------------------------------------------------------------------------------------------
    def wait(self, timeout: float | None = 120.0) -> bool:
        """Block until every submitted toggle has been applied and the readouts redrawn (and lab tabs being
        built are built); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.controller.wait(timeout):
            return False
        for t in list(self._view_threads):
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                return False
            self._view_threads.remove(t)
        return True

    def cancel(self) -> None:
        """Stop the running job; the model and controls go back to the last state the readouts show."""
        self.controller.cancel()

    def load(self, model: Any) -> None:
        """Load another model (spec, path or handle); its formats follow the current switches."""
        self.controller.load(model)

    def set_format(self, fmt: str, layer: str | None = None) -> None:
        """Set the whole-model format (``layer=None``) or one layer's override (``"(model)"`` to follow)."""
        self.controller.set_format(fmt, layer)

    def set_activations(self, on: bool) -> None:
        self.controller.set_activations(on)

    def restore_dense(self) -> None:
        """Every layer back to its original dense float32 weights (overrides cleared, activations off)."""
        self.controller.restore_dense()

    def save_state(self, path: str | Path) -> Path:
        """Write the dashboard state (model spec, formats, activations flag) as JSON."""
        return self.controller.save_state(path)

    def load_state(self, path_or_state: str | Path | DashboardState) -> None:
        """Switch to a saved state (loading its model when it names another one)."""
        self.controller.load_state(path_or_state)

    def to_report_params(self) -> dict[str, Any]:
        """Parameters for ``notebooks/reports/compression_report.ipynb`` from the current state."""
        return self.controller.to_report_params()

    def close(self) -> None:
        """Stop the worker thread and close every widget (the plots included)."""
        self.controller.close()
        _close_tree(self.ui)  # only this dashboard's widgets (Widget.close_all would close every widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.ui._repr_mimebundle_(**kwargs)

    # --- UI construction --------------------------------------------------------------------------------------
    def _build_ui(self, views: bool) -> None:
        spec = self.state.model
        options = zoo_specs()
        if spec not in options:
            options = options + [spec]
        self.picker = W.Dropdown(options=options, value=spec, description="model",
                                 layout=W.Layout(width="330px"))
        self.path_box = W.Text(placeholder="checkpoint path or Hugging Face folder", layout=W.Layout(width="320px"))
        self.load_button = W.Button(description="Load path", icon="folder-open")
        self.picker.observe(self._on_pick, names="value")
        self.load_button.on_click(lambda _b: self._on_load_path())

        sp, num = split_format(self.state.default)
        self.sparsity = W.ToggleButtons(options=list(SPARSITY_CHOICES), value=sp, description="sparsity",
                                        style={"button_width": "70px"})
        self.number = W.ToggleButtons(options=list(NUMBER_CHOICES), value=num, description="numbers",
                                      style={"button_width": "96px"})
        self.activations = W.ToggleButtons(options=list(ACTIVATION_CHOICES),
                                           value=ACTIVATION_CHOICES[int(self.state.activations)],
                                           description="quantize", style={"button_width": "170px"})
        for w in (self.sparsity, self.number, self.activations):
            w.add_class("wb-switch")
            w.observe(self._on_switch, names="value")
        self.restore_button = W.Button(description="Restore dense", icon="undo")
        self.restore_button.on_click(lambda _b: self.restore_dense())

        self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0, layout=W.Layout(width="220px"))
        self.status = W.Label("starting")
        self.status.add_class("wb-status")
        self.cancel_button = W.Button(description="Cancel", icon="stop", disabled=True,
                                      layout=W.Layout(width="90px"))
        self.cancel_button.on_click(lambda _b: self.cancel())
        self.message = W.HTML("")
        self.message.add_class("wb-message")

        self.readout_html = W.HTML("<i>loading…</i>")
        self.readout_html.add_class("wb-readouts")
        self.readout_fig = PlotView(readout_figure(pd.DataFrame(columns=["metric", "which", "value"])),
                                    flex="1 1 0%", width="auto", min_width="360px")
        self.error_fig = PlotView(layer_error_figure(pd.DataFrame(columns=["layer", "format", "sqnr_db"])))

        self.layer_table = W.GridBox([], layout=W.Layout(
            grid_template_columns="minmax(120px, 2fr) 70px 110px 80px 170px minmax(120px, 1.4fr) 80px",
            grid_gap="2px 8px", align_items="center"))
        self.layer_box = W.Box([self.layer_table], layout=W.Layout(max_height="360px", overflow="auto",
                                                                    border="1px solid #ddd", padding="4px"))
        self.layer_box.add_class("wb-layers")

        self.state_path = W.Text(value="dashboard_state.json", description="state file",
                                 layout=W.Layout(width="360px"))
        self.save_button = W.Button(description="Save", icon="save", layout=W.Layout(width="80px"))
        self.load_state_button = W.Button(description="Load", icon="upload", layout=W.Layout(width="80px"))
        self.save_button.on_click(lambda _b: self._guard(lambda: self.controller.say(
            "info", f"saved state to {self.save_state(self.state_path.value)}")))
        self.load_state_button.on_click(lambda _b: self._guard(lambda: self.load_state(self.state_path.value)))

        readouts = W.HBox([self.readout_html, self.readout_fig.ui], layout=W.Layout(align_items="flex-start"))
        main = W.VBox([
            W.HBox([self.sparsity]), W.HBox([self.number]), W.HBox([self.activations, self.restore_button]),
            readouts, self.error_fig.ui, W.HTML("<b>Layers</b> (override a layer's format in its dropdown)"),
            self.layer_box, W.HBox([self.state_path, self.save_button, self.load_state_button]),
        ])
        self._view_specs: list[tuple[str, str, str]] = []
        self._view_boxes: list[W.Box] = []
        self._view_built: list[bool] = []
        if views:
            from workbench.widgets import available_views

            for title, (module, cls) in available_views().items():
                self._view_specs.append((title, module, cls))
                box = W.VBox([W.HTML(f"<i>{html.escape(title)}: opens when selected</i>")])
                self._view_boxes.append(box)
                self._view_built.append(False)
        self.tabs = W.Tab(children=[main, *self._view_boxes])
        for i, title in enumerate(["formats"] + [t for t, _, _ in self._view_specs]):
            self.tabs.set_title(i, title)
        self.tabs.observe(self._on_tab, names="selected_index")

        header = W.HTML("<h3 style='margin:4px 0'>Workbench: sparsity and low-precision formats, live</h3>")
        self.ui = W.VBox([
            header,
            W.HBox([self.picker, self.path_box, self.load_button]),
            W.HBox([self.progress, self.status, self.cancel_button], layout=W.Layout(align_items="center")),
            self.message,
            self.tabs,
        ])
        self.ui.add_class("wb-dashboard")


    # --- control handlers (UI thread: quick) ------------------------------------------------------------------
    def _on_switch(self, _change: dict) -> None:
        if self._syncing:
            return
        self.controller.set_default(combine_format(self.sparsity.value, self.number.value),
                                    activations=self.activations.value == ACTIVATION_CHOICES[1])

    def _on_override(self, layer: str, change: dict) -> None:
        if self._syncing:
            return
        self.controller.set_format(change["new"], layer)

    def _on_pick(self, change: dict) -> None:
        if self._syncing:
            return
        self.load(change["new"])

    def _on_load_path(self) -> None:
        path = self.path_box.value.strip()
        if not path:
            self.controller.say("error", "type a checkpoint path or a Hugging Face folder first")
            return
        self.load(path)

    def _on_tab(self, change: dict) -> None:
        index = change["new"]
        if index is None or index == 0:
            return
        self._build_view(index - 1)

    def _build_view(self, i: int) -> None:
        """Import and build lab view ``i`` for the current model: on a background thread (views may take
        seconds), holding the model lock so it never sees a half-applied toggle; inline with ``sync=True``."""
        if self._view_built[i] or self.controller.session is None:
            return
        self._view_built[i] = True
        title, module, cls = self._view_specs[i]
        box = self._view_boxes[i]
        box.children = [W.HTML(f"<i>building {html.escape(title)}…</i>")]
        session = self.controller.session

        def build() -> None:
            try:
                with self.controller.model_lock:
                    view = getattr(importlib.import_module(module), cls)(session.handle)
                if self.controller.session is not session:  # the model changed meanwhile: _reset_views rebuilds
                    return
                box.children = [view.ui]
            except Exception as e:  # an unfinished or broken lab view must not break the dashboard
                self._view_built[i] = False
                if not isinstance(e, WorkbenchError):
                    traceback.print_exception(e)
                box.children = [W.HTML(_error_html(f"the {title} view could not be built: {type(e).__name__}: {e}",
                                                   e))]

        if self.controller.sync:
            build()
        else:
            t = threading.Thread(target=build, name=f"workbench-view-{title}", daemon=True)
            self._view_threads.append(t)
            t.start()


    # --- what the controller says (worker thread, or inline with sync=True) ------------------------------------
    def on_controls(self, state: DashboardState) -> None:
        self._apply_state_to_controls(state)
        if self.controller.session is not None:
            self._set_picker(state.model)

    def on_model(self, session: Session) -> None:
        self._rebuild_layer_table(session)
        self._reset_views()
        self._set_picker(session.spec)

    def on_result(self, snap: Snapshot) -> None:
        self._draw(snap)

    def on_message(self, level: str, text: str, error: BaseException | None = None) -> None:
        colors = {"error": "#b00020", "warning": "#8a6d00", "info": "#1b5e20"}
        if not text:
            self.message.value = ""
        elif level == "error":
            self.message.value = _error_html(text, error)
        else:
            self.message.value = (f"<div class='wb-{level}' style='color:{colors.get(level, '#333')};"
                                  f"padding:2px 4px'>{html.escape(text)}</div>")

    def on_status(self, text: str) -> None:
        self.status.value = text

    def on_progress(self, fraction: float, text: str) -> None:
        self.progress.value = fraction
        self.status.value = text

    def on_busy(self, busy: bool) -> None:
        self.cancel_button.disabled = not busy
        if busy:
            self.progress.value = 0.0
            self.progress.bar_style = "info"
        else:
            self.progress.value = 1.0
            self.progress.bar_style = "success"

    # --- drawing ----------------------------------------------------------------------------------------------
    def _draw(self, snap: Snapshot) -> None:
        s = snap.session
        self.readout_html.value = _readout_html(s.baseline, snap.metrics, s.dense_bytes, snap.size_bytes,
                                                task_metric(snap.metrics), s.spec, snap.state)
        self.readout_fig.show(readout_figure(self.readouts, title=f"{s.spec}: unmodified vs "
                                                                  f"{html.escape(snap.state.default)}"))
        self.error_fig.show(layer_error_figure(snap.errors))
        errors = dict(zip(snap.errors["layer"], snap.errors["sqnr_db"]))
        for name, row in self._layer_rows.items():
            fmt = snap.effective.get(name, "dense")
            skip = snap.skipped.get(name)
            act = " + act" if snap.state.activations and fmt != "dense" and split_format(fmt)[1] != "fp32" else ""
            row["effective"].value = (f"<span title='{html.escape(skip)}' style='color:#b26a00'>dense (skipped "
                                      f"{html.escape(snap.state.format_for(name))})</span>" if skip
                                      else f"<code>{html.escape(fmt)}{act}</code>")
            v = errors.get(name, math.inf)
            row["sqnr"].value = "exact" if not math.isfinite(v) else f"{v:.1f} dB"

    def _rebuild_layer_table(self, session: Session) -> None:
        old = self.layer_table.children
        self._layer_rows = {}
        header = [W.HTML(f"<b>{h}</b>") for h in ("layer", "kind", "weight", "params", "override", "now",
                                                 "SQNR")]
        cells: list[W.Widget] = list(header)
        choices = [FOLLOW] + format_choices()
        for r in session.layers.to_dict("records"):
            name = str(r["name"])
            dd = W.Dropdown(options=choices, value=self.state.overrides.get(name, FOLLOW),
                            layout=W.Layout(width="165px"))
            dd.add_class("wb-override")
            dd.observe(lambda ch, n=name: self._on_override(n, ch), names="value")
            row = {
                "name": W.Label(name, tooltip=name), "kind": W.Label(str(r.get("kind", ""))),
                "shape": W.Label("×".join(str(x) for x in r.get("weight_shape", ()) or ())),
                "params": W.Label(f"{int(r.get('params', 0)):,}"), "override": dd,
                "effective": W.HTML("<code>dense</code>"), "sqnr": W.Label("exact"),
            }
            self._layer_rows[name] = row
            cells.extend(row.values())
        self.layer_table.children = cells
        for w in old:
            w.close()

    def _reset_views(self) -> None:
        for i, box in enumerate(self._view_boxes):
            if self._view_built[i]:
                for w in box.children:
                    w.close()
            self._view_built[i] = False
            box.children = [W.HTML(f"<i>{html.escape(self._view_specs[i][0])}: opens when selected</i>")]
        index = self.tabs.selected_index
        if index:
            self._build_view(index - 1)


    # --- helpers ----------------------------------------------------------------------------------------------
    def _set_controls(self, sparsity: str | None = None, number: str | None = None,
                      activations: bool | None = None) -> None:
        self._syncing = True
        try:
            if sparsity is not None:
                if sparsity not in self.sparsity.options:
                    self.sparsity.options = list(self.sparsity.options) + [sparsity]
                self.sparsity.value = sparsity
            if number is not None:
                if number not in self.number.options:
                    self.number.options = list(self.number.options) + [number]
                self.number.value = number
            if activations is not None:
                self.activations.value = ACTIVATION_CHOICES[int(activations)]
        finally:
            self._syncing = False

    def _set_override_widget(self, layer: str, value: str) -> None:
        row = self._layer_rows.get(layer)
        if row is None:
            return
        dd = row["override"]
        self._syncing = True
        try:
            if value not in dd.options:
                dd.options = list(dd.options) + [value]
            dd.value = value
        finally:
            self._syncing = False

    def _apply_state_to_controls(self, st: DashboardState) -> None:
        sp, num = split_format(st.default)
        self._set_controls(sparsity=sp, number=num, activations=st.activations)
        for name in self._layer_rows:
            self._set_override_widget(name, st.overrides.get(name, FOLLOW))

    def _set_picker(self, spec: str) -> None:
        self._syncing = True
        try:
            if spec not in self.picker.options:
                self.picker.options = list(self.picker.options) + [spec]
            self.picker.value = spec
        finally:
            self._syncing = False

    def _guard(self, fn: Any) -> None:
        try:
            fn()
        except Exception as e:
            self.controller.say("error", f"that did not work: {type(e).__name__}: {e}", e)




def _close_tree(widget: Any) -> None:
    """Close a widget and every widget below it (children of boxes, tabs and grids)."""
    for child in getattr(widget, "children", ()) or ():
        _close_tree(child)
    if hasattr(widget, "close"):
        widget.close()


def _error_html(what: str, error: BaseException | None) -> str:
    """An inline error box: ``what`` (plain text), and a pointer to the kernel log for an unexpected error."""
    detail = ""
    if error is not None and not isinstance(error, WorkbenchError):
        detail = "<br><small>(unexpected error: the traceback is in the kernel log)</small>"
    return (f"<div class='wb-error' style='color:#b00020;border-left:3px solid #b00020;padding:2px 6px'>"
            f"<b>{html.escape(what)}</b>{detail}</div>")


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f}\u00a0{unit}" if unit == "B" else f"{n:,.2f}\u00a0{unit}"  # no-break space
        n /= 1024
    return f"{n}"


def _readout_html(base: dict[str, float], now: dict[str, float], dense_bytes: int, size: int,
                  task_metric: str | None, spec: str, state: DashboardState) -> str:
    rows = []
    if task_metric is not None:
        b, c = base.get(task_metric, math.nan), now.get(task_metric, math.nan)
        change = f"{(c - b) * 100:+.2f} pts" if task_metric == "accuracy" else f"{c - b:+.4f}"  # cosine: its units
        rows.append((task_metric, f"{b:.4f}", f"<span class='wb-{task_metric}' data-value='{c!r}'>{c:.4f}</span>",
                     change))
    b, c = base.get("loss", math.nan), now.get("loss", math.nan)
    rows.append(("loss", f"{b:.4f}", f"<span class='wb-loss' data-value='{c!r}'>{c:.4f}</span>", f"{c - b:+.4f}"))
    rows.append(("size", _fmt_bytes(dense_bytes),
                 f"<span class='wb-size' data-value='{size}'>{_fmt_bytes(size)}</span>",
                 f"{size / dense_bytes:.3f}× ({size:,} B)" if dense_bytes else ""))
    cell = "<td style='text-align:right;white-space:nowrap'>"  # "150.30 KiB" never wraps
    body = "".join(f"<tr><td>{m}</td>{cell}{b_}</td>{cell}{c_}</td>{cell}{d}</td></tr>" for m, b_, c_, d in rows)
    overrides = len(state.overrides)
    return (f"<div style='min-width:330px'><b>{html.escape(spec)}</b> · format <code class='wb-format'>"
            f"{html.escape(state.default)}</code>{' + ' + str(overrides) + ' override(s)' if overrides else ''}"
            f"{' · weights+activations' if state.activations else ''}"
            f"<table style='border-collapse:collapse'><tr><th></th><th>unmodified</th><th>current</th>"
            f"<th>change</th></tr>{body}</table></div>")
