"""Bad arguments to the topology lab are refused before any work, naming the argument, the value and the range."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.errors import DataError, OptionError, ShapeError
from workbench.topology import SparseMLP, prune_neurons, set_prune_regrow, train_set


@pytest.mark.parametrize("kwargs,words", [
    (dict(lr=math.nan), "lr"),
    (dict(momentum=math.nan), r"momentum must be a finite number in \[0, 1\)"),
    (dict(weight_decay=-1.0), "weight_decay"),
    (dict(batch_size=10**9), "batch_size=1000000000 is larger than the training set"),
    (dict(batch_size=0), "batch_size"),
    (dict(zeta=math.nan), "zeta"),
    (dict(epsilon=math.inf), "epsilon"),
    (dict(epochs=1.5), "epochs"),
    (dict(neuron_fraction=1.0), "neuron_fraction"),
])
def test_train_set_refuses_bad_numbers(kwargs, words) -> None:
    kw = dict(sizes=(64, 8, 10), epochs=1, epsilon=3, progress=False)
    kw.update(kwargs)
    with pytest.raises(DataError, match=words):
        train_set(**kw)


def test_options_and_sizes() -> None:
    with pytest.raises(OptionError, match="mode must be one of 'sparse', 'dense'; got 'csr'"):
        SparseMLP([4, 3], mode="csr")
    with pytest.raises(ShapeError, match="positive integers"):
        SparseMLP([4.5, 3])
    with pytest.raises(ShapeError, match="positive integers"):
        SparseMLP("43")
    net = SparseMLP([8, 6, 4], epsilon=3, seed=0)
    with pytest.raises(DataError, match="zeta"):
        set_prune_regrow(net.layers[0], math.nan, np.random.default_rng(0))
    with pytest.raises(DataError, match="fraction"):
        prune_neurons(net, math.nan)


def test_layer_sizes_density_and_jobs() -> None:
    from workbench.topology import SparseLinear, erdos_renyi_density, nnstd_matrix

    with pytest.raises(ShapeError, match="positive integers"):
        erdos_renyi_density(4.5, 8)
    with pytest.raises(DataError, match="epsilon"):
        erdos_renyi_density(4, 8, math.nan)
    with pytest.raises(DataError, match="density"):
        SparseLinear(4, 3, density=math.nan)
    with pytest.raises(DataError, match="n_jobs"):
        nnstd_matrix([np.eye(3), np.eye(3)], n_jobs=0)
