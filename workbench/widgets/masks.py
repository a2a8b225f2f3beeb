"""``MaskView(handle)``: choose a layer and a sparsity pattern; see the mask over |w|, kept magnitude and mask
diversity across patterns, and a table beside them. A thin shell over :func:`workbench.sparsity.mask_report` and
:mod:`workbench.viz.sparsity`; every figure is one :class:`~workbench.widgets.plot.PlotView` created once.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import ipywidgets as W

from workbench.errors import WorkbenchError
from workbench.formats import eligible_layers, original_weight, parse_format, to_matrix
from workbench.formats.masks import fits
from workbench.sparsity.patterns import DEFAULT_PATTERNS, parse_pattern, pattern_mask
from workbench.sparsity.report import mask_report
from workbench.viz.sparsity import diversity_bar, kept_magnitude_bar, mask_heatmap
from workbench.widgets.plot import PlotView

# the lab's patterns plus the large transposable ones (exact per tile; see workbench.formats.masks)
VIEW_PATTERNS: tuple[str, ...] = (*DEFAULT_PATTERNS, "8:16-T", "16:32-T")


def fit_reason(weight: Any, pattern: str) -> str | None:
    """Why ``pattern`` does not fit ``weight`` (None when it does), decided by the formats' own check
    (:func:`workbench.formats.masks.fits`), so the masks tab and the formats tab say the same thing. Patterns the
    formats grammar does not know (``"unstructured 50%"``) fit every weight."""
    try:
        sparsity = parse_format(pattern).sparsity
    except WorkbenchError:
        return None
    return None if sparsity is None else fits(weight, sparsity)


def first_fitting_layer(layers: dict[str, Any], pattern: str) -> str | None:
    """The first layer ``pattern`` fits (the first layer when it fits none; None without layers)."""
    for name, mod in layers.items():
        if fit_reason(original_weight(mod), pattern) is None:
            return name
    return next(iter(layers), None)


class MaskView:
    """Widget over a model handle; ``.ui`` is the widget tree.

    Opens on the first layer the default pattern (2:4) fits. Offers :data:`VIEW_PATTERNS` unless told otherwise
    (the lab's patterns and 8:16-T, 16:32-T). Controls: ``layer`` (Dropdown), ``pattern``
    (Dropdown), ``rows`` / ``cols`` (region size of the heatmap),
    ``row0`` / ``col0`` (its corner). Figures: ``heatmap``, ``kept_fig``, ``diversity_fig``; table: ``table``.
    """

    def __init__(self, handle: Any, patterns: Sequence[str] = VIEW_PATTERNS, n_batches: int = 1) -> None:
        self.handle = handle
        self.patterns = list(patterns)
        self.n_batches = n_batches
        self._reports: dict[str, Any] = {}
        mods = eligible_layers(handle.model)
        pattern = "2:4" if "2:4" in self.patterns else self.patterns[0]
        self.layer = W.Dropdown(options=list(mods), value=first_fitting_layer(mods, pattern), description="layer")
        self.pattern = W.Dropdown(options=self.patterns, value=pattern, description="pattern")
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
        weight = original_weight(mods[self.layer.value])
        mat = to_matrix(weight).float()
        rep = self.report()
        row = rep[rep.pattern == self.pattern.value].iloc[0]
        p = parse_pattern(self.pattern.value)
        r0 = max(0, min(self.row0.value, mat.shape[0] - 1))
        c0 = max(0, min(self.col0.value, mat.shape[1] - 1))
        skipped = row.status != "applied"
        if skipped:
            reason = fit_reason(weight, self.pattern.value)
            reason = f"layer {self.layer.value!r}: {reason}" if reason else row.reason  # as the formats tab
            self.status.value = f"<span class='wb-skip' style='color:#b00'>{html.escape(reason)}</span>"
            mask = None
        else:
            mask, padded = pattern_mask(mat, p)
            self.status.value = ("padded with zeros for the transposable solve" if padded else "") + ""
        region = mat[r0 : r0 + self.rows.value, c0 : c0 + self.cols.value].abs().numpy()
        kept = (mask[r0 : r0 + self.rows.value, c0 : c0 + self.cols.value].numpy() if mask is not None
                else region * 0 > 1)
        self.heatmap.show(mask_heatmap(region, kept, m=p.m,
                                       title=f"{self.layer.value} · {self.pattern.value}"
                                       + (": does not fit, |w| only" if skipped else f" (rows {r0}+, cols {c0}+)")))
        self.kept_fig.show(kept_magnitude_bar(rep, title=f"{self.layer.value}: fraction of |w| kept"))
        self.diversity_fig.show(diversity_bar(rep, title=f"{self.layer.value}: log10 mask diversity"))
        cols = ["pattern", "status", "kept_abs", "kept_sq", "log10_diversity", "output_rel_error", "padded"]
        self.table.value = rep[cols].to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="—")


__all__ = ["MaskView"]
