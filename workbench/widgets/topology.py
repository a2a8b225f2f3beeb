"""``TopologyView``: compare sparse topologies of several networks (NNSTD heatmap with accuracies, per-layer NNSTD
along training, and a picture of one small network's connections).

A thin shell over :mod:`workbench.topology` (``nnstd_matrix``, ``nnstd_over_epochs``, ``train_set``,
``connection_table``) and the figures of :mod:`workbench.viz.topology`; three
:class:`~workbench.widgets.plot.PlotView` s created once. Give it trained :class:`~workbench.topology.SETRun` s,
modules or mask lists, or press "train" to train a small set of SET networks on digits from different seeds
(sharing one initial topology, so the epochs plot shows them drift apart). The dashboard calls
``TopologyView(handle)``: a model handle as first argument is accepted and ignored (the lab compares networks it
trains itself).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as W
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.topology import (
    SETRun,
    accuracy_table,
    connection_table,
    nnstd_matrix,
    nnstd_over_epochs,
    train_set_runs,
)
from workbench.viz.figure import empty_figure
from workbench.viz.topology import connections_figure, nnstd_epochs_figure, nnstd_heatmap
from workbench.widgets.plot import PlotView


def _is_net_collection(x: Any) -> bool:
    if isinstance(x, Mapping):
        return True
    return isinstance(x, Sequence) and not isinstance(x, (str, bytes)) and len(x) > 0


class TopologyView:
    """Widget over a set of sparse networks; ``.ui`` is the widget tree.

    ``nets``: a list (or dict name → net) of :class:`SETRun` s, ``nn.Module`` s or lists of 0/1 masks (same layer
    sizes); ``accuracies``: optional list or mapping of test accuracies (taken from the runs when they are SETRuns).
    """

    def __init__(self, nets: Any = None, accuracies: Any = None, *, hidden: int = 32, epochs: int = 4,
                 n_nets: int = 3) -> None:
        self.handle = None
        if nets is not None and not _is_net_collection(nets):  # a ModelHandle from the dashboard: not ours to use
            self.handle, nets = nets, None
        self.names: list[str] = []
        self.nets: list[Any] = []
        self.runs: list[SETRun] = []
        self.accuracies: dict[str, float] = {}
        self.matrix = pd.DataFrame()
        self.epochs_df = pd.DataFrame()

        self.n_nets = W.BoundedIntText(value=n_nets, min=2, max=8, description="nets")
        self.hidden = W.BoundedIntText(value=hidden, min=4, max=62, description="hidden")
        self.epochs = W.BoundedIntText(value=epochs, min=1, max=50, description="epochs")
        self.train_button = W.Button(description="train SET nets on digits", icon="play",
                                     tooltip="train small SET networks from different seeds (a few seconds each)")
        self.against = W.ToggleButtons(options=[("between nets", "pairs"), ("vs own start", "init")],
                                       value="pairs", description="NNSTD")
        self.picked = W.Dropdown(options=[], description="draw")
        self.status = W.HTML("<i>no networks yet: press train, or pass nets=</i>")
        self.table = W.HTML()
        press = "press train (or pass nets=) to compare networks"
        self.heatmap = PlotView(empty_figure("NNSTD between networks", press), height=420)
        self.over_epochs = PlotView(empty_figure("NNSTD along training, per layer", press), height=380)
        self.connections = PlotView(empty_figure("Connections", press), height=420)
        self.train_button.on_click(self._on_train)
        self.against.observe(lambda _: self._draw_epochs(), names="value")
        self.picked.observe(lambda _: self._draw_connections(), names="value")
        controls = W.HBox([self.n_nets, self.hidden, self.epochs, self.train_button])
        self.ui = W.VBox([controls, self.status, self.table, self.heatmap.ui, self.against, self.over_epochs.ui,
                          self.picked, self.connections.ui])
        if nets is not None:
            self.set_nets(nets, accuracies)

    # ---------------------------------------------------------------------------------------------- data in
    def set_nets(self, nets: Any, accuracies: Any = None) -> None:
        """Show a new set of networks (see the class docstring for what ``nets`` may hold)."""
        if isinstance(nets, Mapping):
            names, items = [str(k) for k in nets], list(nets.values())
        else:
            items = list(nets)
            names = [f"seed {n.seed}" if isinstance(n, SETRun) else f"net {i}" for i, n in enumerate(items)]
        if len(set(names)) != len(names):
            names = [f"{n} #{i}" for i, n in enumerate(names)]
        self.names, self.nets = names, items
        self.runs = [n for n in items if isinstance(n, SETRun)]
        if len(self.runs) != len(items):
            self.runs = []
        acc: dict[str, float] = {}
        if accuracies is not None:
            acc = ({str(k): float(v) for k, v in accuracies.items()} if isinstance(accuracies, Mapping)
                   else {n: float(a) for n, a in zip(names, accuracies)})
        elif self.runs:
            acc = {n: r.accuracy for n, r in zip(names, self.runs)}
        self.accuracies = acc
        self._recompute()

    def _on_train(self, _button: Any = None) -> None:
        self.status.value = "<i>training…</i>"
        self.train_button.disabled = True
        try:
            h = int(self.hidden.value)
            runs = train_set_runs(range(int(self.n_nets.value)), progress=False, sizes=(64, h, h, 10),
                                  epochs=int(self.epochs.value), epsilon=4, topology_seed=0)
            self.set_nets(runs)
        except WorkbenchError as e:
            self.status.value = f"<b>error:</b> {e}"
        finally:
            self.train_button.disabled = False

    # ---------------------------------------------------------------------------------------------- drawing
    def _recompute(self) -> None:
        try:
            models = [n.snapshots[-1] if isinstance(n, SETRun) else n for n in self.nets]
            self.matrix = nnstd_matrix(models, names=self.names)
        except WorkbenchError as e:
            self.status.value = f"<b>cannot compare these networks:</b> {e}"
            return
        mean = self.matrix[self.matrix.a != self.matrix.b].groupby(["a", "b"]).distance.mean()
        self.status.value = (f"{len(self.nets)} networks; mean pairwise NNSTD {mean.mean():.3f}"
                             if len(mean) else f"{len(self.nets)} network")
        if self.runs:
            t = accuracy_table(self.runs)
            t.insert(0, "net", self.names)
            self.table.value = t.to_html(index=False, float_format=lambda v: f"{v:.4f}")
        elif self.accuracies:
            self.table.value = pd.DataFrame({"net": list(self.accuracies), "test_accuracy": list(
                self.accuracies.values())}).to_html(index=False, float_format=lambda v: f"{v:.4f}")
        else:
            self.table.value = ""
        self.heatmap.show(nnstd_heatmap(self.matrix, self.accuracies or None))
        self._draw_epochs()
        small = []
        for name, n in zip(self.names, self.nets):
            try:
                connection_table(n)
                small.append(name)
            except WorkbenchError:
                pass
        self.picked.options = small
        self.picked.value = small[0] if small else None
        self._draw_connections()

    def _draw_epochs(self) -> None:
        if not self.runs:
            self.epochs_df = pd.DataFrame()
            self.over_epochs.show(empty_figure("NNSTD along training, per layer",
                                               "needs SET runs: press train"))
            return
        if len(self.runs) < 2 and self.against.value == "pairs":
            self.against.value = "init"
            return
        self.epochs_df = nnstd_over_epochs(self.runs, names=self.names, against=self.against.value)
        title = ("NNSTD between nets along training, per layer" if self.against.value == "pairs"
                 else "NNSTD of each net to its initial topology, per layer")
        self.over_epochs.show(nnstd_epochs_figure(self.epochs_df, title=title))

    def _draw_connections(self) -> None:
        name = self.picked.value
        if name is None:
            self.connections.show(empty_figure("Connections", "no network small enough to draw (≤ 64 per level)"))
            return
        net = self.nets[self.names.index(name)]
        self.connections.show(connections_figure(connection_table(net), title=f"Connections of {name}"))


__all__ = ["TopologyView"]
