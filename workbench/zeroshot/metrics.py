"""Zero-shot metrics as the field reports them (Xian, Lampert, Schiele & Akata 2018).

From class scores ``(n, C)`` of test examples with true labels ``y``:

* **ZSL accuracy**: the unseen-class test examples, each predicted among the *unseen* classes only
  (``argmax_{u ∈ U} score_u``), accuracy computed per class and averaged over the unseen classes (per-class mean
  top-1, so a frequent class cannot dominate).
* **GZSL**: every test example predicted among *all* classes; ``seen`` = per-class mean accuracy over the seen
  classes' test examples, ``unseen`` = the same over the unseen classes', and their harmonic mean
  ``H = 2·seen·unseen / (seen + unseen)`` (0 when both are 0). H is high only when both are: a model that never
  answers with an unseen class has H = 0 however well it does on seen classes. That is why GZSL is harder than ZSL:
  the unseen classes must win against seen classes the model was trained on directly.
* **Seen/unseen trade-off** (calibrated stacking, Chao, Changpinyo, Gong & Sha 2016): subtract ``γ`` from every seen
  class's score and sweep ``γ``; each ``γ`` gives one (seen, unseen) pair. :func:`tradeoff_curve` computes the curve
  exactly (γ at every point where a prediction switches between a seen and an unseen class) and :func:`ausuc` the
  area under it (AUSUC).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import ShapeError
from workbench.zeroshot.splits import ZeroShotSplit, make_split

METRIC_COLUMNS = ["zsl", "seen", "unseen", "H"]


def _arrays(scores: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    s = scores.detach().cpu().numpy() if hasattr(scores, "detach") else np.asarray(scores)
    t = y.detach().cpu().numpy() if hasattr(y, "detach") else np.asarray(y)
    s = np.asarray(s, dtype=np.float64)
    t = np.asarray(t, dtype=np.int64)
    if s.ndim != 2 or t.ndim != 1 or len(s) != len(t):
        raise ShapeError(f"scores must be (examples × classes) with one label per row, got scores {s.shape} and "
                         f"labels {t.shape}")
    return s, t


def per_class_accuracy(pred: np.ndarray, y: np.ndarray, classes: Any) -> float:
    """Mean over ``classes`` of the fraction of that class's examples predicted right (classes without examples
    are skipped; NaN when none of them has one)."""
    pred, y = np.asarray(pred), np.asarray(y)
    accs = [float(np.mean(pred[y == c] == c)) for c in classes if np.any(y == c)]
    return float(np.mean(accs)) if accs else float("nan")


def harmonic_mean(seen: float, unseen: float) -> float:
    """``2·s·u / (s + u)``, 0 when both are 0."""
    return 0.0 if seen + unseen == 0 else 2.0 * seen * unseen / (seen + unseen)


def zero_shot_metrics(scores: Any, y: Any, split: ZeroShotSplit | Any) -> dict[str, float]:
    """``{"zsl", "seen", "unseen", "H"}`` (all in [0, 1]) from test scores ``(n, C)`` and labels (see module doc)."""
    s, t = _arrays(scores, y)
    split = make_split(split, s.shape[1])
    unseen = np.array(split.unseen)
    on_unseen = np.isin(t, unseen)
    zsl_pred = unseen[np.argmax(s[on_unseen][:, unseen], axis=1)] if on_unseen.any() else np.array([], int)
    zsl = per_class_accuracy(zsl_pred, t[on_unseen], split.unseen)
    pred = np.argmax(s, axis=1)
    seen_acc = per_class_accuracy(pred, t, split.seen)
    unseen_acc = per_class_accuracy(pred, t, split.unseen)
    return {"zsl": zsl, "seen": seen_acc, "unseen": unseen_acc, "H": harmonic_mean(seen_acc, unseen_acc)}


def tradeoff_curve(scores: Any, y: Any, split: ZeroShotSplit | Any) -> pd.DataFrame:
    """The seen/unseen accuracy trade-off under calibrated stacking: one row per distinct outcome, columns
    ``gamma, seen, unseen, H``, from γ = −inf (everything goes to seen classes, unseen = 0) to γ = +inf (everything
    goes to unseen classes, seen = 0). ``gamma = 0`` (no calibration) is among the rows.

    An example goes to its best seen class when ``max_seen − γ ≥ max_unseen`` (a tie goes to the seen side), else to
    its best unseen class.
    """
    s, t = _arrays(scores, y)
    split = make_split(split, s.shape[1])
    seen, unseen = np.array(split.seen), np.array(split.unseen)
    best_seen = seen[np.argmax(s[:, seen], axis=1)]
    best_unseen = unseen[np.argmax(s[:, unseen], axis=1)]
    margin = s[:, seen].max(1) - s[:, unseen].max(1)  # goes to seen iff margin >= gamma
    gammas = np.unique(np.concatenate([[-np.inf, 0.0, np.inf], margin, np.nextafter(margin, np.inf)]))
    to_seen = margin[None, :] >= gammas[:, None]  # G × n
    correct = np.where(to_seen, (best_seen == t)[None, :], (best_unseen == t)[None, :]).astype(np.float64)
    seen_acc = _class_mean(correct, t, split.seen)
    unseen_acc = _class_mean(correct, t, split.unseen)
    h = np.where(seen_acc + unseen_acc > 0, 2 * seen_acc * unseen_acc / np.maximum(seen_acc + unseen_acc, 1e-300), 0.0)
    return pd.DataFrame({"gamma": gammas, "seen": seen_acc, "unseen": unseen_acc, "H": h})


def _class_mean(correct: np.ndarray, t: np.ndarray, classes: Any) -> np.ndarray:
    """Per-class mean accuracy of each row of a (G × n) 0/1 matrix over ``classes`` that have examples."""
    present = [c for c in classes if np.any(t == c)]
    if not present:
        return np.full(len(correct), np.nan)
    onehot = (t[:, None] == np.array(present)[None, :]).astype(np.float64)  # n × k
    return (correct @ (onehot / onehot.sum(0))).mean(1)


def ausuc(curve: pd.DataFrame) -> float:
    """Area under the seen–unseen accuracy curve of :func:`tradeoff_curve` (x = unseen, y = seen, trapezoids).

    Along increasing γ the unseen accuracy only grows and the seen accuracy only falls (an example moved to the
    unseen side can only become right there and wrong on the seen side), so the rows sorted by γ trace the curve
    from (0, seen at γ = −inf) to (unseen at γ = +inf, 0)."""
    c = curve.sort_values("gamma")
    x, y = c["unseen"].to_numpy(), c["seen"].to_numpy()
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def summarize(runs: pd.DataFrame, by: str | list[str] = "method") -> pd.DataFrame:
    """Mean ± sd over splits and seeds: one row per ``by`` group with ``<metric>_mean``, ``<metric>_sd`` (sample
    standard deviation, ddof = 1; 0 for a single run) and ``runs``."""
    by = [by] if isinstance(by, str) else list(by)
    metrics = [c for c in METRIC_COLUMNS + ["ausuc"] if c in runs.columns]
    g = runs.groupby(by, sort=False)[metrics]
    mean = g.mean().add_suffix("_mean")
    sd = g.std(ddof=1).fillna(0.0).add_suffix("_sd")
    out = pd.concat([mean, sd], axis=1)
    out = out[[f"{m}_{k}" for m in metrics for k in ("mean", "sd")]]
    out["runs"] = g.size()
    return out.reset_index()


__all__ = ["zero_shot_metrics", "per_class_accuracy", "harmonic_mean", "tradeoff_curve", "ausuc", "summarize",
           "METRIC_COLUMNS"]
