"""Post-training quantization error, layer by layer.

Metrics (float64, :mod:`workbench.quant.metrics`) between a reference ``x`` and its quantized counterpart ``q``:
SQNR (dB) ``= 20·log10(‖x‖ / ‖x − q‖)``, normalized L2 ``= ‖x − q‖ / ‖x‖`` and cosine, over the flattened tensors.

:func:`layer_error` gives one row per layer × format in two modes (as in Hubara et al. 2020's per-layer analysis):

- ``"isolated"``: only this layer quantized. The full-precision inputs and outputs of every layer are captured once;
  the layer's quantized output is its own module re-run on its captured inputs, so no full forward is needed. The
  model-level change (``delta_loss``, ``delta_value``) needs one ``handle.evaluate()`` per layer × format.
- ``"cumulative"``: every layer quantized at once; each layer's output is compared with the full-precision model's
  output of the same layer (errors of earlier layers accumulate). One forward pass per format.

``what`` chooses weights only, activations only (the layer's input, per-tensor dynamic scale as
``ActivationQuantizer``) or both. Both go through :func:`workbench.formats.apply` / ``restore`` so the lab and
the toggles quantize identically.

:func:`expected_sqnr_gaussian` is the float64 reference: the SQNR a format's grid gives a Gaussian at a given scale,
by integrating the squared rounding error over every rounding cell of the grid (closed-form Gaussian moments).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from typing import Any, Iterator, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.utils import parametrize

from workbench.errors import DataError, FormatError, LayerError, NonFiniteError
from workbench.quant.metrics import accumulated_metrics, error_metrics, sqnr_db, weight_sqnr_table

__all__ = [
    "sqnr_db",
    "error_metrics",
    "grid_round",
    "expected_sqnr_gaussian",
    "capture_layer_io",
    "layer_error",
]

Mode = Literal["isolated", "cumulative"]
What = Literal["weights", "activations", "both"]
MODES: tuple[str, ...] = ("isolated", "cumulative")
WHATS: tuple[str, ...] = ("weights", "activations", "both")


# ----------------------------------------------------------------------------------------------------------------
# the float64 reference from the format's grid


def grid_round(x: np.ndarray | torch.Tensor, grid: np.ndarray | torch.Tensor) -> np.ndarray:
    """Round each value of ``x`` to the nearest value of a sorted ``grid`` in float64 (saturating at its ends).

    Ties go to the grid value with the even index (for FP8 grids, the even mantissa: round to nearest even).
    """
    g = np.asarray(grid, dtype=np.float64)
    v = np.asarray(x, dtype=np.float64)
    hi = np.clip(np.searchsorted(g, v), 1, len(g) - 1)
    lo = hi - 1
    dlo, dhi = v - g[lo], g[hi] - v
    pick_hi = (dhi < dlo) | ((dhi == dlo) & (hi % 2 == 0))
    return np.where(pick_hi, g[hi], g[lo])


def _normal_moments(a: np.ndarray, b: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """∫_a^b x^k φσ(x) dx for k = 0, 1, 2 (φσ the N(0, σ²) density), in float64."""
    from scipy.special import ndtr

    za, zb = a / sigma, b / sigma
    pa = np.where(np.isfinite(za), np.exp(-0.5 * np.where(np.isfinite(za), za, 0) ** 2), 0.0) / math.sqrt(2 * math.pi)
    pb = np.where(np.isfinite(zb), np.exp(-0.5 * np.where(np.isfinite(zb), zb, 0) ** 2), 0.0) / math.sqrt(2 * math.pi)
    m0 = ndtr(zb) - ndtr(za)
    m1 = sigma * (pa - pb)
    za_pa = np.where(np.isfinite(za), za, 0) * pa
    zb_pb = np.where(np.isfinite(zb), zb, 0) * pb
    m2 = sigma**2 * (m0 + za_pa - zb_pb)
    return m0, m1, m2


def expected_sqnr_gaussian(fmt: str, scale: float, sigma: float = 1.0) -> float:
    """Expected SQNR (dB) of ``x ~ N(0, σ²)`` rounded to ``scale · grid(fmt)`` (nearest value, saturating).

    ``E[(x − q)²] = Σ_cells ∫ (x − v)² φ(x) dx`` over the Voronoi cells of the scaled grid, each integral in closed
    form; ``SQNR = 10·log10(σ² / E[(x − q)²])``. Everything in float64 from
    :func:`workbench.formats.representable_values`, independent of torch's FP8 casts.

    >>> round(expected_sqnr_gaussian("int8", 4.0 / 127), 1)  # uniform noise: Δ²/12 with Δ = 4σ/127
    40.5
    """
    from workbench.formats import representable_values

    g = representable_values(fmt).numpy().astype(np.float64) * float(scale)
    g = np.unique(g)
    mids = (g[:-1] + g[1:]) / 2
    lo = np.concatenate([[-np.inf], mids])
    hi = np.concatenate([mids, [np.inf]])
    m0, m1, m2 = _normal_moments(lo, hi, float(sigma))
    mse = float(np.sum(m2 - 2 * g * m1 + g**2 * m0))
    return 10.0 * math.log10(sigma**2 / mse)


# ----------------------------------------------------------------------------------------------------------------
# capture


def capture_layer_io(handle: Any, batches: Sequence[Any], layers: Sequence[str] | None = None, *,
                     inputs: bool = True, fmt: str | None = None) -> dict[str, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Run ``handle.run`` on each batch and return ``{layer: [(input, output) per call]}`` (inputs ``None`` unless
    ``inputs``), through :func:`workbench.models.capture.capture` on the eligible layers (default: all of them).

    NaN or inf in any captured tensor raises :class:`NonFiniteError` naming the layer.
    """
    from workbench.formats import eligible_layers
    from workbench.models.capture import capture

    eligible = eligible_layers(handle.model)
    names = list(layers) if layers is not None else list(eligible)
    context = (f" with format {fmt!r}" if fmt else " at full precision") + " during calibration"
    with parametrize.cached():
        got = capture(handle.model, {n: eligible[n] for n in names}, list(batches), run=handle.run,
                      keep="both" if inputs else "outputs", finite=True, context=context)
    return {n: [(x, y) for x, y in got.pairs(n) if y is not None] for n in names}


