"""The gradual pruning schedule of Narang, Undersander & Diamos 2017 ("Block-sparse recurrent neural networks"),
stated in sparsity rather than in a raw threshold.

The paper raises a magnitude threshold ε: not at all before ``start``, with slope θ from ``start`` to ``ramp``, and
with the steeper slope φ = 1.5 θ from ``ramp`` to ``end``; afterwards the mask stays fixed. Blocks whose norm is
below ε are pruned. Here the schedule is the *fraction of the target sparsity* reached at each step, with the same
shape (0, slope θ, slope 1.5 θ, flat) and θ solved so that the target is reached exactly at ``end``:

    θ·(ramp − start) + 1.5·θ·(end − ramp) = 1.

At every update the threshold ε(t) is then the block norm that achieves that sparsity (the largest pruned norm is
recorded as ``threshold``), so the target sparsity is met exactly at ``end`` whatever the weights' scale.
"""

from __future__ import annotations

from workbench.checks import integer
from workbench.errors import DataError

RAMP_SLOPE = 1.5  # φ / θ in Narang et al. 2017


def check_schedule(start: int, ramp: int, end: int, total: int | None = None, where: str = "train_sparse") -> tuple[int, int, int]:
    """Validate ``0 <= start <= ramp <= end`` (and ``end <= total``); a DataError naming the values otherwise."""
    start = integer("start", start, low=0, where=where)
    ramp = integer("ramp", ramp, low=0, where=where)
    end = integer("end", end, low=0, where=where)
    if end < start:
        raise DataError(f"{where}: the pruning schedule ends (end={end}) before it starts (start={start}); "
                        "need start <= ramp <= end")
    if not start <= ramp <= end:
        raise DataError(f"{where}: ramp={ramp} must lie between start={start} and end={end}")
    if total is not None and end > total:
        raise DataError(f"{where}: end={end} is past the last training step ({total}); use end <= {total}")
    return start, ramp, end


def schedule_fraction(step: int, start: int, ramp: int, end: int) -> float:
    """Fraction (0..1) of the target sparsity reached at ``step``: 0 up to ``start``, slope θ to ``ramp``, slope
    1.5 θ to ``end``, 1 from ``end`` on.

    >>> [round(schedule_fraction(t, 10, 20, 30), 4) for t in (0, 10, 15, 20, 25, 30, 40)]
    [0.0, 0.0, 0.2, 0.4, 0.7, 1.0, 1.0]
    """
    if step >= end:
        return 1.0
    if step <= start:
        return 0.0
    theta = 1.0 / ((ramp - start) + RAMP_SLOPE * (end - ramp))
    if step <= ramp:
        return theta * (step - start)
    return theta * (ramp - start) + RAMP_SLOPE * theta * (step - ramp)


__all__ = ["RAMP_SLOPE", "check_schedule", "schedule_fraction"]
