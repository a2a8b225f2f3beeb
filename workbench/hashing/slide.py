"""SLIDE-style hashed sparse layer: a linear layer whose neurons are retrieved per input by LSH and computed only
where retrieved, forward and backward.

Follows SLIDE (Chen et al., "SLIDE: In Defense of Smart Algorithms over Hardware Acceleration for Large-Scale Deep
Learning Systems", MLSys 2020) and its CPU successor (Daghaghi et al., "Accelerating SLIDE Deep Learning on Modern
CPUs: Vectorization, Quantizations, Memory Optimizations, and More", MLSys 2021):

* the ``out_features`` weight rows ``w_j`` are hashed into ``L`` tables of ``K``-hash buckets with the one LSH
  mechanism of the workbench (:class:`~workbench.hashing.SimHash` or :class:`~workbench.hashing.DWTA` in
  :class:`~workbench.hashing.LSHTables`' item lists);
* for an input ``h`` the **active set** is the union of the ``L`` buckets ``h`` falls in: the neurons likely to have a
  large inner product ``⟨w_j, h⟩`` (for SimHash, neuron ``j`` is retrieved with probability
  ``1 − (1 − (1 − θ_j/π)^K)^L``, ``θ_j`` the angle between ``w_j`` and ``h``). At the output layer SLIDE adds the
  input's label, so :meth:`HashedSparseLinear.loss` is the softmax cross-entropy over ``active ∪ {target}``;
* only active neurons are computed: ``z[b, a] = ⟨h[b], w_{idx[b, a]}⟩ + bias[idx[b, a]]``, and only their rows get a
  gradient (a sparse-row gradient by default: ``weight.grad`` is a coalesced sparse COO tensor holding just the rows
  some input touched, which ``torch.optim.SGD`` applies without touching the others);
* the tables are rebuilt from the current weights every ``rebuild_every`` training steps (SLIDE's schedule), since
  the weights move away from the buckets they were hashed into.

The active sets are held as a left-aligned ``(B, A)`` index with a count per input (``A`` the largest count); the
products run in numba kernels (:mod:`workbench.kernels.cpu_slide`) that read the active rows in place, or in torch
(``backend="torch"``: a gather of the active rows, the reference path) where numba is missing or the tensors are
not on the CPU. The per-step torch ops (checks, hashing a batch, bucket lookups) run on one torch thread
(:func:`workbench.config.torch_threads`): they are small, and torch's intra-op threads cost far more than they save
on them, most of all on a loaded machine (measured: SimHash codes of 128 inputs × 416 projections 0.7 ms on one
thread, 45-85 ms on two busy cores); a table rebuild inside (large products and a sort) gets the caller's count back.

>>> layer = HashedSparseLinear(16, 1000, K=4, L=4, seed=0)
>>> h = torch.randn(8, 16)
>>> out = layer(h)                      # SparseActivations(values, index, mask), each (8, A)
>>> out.values.shape == out.index.shape == out.mask.shape
True
>>> 0 < layer.stats()["active_fraction"] < 1
True
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workbench.checks import integer, option
from workbench.config import outer_torch_threads, torch_threads
from workbench.errors import DataError, DTypeError, NonFiniteError, ShapeError
from workbench.hashing.families import HASH_FAMILIES, make_family
from workbench.hashing.tables import DEFAULT_MAX_BUCKETS, LSHTables

BACKENDS = ("auto", "numba", "torch")
_WHERE = "HashedSparseLinear"


def _numba_kernels() -> Any:
    """:mod:`workbench.kernels.cpu_slide`, or ``None`` when numba is not installed."""
    try:
        from workbench.kernels import cpu_slide
    except ImportError:  # pragma: no cover - numba is a test dependency
        return None
    return cpu_slide


class SparseActivations(NamedTuple):
    """The output of :meth:`HashedSparseLinear.forward`: for input ``b`` the neurons ``index[b, a]`` with
    ``mask[b, a]`` true are active and have pre-activation ``values[b, a]``; padding positions hold index 0 and
    value 0 (and pass no gradient). Every tensor is ``(B, A)``, ``A`` the largest active set of the batch."""

    values: torch.Tensor
    index: torch.Tensor
    mask: torch.Tensor

    def to_dense(self, out_features: int) -> torch.Tensor:
        """``(B, out_features)`` with the active values in place and zeros elsewhere (differentiable)."""
        vals = torch.where(self.mask, self.values, torch.zeros_like(self.values))
        out = torch.zeros(len(vals), out_features, dtype=vals.dtype, device=vals.device)
        return out.scatter_add(1, self.index, vals)


class _SparseLinearNumba(torch.autograd.Function):
    """``z[b, a] = ⟨h[b], W[idx[b, a]]⟩ + bias[idx[b, a]]`` for ``a < count[b]``, 0 beyond; backward gives
    ``∂h``, and ``∂W``, ``∂bias`` on the touched rows only (sparse COO, or dense with zero rows elsewhere)."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, idx: torch.Tensor,
                count: torch.Tensor, sparse_grad: bool) -> torch.Tensor:
        k = _numba_kernels()
        hn, wn = h.detach().contiguous().numpy(), weight.detach().numpy()
        bn = bias.detach().numpy() if bias is not None else np.zeros(len(wn), wn.dtype)
        out = np.zeros(idx.shape, wn.dtype)
        k.sparse_logits(hn, wn, bn, idx.numpy(), count.numpy(), out)
        ctx.save_for_backward(h, weight, idx, count)
        ctx.sparse_grad, ctx.has_bias = sparse_grad, bias is not None
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        h, weight, idx, count = ctx.saved_tensors
        gn = g.detach().to(weight.dtype).contiguous().numpy()
        return (*_numba_backward(ctx, gn, h, weight, idx, count), None, None, None)


