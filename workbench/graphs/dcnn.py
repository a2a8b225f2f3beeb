"""The diffusion-convolutional neural network for node classification (Atwood & Towsley 2016).

For node i the network reads its diffusion features ``Z_i = (P*X)_i`` (an (H+1) × F matrix: hop h, feature f),
multiplies them elementwise by a learned ``W_c`` of the same shape and applies ``tanh``: ``Z'_i = tanh(W_c ⊙ Z_i)``,
the paper's diffusion-convolutional activation; a dense layer on the flattened ``Z'_i`` gives the class logits
(softmax/cross-entropy in training). The diffusion itself has no parameters, so it is computed once for the whole
graph (transductive: every node's features, no labels) by :meth:`DCNN.diffuse`, densely (reference) or with the
thresholded sparse kernel (:mod:`workbench.graphs.diffusion`), and the module then classifies rows of it, which
lets the project's one ``train`` loop (``workbench.dynamics.train``) fit it by mini-batches of nodes unchanged.

>>> import torch
>>> from workbench.graphs import DCNN, load_graph
>>> g = load_graph("karate")
>>> m = DCNN(hops=2, features=g.x.shape[1], classes=2, threshold=0.01)
>>> z = m.diffuse(g)
>>> tuple(z.shape), m(z[:3]).shape
((34, 3, 34), torch.Size([3, 2]))
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.errors import DataError, ShapeError
from workbench.graphs.data import Graph, check_graph
from workbench.graphs.diffusion import Diffusion, check_hops, check_threshold, diffuse

_NP_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


class DCNN(nn.Module):
    """``DCNN(hops, features, classes, threshold=None)``: H = ``hops``; ``threshold=None`` diffuses densely,
    ``threshold=ε ≥ 0`` with the thresholded sparse kernel. After :meth:`diffuse`, ``.memory`` holds the memory
    report (a dict: form, kernel_bytes, peak_bytes, nnz, seconds) and ``.memory_table`` the per-hop rows."""

    def __init__(self, hops: int, features: int, classes: int, threshold: float | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.hops = check_hops(hops)
        self.threshold = check_threshold(threshold)
        if int(features) < 1 or int(classes) < 2:
            raise DataError(f"DCNN needs features ≥ 1 and classes ≥ 2, got features={features}, classes={classes}")
        if dtype not in _NP_DTYPES:
            raise DataError(f"DCNN dtype must be torch.float32 or torch.float64, got {dtype}")
        self.n_features, self.n_classes, self.dtype = int(features), int(classes), dtype
        self.weight = nn.Parameter(torch.empty(self.hops + 1, self.n_features, dtype=dtype))
        self.classifier = nn.Linear((self.hops + 1) * self.n_features, self.n_classes, dtype=dtype)
        self.memory: dict = {}
        self.memory_table = pd.DataFrame()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``W_c`` ~ U(0.5, 1.5) (starts near the identity gain, so tanh sees the features), classifier as torch's."""
        with torch.no_grad():
            self.weight.uniform_(0.5, 1.5)
        self.classifier.reset_parameters()

    @property
    def form(self) -> str:
        return "dense" if self.threshold is None else "thresholded"

    def diffuse(self, graph: Graph | object, x: np.ndarray | None = None, *, memory_limit: int | None = None,
                keep_kernel: bool = False, stop: Any = None) -> torch.Tensor:
        """The diffusion features ``P*X`` (N × (H+1) × F tensor of this module's dtype) of ``graph`` (a
        :class:`Graph`, or an adjacency matrix with ``x`` given); records ``.memory`` and ``.memory_table``.
        A dense run whose estimate exceeds ``memory_limit`` (default: the memory available) raises
        :class:`~workbench.errors.MemoryBudgetError` before allocating. ``stop=``: as :func:`diffuse`'s."""
        if isinstance(graph, Graph):
            check_graph(graph)
            adjacency, feats = graph.adjacency, graph.x if x is None else x
        else:
            adjacency, feats = graph, x
            if feats is None:
                raise DataError("DCNN.diffuse: give a Graph, or an adjacency matrix and x= (N × F features)")
        feats = np.asarray(feats)
        if feats.ndim == 2 and feats.shape[1] != self.n_features:
            raise ShapeError(f"DCNN was built for {self.n_features} features, the graph has {feats.shape[1]}")
        d: Diffusion = diffuse(adjacency, feats, self.hops, self.threshold, dtype=_NP_DTYPES[self.dtype],
                               memory_limit=memory_limit, keep_kernel=keep_kernel, stop=stop)
        self.memory = d.summary()
        self.memory_table = d.table
        self.last_diffusion = d if keep_kernel else None
        return torch.from_numpy(d.features)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Class logits of a batch of nodes' diffusion features ``z`` (B × (H+1) × F)."""
        if z.dim() != 3 or z.shape[1:] != self.weight.shape:
            raise ShapeError(f"DCNN expects diffusion features of shape (B, {self.hops + 1}, {self.n_features}), "
                             f"got {tuple(z.shape)}")
        h = torch.tanh(self.weight * z.to(self.weight.dtype))
        return self.classifier(h.flatten(1))

    def extra_repr(self) -> str:
        t = "dense" if self.threshold is None else f"threshold={self.threshold:g}"
        return f"hops={self.hops}, features={self.n_features}, classes={self.n_classes}, {t}"


def dense_parameters(hops: int, features: int, classes: int) -> int:
    """Number of trainable parameters of a DCNN (independent of N: the diffusion has none)."""
    k = (hops + 1) * features
    return k + k * classes + classes


__all__ = ["DCNN", "dense_parameters"]
