"""NNSTD: the Neural Network Sparse Topology Distance of Liu et al. 2020, made exact under ties.

Liu, Mocanu, Matavalam, Pei, Pechenizkiy (2020), "Topological Insights into Sparse Neural Networks" (ECML-PKDD).
Two networks with the same layer sizes are compared layer by layer:

* neuron distance: the Jaccard distance of the two neurons' input-index sets, ``1 - |A ∩ B| / |A ∪ B|``
  (0 when both are empty);
* layer distance: the cost of the optimal one-to-one matching of the two layers' neurons (Hungarian algorithm,
  :func:`scipy.optimize.linear_sum_assignment`) divided by the number of neurons, so it lies in ``[0, 1]``;
* the matching of layer ``k`` relabels the inputs of layer ``k + 1`` before that layer is compared (inputs of the
  first layer are the data features, the same in both networks).

**Ties.** The published procedure keeps *one* optimal matching per layer. In sparse networks the optimal matching is
rarely unique (duplicated or empty neurons, and many pairs at distance exactly 1), and the next layer's distance depends
on which one the solver happened to return. The result is then neither permutation invariant (a copy of a network
with its hidden neurons shuffled can score > 0) nor symmetric (``nnstd(a, b) != nnstd(b, a)``).

**Our definition (tie-exact NNSTD).** Instead of one matching we carry the *set of all optimal matchings* of layer
``k`` forward. Two neurons of layer ``k`` (from either network) are *tied* when some optimal matching can pair them;
more precisely the classes are the connected components of the bipartite graph whose edges are the pairs used by at
least one optimal matching. (Those edges are exactly the tight edges, under an optimal dual, that lie on a zero-cost
alternating cycle: we get duals from Bellman–Ford on the exchange graph of the solver's matching and the cycles from
strongly connected components, so nothing is enumerated.) Layer ``k + 1`` then sees each input neuron only through
its class: a neuron's input set becomes a multiset of classes and the neuron distance is the weighted Jaccard distance
``1 - Σ_c min(a_c, b_c) / Σ_c max(a_c, b_c)`` of the class counts — the Jaccard distance the two neurons would have
under the most favourable relabelling of tied inputs. Properties:

* it equals the published NNSTD whenever every optimal matching (layers 1 … K-1) is unique, because the classes are
  then the matched pairs and the class counts are 0/1 (tested against :func:`nnstd_published`);
* it depends only on the two networks as graphs: permuting hidden neurons of either network changes nothing, and a
  permuted copy scores exactly 0 in every layer, duplicated and empty neurons included;
* it is symmetric, because Jaccard distances, optimal matchings and their tie classes are all symmetric;
* it never exceeds the lexicographic optimum over all matchings (minimising layer 1, then layer 2, … over every
  choice of optimal matchings — an NP-hard quadratic assignment in general), of which it is the natural relaxation.

**Two exact paths.** ``path="dense"`` builds the n × n distance matrix and runs the Hungarian algorithm (time ∝ n³,
memory ∝ n²); ``path="sparse"`` (:mod:`workbench.topology.nnstd_sparse`) solves the same assignment as a
maximum-weight matching on the pairs of neurons that share an input (all others are at distance exactly 1), certified
by its duals over every pair, and takes the tie classes from those duals: the same values and classes without an
n × n matrix. ``path="auto"`` (the default) picks by layer size and says which ran in the ``path`` column. Layer
distances are summed exactly (rationals) and rounded once, so both paths and every optimal matching give the same
float.

Every layer, the output layer included, is matched (as in the published procedure); ``match_outputs=False`` compares
output neuron ``i`` with output neuron ``i`` instead, for networks whose outputs are class labels.

Networks are ``nn.Module`` s (the nonzero pattern of each ``nn.Linear`` weight in module order, the stored indices of
a sparse weight, or the connections of a :class:`workbench.topology.SparseLinear`) or lists of 0/1 masks
(``out × in``: torch tensors dense or sparse, numpy arrays, scipy sparse matrices).

>>> import numpy as np
>>> a = [np.array([[1, 1, 0], [0, 0, 1]]), np.array([[1, 0]])]
>>> b = [np.array([[0, 0, 1], [1, 1, 0]]), np.array([[0, 1]])]   # a with its two hidden neurons swapped
>>> nnstd(a, b).mean
0.0
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components

from workbench.errors import DataError, ShapeError

#: Costs closer than this are treated as equal when looking for ties (costs are ratios of small integers, summed).
TIE_TOL = 1e-9


# ----------------------------------------------------------------------------------------------------------- input
@dataclass(frozen=True)
class Topology:
    """A network's connectivity: one boolean CSR matrix (out × in) per layer, in order, and the layer names."""

    masks: tuple[sp.csr_matrix, ...]
    names: tuple[str, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        """Neurons per level: inputs, then each layer's outputs."""
        return (self.masks[0].shape[1],) + tuple(m.shape[0] for m in self.masks)


def _mask_from_array(arr: Any, where: str) -> sp.csr_matrix:
    """A 0/1 array-like (numpy, torch dense/sparse, scipy sparse) as a boolean CSR matrix."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None  # type: ignore[assignment]
    if torch is not None and isinstance(arr, torch.Tensor):
        t = arr.detach().cpu()
        if t.layout in (torch.sparse_csr, torch.sparse_csc, torch.sparse_bsr, torch.sparse_bsc):
            t = t.to_sparse_coo()
        if t.layout == torch.sparse_coo:
            t = t.coalesce()
            idx = t.indices().numpy()
            vals = t.values().double().numpy()
            if t.dim() != 2:
                raise ShapeError(f"{where}: a mask must be 2-D (out × in), got shape {tuple(t.shape)}")
            arr = sp.coo_matrix((vals, (idx[0], idx[1])), shape=tuple(t.shape))
        else:
            arr = t.double().numpy() if t.dtype != torch.bool else t.numpy()
    if sp.issparse(arr):
        m = sp.csr_matrix(arr)
        m.sum_duplicates()
        vals = np.asarray(m.data)
    else:
        a = np.asarray(arr)
        if a.ndim != 2:
            raise ShapeError(f"{where}: a mask must be 2-D (out × in), got shape {a.shape}")
        vals = a.ravel()
        m = None
    if vals.dtype != bool:
        if not np.issubdtype(vals.dtype, np.number):
            raise DataError(f"{where}: mask of dtype {vals.dtype} is not numeric 0/1")
        bad = ~((vals == 0) | (vals == 1))
        if bad.any():
            shown = np.unique(vals[bad])[:5]
            raise DataError(f"{where}: masks must hold only 0 and 1, found {shown.tolist()} "
                            f"(shape {m.shape if m is not None else np.asarray(arr).shape}); "
                            "pass `weight != 0` for a weight matrix")
    if m is None:
        m = sp.csr_matrix(np.asarray(arr) != 0)
    else:
        m = sp.csr_matrix(m != 0)
    m.sort_indices()
    return m.astype(bool)


def topology_of(net: Any) -> Topology:
    """The connectivity of ``net``: an ``nn.Module``, a :class:`Topology`, or a sequence of 0/1 masks (out × in).

    Modules contribute, in ``named_modules()`` order, every module with a ``topology_mask()`` method (the sparse
    layers of :mod:`workbench.topology.set_training`) and every ``nn.Linear`` (nonzero pattern of its weight, or the
    stored indices of a sparse weight). Raises :class:`DataError` for an empty network or masks that are not 0/1 and
    :class:`ShapeError` when consecutive layers do not connect.
    """
    if isinstance(net, Topology):
        return net
    masks: list[sp.csr_matrix] = []
    names: list[str] = []
    try:
        import torch.nn as nn
    except ImportError:  # pragma: no cover
        nn = None  # type: ignore[assignment]
    if nn is not None and isinstance(net, nn.Module):
        for name, mod in net.named_modules():
            if hasattr(mod, "topology_mask"):
                masks.append(_mask_from_array(mod.topology_mask(), f"layer {name!r}"))
                names.append(name)
            elif isinstance(mod, nn.Linear):
                w = mod.weight.detach()
                if w.layout == __import__("torch").strided:
                    w = w != 0
                else:  # sparse weight: its stored indices are the connections
                    w = w.to_sparse_coo().coalesce()
                    w = __import__("torch").sparse_coo_tensor(w.indices(), __import__("torch").ones(w._nnz()),
                                                              w.shape)
                masks.append(_mask_from_array(w, f"layer {name!r}"))
                names.append(name)
        if not masks:
            raise DataError(f"{type(net).__name__}: the module has no Linear or sparse layer to compare")
    elif isinstance(net, (str, bytes)) or not isinstance(net, Sequence | np.ndarray):
        raise DataError(f"cannot read a topology from {type(net).__name__}: pass an nn.Module or a list of "
                        "0/1 masks (out × in)")
    else:
        if len(net) == 0:
            raise DataError("empty network: no layers (masks) given")
        for k, m in enumerate(net):
            masks.append(_mask_from_array(m, f"layer {k}"))
            names.append(f"layer{k}")
    for k, m in enumerate(masks):
        if m.shape[0] == 0 or m.shape[1] == 0:
            raise DataError(f"empty network: layer {names[k]!r} has shape {m.shape}")
        if k and masks[k - 1].shape[0] != m.shape[1]:
            raise ShapeError(f"layer {names[k]!r} takes {m.shape[1]} inputs but layer {names[k - 1]!r} has "
                             f"{masks[k - 1].shape[0]} outputs (shapes {masks[k - 1].shape} -> {m.shape})")
    return Topology(tuple(masks), tuple(names))


def _check_same_shape(ta: Topology, tb: Topology) -> None:
    if len(ta.masks) != len(tb.masks):
        raise ShapeError(f"the networks have different layer counts: {len(ta.masks)} vs {len(tb.masks)} "
                         f"(sizes {ta.sizes} vs {tb.sizes})")
    for k, (ma, mb) in enumerate(zip(ta.masks, tb.masks)):
        if ma.shape != mb.shape:
            raise ShapeError(f"layer {k} ({ta.names[k]!r} / {tb.names[k]!r}) has shape {ma.shape} in the first "
                             f"network and {mb.shape} in the second")


# ------------------------------------------------------------------------------------------------------- distances
def jaccard_distance_matrix(a: sp.spmatrix, b: sp.spmatrix) -> np.ndarray:
    """All neuron distances between two layers: ``D[i, j] = 1 - Σ min(a_i, b_j) / Σ max(a_i, b_j)``.

    ``a`` (n_a × m) and ``b`` (n_b × m) hold nonnegative integer counts per input (0/1 for plain input sets, where
    this is the Jaccard distance of the sets); two empty rows are at distance 0. Intersections come from sparse
    products ``(a ≥ t)·(b ≥ t)ᵀ`` summed over thresholds ``t`` (one product for 0/1 masks), never from Python loops.
    """
    a = sp.csr_matrix(a, dtype=np.int64)
    b = sp.csr_matrix(b, dtype=np.int64)
    if a.shape[1] != b.shape[1]:
        raise ShapeError(f"rows to compare have {a.shape[1]} and {b.shape[1]} inputs")
    top = int(min(a.max() if a.nnz else 0, b.max() if b.nnz else 0))
    inter = np.zeros((a.shape[0], b.shape[0]), dtype=np.float64)
    for t in range(1, top + 1):
        at = sp.csr_matrix(a >= t, dtype=np.float64)
        bt = sp.csr_matrix(b >= t, dtype=np.float64)
        inter += (at @ bt.T).toarray()
    sa = np.asarray(a.sum(axis=1), dtype=np.float64).ravel()
    sb = np.asarray(b.sum(axis=1), dtype=np.float64).ravel()
    union = sa[:, None] + sb[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(union > 0, 1.0 - inter / np.where(union > 0, union, 1.0), 0.0)
    return d


@dataclass
class _Matching:
    cost: float
    rows: np.ndarray  # column matched to each row
    row_class: np.ndarray
    col_class: np.ndarray
    n_classes: int


def optimal_matching_classes(d: np.ndarray, tol: float = TIE_TOL) -> _Matching:
    """Optimal assignment of the square cost matrix ``d`` and the tie classes of all its optimal assignments.

    Rows ``i`` and columns ``j`` share a class when they lie in one connected component of the graph of pairs used
    by some optimal assignment. Method: take the solver's assignment ``σ``; in the exchange graph on columns, the arc
    ``σ(i) → j`` (give column ``j`` to row ``i``) costs ``d[i, j] - d[i, σ(i)]``. ``σ`` optimal means no negative
    cycle, so Bellman–Ford from a virtual source gives potentials ``p``; a pair ``(i, j)`` is in some optimal
    assignment iff its arc is tight (reduced cost 0) and lies on a cycle of tight arcs, i.e. both ends are in one
    strongly connected component of the tight graph. Class ``i`` := component of ``σ(i)``; class of ``j`` := its own.
    """
    n = d.shape[0]
    r, c = linear_sum_assignment(d)
    sigma = np.empty(n, dtype=np.int64)
    sigma[r] = c
    cost = float(d[r, c].sum())
    # arcs between columns: w[k, j] = d[row owning k, j] - d[row owning k, k]
    owner = np.empty(n, dtype=np.int64)
    owner[sigma] = np.arange(n)
    w = d[owner] - d[owner, np.arange(n)][:, None]
    p = np.zeros(n)
    for _ in range(n + 1):
        cand = (p[:, None] + w).min(axis=0)
        improved = cand < p - tol
        if not improved.any():
            break
        p = np.where(improved, cand, p)
    red = p[:, None] + w - p[None, :]
    ki, ji = np.nonzero(red <= tol)
    graph = sp.csr_matrix((np.ones(ki.size, dtype=np.int8), (ki, ji)), shape=(n, n))
    n_classes, labels = connected_components(graph, directed=True, connection="strong")
    return _Matching(cost, sigma, labels[sigma], labels, int(n_classes))


def _relabel(mask: sp.csr_matrix, classes: np.ndarray, n_classes: int) -> sp.csr_matrix:
    """Class counts per neuron: ``mask (out × in) · onehot(classes) (in × n_classes)``."""
    onehot = sp.csr_matrix((np.ones(classes.size, dtype=np.int64), (np.arange(classes.size), classes)),
                           shape=(classes.size, n_classes))
    return sp.csr_matrix(mask.astype(np.int64) @ onehot)


# --------------------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class NNSTDResult:
    """What :func:`nnstd` returns: ``layers`` (DataFrame: ``layer, name, distance, neurons, tie_classes, path``) and
    ``mean`` (the mean of the layer distances, the network's NNSTD). Unpacks as ``layers, mean = nnstd(a, b)``."""

    layers: pd.DataFrame
    mean: float
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __iter__(self):
        yield self.layers
        yield self.mean

    @property
    def table(self) -> pd.DataFrame:
        """The per-layer table (the lab-wide ``.table`` of a result object)."""
        return self.layers

    @property
    def distances(self) -> np.ndarray:
        """Layer distances in order, as a numpy array."""
        return self.layers["distance"].to_numpy()


def _result(rows: list[dict]) -> NNSTDResult:
    df = pd.DataFrame(rows, columns=["layer", "name", "distance", "neurons", "tie_classes", "path"])
    mean = float(df["distance"].mean())
    df.attrs["mean"] = mean
    return NNSTDResult(df, mean)


# ------------------------------------------------------------------------------------------------------------ nnstd
#: ``path="auto"`` takes the sparse exact path for layers of at least this many neurons. Measured on SET topologies
#: (benchmarks/topology_scale_nnstd.py, 2 cores): the sparse path is already faster at 1,000 neurons (0.13 s against
#: 0.19 s for a related 784-1000-1000-10 pair, 0.18 s against 0.32 s for an independent one; 0.38 s against 4.6 s at
#: 3,000) and the gap grows as n³; below it the dense path avoids the sparse path's fixed costs (numba's first
#: compile, thread start-up).
SPARSE_MIN_NEURONS = 1000
#: ... unless the overlap graph is nearly dense: a sparse pass touches ``scan_work = Σ_c deg_a(c) · deg_b(c)``
#: incidences, the dense solve costs about n³ units. Measured at 3,000 neurons (independent pair): ≲ 8e-9 s per
#: incidence for the whole sparse path (all passes and the matching) against ≈ 8.5e-11 s per unit of n³, a ratio of
#: about 100; so the dense path is taken when ``scan_work > n³ / 100`` and its matrices fit
#: (:data:`DENSE_MAX_BYTES`). A rough rule: it only has to tell a nearly dense overlap graph from a sparse one.
SPARSE_SCAN_RATIO = 100
#: The dense path is refused (``path="dense"``) or not chosen (``path="auto"``) above this estimated peak memory.
DENSE_MAX_BYTES = 8 * 2**30
#: Peak bytes of the dense path per entry of the n × n matrices (distance matrix, its float64 temporaries, the
#: exchange-graph weights and reduced costs; measured with tracemalloc at n = 500 … 2000, see benchmarks).
DENSE_BYTES_PER_ENTRY = 48


def dense_cost_estimate(n: int) -> dict:
    """What the dense path needs for one layer of ``n`` neurons: ``bytes`` (peak, ≈ ``DENSE_BYTES_PER_ENTRY · n²``)
    and ``flops`` (the Hungarian solve's ``n³``; seconds ≈ a measured constant × n³, see the scale benchmark)."""
    return {"bytes": int(DENSE_BYTES_PER_ENTRY * n * n), "flops": float(n) ** 3}


def _exact_distance(ca: sp.csr_matrix, cb: sp.csr_matrix, sigma: np.ndarray) -> float:
    """Layer distance of the assignment ``i -> sigma[i]``: ``(n - Σ_i inter_i / union_i) / n`` summed exactly in
    rationals (grouped by union), then rounded once, so that every optimal assignment, on either path, gives the
    same float (a pair of empty rows has similarity 1)."""
    from fractions import Fraction

    n = ca.shape[0]
    cbs = cb[sigma]
    inter = np.asarray(ca.minimum(cbs).sum(axis=1), dtype=np.int64).ravel()
    union = (np.asarray(ca.sum(axis=1), dtype=np.int64).ravel() + np.asarray(cbs.sum(axis=1), dtype=np.int64).ravel()
             - inter)
    both_empty = union == 0
    total = Fraction(int(both_empty.sum()))
    us, inv = np.unique(union[~both_empty], return_inverse=True)
    num_per_union = np.zeros(us.size, dtype=np.int64)
    np.add.at(num_per_union, inv, inter[~both_empty])
    for u_, num in zip(us.tolist(), num_per_union.tolist()):
        total += Fraction(num, u_)
    return float((n - total) / n)


def _choose_path(path: str, ca: sp.csr_matrix, cb: sp.csr_matrix) -> str:
    from workbench.errors import MemoryBudgetError
    from workbench.topology.nnstd_sparse import scan_work

    n = ca.shape[0]
    dense_bytes = dense_cost_estimate(n)["bytes"]
    if path == "dense":
        if dense_bytes > DENSE_MAX_BYTES:
            raise MemoryBudgetError(f"nnstd(path='dense'): a layer of {n} neurons needs about "
                                    f"{dense_bytes / 2**30:.1f} GiB for its {n} × {n} matrices (limit "
                                    f"{DENSE_MAX_BYTES / 2**30:.0f} GiB); use path='sparse' or 'auto'")
        return "dense"
    if path == "sparse":
        return "sparse"
    if n < SPARSE_MIN_NEURONS:
        return "dense"
    if dense_bytes <= DENSE_MAX_BYTES and scan_work(ca, cb) * SPARSE_SCAN_RATIO > float(n) ** 3:
        return "dense"
    return "sparse"


def nnstd(a: Any, b: Any, *, match_outputs: bool = True, tol: float = TIE_TOL, path: str = "auto") -> NNSTDResult:
    """Tie-exact NNSTD between two networks of equal layer sizes (see the module docstring for the definition).

    Returns an :class:`NNSTDResult`: ``.layers`` has one row per layer (``layer`` index, ``name``, ``distance`` in
    [0, 1], ``neurons``, ``tie_classes`` = number of classes of tied neurons that the next layer sees; equal to
    ``neurons`` when the optimal matching is unique; ``path`` = which solver ran, ``"dense"`` or ``"sparse"``, or ``"identity"`` for outputs compared by index) and
    ``.mean`` is their mean.

    ``path``: ``"dense"`` (Hungarian on the n × n distance matrix: time ∝ n³, memory ∝ n²), ``"sparse"`` (the exact
    sparse path of :mod:`workbench.topology.nnstd_sparse`: maximum-weight matching on the overlapping pairs,
    certified by the duals), or ``"auto"``: sparse for layers of at least :data:`SPARSE_MIN_NEURONS` neurons unless
    their overlap graph is nearly dense and the dense matrices fit. Both give the same distances (summed exactly, in
    rationals) and the same tie classes.

    >>> import numpy as np
    >>> r = nnstd([np.eye(3)], [np.eye(3)[:, [1, 2, 0]]])   # one layer, same rows in another order
    >>> r.layers[["layer", "distance", "neurons", "path"]].to_dict("records")
    [{'layer': 0, 'distance': 0.0, 'neurons': 3, 'path': 'dense'}]
    """
    from workbench.checks import option

    path = option("path", path, ("auto", "dense", "sparse"), where="nnstd")
    ta, tb = topology_of(a), topology_of(b)
    _check_same_shape(ta, tb)
    if path == "dense":  # refuse before any work
        for m in ta.masks:
            _choose_path("dense", m, m)
    n_in = ta.masks[0].shape[1]
    cls_a = np.arange(n_in)
    cls_b = np.arange(n_in)
    n_cls = n_in
    rows = []
    last = len(ta.masks) - 1
    for k, (ma, mb) in enumerate(zip(ta.masks, tb.masks)):
        ca = _relabel(ma, cls_a, n_cls)
        cb = _relabel(mb, cls_b, n_cls)
        n = ca.shape[0]
        if k == last and not match_outputs:
            sigma, n_cls_next, ran = np.arange(n), n, "identity"
        else:
            ran = _choose_path(path, ca, cb)
            if ran == "dense":
                m = optimal_matching_classes(jaccard_distance_matrix(ca, cb), tol)
                sigma, cls_a, cls_b, n_cls_next = m.rows, m.row_class, m.col_class, m.n_classes
            else:
                from workbench.topology.nnstd_sparse import sparse_matching_classes

                sm = sparse_matching_classes(ca, cb, tol=tol)
                sigma, cls_a, cls_b, n_cls_next = sm.sigma, sm.row_class, sm.col_class, sm.n_classes
        dist = _exact_distance(ca, cb, sigma)
        rows.append(dict(layer=k, name=ta.names[k], distance=min(max(dist, 0.0), 1.0), neurons=n,
                         tie_classes=n_cls_next, path=ran))
        n_cls = n_cls_next
    return _result(rows)


def nnstd_published(a: Any, b: Any, *, match_outputs: bool = True) -> NNSTDResult:
    """The published NNSTD procedure, written directly (Python sets and loops): a reference, not for speed.

    For each layer: Jaccard distances between every pair of input-index sets (0 when both are empty), one optimal
    matching from :func:`scipy.optimize.linear_sum_assignment`, cost / neurons; the second network's neurons are then
    renamed after their partners, which relabels the inputs of its next layer. With ties the result depends on which
    optimal matching the solver returns (and so on neuron order): use :func:`nnstd` for a well-defined value. Its
    ``path`` column reads ``"published"``.
    """
    ta, tb = topology_of(a), topology_of(b)
    _check_same_shape(ta, tb)
    rename = {i: i for i in range(ta.masks[0].shape[1])}  # b's input label -> a's label
    rows = []
    last = len(ta.masks) - 1
    for k, (ma, mb) in enumerate(zip(ta.masks, tb.masks)):
        sets_a = [set(ma.indices[ma.indptr[i]:ma.indptr[i + 1]].tolist()) for i in range(ma.shape[0])]
        sets_b = [{rename[j] for j in mb.indices[mb.indptr[i]:mb.indptr[i + 1]].tolist()} for i in range(mb.shape[0])]
        n = len(sets_a)
        d = np.zeros((n, n))
        for i in range(n):
            for j in range(n):
                union = len(sets_a[i] | sets_b[j])
                d[i, j] = 0.0 if union == 0 else 1.0 - len(sets_a[i] & sets_b[j]) / union
        if k == last and not match_outputs:
            r, c = np.arange(n), np.arange(n)
        else:
            r, c = linear_sum_assignment(d)
        cost = float(sum(d[i, j] for i, j in zip(r, c)))
        rename = {int(j): int(i) for i, j in zip(r, c)}
        rows.append(dict(layer=k, name=ta.names[k], distance=cost / n, neurons=n, tie_classes=n, path="published"))
    return _result(rows)


# ------------------------------------------------------------------------------------------------------ pairwise
def _pair_task(args: tuple[int, int, Topology, Topology, bool, str]) -> tuple[int, int, list[float]]:
    i, j, ta, tb, match_outputs, path = args
    return i, j, nnstd(ta, tb, match_outputs=match_outputs, path=path).distances.tolist()


def nnstd_matrix(nets: Sequence[Any] | dict[str, Any], names: Sequence[str] | None = None, *,
                 match_outputs: bool = True, n_jobs: int = 2, parallel_min_neurons: int = 3000,
                 path: str = "auto") -> pd.DataFrame:
    """Pairwise tie-exact NNSTD of several networks: a long, tidy DataFrame for heatmaps.

    Columns ``a, b, layer, name, distance``: one row per ordered pair (both orders and the diagonal, so a pivot gives a
    full matrix) and layer. ``distance`` of the whole network is ``df.groupby(["a", "b"]).distance.mean()``.
    Each unordered pair is computed once (the distance is symmetric). When the networks are big
    (``parallel_min_neurons`` hidden+output neurons or more) the pairs are spread over ``n_jobs`` worker processes.
    ``path`` is passed to :func:`nnstd` (``"auto"``, ``"dense"`` or ``"sparse"``).
    """
    from workbench.checks import integer, option

    path = option("path", path, ("auto", "dense", "sparse"), where="nnstd_matrix")
    n_jobs = integer("n_jobs", n_jobs, low=1, where="nnstd_matrix")
    if isinstance(nets, dict):
        names = list(nets.keys()) if names is None else list(names)
        nets = list(nets.values())
    nets = list(nets)
    if not nets:
        raise DataError("nnstd_matrix: no networks given")
    names = [str(i) for i in range(len(nets))] if names is None else [str(x) for x in names]
    if len(names) != len(nets):
        raise DataError(f"nnstd_matrix: {len(names)} names for {len(nets)} networks")
    tops = [topology_of(n) for n in nets]
    for t in tops[1:]:
        _check_same_shape(tops[0], t)
    pairs = list(itertools.combinations(range(len(tops)), 2))
    tasks = [(i, j, tops[i], tops[j], match_outputs, path) for i, j in pairs]
    work = sum(tops[0].sizes[1:])
    results: list[tuple[int, int, list[float]]]
    if n_jobs > 1 and len(tasks) > 1 and work >= parallel_min_neurons:
        with ProcessPoolExecutor(max_workers=min(n_jobs, len(tasks))) as ex:
            results = list(ex.map(_pair_task, tasks))
    else:
        results = [_pair_task(t) for t in tasks]
    layer_names = tops[0].names
    rows = []
    for i in range(len(tops)):
        for k, nm in enumerate(layer_names):
            rows.append((names[i], names[i], k, nm, 0.0))
    for i, j, dist in results:
        for k, nm in enumerate(layer_names):
            rows.append((names[i], names[j], k, nm, dist[k]))
            rows.append((names[j], names[i], k, nm, dist[k]))
    df = pd.DataFrame(rows, columns=["a", "b", "layer", "name", "distance"])
    return df.sort_values(["a", "b", "layer"], key=lambda s: s.map({n: x for x, n in enumerate(names)})
                          if s.name in ("a", "b") else s).reset_index(drop=True)


__all__ = [
    "Topology",
    "topology_of",
    "jaccard_distance_matrix",
    "optimal_matching_classes",
    "NNSTDResult",
    "nnstd",
    "nnstd_published",
    "nnstd_matrix",
    "dense_cost_estimate",
    "SPARSE_MIN_NEURONS",
    "TIE_TOL",
]