class _SparseSoftmaxLossNumba(torch.autograd.Function):
    """Mean softmax cross-entropy over each input's active set, the target at position ``tpos[b]``: logits, loss and
    the logits' gradient in one fused kernel; backward as :class:`_SparseLinearNumba`'s."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, idx: torch.Tensor,
                count: torch.Tensor, tpos: torch.Tensor, sparse_grad: bool) -> torch.Tensor:
        k = _numba_kernels()
        hn, wn = h.detach().contiguous().numpy(), weight.detach().numpy()
        bn = bias.detach().numpy() if bias is not None else np.zeros(len(wn), wn.dtype)
        B = len(hn)
        losses = np.empty(B, np.float64)
        g = np.empty(idx.shape, wn.dtype)
        k.sparse_softmax_xent(hn, wn, bn, idx.numpy(), count.numpy(), tpos.numpy(), 1.0 / B, losses, g)
        ctx.save_for_backward(h, weight, idx, count)
        ctx.g, ctx.sparse_grad, ctx.has_bias = g, sparse_grad, bias is not None
        return torch.tensor(losses.mean(), dtype=h.dtype)

    @staticmethod
    def backward(ctx: Any, go: torch.Tensor) -> tuple[Any, ...]:
        h, weight, idx, count = ctx.saved_tensors
        gn = ctx.g if float(go) == 1.0 else ctx.g * np.asarray(float(go), ctx.g.dtype)
        return (*_numba_backward(ctx, gn, h, weight, idx, count), None, None, None, None)


def _numba_backward(ctx: Any, gn: np.ndarray, h: torch.Tensor, weight: torch.Tensor, idx: torch.Tensor,
                    count: torch.Tensor) -> tuple[Any, Any, Any]:
    """``(∂h, ∂W, ∂bias)`` from the logits' gradient ``gn`` (``(B, A)``), the weight ones on the touched rows only."""
    k = _numba_kernels()
    wn, idn, cn = weight.detach().numpy(), idx.numpy(), count.numpy()
    gh = gw = gb = None
    if ctx.needs_input_grad[0]:
        out = np.empty(h.shape, wn.dtype)
        k.sparse_grad_input(gn, wn, idn, cn, out)
        gh = torch.from_numpy(out).to(h.dtype)
    if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
        hn = h.detach().to(weight.dtype).contiguous().numpy()
        rows, ptr, pairs = k.row_csr(idn, cn, len(wn))
        rw = np.empty((len(rows), wn.shape[1]), wn.dtype)
        rb = np.empty(len(rows), wn.dtype)
        k.sparse_grad_rows(gn, hn, ptr, pairs, idn.shape[1], rw, rb)
        gw, gb = _row_grads(torch.from_numpy(rows), torch.from_numpy(rw), torch.from_numpy(rb), weight.shape,
                            ctx.sparse_grad)
        if not ctx.needs_input_grad[1]:
            gw = None
        if not (ctx.has_bias and ctx.needs_input_grad[2]):
            gb = None
    return gh, gw, gb


