"""``DynamicsView``: watch ‖w_t − w_0‖ grow while a model trains, and compare small vs large batch.

A thin shell over :func:`workbench.dynamics.train`, :func:`~workbench.dynamics.fit_growth` and
:func:`~workbench.dynamics.compare_regimes` with the figures of :mod:`workbench.viz.dynamics` (Hoffer, Hubara &
Soudry 2017). Training runs on a background thread so the kernel stays responsive; the distance plot (log step axis,
one line per layer plus the total, a :class:`~workbench.widgets.plot.PlotView`) is redrawn live as the tracker records,
at most every ``refresh_s`` seconds, and the fitted growth laws are overlaid when the run ends. The stop button sets
a ``threading.Event`` that the loop checks every step; everything recorded so far is kept. The second panel trains
the regimes small batch / large batch / large + √-scaled lr + Ghost BN (+ regime adaptation) over a few seeds and
shows mean ± std test accuracy. ``wait()`` joins the worker (headless tests); ``threaded=False`` runs inline.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any

import ipywidgets as W
import pandas as pd

from workbench.config import quick_mode
from workbench.dynamics import compare_regimes, fit_growth, predict_growth, summarize_regimes, train
from workbench.dynamics.gap import REGIMES
from workbench.viz.dynamics import accuracy_figure, distance_figure
from workbench.viz.figure import empty_figure
from workbench.widgets.plot import PlotView


class DynamicsView:
    """Live distance-from-initialization plot with fits, and a small-vs-large-batch accuracy panel; ``.ui``."""

    def __init__(self, handle: Any, batch_size: int = 32, lr: float = 0.05, steps: int | None = None,
                 quick: bool | None = None, threaded: bool = True, refresh_s: float = 0.3) -> None:
        self.handle = handle
        self.quick = quick_mode(quick)
        self.threaded = threaded
        self.refresh_s = refresh_s
        self.result = None  # the last TrainResult
        self.fits: pd.DataFrame | None = None
        self.runs = pd.DataFrame()
        self.error: str | None = None
        self._rows: list[dict] = []
        self._last_draw = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

        style = {"description_width": "110px"}
        self.batch = W.Dropdown(options=[8, 16, 32, 64, 128, 256, 512, 1024], value=batch_size,
                                description="batch size", style=style)
        self.lr = W.FloatLogSlider(value=lr, base=10, min=-3, max=0, step=0.1, description="learning rate",
                                   style=style, readout_format=".3g")
        self.steps = W.BoundedIntText(value=steps or (300 if self.quick else 3000), min=1, max=1_000_000,
                                      description="steps", style=style)
        self.ghost = W.Dropdown(options=[("off", None), ("8", 8), ("16", 16), ("32", 32), ("64", 64), ("128", 128)],
                                value=None, description="ghost batch", style=style)
        self.scaling = W.Dropdown(options=[("none", None), ("√(B/b)", "sqrt"), ("B/b", "linear")], value=None,
                                  description="lr scaling", style=style)
        self.augment = W.BoundedIntText(value=1, min=1, max=16, description="batch aug. M", style=style)
        self.hadamard = W.Checkbox(value=False, description="fixed Hadamard classifier")
        self.seed = W.IntText(value=0, description="seed", style=style)
        self.train_button = W.Button(description="train", button_style="primary", icon="play")
        self.stop_button = W.Button(description="stop", button_style="warning", icon="stop", disabled=True)
        self.status = W.HTML("<i>press train: distances are recorded at log-spaced steps</i>")

        self.small = W.Dropdown(options=[16, 32, 64], value=32, description="small batch b", style=style)
        self.large = W.Dropdown(options=[128, 256, 512, 1024], value=256 if self.quick else 512,
                                description="large batch B", style=style)
        self.epochs = W.BoundedFloatText(value=2 if self.quick else 10, min=0.1, max=500, description="epochs",
                                         style=style)
        self.seeds = W.BoundedIntText(value=1 if self.quick else 3, min=1, max=10, description="seeds", style=style)
        self.regimes = W.SelectMultiple(options=list(REGIMES), value=("small", "large", "large+LR+GBN+RA"),
                                        description="regimes", rows=5, style=style)
        self.compare_button = W.Button(description="compare", button_style="primary", icon="balance-scale")
        self.table = W.HTML()

        self.fig = PlotView(empty_figure("distance from initialization ‖w_t − w_0‖",
                                         "press train: each layer's distance is drawn here as it trains"),
                            height=420)
        self.acc_fig = PlotView(empty_figure("test accuracy: small vs large batch",
                                             "press compare: mean test accuracy per regime over the seeds"),
                                height=420)

        self.train_button.on_click(self._on_train)
        self.stop_button.on_click(self._on_stop)
        self.compare_button.on_click(self._on_compare)

        run_box = W.VBox([W.HBox([W.VBox([self.batch, self.lr, self.steps, self.seed]),
                                  W.VBox([self.ghost, self.scaling, self.augment, self.hadamard])]),
                          W.HBox([self.train_button, self.stop_button]), self.status, self.fig.ui])
        gap_box = W.VBox([W.HBox([W.VBox([self.small, self.large, self.epochs, self.seeds]), self.regimes]),
                          W.HBox([self.compare_button]), self.acc_fig.ui, self.table])
        self.tabs = W.Tab(children=[run_box, gap_box])
        self.tabs.set_title(0, "distance from init")
        self.tabs.set_title(1, "small vs large batch")
        self.ui = self.tabs

    # -- running work off the UI thread ---------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _start(self, fn) -> None:
        if self.busy:
            self.status.value = "<b>busy</b>: stop the current run first"
            return
        self._stop.clear()
        self.error = None
        self.train_button.disabled = self.compare_button.disabled = True
        self.stop_button.disabled = False

        def work() -> None:
            try:
                fn()
            except Exception as exc:  # shown to the user, kept for tests
                self.error = f"{type(exc).__name__}: {exc}"
                self.status.value = f"<b style='color:#b00'>{self.error}</b>"
                traceback.print_exc()
            finally:
                self.train_button.disabled = self.compare_button.disabled = False
                self.stop_button.disabled = True

        if self.threaded:
            self._thread = threading.Thread(target=work, name="DynamicsView", daemon=True)
            self._thread.start()
        else:
            work()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the background run finishes; True when it did."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.busy

    def _on_stop(self, _=None) -> None:
        self._stop.set()
        self.status.value = "stopping…"

    # -- one training run, live ---------------------------------------------------------------------------------
    def _on_train(self, _=None) -> None:
        self._start(self._train)

    def _train(self) -> None:
        with self._lock:
            self._rows = []
        self._last_draw = 0.0
        self.fits = None
        self.fig.show(empty_figure("distance from initialization ‖w_t − w_0‖", "training: first steps…"))
        t0 = time.perf_counter()
        total = int(self.steps.value)

        def on_record(rows: list[dict]) -> None:
            with self._lock:
                self._rows.extend(rows)
            now = time.perf_counter()
            if now - self._last_draw >= self.refresh_s:
                self._last_draw = now
                self._draw_live()
                self.status.value = f"step {rows[-1]['step']} / {total} · {now - t0:.1f} s"

        res = train(self.handle, batch_size=int(self.batch.value), lr=float(self.lr.value), steps=total,
                    ghost_batch=self.ghost.value, lr_scaling=self.scaling.value,
                    batch_augmentation=int(self.augment.value), hadamard_classifier=bool(self.hadamard.value),
                    seed=int(self.seed.value), stop=self._stop, on_record=on_record, progress=False)
        self.result = res
        self._draw_live()
        self._draw_fits()
        fin = res.final()
        how = "stopped" if res.stopped or res.interrupted else "done"
        best = "" if self.fits is None else f" · best growth law: <b>{self.fits.attrs['best']}</b>"
        self.status.value = (f"{how} after {res.steps} steps ({res.seconds:.1f} s) · test accuracy "
                             f"{100 * fin.get('test_acc', float('nan')):.2f}%{best}")

    def _draw_live(self) -> None:
        with self._lock:
            df = pd.DataFrame(self._rows)
        if df.empty:
            return
        self.fig.show(distance_figure(df))

    def _draw_fits(self) -> None:
        with self._lock:
            df = pd.DataFrame(self._rows)
        try:
            self.fits = fit_growth(df)
        except Exception:  # too few steps to fit: keep the measured curves only
            self.fits = None
            return
        steps = sorted(s for s in df["step"].unique() if s >= 1)
        self.fig.show(distance_figure(df, curves=predict_growth(self.fits, steps), fits=self.fits))

    # -- small vs large batch ---------------------------------------------------------------------------------
    def _on_compare(self, _=None) -> None:
        self._start(self._compare)

    def _compare(self) -> None:
        self.runs = pd.DataFrame()
        self.acc_fig.show(accuracy_figure(self.runs))
        regimes = list(self.regimes.value) or ["small", "large"]
        seeds = range(int(self.seeds.value))
        n = len(regimes) * len(seeds)

        def on_result(row: dict) -> None:
            self.runs = pd.concat([self.runs, pd.DataFrame([row])], ignore_index=True)
            self.acc_fig.show(accuracy_figure(self.runs))
            self.status.value = f"compare: {len(self.runs)} / {n} runs done"

        compare_regimes(self.handle, small_batch=int(self.small.value), large_batch=int(self.large.value),
                        epochs=float(self.epochs.value), lr=float(self.lr.value), seeds=seeds, regimes=regimes,
                        stop=self._stop, on_result=on_result, progress=False)
        table = summarize_regimes(self.runs)
        if len(table):
            self.table.value = table[["regime", "batch_size", "seeds", "steps", "test_acc"]].to_html(index=False)
        self.status.value = f"compare: {len(self.runs)} / {n} runs done" + (" (stopped)" if self._stop.is_set() else "")


__all__ = ["DynamicsView"]
