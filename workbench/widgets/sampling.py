"""``SamplingView``: which samples a sampler favours, how its weights spread over training, whether the NW sketch
tracks the exact estimator, and accuracy against wall time for every sampler.

A thin shell over :mod:`workbench.sampling` and the figures of :mod:`workbench.viz.sampling`. "train & compare"
trains the handle's architecture from a seeded initialisation once per chosen sampler
(:func:`~workbench.sampling.compare_samplers`) through :class:`~workbench.widgets._async.LatestJobRunner` (the
kernel stays responsive, a newer request supersedes an older one, "cancel" stops the training loop at its next
step). The "show" dropdown picks the sampler whose favoured samples and weight histogram are drawn.

The view takes the dashboard's :class:`~workbench.models.ModelHandle` (its training data and architecture, never
its trained weights). A handle without labelled training data is replaced by ``digits-mlp``, and the status line
says so. Digits are drawn as images; other data as bars of the weights.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd

from workbench.config import quick_mode
from workbench.errors import WorkbenchError
from workbench.sampling import DEFAULTS, SAMPLERS, compare_samplers, sketch_frame
from workbench.viz.figure import empty_figure
from workbench.viz.sampling import (
    accuracy_time_figure,
    favoured_figure,
    sketch_scatter_figure,
    weight_histogram_figure,
)
from workbench.widgets._async import JobContext, LatestJobRunner, RunnerView
from workbench.widgets.plot import PlotView


class SamplingView(RunnerView):
    """Adaptive sampling on the handle's data; ``.ui`` is the widget tree.

    ``handle``: a classification ModelHandle, a spec, or None (``digits-mlp``). ``sync=True`` runs the training job
    inline (headless tests); ``wait()`` blocks until the job is done either way.
    """

    def __init__(self, handle: Any = None, *, quick: bool | None = None, sync: bool = False, top: int = 24) -> None:
        import workbench

        note = ""
        try:
            handle = workbench.load_model("digits-mlp") if handle is None else handle
            if isinstance(handle, str):
                handle = workbench.load_model(handle)
            x, y = handle.train_data()
            if len(x) != len(y) or y.ndim != 1:
                raise WorkbenchError("training labels are not one class per sample")
        except (WorkbenchError, AttributeError, TypeError) as e:
            note = f" ({getattr(handle, 'name', handle)} has no labelled training data: {e}; using digits-mlp)"
            handle = workbench.load_model("digits-mlp")
            x, y = handle.train_data()
        self.handle = handle
        self.x = x.reshape(len(x), -1).numpy()
        self.y = y.numpy()
        self.images = self.x.shape[1] == 64
        self.quick = quick_mode(quick)
        self.top = int(top)
        self.comparison = None
        self.error: BaseException | None = None

        self.samplers = W.SelectMultiple(options=list(SAMPLERS), value=tuple(SAMPLERS), rows=5,
                                         description="samplers")
        self.epochs = W.BoundedFloatText(value=1.0 if self.quick else 6.0, min=0.1, max=200, step=0.5,
                                         description="epochs")
        self.tables = W.IntSlider(value=DEFAULTS["L"], min=1, max=256, description="tables L")
        self.bits = W.IntSlider(value=DEFAULTS["K"], min=1, max=12, description="bits K")
        self.show = W.Dropdown(options=list(SAMPLERS), value="nw_sketch", description="show")
        self.train_button = W.Button(description="train & compare", icon="play",
                                     tooltip="train the architecture once per chosen sampler (seed 0)")
        self.cancel_button = W.Button(description="cancel", icon="stop", disabled=True)
        self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0, layout=W.Layout(width="200px"))
        self.status = W.HTML(f"<i>press train to compare the samplers on {handle.name}</i>{note}")
        self.favoured = PlotView(empty_figure("Favoured samples", "press train & compare"), height=320)
        self.histogram = PlotView(empty_figure("Weights over training", "press train & compare"), height=360)
        self.scatter = PlotView(empty_figure("Sketch vs exact NW", "press train & compare"), height=380)
        self.accuracy = PlotView(empty_figure("Accuracy vs wall time", "press train & compare"), height=400)
        self.table = W.HTML()

        self.runner = LatestJobRunner(sync=sync, on_progress=self._on_progress, on_busy=self._on_busy,
                                      name="workbench-sampling")
        self.train_button.on_click(self._on_train)
        self.cancel_button.on_click(lambda _: self.runner.cancel())
        self.show.observe(lambda _: self.draw_sampler(), names="value")
        controls = W.VBox([self.samplers, self.epochs, self.tables, self.bits])
        actions = W.HBox([self.train_button, self.cancel_button, self.progress, self.show])
        self.ui = W.VBox([controls, actions, self.status, self.accuracy.ui, self.table,
                          W.HBox([self.favoured.ui, self.histogram.ui]), self.scatter.ui])

    # --------------------------------------------------------------------------------------------- training
    def _settings(self) -> dict[str, Any]:
        K, L = int(self.bits.value), int(self.tables.value)
        return {"samplers": tuple(self.samplers.value), "epochs": float(self.epochs.value),
                "sampler_kw": {"nw_sketch": {"K": K, "L": L}, "nw": {"K": K, "L": L}}}

    def _on_train(self, _button: Any = None) -> None:
        settings, handle = self._settings(), self.handle
        if not settings["samplers"]:
            self.status.value = "<b>choose at least one sampler</b>"
            return
        self.error = None
        self.status.value = "<i>training …</i>"
        n = len(settings["samplers"])

        def job(ctx: JobContext):
            done = []

            def on_result(name, seed, res):
                done.append(name)
                ctx.progress(len(done) / n, f"{name} done")

            return compare_samplers(handle, seeds=(0,), stop=lambda: ctx.cancelled_reason() is not None,
                                    on_result=on_result, **settings)

        self.runner.submit(job, on_done=self._show, on_error=self._on_error,
                           on_cancel=lambda why: setattr(self.status, "value", f"<i>{why}</i>"), label="sampling")

    def _show(self, comparison: Any) -> None:
        self.comparison = comparison
        tta = comparison.time_to_accuracy() if "uniform" in set(comparison.table.sampler) else None
        target = None if tta is None else float(tta["target"].iloc[0])
        self.accuracy.show(accuracy_time_figure(
            comparison.table, target=target,
            title=f"Test accuracy vs training time on {self.handle.name}"
                  + ("" if target is None else " (dotted: uniform's final accuracy)")))
        costs = comparison.costs.set_index("sampler")[["sampler_seconds", "fraction", "final_acc"]]
        if tta is not None:
            costs = costs.join(tta.set_index("sampler")[["steps", "seconds", "seconds_vs_uniform"]])
        self.table.value = costs.reset_index().to_html(index=False, float_format=lambda v: f"{v:.4g}")
        ran = list(dict.fromkeys(comparison.table.sampler))
        self.show.options = ran
        self.show.value = "nw_sketch" if "nw_sketch" in ran else ran[0]
        self.draw_sampler()
        sketch = comparison.samplers.get(("nw_sketch", 0))
        if sketch is not None:
            self.scatter.show(sketch_scatter_figure(sketch_frame(sketch)))
        best = comparison.costs.sort_values("final_acc", ascending=False).iloc[0]
        self.status.value = (f"done: best final accuracy <b>{best.sampler}</b> {best.final_acc:.3f}; time to "
                             "uniform's final accuracy in the table (training seconds, evaluation excluded)")

    def favoured_frame(self, name: str) -> pd.DataFrame:
        """The ``top`` samples ``name`` weighs most after training: index, weight, label (and pixels)."""
        p = self.comparison.samplers[(name, 0)].weights().numpy()
        idx = np.argsort(-p, kind="stable")[: self.top]
        frame = pd.DataFrame({"index": idx, "weight": p[idx], "label": self.y[idx]})
        if self.images:
            frame["pixels"] = [self.x[i] for i in idx]
        return frame

    def draw_sampler(self) -> None:
        """Redraw the favoured samples and the weight histogram of the sampler chosen in "show"."""
        if self.comparison is None or (self.show.value, 0) not in self.comparison.samplers:
            return
        name = str(self.show.value)
        self.favoured.show(favoured_figure(self.favoured_frame(name),
                                           title=f"{name}: the {self.top} samples favoured now (size ∝ weight)"))
        snaps = self.comparison.snapshots
        self.histogram.show(weight_histogram_figure(
            snaps[(snaps.sampler == name) & (snaps.seed == 0)],
            title=f"{name}: sampling weights over training (N·p, 1 = uniform)"))


__all__ = ["SamplingView"]
