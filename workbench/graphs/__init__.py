"""Graph lab: diffusion-convolutional neural networks (DCNN) and their O(N)-memory thresholded form.

Atwood & Towsley 2016 (DCNN): node i is classified from its diffusion features ``P^h X`` (h = 0..H), P the
degree-normalised transition matrix; the dense power series costs O(N²) memory per hop. Atwood, Pal, Towsley &
Swami 2017 (sparse DCNN): dropping diffusion entries below ε keeps at most N/ε entries per hop, O(N).

    from workbench.graphs import DCNN, load_graph, make_sbm, node_classification, memory_scaling
    df = node_classification("karate", method=["dcnn", "label_propagation", "logistic"], hops=2, threshold=0.01)

See docs/graphs.md and notebooks/15_graph_diffusion_thresholding.ipynb.
"""

from __future__ import annotations

# graphs (networkx's bundled real graphs; synthetic stochastic block models)
from workbench.graphs.data import REAL_GRAPHS, Graph, check_graph, from_networkx, load_graph, make_sbm

# diffusion features, dense and thresholded, with memory measured
from workbench.graphs.diffusion import (Diffusion, available_memory, dense_bytes_estimate, diffuse, peak_memory,
                                        sparse_bytes_bound, transition_matrix)

# the model
from workbench.graphs.dcnn import DCNN, dense_parameters

# experiments returning DataFrames
from workbench.graphs.classify import (COLUMNS, METHODS, accuracy_table, label_propagation, node_classification,
                                       stratified_split)
from workbench.graphs.scaling import SCALING_COLUMNS, fit_slope, memory_scaling

# tables for drawing a small graph coloured by prediction
from workbench.graphs.draw import layout_tables, node_predictions

__all__ = [
    "Graph", "REAL_GRAPHS", "check_graph", "from_networkx", "load_graph", "make_sbm",
    "Diffusion", "diffuse", "transition_matrix", "dense_bytes_estimate", "sparse_bytes_bound", "available_memory",
    "peak_memory",
    "DCNN", "dense_parameters",
    "node_classification", "label_propagation", "stratified_split", "accuracy_table", "METHODS", "COLUMNS",
    "memory_scaling", "fit_slope", "SCALING_COLUMNS",
    "node_predictions", "layout_tables",
]
