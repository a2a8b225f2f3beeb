"""``apply`` and ``restore``: put formats on a model's layers and take them off again, exactly.

Layers are chosen by name (torchao's ``FqnToConfig`` idea): ``layers`` takes ``None`` (every eligible layer), a
name, a ``"re:<pattern>"``, a list of those, or a predicate ``f(name, module) -> bool``; or ``fmt`` itself is a
mapping ``{name | "re:<pattern>" | "default": format | None}`` (exact names win over patterns, patterns are tried in
order, ``"default"`` covers the rest, ``None`` leaves a layer untouched).

A layer named explicitly that cannot take its format is an error; a layer reached by ``None``, a pattern or a
predicate is skipped and the skip is reported in the returned table. ``apply`` validates and computes every
parametrization before it changes anything, so a failed ``apply`` leaves the model exactly as it was.

>>> import torch.nn as nn
>>> net = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3))
>>> apply(net, "2:4")[["layer", "status"]].values.tolist()
[['0', 'applied'], ['2', 'applied']]
>>> current_formats(net)
{'0': '2:4', '2': '2:4'}
>>> restore(net)
['0', '2']
"""

from __future__ import annotations

import re
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Union

import pandas as pd
import torch
from torch import nn
from torch.nn.utils import parametrize

from workbench.errors import FormatError, LayerError, NonFiniteError, ShapeError
from workbench.formats.masks import fits
from workbench.formats.numbers import Granularity
from workbench.formats.parametrize import ActivationQuantizer, FormatParametrization
from workbench.formats.spec import Format, parse_format

LayerSelector = Union[None, str, Iterable[str], Callable[[str, nn.Module], bool]]
FormatArg = Union[str, Format, Mapping[str, Union[str, Format, None]]]

ELIGIBLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_ACT_ATTR = "_workbench_activation"
RESULT_COLUMNS = ["layer", "format", "status", "reason"]


