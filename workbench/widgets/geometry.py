"""``GeometryView``: shift a digit and watch the three bundled models' class probabilities; train fixed-size and
mixed-size models and slide the test size.

A thin shell over :mod:`workbench.geometry` and the figures of :mod:`workbench.viz.geometry`. The shift sliders
(``dx``, ``dy``, circular or linear) redraw the image and the class probabilities of ``digits32-cnn-max``,
``-blur`` and ``-aps`` at once (three forward passes of one image). "train fixed & mixed" trains a fixed-size (32)
and a Mix & Match (16/24/32/40) model through :class:`~workbench.widgets._async.LatestJobRunner` (the kernel stays
responsive; "cancel" stops at the next step); the test-size slider then reads both models' accuracy and the FLOPs
per image at that size from the computed table, and the curve shows every size.

Every plot is a :class:`~workbench.widgets.plot.PlotView` (the kernel holds the figure on screen, so a reload
redraws it); a slider move redraws the two small shift figures whole.

The view takes the dashboard's :class:`~workbench.models.ModelHandle`: when it is one of the three bundled 32×32
models its test digits are used; any other handle (an 8×8 or flat model) is replaced by ``digits32-cnn-aps``'s data
and the status line says so.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W
import pandas as pd

from workbench.config import quick_mode
from workbench.errors import WorkbenchError
from workbench.geometry import BUNDLED_MODELS, DEFAULT_SIZES, accuracy_vs_size, mix_and_match, shifted_probabilities
from workbench.geometry.shift import shift_images
from workbench.viz.figure import empty_figure
from workbench.viz.geometry import image_figure, probabilities_figure, size_accuracy_figure
from workbench.widgets._async import JobContext, LatestJobRunner, RunnerView
from workbench.widgets.plot import PlotView

TEST_SIZES = (8, 16, 24, 32, 40, 48)


class GeometryView(RunnerView):
    """Shift invariance and image size on 32×32 digits; ``.ui`` is the widget tree.

    ``handle``: a ModelHandle or spec (one of the bundled ``digits32-cnn-*``), or None. ``sync=True`` runs the
    training job inline (headless tests); ``wait()`` blocks until it is done.
    """

    def __init__(self, handle: Any = None, *, quick: bool | None = None, sync: bool = False) -> None:
        import workbench

        note = ""
        if isinstance(handle, str):
            handle = workbench.load_model(handle)
        if handle is None or getattr(handle, "name", None) not in BUNDLED_MODELS:
            if handle is not None:
                note = (f" ({getattr(handle, 'name', type(handle).__name__)} is not one of the 32×32 geometry "
                        "models; showing the bundled digits32-cnn-* models)")
            handle = workbench.load_model("digits32-cnn-aps")
        self.handle = handle
        self.handles = {n: (handle if n == handle.name else workbench.load_model(n)) for n in BUNDLED_MODELS}
        self.x_test, self.y_test = handle.test_data()
        self.quick = quick_mode(quick)
        self.sizes_table: pd.DataFrame | None = None
        self.error: BaseException | None = None

        size = int(self.x_test.shape[-1])
        self.example = W.IntSlider(value=0, min=0, max=len(self.x_test) - 1, description="test image")
        self.dx = W.IntSlider(value=0, min=-(size - 1), max=size - 1, description="dx")
        self.dy = W.IntSlider(value=0, min=-(size - 1), max=size - 1, description="dy")
        self.mode = W.ToggleButtons(options=["circular", "linear"], value="circular", description="shift")
        self.image = PlotView(height=280, width="300px", min_width="280px")
        self.bars = PlotView(height=320)
        self.readout = W.HTML()

        self.steps = W.BoundedIntText(value=60 if self.quick else 300, min=1, max=5000, description="steps")
        self.train_button = W.Button(description="train fixed & mixed", icon="play",
                                     tooltip="train a fixed-size (32) and a mixed-size (16/24/32/40) CNN, same steps")
        self.cancel_button = W.Button(description="cancel", icon="stop", disabled=True)
        self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0, layout=W.Layout(width="200px"))
        self.test_size = W.SelectionSlider(options=list(TEST_SIZES), value=32, description="test size",
                                           disabled=True)
        self.size_readout = W.HTML("<i>press train to compare fixed- and mixed-size training</i>")
        self.curve = PlotView(empty_figure("accuracy against test size", "press train fixed & mixed"), height=360)
        self.status = W.HTML(f"<i>move the shift sliders</i>{note}")

        self.runner = LatestJobRunner(sync=sync, on_progress=self._on_progress, on_busy=self._on_busy,
                                      name="workbench-geometry")
        for w in (self.example, self.dx, self.dy, self.mode):
            w.observe(lambda _: self.draw_shift(), names="value")
        self.test_size.observe(lambda _: self.show_size(), names="value")
        self.train_button.on_click(self._on_train)
        self.cancel_button.on_click(lambda _: self.runner.cancel())
        shift_box = W.HBox([W.VBox([self.example, self.dx, self.dy, self.mode, self.readout]), self.image.ui])
        size_box = W.VBox([W.HBox([self.steps, self.train_button, self.cancel_button, self.progress]),
                           self.test_size, self.size_readout, self.curve.ui])
        self.ui = W.VBox([W.HTML("<b>Shift a digit</b>"), shift_box, self.bars.ui,
                          W.HTML("<b>Train with mixed image sizes</b>"), size_box, self.status])
        self.draw_shift()

    # ----------------------------------------------------------------------------------------------- shifts
    def probabilities(self) -> pd.DataFrame:
        """``model, class, probability`` of the three models for the current image and shift."""
        x = self.x_test[int(self.example.value)]
        frames = [shifted_probabilities(h.model, x, int(self.dx.value), int(self.dy.value), self.mode.value)
                  .assign(model=name) for name, h in self.handles.items()]
        return pd.concat(frames, ignore_index=True)

    def draw_shift(self) -> None:
        """Redraw the shifted image and the three models' probabilities."""
        i, dx, dy, mode = int(self.example.value), int(self.dx.value), int(self.dy.value), self.mode.value
        try:
            shifted = shift_images(self.x_test[i:i + 1], dx, dy, mode)[0, 0].numpy()
            probs = self.probabilities()
        except WorkbenchError as e:
            self.status.value = f"<b>error:</b> {e}"
            return
        self.current = probs
        self.image.show(image_figure(shifted, title=f"a {int(self.y_test[i])}, shifted ({dx}, {dy}) {mode}"))
        self.bars.show(probabilities_figure(probs))
        cells = []
        for name, g in probs.groupby("model", sort=False):
            top = g.sort_values("probability", ascending=False).iloc[0]
            cells.append(f"{name.removeprefix('digits32-cnn-')}: <b>{int(top['class'])}</b> "
                         f"({top['probability']:.2f})")
        self.readout.value = "predicted: " + " · ".join(cells)

    # ----------------------------------------------------------------------------------------------- sizes
    def _on_train(self, _button: Any = None) -> None:
        steps = int(self.steps.value)
        self.error = None
        self.status.value = f"<i>training a fixed-size and a mixed-size model, {steps} steps each …</i>"

        def job(ctx: JobContext):
            stop = lambda: ctx.cancelled_reason() is not None  # noqa: E731
            rows = []
            for k, (label, sizes) in enumerate((("fixed", (32,)), ("mixed", DEFAULT_SIZES))):
                res = mix_and_match(sizes, steps, seed=0, stop=stop)
                ctx.check()
                acc = accuracy_vs_size(res.model, TEST_SIZES).assign(training=label)
                rows.append(acc)
                ctx.progress((k + 1) / 2, f"{label} done")
            return pd.concat(rows, ignore_index=True).rename(columns={"size": "test_size"})

        self.runner.submit(job, on_done=self._show_sizes, on_error=self._on_error,
                           on_cancel=lambda why: setattr(self.status, "value", f"<i>{why}</i>"), label="mix & match")

    def _show_sizes(self, table: pd.DataFrame) -> None:
        self.sizes_table = table
        flops = table[table["training"] == "fixed"][["test_size", "flops"]].rename(columns={"test_size": "size"})
        self.curve.show(size_accuracy_figure(
            table, flops=flops, title="accuracy against test size: fixed (32) vs mixed (16/24/32/40) training"))
        self.test_size.disabled = False
        self.status.value = "trained: slide the test size"
        self.show_size()

    def show_size(self) -> None:
        """Write both models' accuracy and the FLOPs per image at the chosen test size."""
        if self.sizes_table is None:
            return
        s = int(self.test_size.value)
        t = self.sizes_table[self.sizes_table["test_size"] == s].set_index("training")
        self.size_readout.value = (f"test size {s}×{s}: fixed <b>{t.loc['fixed', 'accuracy']:.3f}</b>, mixed "
                                   f"<b>{t.loc['mixed', 'accuracy']:.3f}</b>; "
                                   f"{t.loc['fixed', 'flops'] / 1e6:.2f} MFLOPs per image "
                                   f"({t.loc['fixed', 'rel_flops']:.0%} of size {max(TEST_SIZES)})")


__all__ = ["GeometryView", "TEST_SIZES"]
