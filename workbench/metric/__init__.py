"""Metric lab: distance metric learning by free-energy minimization (Metropolis Monte Carlo), against NCA and LMNN.

Stosic, Stosic, Ludermir & Stosic 2021, "Distance Metric Learning through Minimization of the Free Energy"
(arXiv 2106.05495); NCA: Goldberger, Roweis, Hinton & Salakhutdinov 2004.

Fitting
    fit_metric, Metric, METHODS, gradient_fit, metric_learn_status
Energy
    nca_energy, nca_objective, Constraints, energy_from_distances, pairwise_sq_distances
Monte Carlo
    anneal, MCOptions, MetricChain, metropolis_accept, SCHEDULES
Comparison and data
    compare_metrics, knn_accuracy, load_dataset, cnn_features, spurious_minimum_data, DATASETS, embedding_2d
"""

from workbench.metric.compare import COMPARE_COLUMNS, compare_metrics, knn_accuracy
from workbench.metric.data import DATASETS, cnn_features, load_dataset, spurious_minimum_data
from workbench.metric.embedding import embedding_2d
from workbench.metric.energy import (
    Constraints,
    as_constraints,
    energy_from_distances,
    nca_energy,
    nca_objective,
    pairwise_sq_distances,
)
from workbench.metric.fit import METHODS, Metric, check_data, fit_metric, gradient_fit, metric_learn_status
from workbench.metric.montecarlo import SCHEDULES, TRACE_COLUMNS, AnnealResult, MCOptions, MetricChain, anneal, \
    metropolis_accept

__all__ = [
    # fitting
    "fit_metric", "Metric", "METHODS", "gradient_fit", "metric_learn_status", "check_data",
    # energy
    "nca_energy", "nca_objective", "Constraints", "as_constraints", "energy_from_distances", "pairwise_sq_distances",
    # Monte Carlo
    "anneal", "AnnealResult", "MCOptions", "MetricChain", "metropolis_accept", "SCHEDULES", "TRACE_COLUMNS",
    # comparison and data
    "compare_metrics", "knn_accuracy", "COMPARE_COLUMNS", "load_dataset", "cnn_features", "spurious_minimum_data",
    "DATASETS", "embedding_2d",
]
