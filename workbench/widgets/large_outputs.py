"""``LargeOutputsView``: train an encoder with a very wide output layer, pick the width and the sampler, and watch
P@1 against training time, the seconds per step and the fraction of outputs touched.

A thin shell over :mod:`workbench.hashing.large_outputs` and :mod:`workbench.viz.large_outputs`. "train & compare"
trains once per chosen output layer (:func:`~workbench.hashing.large_outputs.train_output_layer`) through
:class:`~workbench.widgets._async.LatestJobRunner` (the kernel stays responsive, a newer request supersedes an older
one, "cancel" stops the training loop at its next step).

The lab brings its own data: the **synthetic** power-law extreme-classification task at the chosen width, or the
**real** next-token task over the installed packages' docstrings (30,522 MiniLM tokens). The dashboard's model
handle is not used; the status line says so.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W
import pandas as pd

from workbench.config import quick_mode
from workbench.hashing.large_outputs import LAYER_KINDS, speedups, train_output_layer
from workbench.hashing.xc import docstring_tokens, synthetic_xc
from workbench.viz.figure import empty_figure
from workbench.viz.large_outputs import accuracy_time_figure, active_fraction_figure
from workbench.widgets._async import JobContext, LatestJobRunner, RunnerView
from workbench.widgets.plot import PlotView

WIDTHS = (1_000, 10_000, 100_000)


def _kinds() -> list[str]:
    try:
        import workbench.hashing.slide  # noqa: F401
    except ImportError:
        return [k for k in LAYER_KINDS if k != "hashed"]
    return list(LAYER_KINDS)


class LargeOutputsView(RunnerView):
    """Large output layers on the CPU; ``.ui`` is the widget tree. ``sync=True`` runs the job inline (headless
    tests); ``wait()`` blocks until it is done either way."""

    def __init__(self, handle: Any = None, *, quick: bool | None = None, sync: bool = False) -> None:
        self.handle = handle
        self.quick = quick_mode(quick)
        self.table: pd.DataFrame | None = None
        self.error: BaseException | None = None
        self.data_choice = W.Dropdown(options=["synthetic", "docstrings"], value="synthetic", description="data")
        self.width = W.Dropdown(options=[(f"{w:,}", w) for w in WIDTHS], value=WIDTHS[0] if self.quick else 10_000,
                                description="width")
        self.kinds = W.SelectMultiple(options=_kinds(), value=("full", "lsh"), rows=6, description="layers")
        self.epochs = W.BoundedFloatText(value=1.0 if self.quick else 2.0, min=0.05, max=50, step=0.5,
                                         description="epochs")
        self.samples = W.BoundedIntText(value=4_000 if self.quick else 50_000, min=500, max=2_000_000, step=1000,
                                        description="train size")
        self.negatives = W.IntSlider(value=64, min=1, max=512, description="negatives")
        self.bits = W.IntSlider(value=8, min=1, max=16, description="bits K")
        self.tables = W.IntSlider(value=16, min=1, max=64, description="tables L")
        self.train_button = W.Button(description="train & compare", icon="play",
                                     tooltip="train the encoder + each chosen output layer (seed 0)")
        self.cancel_button = W.Button(description="cancel", icon="stop", disabled=True)
        self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0, layout=W.Layout(width="200px"))
        name = getattr(handle, "name", None)
        note = f" (the lab brings its own data; the model {name} is not used)" if name else ""
        self.status = W.HTML(f"<i>pick a width and the output layers, then press train</i>{note}")
        self.accuracy = PlotView(empty_figure("P@1 against training time", "press train & compare"), height=380)
        self.active = PlotView(empty_figure("Fraction of outputs touched", "press train & compare"), height=340)
        self.summary = W.HTML()
        self.runner = LatestJobRunner(sync=sync, on_progress=self._on_progress, on_busy=self._on_busy,
                                      name="workbench-large-outputs")
        self.train_button.on_click(self._on_train)
        self.cancel_button.on_click(lambda _: self.runner.cancel())
        controls = W.HBox([W.VBox([self.data_choice, self.width, self.epochs, self.samples]),
                           W.VBox([self.kinds]), W.VBox([self.negatives, self.bits, self.tables])])
        actions = W.HBox([self.train_button, self.cancel_button, self.progress])
        self.ui = W.VBox([controls, actions, self.status, self.summary, self.accuracy.ui, self.active.ui])

    def _settings(self) -> dict[str, Any]:
        return {"data": str(self.data_choice.value), "width": int(self.width.value), "kinds": tuple(self.kinds.value),
                "epochs": float(self.epochs.value), "samples": int(self.samples.value),
                "kw": {"negatives": int(self.negatives.value), "K": int(self.bits.value),
                       "L": int(self.tables.value)}}

    def _on_train(self, _button: Any = None) -> None:
        s = self._settings()
        if not s["kinds"]:
            self.status.value = "<b>choose at least one output layer</b>"
            return
        self.error = None
        self.status.value = "<i>training …</i>"

        def job(ctx: JobContext) -> pd.DataFrame:
            if s["data"] == "synthetic":
                data = synthetic_xc(s["width"], s["samples"], 500 if self.quick else 2_000, seed=0)
            else:
                data = docstring_tokens()
                data.x_train, data.y_train = data.x_train[: s["samples"]], data.y_train[: s["samples"]]
            frames = []
            for i, kind in enumerate(s["kinds"]):
                ctx.check()
                frames.append(train_output_layer(data, kind, epochs=s["epochs"], eval_samples=500 if self.quick else 2_000,
                                                 eval_every=max(0.25, s["epochs"] / 4), **s["kw"],
                                                 stop=lambda: ctx.cancelled_reason() is not None))
                ctx.progress((i + 1) / len(s["kinds"]), f"{kind} done")
            return pd.concat(frames, ignore_index=True)

        self.runner.submit(job, on_done=self._show, on_error=self._on_error,
                           on_cancel=lambda why: setattr(self.status, "value", f"<i>{why}</i>"), label="large outputs")

    def _show(self, table: pd.DataFrame) -> None:
        self.table = table
        width = int(table["width"].iloc[0])
        self.accuracy.show(accuracy_time_figure(table, title=f"P@1 against training time, {width:,} outputs "
                                                             f"({table['data'].iloc[0]})"))
        self.active.show(active_fraction_figure(table))
        base = "full" if "full" in set(table["kind"]) else "dense" if "dense" in set(table["kind"]) else None
        summary = speedups(table, baseline=base) if base else table.groupby("kind").last().reset_index()
        cols = [c for c in ("kind", "seconds_per_step", "seconds_per_epoch", "p_at_1", "active_fraction", "speedup",
                            "p_at_1_gap") if c in summary.columns]
        self.summary.value = summary[cols].to_html(index=False, float_format=lambda v: f"{v:.4g}")
        best = summary.sort_values("p_at_1", ascending=False).iloc[0]
        self.status.value = (f"done: best P@1 <b>{best['kind']}</b> {best['p_at_1']:.3f}; seconds exclude the "
                             "evaluations")


__all__ = ["LargeOutputsView"]
