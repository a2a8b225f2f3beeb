"""A fixed Hadamard classifier (Hoffer, Ben-Nun, Hubara, Giladi, Hoefler & Soudry 2018, "Fix your classifier: the
marginal value of training the last weight layer").

The last linear layer is replaced by a fixed projection onto rows of a Hadamard matrix ``H`` (entries ±1, rows
mutually orthogonal; :func:`scipy.linalg.hadamard`, order ``n`` = the next power of two ≥ max(in, out)), truncated to
``out × in``, up to one learned scalar ``α``::

    logits = α · (x / ‖x‖) · (H[rows, :in] / √in)ᵀ          (each logit is α times a cosine similarity)

Only ``α`` is trained (and an optional bias), so the classifier has one parameter instead of ``in·out + out``.
Row 0 of ``H`` is all ones; ReLU features are non-negative, so that row would favour one class for every input:
rows ``1..out`` are used whenever ``n > out``. ``α`` starts at ``scale_init`` (the paper learns it; a cosine in
[-1, 1] needs a scale of order 10 for confident softmax outputs).

>>> clf = HadamardClassifier(64, 10)
>>> clf(torch.randn(3, 64)).shape, sum(p.numel() for p in clf.parameters())
(torch.Size([3, 10]), 1)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.linalg import hadamard
from torch import nn

from workbench.errors import DataError, LayerError


class HadamardClassifier(nn.Module):
    """``in_features → out_features`` fixed Hadamard projection of L2-normalised features, times a learned scale."""

    def __init__(self, in_features: int, out_features: int, scale_init: float = 10.0, bias: bool = False) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise DataError(f"HadamardClassifier needs positive sizes, got in={in_features}, out={out_features}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        n = 1 << max(0, math.ceil(math.log2(max(in_features, out_features + 1))))
        first = 1 if n > out_features else 0
        h = hadamard(n).astype(np.float32)[first:first + out_features, :in_features] / math.sqrt(in_features)
        self.register_buffer("weight", torch.from_numpy(np.ascontiguousarray(h)))
        self.scale = nn.Parameter(torch.tensor(float(scale_init)))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        out = self.scale * nn.functional.linear(x, self.weight)
        return out + self.bias if self.bias is not None else out

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fixed Hadamard, learned scale"


def fix_hadamard_classifier(model: nn.Module, scale_init: float = 10.0, bias: bool = False) -> str:
    """Replace the last ``nn.Linear`` of ``model`` (in module order) by a :class:`HadamardClassifier`, in place.

    Returns the replaced layer's name; raises :class:`~workbench.errors.LayerError` when there is no Linear layer.
    """
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and name:
            last = (name, module)
    if last is None:
        raise LayerError(f"a fixed Hadamard classifier replaces the last nn.Linear, but {type(model).__name__} has none")
    name, linear = last
    clf = HadamardClassifier(linear.in_features, linear.out_features, scale_init=scale_init, bias=bias)
    clf = clf.to(device=linear.weight.device, dtype=linear.weight.dtype)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, clf)
    return name


__all__ = ["HadamardClassifier", "fix_hadamard_classifier"]
