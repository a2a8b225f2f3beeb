"""Graphs for node classification: networkx's bundled real graphs and a seeded synthetic stochastic block model.

A :class:`Graph` holds a symmetric 0/1 adjacency (``scipy.sparse`` CSR, no self-loops), node features ``x``
(N × F), integer labels ``y`` (N,), the class names and where the labels come from. Edge weights are ignored:
the diffusion is over the unweighted graph.

Real graphs (``load_graph(name)``; networkx ships them, nothing downloads). Which have real labels, honestly:

- ``"karate"``: Zachary's karate club (34 members, 78 ties). **Real labels**: the ``club`` attribute, the faction
  each member joined after the split ("Mr. Hi" / "Officer").
- ``"davis"``: Davis' Southern women (18 women, 14 events, 89 attendances; bipartite). **Real but trivial labels**:
  the node type (woman / event) from networkx's ``bipartite`` attribute. The graph is bipartite, so the type is
  readable from the structure alone (odd hops land on the other side); it tests the pipeline, not the method.
- ``"les_miserables"``: co-appearances of 77 characters (254 ties). **No real labels ship**; the labels are the
  communities found by greedy modularity maximisation (Clauset–Newman–Moore, ``networkx``) on the graph itself:
  *derived* labels, so accuracy measures agreement with a structural partition, not a ground truth.
- ``"florentine"``: Padgett's Florentine families' marriages (15 families, 20 ties). **No real labels**; derived
  greedy-modularity communities as for Les Misérables.

None of these graphs has node features; ``x`` is the one-hot node identity (``X = I``), so ``P^h X = P^h`` and a
classifier on ``X`` alone cannot generalise to a node it has not seen: the baselines make that visible.

Synthetic (``make_sbm(n, ...)``, said to be synthetic wherever shown): a stochastic block model with ``blocks``
equal blocks, expected degree ``degree`` of which a fraction ``mixing`` crosses blocks, and Gaussian features whose
mean depends on the block (signal ``feature_signal`` against unit noise). Edges are drawn in O(E) (Poisson count
per block pair, uniform endpoints, duplicates and self-loops dropped), so 10⁶ nodes take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from workbench.errors import DataError, NonFiniteError

REAL_GRAPHS: dict[str, dict[str, str]] = {
    "karate": {"loader": "karate_club_graph", "labels": "real: club faction after the split (node attribute 'club')"},
    "davis": {"loader": "davis_southern_women_graph",
              "labels": "real but trivial: node type woman/event (attribute 'bipartite'; readable from structure)"},
    "les_miserables": {"loader": "les_miserables_graph",
                       "labels": "derived: greedy-modularity communities of the graph (no real labels ship)"},
    "florentine": {"loader": "florentine_families_graph",
                   "labels": "derived: greedy-modularity communities of the graph (no real labels ship)"},
}


@dataclass
class Graph:
    """A graph ready for node classification (see the module docstring)."""

    name: str
    adjacency: sp.csr_matrix  # N × N, symmetric, 0/1, no self-loops
    x: np.ndarray  # N × F features
    y: np.ndarray  # N integer labels in 0..C-1
    classes: list[str]
    labels: str  # where the labels come from ("real: ...", "derived: ...", "synthetic: ...")
    synthetic: bool = False
    nodes: list[Any] = field(default_factory=list)  # original node names (small graphs), else empty

    @property
    def n_nodes(self) -> int:
        return int(self.adjacency.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.adjacency.nnz // 2)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        kind = "synthetic" if self.synthetic else "real"
        return (f"Graph({self.name!r}, {kind}, nodes={self.n_nodes}, edges={self.n_edges}, "
                f"features={self.x.shape[1]}, classes={self.n_classes})")


def check_graph(g: Graph) -> Graph:
    """Refuse a graph that node classification cannot use (raise before any work, change nothing)."""
    if not isinstance(g, Graph):
        raise DataError(f"expected a workbench.graphs.Graph (or a name in {sorted(REAL_GRAPHS)}), "
                        f"got {type(g).__name__}")
    n = g.n_nodes
    if n == 0:
        raise DataError(f"graph {g.name!r} has no nodes; node classification needs at least one node and one edge")
    if g.adjacency.shape != (n, n):
        raise DataError(f"graph {g.name!r}: adjacency must be square, got shape {g.adjacency.shape}")
    if g.adjacency.nnz == 0:
        raise DataError(f"graph {g.name!r} has {n} nodes and no edges; diffusion needs at least one edge")
    if g.x.ndim != 2 or g.x.shape[0] != n:
        raise DataError(f"graph {g.name!r}: features must be N × F with N = {n} nodes, got shape {g.x.shape}")
    if not np.isfinite(g.x).all():
        bad = int((~np.isfinite(g.x)).any(axis=1).sum())
        raise NonFiniteError(f"graph {g.name!r}: features hold NaN or inf on {bad} of {n} nodes; "
                             f"features must be finite")
    if g.y.shape != (n,):
        raise DataError(f"graph {g.name!r}: labels must have one entry per node ({n}), got shape {g.y.shape}")
    if g.y.size and (g.y.min() < 0 or g.y.max() >= len(g.classes)):
        raise DataError(f"graph {g.name!r}: labels must lie in 0..{len(g.classes) - 1}, "
                        f"got {int(g.y.min())}..{int(g.y.max())}")
    return g


def _adjacency_from_edges(rows: np.ndarray, cols: np.ndarray, n: int) -> sp.csr_matrix:
    keep = rows != cols
    rows, cols = rows[keep], cols[keep]
    a = sp.coo_matrix((np.ones(2 * len(rows), dtype=np.float32), (np.concatenate([rows, cols]),
                                                                   np.concatenate([cols, rows]))), shape=(n, n))
    a = a.tocsr()
    a.sum_duplicates()
    a.data[:] = 1.0
    return a


def from_networkx(graph, label: str | None = None, labels: Any = None, features: np.ndarray | None = None,
                  name: str = "graph", label_source: str | None = None) -> Graph:
    """A :class:`Graph` from a networkx graph (undirected view, weights ignored).

    Labels: the node attribute ``label`` (every node must have it), or ``labels`` (a mapping node → label or a
    sequence in node order). ``features``: N × F (node order of ``graph.nodes``); default the identity.
    """
    nodes = list(graph.nodes)
    n = len(nodes)
    if n == 0:
        raise DataError(f"graph {name!r} has no nodes; node classification needs at least one node and one edge")
    index = {v: i for i, v in enumerate(nodes)}
    edges = np.array([(index[u], index[v]) for u, v in graph.edges() if u != v], dtype=np.int64).reshape(-1, 2)
    if len(edges) == 0:
        raise DataError(f"graph {name!r} has {n} nodes and no edges (self-loops aside); diffusion needs an edge")
    if label is not None:
        missing = [v for v in nodes if label not in graph.nodes[v]]
        if missing:
            raise DataError(f"graph {name!r}: {len(missing)} of {n} nodes have no {label!r} attribute "
                            f"(first: {missing[:3]}); every node needs a label")
        raw = [graph.nodes[v][label] for v in nodes]
    elif labels is not None:
        if isinstance(labels, dict):
            missing = [v for v in nodes if v not in labels]
            if missing:
                raise DataError(f"graph {name!r}: labels missing for {len(missing)} of {n} nodes "
                                f"(first: {missing[:3]}); every node needs a label")
            raw = [labels[v] for v in nodes]
        else:
            raw = list(labels)
            if len(raw) != n:
                raise DataError(f"graph {name!r}: {len(raw)} labels given for {n} nodes; every node needs a label")
    else:
        raise DataError(f"graph {name!r}: give label= (a node attribute) or labels= (one per node)")
    if any(r is None for r in raw):
        raise DataError(f"graph {name!r}: labels missing (None) for {sum(r is None for r in raw)} of {n} nodes")
    classes = sorted({str(r) for r in raw})
    y = np.array([classes.index(str(r)) for r in raw], dtype=np.int64)
    x = np.eye(n, dtype=np.float32) if features is None else np.asarray(features, dtype=np.float32)
    g = Graph(name=name, adjacency=_adjacency_from_edges(edges[:, 0], edges[:, 1], n), x=x, y=y, classes=classes,
              labels=label_source or (f"node attribute {label!r}" if label else "given"), nodes=nodes)
    return check_graph(g)


def load_graph(name: str) -> Graph:
    """One of networkx's bundled real graphs by name: ``"karate"``, ``"davis"``, ``"les_miserables"``,
    ``"florentine"`` (see the module docstring for what their labels are)."""
    import networkx as nx

    if name not in REAL_GRAPHS:
        raise DataError(f"unknown graph {name!r}; the bundled real graphs are {sorted(REAL_GRAPHS)} "
                        f"(or build a synthetic one with make_sbm(n))")
    info = REAL_GRAPHS[name]
    g = getattr(nx, info["loader"])()
    if name == "karate":
        return from_networkx(g, label="club", name=name, label_source=info["labels"])
    if name == "davis":
        kinds = {v: ("woman" if d["bipartite"] == 0 else "event") for v, d in g.nodes(data=True)}
        return from_networkx(g, labels=kinds, name=name, label_source=info["labels"])
    communities = nx.algorithms.community.greedy_modularity_communities(g)
    comm = {v: f"community {i}" for i, c in enumerate(communities) for v in c}
    return from_networkx(g, labels=comm, name=name, label_source=info["labels"])


def make_sbm(n: int, blocks: int = 4, degree: float = 10.0, mixing: float = 0.3, features: int = 16,
             feature_signal: float = 0.4, seed: int = 0) -> Graph:
    """A seeded synthetic stochastic block model with features (see the module docstring).

    ``n`` nodes in ``blocks`` equal blocks (node i is in block ``i % blocks``); each node has expected degree
    ``degree``, a fraction ``mixing`` of its edges to other blocks; features: block mean (a random unit-scale
    direction times ``feature_signal``) plus standard normal noise, ``features`` wide.
    """
    if int(n) != n or n < 2:
        raise DataError(f"make_sbm: n must be an integer ≥ 2, got {n!r}")
    n, blocks, features = int(n), int(blocks), int(features)
    if blocks < 2 or blocks > n:
        raise DataError(f"make_sbm: blocks must be in 2..n={n}, got {blocks}")
    if not degree > 0:
        raise DataError(f"make_sbm: degree must be positive, got {degree!r}")
    if not 0.0 <= mixing <= 1.0:
        raise DataError(f"make_sbm: mixing must be in [0, 1], got {mixing!r}")
    if features < 1:
        raise DataError(f"make_sbm: features must be ≥ 1, got {features}")
    rng = np.random.default_rng(seed)
    y = np.arange(n, dtype=np.int64) % blocks
    members = [np.flatnonzero(y == b) for b in range(blocks)]
    rows, cols = [], []
    m_total = n * degree / 2.0  # expected undirected edges
    for b in range(blocks):
        for c in range(b, blocks):
            nb, nc = len(members[b]), len(members[c])
            if b == c:
                expected = m_total * (1 - mixing) * nb / n
            else:
                expected = m_total * mixing * 2 * nb * nc / (n * (n - nb)) if n > nb else 0.0
            k = rng.poisson(expected)
            rows.append(members[b][rng.integers(0, nb, k)])
            cols.append(members[c][rng.integers(0, nc, k)])
    adjacency = _adjacency_from_edges(np.concatenate(rows), np.concatenate(cols), n)
    means = rng.standard_normal((blocks, features)).astype(np.float32)
    means *= feature_signal / np.sqrt((means ** 2).mean(axis=1, keepdims=True))
    x = means[y] + rng.standard_normal((n, features), dtype=np.float32)
    return Graph(name=f"sbm-{n}", adjacency=adjacency, x=x, y=y, classes=[f"block {b}" for b in range(blocks)],
                 labels="synthetic: stochastic block model blocks", synthetic=True)


__all__ = ["Graph", "REAL_GRAPHS", "check_graph", "from_networkx", "load_graph", "make_sbm"]
