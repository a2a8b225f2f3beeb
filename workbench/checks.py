"""Checking a user's arguments before any work: one option out of a set, a finite number in a range, an integer.

Each check returns the value (converted: ``number`` gives a ``float``, ``integer`` an ``int``) or raises a
:class:`~workbench.errors.WorkbenchError` subclass whose message names the function, the argument, the value and
what would be accepted:

>>> integer("steps", 10, low=1, where="train")
10
>>> number("momentum", float("nan"), low=0, high=1, high_open=True, where="train")
Traceback (most recent call last):
...
workbench.errors.DataError: train: momentum must be a finite number in [0, 1), got nan
>>> option("mode", "fast", ("isolated", "cumulative"), where="layer_error")
Traceback (most recent call last):
...
workbench.errors.OptionError: layer_error: mode must be one of 'isolated', 'cumulative'; got 'fast'
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable
from typing import Any, TypeVar

from workbench.errors import DataError, MemoryBudgetError, OptionError

__all__ = ["option", "number", "integer", "available_memory", "format_bytes", "memory_budget"]

T = TypeVar("T")


def _prefix(where: str | None) -> str:
    return f"{where}: " if where else ""


def option(name: str, value: T, options: Iterable[Any], where: str | None = None) -> T:
    """``value`` if it is one of ``options``, else :class:`OptionError` listing them."""
    opts = tuple(options)
    try:
        ok = any(value is o or (isinstance(value, type(o)) and value == o) for o in opts)
    except Exception:  # a value whose == raises (an array) is not an option
        ok = False
    if not ok:
        shown = ", ".join(repr(o) for o in opts)
        raise OptionError(f"{_prefix(where)}{name} must be one of {shown}; got {value!r}")
    return value


def _range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
    hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
    return f"{lo}, {hi}"


def _in_range(v: float, low: float | None, high: float | None, low_open: bool, high_open: bool) -> bool:
    if low is not None and (v < low or (low_open and v == low)):
        return False
    if high is not None and (v > high or (high_open and v == high)):
        return False
    return True


def number(name: str, value: Any, *, low: float | None = None, high: float | None = None, low_open: bool = False,
           high_open: bool = False, where: str | None = None) -> float:
    """``float(value)`` for a finite real number (not a bool) in the range, else :class:`DataError`."""
    what = f"a finite number in {_range(low, high, low_open, high_open)}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DataError(f"{_prefix(where)}{name} must be {what}, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v) or not _in_range(v, low, high, low_open, high_open):
        raise DataError(f"{_prefix(where)}{name} must be {what}, got {value!r}")
    return v


def integer(name: str, value: Any, *, low: int | None = None, high: int | None = None,
            where: str | None = None) -> int:
    """``int(value)`` for an integer (``numbers.Integral`` or an integral float, not a bool) in ``[low, high]``."""
    what = "an integer" + (f" in {_range(low, high, False, False)}" if low is not None or high is not None else "")
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok and isinstance(value, float) and math.isfinite(value) and value == int(value):
        ok = True
    if not ok:
        raise DataError(f"{_prefix(where)}{name} must be {what}, got {value!r} ({type(value).__name__})")
    v = int(value)
    if not _in_range(v, low, high, False, False):
        raise DataError(f"{_prefix(where)}{name} must be {what}, got {value!r}")
    return v


def available_memory() -> int:
    """Bytes of memory available to a new allocation: ``MemAvailable`` from /proc/meminfo (Linux), else physical."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def format_bytes(b: float) -> str:
    """``b`` bytes as a short human string in KiB/MiB/GiB/TiB."""
    for unit, k in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if b >= 2**k:
            return f"{b / 2**k:.2f} {unit}"
    return f"{int(b)} B"


def memory_budget(estimate: float, what: str, *, limit: int | None = None, advice: str = "",
                  where: str | None = None) -> int:
    """``estimate`` (bytes) if it fits in ``limit`` (default: :func:`available_memory` now), else
    :class:`~workbench.errors.MemoryBudgetError` naming the estimate, the limit and ``advice``. Allocates nothing.

    >>> memory_budget(2**20, "a small thing", limit=2**30)
    1048576
    """
    budget = available_memory() if limit is None else int(limit)
    if estimate > budget:
        tail = f"; {advice}" if advice else ""
        raise MemoryBudgetError(f"{_prefix(where)}{what} needs an estimated {format_bytes(estimate)}, more than the "
                                f"{format_bytes(budget)} available{tail}")
    return int(estimate)
