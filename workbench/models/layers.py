"""The layer table of a model: one row per layer a format can be applied to.

Eligible layers are ``nn.Linear``, ``nn.Conv1d`` and ``nn.Conv2d`` modules that have a weight. This is the same rule
as ``workbench.formats.eligible_layers``; the private copy here keeps model loading independent of the formats
package until the two are deduplicated.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

ELIGIBLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)
LAYER_COLUMNS = ["name", "kind", "weight_shape", "params", "dtype", "in_features", "out_features"]


def _eligible_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Eligible layers of ``model`` by qualified name, in module order (Linear / Conv1d / Conv2d with a weight)."""
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, ELIGIBLE_TYPES) and _original_weight(m) is not None
    }


def _original_weight(m: nn.Module) -> torch.Tensor | None:
    """The stored weight of a layer, without running a parametrization that may sit on it."""
    params = getattr(m, "parametrizations", None)
    if params is not None and "weight" in params:
        return params["weight"].original
    return getattr(m, "weight", None)


def layer_table(model: nn.Module) -> pd.DataFrame:
    """One row per eligible layer: ``name, kind, weight_shape, params, dtype, in_features, out_features``.

    ``params`` counts the layer's own parameters (weight and bias); ``in_features``/``out_features`` are the
    channels for convolutions. ``weight_shape`` is a tuple, ``dtype`` a string such as ``"float32"``.

    >>> layer_table(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)))[["name", "kind", "params"]]
      name    kind  params
    0    0  Linear      15
    1    2  Linear       8
    """
    rows = []
    for name, m in _eligible_layers(model).items():
        w = _original_weight(m)
        bias = getattr(m, "bias", None)
        if isinstance(m, nn.Linear):
            fin, fout = m.in_features, m.out_features
        else:
            fin, fout = m.in_channels, m.out_channels
        rows.append({
            "name": name,
            "kind": type(m).__name__,
            "weight_shape": tuple(w.shape),
            "params": int(w.numel() + (bias.numel() if isinstance(bias, torch.Tensor) else 0)),
            "dtype": str(w.dtype).removeprefix("torch."),
            "in_features": int(fin),
            "out_features": int(fout),
        })
    return pd.DataFrame(rows, columns=LAYER_COLUMNS)


__all__ = ["layer_table", "ELIGIBLE_TYPES", "LAYER_COLUMNS"]
