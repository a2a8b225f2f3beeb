"""``MetricView``: watch free-energy Monte Carlo stretch and rotate a data set's space, and compare metric learners.

A thin shell over :func:`workbench.metric.fit_metric`, :func:`~workbench.metric.compare_metrics` and the figures
of :mod:`workbench.viz.metric`. Work runs on :class:`~workbench.widgets._async.LatestJobRunner` (one worker thread,
progress bar, cancel; ``sync=True`` runs inline for headless tests). While the Monte Carlo runs, the 2-D view of the
data under the current map (its rows when ``dim ≤ 2``, else its top-2 principal directions, signs kept from frame to
frame) and the energy / temperature / acceptance traces are redrawn after each temperature block, at most every
``refresh_s`` seconds. Cancel keeps the best map found so far. Data sets: scikit-learn's iris, wine, breast cancer,
digits (standardized), the digits-cnn penultimate features under dense / int4 / binary weights, and, when the view
is given a classification handle, that model's own penultimate features as it is now (its formats included; the
handle is never modified).
"""

from __future__ import annotations

import html
import time
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd

from workbench.config import quick_mode
from workbench.metric import METHODS, SCHEDULES, cnn_features, compare_metrics, embedding_2d, fit_metric, \
    load_dataset
from workbench.viz.figure import empty_figure
from workbench.viz.metric import comparison_figure, embedding_figure, trace_figure
from workbench.widgets._async import JobContext, LatestJobRunner
from workbench.widgets.plot import PlotView

__all__ = ["MetricView"]

_BUILTIN = ["iris", "wine", "breast_cancer", "digits", "digits-cnn:dense", "digits-cnn:int4", "digits-cnn:binary"]
_HANDLE = "this model's features (as it is now)"


