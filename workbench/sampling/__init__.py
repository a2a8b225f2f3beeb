"""Adaptive data sampling: samplers with one interface and the experiments of "Adaptive Sampling for Deep Learning
via Efficient Nonparametric Proxies" (arXiv 2311.13583), built on :mod:`workbench.hashing`.

Samplers (``weights()``, ``update(indices, losses)``, ``sample(batch_size)`` -> indices, importance weights)
    Sampler, UniformSampler, StaticSampler, LossSampler, NWSampler, NWSketchSampler, SAMPLERS, make_sampler,
    collision_kernel
Static scores
    static_scores
Data
    DATASETS, sampling_handle, tabular_split, TabularMLP
Experiments
    compare_samplers, SamplingComparison, time_to_accuracy, sketch_error, sketch_vs_exact, sketch_frame,
    training_losses,
    update_cost, DEFAULTS

``workbench.dynamics.train(handle, ..., sampler=make_sampler("nw_sketch", x))`` trains with any of them.
"""

from workbench.sampling.data import DATASETS, TabularMLP, sampling_handle, tabular_split
from workbench.sampling.experiment import (
    DEFAULTS,
    SamplingComparison,
    compare_samplers,
    sketch_error,
    sketch_frame,
    sketch_vs_exact,
    time_to_accuracy,
    training_losses,
    update_cost,
)
from workbench.sampling.proxy import static_scores
from workbench.sampling.samplers import (
    SAMPLERS,
    LossSampler,
    NWSampler,
    NWSketchSampler,
    Sampler,
    StaticSampler,
    UniformSampler,
    collision_kernel,
    make_sampler,
)

__all__ = [
    "Sampler", "UniformSampler", "StaticSampler", "LossSampler", "NWSampler", "NWSketchSampler", "SAMPLERS",
    "make_sampler", "collision_kernel",
    "static_scores",
    "DATASETS", "sampling_handle", "tabular_split", "TabularMLP",
    "compare_samplers", "SamplingComparison", "time_to_accuracy", "sketch_error", "sketch_vs_exact",
    "sketch_frame", "training_losses", "update_cost", "DEFAULTS",
]
