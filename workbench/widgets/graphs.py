"""``GraphsView``: a DCNN on a small graph with its nodes coloured by prediction, hops and threshold sliders, the
accuracy of DCNN against label propagation and logistic regression, and memory vs N for dense and thresholded.

A thin shell over :mod:`workbench.graphs` (``node_predictions``, ``layout_tables``, ``node_classification``,
``accuracy_table``, ``memory_scaling``) and :mod:`workbench.viz.graphs`; two
:class:`~workbench.widgets.plot.PlotView` plots, each redrawn with a new figure when its job is done. Work runs off the UI thread through :class:`~workbench.widgets._async.LatestJobRunner` (one for
the graph, one for the memory curves; a newer request supersedes an older one). The dashboard calls
``GraphsView(handle)``: a model handle is accepted and ignored (the lab trains its own DCNNs on graphs).
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from workbench.errors import WorkbenchError
from workbench.graphs import accuracy_table, layout_tables, memory_scaling, node_classification, node_predictions
from workbench.graphs.data import REAL_GRAPHS
from workbench.graphs.diffusion import format_bytes
from workbench.progress import Stopped
from workbench.viz.figure import empty_figure
from workbench.viz.graphs import graph_figure, memory_figure
from workbench.widgets._async import Cancelled, LatestJobRunner
from workbench.widgets.plot import PlotView

SYNTHETIC_CHOICE = "sbm-400"


class GraphsView:
    """Widget over the graph lab; ``.ui`` is the widget tree. ``sync=True`` runs jobs inline (tests)."""

    def __init__(self, handle: Any = None, *, graph: str = "karate", sync: bool = False,
                 memory_sizes: tuple[int, ...] = (500, 1000, 2000, 4000, 16000),
                 dense_limit: int = 512 * 2**20, splits: int = 3, epochs: float = 30) -> None:
        self.handle = handle  # not ours to use
        self.memory_sizes, self.dense_limit, self.splits, self.epochs = memory_sizes, dense_limit, splits, epochs
        self.nodes = self.edges = self.table = self.scaling = None
        options = [(f"{k} ({v['labels'].split(':')[0]} labels)", k) for k, v in REAL_GRAPHS.items()]
        options.append((f"{SYNTHETIC_CHOICE} (synthetic SBM)", SYNTHETIC_CHOICE))
        self.graph = W.Dropdown(options=options, value=graph, description="graph")
        self.method = W.Dropdown(options=[("DCNN", "dcnn"), ("label propagation", "label_propagation"),
                                          ("logistic on features", "logistic")], value="dcnn", description="colour by")
        self.hops = W.IntSlider(value=2, min=0, max=5, description="hops H", continuous_update=False)
        self.dense = W.Checkbox(value=False, description="dense (reference)", indent=False)
        self.threshold = W.FloatLogSlider(value=0.01, base=10, min=-4, max=-1, step=0.25, description="threshold ε",
                                          readout_format=".2g", continuous_update=False)
        self.memory_button = W.Button(description="memory vs N", icon="line-chart",
                                      tooltip=f"diffuse synthetic SBMs of {', '.join(map(str, memory_sizes))} nodes "
                                              f"both ways (dense refused above {format_bytes(dense_limit)})")
        self.status = W.HTML("<i>…</i>")
        self.memory_status = W.HTML("")
        self.table_html = W.HTML()
        self.graph_fig = PlotView(empty_figure("Graph", "training on the chosen graph …"), height=460)
        self.memory_fig = PlotView(empty_figure("Memory vs N", "press memory vs N"), height=400)
        self.runner = LatestJobRunner(sync=sync, name="graphs-view")
        self.memory_runner = LatestJobRunner(sync=sync, name="graphs-memory")
        for w in (self.graph, self.method, self.hops, self.dense, self.threshold):
            w.observe(lambda _: self.refresh(), names="value")
        self.memory_button.on_click(lambda _: self.measure_memory())
        controls = W.VBox([W.HBox([self.graph, self.method]), W.HBox([self.hops, self.threshold, self.dense])])
        self.ui = W.VBox([controls, self.status, self.graph_fig.ui, self.table_html,
                          W.HBox([self.memory_button, self.memory_status]), self.memory_fig.ui])
        self.refresh()

    @property
    def threshold_value(self) -> float | None:
        return None if self.dense.value else float(self.threshold.value)

    # ------------------------------------------------------------------------------------------------- jobs
    def refresh(self) -> None:
        """Recompute predictions and the accuracy table for the current controls (in the background)."""
        self.threshold.disabled = bool(self.dense.value)
        g, m, h, t = self.graph.value, self.method.value, int(self.hops.value), self.threshold_value
        self.status.value = f"<i>training on {g} (hops {h}, {'dense' if t is None else f'ε={t:.2g}'})…</i>"

        def job(ctx):
            def stop() -> bool:
                return ctx.cancelled_reason() is not None

            preds = node_predictions(g, method=m, hops=h, threshold=t, epochs=self.epochs, stop=stop)
            ctx.check()
            nodes, edges = layout_tables(g, preds)
            ctx.check()
            df = node_classification(g, method=["dcnn", "label_propagation", "logistic"], hops=h, threshold=t,
                                     splits=self.splits, epochs=self.epochs, stop=stop)
            return nodes, edges, accuracy_table(df)

        self.runner.submit(job, on_done=self._show, on_error=self._error, label="graphs")

    def _show(self, result) -> None:
        self.nodes, self.edges, self.table = result
        self.graph_fig.show(graph_figure(self.nodes, self.edges))
        a = self.nodes.attrs
        mem = (f"; diffusion kernel {format_bytes(a['kernel_bytes'])}, peak {format_bytes(a['peak_bytes'])} "
               f"({a['form']})" if "kernel_bytes" in a else "")
        self.status.value = f"{a.get('graph')}: {a.get('method')} test accuracy {a.get('test_accuracy', 0):.1%}{mem}"
        cols = ["method", "form", "hops", "threshold", "accuracy", "accuracy_std", "peak_bytes", "seconds_graph",
                "seconds_train"]
        self.table_html.value = self.table[cols].to_html(index=False, float_format=lambda v: f"{v:.4g}")

    def _error(self, exc: BaseException) -> None:
        if isinstance(exc, (Cancelled, Stopped)):
            return
        if isinstance(exc, WorkbenchError):
            self.status.value = f"<b>error:</b> {exc}"
        else:
            self.status.value = f"<b>failed:</b> {type(exc).__name__}: {exc}"

    def measure_memory(self) -> None:
        """Memory vs N on the synthetic SBM family for the current hops and threshold (dense and thresholded)."""
        h = int(self.hops.value)
        t = float(self.threshold.value)
        self.memory_status.value = "<i>measuring…</i>"
        self.memory_button.disabled = True

        def job(ctx):
            return memory_scaling(self.memory_sizes, hops=h, threshold=t, dense_limit=self.dense_limit,
                                  stop=lambda: ctx.cancelled_reason() is not None)

        def done(df):
            self.scaling = df
            self.memory_fig.show(memory_figure(
                df, available_bytes=self.dense_limit,
                title=f"Memory vs N, hops {h}, ε={t:.2g} (synthetic SBM; dashed: this view's dense budget)"))
            refused = df[df.refused]
            self.memory_status.value = (f"dense refused at N ≥ {int(refused.n_nodes.min())} (estimate above "
                                        f"{format_bytes(self.dense_limit)})" if len(refused) else "all sizes ran")
            self.memory_button.disabled = False

        def failed(exc):
            self.memory_button.disabled = False
            self.memory_status.value = "" if isinstance(exc, Cancelled) else f"<b>error:</b> {exc}"

        self.memory_runner.submit(job, on_done=done, on_error=failed, on_cancel=lambda _: failed(Cancelled()),
                                  label="memory")

    def close(self) -> None:
        self.runner.close()
        self.memory_runner.close()


__all__ = ["GraphsView"]