class MetricView:
    """Live 2-D view and traces of a metric fit, with controls and a comparison table; ``.ui`` is the widget tree."""

    def __init__(self, handle: Any = None, *, dataset: str = "iris", method: str = "free_energy",
                 steps: int | None = None, quick: bool | None = None, sync: bool = False,
                 refresh_s: float = 0.25) -> None:
        self.handle = handle
        self.quick = quick_mode(quick)
        self.refresh_s = refresh_s
        self.metric = None
        self.table = pd.DataFrame()
        self.error: str | None = None
        self._data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._last_draw = 0.0
        self._xy: np.ndarray | None = None
        self._rows: list[dict[str, Any]] = []
        self.runner = LatestJobRunner(sync=sync, on_progress=self._on_progress, on_busy=self._on_busy,
                                      name="workbench-metric")

        style = {"description_width": "90px"}
        options = list(_BUILTIN) + ([_HANDLE] if self._handle_has_features() else [])
        self.dataset = W.Dropdown(options=options, value=dataset, description="data set", style=style)
        self.method = W.Dropdown(options=list(METHODS), value=method, description="method", style=style)
        self.steps = W.BoundedIntText(value=steps or (300 if self.quick else 2000), min=10, max=1_000_000,
                                      description="MC steps", style=style)
        self.schedule = W.Dropdown(options=list(SCHEDULES), value="geometric", description="schedule", style=style)
        self.dim = W.Dropdown(options=[("2 (a 2-D map)", 2), ("all features", None)], value=2,
                              description="dim", style=style)
        self.seed = W.IntText(value=0, description="seed", style=style)
        self.splits = W.BoundedIntText(value=2 if self.quick else 5, min=2, max=20, description="splits",
                                       style=style)
        self.run_button = W.Button(description="fit", button_style="primary", icon="play")
        self.cancel_button = W.Button(description="cancel", button_style="warning", icon="stop", disabled=True)
        self.compare_button = W.Button(description="compare methods", icon="balance-scale")
        self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0, description="progress", style=style)
        self.status = W.HTML("<i>pick a data set and press fit</i>")
        self.table_html = W.HTML()
        self.scatter = PlotView(empty_figure("Data under the learned map", "press fit"), height=420)
        self.traces = PlotView(empty_figure("Monte Carlo trace", "press fit (free energy)"), height=560)
        self.compare_fig = PlotView(empty_figure("kNN accuracy", "press compare methods"), height=400)
        self.run_button.on_click(self._on_run)
        self.cancel_button.on_click(lambda _=None: self.cancel())
        self.compare_button.on_click(self._on_compare)
        controls = W.HBox([W.VBox([self.dataset, self.method, self.dim]),
                           W.VBox([self.steps, self.schedule, self.seed]),
                           W.VBox([self.run_button, self.cancel_button, self.compare_button, self.splits])])
        self.ui = W.VBox([controls, self.progress, self.status, W.HBox([self.scatter.ui, self.traces.ui]),
                          self.compare_fig.ui, self.table_html])

    # ---------------------------------------------------------------------------------------------- data
    def _handle_has_features(self) -> bool:
        h = self.handle
        return h is not None and hasattr(h, "test_data") and hasattr(h, "model")

    def data(self, name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The chosen data set, raw (loaded once)."""
        name = name or self.dataset.value
        if name not in self._data:
            if name == _HANDLE:
                self._data[name] = cnn_features(self.handle, None)  # the model as it is, its formats included
            else:
                self._data[name] = load_dataset(name)
        return self._data[name]

    # ---------------------------------------------------------------------------------------------- runner
    def _on_progress(self, fraction: float, text: str) -> None:
        self.progress.value = fraction
        if text:
            self.status.value = html.escape(text)

    def _on_busy(self, busy: bool) -> None:
        self.run_button.disabled = self.compare_button.disabled = busy
        self.cancel_button.disabled = not busy

    def cancel(self) -> None:
        """Stop the running job; a Monte Carlo fit keeps (and shows) its best map so far."""
        self.runner.cancel()

    def wait(self, timeout: float | None = 120.0) -> bool:
        """Block until the running job is done (headless tests)."""
        return self.runner.wait(timeout)

    def _fail(self, exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
        self.status.value = f"<b style='color:#b00'>{html.escape(self.error)}</b>"

    # ---------------------------------------------------------------------------------------------- fit
    def _on_run(self, _: Any = None) -> None:
        self.error = None
        self.runner.submit(self._fit_job, on_done=self._show_final, on_error=self._fail,
                           on_cancel=self._on_cancel, label="fit")

    def _fit_job(self, ctx: JobContext) -> Any:
        X, y = self.data()
        sd = X.std(0)
        Xs = (X - X.mean(0)) / np.where(sd > 0, sd, 1.0)
        self._xy, self._rows, self._last_draw = None, [], 0.0
        self._Xs, self._y = Xs, y
        method = self.method.value
        total = int(self.steps.value)

        def on_step(info: dict[str, Any]) -> None:
            self._rows.append({k: v for k, v in info.items() if k not in ("L", "total_steps")})
            ctx.progress(info["step"] / total, f"step {info['step']} / {total} · T = {info['temperature']:.3g} · "
                                               f"E = {info['energy']:.4g} · acceptance {info['acceptance']:.2f}")
            now = time.perf_counter()
            if now - self._last_draw >= self.refresh_s:
                self._last_draw = now
                self._draw(info["L"])

        opts: dict[str, Any] = {}
        if method == "free_energy":
            opts = dict(steps=total, schedule=self.schedule.value, block=max(10, min(50, total // 20)))
        self.status.value = f"fitting {method} on {html.escape(self.dataset.value)}…"
        m = fit_metric(Xs, y, method, dim=self.dim.value, seed=int(self.seed.value), progress=False,
                       stop=lambda: ctx.cancelled_reason() is not None, on_step=on_step, **opts)
        self.metric = m  # kept even when the job is cancelled: the best map so far
        return m

    def _draw(self, L: np.ndarray) -> None:
        df = embedding_2d(self._Xs, self._y, L, reference=self._xy)
        self._xy = df[["x", "y"]].to_numpy()
        self.scatter.show(embedding_figure(df))
        if self._rows:
            self.traces.show(trace_figure(pd.DataFrame(self._rows)))

    def _show_final(self, m: Any) -> None:
        self._draw(m.L)
        if len(m.trace):
            self.traces.show(trace_figure(m.trace))
        self.progress.value = 1.0
        how = "cancelled (best map so far)" if m.cancelled else "done"
        self.status.value = (f"{m.method}: {how} · energy {m.energy:.4g} · NCA objective {m.objective:.4f} · "
                             f"{m.seconds:.2f} s")

    def _on_cancel(self, reason: str) -> None:
        if self.metric is not None and self.metric.cancelled:
            self._show_final(self.metric)
        else:
            self.status.value = f"<i>{reason}</i>"

    # ---------------------------------------------------------------------------------------------- compare
    def _on_compare(self, _: Any = None) -> None:
        self.error = None
        self.runner.submit(self._compare_job, on_done=self._show_table, on_error=self._fail,
                           on_cancel=lambda r: setattr(self.status, "value", f"<i>comparison {r}</i>"),
                           label="compare")

    def _compare_job(self, ctx: JobContext) -> pd.DataFrame:
        name = self.dataset.value
        done: list[dict[str, Any]] = []
        methods = list(METHODS)

        def on_result(row: dict[str, Any]) -> None:
            done.append(row)
            ctx.progress(len(done) / len(methods), f"compare: {row['method']} done")

        return compare_metrics({name: self.data(name)}, methods, k=3, splits=int(self.splits.value),
                               options={"free_energy": {"steps": int(self.steps.value)}}, progress=False,
                               stop=lambda: ctx.cancelled_reason() is not None, on_result=on_result)

    def _show_table(self, df: pd.DataFrame) -> None:
        self.table = df
        self.compare_fig.show(comparison_figure(df))
        shown = df.drop(columns=["accuracies"]).copy()
        self.table_html.value = shown.to_html(index=False, float_format=lambda v: f"{v:.4f}")
        self.progress.value = 1.0
        self.status.value = f"compared {len(df)} methods on {html.escape(self.dataset.value)}"
