"""workbench: explore how sparsity and low-precision numbers change a neural network."""

__version__ = "0.1.0"
