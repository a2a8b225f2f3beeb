"""Layer inputs and outputs on calibration data, and a layer's output with a replacement weight.

Forward hooks capture what each chosen layer receives while :meth:`ModelHandle.run` runs the calibration batches;
:func:`layer_output` recomputes the layer with another weight (Linear, Conv1d/2d/3d) so pattern comparisons need no
model edits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from workbench.errors import LayerError


def capture_inputs(
    handle: Any, model: nn.Module, names: Iterable[str], batches: Sequence[Any], *, outputs: bool = False,
    stop_early: bool = False,
) -> dict[str, list[torch.Tensor]]:
    """Inputs (or outputs) of the named modules of ``model`` for each batch run through ``handle.run``
    (:func:`workbench.models.capture.capture`).

    ``stop_early``: end each forward pass as soon as every named module has been captured for the batch (the rest
    of the model is not run; only for modules each called once per forward).
    """
    from workbench.models.capture import capture

    got = capture(model, list(names), list(batches), run=lambda b: handle.run(b, model=model),
                  keep="outputs" if outputs else "inputs", stop_early=stop_early)
    return got.outputs if outputs else got.inputs


def layer_output(mod: nn.Module, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``mod``'s output for input ``x`` with ``weight`` (and ``bias``, default the module's) in place of its own."""
    b = getattr(mod, "bias", None) if bias is None else bias
    b = None if b is None else b.detach()
    if isinstance(mod, nn.Linear):
        return F.linear(x, weight, b)
    if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return mod._conv_forward(x, weight, b)
    raise LayerError(f"layer of type {type(mod).__name__} is not supported (Linear or Conv only)")


__all__ = ["capture_inputs", "layer_output"]
