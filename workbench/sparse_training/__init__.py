"""Sparse training lab: train a model under a sparsity structure (unstructured, N:M, transposable N:M, block)
with block pruning or group lasso (Narang, Undersander & Diamos 2017, "Block-sparse recurrent neural networks"),
a fixed mask (the narrow search space) or an augmented search space (Stosic & Stosic 2021, "Search spaces for
neural model training", arXiv 2105.12920), through the one ``train`` loop.

Training
    train_sparse, lasso_sweep, SparseTrainResult, METHODS, TrainingMask
Structures
    parse_structure, structure_mask, satisfies, sparse_layers, at_fraction
Schedule and penalty
    schedule_fraction, check_schedule, group_lasso_penalty, group_norms
"""

from workbench.sparse_training.lasso import group_lasso_penalty, group_norms
from workbench.sparse_training.schedule import RAMP_SLOPE, check_schedule, schedule_fraction
from workbench.sparse_training.structures import (
    STRUCTURE_EXAMPLES,
    at_fraction,
    parse_structure,
    satisfies,
    sparse_layers,
    structure_mask,
)
from workbench.sparse_training.train import (
    LAYER_COLUMNS,
    METHODS,
    TABLE_COLUMNS,
    SparseTrainResult,
    TrainingMask,
    lasso_sweep,
    train_sparse,
)

__all__ = [
    "train_sparse", "lasso_sweep", "SparseTrainResult", "METHODS", "TABLE_COLUMNS", "LAYER_COLUMNS", "TrainingMask",
    "STRUCTURE_EXAMPLES", "parse_structure", "structure_mask", "satisfies", "sparse_layers", "at_fraction",
    "RAMP_SLOPE", "schedule_fraction", "check_schedule", "group_lasso_penalty", "group_norms",
]
