"""Zero-shot learning on the digits: similarity-based soft labels trained by plain cross-entropy, against DAP and
ESZSL, with the field's ZSL / GZSL metrics.

Attributes
    digits_attributes, attribute_table, check_attributes, attribute_similarity, standardize, unit_interval
Splits
    ZeroShotSplit, make_split, unseen_splits
Soft labels
    soft_labels, soft_label_matrix, SoftLabelLoss
Baselines
    eszsl_fit, eszsl_scores, class_signatures, dap_fit, DAPModel, binary_attributes
Metrics
    zero_shot_metrics, per_class_accuracy, harmonic_mean, tradeoff_curve, ausuc, summarize
Training
    train_zero_shot, compare_methods, ZeroShotResult, ZeroShotComparison, penultimate_features, DEFAULTS
"""

from workbench.zeroshot.attributes import (
    attribute_similarity,
    attribute_table,
    check_attributes,
    digits_attributes,
    standardize,
    unit_interval,
)
from workbench.zeroshot.baselines import (
    DAPModel,
    binary_attributes,
    class_signatures,
    dap_fit,
    eszsl_fit,
    eszsl_scores,
)
from workbench.zeroshot.metrics import (
    ausuc,
    harmonic_mean,
    per_class_accuracy,
    summarize,
    tradeoff_curve,
    zero_shot_metrics,
)
from workbench.zeroshot.soft_labels import SoftLabelLoss, soft_label_matrix, soft_labels
from workbench.zeroshot.splits import ZeroShotSplit, make_split, unseen_splits
from workbench.zeroshot.train import (
    DEFAULTS,
    METHODS,
    ZeroShotComparison,
    ZeroShotResult,
    compare_methods,
    penultimate_features,
    train_zero_shot,
)

__all__ = [
    "digits_attributes", "attribute_table", "check_attributes", "attribute_similarity", "standardize",
    "unit_interval",
    "ZeroShotSplit", "make_split", "unseen_splits",
    "soft_labels", "soft_label_matrix", "SoftLabelLoss",
    "eszsl_fit", "eszsl_scores", "class_signatures", "dap_fit", "DAPModel", "binary_attributes",
    "zero_shot_metrics", "per_class_accuracy", "harmonic_mean", "tradeoff_curve", "ausuc", "summarize",
    "train_zero_shot", "compare_methods", "ZeroShotResult", "ZeroShotComparison", "penultimate_features",
    "DEFAULTS", "METHODS",
]