# ----------------------------------------------------------------------------------------------------------------
# layer_error


def _metric_of(res: dict) -> str | None:
    return next((k for k in ("accuracy", "cosine") if k in res), None)


def _check_args(handle: Any, formats: Sequence[str] | str, mode: str, what: str,
                layers: Sequence[str] | None) -> tuple[list[str], dict[str, nn.Module]]:
    from workbench.checks import option
    from workbench.formats import eligible_layers, parse_format

    option("mode", mode, MODES, where="layer_error")
    option("what", what, WHATS, where="layer_error")
    fmts = [formats] if isinstance(formats, str) else list(formats)
    if not fmts:
        raise FormatError("layer_error: no formats given; pass a format name or a list, e.g. ['int8', 'int4']")
    for f in fmts:
        parsed = parse_format(f)
        if parsed.number is None and what != "weights":
            raise FormatError(f"format {f!r} has no number format, so it cannot quantize activations "
                              f"(what={what!r}); use what='weights'")
    eligible = eligible_layers(handle.model)
    if layers is None:
        chosen = dict(eligible)
    else:
        chosen = {}
        named = dict(handle.model.named_modules())
        for name in [layers] if isinstance(layers, str) else layers:
            if name not in eligible:
                if name in named:
                    raise LayerError(f"layer {name!r} ({type(named[name]).__name__}) has no weight a format can "
                                     f"quantize; eligible layers: {', '.join(eligible) or '(none)'}")
                raise LayerError(f"no layer named {name!r}; eligible layers: {', '.join(eligible) or '(none)'}")
            chosen[name] = eligible[name]
    if not chosen:
        raise LayerError(f"model {getattr(handle, 'name', '?')!r} has no eligible layers (Linear/Conv with a "
                         "weight) to quantize")
    return fmts, chosen


@contextmanager
def quantized(model: nn.Module, assignment: dict[str, str], what: str = "weights",
              granularity: Any = "channel") -> Iterator[None]:
    """Context: the layers of ``assignment`` quantized (weights, activations or both), restored on exit."""
    from workbench.formats import apply, restore

    try:
        apply(model, dict(assignment), activations=(what != "weights"), weights=(what != "activations"),
              granularity=granularity)
        yield
    finally:
        restore(model, list(assignment))


