"""The protocol shared by the training-time output layers for very many outputs.

Two layers implement it: :class:`workbench.hashing.softmax.LSHSoftmax` (sampled softmax with uniform, unigram or LSH
negatives; Daghaghi et al., ICML 2021) and :class:`workbench.hashing.slide.HashedSparseLinear` (SLIDE, Chen et al.,
MLSys 2020). The experiment functions of :mod:`workbench.hashing.large_outputs` take any of them.

* ``loss(h, target)``: the training loss of a batch of hidden vectors ``h`` ``(B, in_features)`` with labels
  ``target`` ``(B,)``; the layer never forms all ``n_out`` logits when it samples. Bad input (NaN in ``h``, labels out
  of range) raises a :class:`~workbench.errors.WorkbenchError` subclass before any work.
* ``full_logits(h)``: the exact dense ``(B, n_out)`` logits, for evaluation (P@1 / accuracy).
* ``stats()``: numbers that say how much work the layer did (negatives per sample, active fraction, rebuilds).
* ``rebuild()``: rebuild the hash tables from the current weights; refuses non-finite weights with
  :class:`~workbench.errors.NonFiniteError` and changes nothing. ``rebuild_every`` steps of ``loss`` in training
  do it on a schedule.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class OutputLayer(Protocol):
    """A training-time output layer over ``n_out`` outputs (see the module docstring)."""

    def loss(self, h: torch.Tensor, target: torch.Tensor) -> torch.Tensor: ...

    def full_logits(self, h: torch.Tensor) -> torch.Tensor: ...

    def stats(self) -> dict[str, float]: ...

    def rebuild(self) -> None: ...


__all__ = ["OutputLayer"]