def _row_grads(rows: torch.Tensor, rw: torch.Tensor, rb: torch.Tensor, shape: torch.Size,
               sparse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight and bias gradients from their touched rows (ascending, distinct)."""
    if sparse:
        gw = torch.sparse_coo_tensor(rows[None], rw, tuple(shape), is_coalesced=True, check_invariants=False)
        gb = torch.sparse_coo_tensor(rows[None], rb, (shape[0],), is_coalesced=True,
                                     check_invariants=False)
        return gw, gb
    gw = torch.zeros(tuple(shape), dtype=rw.dtype).index_copy_(0, rows, rw)
    gb = torch.zeros(shape[0], dtype=rb.dtype).index_copy_(0, rows, rb)
    return gw, gb


def _sparse_linear_torch(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, idx: torch.Tensor,
                         mask: torch.Tensor, sparse_grad: bool) -> torch.Tensor:
    """The same product with torch ops: the active rows gathered (``F.embedding``, a sparse-row gradient when
    ``sparse_grad``), a batched dot product, padding set to 0 (so it passes no gradient)."""
    wg = F.embedding(idx, weight, sparse=sparse_grad)  # (B, A, d)
    z = torch.bmm(wg, h[:, :, None]).squeeze(-1)
    if bias is not None:
        z = z + bias[idx]
    return torch.where(mask, z, torch.zeros_like(z))


class HashedSparseLinear(nn.Module):
    """A linear layer ``in_features → out_features`` computed, per input, only on the neurons its LSH buckets
    retrieve (SLIDE). See the module docstring for the method.

    Parameters: ``K`` hashes per table and ``L`` tables of the hash ``family`` (``"simhash"`` or ``"dwta"``; extra
    keywords such as ``bin_size`` go to the family); ``rebuild_every`` training steps between table rebuilds
    (``None``: only the first build and explicit :meth:`rebuild` calls); ``seed`` fixes the initial weights (as
    ``nn.Linear``'s: uniform in ``±1/√in_features``) and the hash functions; ``all_active=True`` makes every neuron
    active for every input (the layer then equals ``nn.Linear``; a test setting and a baseline); ``sparse_grad``
    gives ``weight.grad`` / ``bias.grad`` as sparse COO tensors holding only the touched rows (apply them with
    ``torch.optim.SGD``; ``False``: dense gradients, zero outside the touched rows); ``backend`` picks the numba
    kernels or the torch gather path (``"auto"``: numba on CPU tensors when installed).

    A training step is a call of :meth:`forward` or :meth:`loss` in training mode; it rebuilds the tables first when
    they were never built or ``rebuild_every`` steps have passed since the last build.
    """

    def __init__(self, in_features: int, out_features: int, K: int = 6, L: int = 8, rebuild_every: int | None = 50,
                 family: str = "simhash", seed: int = 0, bias: bool = True, all_active: bool = False,
                 sparse_grad: bool = True, backend: str = "auto", max_buckets: int = DEFAULT_MAX_BUCKETS,
                 dtype: torch.dtype = torch.float32, **family_kw: Any) -> None:
        super().__init__()
        self.in_features = integer("in_features", in_features, low=1, where=_WHERE)
        self.out_features = integer("out_features", out_features, low=2, where=_WHERE)
        self.K = integer("K", K, low=1, where=_WHERE)
        self.L = integer("L", L, low=1, where=_WHERE)
        self.rebuild_every = None if rebuild_every is None else integer("rebuild_every", rebuild_every, low=1,
                                                                        where=_WHERE)
        option("family", family, tuple(HASH_FAMILIES), where=_WHERE)
        self.backend = option("backend", backend, BACKENDS, where=_WHERE)
        if dtype not in (torch.float32, torch.float64):
            raise DTypeError(f"{_WHERE}: dtype must be torch.float32 or torch.float64, got {dtype}")
        self.seed = integer("seed", seed, where=_WHERE)
        self.all_active, self.sparse_grad = bool(all_active), bool(sparse_grad)
        gen = torch.Generator().manual_seed(self.seed)
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight = nn.Parameter(torch.empty(self.out_features, self.in_features, dtype=dtype).uniform_(
            -bound, bound, generator=gen))
        self.bias = (nn.Parameter(torch.empty(self.out_features, dtype=dtype).uniform_(-bound, bound, generator=gen))
                     if bias else None)
        self.family = make_family(family, self.in_features, self.K, self.L, seed=self.seed, **family_kw)
        self.tables = LSHTables(self.family, max_buckets=max_buckets, dtype=torch.float32)
        self._built = False
        self.rebuilds = 0
        self.steps = 0
        self._since_rebuild = 0
        self._last = {"active_fraction": float("nan"), "mean_active": float("nan")}
        self._sum_fraction = 0.0
        self._n_batches = 0
        # loaded weights were never hashed: the next step (or active_sets call) rebuilds the tables from them
        self.register_load_state_dict_post_hook(lambda module, _keys: setattr(module, "_built", False))

    # ------------------------------------------------------------------ checks
    def _check_input(self, h: Any, where: str) -> torch.Tensor:
        if not isinstance(h, torch.Tensor):
            raise DTypeError(f"{_WHERE}.{where}: h must be a float tensor of shape (B, {self.in_features}), got "
                             f"{type(h).__name__}")
        if not torch.is_floating_point(h):
            raise DTypeError(f"{_WHERE}.{where}: h must be a floating-point tensor, got dtype {h.dtype}")
        if h.ndim != 2 or h.shape[1] != self.in_features or h.shape[0] < 1:
            raise ShapeError(f"{_WHERE}.{where}: h must have shape (B, {self.in_features}) with B >= 1, got "
                             f"{tuple(h.shape)}")
        finite = torch.isfinite(h.detach())
        if not bool(finite.all()):
            b, j = (int(v) for v in (~finite).nonzero()[0])
            raise NonFiniteError(f"{_WHERE}.{where}: h must be finite, got {float(h[b, j])} at [{b}, {j}]; nothing "
                                 "was computed and the layer is unchanged")
        return h.to(self.weight.dtype)

    def _check_target(self, target: Any, batch: int) -> torch.Tensor:
        if not isinstance(target, torch.Tensor) or target.dtype.is_floating_point or target.is_complex() \
                or target.dtype == torch.bool:
            raise DTypeError(f"{_WHERE}.loss: target must be an integer tensor of class ids, got "
                             f"{getattr(target, 'dtype', type(target).__name__)}")
        if tuple(target.shape) != (batch,):
            raise ShapeError(f"{_WHERE}.loss: target must have shape ({batch},), one class id per input, got "
                             f"{tuple(target.shape)}")
        lo, hi = int(target.min()), int(target.max())
        if lo < 0 or hi >= self.out_features:
            bad = lo if lo < 0 else hi
            raise DataError(f"{_WHERE}.loss: labels must lie in [0, {self.out_features}) (out_features), got {bad}; "
                            "nothing was computed and the layer is unchanged")
        return target.to(torch.int64)

    # ------------------------------------------------------------------ tables
    def rebuild(self) -> None:
        """Hash the current weight rows into the tables (replacing the previous index). Non-finite weights raise
        :class:`~workbench.errors.NonFiniteError` and leave the tables and counters as they were."""
        w = self.weight.detach()
        finite = torch.isfinite(w)
        if not bool(finite.all()):
            r, c = (int(v) for v in (~finite).nonzero()[0])
            raise NonFiniteError(f"{_WHERE}.rebuild: the weights must be finite to be hashed, got {float(w[r, c])} "
                                 f"at [{r}, {c}] ({int((~finite).sum())} non-finite entries); the hash tables are "
                                 "unchanged")
        chunk = 1 << 16  # hash the rows in chunks: the (rows, K·L) projections of 1M neurons would take GiBs
        codes = torch.cat([self.family.codes(w[i:i + chunk]) for i in range(0, len(w), chunk)])
        self.tables.index(codes)
        self._built = True
        self.rebuilds += 1
        self._since_rebuild = 0

    def _step(self) -> None:
        """Count a training step, rebuilding first when the schedule says so."""
        if not self.all_active and (not self._built or (self.rebuild_every is not None
                                                         and self._since_rebuild >= self.rebuild_every)):
            with torch_threads(outer_torch_threads()):
                self.rebuild()
        self.steps += 1
        self._since_rebuild += 1

    # ------------------------------------------------------------------ active sets
    def _use_numba(self, h: torch.Tensor) -> bool:
        if self.backend == "torch" or h.device.type != "cpu":
            return False
        if _numba_kernels() is None:
            if self.backend == "numba":
                from workbench.errors import UnavailableError
                raise UnavailableError(f"{_WHERE}: backend='numba' needs numba (pip install 'workbench[cpu]')")
            return False
        return True

    def active_sets(self, h: torch.Tensor, extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(index (B, A), count (B,))``: input ``b``'s active neurons are ``index[b, :count[b]]``: ``extra[b]``
        first when given, then the union of its ``L`` retrieved buckets (all neurons when ``all_active``). Builds
        the tables first when they were never built."""
        h = self._check_input(h, "active_sets")
        if extra is not None:
            extra = self._check_target(extra, len(h))
        return self._active(h, extra)

    def _active(self, h: torch.Tensor, extra: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        B, N = len(h), self.out_features
        if self.all_active:
            idx = torch.arange(N, device=h.device).expand(B, N).contiguous()
            return idx, torch.full((B,), N, dtype=torch.int64, device=h.device)
        if not self._built:
            self.rebuild()
        lo, hi, ids = self.tables.bucket_ranges(h.detach())
        ext = extra if extra is not None else torch.full((B,), -1, dtype=torch.int64)
        if self._use_numba(h):
            k = _numba_kernels()
            idx, count = k.union_active(lo.numpy(), hi.numpy(), ids.numpy(), ext.cpu().numpy(), N)
            return torch.from_numpy(idx), torch.from_numpy(count)
        return _union_torch(lo, hi, ids, ext.to(lo.device), N)

    def _sparse(self, h: torch.Tensor, idx: torch.Tensor, count: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = torch.arange(idx.shape[1], device=idx.device)[None] < count[:, None]
        if self._use_numba(h):
            z = _SparseLinearNumba.apply(h, self.weight, self.bias, idx, count, self.sparse_grad)
        else:
            z = _sparse_linear_torch(h, self.weight, self.bias, idx, mask, self.sparse_grad)
        return z, mask

    def _record(self, count: torch.Tensor) -> None:
        mean = float(count.double().mean())
        frac = mean / self.out_features
        self._last = {"active_fraction": frac, "mean_active": mean}
        if self.training:
            self._sum_fraction += frac
            self._n_batches += 1

    # ------------------------------------------------------------------ the OutputLayer protocol
    def forward(self, h: torch.Tensor) -> SparseActivations:
        """The active neurons' pre-activations as :class:`SparseActivations` (values, index, mask; ``(B, A)``).
        Gradients reach ``h`` and only the active rows of ``weight`` / ``bias``."""
        with torch_threads(1):  # small per-step ops: see the module docstring
            return self._forward(h)

    def _forward(self, h: torch.Tensor) -> SparseActivations:
        h = self._check_input(h, "forward")
        if self.training:
            self._step()
        idx, count = self._active(h, None)
        z, mask = self._sparse(h, idx, count)
        self._record(count)
        return SparseActivations(z, idx, mask)

    def loss(self, h: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean softmax cross-entropy over each input's active set ∪ {target} (SLIDE's output layer): equal to
        ``F.cross_entropy(full_logits(h), target)`` when every neuron is active."""
        if self.all_active:  # (B, out_features) products: torch's threads pay off
            return self._loss(h, target)
        with torch_threads(1):  # small per-step ops: see the module docstring
            return self._loss(h, target)

    def _loss(self, h: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        h = self._check_input(h, "loss")
        target = self._check_target(target, len(h))
        if self.training:
            self._step()
        idx, count = self._active(h, target.to(h.device))
        self._record(count)
        # the target's position in its active set: first (the union puts it there), or its id when all are active
        tpos = target.clone() if self.all_active else torch.zeros_like(target)
        if self._use_numba(h):
            return _SparseSoftmaxLossNumba.apply(h, self.weight, self.bias, idx, count, tpos, self.sparse_grad)
        z, mask = self._sparse(h, idx, count)
        pos = tpos.to(idx.device)
        logits = z.masked_fill(~mask, float("-inf"))
        return F.cross_entropy(logits, pos)

    def full_logits(self, h: torch.Tensor) -> torch.Tensor:
        """The exact dense output ``h Wᵀ + bias``, ``(B, out_features)`` (evaluation)."""
        h = self._check_input(h, "full_logits")
        return F.linear(h, self.weight, self.bias)

    def stats(self) -> dict[str, float]:
        """``active_fraction`` (mean active neurons / out_features over the last batch), ``active_fraction_mean``
        (running mean over the training batches), ``mean_active`` = ``touched_per_sample`` (active neurons per input,
        last batch), ``rebuilds``, ``steps``."""
        running = self._sum_fraction / self._n_batches if self._n_batches else float("nan")
        return {"active_fraction": self._last["active_fraction"], "active_fraction_mean": running,
                "mean_active": self._last["mean_active"], "touched_per_sample": self._last["mean_active"],
                "rebuilds": float(self.rebuilds),
                "steps": float(self.steps), "out_features": float(self.out_features)}

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, family={self.family!r}, "
                f"rebuild_every={self.rebuild_every}, all_active={self.all_active}")


def _union_torch(lo: torch.Tensor, hi: torch.Tensor, ids: torch.Tensor, extra: torch.Tensor,
                 n_items: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`workbench.kernels.cpu_slide.union_active` in torch (sorted ids after ``extra``): the bucket ranges
    expanded with ``repeat_interleave``, deduplicated with ``unique`` on ``b·N + id``."""
    B, L = lo.shape
    lengths = (hi - lo).reshape(-1)
    row = torch.arange(B, device=lo.device).repeat_interleave(L).repeat_interleave(lengths)
    start = lo.reshape(-1).repeat_interleave(lengths)
    within = torch.arange(int(lengths.sum()), device=lo.device) - (lengths.cumsum(0) - lengths).repeat_interleave(
        lengths)
    items = ids[start + within]
    keep = extra >= 0
    key = torch.unique(row * n_items + items)
    if bool(keep.any()):  # drop the extras from the retrieved set, they go first
        ex = torch.arange(B, device=lo.device)[keep] * n_items + extra[keep]
        key = key[~torch.isin(key, ex)]
    r, j = key.div(n_items, rounding_mode="floor"), key % n_items
    first = keep.to(torch.int64)
    count = torch.bincount(r, minlength=B) + first
    width = max(int(count.max()), 1)
    idx = torch.zeros(B, width, dtype=torch.int64, device=lo.device)
    idx[keep, 0] = extra[keep]
    starts = torch.cumsum(count - first, 0) - (count - first)
    pos = torch.arange(len(r), device=lo.device) - starts[r] + first[r]
    idx[r, pos] = j
    return idx, count


__all__ = ["HashedSparseLinear", "SparseActivations", "BACKENDS"]
