"""Training dynamics: how far weights travel from initialization, and closing the large-batch gap.

Following Hoffer, Hubara & Soudry 2017, "Train longer, generalize better: closing the generalization gap in large
batch training of neural networks" (NeurIPS 2017), and two follow-ups from the same group (batch augmentation, 2019;
fixed Hadamard classifier, 2018).
"""

# tracking and training
from workbench.dynamics.tracker import WeightDistanceTracker, distances_direct
from workbench.dynamics.train import TrainResult, evaluate, plan, reinitialize, train
from workbench.dynamics.gap import REGIMES, compare_regimes, regime_settings, summarize_regimes

# growth laws and their statistical models
from workbench.dynamics.fit import fit_growth, predict_growth
from workbench.dynamics.walks import fractional_brownian_motion, simulate_walk

# the modules the switches use
from workbench.dynamics.ghost_bn import GhostBatchNorm, swap_ghost_bn
from workbench.dynamics.hadamard import HadamardClassifier, fix_hadamard_classifier
from workbench.dynamics.augment import batch_augment, shift_and_noise

__all__ = [
    "WeightDistanceTracker", "distances_direct", "TrainResult", "train", "evaluate", "plan", "reinitialize",
    "REGIMES", "compare_regimes", "regime_settings", "summarize_regimes",
    "fit_growth", "predict_growth", "simulate_walk", "fractional_brownian_motion",
    "GhostBatchNorm", "swap_ghost_bn", "HadamardClassifier", "fix_hadamard_classifier",
    "batch_augment", "shift_and_noise",
]
