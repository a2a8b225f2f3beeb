"""``apply`` and ``restore``: put formats on a model's layers and take them off again, exactly.

Layers are chosen by name (torchao's ``FqnToConfig`` idea): ``layers`` takes ``None`` (every eligible layer), a
name, a ``"re:<pattern>"``, a list of those, or a predicate ``f(name, module) -> bool`` (the order of
``model.named_modules()``; torchao's ``filter_fn`` takes ``(module, fqn)``, but swapping the order here would
silently invert every existing two-argument predicate, so the workbench keeps name first everywhere); or ``fmt`` itself is a
mapping ``{name | "re:<pattern>" | "default": format | None}`` (exact names win over patterns, patterns are tried in
order, ``"default"`` covers the rest, ``None`` leaves a layer untouched).

A layer named explicitly that cannot take its format is an error; a layer reached by ``None``, a pattern or a
predicate is skipped and the skip is reported in the returned table. ``apply`` validates and computes every
parametrization before it changes anything, so a failed ``apply`` leaves the model exactly as it was.

Formats compose with a layer's own parametrizations (``torch.nn.utils.parametrize``: ``orthogonal``,
``spectral_norm``, ``parametrizations.weight_norm``, custom ones): the format is appended at the END of the weight's
parametrization list, its mask and scales are computed from the effective weight the user's parametrizations
produce (:func:`original_weight`), and ``restore`` removes only the format, so the user's parametrizations, their
``original`` tensors and the state_dict keys are exactly as before. A layer under the deprecated hook-style
``torch.nn.utils.weight_norm`` cannot take a format (its hook reassigns ``weight`` on every forward): it is skipped,
or refused with a LayerError when named. ``apply`` and ``restore`` hold a per-model lock, so two threads may call
them on the same model.

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

import contextlib
import re
import threading
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

from workbench.errors import CostLimitError, DeviceError, FormatError, LayerError, NonFiniteError, ShapeError, shorten
from workbench.formats.masks import fits, too_costly
from workbench.formats.numbers import GRANULARITIES, Granularity
from workbench.formats.parametrize import ActivationQuantizer, FormatParametrization
from workbench.formats.spec import Format, parse_format

LayerSelector = Union[None, str, Iterable[str], Callable[[str, nn.Module], bool]]
FormatArg = Union[str, Format, Mapping[str, Union[str, Format, None]]]

ELIGIBLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_ACT_ATTR = "_workbench_activation"
_ORDER_ATTR = "_workbench_parameter_order"  # the module's parameter order before we parametrized its weight
RESULT_COLUMNS = ["layer", "format", "status", "reason"]


# ------------------------------------------------------------------------------------------- locks
_locks: "weakref.WeakKeyDictionary[nn.Module, threading.RLock]" = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """The re-entrant lock that ``apply``, ``restore`` and the readers hold while they touch ``model``."""
    with _locks_guard:
        lock = _locks.get(model)
        if lock is None:
            lock = _locks[model] = threading.RLock()
        return lock


def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise LayerError(f"`model` must be a torch.nn.Module, got {type(model).__name__}: {shorten(model)}")
    return model


# ------------------------------------------------------------------------------------------- the user's weight
def _is_ours(p: nn.Module) -> bool:
    return isinstance(p, FormatParametrization)


def _old_weight_norm(mod: nn.Module) -> bool:
    """True when the deprecated hook-style ``torch.nn.utils.weight_norm`` sits on ``weight``."""
    from torch.nn.utils.weight_norm import WeightNorm

    return any(isinstance(h, WeightNorm) and h.name == "weight" for h in mod._forward_pre_hooks.values())


@contextlib.contextmanager
def _frozen(mod: nn.Module) -> Iterator[None]:
    """Evaluate the weight's parametrizations in eval mode (spectral_norm does no power-iteration step, so
    nothing of the user's state moves), then give every module back its own training flag."""
    plist = mod.parametrizations["weight"]
    flags = [(m, m.training) for m in plist.modules()]
    plist.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _originals(plist: nn.Module) -> tuple[torch.Tensor, ...]:
    if plist.is_tensor:
        return (plist.original,)
    return tuple(getattr(plist, f"original{i}") for i in range(plist.ntensors))


