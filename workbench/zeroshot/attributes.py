"""Class-attribute matrices: the digits' shape attributes shipped in ``data/digits_attributes.json``, their checks,
and the normalisations the methods use.

A class-attribute matrix ``A`` has one row per class and one column per attribute ("closed loops", "a bar along the
top", "left-right symmetry", …). Zero-shot learning (Lampert, Nickisch & Harmeling 2009/2014) recognises a class it
has no training example of through its row of ``A``. The digits' matrix was written for this repository by hand from
the digits' shapes (one documented row per digit; see the JSON file and ``docs/zeroshot.md``), and is checked
against what can be measured on the images by ``scripts/check_digits_attributes.py``.

Accepted inputs everywhere in the lab: a DataFrame (rows = classes in label order, columns = attributes), a numpy
array or a torch tensor of shape ``(n_classes, n_attributes)``. :func:`check_attributes` refuses, before any work,
a matrix of the wrong number of rows, NaN or infinite entries, and constant attributes (a column with one value
for every class carries no information and breaks the per-attribute standardisation).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.data import DATA_DIR
from workbench.errors import DataError, NonFiniteError, ShapeError

ATTRIBUTES_FILE = DATA_DIR / "digits_attributes.json"
N_DIGITS = 10


@lru_cache(maxsize=4)
def _read(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def digits_attributes(path: str | Path | None = None) -> pd.DataFrame:
    """The digits' class-attribute matrix: a DataFrame indexed by ``digit`` 0..9, one float column per attribute.

    ``.attrs["docs"]`` maps each attribute to its description and ``.attrs["notes"]`` each digit to the note that
    explains its row; ``.attrs["provenance"]`` says where the numbers come from.

    >>> a = digits_attributes()
    >>> a.shape[0], "closed_loops" in a.columns, float(a.loc[8, "closed_loops"])
    (10, True, 2.0)
    """
    raw = _read(str(path or ATTRIBUTES_FILE))
    names = [a["name"] for a in raw["attributes"]]
    rows = sorted(raw["classes"], key=lambda c: c["digit"])
    frame = pd.DataFrame([[float(c["values"][n]) for n in names] for c in rows], columns=names,
                         index=pd.Index([int(c["digit"]) for c in rows], name="digit"))
    frame.attrs["docs"] = {a["name"]: a["doc"] for a in raw["attributes"]}
    frame.attrs["notes"] = {int(c["digit"]): c["note"] for c in rows}
    frame.attrs["provenance"] = raw.get("provenance", "")
    return frame


def attribute_table(attributes: Any = None) -> pd.DataFrame:
    """A tidy view of a class-attribute matrix: one row per (class, attribute) with ``value`` and ``doc``."""
    frame = digits_attributes() if attributes is None else as_frame(attributes)
    docs = frame.attrs.get("docs", {})
    long = frame.reset_index(names="class").melt(id_vars="class", var_name="attribute", value_name="value")
    long["doc"] = long["attribute"].map(lambda n: docs.get(n, ""))
    return long


def as_frame(attributes: Any) -> pd.DataFrame:
    """``attributes`` (DataFrame, array, tensor) as a float DataFrame; columns ``a0, a1, …`` when unnamed."""
    if isinstance(attributes, pd.DataFrame):
        frame = attributes.astype(float)
        frame.attrs = dict(attributes.attrs)
        return frame
    arr = _as_array(attributes)
    return pd.DataFrame(arr, columns=[f"a{j}" for j in range(arr.shape[1])])


def _as_array(attributes: Any) -> np.ndarray:
    if isinstance(attributes, pd.DataFrame):
        values = attributes.to_numpy()
    elif hasattr(attributes, "detach"):  # a torch tensor
        values = attributes.detach().cpu().numpy()
    else:
        values = np.asarray(attributes)
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"attributes must be numbers (classes × attributes), got {values.dtype}: {exc}") from exc
    if arr.ndim != 2:
        raise ShapeError(f"attributes must be a 2-D matrix (classes × attributes), got shape {arr.shape}")
    return arr


def check_attributes(attributes: Any, n_classes: int | None = None) -> np.ndarray:
    """Validate a class-attribute matrix and return it as a float64 array ``(n_classes, n_attributes)``.

    Raises :class:`~workbench.errors.ShapeError` for a matrix that is not 2-D, has no attribute, or has a number of
    rows other than ``n_classes``; :class:`~workbench.errors.NonFiniteError` for NaN or infinite entries;
    :class:`~workbench.errors.DataError` for a constant attribute (the same value for every class).
    """
    arr = _as_array(attributes)
    if n_classes is not None and arr.shape[0] != int(n_classes):
        raise ShapeError(f"attributes has {arr.shape[0]} rows but the data has {int(n_classes)} classes: give one "
                         f"row per class, in label order (shape ({int(n_classes)}, n_attributes))")
    if arr.shape[0] < 2 or arr.shape[1] < 1:
        raise ShapeError(f"attributes needs at least 2 classes and 1 attribute, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise NonFiniteError(f"attributes has {int(bad.sum())} NaN/inf entries (first: class row {r}, attribute "
                             f"{_name(attributes, c)!r} = {arr[r, c]}); every entry must be a finite number")
    const = np.flatnonzero(np.ptp(arr, axis=0) == 0)
    if const.size:
        names = [_name(attributes, c) for c in const]
        raise DataError(f"attributes {names} are constant (the same value for every class): a constant attribute "
                        f"tells no class from another; drop it or give it differing values")
    return arr


def _name(attributes: Any, column: int) -> str:
    if isinstance(attributes, pd.DataFrame):
        return str(attributes.columns[column])
    return f"a{column}"


def standardize(attributes: np.ndarray) -> np.ndarray:
    """Per-attribute z-scores over the classes (mean 0, standard deviation 1 in each column), so that attributes
    counted on different scales (loops 0–2, endpoints 0–3, symmetry 0/1) weigh alike in similarities and ESZSL."""
    a = np.asarray(attributes, dtype=np.float64)
    return (a - a.mean(0)) / a.std(0)


def unit_interval(attributes: np.ndarray) -> np.ndarray:
    """Per-attribute min–max scaling to [0, 1] (DAP reads a value as how strongly the class has the attribute)."""
    a = np.asarray(attributes, dtype=np.float64)
    lo, hi = a.min(0), a.max(0)
    return (a - lo) / (hi - lo)


def attribute_similarity(attributes: Any, n_classes: int | None = None) -> np.ndarray:
    """Cosine similarity of the classes' standardised attribute rows: a ``(C, C)`` float64 matrix in [-1, 1] with
    ones on the diagonal. The soft labels spread their unseen mass by a softmax of these similarities."""
    z = standardize(check_attributes(attributes, n_classes))
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    norms[norms == 0] = 1.0  # a class at the mean of every attribute: similar to nothing
    u = z / norms
    return u @ u.T


__all__ = ["digits_attributes", "attribute_table", "as_frame", "check_attributes", "standardize", "unit_interval",
           "attribute_similarity", "ATTRIBUTES_FILE", "N_DIGITS"]
