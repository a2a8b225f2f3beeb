"""The error classes the kernels raise, all from the :mod:`workbench.errors` family.

``DTypeError`` and ``DeviceError`` are taken from :mod:`workbench.errors` when it defines them; until then they are
defined here as subclasses of :class:`~workbench.errors.WorkbenchError` (and of ``TypeError`` / ``RuntimeError``), so
``except WorkbenchError`` catches every bad input either way.
"""

from __future__ import annotations

from workbench import errors as _errors
from workbench.errors import FormatError, ShapeError, WorkbenchError

DTypeError: type[Exception] = getattr(_errors, "DTypeError", None) or type(
    "DTypeError",
    (WorkbenchError, TypeError),
    {"__doc__": "A tensor of a dtype the operation does not take (for example int8 activations).", "__module__": __name__},
)
DeviceError: type[Exception] = getattr(_errors, "DeviceError", None) or type(
    "DeviceError",
    (WorkbenchError, RuntimeError),
    {"__doc__": "Tensors on a device the path cannot use (CPU tensors for a GPU-only kernel, mixed devices).", "__module__": __name__},
)

__all__ = ["DTypeError", "DeviceError", "FormatError", "ShapeError", "WorkbenchError"]
