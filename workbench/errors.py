"""One error family for the workbench.

Every error a user can provoke by bad input is a :class:`WorkbenchError`; its message names what was wrong
(the format, the layer, the shape) and what would have been accepted. Subclasses also derive from the matching
builtin (``ValueError``, ``KeyError``, ``TypeError``) so generic ``except ValueError`` code keeps working.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class of every error the workbench raises on bad input."""


class FormatError(WorkbenchError, ValueError):
    """An unknown or malformed format name, or a format that does not fit a tensor."""


class ModelSpecError(WorkbenchError, ValueError):
    """A model spec that names nothing loadable, or a checkpoint that does not match its architecture."""


class LayerError(WorkbenchError, KeyError):
    """A layer name or pattern that matches no eligible layer, or a layer that cannot take a format."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ShapeError(WorkbenchError, ValueError):
    """A tensor whose shape does not fit what was asked (for example an input dimension not a multiple of M)."""


class NonFiniteError(WorkbenchError, ValueError):
    """NaN or inf where finite numbers are required (weights, activations during calibration)."""


class UnsafeCheckpointError(WorkbenchError, ValueError):
    """A checkpoint that can only be loaded by running pickled code; pass ``trust=True`` to allow it."""


class DataError(WorkbenchError, ValueError):
    """Empty or malformed data (calibration sets, evaluation sets, parameters)."""


class OptionError(DataError):
    """An argument that takes one of a fixed set of options (a mode, a method, a backend) got something else; the
    message names the argument, the value and lists the options (see :func:`workbench.checks.option`)."""


class ParameterError(WorkbenchError, ValueError):
    """A report parameter that the notebook does not declare, or a value of the wrong type."""


class ReportFailedError(WorkbenchError, RuntimeError):
    """A report notebook raised while it ran; ``.result`` holds what the run left (the failed notebook, the error)."""

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


class OutputError(WorkbenchError, OSError):
    """An output location that cannot be used: not a folder, not writable, or being written by another run."""


class DTypeError(WorkbenchError, TypeError):
    """A tensor of a dtype the operation does not take (for example float64 weights or int activations for a kernel)."""


class DeviceError(WorkbenchError, RuntimeError):
    """Tensors on a device the path cannot use (CPU tensors for a GPU-only kernel, tensors on different devices)."""


class CostLimitError(WorkbenchError, ValueError):
    """An exact count or solve whose estimated cost is past its bound; the message names the estimate and the
    cheaper path (a log form, an approximation, a smaller size)."""


class UnavailableError(WorkbenchError, RuntimeError):
    """An optional dependency that is missing or does not run beside the installed packages (the message says which
    and why, and how to install it)."""


class MemoryBudgetError(WorkbenchError, MemoryError):
    """A computation whose estimated memory exceeds what the machine has; refused before allocating, with the estimate."""


class WeightsOnlyError(WorkbenchError, RuntimeError):
    """Something that needs the model (a forward pass, evaluation, data, activations) asked of a weights-only handle
    (``load_model(..., lazy=True)``); the message says what works on the weights alone."""


def shorten(value: object, limit: int = 60) -> str:
    """``ascii(value)`` (the repr with non-ASCII and control characters escaped, so a zero-width space or a NUL
    byte shows) cut to ``limit`` characters (with the full length said), for error messages.

    >>> shorten("x" * 300, 12)
    "'xxxxxxxxxx… (302 characters)"
    """
    text = ascii(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text)} characters)"


__all__ = [
    "WorkbenchError",
    "FormatError",
    "ModelSpecError",
    "LayerError",
    "ShapeError",
    "NonFiniteError",
    "UnsafeCheckpointError",
    "DataError",
    "OptionError",
    "ParameterError",
    "ReportFailedError",
    "OutputError",
    "DTypeError",
    "DeviceError",
    "CostLimitError",
    "shorten",
    "UnavailableError",
    "MemoryBudgetError",
    "WeightsOnlyError",
]
