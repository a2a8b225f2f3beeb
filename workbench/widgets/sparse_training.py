"""``SparseTrainingView``: pick a structure and a method, train the handle's model sparse, and watch a layer's
mask evolve (the frame slider re-shows the heatmap of the chosen recorded step), the accuracy and the search space
over training. Every plot is a :class:`~workbench.widgets.plot.PlotView` (survives re-runs and page reloads).

A thin shell over :func:`workbench.sparse_training.train_sparse` and :mod:`workbench.viz.sparse_training`; the
training runs through :class:`~workbench.widgets._async.LatestJobRunner` (the kernel stays responsive, a newer
request supersedes an older one, "cancel" stops the loop at its next step). The handle's own model is never changed.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from workbench.config import quick_mode
from workbench.sparse_training import METHODS, train_sparse
from workbench.viz.figure import empty_figure
from workbench.viz.sparse_training import accuracy_figure, mask_frames_figure, search_space_figure
from workbench.widgets._async import JobContext, LatestJobRunner, RunnerView
from workbench.widgets.plot import PlotView

STRUCTURES = ("block4x4@80%", "block8x8@80%", "block16x16@80%", "2:4", "4:8", "2:4-T", "unstructured 10%")


class SparseTrainingView(RunnerView):
    """Sparse training of ``handle``'s model (a ModelHandle or a spec; None: ``digits-gru``); ``.ui`` is the widget
    tree. ``sync=True`` runs the job inline (headless tests); ``wait()`` blocks until it is done."""

    def __init__(self, handle: Any = None, *, quick: bool | None = None, sync: bool = False) -> None:
        import workbench

        if handle is None or isinstance(handle, str):
            handle = workbench.load_model(handle or "digits-gru")
        self.handle = handle
        self.quick = quick_mode(quick)
        self.result = None
        self.error: BaseException | None = None
        self.structure = W.Dropdown(options=STRUCTURES, value=STRUCTURES[0], description="structure")
        self.method = W.Dropdown(options=METHODS, value="augmented", description="method")
        self.steps = W.BoundedIntText(value=60 if self.quick else 400, min=10, max=20000, description="steps")
        self.train_button = W.Button(description="train", icon="play")
        self.cancel_button = W.Button(description="cancel", icon="stop", disabled=True)
        self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0, layout=W.Layout(width="200px"))
        self.frame = W.IntSlider(value=0, min=0, max=0, description="frame", continuous_update=True)
        self.status = W.HTML("<i>pick a structure and a method, then train</i>")
        self.mask = PlotView(empty_figure("Mask over training", "press train"), height=420)
        self.accuracy = PlotView(empty_figure("Test accuracy over training", "press train"), height=360,
                                 width="50%")
        self.search = PlotView(empty_figure("Sparsity and search space over training", "press train"), height=360,
                               width="50%")
        self.runner = LatestJobRunner(sync=sync, on_progress=self._on_progress, on_busy=self._on_busy,
                                      name="workbench-sparse-training")
        self.train_button.on_click(self._on_train)
        self.cancel_button.on_click(lambda _: self.runner.cancel())
        self.frame.observe(lambda _: self._draw_frame(), names="value")
        actions = W.HBox([self.structure, self.method, self.steps, self.train_button, self.cancel_button,
                          self.progress])
        self.ui = W.VBox([actions, self.status, self.frame, self.mask.ui, W.HBox([self.accuracy.ui, self.search.ui])])

    def _on_train(self, _button: Any = None) -> None:
        handle, structure, method, steps = self.handle, self.structure.value, self.method.value, int(self.steps.value)
        self.error = None
        self.status.value = f"<i>training {method} under {structure} …</i>"

        def job(ctx: JobContext):
            def on_metrics(row: dict) -> None:
                ctx.progress(min(1.0, row["step"] / steps), f"step {row['step']}")

            return train_sparse(handle, structure, method, steps=steps, progress=False, on_metrics=on_metrics,
                                stop=lambda: ctx.cancelled_reason() is not None)

        self.runner.submit(job, on_done=self._show, on_error=self._on_error,
                           on_cancel=lambda why: setattr(self.status, "value", f"<i>{why}</i>"), label="sparse")

    def _show(self, result: Any) -> None:
        self.result = result
        self.frame.max = max(0, len(result.frames) - 1)
        self.frame.value = self.frame.max
        self._draw_frame()
        self.accuracy.show(accuracy_figure(result.table))
        self.search.show(search_space_figure(result.table))
        self.status.value = (f"{result.config['method']} · {result.config['structure']}: test accuracy "
                             f"<b>{result.accuracy:.3f}</b>, sparsity {result.sparsity:.3f}, weights ever in the "
                             f"mask {result.ever_entered:.3f} (layers {', '.join(result.config['layers'])})")

    def _draw_frame(self) -> None:
        if self.result is not None:
            self.mask.show(mask_frames_figure(self.result.frames, index=int(self.frame.value)))


__all__ = ["SparseTrainingView", "STRUCTURES"]
