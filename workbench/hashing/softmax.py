"""LSHSoftmax: a softmax output layer over many classes, trained with sampled softmax and evaluated exactly.

**Sampled softmax with logit correction** (Bengio & Senécal 2008; Jean et al. 2015). For a hidden vector ``h`` with
logits ``o_c = ⟨w_c, h⟩ + b_c`` and target ``y``, the full loss is ``log Z − o_y`` with
``Z = e^{o_y} + Σ_{c≠y} e^{o_c}``. Draw ``m`` negatives ``s_1..s_m`` i.i.d. (with replacement) from a proposal
``q(·|h, y)`` that never proposes ``y``, and use the corrected logits ``o_{s_j} − log(m·q(s_j))``::

    loss = log( e^{o_y} + Σ_j e^{o_{s_j}} / (m q(s_j)) ) − o_y

``E_q[Σ_j e^{o_{s_j}} / (m q(s_j))] = Σ_{c≠y} e^{o_c}``: the estimate of the partition function ``Ẑ`` is **unbiased**
for any proposal that puts mass on every class (the test checks it by simulation). The loss and its gradient are
functions of ``Ẑ`` (``log Ẑ``, ``e^{o_c}/Ẑ``), so they carry an ``O(1/m)`` bias that vanishes as ``m`` grows; the
closer ``q`` is to the softmax itself, the smaller the variance of ``Ẑ``.

**Proposals** (``sampler=``)

* ``"uniform"``: ``q(c) = 1/(n−1)`` for ``c ≠ y``.
* ``"unigram"``: ``q(c) = p(c)/(1 − p(y))`` with ``p`` the normalised ``class_counts`` (drawn by inverse CDF).
* ``"lsh"`` (Daghaghi et al., ICML 2021, "A Tale of Two Efficient and Informative Negative Sampling Distributions",
  the LSH label sampler): the class vectors ``[w_c, b_c]`` are hashed with :class:`~workbench.hashing.SimHash` into
  ``L`` tables of ``K``-bit buckets (:class:`~workbench.hashing.LSHTables`, the workbench's one LSH), rebuilt every
  ``rebuild_every`` training steps as the weights move. For an input, ``[h, 1]`` is hashed with the same functions, so
  the classes in its buckets are those with a large angle-similarity to it, which are the classes with large logits:
  informative negatives, adapted to each input. One negative: pick a table ``l`` uniformly among the ``L'`` tables
  whose bucket ``B_l(h)`` holds a class other than ``y``, then a class uniformly from ``B_l(h) \\ {y}``. Its
  probability is exact and cheap::

      q(c | h, y) = (1/|L'|) Σ_{l ∈ L'} [c ∈ B_l(h)] / |B_l(h) \\ {y}|

  (``L`` code comparisons per negative; the paper uses the same per-table bucket probability). When every bucket
  is empty or holds only ``y``, the negatives are uniform over the other classes. Note that ``q`` is zero for classes
  in none of the query's buckets, so ``Ẑ`` then estimates the sum over the classes the tables can reach: the far
  classes, with tiny ``e^{o_c}``, are dropped, which is the paper's trade (and why the tables are rebuilt). The work
  per sample is ``L`` bucket look-ups, ``m`` draws and ``m·L`` code comparisons: independent of ``n_classes``
  (:meth:`LSHSoftmax.stats` reports the counted reads, ``touched_per_sample``).
* ``"full"``: the exact softmax cross-entropy (``F.linear`` + ``F.cross_entropy``, equal to ``nn.Linear`` +
  cross-entropy).

Evaluation always uses :meth:`LSHSoftmax.full_logits`, the exact dense logits. For sampled proposals the weight
gradient is sparse (``F.embedding(..., sparse=True)``: only the rows of the targets and negatives), so plain SGD
touches only those rows; the bias gradient is a dense vector of ``n`` numbers. The negatives are drawn on one torch
thread (:func:`workbench.config.torch_threads`): the draw is many small ops (hashing a batch, gathers, a
multinomial), on which torch's intra-op threads cost far more than they save on a busy machine (measured on 2 loaded
cores: one LSH draw of 256 × 64 negatives 13–19 ms on one thread, 170–370 ms on two).

>>> layer = LSHSoftmax(8, 1000, sampler="lsh", negatives=16, K=6, L=8, seed=0)
>>> h, y = torch.randn(4, 8), torch.tensor([1, 2, 3, 4])
>>> loss = layer.loss(h, y)
>>> loss.ndim, layer.full_logits(h).shape
(0, torch.Size([4, 1000]))
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from workbench.checks import integer, option
from workbench.config import torch_threads
from workbench.errors import DataError, NonFiniteError, ShapeError
from workbench.hashing.families import SimHash
from workbench.hashing.tables import LSHTables

SAMPLERS = ("lsh", "uniform", "unigram", "full")


class LSHSoftmax(nn.Module):
    """A linear output layer of ``n_classes`` logits trained with sampled softmax (see the module docstring).

    ``negatives``: negatives per sample (default ``min(64, n_classes − 1)``); ``K``, ``L``: bits per bucket and
    tables of the LSH sampler; ``rebuild_every``: training steps (calls of :meth:`loss` with gradients on) between
    table rebuilds (``None``: only the first build and explicit :meth:`rebuild` calls); ``class_counts``: label
    frequencies for ``"unigram"``; ``seed``: the hash functions and the sampling stream.
    """

    def __init__(self, in_features: int, n_classes: int, sampler: str = "lsh", negatives: int | None = None, *,
                 K: int = 8, L: int = 16, rebuild_every: int | None = 50, class_counts: Any = None,
                 seed: int = 0) -> None:
        super().__init__()
        where = "LSHSoftmax"
        self.in_features = integer("in_features", in_features, low=1, where=where)
        self.n_classes = integer("n_classes", n_classes, low=2, where=where)
        self.sampler = option("sampler", sampler, SAMPLERS, where=where)
        if negatives is None:
            negatives = min(64, self.n_classes - 1)
        self.negatives = integer("negatives", negatives, low=1, high=self.n_classes - 1, where=where)
        self.K = integer("K", K, low=1, where=where)
        self.L = integer("L", L, low=1, where=where)
        self.rebuild_every = None if rebuild_every is None else integer("rebuild_every", rebuild_every, low=1,
                                                                        where=where)
        self.seed = integer("seed", seed, where=where)
        probs = None
        if sampler == "unigram":
            probs = _unigram(class_counts, self.n_classes)
        elif class_counts is not None:
            _unigram(class_counts, self.n_classes)  # still checked
        family = SimHash(self.in_features + 1, self.K, self.L, seed=self.seed) if sampler == "lsh" else None
        if family is not None and family.n_buckets > 2 ** 22:
            raise DataError(f"{where}: K={K} gives {family.n_buckets} buckets per table; use K <= 22")
        self.weight = nn.Parameter(torch.empty(self.n_classes, self.in_features))
        self.bias = nn.Parameter(torch.empty(self.n_classes))
        self.reset_parameters()
        self._family = family
        self._tables: LSHTables | None = None
        self._cdf = None if probs is None else probs.cumsum(0)
        self._probs = probs
        self._generator = torch.Generator().manual_seed(self.seed + 7919)
        self.steps = 0
        self.rebuilds = 0
        self._samples = 0
        self._touched = 0

    @property
    def n_out(self) -> int:
        return self.n_classes

    def reset_parameters(self) -> None:
        """``nn.Linear``'s initialisation (uniform in ``±1/√in_features``); the tables are rebuilt before the next
        sampled step."""
        bound = 1.0 / math.sqrt(self.in_features)
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            self.bias.uniform_(-bound, bound)
        self._tables = None

    # ------------------------------------------------------------------ checks
    def _check(self, h: torch.Tensor, target: torch.Tensor | None) -> None:
        where = f"LSHSoftmax({self.in_features}, {self.n_classes})"
        if not isinstance(h, torch.Tensor) or h.ndim != 2 or h.shape[1] != self.in_features:
            shape = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
            raise ShapeError(f"{where}: h must be a (batch, {self.in_features}) float tensor, got {shape}")
        if not torch.is_floating_point(h):
            raise ShapeError(f"{where}: h must be a float tensor, got {h.dtype}")
        if not bool(torch.isfinite(h).all()):
            bad = int((~torch.isfinite(h)).any(1).nonzero()[0])
            raise NonFiniteError(f"{where}: h holds NaN or inf (first in row {bad}); the inputs must be finite")
        if target is None:
            return
        if not isinstance(target, torch.Tensor) or target.dtype not in (torch.int64, torch.int32) \
                or target.shape != (len(h),):
            what = f"{target.dtype} {tuple(target.shape)}" if isinstance(target, torch.Tensor) else type(target)
            raise ShapeError(f"{where}: target must be an integer tensor of shape ({len(h)},), got {what}")
        if len(target) and (int(target.min()) < 0 or int(target.max()) >= self.n_classes):
            bad = target[(target < 0) | (target >= self.n_classes)][0]
            raise DataError(f"{where}: labels must lie in [0, {self.n_classes}), got {int(bad)}")

    # ------------------------------------------------------------------ the protocol
    def full_logits(self, h: torch.Tensor) -> torch.Tensor:
        """The exact ``(B, n_classes)`` logits ``h Wᵀ + b``."""
        self._check(h, None)
        return F.linear(h, self.weight, self.bias)

    forward = full_logits

    def loss(self, h: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean training loss of the batch: exact cross-entropy for ``"full"``, else sampled softmax with the
        ``−log(m q)`` correction (module docstring). A call with gradients enabled counts as a training step for
        the rebuild schedule."""
        self._check(h, target)
        target = target.long()
        if torch.is_grad_enabled():
            self.steps += 1
        if self.sampler == "full":
            self._samples += len(h)
            self._touched += len(h) * self.n_classes
            return F.cross_entropy(F.linear(h, self.weight, self.bias), target)
        if self.sampler == "lsh" and (self._tables is None or (
                self.rebuild_every is not None and torch.is_grad_enabled() and self.steps > 1
                and (self.steps - 1) % self.rebuild_every == 0)):
            self.rebuild()
        with torch_threads(1):  # the draw is many small ops: see the module docstring
            neg, logq = self.sample(h.detach(), target)
        return self.sampled_loss(h, target, neg, logq)

    def sampled_loss(self, h: torch.Tensor, target: torch.Tensor, neg: torch.Tensor,
                     logq: torch.Tensor) -> torch.Tensor:
        """The corrected sampled-softmax loss for given negatives ``neg`` ``(B, m)`` and their ``log q``."""
        idx = torch.cat([target[:, None], neg], 1)  # (B, 1+m)
        w = F.embedding(idx, self.weight, sparse=True)  # (B, 1+m, d): sparse weight gradient
        logits = torch.bmm(w, h.unsqueeze(-1)).squeeze(-1) + self.bias[idx]
        m = neg.shape[1]
        correction = torch.cat([torch.zeros_like(logq[:, :1]), logq + math.log(m)], 1)
        logits = logits - correction.to(logits.dtype)
        return (torch.logsumexp(logits, 1) - logits[:, 0]).mean()

    def stats(self) -> dict[str, float]:
        """Negatives per sample, table rebuilds so far, and the reads counted per sample (``touched_per_sample``:
        bucket look-ups, ids drawn and codes compared for LSH; all ``n_classes`` logits for ``"full"``)."""
        per = self._touched / self._samples if self._samples else float("nan")
        neg = float(self.n_classes - 1 if self.sampler == "full" else self.negatives)
        return {"negatives": neg, "negative_fraction": neg / (self.n_classes - 1), "rebuilds": float(self.rebuilds),
                "steps": float(self.steps), "touched_per_sample": float(per)}

    @torch.no_grad()
    def rebuild(self) -> None:
        """Hash the class vectors ``[w_c, b_c]`` into the LSH tables (``"lsh"`` only; a no-op otherwise). Non-finite
        weights raise :class:`~workbench.errors.NonFiniteError` and leave the tables as they were."""
        if not (bool(torch.isfinite(self.weight).all()) and bool(torch.isfinite(self.bias).all())):
            raise NonFiniteError(f"LSHSoftmax.rebuild: the weights of the {self.n_classes} classes hold NaN or inf; "
                                 "the hash tables are unchanged (lower the learning rate)")
        if self._family is None:
            return
        tables = LSHTables(self._family, max_buckets=2 ** 22, dtype=torch.float32)
        tables.index(tables.family.codes(self._augmented(self.weight, self.bias)))
        tables.bucket_starts()  # build the start offsets now
        self._tables = tables
        self.rebuilds += 1

    @staticmethod
    def _augmented(x: torch.Tensor, last: torch.Tensor | float) -> torch.Tensor:
        col = last.detach()[:, None] if isinstance(last, torch.Tensor) else torch.full((len(x), 1), float(last))
        return torch.cat([x.detach(), col.to(x.dtype)], 1)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, h: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(negatives, log q)``, both ``(B, m)``: ``m`` negatives per row drawn from the proposal, never the
        row's target, and the log of each one's proposal probability."""
        B, m, n = len(h), self.negatives, self.n_classes
        target = target.long()
        self._samples += B
        if self.sampler == "uniform":
            self._touched += B * m
            return _uniform_except(target, m, n, self._generator), torch.full((B, m), -math.log(n - 1))
        if self.sampler == "unigram":
            return self._unigram_sample(target, m)
        if self._tables is None:
            self.rebuild()
        return self._lsh_sample(h, target, m)

    def _unigram_sample(self, target: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        B = len(target)
        cdf, probs = self._cdf, self._probs
        u = torch.rand(B, m, generator=self._generator, dtype=cdf.dtype) * cdf[-1]
        neg = torch.searchsorted(cdf, u).clamp_max(self.n_classes - 1)
        hit = neg == target[:, None]
        while bool(hit.any()):  # rejection of the target: the draws left follow p restricted to c != y
            u = torch.rand(int(hit.sum()), generator=self._generator, dtype=cdf.dtype) * cdf[-1]
            neg[hit] = torch.searchsorted(cdf, u).clamp_max(self.n_classes - 1)
            hit = neg == target[:, None]
        self._touched += B * m
        q = probs[neg] / (1.0 - probs[target])[:, None]
        return neg, q.log().float()

    def _lsh_sample(self, h: torch.Tensor, target: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        tables = self._tables
        B, L, n = len(h), self.L, self.n_classes
        codes = tables.codes(self._augmented(h, 1.0))  # (B, L)
        keys = codes + tables._offsets
        starts, ids = tables.bucket_starts()
        lo, hi = starts[keys], starts[keys + 1]  # (B, L) each: one read per table
        item_codes = tables.item_codes()
        target_in = item_codes[target] == codes  # (B, L): is y in the query's bucket of table l
        size = hi - lo - target_in.long()  # |B_l(h) \ {y}|
        valid = size > 0
        n_valid = valid.sum(1)
        has = n_valid > 0
        weights = torch.where(has[:, None], valid.float(), torch.ones_like(size, dtype=torch.float32))
        tab = torch.multinomial(weights, m, replacement=True, generator=self._generator)  # (B, m)
        lo_t, hi_t, size_t, tin_t = lo.gather(1, tab), hi.gather(1, tab), size.gather(1, tab), target_in.gather(1, tab)
        u = (torch.rand(B, m, generator=self._generator) * size_t.clamp_min(1)).long()
        u = torch.minimum(u, (size_t - 1).clamp_min(0))
        pos = (lo_t + u).clamp_max(len(ids) - 1)
        neg = ids[pos]
        swap = tin_t & (neg == target[:, None])  # y's slot stands for the bucket's last item (uniform over B \ {y})
        neg = torch.where(swap, ids[(hi_t - 1).clamp_min(0)], neg)
        cand_codes = item_codes[neg]  # (B, m, L)
        match = (cand_codes == codes[:, None, :]) & valid[:, None, :]
        q = (match.double() / size.clamp_min(1)[:, None, :].double()).sum(-1) / n_valid.clamp_min(1)[:, None]
        if not bool(has.all()):  # no bucket holds another class: uniform over the others
            rows = (~has).nonzero().squeeze(1)
            neg[rows] = _uniform_except(target[rows], m, n, self._generator)
            q[rows] = 1.0 / (n - 1)
        self._touched += B * (2 * L + m + m * L)
        return neg, q.log().float()

    def extra_repr(self) -> str:
        extra = f", K={self.K}, L={self.L}, rebuild_every={self.rebuild_every}" if self.sampler == "lsh" else ""
        return (f"in_features={self.in_features}, n_classes={self.n_classes}, sampler={self.sampler!r}, "
                f"negatives={self.negatives}{extra}")


def _uniform_except(target: torch.Tensor, m: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """``m`` classes per row uniform over ``{0..n−1} \\ {y}``: draw in ``[0, n−1)`` and skip ``y``."""
    u = torch.randint(0, n - 1, (len(target), m), generator=generator)
    return u + (u >= target[:, None]).long()


def _unigram(class_counts: Any, n: int) -> torch.Tensor:
    where = "LSHSoftmax"
    if class_counts is None:
        raise DataError(f"{where}: sampler='unigram' needs class_counts= (one non-negative count per class, "
                        f"{n} numbers)")
    counts = torch.as_tensor(class_counts, dtype=torch.float64).reshape(-1)
    if len(counts) != n:
        raise ShapeError(f"{where}: class_counts must hold one count per class ({n}), got {len(counts)}")
    if not bool(torch.isfinite(counts).all()) or bool((counts < 0).any()):
        raise DataError(f"{where}: class_counts must be finite and non-negative")
    if int((counts > 0).sum()) < 2:
        raise DataError(f"{where}: class_counts must give at least two classes a positive count (a negative must "
                        f"exist for every target), got {int((counts > 0).sum())}")
    return counts / counts.sum()


__all__ = ["LSHSoftmax", "SAMPLERS"]
