"""Which growth law does a distance curve follow? Least-squares fits of four laws, compared by R² and AIC.

Models (``t`` = step ≥ 1, every one with an offset ``a`` and a scale ``b``):

=========  ==========================  =====  ===========================================================
name       formula                     k      meaning
=========  ==========================  =====  ===========================================================
``log``    a + b·log t                 2      Hoffer et al. 2017: ‖w_t − w_0‖ ~ log t during training
``log^β``  a + b·(log t)^β             3      random walk on a random potential: β = 2/α (ultra-slow diffusion)
``sqrt``   a + b·√t                    2      free random walk (diffusion)
``power``  a + b·t^γ                   3      generic power law
=========  ==========================  =====  ===========================================================

For the two 3-parameter laws the exponent is profiled: for a fixed exponent the best ``(a, b)`` is a linear least
squares problem, so the residual sum of squares is minimised over the exponent alone (a grid, then bounded Brent).
R² = 1 − RSS/TSS; AIC = n_eff·ln(RSS/n) + 2k (Gaussian errors; the constant is shared by all models). The best model
is the one with the lowest AIC.

Why ``n_eff``: a distance curve is one path, so its residuals are strongly autocorrelated (a random walk's
fluctuation at step t persists for an e-fold of t or more). With the plain AIC (n independent points) the
3-parameter laws then "win" by fitting that persistent wiggle: a free walk, whose expected distance is exactly ∝ √t,
gets declared a t^0.49 power law. We use the effective sample size n_eff = n/τ, τ = 1 + 2·Σ_k ρ_k the integrated
autocorrelation time of the residuals of the most flexible fit (lowest RSS; initial positive sequence, Geyer 1992),
the same n_eff for every model, so an extra parameter must buy a real change of shape, not a fit to the noise.
Between laws with the same number of parameters the choice is the RSS's either way. By default the curve is first thinned to about ``points`` log-spaced steps, so that each
decade of ``t`` weighs the same (distance curves are read on a log axis, and a linearly spaced record would let the
last decade decide alone).

>>> t = np.arange(1, 10_001)
>>> fits = fit_growth(pd.DataFrame({"step": t, "distance": 3 * np.log(t) + 1}))
>>> fits.attrs["best"], round(float(fits.set_index("model").loc["log", "r2"]), 6)
('log', 1.0)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from workbench.errors import DataError

MODELS = ("log", "log^β", "sqrt", "power")
FORMULAS = {"log": "a + b·log t", "log^β": "a + b·(log t)^β", "sqrt": "a + b·√t", "power": "a + b·t^γ"}
_BOUNDS = {"log^β": (0.05, 8.0), "power": (0.005, 2.0)}


def _basis(model: str, t: np.ndarray, exponent: float) -> np.ndarray:
    if model == "log":
        return np.log(t)
    if model == "log^β":
        return np.log(t) ** exponent
    if model == "sqrt":
        return np.sqrt(t)
    if model == "power":
        return t ** exponent
    raise DataError(f"unknown growth model {model!r}; known: {', '.join(MODELS)}")


def _linear_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """Best a, b of y ≈ a + b·x in weighted least squares (weights w) and the weighted residual sum of squares."""
    sw = w.sum()
    xm, ym = (w * x).sum() / sw, (w * y).sum() / sw
    sxx = float((w * (x - xm) ** 2).sum())
    b = float((w * (x - xm) * (y - ym)).sum() / sxx) if sxx > 0 else 0.0
    a = float(ym - b * xm)
    rss = float((w * (y - a - b * x) ** 2).sum())
    return a, b, rss


def _profile(model: str, t: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float, float, float]:
    lo, hi = _BOUNDS[model]
    grid = np.geomspace(lo, hi, 160)
    rss = np.array([_linear_fit(_basis(model, t, e), y, w)[2] for e in grid])
    i = int(np.nanargmin(rss))
    left, right = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = minimize_scalar(lambda e: _linear_fit(_basis(model, t, e), y, w)[2], bounds=(left, right),
                          method="bounded", options={"xatol": 1e-6})
    e = float(res.x) if res.fun <= rss[i] else float(grid[i])
    a, b, r = _linear_fit(_basis(model, t, e), y, w)
    return a, b, e, r


def effective_sample_size(residuals: np.ndarray) -> float:
    """n / τ with τ = 1 + 2·Σ_k ρ_k the integrated autocorrelation time of ``residuals`` (sum over the initial run
    of positive autocorrelations, Geyer 1992), clipped to [3, n]."""
    r = np.asarray(residuals, float) - np.mean(residuals)
    n = len(r)
    var = float(r @ r)
    if var <= 0 or n < 4:
        return float(n)
    tau = 1.0
    for k in range(1, n // 2):
        rho = float(r[:-k] @ r[k:]) / var
        if rho <= 0:
            break
        tau += 2.0 * rho
    return float(np.clip(n / tau, 3.0, n))


def log_spaced_subset(t: np.ndarray, points: int) -> np.ndarray:
    """Indices of (at most) ``points`` entries of the sorted array ``t`` nearest to log-spaced targets."""
    if len(t) <= points:
        return np.arange(len(t))
    targets = np.geomspace(t[0], t[-1], points)
    idx = np.clip(np.searchsorted(t, targets), 0, len(t) - 1)
    prev = np.clip(idx - 1, 0, len(t) - 1)
    idx = np.where(np.abs(t[prev] - targets) < np.abs(t[idx] - targets), prev, idx)
    return np.unique(idx)


def _curve(data, layer: str | None, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(data, pd.DataFrame):
        df = data
        if "layer" in df.columns:
            pick = layer or "total"
            df = df[df["layer"] == pick]
            if df.empty:
                raise DataError(f"fit_growth: no rows for layer {pick!r}; layers: {sorted(data['layer'].unique())}")
        if x not in df.columns or y not in df.columns:
            raise DataError(f"fit_growth needs columns {x!r} and {y!r}, got {list(df.columns)}")
        df = df.groupby(x, as_index=False)[y].mean().sort_values(x)
        return df[x].to_numpy(float), df[y].to_numpy(float)
    t, d = data
    order = np.argsort(np.asarray(t, float))
    return np.asarray(t, float)[order], np.asarray(d, float)[order]


def fit_growth(data, layer: str | None = None, x: str = "step", y: str = "distance", t_min: float = 1.0,
               points: int | None = 100, relative: bool = True) -> pd.DataFrame:
    """Fit log t, (log t)^β, √t and t^γ to a distance curve; one row per model, best (lowest AIC) flagged.

    ``data`` is a DataFrame with ``step`` and ``distance`` columns (a tracker frame: the ``layer`` row set named by
    ``layer``, ``"total"`` by default) or a pair of arrays ``(t, distance)``. Steps below ``t_min`` (and 0) are left
    out. Columns: ``model, formula, a, b, exponent, k, n, rss, r2, n_eff, aic, delta_aic, best``; ``attrs["best"]`` names the
    winner.
    """
    t, d = _curve(data, layer, x, y)
    keep = (t >= max(t_min, 1.0)) & np.isfinite(d)
    t, d = t[keep], d[keep]
    if points is not None:
        idx = log_spaced_subset(t, int(points))
        t, d = t[idx], d[idx]
    if len(t) < 5 or t[-1] <= t[0] * 2:
        raise DataError(f"fit_growth needs at least 5 steps ≥ {t_min} spanning more than a factor 2, got {len(t)} "
                        f"steps from {t[:1]} to {t[-1:]}")
    tss = float(((d - d.mean()) ** 2).sum())
    n = len(t)
    if relative:
        pos = d > 0
        wts = np.where(pos, 1.0 / np.where(pos, d, 1.0) ** 2, 0.0)
    else:
        wts = np.ones_like(d)
    rows = []
    residuals = {}
    for model in MODELS:
        if model in _BOUNDS:
            a, b, e, rss = _profile(model, t, d, wts)
            k = 3
        else:
            e = 1.0 if model == "log" else 0.5
            a, b, rss = _linear_fit(_basis(model, t, e), d, wts)
            k = 2
        resid = d - a - b * _basis(model, t, e)
        r2 = 1.0 - float((resid ** 2).sum()) / tss if tss > 0 else float("nan")
        residuals[model] = resid * np.sqrt(wts)
        rows.append({"model": model, "formula": FORMULAS[model], "a": a, "b": b, "exponent": e, "k": k, "n": n,
                     "rss": rss, "r2": r2})
    out = pd.DataFrame(rows)
    res = residuals[str(out.loc[out["rss"].idxmin(), "model"])]
    n_eff = effective_sample_size(res)
    out["n_eff"] = n_eff
    out["aic"] = n_eff * np.log(np.maximum(out["rss"].to_numpy(float), 1e-300) / n) + 2 * out["k"]
    out["delta_aic"] = out["aic"] - out["aic"].min()
    out["best"] = out["delta_aic"] == 0.0
    out.attrs["best"] = str(out.loc[out["aic"].idxmin(), "model"])
    out.attrs["t_range"] = (float(t[0]), float(t[-1]))
    return out


def predict_growth(fits: pd.DataFrame, t, models: list[str] | None = None) -> pd.DataFrame:
    """The fitted curves at steps ``t`` (≥ 1): a tidy frame ``step, model, fitted`` (for plotting beside the data)."""
    t = np.asarray(t, dtype=float)
    t = t[t >= 1]
    rows = []
    for _, r in fits.iterrows():
        if models is not None and r["model"] not in models:
            continue
        fitted = r["a"] + r["b"] * _basis(r["model"], t, float(r["exponent"]))
        rows.append(pd.DataFrame({"step": t, "model": r["model"], "fitted": fitted}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["step", "model", "fitted"])


__all__ = ["fit_growth", "predict_growth", "log_spaced_subset", "MODELS", "FORMULAS"]
