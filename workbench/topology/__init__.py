"""Sparse topologies: NNSTD distance (Liu et al. 2020) and truly sparse evolutionary training (SET, Curci et al. 2021).

Distances
    nnstd, nnstd_published, nnstd_matrix, jaccard_distance_matrix, topology_of, Topology, NNSTDResult
Sparse layers
    SparseLinear (truly sparse, CSR), MaskedLinear (masked-dense), erdos_renyi_density
Training
    SparseMLP, all_relu, train_set, train_set_runs, SETRun, set_prune_regrow, neuron_importance, prune_neurons,
    accuracy_table, nnstd_over_epochs, connection_table, choose_threads, set_memory_estimate
"""

from workbench.topology.nnstd import (
    NNSTDResult,
    Topology,
    jaccard_distance_matrix,
    nnstd,
    nnstd_matrix,
    nnstd_published,
    optimal_matching_classes,
    topology_of,
)
from workbench.topology.set_training import (
    SETRun,
    SparseMLP,
    accuracy_table,
    all_relu,
    choose_threads,
    connection_table,
    neuron_importance,
    nnstd_over_epochs,
    prune_neurons,
    set_prune_regrow,
    train_set,
    train_set_runs,
)
from workbench.topology.sparse_layers import (MaskedLinear, SparseLinear, erdos_renyi_density, random_empty_keys,
                                              set_memory_estimate)

__all__ = [
    # distances
    "nnstd", "nnstd_published", "nnstd_matrix", "jaccard_distance_matrix", "optimal_matching_classes",
    "topology_of", "Topology", "NNSTDResult",
    # sparse layers
    "SparseLinear", "MaskedLinear", "erdos_renyi_density", "random_empty_keys",
    # training
    "SparseMLP", "all_relu", "train_set", "train_set_runs", "SETRun", "set_prune_regrow", "neuron_importance",
    "prune_neurons", "accuracy_table", "nnstd_over_epochs", "connection_table", "choose_threads",
    "set_memory_estimate",
]
