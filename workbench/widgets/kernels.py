"""``KernelBenchView``: the kernel benchmark table as ratio bars against dense bf16 and against the bandwidth floor.

A thin shell over :func:`workbench.kernels.bench.load_results` (recorded GPU results from
``benchmarks/kernels_results.json``, else the bandwidth-floor prediction, clearly labelled) and the figures of
:mod:`workbench.viz.kernels`. One :class:`~workbench.widgets.plot.PlotView`, created once, redrawn when a control
changes.
``handle`` (a ModelHandle, optional) adds the model's linear layers with the bytes each format would move.
Without a GPU the view also shows the recorded CPU benchmark (:mod:`workbench.kernels.cpu_bench`): what the kernels
gain on this kind of machine, where the GPU figures above are only a prediction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as W
import pandas as pd

from workbench.kernels.bench import load_results, to_markdown
from workbench.kernels.packing import TRITON_FORMATS as FORMATS, packed_bytes  # the GPU kernels' formats
from workbench.viz.kernels import floor_figure, speedup_figure
from workbench.widgets.plot import PlotView

VIEWS = {"speedup over dense bf16": "speedup", "fraction of bandwidth floor": "floor"}


def model_bytes_table(handle: Any) -> pd.DataFrame:
    """Per linear layer of ``handle``: dense bf16 bytes and each kernel format's bytes (formats that fit the shape)."""
    layers = handle.layers
    rows = []
    for r in layers.itertuples(index=False):
        if getattr(r, "kind", "") != "Linear":
            continue
        shape = (int(r.out_features), int(r.in_features))
        row = {"layer": r.name, "shape": f"{shape[0]}×{shape[1]}", "dense bf16": packed_bytes("dense", shape)}
        for fmt in FORMATS:
            ok = not (fmt.startswith("2:4") and shape[1] % 4)
            row[fmt] = packed_bytes(fmt, shape) if ok else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def cpu_table_html(path: str | Path | None = None) -> str:
    """The recorded CPU benchmark at batch 1 and 64 as HTML: speedup over float32 F.linear per method, and a note."""
    from workbench.kernels.cpu_bench import load_results, summary

    df, meta = load_results(path)
    if not len(df):
        return f"<i>No CPU benchmark recorded ({meta.get('note', '')}).</i>"
    head = (
        f"<b>CPU kernels, measured</b> on {meta.get('cpu')} ({meta.get('cores')} cores, load average "
        f"{meta.get('load_avg')}: a shared, loaded machine), copy bandwidth {meta.get('copy_gbps', 0):.1f} GB/s. "
        "Speedup over float32 <code>F.linear</code> in the same run (best of repetitions, cold weights); "
        "<code>xnor</code> = binary weights and activations (XNOR-popcount)."
    )
    t = summary(df[df.batch.isin([1, 64])])
    return head + t.to_html(float_format=lambda v: f"{v:.2f}")


class KernelBenchView:
    """Benchmark bars (vs dense, vs floor) with batch and format filters; ``.ui`` is the widget tree."""

    def __init__(self, handle: Any = None, path: str | Path | None = None, cpu_path: str | Path | None = None,
                 show_cpu: bool | None = None):
        self.handle = handle
        self.df, self.meta = load_results(path)
        batches = sorted(int(b) for b in self.df["batch"].unique())
        formats = [f for f in self.df["format"].unique()]
        self.view = W.ToggleButtons(options=list(VIEWS), value="speedup over dense bf16", description="show")
        self.batch = W.Dropdown(options=[("all", None)] + [(str(b), b) for b in batches], value=None, description="batch")
        self.formats = W.SelectMultiple(options=formats, value=tuple(formats), description="formats", rows=min(6, len(formats)))
        self.note = W.HTML(self._note_html())
        self.fig = PlotView(height=450)
        self.table = W.HTML()
        self.layers = W.HTML()
        for w in (self.view, self.batch, self.formats):
            w.observe(self._redraw, names="value")
        if handle is not None and hasattr(handle, "layers"):
            try:
                t = model_bytes_table(handle)
                if len(t):
                    self.layers.value = "<b>This model's linear layers: bytes per format</b>" + t.to_html(index=False)
            except Exception as e:  # noqa: BLE001 - an odd handle must not break the view
                self.layers.value = f"<i>model layers unavailable: {type(e).__name__}</i>"
        self.cpu = W.HTML(cpu_table_html(cpu_path))
        parts = [self.note, W.HBox([self.view, self.batch]), self.formats, self.fig.ui, self.table, self.layers]
        self.ui = W.VBox(parts + ([self.cpu] if show_cpu is True or (show_cpu is None and not _cuda()) else []))
        self._redraw()

    def _note_html(self) -> str:
        m = self.meta
        if m.get("source") == "measured":
            return (
                f"<b>Measured</b> on {m.get('device')} ({m.get('date', '')}), device copy {m.get('copy_tbps', 0):.2f} TB/s; "
                "bars: speedup over dense bf16 F.linear in the same run; black ticks: the bandwidth floor."
            )
        return f"<b>Predicted, not measured.</b> {m.get('note', '')}"

    def selection(self) -> pd.DataFrame:
        """The rows the controls select (always keeps dense, which the floor markers need)."""
        d = self.df
        if self.batch.value is not None:
            d = d[d["batch"] == self.batch.value]
        keep = set(self.formats.value) | {"dense"}
        return d[d["format"].isin(keep)]

    def _redraw(self, *_: Any) -> None:
        d = self.selection()
        shown = [f for f in self.formats.value]
        if VIEWS[self.view.value] == "speedup":
            self.fig.show(speedup_figure(d, self.meta, formats=shown))
        else:
            self.fig.show(floor_figure(d, self.meta, formats=shown))
        cols = [c for c in ("shape", "batch", "format", "time_us", "gbps", "speedup_vs_dense", "speedup_vs_torch24",
                            "floor_fraction", "check") if c in d]
        self.table.value = d[d["format"].isin(shown)][cols].to_html(index=False, float_format=lambda v: f"{v:.2f}")

    def markdown(self) -> str:
        """The selected rows as a markdown table."""
        return to_markdown(self.selection())


__all__ = ["KernelBenchView", "model_bytes_table", "cpu_table_html"]
