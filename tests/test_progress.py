"""The one ``stop=`` reading (``workbench.progress.stop_callable``) and its users: every long loop accepts the same
values and refuses the same ones with the same error, before any work."""

from __future__ import annotations

import doctest
import threading

import numpy as np
import pytest

import workbench.progress
from workbench.errors import DataError
from workbench.progress import stop_callable


def test_stop_callable_reads_none_events_and_callables():
    assert stop_callable(None)() is False
    ev = threading.Event()
    f = stop_callable(ev)
    assert f() is False
    ev.set()
    assert f() is True
    calls = []
    g = stop_callable(lambda: calls.append(1) or len(calls) >= 2)
    assert (g(), g()) == (False, True)

    class Flag:  # anything with is_set (a multiprocessing.Event, a widget's flag)
        def __init__(self):
            self.on = False

        def is_set(self):
            return self.on

    flag = Flag()
    h = stop_callable(flag)
    assert h() is False
    flag.on = True
    assert h() is True
    assert doctest.testmod(workbench.progress).failed == 0


@pytest.mark.parametrize("bad", [1, "yes", 0.5])
def test_every_loop_refuses_a_bad_stop_alike(bad):
    from workbench.metric import compare_metrics, fit_metric

    with pytest.raises(DataError, match="stop must be"):
        stop_callable(bad)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 2)), np.repeat([0, 1], 10)
    with pytest.raises(DataError, match="stop must be"):
        fit_metric(X, y, "free_energy", steps=20, progress=False, stop=bad)
    with pytest.raises(DataError, match="stop must be"):
        compare_metrics({"toy": (X, y)}, ["euclidean"], splits=2, progress=False, stop=bad)
