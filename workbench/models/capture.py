"""What chosen layers receive and produce while a model runs: the one forward-hook capture of the workbench.

The idea of captum's ``LayerActivation`` as one plain function: :func:`capture` registers a forward hook on each
named layer, runs the model on each batch, and always removes the hooks again (``try/finally``), even when the run
raises. It returns every call's first positional input and (first) output by layer name; a layer called several
times per forward pass has one entry per call. ``stop_early=True`` ends each forward pass as soon as every chosen
layer has run once (for layers called once per forward: the rest of the model is not computed).

>>> import torch, torch.nn as nn
>>> net = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
>>> got = capture(net, ["0", "2"], torch.ones(4, 3))
>>> [tuple(t.shape) for t in got.inputs["2"]], torch.equal(got.outputs["0"][0], net[0](torch.ones(4, 3)))
([(4, 2)], True)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from workbench.errors import LayerError, NonFiniteError, OptionError

__all__ = ["Captured", "capture", "head_input"]

Keep = Literal["inputs", "outputs", "both"]
KEEP: tuple[str, ...] = ("inputs", "outputs", "both")


class _StopForward(Exception):
    """Raised by a hook to end a forward pass once every chosen layer has been captured."""


@dataclass
class Captured:
    """Per layer name, one tensor per call: ``inputs`` (first positional argument) and ``outputs`` (first tensor of
    the output). A side not kept (``keep=``) holds empty lists."""

    inputs: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    outputs: dict[str, list[torch.Tensor]] = field(default_factory=dict)

    def pairs(self, name: str) -> list[tuple[torch.Tensor | None, torch.Tensor | None]]:
        """``[(input, output) per call]`` of one layer (``None`` for a side that was not kept)."""
        xs, ys = self.inputs.get(name, []), self.outputs.get(name, [])
        n = max(len(xs), len(ys))
        return [(xs[i] if i < len(xs) else None, ys[i] if i < len(ys) else None) for i in range(n)]


def _first_tensor(obj: Any) -> torch.Tensor | None:
    if torch.is_tensor(obj):
        return obj
    if isinstance(obj, (tuple, list)) and obj and torch.is_tensor(obj[0]):
        return obj[0]
    return None


def _resolve(model: nn.Module, layers: str | Iterable[str] | Mapping[str, nn.Module]) -> dict[str, nn.Module]:
    if isinstance(layers, Mapping):
        return dict(layers)
    names = [layers] if isinstance(layers, str) else list(layers)
    modules = dict(model.named_modules())
    out: dict[str, nn.Module] = {}
    for name in names:
        if not isinstance(name, str):
            raise LayerError(f"capture: layer names are strings, got {name!r} ({type(name).__name__})")
        if name not in modules:
            known = [n for n in modules if n]
            shown = ", ".join(known[:20]) + (f", ... ({len(known)} in all)" if len(known) > 20 else "")
            raise LayerError(f"capture: no layer named {name!r} in {type(model).__name__}; layers: {shown or '(none)'}")
        out[name] = modules[name]
    if not out:
        raise LayerError(f"capture: no layers given to capture in {type(model).__name__}")
    return out


def _check_finite(t: torch.Tensor, name: str, where: str, context: str) -> None:
    if t.is_floating_point() and not torch.isfinite(t).all():
        n_bad = int((~torch.isfinite(t)).sum())
        raise NonFiniteError(f"layer {name!r}: {where} of shape {tuple(t.shape)} contains {n_bad} NaN/inf values"
                             f"{context}")


def capture(
    model: nn.Module,
    layers: str | Iterable[str] | Mapping[str, nn.Module],
    inputs: Any,
    *,
    run: Callable[[Any], Any] | None = None,
    keep: Keep = "both",
    stop_early: bool = False,
    finite: bool = False,
    context: str = "",
    grad: bool = False,
) -> Captured:
    """Run ``model`` on ``inputs`` and return what the named ``layers`` received and produced.

    - ``layers``: a name, names (as in ``model.named_modules()``), or a ``{name: module}`` mapping.
    - ``inputs``: one batch, or a ``list`` of batches; each batch goes to ``run(batch)`` (default ``model(batch)``,
      ``model(*batch)`` for a tuple), e.g. ``run=lambda b: handle.run(b, model=model)``.
    - ``keep``: ``"inputs"``, ``"outputs"`` or ``"both"``.
    - ``stop_early``: end each batch's forward pass once every layer has been captured for it (only for layers
      called once per forward pass; what ``run`` would have returned is not computed).
    - ``finite``: raise :class:`~workbench.errors.NonFiniteError` naming the layer when a kept tensor holds
      NaN/inf (``context`` is appended to the message, e.g. ``" with format 'int8'"``).
    - ``grad``: keep the autograd graph (default: run under ``torch.no_grad()`` and store detached tensors).

    The hooks are removed when the function returns or raises.
    """
    if keep not in KEEP:
        raise OptionError(f"capture: keep must be one of {', '.join(map(repr, KEEP))}, got {keep!r}")
    chosen = _resolve(model, layers)
    batches = inputs if isinstance(inputs, list) else [inputs]
    if run is None:
        def run(batch: Any) -> Any:
            return model(*batch) if isinstance(batch, tuple) else model(batch)
    want_x, want_y = keep in ("inputs", "both"), keep in ("outputs", "both")
    got = Captured({n: [] for n in chosen}, {n: [] for n in chosen})
    seen: set[str] = set()

    def make(name: str) -> Callable[..., None]:
        def hook(_mod: nn.Module, args: Any, out: Any) -> None:
            x, y = _first_tensor(args), _first_tensor(out)
            if finite:
                if want_x and x is not None:
                    _check_finite(x, name, "input", context)
                if want_y and y is not None:
                    _check_finite(y, name, "output", context)
            if want_x and x is not None:
                got.inputs[name].append(x if grad else x.detach())
            if want_y and y is not None:
                got.outputs[name].append(y if grad else y.detach())
            seen.add(name)
            if stop_early and len(seen) == len(chosen):
                raise _StopForward
        return hook

    handles = []
    try:
        for name, mod in chosen.items():
            handles.append(mod.register_forward_hook(make(name)))
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            for batch in batches:
                seen.clear()
                try:
                    run(batch)
                except _StopForward:
                    pass
    finally:
        for h in handles:
            h.remove()
    return got


@torch.no_grad()
def head_input(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input of ``model``'s last ``nn.Linear`` (the features a classifier head reads) for every row of ``x``,
    computed in eval mode with the model's mode left as it was; the forward pass stops after that layer.

    Raises :class:`LayerError` when the model has no ``nn.Linear``.
    """
    last = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not last:
        raise LayerError(f"{type(model).__name__} has no nn.Linear layer whose input could serve as features")
    was = model.training
    model.eval()
    try:
        got = capture(model, last[-1], x, keep="inputs", stop_early=True)
    finally:
        model.train(was)
    return got.inputs[last[-1]][0]
