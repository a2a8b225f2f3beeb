"""workbench: explore how sparsity and low-precision numbers change a neural network.

>>> import workbench as wb
>>> h = wb.load_model("digits-cnn")                                  # doctest: +SKIP
>>> wb.apply(h.model, "2:4+fp8_e4m3", layers=["conv2", "fc1"])       # doctest: +SKIP
>>> h.evaluate()                                                     # doctest: +SKIP
>>> wb.restore(h.model)                                              # doctest: +SKIP

Everything heavy (models, transformers, the labs, widgets, triton) is imported on first use, so
``import workbench`` stays light and never touches triton or CUDA.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# errors
from workbench.errors import WorkbenchError

# formats: names, rounding, apply / restore
from workbench.formats import (
    apply,
    bits_per_weight,
    current_formats,
    list_formats,
    model_size_bytes,
    parse_format,
    quantize,
    restore,
)

# models (lazy: see __getattr__)
_LAZY = {
    "load_model": ("workbench.models", "load_model"),
    "ModelHandle": ("workbench.models", "ModelHandle"),
    "Workbench": ("workbench.widgets", "Workbench"),
}
# labs, loaded as attributes on first use: wb.sparsity, wb.quant, ...
_SUBMODULES = {"sparsity", "quant", "dynamics", "topology", "kernels", "viz", "widgets", "reports", "data", "models"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in _SUBMODULES:
        return importlib.import_module(f"workbench.{name}")
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


__all__ = [
    "WorkbenchError",
    "apply",
    "bits_per_weight",
    "current_formats",
    "list_formats",
    "load_model",
    "ModelHandle",
    "Workbench",
    "model_size_bytes",
    "parse_format",
    "quantize",
    "restore",
]
