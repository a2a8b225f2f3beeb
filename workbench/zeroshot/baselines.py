"""The two classic zero-shot baselines, on fixed features: ESZSL (closed form) and DAP.

**ESZSL** (Romera-Paredes & Torr 2015, "An embarrassingly simple approach to zero-shot learning"). With features
``X`` (d × m, one column per training example), targets ``Y ∈ {−1, 1}^{m × z}`` (+1 for the example's class) and the
seen classes' signatures ``S`` (a × z), the bilinear compatibility ``xᵀ V s`` minimises

    ‖Xᵀ V S − Y‖²_F + γ ‖V S‖²_F + λ ‖Xᵀ V‖²_F + γλ ‖V‖²_F,

whose stationary point is the closed form ``V = (X Xᵀ + γ I)⁻¹ X Y Sᵀ (S Sᵀ + λ I)⁻¹`` (their eq. 5). A test example
goes to the class ``argmax_c xᵀ V s_c`` over the candidate classes (unseen only for ZSL, all for GZSL). Here the
rows of ``X`` are examples, so ``X Xᵀ`` of the paper is ``XᵀX`` in code; solved in float64 with ``numpy.linalg.solve``.

**DAP** (Lampert, Nickisch & Harmeling 2009/2014, "Attribute-based classification for zero-shot visual object
categorization"). One probabilistic classifier per attribute, trained on the seen classes' examples with the
class's binary attribute value as target (here scikit-learn's L2-regularised ``LogisticRegression``); a class ``z``
then scores

    log p(z | x) = Σ_m log p(a_m = a_m^z | x) − Σ_m log p(a_m = a_m^z)      (+ const),

with ``p(a_m = 1)`` the attribute's frequency over the seen classes. DAP is defined on binary attributes: the digits'
graded attributes are scaled to [0, 1] per column and thresholded at 0.5. An attribute that does not vary over the
seen classes cannot be learned: its classifier is the constant frequency, and it then scores every class alike
except through the prior term.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.errors import DataError, ShapeError
from workbench.zeroshot.attributes import check_attributes, standardize, unit_interval

_EPS = 1e-6


def class_signatures(attributes: Any) -> np.ndarray:
    """The class signatures ESZSL uses: standardised attribute rows scaled to unit length, ``(C, a)`` float64."""
    z = standardize(check_attributes(attributes))
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return z / norms


def one_vs_rest_targets(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``Y ∈ {−1, 1}^{m × z}``: +1 where ``y`` is the column's class (ESZSL's targets)."""
    return np.where(np.asarray(y)[:, None] == np.asarray(classes)[None, :], 1.0, -1.0)


def eszsl_fit(x: np.ndarray, y: np.ndarray, signatures: np.ndarray, seen: Any, gamma: float = 1.0,
              lam: float = 1.0) -> np.ndarray:
    """ESZSL's ``V`` (d × a) from features ``x`` (m × d, rows = examples), labels ``y`` (seen classes), the class
    signatures ``(C, a)`` and the seen classes; ``gamma`` and ``lam`` are the paper's γ, λ (both > 0)."""
    x = np.asarray(x, dtype=np.float64)
    sig = np.asarray(signatures, dtype=np.float64)
    seen = np.asarray(list(seen), dtype=np.int64)
    if not (gamma > 0 and lam > 0):
        raise DataError(f"ESZSL's gamma and lam must be positive, got gamma={gamma!r}, lam={lam!r}")
    if x.ndim != 2 or len(x) != len(y):
        raise ShapeError(f"x must be (examples × features) with one row per label, got {x.shape} for {len(y)} labels")
    s = sig[seen].T  # a × z
    yy = one_vs_rest_targets(y, seen)  # m × z
    d, a = x.shape[1], s.shape[0]
    left = x.T @ x + gamma * np.eye(d)  # the paper's X Xᵀ + γI
    right = s @ s.T + lam * np.eye(a)  # S Sᵀ + λI
    middle = x.T @ yy @ s.T  # X Y Sᵀ
    return np.linalg.solve(right.T, np.linalg.solve(left, middle).T).T


def eszsl_scores(x: np.ndarray, v: np.ndarray, signatures: np.ndarray) -> np.ndarray:
    """Compatibility ``xᵀ V s_c`` of every example with every class: ``(n, C)``."""
    return np.asarray(x, dtype=np.float64) @ v @ np.asarray(signatures, dtype=np.float64).T


@dataclass
class DAPModel:
    """Per-attribute logistic classifiers (``None`` where the attribute is constant over the seen classes) and the
    binary class-attribute matrix ``(C, a)`` with the seen-class attribute frequencies."""

    classifiers: list[Any]
    constant: np.ndarray  # probability used where a classifier is None
    binary: np.ndarray  # C × a in {0, 1}
    prior: np.ndarray  # a: p(a_m = 1) over the seen classes

    def attribute_probabilities(self, x: np.ndarray) -> np.ndarray:
        """``p(a_m = 1 | x)`` for every example and attribute: ``(n, a)``."""
        out = np.empty((len(x), len(self.classifiers)))
        for j, clf in enumerate(self.classifiers):
            out[:, j] = self.constant[j] if clf is None else clf.predict_proba(x)[:, 1]
        return out

    def scores(self, x: np.ndarray) -> np.ndarray:
        """DAP's ``log p(z | x)`` up to a constant, for every class: ``(n, C)``."""
        p = np.clip(self.attribute_probabilities(x), _EPS, 1 - _EPS)
        prior = np.clip(self.prior, _EPS, 1 - _EPS)
        b = self.binary
        log_like = np.log(p) @ b.T + np.log1p(-p) @ (1 - b).T
        log_prior = (b * np.log(prior) + (1 - b) * np.log1p(-prior)).sum(1)
        return log_like - log_prior[None, :]


def binary_attributes(attributes: Any) -> np.ndarray:
    """The class-attribute matrix scaled to [0, 1] per attribute and thresholded at 0.5: ``(C, a)`` in {0, 1}."""
    return (unit_interval(check_attributes(attributes)) >= 0.5).astype(np.float64)


def dap_fit(x: np.ndarray, y: np.ndarray, attributes: Any, seen: Any, C: float = 1.0,
            max_iter: int = 1000) -> DAPModel:
    """Fit DAP's attribute classifiers on features ``x`` (m × d) of seen-class examples with labels ``y``."""
    from sklearn.linear_model import LogisticRegression

    b = binary_attributes(attributes)
    seen = np.asarray(list(seen), dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    targets = b[y]  # m × a
    classifiers: list[Any] = []
    constant = np.zeros(b.shape[1])
    for j in range(b.shape[1]):
        t = targets[:, j]
        if t.min() == t.max():
            classifiers.append(None)
            constant[j] = t[0]
            continue
        classifiers.append(LogisticRegression(C=C, max_iter=max_iter).fit(x, t.astype(int)))
    prior = b[seen].mean(0)
    return DAPModel(classifiers, constant, b, prior)


__all__ = ["eszsl_fit", "eszsl_scores", "class_signatures", "one_vs_rest_targets", "DAPModel", "dap_fit",
           "binary_attributes"]
