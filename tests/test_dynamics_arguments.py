"""Bad arguments to the dynamics lab are refused before any work, with the argument, the value and what is accepted."""

from __future__ import annotations

import math
import time

import pytest

from workbench.dynamics import compare_regimes, fractional_brownian_motion, simulate_walk, train
from workbench.errors import DataError, OptionError, WorkbenchError


def test_batch_larger_than_the_data_is_refused_at_once(digits_mlp) -> None:
    n = len(digits_mlp.train_data()[0])
    t0 = time.perf_counter()
    with pytest.raises(DataError, match=rf"batch_size=1000000000 is larger than the training set of {n} samples"):
        train(digits_mlp, batch_size=10**9, steps=1, progress=False)
    assert time.perf_counter() - t0 < 2.0


@pytest.mark.parametrize("kwargs,words", [
    (dict(momentum=math.nan), r"momentum must be a finite number in \[0, 1\), got nan"),
    (dict(momentum=-0.1), "momentum"),
    (dict(momentum=1.0), "momentum"),
    (dict(weight_decay=math.inf), "weight_decay"),
    (dict(weight_decay=-1e-4), "weight_decay"),
    (dict(lr=math.nan), "lr"),
    (dict(lr=math.inf), "lr"),
    (dict(epochs=math.inf), "epochs"),
    (dict(epochs=math.nan), "epochs"),
    (dict(steps=2.5), "steps"),
    (dict(batch_size=2.5), "batch_size"),
    (dict(batch_size="32"), "batch_size"),
    (dict(eval_every=math.nan), "eval_every"),
    (dict(ghost_batch=2.5), "ghost_batch"),
    (dict(track_points=1), "track_points"),
    (dict(seed=1.5), "seed"),
])
def test_train_refuses_bad_numbers(digits_mlp, kwargs, words) -> None:
    kw = dict(steps=2, progress=False)
    if "epochs" in kwargs:
        kw.pop("steps")
    kw.update(kwargs)
    with pytest.raises(DataError, match=words):
        train(digits_mlp, **kw)


def test_train_unknown_options_list_the_options(digits_mlp) -> None:
    with pytest.raises(OptionError, match="lr_schedule must be one of 'constant', 'step', 'cosine'; got 'linear'"):
        train(digits_mlp, steps=2, lr_schedule="linear", progress=False)
    with pytest.raises(OptionError, match="lr_scaling must be one of None, 'sqrt', 'linear'"):
        train(digits_mlp, steps=2, lr_scaling="square", progress=False)


def test_compare_regimes_checks_every_run_before_training_any(digits_mlp) -> None:
    n = len(digits_mlp.train_data()[0])
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="batch_size=100000 is larger than the training set"):
        compare_regimes(digits_mlp, small_batch=32, large_batch=100_000, epochs=1, seeds=[0], progress=False)
    assert time.perf_counter() - t0 < 2.0 and n < 100_000
    with pytest.raises(OptionError, match="regime must be one of"):
        compare_regimes(digits_mlp, epochs=1, seeds=[0], regimes=["huge"], progress=False)


@pytest.mark.parametrize("kwargs,words", [
    (dict(kind="random_landscape", half_width=0), r"half_width must be an integer in \[1, inf\), got 0"),
    (dict(kind="random_landscape", half_width=-3), "half_width"),
    (dict(kind="random_landscape", half_width=2.5), "half_width"),
    (dict(kind="random_landscape", alpha=math.nan), "alpha"),
    (dict(temperature=math.nan), "temperature"),
    (dict(sigma=math.inf), "sigma"),
    (dict(step_size=0.0), "step_size"),
    (dict(dim=2.5), "dim"),
    (dict(steps=0), "steps"),
    (dict(points=1), "points"),
    (dict(seed="0"), "seed"),
])
def test_simulate_walk_refuses_bad_numbers(kwargs, words) -> None:
    kw = dict(dim=3, steps=50, progress=False)
    kw.update(kwargs)
    with pytest.raises(DataError, match=words) as info:
        simulate_walk(**kw)
    assert isinstance(info.value, WorkbenchError)


def test_simulate_walk_kind_is_an_option() -> None:
    with pytest.raises(OptionError, match="kind must be one of 'free', 'random_landscape'; got 'levy'"):
        simulate_walk("levy", dim=2, steps=10, progress=False)


def test_smallest_half_width_still_walks() -> None:
    df = simulate_walk("random_landscape", dim=20, steps=200, half_width=1, temperature=50.0, progress=False)
    assert df["distance"].iloc[-1] > 0


def test_fbm_refuses_bad_sizes() -> None:
    import numpy as np

    with pytest.raises(DataError, match="n must be"):
        fractional_brownian_motion(0, 0.5, 2, np.random.default_rng(0))
