"""workbench: explore how sparsity and low-precision numbers change a neural network.

>>> import workbench as wb
>>> h = wb.load_model("digits-cnn")                                  # doctest: +SKIP
>>> wb.apply(h.model, "2:4+fp8_e4m3", layers=["conv2", "fc1"])       # doctest: +SKIP
>>> h.evaluate()                                                     # doctest: +SKIP
>>> wb.restore(h.model)                                              # doctest: +SKIP

Every public name except :class:`WorkbenchError` is imported on first use (PEP 562 module ``__getattr__``), so
``import workbench`` (and the ``workbench`` command's ``--help``) loads no torch, pandas, plotly, ipywidgets or
triton; ``wb.apply`` imports :mod:`workbench.formats` (and torch) the first time it is looked up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# errors: no dependencies, imported eagerly
from workbench.errors import WorkbenchError

#: public name -> (module, attribute), resolved on first use and then cached in this module's globals.
_LAZY = {
    # formats: names, rounding, apply / restore
    "apply": ("workbench.formats", "apply"),
    "bits_per_weight": ("workbench.formats", "bits_per_weight"),
    "current_formats": ("workbench.formats", "current_formats"),
    "list_formats": ("workbench.formats", "list_formats"),
    "model_size_bytes": ("workbench.formats", "model_size_bytes"),
    "parse_format": ("workbench.formats", "parse_format"),
    "quantize": ("workbench.formats", "quantize"),
    "restore": ("workbench.formats", "restore"),
    # models
    "load_model": ("workbench.models", "load_model"),
    "ModelHandle": ("workbench.models", "ModelHandle"),
    # the dashboard
    "Workbench": ("workbench.widgets", "Workbench"),
}
# labs, loaded as attributes on first use: wb.sparsity, wb.quant, wb.metric, wb.zeroshot, ...
_SUBMODULES = {"formats", "sparsity", "quant", "dynamics", "topology", "kernels", "viz", "widgets", "reports", "data",
               "models", "config", "errors", "metric", "zeroshot"}

if TYPE_CHECKING:  # for type checkers and IDEs only: nothing is imported at run time
    from workbench.formats import (apply, bits_per_weight, current_formats, list_formats, model_size_bytes,
                                   parse_format, quantize, restore)
    from workbench.models import ModelHandle, load_model
    from workbench.widgets import Workbench


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"workbench.{name}")
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)


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
