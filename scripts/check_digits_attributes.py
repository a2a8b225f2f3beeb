"""Validate ``data/digits_attributes.json`` and compare its measurable attributes with the digits' images.

The attribute matrix is written by hand (it is not generated). This script checks its structure (10 documented
rows, every attribute documented, finite, non-constant, every digit a distinct row) with the lab's own
``check_attributes``, then measures on scikit-learn's 1,797 digit images (pixels ≥ 0.4 of full ink = stroke):

* holes: background regions not connected to the border (4-connectivity), and whether their centre lies in the
  upper or lower half;
* mirror symmetry: 1 − ‖x − flip(x)‖₁ / (2‖x‖₁), left-right and top-bottom;

and prints, per digit, the hand-written value beside the class mean of its measurement, with the Spearman rank
correlation over the ten digits. Exit status 1 when the structure is invalid or a correlation is below 0.5.

    python scripts/check_digits_attributes.py
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.stats import spearmanr
from sklearn.datasets import load_digits

from workbench.zeroshot import check_attributes, digits_attributes

THRESHOLD = 0.4


def holes(image: np.ndarray) -> tuple[int, int, int]:
    """(all, upper-half, lower-half) enclosed background regions of an 8×8 image in [0, 1]."""
    lab, n = ndimage.label(image < THRESHOLD)
    border = set(np.unique(np.r_[lab[0], lab[-1], lab[:, 0], lab[:, -1]]).tolist())
    inner = [k for k in range(1, n + 1) if k not in border]
    rows = [ndimage.center_of_mass(lab == k)[0] for k in inner]
    return len(inner), sum(r < 3.5 for r in rows), sum(r >= 3.5 for r in rows)


def measure() -> pd.DataFrame:
    d = load_digits()
    x, y = d.images / 16.0, d.target
    rows = []
    for c in range(10):
        imgs = x[y == c]
        h = np.array([holes(im) for im in imgs])
        ink = imgs.sum((1, 2))
        lr = 1 - np.abs(imgs - imgs[:, :, ::-1]).sum((1, 2)) / (2 * ink)
        tb = 1 - np.abs(imgs - imgs[:, ::-1, :]).sum((1, 2)) / (2 * ink)
        rows.append({"digit": c, "holes": h[:, 0].mean(), "holes_upper": h[:, 1].mean(),
                     "holes_lower": h[:, 2].mean(), "symmetry_lr": lr.mean(), "symmetry_tb": tb.mean()})
    return pd.DataFrame(rows).set_index("digit")


PAIRS = [("closed_loops", "holes"), ("loop_upper", "holes_upper"), ("loop_lower", "holes_lower"),
         ("mirror_lr", "symmetry_lr"), ("mirror_tb", "symmetry_tb")]


def main() -> int:
    a = digits_attributes()
    check_attributes(a, 10)
    problems = []
    if len({tuple(r) for r in a.to_numpy()}) != 10:
        problems.append("two digits share the same attribute row")
    undocumented = [c for c in a.columns if not a.attrs["docs"].get(c)]
    if undocumented:
        problems.append(f"undocumented attributes {undocumented}")
    if sorted(a.attrs["notes"]) != list(range(10)):
        problems.append("a digit has no note")
    print(f"{a.shape[1]} attributes, 10 digits: structure {'OK' if not problems else 'INVALID: ' + '; '.join(problems)}")
    m = measure()
    print()
    print("| attribute (hand) | measured | Spearman ρ | per digit 0..9: hand / measured |")
    print("|---|---|---:|---|")
    for attr, meas in PAIRS:
        rho = spearmanr(a[attr], m[meas]).statistic
        cells = ", ".join(f"{a.loc[c, attr]:g}/{m.loc[c, meas]:.2f}" for c in range(10))
        print(f"| {attr} | {meas} | {rho:.2f} | {cells} |")
        if not rho >= 0.5:
            problems.append(f"{attr} disagrees with {meas} (ρ = {rho:.2f})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
