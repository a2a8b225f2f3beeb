"""metric-learn's LMNN and ITML beside a current scikit-learn: one renamed keyword, adapted.

metric-learn 0.7.0 (its latest release) validates inputs in ``metric_learn._util`` with
``check_array(..., force_all_finite=...)`` and ``check_X_y(..., force_all_finite=...)``; scikit-learn 1.6 renamed
that keyword to ``ensure_all_finite`` and 1.8 removed the old name, so every ``fit`` raises ``TypeError``.
:func:`metric_learn_module` imports metric-learn and, only when the installed scikit-learn no longer accepts
``force_all_finite``, replaces those two names *inside* ``metric_learn._util`` (nothing of scikit-learn is changed)
by wrappers that pass the value on as ``ensure_all_finite`` (same meaning: ``True``, ``False`` or ``"allow-nan"``).
The wrapping is done once and is idempotent; with an older scikit-learn metric-learn is left untouched.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

__all__ = ["metric_learn_module", "needs_keyword_adapter"]

_OLD, _NEW = "force_all_finite", "ensure_all_finite"


def needs_keyword_adapter(func: Callable[..., Any]) -> bool:
    """True when ``func`` (a scikit-learn validator) takes ``ensure_all_finite`` but no longer ``force_all_finite``."""
    params = inspect.signature(func).parameters
    return _NEW in params and _OLD not in params


def _renamed(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        if _OLD in kwargs:
            kwargs[_NEW] = kwargs.pop(_OLD)
        return func(*args, **kwargs)

    call._workbench_adapted = True  # type: ignore[attr-defined]
    return call


def metric_learn_module() -> Any:
    """``metric_learn``, adapted to the installed scikit-learn (see the module doc); ``ImportError`` when it is not
    installed."""
    import metric_learn
    import metric_learn._util as util

    for name in ("check_array", "check_X_y"):
        func = getattr(util, name, None)
        if func is not None and not getattr(func, "_workbench_adapted", False) and needs_keyword_adapter(func):
            setattr(util, name, _renamed(func))
    return metric_learn
