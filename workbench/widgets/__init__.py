"""Jupyter widgets of the workbench: the dashboard and the lab views it hosts as tabs.

``Workbench(spec_or_handle)`` is the dashboard (:mod:`workbench.widgets.dashboard`). The lab views live in their
own modules and are listed in :data:`LAB_VIEWS` (tab title -> (module, class)); the dashboard shows a tab for
each module that exists and imports it only when its tab is first selected, so importing this package never
imports the labs. Every view class takes a ``ModelHandle`` and exposes its widget tree as ``.ui``.

Only modules under ``workbench/widgets/`` import ipywidgets.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

#: Tab title -> (module, class name) of each lab view the dashboard can host.
LAB_VIEWS: dict[str, tuple[str, str]] = {
    "masks": ("workbench.widgets.masks", "MaskView"),
    "quantization": ("workbench.widgets.quant", "QuantErrorView"),
    "dynamics": ("workbench.widgets.dynamics", "DynamicsView"),
    "topology": ("workbench.widgets.topology", "TopologyView"),
    "kernels": ("workbench.widgets.kernels", "KernelBenchView"),
    "zero-shot": ("workbench.widgets.zeroshot", "ZeroShotView"),
    "metric": ("workbench.widgets.metric", "MetricView"),
    "geometry": ("workbench.widgets.geometry", "GeometryView"),
    "sampling": ("workbench.widgets.sampling", "SamplingView"),
    "graphs": ("workbench.widgets.graphs", "GraphsView"),
    "sparse training": ("workbench.widgets.sparse_training", "SparseTrainingView"),
    "large outputs": ("workbench.widgets.large_outputs", "LargeOutputsView"),
}


def available_views() -> dict[str, tuple[str, str]]:
    """The entries of :data:`LAB_VIEWS` whose module exists (found without importing it)."""
    out = {}
    for title, (module, cls) in LAB_VIEWS.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if found:
            out[title] = (module, cls)
    return out


def load_view(title: str) -> type:
    """Import and return the view class registered under ``title`` (raises ImportError/AttributeError)."""
    module, cls = LAB_VIEWS[title]
    return getattr(importlib.import_module(module), cls)


def __getattr__(name: str) -> Any:  # Workbench on first use: importing the package stays light
    if name in {"Workbench", "DashboardState"}:
        if name == "Workbench":
            from workbench.widgets.dashboard import Workbench as obj
        else:
            from workbench.widgets.state import DashboardState as obj
        return obj
    raise AttributeError(f"module 'workbench.widgets' has no attribute {name!r}")


__all__ = ["LAB_VIEWS", "available_views", "load_view", "Workbench", "DashboardState"]
