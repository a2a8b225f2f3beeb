"""``MaskView(handle)``: choose a layer and a sparsity pattern; see the mask over |w|, kept magnitude and mask
diversity across patterns, and a table beside them. A thin shell over :func:`workbench.sparsity.mask_report` and
:mod:`workbench.viz.sparsity`; every figure is one :class:`~workbench.widgets.plot.PlotView` created once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as W

from workbench.formats import eligible_layers, to_matrix
from workbench.sparsity.layerio import dense_weight
from workbench.sparsity.patterns import DEFAULT_PATTERNS, parse_pattern, pattern_mask
from workbench.sparsity.report import mask_report
from workbench.viz.sparsity import diversity_bar, kept_magnitude_bar, mask_heatmap
from workbench.widgets.plot import PlotView


class MaskView:
    """Widget over a model handle; ``.ui`` is the widget tree.

    Controls: ``layer`` (Dropdown), ``pattern`` (Dropdown), ``rows`` / ``cols`` (region size of the heatmap),
    ``row0`` / ``col0`` (its corner). Figures: ``heatmap``, ``kept_fig``, ``diversity_fig``; table: ``table``.
    """

    def __init__(self, handle: Any, patterns: Sequence[str] = DEFAULT_PATTERNS, n_batches: int = 1) -> None:
        self.handle = handle
        self.patterns = list(patterns)
        self.n_batches = n_batches
        self._reports: dict[str, Any] = {}
        layers = list(eligible_layers(handle.model))
        self.layer = W.Dropdown(options=layers, value=layers[0] if layers else None, description="layer")
        self.pattern = W.Dropdown(options=self.patterns, value="2:4" if "2:4" in self.patterns else self.patterns[0],
                                  description="pattern")
        self.rows = W.IntSlider(value=16, min=4, max=64, step=4, description="rows")
        self.cols = W.IntSlider(value=32, min=4, max=128, step=4, description="cols")
        self.row0 = W.IntText(value=0, description="row 0")
        self.col0 = W.IntText(value=0, description="col 0")
        self.status = W.HTML()
        self.table = W.HTML()
        self.heatmap = PlotView(height=360, flex="1 1 0%", width="auto", min_width="360px")
        self.kept_fig = PlotView(height=300, width="50%")
        self.diversity_fig = PlotView(height=300, width="50%")
        for w in (self.layer, self.rows, self.cols, self.row0, self.col0, self.pattern):
            w.observe(self._on_change, names="value")
        controls = W.VBox([self.layer, self.pattern, self.rows, self.cols, W.HBox([self.row0, self.col0]), self.status])
        self.ui = W.VBox([
            W.HBox([controls, self.heatmap.ui], layout=W.Layout(width="100%")),
            W.HBox([self.kept_fig.ui, self.diversity_fig.ui], layout=W.Layout(width="100%")),
            self.table,
        ])
        self.refresh()

    # -- state -------------------------------------------------------------------------------------------------
    def report(self, layer: str | None = None):
        """The mask report rows of one layer (computed once per layer)."""
        layer = layer or self.layer.value
        if layer not in self._reports:
            self._reports[layer] = mask_report(self.handle, self.patterns, layers=[layer], n_batches=self.n_batches)
        return self._reports[layer]

    def _on_change(self, change: dict) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Recompute for the current layer and pattern and redraw every figure."""
        if self.layer.value is None:
            self.status.value = "<b>no eligible layers</b>"
            return
        mods = eligible_layers(self.handle.model)
        mat = to_matrix(dense_weight(mods[self.layer.value])).float()
        rep = self.report()
        row = rep[rep.pattern == self.pattern.value].iloc[0]
        p = parse_pattern(self.pattern.value)
        r0 = max(0, min(self.row0.value, mat.shape[0] - 1))
        c0 = max(0, min(self.col0.value, mat.shape[1] - 1))
        if row.status != "applied":
            self.status.value = f"<span style='color:#b00'>{row.reason}</span>"
            mask = None
        else:
            mask, padded = pattern_mask(mat, p)
            self.status.value = ("padded with zeros for the transposable solve" if padded else "") + ""
        region = mat[r0 : r0 + self.rows.value, c0 : c0 + self.cols.value].abs().numpy()
        kept = (mask[r0 : r0 + self.rows.value, c0 : c0 + self.cols.value].numpy() if mask is not None
                else region * 0 > 1)
        self.heatmap.show(mask_heatmap(region, kept, m=p.m,
                                       title=f"{self.layer.value} · {self.pattern.value} (rows {r0}+, cols {c0}+)"))
        self.kept_fig.show(kept_magnitude_bar(rep, title=f"{self.layer.value}: fraction of |w| kept"))
        self.diversity_fig.show(diversity_bar(rep, title=f"{self.layer.value}: log10 mask diversity"))
        cols = ["pattern", "status", "kept_abs", "kept_sq", "log10_diversity", "output_rel_error", "padded"]
        self.table.value = rep[cols].to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="—")


__all__ = ["MaskView"]
