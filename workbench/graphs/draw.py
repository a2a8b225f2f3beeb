"""Tables for drawing a small graph with its nodes coloured by a prediction (read by ``workbench.viz.graphs``).

``node_predictions(graph, method="dcnn", hops=2, threshold=None)`` trains the method on one stratified split and
returns one row per node (``node, name, label, prediction, train, correct``); ``layout_tables(graph, predictions)``
adds spring-layout positions (networkx, seeded) and returns ``(nodes, edges)`` DataFrames.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import DataError
from workbench.graphs.classify import _resolve, label_propagation, stratified_split
from workbench.graphs.data import Graph
from workbench.graphs.diffusion import check_hops, check_threshold
from workbench.progress import Stopped, stop_callable

#: drawing is for small graphs: more nodes than this are refused (the picture would be a hairball anyway)
MAX_DRAW_NODES = 2000


def node_predictions(graph: Graph | str, method: str = "dcnn", hops: int = 2, threshold: float | None = None, *,
                     train_fraction: float = 0.5, seed: int = 0, epochs: float = 30, lr: float = 0.1,
                     batch_size: int = 32, stop: Any = None) -> pd.DataFrame:
    """Per-node prediction of ``method`` trained on split ``seed`` (columns ``node, name, label, prediction,
    train, correct``; labels and predictions as class names). The DCNN's memory report is in ``df.attrs``.
    ``stop=`` (see :func:`workbench.progress.stop_callable`) abandons the run with :class:`workbench.progress.Stopped`
    (a prediction per node needs the whole training)."""
    should_stop = stop_callable(stop)
    g = _resolve(graph)
    hops, threshold = check_hops(hops), check_threshold(threshold)
    if method not in ("dcnn", "label_propagation", "logistic"):
        raise DataError(f"method must be 'dcnn', 'label_propagation' or 'logistic', got {method!r}")
    tr, te = stratified_split(g.y, train_fraction, seed)
    attrs: dict = {}
    if method == "label_propagation":
        pred = label_propagation(g.adjacency, g.y, tr, g.n_classes)
    elif method == "logistic":
        from sklearn.linear_model import LogisticRegression

        pred = LogisticRegression(max_iter=500).fit(g.x[tr], g.y[tr]).predict(g.x)
    else:
        import torch

        from workbench.dynamics.train import train
        from workbench.graphs.classify import _SplitHandle
        from workbench.graphs.dcnn import DCNN

        model = DCNN(hops, g.x.shape[1], g.n_classes, threshold=threshold)
        z = model.diffuse(g, stop=should_stop)
        res = train(_SplitHandle(g.name, model, z, g.y, tr, te), batch_size=min(batch_size, len(tr)), lr=lr,
                    epochs=epochs, seed=seed, eval_every=float(epochs), track_points=4, progress=False, stop=should_stop)
        if res.stopped:
            raise Stopped(f"node_predictions stopped by stop= after {res.steps} training steps")
        with torch.no_grad():
            pred = res.model(z).argmax(1).numpy()
        attrs = dict(model.memory)
    is_train = np.zeros(g.n_nodes, dtype=bool)
    is_train[tr] = True
    names = [str(v) for v in g.nodes] if g.nodes else [str(i) for i in range(g.n_nodes)]
    df = pd.DataFrame({"node": np.arange(g.n_nodes), "name": names,
                       "label": [g.classes[i] for i in g.y], "prediction": [g.classes[i] for i in pred],
                       "train": is_train, "correct": pred == g.y})
    df.attrs.update(attrs, graph=g.name, method=method, hops=hops, threshold=threshold,
                    test_accuracy=float(df.loc[~df.train, "correct"].mean()))
    return df


def layout_tables(graph: Graph | str, predictions: pd.DataFrame | None = None,
                  seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(nodes, edges)`` for drawing: nodes with ``x, y`` (networkx spring layout, ``seed``) and the prediction
    columns when given; edges as ``source, target`` node indices."""
    import networkx as nx

    g = _resolve(graph)
    if g.n_nodes > MAX_DRAW_NODES:
        raise DataError(f"graph {g.name!r} has {g.n_nodes} nodes; drawing takes at most {MAX_DRAW_NODES}")
    gx = nx.from_scipy_sparse_array(g.adjacency)
    pos = nx.spring_layout(gx, seed=seed)
    nodes = pd.DataFrame({"node": np.arange(g.n_nodes), "x": [pos[i][0] for i in range(g.n_nodes)],
                          "y": [pos[i][1] for i in range(g.n_nodes)]})
    if predictions is not None:
        nodes = nodes.merge(predictions, on="node", how="left")
        nodes.attrs.update(predictions.attrs)
    else:
        nodes["name"] = [str(v) for v in g.nodes] if g.nodes else nodes["node"].astype(str)
        nodes["label"] = [g.classes[i] for i in g.y]
    a = g.adjacency.tocoo()
    keep = a.row < a.col
    edges = pd.DataFrame({"source": a.row[keep], "target": a.col[keep]})
    return nodes, edges


__all__ = ["node_predictions", "layout_tables", "MAX_DRAW_NODES"]