def eligible_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Layers that can take a format, by qualified name: Linear and Conv modules with a weight of >= 2 dims."""
    out: dict[str, nn.Module] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, ELIGIBLE_TYPES) and _original_weight(mod) is not None:
            out[name] = mod
    return out


def _original_weight(mod: nn.Module) -> torch.Tensor | None:
    if parametrize.is_parametrized(mod, "weight"):
        return mod.parametrizations.weight.original
    w = getattr(mod, "weight", None)
    return w if isinstance(w, torch.Tensor) and w.dim() >= 2 else None


def _format_param(mod: nn.Module) -> FormatParametrization | None:
    if parametrize.is_parametrized(mod, "weight"):
        for p in mod.parametrizations.weight:
            if isinstance(p, FormatParametrization):
                return p
    return None


def _match(name: str, key: str) -> bool:
    return bool(re.fullmatch(key[3:], name)) if key.startswith("re:") else name == key


def _plan(model: nn.Module, fmt: FormatArg, layers: LayerSelector) -> tuple[dict[str, Format | None], set[str]]:
    """Map each targeted layer to its Format (None = untouched) and return the names chosen explicitly."""
    eligible = eligible_layers(model)
    known = ", ".join(eligible) or "(none)"
    plan: dict[str, Format | None] = {}
    explicit: set[str] = set()
    if isinstance(fmt, Mapping):
        if layers is not None:
            raise FormatError("pass either a per-layer format mapping or `layers`, not both")
        parsed = {k: (None if v is None else parse_format(v)) for k, v in fmt.items()}
        for key in parsed:
            if key != "default" and not key.startswith("re:") and key not in eligible:
                raise LayerError(f"no eligible layer named {key!r}; eligible layers: {known}")
            if key.startswith("re:") and not any(_match(n, key) for n in eligible):
                raise LayerError(f"pattern {key!r} matches no eligible layer; eligible layers: {known}")
        patterns = [k for k in parsed if k.startswith("re:")]
        for name in eligible:
            if name in parsed:
                plan[name] = parsed[name]
                explicit.add(name)
                continue
            key = next((k for k in patterns if _match(name, k)), "default" if "default" in parsed else None)
            if key is not None:
                plan[name] = parsed[key]
        return {k: v for k, v in plan.items() if v is not None}, explicit
    f = parse_format(fmt)
    if layers is None:
        return {name: f for name in eligible}, explicit
    if callable(layers):
        return {name: f for name, mod in eligible.items() if layers(name, mod)}, explicit
    keys = [layers] if isinstance(layers, str) else list(layers)
    for key in keys:
        if not isinstance(key, str):
            raise LayerError(f"layer selectors are names or 're:' patterns, got {key!r}")
        hits = [n for n in eligible if _match(n, key)]
        if not hits:
            what = "pattern" if key.startswith("re:") else "no eligible layer named"
            raise LayerError(f"{what} {key!r}" + (" matches no eligible layer" if key.startswith("re:") else "")
                             + f"; eligible layers: {known}")
        for n in hits:
            plan[n] = f
            if not key.startswith("re:"):
                explicit.add(n)
    return plan, explicit


# Parametrizations already built, per original weight tensor (by identity): their masks and scales depend only on
# that weight, so toggling back to a format is cheap even when its mask is expensive (transposable N:M). The cache
# of a weight is dropped when the weight changed in place since our last registration (its version counter moved;
# registering a parametrization bumps it too, so the version after each registration is recorded), and an entry
# is dropped when its own buffers were changed in place.
_CACHE_PER_WEIGHT = 8


class _WeightCache:
    def __init__(self, w: torch.Tensor, on_free: Callable[[weakref.ref], None]) -> None:
        self.ref = weakref.ref(w, on_free)
        self.version = w._version
        self.params: OrderedDict[tuple, tuple[FormatParametrization, tuple[int, ...]]] = OrderedDict()


_param_cache: dict[int, _WeightCache] = {}


def _cache_for(w: torch.Tensor) -> _WeightCache:
    entry = _param_cache.get(id(w))
    if entry is None or entry.ref() is not w:
        def _drop(ref: weakref.ref, wid: int = id(w)) -> None:
            if wid in _param_cache and _param_cache[wid].ref is ref:
                del _param_cache[wid]

        entry = _param_cache[id(w)] = _WeightCache(w, _drop)
    if entry.version != w._version:
        entry.params.clear()
        entry.version = w._version
    return entry


def _buffer_versions(p: FormatParametrization) -> tuple[int, ...]:
    return tuple(b._version for b in p.buffers())


def _build(f: Format, w: torch.Tensor, granularity: Granularity) -> FormatParametrization:
    """The parametrization of ``f`` for weight ``w``, from the cache when ``w`` is unchanged since it was built."""
    entry, key = _cache_for(w), (f.name, granularity, w.dtype, w.device)
    hit = entry.params.get(key)
    if hit is not None and _buffer_versions(hit[0]) == hit[1]:
        entry.params.move_to_end(key)
        return hit[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        param = FormatParametrization(f, w, granularity)
    for w_ in caught:  # e.g. a transposable solve that zero-padded the weight: warn, and keep it as a note
        warnings.warn_explicit(w_.message, w_.category, w_.filename, w_.lineno)
    param.notes = tuple(str(w_.message) for w_ in caught)
    entry.params[key] = (param, _buffer_versions(param))
    while len(entry.params) > _CACHE_PER_WEIGHT:
        entry.params.popitem(last=False)
    return param


def clear_cache() -> None:
    """Forget every parametrization built so far (the next ``apply`` of each format solves its mask again)."""
    _param_cache.clear()


def _remember(w: torch.Tensor) -> None:
    """Record the weight's version after we registered a parametrization on it (registration bumps it)."""
    entry = _param_cache.get(id(w))
    if entry is not None and entry.ref() is w:
        entry.version = w._version


def _why_not(name: str, w: torch.Tensor, f: Format) -> str | None:
    if f.sparsity is not None:
        reason = fits(w, f.sparsity)
        if reason:
            return f"layer {name!r}: {reason}"
    return None


def apply(
    model: nn.Module,
    fmt: FormatArg,
    layers: LayerSelector = None,
    activations: bool = False,
    granularity: Granularity = "channel",
    weights: bool = True,
) -> pd.DataFrame:
    """Put ``fmt`` on the chosen layers' weights (and inputs, with ``activations=True``); returns one row per
    targeted layer: ``layer, format, status ("applied" | "skipped"), reason`` (for an applied layer, a note such as
    a zero-padded transposable solve, else ""). Applying again replaces.

    ``weights=False`` (with ``activations=True``) quantizes only the layers' inputs, with the number part of the
    format, and leaves the weights as they are."""
    if not weights and not activations:
        raise FormatError("apply(weights=False) needs activations=True: otherwise there is nothing to apply")
    plan, explicit = _plan(model, fmt, layers)
    eligible = eligible_layers(model)
    rows: list[dict[str, str]] = []
    built: dict[str, tuple[Format, FormatParametrization | None]] = {}
    for name, f in plan.items():
        assert f is not None
        w = _original_weight(eligible[name])
        assert w is not None
        reason = _why_not(name, w, f) if weights else None
        if reason:
            if name in explicit:
                raise ShapeError(f"{reason} (format {f.name!r})")
            rows.append({"layer": name, "format": f.name, "status": "skipped", "reason": reason})
            continue
        if weights and w.is_floating_point() and not torch.isfinite(w).all():
            raise NonFiniteError(f"layer {name!r}: weight {tuple(w.shape)} contains NaN or inf; format {f.name!r} "
                                 "was not applied to any layer")
        param = None if f.is_dense or not weights else _build(f, w, granularity)
        built[name] = (f, param)
        rows.append({"layer": name, "format": f.name, "status": "applied",
                     "reason": "; ".join(param.notes) if param is not None else ""})

    previous = {name: _snapshot(eligible[name]) for name in built}
    try:
        for name, (f, param) in built.items():
            mod = eligible[name]
            _remove(mod)
            if param is not None:
                parametrize.register_parametrization(mod, "weight", param)
                _remember(mod.parametrizations.weight.original)
            if activations and f.number is not None:
                _attach_activation(mod, ActivationQuantizer(f.number))
    except Exception:
        for name, snap in previous.items():
            _remove(eligible[name])
            _reinstate(eligible[name], snap)
        raise
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def _snapshot(mod: nn.Module) -> tuple[FormatParametrization | None, ActivationQuantizer | None]:
    act = getattr(mod, _ACT_ATTR, None)
    return _format_param(mod), (act[0] if act else None)


