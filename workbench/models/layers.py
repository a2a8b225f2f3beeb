"""The layer table of a model: one row per layer a format can be applied to.

Which layers are eligible is decided in one place, :func:`workbench.formats.eligible_layers` (Linear and Conv
modules with a weight of at least 2 dims); this module only describes them.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn
from torch.nn.utils import parametrize

from workbench.formats import eligible_layers, original_weight

LAYER_COLUMNS = ["name", "kind", "weight_shape", "params", "dtype", "in_features", "out_features"]


def _kind(m: nn.Module) -> str:
    """The layer's class name; a parametrized module's generated class (``ParametrizedLinear``) gives its base's."""
    cls = type(m)
    if parametrize.is_parametrized(m) and cls.__name__.startswith("Parametrized"):
        cls = cls.__bases__[0]
    return cls.__name__


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
    for name, m in eligible_layers(model).items():
        w = original_weight(m)
        bias = getattr(m, "bias", None)
        if isinstance(m, nn.Linear):
            fin, fout = m.in_features, m.out_features
        else:
            fin, fout = getattr(m, "in_channels", w.shape[1]), getattr(m, "out_channels", w.shape[0])
        rows.append({
            "name": name,
            "kind": _kind(m),
            "weight_shape": tuple(w.shape),
            "params": int(w.numel() + (bias.numel() if isinstance(bias, torch.Tensor) else 0)),
            "dtype": str(w.dtype).removeprefix("torch."),
            "in_features": int(fin),
            "out_features": int(fout),
        })
    return pd.DataFrame(rows, columns=LAYER_COLUMNS)


__all__ = ["layer_table", "LAYER_COLUMNS"]
