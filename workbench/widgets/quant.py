"""``QuantErrorView(handle)``: per-layer quantization error and bit allocation in one view.

A heatmap of layers × formats (SQNR), a bar chart for the chosen format, a histogram of the chosen layer's weights
with the format's scaled grid overlaid, and a budget slider that re-solves the bit allocation (Hubara et al. 2020).
A thin shell over :func:`workbench.quant.layer_error`, :func:`workbench.quant.sensitivity`,
:func:`workbench.quant.allocate_bits` and :mod:`workbench.viz.quant`; each figure is one
:class:`~workbench.widgets.plot.PlotView` created once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import numpy as np

from workbench.formats import compute_scale, eligible_layers, original_weight, parse_format, representable_values
from workbench.quant.error import layer_error
from workbench.quant.sensitivity import allocate_bits, layer_sizes
from workbench.viz.quant import allocation_bar, sqnr_bar, sqnr_heatmap, weight_histogram
from workbench.widgets.plot import PlotView

DEFAULT_FORMATS = ("fp8_e4m3", "int8", "int4", "binary")
METRICS = ("output_sqnr_db", "weight_sqnr_db", "output_nl2", "output_cosine", "delta_loss")


class QuantErrorView:
    """Widget over a model handle; ``.ui`` is the widget tree.

    Controls: ``mode`` (isolated / cumulative), ``metric``, ``fmt`` (format of the bar chart and histogram),
    ``layer`` (histogram), ``budget`` (bytes; re-solves the allocation). State: ``errors`` (the layer_error
    table for the current mode), ``sens`` (sensitivity), ``allocation`` (the latest :class:`Allocation`).
    Figures: ``heatmap``, ``bar``, ``hist``, ``alloc_fig``.
    """

    def __init__(self, handle: Any, formats: Sequence[str] = DEFAULT_FORMATS, batches: Any = None,
                 measure: bool = False) -> None:
        self.handle = handle
        self.formats = [parse_format(f).name for f in formats]
        self.batches = batches
        self.measure = measure
        self._errors: dict[str, Any] = {}
        layers = list(eligible_layers(handle.model))
        self.mode = W.ToggleButtons(options=["isolated", "cumulative"], value="isolated", description="mode")
        self.metric = W.Dropdown(options=list(METRICS), value="output_sqnr_db", description="metric")
        self.fmt = W.Dropdown(options=self.formats, value=self.formats[0], description="format")
        self.layer = W.Dropdown(options=layers, value=layers[0] if layers else None, description="layer")
        # sensitivity = the isolated rows' ΔL (only that layer's weights in the format, handle.evaluate())
        iso = self.errors
        self.sens = iso[["layer", "format", "delta_loss"]].copy()
        self.sens.attrs["baseline"] = iso.attrs.get("baseline", {})
        self.sizes = layer_sizes(handle, self.formats)
        per_layer = self.sizes.groupby("layer")["size_bytes"]
        lo, hi = float(per_layer.min().sum()), float(per_layer.max().sum())
        self.budget = W.FloatSlider(value=(lo + hi) / 2, min=lo, max=hi, step=max((hi - lo) / 200, 1e-6),
                                    description="budget (B)", continuous_update=False, readout_format=",.0f")
        self.status = W.HTML()
        self.table = W.HTML()
        self.heatmap = PlotView(height=400, flex="1 1 0%", width="auto", min_width="360px")
        self.bar = PlotView(height=320, width="50%")
        self.hist = PlotView(height=320, width="50%")
        self.alloc_fig = PlotView(height=320, width="50%")
        self.allocation = None
        for w in (self.mode, self.metric):
            w.observe(lambda c: self._draw_errors(), names="value")
        self.fmt.observe(lambda c: (self._draw_bar(), self._draw_hist()), names="value")
        self.layer.observe(lambda c: self._draw_hist(), names="value")
        self.budget.observe(lambda c: self._solve(), names="value")
        controls = W.VBox([self.mode, self.metric, self.fmt, self.layer, self.budget, self.status])
        self.table.layout = W.Layout(width="50%", overflow="auto")
        full = W.Layout(width="100%")
        self.ui = W.VBox([W.HBox([controls, self.heatmap.ui], layout=full),
                          W.HBox([self.bar.ui, self.hist.ui], layout=W.Layout(width="100%")),
                          W.HBox([self.alloc_fig.ui, self.table], layout=W.Layout(width="100%"))])
        self._draw_errors()
        self._draw_hist()
        self._solve()

    @property
    def errors(self):
        """The layer_error table of the current mode (computed once per mode)."""
        m = self.mode.value
        if m not in self._errors:
            self._errors[m] = layer_error(self.handle, self.formats, mode=m, batches=self.batches, progress=False)
        return self._errors[m]

    def _draw_errors(self) -> None:
        self.heatmap.show(sqnr_heatmap(self.errors, self.metric.value))
        self._draw_bar()

    def _draw_bar(self) -> None:
        self.bar.show(sqnr_bar(self.errors, self.fmt.value, self.metric.value))

    def _draw_hist(self) -> None:
        if self.layer.value is None:
            return
        mod = eligible_layers(self.handle.model)[self.layer.value]
        w = original_weight(mod).float()  # the unformatted weight
        f = parse_format(self.fmt.value)
        scale = compute_scale(w, f.number, "tensor")
        grid = representable_values(f).numpy() * float(scale)
        self.hist.show(weight_histogram(w.numpy(), grid, f.name, self.layer.value))

    def _solve(self) -> None:
        try:
            a = allocate_bits(self.sens, self.sizes, self.budget.value, handle=self.handle if self.measure else None)
        except Exception as e:  # noqa: BLE001 - shown to the user, not swallowed silently
            self.status.value = f"<span style='color:#b00'>{e}</span>"
            return
        self.allocation = a
        self.alloc_fig.show(allocation_bar(a.table))
        measured = f", measured loss {a.measured_loss:.4f}" if np.isfinite(a.measured_loss) else ""
        self.status.value = (f"{a.size_bytes:,.0f} B of {self.budget.value:,.0f} B; predicted loss "
                             f"{a.predicted_loss:.4f}{measured}")
        self.table.value = a.table.to_html(index=False, float_format=lambda v: f"{v:.4g}")


__all__ = ["QuantErrorView"]