def layer_error(
    handle: Any,
    formats: Sequence[str] | str,
    mode: Mode = "isolated",
    what: What = "weights",
    batches: Iterable[Any] | None = None,
    *,
    layers: Sequence[str] | None = None,
    granularity: Any = "channel",
    evaluate: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Quantization error of every layer × format; one row each.

    Columns: ``layer, format, mode, what, weight_sqnr_db, output_sqnr_db, output_nl2, output_cosine, loss,
    delta_loss, metric, value, delta_value`` (``metric`` is ``"accuracy"`` or ``"cosine"``, ``value`` its value
    under quantization: isolated = only this layer, cumulative = the whole model). ``batches`` default to
    ``handle.calibration_batches()``; ``evaluate=False`` skips the model-level columns (NaN). Measured on the
    model without the formats it carries (:func:`workbench.formats.suspended`), which it gets back unchanged.

    >>> # layer_error(load_model("digits-mlp"), ["int8", "int4"], mode="cumulative")
    """
    from workbench.formats import suspended

    fmts, chosen = _check_args(handle, formats, mode, what, layers)
    batches = list(handle.calibration_batches() if batches is None else batches)
    if not batches:
        raise DataError(f"layer_error: the calibration data for model {getattr(handle, 'name', '?')!r} is empty")
    with suspended(handle.model):
        return _layer_error(handle, fmts, list(chosen), mode, what, batches, granularity, evaluate, progress)


def _layer_error(handle: Any, fmts: list[str], names: list[str], mode: str, what: str, batches: list[Any],
                 granularity: Any, evaluate: bool, progress: bool) -> pd.DataFrame:
    from workbench.progress import progress_bar

    from workbench.formats import eligible_layers

    model = handle.model
    ref = capture_layer_io(handle, batches, names, inputs=(mode == "isolated"))
    for name in names:
        if not ref[name]:
            raise LayerError(f"layer {name!r} was never called while running the calibration batches")
    replay = None
    if evaluate and mode == "isolated":
        from workbench.quant.replay import UpstreamReplay

        replay = UpstreamReplay(handle, names)
        base = replay.baseline
        if not replay.check():  # a model whose upstream cannot be replayed faithfully: evaluate in full
            replay = None
    else:
        base = handle.evaluate() if evaluate else {}
    metric = _metric_of(base) if evaluate else None

    eligible = eligible_layers(model)

    def weight_sqnr(assignment: dict[str, str]) -> dict[str, float]:
        """SQNR of each weight as apply() formats it (the one weight-SQNR table); inf for activations only."""
        if what == "activations":
            return {name: math.inf for name in assignment}
        table = weight_sqnr_table(model, assignment)
        return dict(zip(table["layer"], table["sqnr_db"]))

    def finite_or_raise(m: dict, parts: list, name: str, f: str) -> None:
        if not (math.isfinite(m["sqnr_db"]) or m["sqnr_db"] == math.inf) or not math.isfinite(m["nl2"]):
            for _, yq in parts:  # find and name the offending tensor
                if yq.is_floating_point() and not torch.isfinite(yq).all():
                    raise NonFiniteError(f"layer {name!r}: output of shape {tuple(yq.shape)} contains "
                                         f"{int((~torch.isfinite(yq)).sum())} NaN/inf values with format {f!r} "
                                         "during calibration")

    rows: list[dict] = []

    def model_level(res: dict) -> dict:
        if not evaluate:
            return {"loss": np.nan, "delta_loss": np.nan, "metric": None, "value": np.nan, "delta_value": np.nan}
        return {"loss": float(res["loss"]), "delta_loss": float(res["loss"]) - float(base["loss"]),
                "metric": metric, "value": float(res[metric]) if metric else np.nan,
                "delta_value": float(res[metric]) - float(base[metric]) if metric else np.nan}

    if mode == "isolated":
        pairs = [(n, f) for n in names for f in fmts]
        for name, f in progress_bar(pairs, desc="layer_error (isolated)", disable=not progress):
            mod = eligible[name]
            with quantized(model, {name: f}, what, granularity):
                parts = []
                with torch.no_grad(), parametrize.cached():
                    wsq = weight_sqnr({name: f})[name]
                    for x, y in ref[name]:
                        parts.append((y, mod(x)))
                if not evaluate:
                    res = {}
                else:
                    res = replay.evaluate(name) if replay is not None else handle.evaluate()
            m = accumulated_metrics(parts)
            finite_or_raise(m, parts, name, f)
            rows.append({"layer": name, "format": f, "mode": mode, "what": what,
                         "weight_sqnr_db": wsq, "output_sqnr_db": m["sqnr_db"],
                         "output_nl2": m["nl2"], "output_cosine": m["cosine"], **model_level(res)})
    else:
        for f in progress_bar(fmts, desc="layer_error (cumulative)", disable=not progress):
            with quantized(model, {n: f for n in names}, what, granularity):
                got = capture_layer_io(handle, batches, names, inputs=False, fmt=f)
                res = handle.evaluate() if evaluate else {}
                wsqs = weight_sqnr({n: f for n in names})
            for name in names:
                m = accumulated_metrics([(y, yq) for (_, y), (_, yq) in zip(ref[name], got[name])])
                rows.append({"layer": name, "format": f, "mode": mode, "what": what,
                             "weight_sqnr_db": wsqs[name], "output_sqnr_db": m["sqnr_db"],
                             "output_nl2": m["nl2"], "output_cosine": m["cosine"], **model_level(res)})
    out = pd.DataFrame(rows)
    out.attrs["baseline"] = dict(base)
    return out
