"""Checks on what a user passes to ``load_model`` before anything is read: spec strings, flags, module tensors.

Every refusal is a :class:`~workbench.errors.ModelSpecError` whose message names the argument, its value (shortened by
:func:`workbench.errors.shorten`, so a 5,000-character spec does not flood the screen) and what would be accepted.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workbench.errors import ModelSpecError, shorten
from workbench.formats import eligible_layers

NAME_MAX = 255  # the longest file name (one path component) that Linux, macOS and Windows file systems take


def check_flag(value: Any, name: str) -> bool:
    """``value`` if it is a bool; anything else (``"no"`` is truthy) is refused."""
    if not isinstance(value, bool):
        raise ModelSpecError(f"{name} must be True or False, got {type(value).__name__} {shorten(value)}")
    return value


def check_spec_text(text: str, argument: str = "spec") -> str:
    """Refuse a spec string that no file system or registry takes: empty, a NUL byte, a path component too long."""
    if not text.strip():
        raise ModelSpecError(f"{argument} is an empty string: pass a bundled name, a path or an nn.Module")
    if "\x00" in text:
        raise ModelSpecError(f"{argument} {shorten(text)} contains a NUL byte, which no file name or model name holds")
    longest = max(text.replace("\\", "/").split("/"), key=len)
    if len(longest) > NAME_MAX:
        raise ModelSpecError(
            f"{argument} {shorten(text)} has a name of {len(longest)} characters; file and model names are at most "
            f"{NAME_MAX} characters"
        )
    return text


def _tensor_problem(t: torch.Tensor) -> str | None:
    """Why a stored tensor cannot become a float32 CPU weight without losing or inventing values, or None."""
    if t.layout != torch.strided:
        return f"a sparse tensor ({str(t.layout).removeprefix('torch.')}); save it dense with .to_dense()"
    if t.device.type == "meta":
        return "a meta tensor (a shape without values); save the materialized weights"
    if t.is_complex():
        return (f"complex ({str(t.dtype).removeprefix('torch.')}); loading it as float32 would drop the imaginary "
                "part")
    if t.is_quantized:
        return f"a quantized tensor ({str(t.dtype).removeprefix('torch.')}); save t.dequantize()"
    return None


def check_state_tensors(state: dict[str, torch.Tensor], source: str) -> None:
    """Refuse a state dict holding a tensor that is sparse, meta, complex or quantized (see :func:`_tensor_problem`).

    Accepted: dense real tensors (floating point, integer or bool) on any real device.
    """
    for key, t in state.items():
        why = _tensor_problem(t)
        if why is not None:
            raise ModelSpecError(
                f"checkpoint {source}: tensor {shorten(key)} of shape {tuple(t.shape)} is {why}. Accepted: dense real "
                "tensors (floating point or integer)"
            )


def check_module_tensors(model: nn.Module, source: str) -> None:
    """Refuse a module that cannot become a float32 CPU model to study: meta, sparse or complex parameters or
    buffers, or an eligible layer (Linear / Conv) whose weight has no elements."""
    for kind, items in (("parameter", model.named_parameters()), ("buffer", model.named_buffers())):
        for key, t in items:
            why = _tensor_problem(t)
            if why is not None:
                raise ModelSpecError(
                    f"{source}: {kind} {shorten(key)} of shape {tuple(t.shape)} is {why}. Accepted: modules whose "
                    "parameters and buffers are dense real tensors"
                )
    for name, m in eligible_layers(model).items():
        for pname, p in m.named_parameters():
            if p.numel() == 0:
                raise ModelSpecError(
                    f"{source}: layer {shorten(name)} has a parameter {pname} of shape {tuple(p.shape)} with no "
                    "elements; no format or analysis applies to it. Accepted: layers whose every dimension is at "
                    "least 1"
                )


__all__ = ["NAME_MAX", "check_flag", "check_spec_text", "check_state_tensors",
           "check_module_tensors"]