def _user_parametrizations(mod: nn.Module) -> list[nn.Module]:
    if not parametrize.is_parametrized(mod, "weight"):
        return []
    return [p for p in mod.parametrizations["weight"] if not _is_ours(p)]


def _weight_and_base(mod: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(effective weight of the user's own parametrizations, detached; the stored Parameter when there are none
    (the key of the parametrization cache), else None)``."""
    if not parametrize.is_parametrized(mod, "weight"):
        w = getattr(mod, "weight", None)
        if not isinstance(w, torch.Tensor):
            raise LayerError(f"layer of type {type(mod).__name__} has no weight tensor")
        return w.detach(), (w if not _old_weight_norm(mod) else None)
    plist = mod.parametrizations["weight"]
    originals = _originals(plist)
    if all(_is_ours(p) for p in plist):
        return originals[0].detach(), originals[0]
    x: torch.Tensor | None = None
    with torch.no_grad(), _frozen(mod):
        for p in plist:
            if _is_ours(p):  # a format takes the tensor as it is (it has no right_inverse): skip it
                x = originals[0] if x is None else x
                continue
            x = p(*originals) if x is None else p(x)
    assert x is not None
    return x.detach(), None


def original_weight(module: nn.Module) -> torch.Tensor:
    """A layer's weight as the user had it before any workbench format: the effective weight of the user's own
    parametrizations (orthogonal, spectral_norm, weight_norm, custom), never a format's; detached.

    With no parametrization of the user's it shares storage with the stored Parameter (do not modify it in place);
    otherwise it is computed (without gradient, parametrizations in eval mode).

    >>> lin = nn.Linear(4, 2)
    >>> _ = apply(nn.Sequential(lin), "2:4")
    >>> torch.equal(original_weight(lin), lin.parametrizations.weight.original)
    True
    """
    if not isinstance(module, nn.Module):
        raise LayerError(f"original_weight needs a layer (torch.nn.Module), got {type(module).__name__}")
    return _weight_and_base(module)[0]


def _weight_dims(mod: nn.Module) -> int:
    if parametrize.is_parametrized(mod, "weight"):
        return 2  # Linear / Conv, and a safe parametrization keeps the shape
    w = getattr(mod, "weight", None)
    return w.dim() if isinstance(w, torch.Tensor) else 0


def eligible_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Layers that can take a format, by qualified name: Linear and Conv modules with a weight of >= 2 dims."""
    _check_model(model)
    with model_lock(model):
        return {name: mod for name, mod in model.named_modules()
                if isinstance(mod, ELIGIBLE_TYPES) and _weight_dims(mod) >= 2}


def _format_param(mod: nn.Module) -> FormatParametrization | None:
    if parametrize.is_parametrized(mod, "weight"):
        for p in mod.parametrizations["weight"]:
            if _is_ours(p):
                return p
    return None


def _names(names: Iterable[str], limit: int = 20) -> str:
    names = list(names)
    if not names:
        return "(none)"
    head = ", ".join(names[:limit])
    return head if len(names) <= limit else f"{head}, … ({len(names)} layers)"


def _match(name: str, key: str) -> bool:
    return bool(re.fullmatch(key[3:], name)) if key.startswith("re:") else name == key


def _check_key(key: object, what: str) -> str:
    if not isinstance(key, str):
        raise LayerError(f"{what}: layer keys are names, 're:<pattern>' strings or 'default', "
                         f"got {type(key).__name__}: {shorten(key)}")
    if key.startswith("re:"):
        try:
            re.compile(key[3:])
        except re.error as exc:
            raise LayerError(f"{what}: {shorten(key)} is not a valid regular expression ({exc}); "
                             "write 're:' followed by a Python regex such as 're:fc.*'") from None
    return key


_LAYERS_ACCEPTED = ("None, a layer name, a 're:<pattern>', a list of those, or a predicate f(name, module) -> bool")


def _plan(model: nn.Module, fmt: FormatArg, layers: LayerSelector) -> tuple[dict[str, Format | None], set[str]]:
    """Map each targeted layer to its Format (None = untouched) and return the names chosen explicitly."""
    eligible = eligible_layers(model)
    known = _names(eligible)
    plan: dict[str, Format | None] = {}
    explicit: set[str] = set()
    if isinstance(fmt, Mapping):
        if layers is not None:
            raise FormatError("pass either a per-layer format mapping or `layers`, not both")
        parsed = {_check_key(k, "fmt mapping"): (None if v is None else parse_format(v)) for k, v in fmt.items()}
        for key in parsed:
            if key != "default" and not key.startswith("re:") and key not in eligible:
                raise LayerError(f"no eligible layer named {shorten(key)}; eligible layers: {known}")
            if key.startswith("re:") and not any(_match(n, key) for n in eligible):
                raise LayerError(f"pattern {shorten(key)} matches no eligible layer; eligible layers: {known}")
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
    if isinstance(layers, (bytes, Mapping)) or not isinstance(layers, (str, Iterable)):
        raise LayerError(f"`layers` takes {_LAYERS_ACCEPTED}; got {type(layers).__name__}: {shorten(layers)}")
    keys = [layers] if isinstance(layers, str) else list(layers)
    for key in keys:
        _check_key(key, "`layers`")
        hits = [n for n in eligible if _match(n, key)]
        if not hits:
            what = "pattern" if key.startswith("re:") else "no eligible layer named"
            raise LayerError(f"{what} {shorten(key)}" + (" matches no eligible layer" if key.startswith("re:") else "")
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
# is dropped when its own buffers were changed in place. Layers with parametrizations of the user's are not cached:
# their effective weight also depends on the parametrization modules' state (spectral_norm's vectors, ...).
_CACHE_PER_WEIGHT = 8


class _WeightCache:
    def __init__(self, w: torch.Tensor, on_free: Callable[[weakref.ref], None]) -> None:
        self.ref = weakref.ref(w, on_free)
        self.version = w._version
        self.params: OrderedDict[tuple, tuple[FormatParametrization, tuple[int, ...]]] = OrderedDict()


_param_cache: dict[int, _WeightCache] = {}
_cache_lock = threading.RLock()


def _cache_for(w: torch.Tensor) -> _WeightCache:
    entry = _param_cache.get(id(w))
    if entry is None or entry.ref() is not w:
        def _drop(ref: weakref.ref, wid: int = id(w)) -> None:
            with _cache_lock:
                if wid in _param_cache and _param_cache[wid].ref is ref:
                    del _param_cache[wid]

        entry = _param_cache[id(w)] = _WeightCache(w, _drop)
    if entry.version != w._version:
        entry.params.clear()
        entry.version = w._version
    return entry


def _buffer_versions(p: FormatParametrization) -> tuple[int, ...]:
    return tuple(b._version for b in p.buffers())


def _make(f: Format, w: torch.Tensor, granularity: Granularity) -> FormatParametrization:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        param = FormatParametrization(f, w, granularity)
    for w_ in caught:  # e.g. a transposable solve that zero-padded the weight: warn, and keep it as a note
        warnings.warn_explicit(w_.message, w_.category, w_.filename, w_.lineno)
    param.notes = tuple(str(w_.message) for w_ in caught)
    return param


def _build(f: Format, w: torch.Tensor, base: torch.Tensor | None, granularity: Granularity) -> FormatParametrization:
    """The parametrization of ``f`` for the effective weight ``w``; from the cache when ``base`` (the stored
    weight, None when the user's parametrizations sit on it) is unchanged since it was built."""
    if base is None:
        return _make(f, w, granularity)
    with _cache_lock:
        entry, key = _cache_for(base), (f.name, granularity, w.dtype, w.device)
        hit = entry.params.get(key)
        if hit is not None and _buffer_versions(hit[0]) == hit[1]:
            entry.params.move_to_end(key)
            return hit[0]
        param = _make(f, w, granularity)
        entry.params[key] = (param, _buffer_versions(param))
        while len(entry.params) > _CACHE_PER_WEIGHT:
            entry.params.popitem(last=False)
        return param


def clear_cache() -> None:
    """Forget every parametrization built so far (the next ``apply`` of each format solves its mask again)."""
    with _cache_lock:
        _param_cache.clear()


def _remember(mod: nn.Module) -> None:
    """Record the stored weight's version after we registered a parametrization on it (registration bumps it)."""
    if _user_parametrizations(mod):
        return
    w = mod.parametrizations["weight"].original
    with _cache_lock:
        entry = _param_cache.get(id(w))
        if entry is not None and entry.ref() is w:
            entry.version = w._version


def _why_not(name: str, mod: nn.Module, w: torch.Tensor, f: Format) -> tuple[str, type[Exception]] | None:
    """Why layer ``name`` cannot take ``f`` (and the error to raise when it was named), or None."""
    if _old_weight_norm(mod):
        return (f"layer {name!r} carries the deprecated hook-style torch.nn.utils.weight_norm, which reassigns "
                "`weight` on every forward; re-register it with torch.nn.utils.parametrizations.weight_norm "
                "(formats compose with parametrizations)"), LayerError
    if w.numel() == 0:
        return f"layer {name!r}: weight {tuple(w.shape)} has no entries", ShapeError
    if f.sparsity is not None:
        reason = fits(w, f.sparsity)
        if reason:
            return f"layer {name!r}: {reason}", ShapeError
        cost = too_costly(w, f.sparsity)
        if cost:
            return f"layer {name!r}: {cost}", CostLimitError
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
    format, and leaves the weights as they are. Masks and scales are computed from :func:`original_weight`."""
    _check_model(model)
    if granularity not in GRANULARITIES:
        raise FormatError(f"granularity must be one of {GRANULARITIES}, got {shorten(granularity)}")
    if not weights and not activations:
        raise FormatError("apply(weights=False) needs activations=True: otherwise there is nothing to apply")
    with model_lock(model):
        return _apply(model, fmt, layers, activations, granularity, weights)


def _apply(model: nn.Module, fmt: FormatArg, layers: LayerSelector, activations: bool, granularity: Granularity,
           weights: bool) -> pd.DataFrame:
    plan, explicit = _plan(model, fmt, layers)
    eligible = eligible_layers(model)
    rows: list[dict[str, str]] = []
    built: dict[str, tuple[Format, FormatParametrization | None]] = {}
    for name, f in plan.items():
        assert f is not None
        mod = eligible[name]
        w, base = _weight_and_base(mod)
        if w.is_meta:
            raise DeviceError(f"layer {name!r}: weight {tuple(w.shape)} is on the meta device (no data); "
                              f"materialize the model (e.g. load its weights) before applying {f.name!r}")
        why = _why_not(name, mod, w, f) if weights else None
        if why:
            reason, err = why
            if name in explicit:
                raise err(f"{reason} (format {f.name!r})")
            rows.append({"layer": name, "format": f.name, "status": "skipped", "reason": reason})
            continue
        if weights and w.is_floating_point() and not torch.isfinite(w).all():
            raise NonFiniteError(f"layer {name!r}: weight {tuple(w.shape)} contains NaN or inf; format {f.name!r} "
                                 "was not applied to any layer")
        param = None if f.is_dense or not weights else _build(f, w, base, granularity)
        built[name] = (f, param)
        rows.append({"layer": name, "format": f.name, "status": "applied",
                     "reason": "; ".join(param.notes) if param is not None else ""})

    previous = {name: _snapshot(eligible[name]) for name in built}
    try:
        for name, (f, param) in built.items():
            mod = eligible[name]
            _remove(mod)
            if param is not None:
                _register(mod, param)
            if activations and f.number is not None:
                _attach_activation(mod, ActivationQuantizer(f.number))
    except Exception:
        for name, snap in previous.items():
            _remove(eligible[name])
            _reinstate(eligible[name], snap)
        raise
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def _register(mod: nn.Module, param: FormatParametrization) -> None:
    """Append ``param`` at the end of the weight's parametrization list (the user's stay in front, untouched)."""
    if _user_parametrizations(mod):
        with _frozen(mod):
            parametrize.register_parametrization(mod, "weight", param)
    else:
        if not parametrize.is_parametrized(mod, "weight"):
            object.__setattr__(mod, _ORDER_ATTR, tuple(mod._parameters))
        parametrize.register_parametrization(mod, "weight", param)
        _remember(mod)


def _snapshot(mod: nn.Module) -> tuple[FormatParametrization | None, ActivationQuantizer | None]:
    act = getattr(mod, _ACT_ATTR, None)
    return _format_param(mod), (act[0] if act else None)


def _reinstate(mod: nn.Module, snap: tuple[FormatParametrization | None, ActivationQuantizer | None]) -> None:
    param, act = snap
    if param is not None:
        _register(mod, param)
    if act is not None:
        _attach_activation(mod, act)


def _attach_activation(mod: nn.Module, quantizer: ActivationQuantizer) -> None:
    handle = mod.register_forward_pre_hook(quantizer)
    object.__setattr__(mod, _ACT_ATTR, (quantizer, handle))


def _remove_format(mod: nn.Module) -> bool:
    """Take the format (only it) off the weight's parametrization list; True if there was one.

    Alone in the list, the list is removed with ``leave_parametrized=False``, which gives back the very
    Parameter that was stored. Beside the user's parametrizations, only its entry is deleted from the list, so
    their modules, their ``original`` tensors and the list's flags stay the same objects.
    """
    if not parametrize.is_parametrized(mod, "weight"):
        return False
    plist = mod.parametrizations["weight"]
    idx = [i for i, p in enumerate(plist) if _is_ours(p)]
    if not idx:
        return False
    if len(idx) == len(plist):
        parametrize.remove_parametrizations(mod, "weight", leave_parametrized=False)
        order = mod.__dict__.pop(_ORDER_ATTR, None)
        if order is not None and set(order) == set(mod._parameters):  # the state_dict keys in their old order
            params = dict(mod._parameters)
            mod._parameters.clear()
            mod._parameters.update((k, params[k]) for k in order)
        return True
    for i in reversed(idx):
        del plist[i]
    return True


def _remove(mod: nn.Module) -> bool:
    """Take every format off one module (weight and activations); True if there was one."""
    changed = _remove_format(mod)
    act = getattr(mod, _ACT_ATTR, None)
    if act is not None:
        act[1].remove()
        object.__delattr__(mod, _ACT_ATTR)
        changed = True
    return changed


def restore(model: nn.Module, layers: LayerSelector = None) -> list[str]:
    """Remove formats (weights and activations), giving back the bit-identical original weights and the layers'
    own parametrizations as they were; returns the names of the layers that had a format."""
    _check_model(model)
    with model_lock(model):
        eligible = eligible_layers(model)
        chosen = list(eligible) if layers is None else list(_plan(model, "dense", layers)[0])
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


def current_formats(model: nn.Module) -> dict[str, str]:
    """``{layer: format name}`` for every layer whose weight carries a format."""
    _check_model(model)
    with model_lock(model):
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
    _check_model(model)
    with model_lock(model):
        rows = []
        for name, mod in eligible_layers(model).items():
            p = _format_param(mod)
            act = activation_quantizer(mod)
            rows.append({"layer": name, "format": p.format_name if p else "dense",
                         "activations": act.number.name if act else ""})
    return pd.DataFrame(rows, columns=["layer", "format", "activations"])


__all__ = [
    "ELIGIBLE_TYPES",
    "model_lock",
    "original_weight",
    "eligible_layers",
    "apply",
    "restore",
    "suspended",
    "current_formats",
    "activation_quantizer",
    "format_table",
]
