"""Calibration: choosing scales, layer-wise weight calibration (AdaQuant), and BatchNorm re-estimation.

Scales (Micikevicius et al. 2022 for FP8; symmetric integer quantization): ``s = stat / fmax`` with ``stat``

- ``"max"``: amax over the calibration data, per tensor or per channel (dim 0 for weights);
- ``"percentile"``: the ``p``-th percentile of |x| (clips rare outliers, finer grid for the bulk);
- delayed scaling (:class:`DelayedScaling`, as FP8 training recipes do): the scale used for step t is computed
  from the amax *history* of the previous steps, so no extra pass over the current tensor is needed.

Layer-wise calibration (Hubara, Nahshan, Hanani, Banner, Soudry 2020, "AdaQuant"): for each layer in order,
minimise ``‖W·X − Q(W + V)·Q(X̃) − (b − b')‖²`` over the weight perturbation V and the bias on the calibration set,
with straight-through gradients through the rounding; ``X`` are the full-precision inputs, ``X̃`` the inputs the
already-quantized layers before produce (the sequential variant).

BatchNorm re-estimation: after quantization, reset every BN layer's running statistics and re-accumulate them
(cumulative average) on the calibration data flowing through the quantized model.

All functions that change a model work on a deep copy and return it; ``handle.evaluate(model=copy)`` scores it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import math

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.errors import DataError, LayerError, NonFiniteError
from workbench.quant.metrics import accumulated_metrics, sqnr_db

__all__ = [
    "compute_scales",
    "DelayedScaling",
    "calibrate_activations",
    "quantize_model",
    "reestimate_bn",
    "adaquant",
    "PTQResult",
    "post_training_quantize",
    "scaling_comparison",
]

Method = Literal["max", "percentile"]


METHODS: tuple[str, ...] = ("max", "percentile")


def _number(fmt: str):
    from workbench.formats import parse_format
    from workbench.errors import FormatError

    f = parse_format(fmt)
    if f.number is None:
        raise FormatError(f"format {f.name!r} has no number format to calibrate a scale for")
    return f.number


def _fmax(number) -> float:
    """The largest finite value of the unscaled grid; 1 for binary (whose scale is mean|x|, not amax)."""
    return float(number.fmax) if number.kind != "binary" else 1.0


def _check_method(method: str, percentile: float, where: str) -> None:
    from workbench.checks import number, option

    option("method", method, METHODS, where=where)
    number("percentile", percentile, low=0, high=100, low_open=True, where=where)


def _stat(a: torch.Tensor, method: Method, percentile: float, dim: int | None) -> torch.Tensor:
    a = a.detach().abs().float()
    if method == "max":
        return a.amax() if dim is None else a.reshape(a.shape[0], -1).amax(1)
    q = percentile / 100.0
    if dim is None:
        flat = a.flatten()
        if flat.numel() > 1 << 24:
            flat = flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[: 1 << 24]]
        return torch.quantile(flat, q)
    return torch.quantile(a.reshape(a.shape[0], -1), q, dim=1)


def compute_scales(x: torch.Tensor, fmt: str, granularity: Literal["tensor", "channel"] = "tensor",
                   method: Method = "max", percentile: float = 99.99) -> torch.Tensor:
    """The dequantization scale of ``x`` for ``fmt`` per tensor (a scalar) or per channel (one per index of dim 0,
    shaped to broadcast), with the calibration ``method``: ``"max"`` is exactly
    :func:`workbench.formats.compute_scale` (amax / fmax; binary: mean|x|, whatever the method);
    ``"percentile"`` puts the ``percentile``-th percentile of |x| at fmax. A zero scale becomes 1.

    >>> compute_scales(torch.tensor([[1.0, -254.0]]), "int8").item()
    2.0
    """
    from workbench.checks import option
    from workbench.formats import compute_scale

    number = _number(fmt)
    _check_method(method, percentile, "compute_scales")
    option("granularity", granularity, ("tensor", "channel"), where="compute_scales")
    if method == "max" or number.kind == "binary":
        return compute_scale(x, number, granularity)
    s = _stat(x, method, percentile, None if granularity == "tensor" else 0) / _fmax(number)
    s = torch.where(s > 0, s, torch.ones_like(s))
    if granularity == "channel":
        s = s.reshape(-1, *([1] * (x.dim() - 1)))
    return s


class DelayedScaling:
    """Delayed scaling for one tensor stream: the scale for the current step comes from an amax history.

    ``scale = max(history) / fmax · 2^(−margin)``; the current amax is appended *after* quantizing (so values larger
    than every recent amax saturate: the price of not scanning the tensor first). The first call, with an empty
    history, uses its own amax.

    >>> ds = DelayedScaling("fp8_e4m3", history_len=4)
    >>> _ = ds(torch.tensor([448.0])); ds.history
    [448.0]
    >>> ds.scale
    1.0
    """

    def __init__(self, fmt: str, history_len: int = 16, margin: int = 0) -> None:
        from workbench.checks import integer
        from workbench.errors import FormatError

        self.fmt = fmt
        self.number = _number(fmt)
        if self.number.kind == "binary":
            raise FormatError(f"delayed scaling keeps an amax history, but format {fmt!r} scales by mean|x|; "
                              "use a format with a largest value (fp8_e4m3, fp8_e5m2, int8, int4)")
        self.history_len = integer("history_len", history_len, low=1, where="DelayedScaling")
        self.margin = integer("margin", margin, low=0, where="DelayedScaling")
        self.history: list[float] = []
        self.overflow: list[float] = []

    @property
    def scale(self) -> float:
        if not self.history:
            return float("nan")
        amax = max(self.history)
        return amax / _fmax(self.number) / (2.0 ** self.margin) if amax > 0 else 1.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from workbench.formats import round_number

        amax = float(x.detach().abs().amax())
        if not math.isfinite(amax):
            raise NonFiniteError(f"delayed scaling ({self.fmt}): tensor of shape {tuple(x.shape)} has NaN/inf")
        first = not self.history
        if first:  # no history yet: this tensor's own amax (recorded once, below)
            self.history.append(amax)
        scale = self.scale
        if first:
            self.history.clear()
        self.overflow.append(float((x.detach().abs() > scale * _fmax(self.number)).float().mean()))
        q = round_number(x, self.number, torch.tensor(scale, dtype=torch.float32)).to(x.dtype)
        self.history.append(amax)
        self.history = self.history[-self.history_len:]
        return q


# ----------------------------------------------------------------------------------------------------------------
# activation calibration and a quantized model with static scales


def _batches(handle: Any, batches: Iterable[Any] | None) -> list[Any]:
    out = list(handle.calibration_batches() if batches is None else batches)
    if not out:
        raise DataError(f"calibration data for model {getattr(handle, 'name', '?')!r} is empty")
    return out


def calibrate_activations(handle: Any, fmt: str, batches: Iterable[Any] | None = None, *,
                          method: Method = "max", percentile: float = 99.99, model: nn.Module | None = None,
                          layers: Sequence[str] | None = None) -> pd.DataFrame:
    """Static per-tensor scales for every layer's input: ``layer, format, method, stat, scale``.

    Inputs are collected by running ``batches`` (default ``handle.calibration_batches()``) through ``model``
    (default the handle's). NaN/inf in an input raises :class:`NonFiniteError` naming the layer.
    """
    from workbench.formats import eligible_layers
    from workbench.models.capture import capture

    number = _number(fmt)
    _check_method(method, percentile, "calibrate_activations")
    batches = _batches(handle, batches)
    model = handle.model if model is None else model
    eligible = eligible_layers(model)
    names = list(layers) if layers is not None else list(eligible)
    for n in names:
        if n not in eligible:
            raise LayerError(f"no eligible layer named {n!r}; eligible layers: {', '.join(eligible)}")
    got = capture(model, {n: eligible[n] for n in names}, batches, run=lambda b: handle.run(b, model=model),
                  keep="inputs", finite=True, context=f" during calibration for format {fmt!r}")
    rows = []
    for n in names:
        a = torch.cat([x.abs().flatten() for x in got.inputs[n]]) if got.inputs[n] else torch.zeros(1)
        stat = float(a.mean()) if number.kind == "binary" else float(_stat(a, method, percentile, None))
        scale = float(compute_scales(a, fmt, "tensor", method, percentile))
        rows.append({"layer": n, "format": fmt, "method": method, "stat": stat, "scale": scale})
    return pd.DataFrame(rows)


def quantize_model(model: nn.Module, fmt: str | dict, scales: pd.DataFrame | None = None, *,
                   activations: bool = True, granularity: Any = "channel") -> nn.Module:
    """Put ``fmt`` on ``model`` with :func:`workbench.formats.apply` (weights, and inputs if ``activations``),
    then fix each layer's activation scale from ``scales`` (:func:`calibrate_activations`; without it the scale
    stays dynamic). Changes ``model`` in place and returns it."""
    from workbench.formats import activation_quantizer, apply, eligible_layers

    apply(model, fmt, activations=activations, granularity=granularity)
    if activations and scales is not None:
        eligible = eligible_layers(model)
        for _, r in scales.iterrows():
            q = activation_quantizer(eligible[r["layer"]]) if r["layer"] in eligible else None
            if q is not None:
                q.scale = float(r["scale"])
    return model


@torch.no_grad()
def reestimate_bn(handle: Any, model: nn.Module, batches: Iterable[Any] | None = None) -> int:
    """Reset the running statistics of every BatchNorm in ``model`` and re-accumulate them (cumulative average)
    on ``batches`` run through ``model`` as it stands (quantized). Returns the number of BN layers updated."""
    batches = _batches(handle, batches)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    saved = [(m, m.momentum, m.training) for m in bns]
    was = model.training
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        for b in batches:
            handle.run(b, model=model)
    finally:
        for m, mom, tr in saved:
            m.momentum = mom
            m.train(tr)
        model.train(was)
        model.eval()
    return len(bns)


# ----------------------------------------------------------------------------------------------------------------
# AdaQuant


def _collect_inputs(handle: Any, model: nn.Module, name: str, batches: list[Any]) -> list[torch.Tensor]:
    from workbench.formats import eligible_layers
    from workbench.models.capture import capture

    mod = eligible_layers(model)[name]
    return capture(model, {name: mod}, batches, run=lambda b: handle.run(b, model=model),
                   keep="inputs").inputs[name]


def adaquant(handle: Any, fmt: str, batches: Iterable[Any] | None = None, *, activations: bool = False,
             scales: pd.DataFrame | None = None, steps: int = 200, lr: float = 1e-3, bias: bool = True,
             granularity: Any = "channel", seed: int = 0, progress: bool = True) -> tuple[nn.Module, pd.DataFrame]:
    """Layer-wise calibration (AdaQuant, sequential): returns a quantized copy of the model and one row per layer
    ``layer, format, mse_before, mse_after, sqnr_before_db, sqnr_after_db`` (output error against full precision
    on the calibration set, before and after optimising that layer's latent weights and bias).

    The copy's latent weights are the optimised ones (``restore`` on the copy gives them back, not the originals);
    the handle's model is not changed.
    """
    from workbench.checks import integer, number
    from workbench.formats import parse_format, suspended

    parse_format(fmt)
    integer("steps", steps, low=0, where="adaquant")
    number("lr", lr, low=0, low_open=True, where="adaquant")
    batches = _batches(handle, batches)
    with suspended(handle.model):  # calibrated from the model without the user's formats, which stay
        return _adaquant(handle, fmt, batches, activations, scales, steps, lr, bias, granularity, seed, progress)


def _adaquant(handle: Any, fmt: str, batches: list[Any], activations: bool, scales: pd.DataFrame | None,
              steps: int, lr: float, bias: bool, granularity: Any, seed: int,
              progress: bool) -> tuple[nn.Module, pd.DataFrame]:
    from workbench.progress import progress_bar

    from workbench.formats import activation_quantizer, apply, eligible_layers, quantize
    from workbench.formats.parametrize import straight_through

    torch.manual_seed(seed)
    fp = handle.model
    q_model = copy.deepcopy(fp)
    names = list(eligible_layers(fp))
    fp_layers = eligible_layers(fp)
    rows = []
    for name in progress_bar(names, desc="adaquant", disable=not progress):
        x_fp = _collect_inputs(handle, fp, name, batches)
        with torch.no_grad():
            y_fp = [fp_layers[name](x) for x in x_fp]
        x_q = _collect_inputs(handle, q_model, name, batches)  # earlier layers already quantized
        mod = eligible_layers(q_model)[name]
        act_scale = None
        if activations and scales is not None:
            hit = scales[scales["layer"] == name]
            act_scale = float(hit["scale"].iloc[0]) if len(hit) else None
        if activations:
            x_in = [quantize(x / act_scale, fmt, granularity=None) * act_scale if act_scale else
                    quantize(x, fmt, granularity="tensor") for x in x_q]
        else:
            x_in = x_q
        w0 = mod.weight.detach().clone()
        b0 = mod.bias.detach().clone() if mod.bias is not None else None
        v = torch.zeros_like(w0, requires_grad=True)
        db = torch.zeros_like(b0, requires_grad=True) if (bias and b0 is not None) else None
        params = [v] + ([db] if db is not None else [])
        opt = torch.optim.Adam(params, lr=lr * float(w0.abs().mean()))

        def out(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
            return mod._conv_forward(x, w, b) if isinstance(mod, nn.modules.conv._ConvNd) else \
                nn.functional.linear(x, w, b)

        def qw(w: torch.Tensor) -> torch.Tensor:
            return straight_through(w, quantize(w.detach(), fmt, granularity=granularity))

        def mse() -> float:
            with torch.no_grad():
                w = quantize(w0 + v, fmt, granularity=granularity)
                b = b0 + db if db is not None else b0
                num = sum(float(((out(x, w, b) - y) ** 2).sum()) for x, y in zip(x_in, y_fp))
                return num / sum(y.numel() for y in y_fp)

        def sq() -> float:
            with torch.no_grad():
                w = quantize(w0 + v, fmt, granularity=granularity)
                b = b0 + db if db is not None else b0
                return sqnr_db(torch.cat([y.flatten() for y in y_fp]),
                               torch.cat([out(x, w, b).flatten() for x in x_in]))

        before, sq_before = mse(), sq()
        for _ in range(steps):
            opt.zero_grad()
            loss = sum(((out(x, qw(w0 + v), (b0 + db) if db is not None else b0) - y) ** 2).mean()
                       for x, y in zip(x_in, y_fp))
            loss.backward()
            opt.step()
        after, sq_after = mse(), sq()
        if after > before:  # keep the better of the two (the optimiser may not improve a near-exact layer)
            with torch.no_grad():
                v.zero_()
                if db is not None:
                    db.zero_()
            after, sq_after = before, sq_before
        with torch.no_grad():
            mod.weight.copy_(w0 + v)
            if db is not None:
                mod.bias.copy_(b0 + db)
        apply(q_model, {name: fmt}, activations=activations, granularity=granularity)
        if activations and act_scale is not None:
            activation_quantizer(mod).scale = act_scale
        rows.append({"layer": name, "format": fmt, "mse_before": before, "mse_after": after,
                     "sqnr_before_db": sq_before, "sqnr_after_db": sq_after})
    return q_model.eval(), pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------------------------
# a whole post-training pipeline, for comparisons


@dataclass
class PTQResult:
    """A quantized copy of the model and what was measured: ``metrics`` (``handle.evaluate`` on the copy) and
    the tables of the steps that ran (``scales``, ``adaquant``)."""

    model: nn.Module
    metrics: dict[str, float]
    scales: pd.DataFrame | None = None
    adaquant: pd.DataFrame | None = None
    steps: list[str] = field(default_factory=list)

    @property
    def table(self) -> pd.DataFrame:
        """One row: the metrics of the quantized copy and the steps that ran (the lab-wide ``.table``)."""
        return pd.DataFrame([{**self.metrics, "steps": ", ".join(self.steps)}])


def post_training_quantize(handle: Any, fmt: str, batches: Iterable[Any] | None = None, *,
                           activations: bool = True, method: Method = "max", percentile: float = 99.99,
                           use_adaquant: bool = False, bn_reestimate: bool = False, adaquant_steps: int = 200,
                           progress: bool = True) -> PTQResult:
    """Quantize a copy of the model with ``fmt`` using ``batches`` as calibration data (real, or synthesized by
    :func:`workbench.quant.datafree.synthesize`): static activation scales (``method``), optional AdaQuant, optional
    BatchNorm re-estimation; then ``handle.evaluate`` on the copy."""
    from workbench.formats import suspended

    _check_method(method, percentile, "post_training_quantize")
    batches = _batches(handle, batches)
    with suspended(handle.model):  # quantizes a copy of the model without the user's formats, which stay
        return _post_training_quantize(handle, fmt, batches, activations, method, percentile, use_adaquant,
                                       bn_reestimate, adaquant_steps, progress)


def _post_training_quantize(handle: Any, fmt: str, batches: list[Any], activations: bool, method: Method,
                            percentile: float, use_adaquant: bool, bn_reestimate: bool, adaquant_steps: int,
                            progress: bool) -> PTQResult:
    steps = []
    scales = None
    if activations:
        scales = calibrate_activations(handle, fmt, batches, method=method, percentile=percentile)
        steps.append(f"activation scales ({method})")
    ada = None
    if use_adaquant:
        model, ada = adaquant(handle, fmt, batches, activations=activations, scales=scales, steps=adaquant_steps,
                              progress=progress)
        steps.append("adaquant")
    else:
        model = quantize_model(copy.deepcopy(handle.model), fmt, scales, activations=activations)
    if bn_reestimate:
        reestimate_bn(handle, model, batches)
        steps.append("bn re-estimation")
    return PTQResult(model=model, metrics=dict(handle.evaluate(model=model)), scales=scales, adaquant=ada,
                     steps=steps)


def scaling_comparison(handle: Any, fmt: str, batches: Iterable[Any] | None = None, *,
                       percentile: float = 99.9, history_len: int = 16) -> pd.DataFrame:
    """Activation SQNR of every layer's input under four scaling choices: ``dynamic`` (per-tensor amax of each
    batch), ``static max`` and ``static percentile`` (calibrated once on all batches), ``delayed`` (amax history of
    the previous batches). One row per layer × scaling: ``layer, format, scaling, sqnr_db, clipped`` (share of
    values beyond the representable range)."""
    from workbench.formats import quantize
    from workbench.quant.error import capture_layer_io

    number = _number(fmt)
    if number.kind == "binary":
        from workbench.errors import FormatError

        raise FormatError(f"scaling_comparison compares amax-based scalings, but format {fmt!r} scales by mean|x|; "
                          "use fp8_e4m3, fp8_e5m2, int8 or int4")
    _check_method("percentile", percentile, "scaling_comparison")
    batches = _batches(handle, batches)
    io = capture_layer_io(handle, batches, inputs=True)
    fmax = _fmax(number)
    rows = []
    for name, pairs in io.items():
        xs = [x for x, _ in pairs]
        allx = torch.cat([x.flatten() for x in xs])
        choices: dict[str, list[torch.Tensor]] = {}
        choices["dynamic"] = [quantize(x, fmt, granularity="tensor") for x in xs]
        for label, method in (("static max", "max"), ("static percentile", "percentile")):
            s = compute_scales(allx, fmt, "tensor", method, percentile)
            choices[label] = [quantize(x / s, fmt, granularity=None) * s for x in xs]
        ds = DelayedScaling(fmt, history_len=history_len)
        choices["delayed"] = [ds(x) for x in xs]
        for label, qs in choices.items():
            m = accumulated_metrics(list(zip(xs, qs)))
            if label == "delayed":
                clipped = float(np.mean(ds.overflow))
            elif label == "dynamic":
                clipped = 0.0
            else:
                s = compute_scales(allx, fmt, "tensor", "max" if label == "static max" else "percentile", percentile)
                clipped = float((allx.abs() > float(s) * fmax).float().mean())
            rows.append({"layer": name, "format": fmt, "scaling": label, "sqnr_db": m["sqnr_db"],
                         "clipped": clipped})
    return pd.DataFrame(rows)
