"""Run-wide settings read from the environment.

``WORKBENCH_QUICK=1`` asks notebooks, benchmarks and experiments for their quick mode: small sizes and few steps,
so CI can execute every notebook in minutes. A person running a notebook gets the full experiment by default.
"""

from __future__ import annotations

import os


def quick_mode(override: bool | None = None) -> bool:
    """True when quick mode is asked for: ``override`` if given, else ``WORKBENCH_QUICK`` in the environment."""
    if override is not None:
        return bool(override)
    return os.environ.get("WORKBENCH_QUICK", "").strip().lower() in {"1", "true", "yes", "on"}


__all__ = ["quick_mode"]
