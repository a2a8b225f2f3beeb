"""Run-wide settings read from the environment.

``WORKBENCH_QUICK=1`` asks notebooks, benchmarks and experiments for their quick mode: small sizes and few steps,
so CI can execute every notebook in minutes. A person running a notebook gets the full experiment by default.

:func:`torch_threads` is the one way a computation sets torch's intra-op thread count for a while (small per-step
ops that lose more to thread hand-offs than they gain, a measured thread choice): set on entry, restored on exit,
nested calls stack, and :func:`outer_torch_threads` tells code inside what the caller had.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

_thread_stack: list[int] = []  # torch's thread count outside each active torch_threads block, innermost last


def quick_mode(override: bool | None = None) -> bool:
    """True when quick mode is asked for: ``override`` if given, else ``WORKBENCH_QUICK`` in the environment."""
    if override is not None:
        return bool(override)
    return os.environ.get("WORKBENCH_QUICK", "").strip().lower() in {"1", "true", "yes", "on"}


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` (``None``: as it is), restoring the previous count after.

    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     inside, outer = torch.get_num_threads(), outer_torch_threads()
    >>> (inside, outer == before, torch.get_num_threads() == before)
    (1, True, True)
    """
    import torch

    old = torch.get_num_threads()
    _thread_stack.append(old)
    changed = n is not None and int(n) != old
    if changed:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if changed:
            torch.set_num_threads(old)
        _thread_stack.pop()


def outer_torch_threads() -> int:
    """torch's thread count outside the outermost active :func:`torch_threads` block (the caller's own choice;
    the current count when no block is active): a large product inside a one-thread block runs with it."""
    if _thread_stack:
        return _thread_stack[0]
    import torch

    return torch.get_num_threads()


__all__ = ["quick_mode", "torch_threads", "outer_torch_threads"]
