"""Small batch vs large batch, and the recipe that closes the gap (Hoffer, Hubara & Soudry 2017, Table 1 style).

:func:`compare_regimes` trains the same architecture from the same seeded initializations under these regimes
(``b`` = ``small_batch``, ``B`` = ``large_batch``, one epoch budget ``E``):

=====================  ===========  ================  ==================  ==============
regime                 batch        learning rate     BatchNorm           epochs
=====================  ===========  ================  ==================  ==============
``small``              b            lr                BN                  E
``large``              B            lr                BN                  E
``large+LR``           B            lr·√(B/b)         BN                  E
``large+LR+GBN``       B            lr·√(B/b)         ghost batches of g  E
``large+LR+GBN+RA``    B            lr·√(B/b)         ghost batches of g  E·B/b (same number of updates as ``small``)
=====================  ===========  ================  ==================  ==============

and returns one row per regime × seed; :func:`summarize_regimes` makes the mean ± std table. Whatever the numbers
are, they are what was measured: on a data set as small as digits the gap may be small or absent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import pandas as pd

from workbench.dynamics.train import train
from workbench.errors import DataError
from workbench.progress import stop_callable

REGIMES = ("small", "large", "large+LR", "large+LR+GBN", "large+LR+GBN+RA")


def regime_settings(regime: str, small_batch: int, large_batch: int, ghost_batch: int | None) -> dict:
    """The :func:`train` keyword arguments of one regime."""
    g = ghost_batch or small_batch
    table = {
        "small": {"batch_size": small_batch},
        "large": {"batch_size": large_batch},
        "large+LR": {"batch_size": large_batch, "lr_scaling": "sqrt"},
        "large+LR+GBN": {"batch_size": large_batch, "lr_scaling": "sqrt", "ghost_batch": g},
        "large+LR+GBN+RA": {"batch_size": large_batch, "lr_scaling": "sqrt", "ghost_batch": g,
                            "regime_adaptation": True},
        "large+GBN+RA": {"batch_size": large_batch, "ghost_batch": g, "regime_adaptation": True},
    }
    from workbench.checks import option

    option("regime", regime, tuple(table), where="regime_settings")
    return {"base_batch": small_batch, **table[regime]}


def compare_regimes(handle, small_batch: int = 32, large_batch: int = 512, epochs: float = 10, lr: float = 0.05,
                    seeds: Iterable[int] = (0, 1, 2), regimes: Sequence[str] = REGIMES,
                    ghost_batch: int | None = None, stop=None, on_result: Callable[[dict], None] | None = None,
                    progress: bool = True, **train_kwargs) -> pd.DataFrame:
    """Train every regime for every seed; one row per run with its final metrics and settings.

    Every run's settings are checked (:func:`~workbench.dynamics.train.plan`) before the first one trains."""
    from workbench.checks import integer
    from workbench.dynamics.train import _handle_parts, plan

    small_batch = integer("small_batch", small_batch, low=1, where="compare_regimes")
    large_batch = integer("large_batch", large_batch, low=1, where="compare_regimes")
    if large_batch <= small_batch:
        raise DataError(f"large_batch ({large_batch}) must be larger than small_batch ({small_batch})")
    seeds = [integer("seed", s, where="compare_regimes") for s in seeds]
    _, _, (x_train, _), _, handle = _handle_parts(handle)
    for regime in regimes:
        kw = regime_settings(regime, small_batch, large_batch, ghost_batch)
        plan(kw["batch_size"], lr, None, epochs, len(x_train), kw.get("lr_scaling"), kw["base_batch"],
             kw.get("regime_adaptation", False))
    should_stop = stop_callable(stop)
    train_kwargs.setdefault("track_points", 32)
    rows = []
    for seed in seeds:
        for regime in regimes:
            if should_stop():
                return pd.DataFrame(rows)
            kw = {**train_kwargs, **regime_settings(regime, small_batch, large_batch, ghost_batch)}
            res = train(handle, lr=lr, epochs=epochs, seed=seed, stop=stop, progress=progress, **kw)
            fin = res.final()
            row = {"regime": regime, "seed": int(seed), "batch_size": kw["batch_size"],
                   "ghost_batch": kw.get("ghost_batch"), "lr_effective": res.config["lr_effective"],
                   "epochs": res.config["epochs_effective"], "steps": res.steps,
                   "test_acc": fin["test_acc"], "test_loss": fin["test_loss"], "train_acc": fin["train_acc"],
                   "train_loss": fin["train_loss"], "distance": float(res.distances.query("layer == 'total'")
                                                                      ["distance"].iloc[-1]),
                   "seconds": res.seconds, "complete": not (res.stopped or res.interrupted)}
            rows.append(row)
            if on_result is not None:
                on_result(row)
            if res.interrupted:
                return pd.DataFrame(rows)
    return pd.DataFrame(rows)


def summarize_regimes(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds per regime (in the order first seen): test accuracy, train accuracy, steps, distance."""
    if runs.empty:
        return pd.DataFrame(columns=["regime", "seeds", "test_acc_mean", "test_acc_std", "train_acc_mean",
                                     "test_acc", "steps", "distance_mean"])
    order = list(dict.fromkeys(runs["regime"]))
    g = runs.groupby("regime", sort=False)
    out = pd.DataFrame({
        "regime": order,
        "batch_size": g["batch_size"].first().reindex(order).to_numpy(),
        "seeds": g["seed"].nunique().reindex(order).to_numpy(),
        "steps": g["steps"].mean().reindex(order).to_numpy(),
        "test_acc_mean": g["test_acc"].mean().reindex(order).to_numpy(),
        "test_acc_std": g["test_acc"].std(ddof=1).reindex(order).fillna(0.0).to_numpy(),
        "train_acc_mean": g["train_acc"].mean().reindex(order).to_numpy(),
        "distance_mean": g["distance"].mean().reindex(order).to_numpy(),
    })
    out["test_acc"] = [f"{100 * m:.2f} ± {100 * s:.2f} %" for m, s in zip(out["test_acc_mean"], out["test_acc_std"])]
    return out


__all__ = ["compare_regimes", "summarize_regimes", "regime_settings", "REGIMES"]
