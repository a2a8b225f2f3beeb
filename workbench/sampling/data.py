"""The data sets of the sampling lab as classification handles: the bundled digits models, and MLPs on two
tabular sets scikit-learn ships (breast cancer: 569 samples, 30 features, 2 classes; wine: 178 samples, 13 features,
3 classes).

The tabular splits are fixed (stratified, seed 0, 20 % test) and standardised with the training split's mean and
standard deviation. Their model is a fresh MLP ``d → hidden → classes`` with ReLU; the sampling lab trains from a
seeded re-initialisation, so no weights ship.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workbench.checks import integer, option

DATASETS = ("digits-mlp", "digits-cnn", "breast-cancer", "wine")


class TabularMLP(nn.Module):
    """``d → hidden → classes`` with ReLU."""

    def __init__(self, d: int = 30, classes: int = 2, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def tabular_split(name: str) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``((x_train, y_train), (x_test, y_test))`` of ``"breast-cancer"`` or ``"wine"``, standardised."""
    from sklearn.datasets import load_breast_cancer, load_wine
    from sklearn.model_selection import train_test_split

    option("dataset", name, ("breast-cancer", "wine"), where="tabular_split")
    data = load_breast_cancer() if name == "breast-cancer" else load_wine()
    xtr, xte, ytr, yte = train_test_split(data.data, data.target, test_size=0.2, random_state=0,
                                          stratify=data.target)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-12
    as_x = lambda a: torch.tensor((a - mu) / sd, dtype=torch.float32)  # noqa: E731
    return (as_x(xtr), torch.tensor(ytr)), (as_x(xte), torch.tensor(yte))


def sampling_handle(name: str, hidden: int = 64) -> Any:
    """A classification handle for one of :data:`DATASETS` (a ModelHandle, or a spec for the digits)."""
    import workbench

    option("dataset", name, DATASETS, where="sampling_handle")
    if name.startswith("digits"):
        return workbench.load_model(name)
    from workbench.models.handle import ClassificationHandle

    hidden = integer("hidden", hidden, low=1, where="sampling_handle")
    train, test = tabular_split(name)
    classes = int(train[1].max()) + 1
    model = TabularMLP(train[0].shape[1], classes, hidden)
    return ClassificationHandle(name, model, train=train, test=test,
                                notes=f"MLP {train[0].shape[1]}-{hidden}-{classes} on scikit-learn's {name}")


__all__ = ["DATASETS", "TabularMLP", "tabular_split", "sampling_handle"]