def _reinstate(mod: nn.Module, snap: tuple[FormatParametrization | None, ActivationQuantizer | None]) -> None:
    param, act = snap
    if param is not None:
        parametrize.register_parametrization(mod, "weight", param)
    if act is not None:
        _attach_activation(mod, act)


def _attach_activation(mod: nn.Module, quantizer: ActivationQuantizer) -> None:
    handle = mod.register_forward_pre_hook(quantizer)
    object.__setattr__(mod, _ACT_ATTR, (quantizer, handle))


def _remove(mod: nn.Module) -> bool:
    """Take every format off one module; True if there was one."""
    changed = False
    if _format_param(mod) is not None:
        parametrize.remove_parametrizations(mod, "weight", leave_parametrized=False)
        changed = True
    act = getattr(mod, _ACT_ATTR, None)
    if act is not None:
        act[1].remove()
        object.__delattr__(mod, _ACT_ATTR)
        changed = True
    return changed


def restore(model: nn.Module, layers: LayerSelector = None) -> list[str]:
    """Remove formats (weights and activations), giving back the bit-identical original weights; returns the
    names of the layers that had a format."""
    eligible = eligible_layers(model)
    if layers is None:
        chosen = list(eligible)
    else:
        chosen = list(_plan(model, "dense", layers)[0])
    return [name for name in chosen if _remove(eligible[name])]


@contextmanager
def suspended(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block the model computes without any format (dense weights, no activation quantizers); on exit
    every layer gets back exactly what it had: the same parametrization objects (masks, scales) and the same
    activation quantizers (static scales included), and nothing an analysis applied inside the block stays.

    Analyses use it so that they leave a user's model as they found it:

    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Linear(8, 4))
    >>> _ = apply(net, "int4")
    >>> with suspended(net):
    ...     current_formats(net)
    {}
    >>> current_formats(net)
    {'0': 'int4'}
    """
    eligible = eligible_layers(model)
    saved = {name: _snapshot(mod) for name, mod in eligible.items()}
    saved = {name: snap for name, snap in saved.items() if snap != (None, None)}
    for name in saved:
        _remove(eligible[name])
    try:
        yield model
    finally:
        for mod in eligible.values():
            _remove(mod)
        for name, snap in saved.items():
            _reinstate(eligible[name], snap)
            if snap[0] is not None:
                _remember(eligible[name].parametrizations.weight.original)


def current_formats(model: nn.Module) -> dict[str, str]:
    """``{layer: format name}`` for every layer whose weight carries a format."""
    out = {}
    for name, mod in eligible_layers(model).items():
        p = _format_param(mod)
        if p is not None:
            out[name] = p.format_name
    return out


def activation_quantizer(module: nn.Module) -> ActivationQuantizer | None:
    """The activation quantizer on a layer's input, if ``apply(..., activations=True)`` put one there."""
    act = getattr(module, _ACT_ATTR, None)
    return act[0] if act else None


def format_table(model: nn.Module) -> pd.DataFrame:
    """One row per eligible layer: ``layer, format, activations`` (the activation format or "")."""
    rows = []
    for name, mod in eligible_layers(model).items():
        p = _format_param(mod)
        act = activation_quantizer(mod)
        rows.append({"layer": name, "format": p.format_name if p else "dense",
                     "activations": act.number.name if act else ""})
    return pd.DataFrame(rows, columns=["layer", "format", "activations"])


__all__ = [
    "ELIGIBLE_TYPES",
    "eligible_layers",
    "apply",
    "restore",
    "suspended",
    "current_formats",
    "activation_quantizer",
    "format_table",
]
