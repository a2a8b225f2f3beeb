"""``ZeroShotView``: a digit and its soft label, the temperature and unseen-mass sliders, and the seen/unseen
accuracy trade-off of the three zero-shot methods.

A thin shell over :mod:`workbench.zeroshot` and the figures of :mod:`workbench.viz.zeroshot`. The sliders redraw
the soft label at once (a softmax over ten classes); "train & compare" trains the soft-label network and fits DAP
and ESZSL on the chosen unseen split through :class:`~workbench.widgets._async.LatestJobRunner` (the kernel stays
responsive, a newer request supersedes an older one, "cancel" stops the training loop at its next step), then draws
the calibrated-stacking trade-off curves and the metrics table.

The view takes the dashboard's :class:`~workbench.models.ModelHandle`: it uses the handle's digits data and
architecture (never its weights, which have seen every class). A handle that is not a digits classifier is
replaced by ``digits-mlp``, and the status line says so.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W
import numpy as np

from workbench.config import quick_mode
from workbench.errors import WorkbenchError
from workbench.viz.figure import empty_figure
from workbench.viz.zeroshot import digit_figure, soft_label_figure, tradeoff_figure
from workbench.widgets._async import JobContext, LatestJobRunner, RunnerView
from workbench.widgets.plot import PlotView
from workbench.zeroshot import (
    DEFAULTS,
    check_attributes,
    compare_methods,
    digits_attributes,
    soft_label_matrix,
    unseen_splits,
)


class ZeroShotView(RunnerView):
    """Soft labels and zero-shot accuracy on the digits; ``.ui`` is the widget tree.

    ``handle``: a ModelHandle (``digits-mlp`` / ``digits-cnn``), a spec, or None (``digits-mlp``). ``sync=True`` runs
    the training job inline (headless tests); ``wait()`` blocks until the job is done either way.
    """

    def __init__(self, handle: Any = None, *, attributes: Any = None, n_splits: int = 5, quick: bool | None = None,
                 sync: bool = False) -> None:
        import workbench

        note = ""
        self.attributes = digits_attributes() if attributes is None else attributes
        try:
            handle = workbench.load_model("digits-mlp") if handle is None else handle
            if isinstance(handle, str):
                handle = workbench.load_model(handle)
            _, y = handle.train_data()
            check_attributes(self.attributes, int(y.max()) + 1)
        except (WorkbenchError, AttributeError, TypeError) as e:
            note = f" ({getattr(handle, 'name', handle)} is not a digits classifier: {e}; using digits-mlp)"
            handle = workbench.load_model("digits-mlp")
        self.handle = handle
        self.x_train, self.y_train = (t.numpy() for t in handle.train_data())
        self.splits = unseen_splits(n_splits)
        self.quick = quick_mode(quick)
        self.comparison = None
        self.error: BaseException | None = None

        self.split = W.Dropdown(options=[(s.name, i) for i, s in enumerate(self.splits)], value=0,
                                description="split")
        self.example = W.IntSlider(value=0, min=0, max=1, description="example", continuous_update=True)
        self.temperature = W.FloatLogSlider(value=DEFAULTS["temperature"], base=10, min=-2, max=1, step=0.05,
                                            description="temperature", readout_format=".3g")
        self.mass = W.FloatSlider(value=DEFAULTS["unseen_mass"], min=0.0, max=0.95, step=0.01,
                                  description="unseen mass")
        self.epochs = W.BoundedIntText(value=3 if self.quick else DEFAULTS["epochs"], min=1, max=500,
                                       description="epochs")
        self.train_button = W.Button(description="train & compare", icon="play",
                                     tooltip="train the soft-label network, fit DAP and ESZSL, on this split")
        self.cancel_button = W.Button(description="cancel", icon="stop", disabled=True)
        self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0, layout=W.Layout(width="200px"))
        self.status = W.HTML(f"<i>move the sliders; press train to compare the methods</i>{note}")
        self.digit = PlotView(height=260, width="280px", min_width="280px")
        self.bars = PlotView(height=340)
        self.curve = PlotView(empty_figure("Seen vs unseen accuracy", "press train & compare"), height=420)
        self.table = W.HTML()

        self.runner = LatestJobRunner(sync=sync, on_progress=self._on_progress, on_busy=self._on_busy,
                                      name="workbench-zeroshot")
        self.split.observe(lambda _: self._split_changed(), names="value")
        for w in (self.example, self.temperature, self.mass):
            w.observe(lambda _: self.draw_soft_label(), names="value")
        self.train_button.on_click(self._on_train)
        self.cancel_button.on_click(lambda _: self.runner.cancel())
        controls = W.VBox([self.split, self.example, self.temperature, self.mass])
        top = W.HBox([controls, self.digit.ui])
        actions = W.HBox([self.epochs, self.train_button, self.cancel_button, self.progress])
        self.ui = W.VBox([top, self.bars.ui, actions, self.status, self.curve.ui, self.table])
        self._split_changed()

    # --------------------------------------------------------------------------------------------- soft labels
    @property
    def current_split(self):
        return self.splits[int(self.split.value)]

    def _seen_indices(self) -> np.ndarray:
        return np.flatnonzero(~self.current_split.unseen_mask()[self.y_train])

    def _split_changed(self) -> None:
        self.example.max = max(0, len(self._seen_indices()) - 1)
        self.draw_soft_label()

    def draw_soft_label(self) -> None:
        """Redraw the chosen seen training digit and its soft label for the current sliders."""
        sp = self.current_split
        idx = self._seen_indices()[min(int(self.example.value), len(self._seen_indices()) - 1)]
        y = int(self.y_train[idx])
        table = soft_label_matrix(self.attributes, float(self.temperature.value), float(self.mass.value), unseen=sp)
        self.soft_label = table[y]
        self.digit.show(digit_figure(self.x_train[idx], title=f"a seen {y} (training example {idx})"))
        self.bars.show(soft_label_figure(self.soft_label, y, sp.unseen))

    # --------------------------------------------------------------------------------------------- training
    def _settings(self) -> dict[str, Any]:
        return {"temperature": float(self.temperature.value), "unseen_mass": float(self.mass.value),
                "epochs": int(self.epochs.value)}

    def _on_train(self, _button: Any = None) -> None:
        sp, settings, handle, attributes = self.current_split, self._settings(), self.handle, self.attributes
        self.error = None
        self.status.value = f"<i>training on {sp.name} …</i>"

        def job(ctx: JobContext):
            done = []

            def on_result(r):
                done.append(r)
                ctx.progress(len(done) / 3, f"{r.method} done")

            return compare_methods(handle, attributes, [sp], seeds=(0,), stop=lambda: ctx.cancelled_reason()
                                   is not None, on_result=on_result, **settings)

        self.runner.submit(job, on_done=self._show, on_error=self._on_error,
                           on_cancel=lambda why: setattr(self.status, "value", f"<i>{why}</i>"), label="zero-shot")

    def _show(self, comparison: Any) -> None:
        self.comparison = comparison
        self.curve.show(tradeoff_figure(comparison.tradeoff(),
                                        title=f"Seen vs unseen accuracy on {self.current_split.name} (circles: no calibration)"))
        t = comparison.runs[["method", "zsl", "seen", "unseen", "H", "ausuc", "seconds"]]
        self.table.value = t.to_html(index=False, float_format=lambda v: f"{v:.3f}")
        best = comparison.runs.sort_values("H", ascending=False).iloc[0]
        self.status.value = (f"GZSL harmonic mean: best <b>{best.method}</b> {best.H:.3f}; ZSL accuracy (unseen "
                             f"classes only) in the table")


__all__ = ["ZeroShotView"]
