"""Loading checkpoint files safely: ``.pt`` / ``.pth`` (torch) and ``.safetensors``.

``torch.load(weights_only=True)`` always, unless the user passes ``trust=True``: a full pickle can run arbitrary
code when it is loaded, so a file that ``weights_only`` refuses raises :class:`UnsafeCheckpointError`. A state dict
needs an architecture (``arch=``): a bundled name, an ``nn.Module`` class, or an instance. Keys and shapes are
compared before loading, and a mismatch raises :class:`ModelSpecError` listing the first few differences.
"""

from __future__ import annotations

import copy
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.errors import ModelSpecError, UnsafeCheckpointError, shorten
from workbench.models.spec import check_state_tensors
from workbench.models.zoo import BUNDLED

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".safetensors")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
_SHOW = 5


def read_checkpoint(path: Path, *, trust: bool = False) -> Any:
    """The object stored in a checkpoint file: a state dict (``Mapping[str, Tensor]``) or, with trust, a module."""
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as e:  # safetensors raises its own error types for corrupt headers
            raise ModelSpecError(f"cannot read safetensors file {path}: {e}") from e
    if not _looks_like_torch_file(path):
        raise ModelSpecError(f"{path} is not a torch checkpoint (neither torch.save's zip archive nor a pickle)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not trust:
            what = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
            raise UnsafeCheckpointError(
                f"{path} cannot be loaded with torch.load(weights_only=True): it holds pickled Python objects"
                + (f" ({what.group(1)})" if what else " (for example a whole nn.Module)")
                + " and loading it would run code from the file. If you trust where it came from, pass trust=True "
                "to workbench.load_model; better, save model.state_dict() (or safetensors) and load it with arch="
            ) from e
    except Exception as e:  # a damaged file fails in many ways (RuntimeError, EOFError, IndexError ...)
        raise ModelSpecError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from e
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ModelSpecError(f"cannot read checkpoint {path} even with trust=True: {e}") from e


def _looks_like_torch_file(path: Path) -> bool:
    """True for torch.save's zip format or a (legacy) pickle stream, judged by the first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise ModelSpecError(f"cannot read checkpoint {path}: {e.strerror}") from e
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def extract_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensor state dict inside a checkpoint object (unwrapping ``{"state_dict": ...}`` and ``module.``)."""
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelSpecError(
            f"{path} holds a {type(obj).__name__}, not a state dict of tensors nor an nn.Module; "
            "save model.state_dict() and pass arch="
        )
    if not all(isinstance(k, str) for k in obj):
        bad = next(k for k in obj if not isinstance(k, str))
        raise ModelSpecError(f"{path} holds a state dict with a key {shorten(bad)} that is not a string; "
                             "a state dict maps parameter names (str) to tensors")
    state = dict(obj)
    check_state_tensors(state, str(path))
    if all(k.startswith("module.") for k in state):  # saved from DataParallel / DistributedDataParallel
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def build_arch(arch: Any) -> nn.Module:
    """A fresh module for ``arch``: a bundled name, an ``nn.Module`` class, or a copy of an instance."""
    if isinstance(arch, str):
        if arch not in BUNDLED:
            raise ModelSpecError(
                f"unknown arch {shorten(arch, 40)}; bundled: {', '.join(map(repr, sorted(BUNDLED)))}; or an nn.Module "
                "class or instance"
            )
        return BUNDLED[arch].arch()
    if isinstance(arch, type) and issubclass(arch, nn.Module):
        try:
            return arch()
        except TypeError as e:
            raise ModelSpecError(
                f"cannot build {arch.__name__}() without arguments ({e}); pass an instance as arch= instead"
            ) from e
    if isinstance(arch, nn.Module):
        return copy.deepcopy(arch)
    raise ModelSpecError(
        f"arch must be a bundled name {sorted(BUNDLED)}, an nn.Module class or an nn.Module instance, "
        f"got {type(arch).__name__} {shorten(arch)}"
    )


def state_dict_mismatches(model: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Human-readable differences between ``model.state_dict()`` and ``state``: missing, unexpected, shapes."""
    expected = model.state_dict()
    out = [f"missing {k} {tuple(v.shape)}" for k, v in expected.items() if k not in state]
    out += [f"unexpected {k} {tuple(v.shape)}" for k, v in state.items() if k not in expected]
    out += [
        f"shape of {k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    return out


def load_state_into(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> nn.Module:
    """Load ``state`` into ``model`` strictly, raising ModelSpecError with the first mismatches."""
    bad = state_dict_mismatches(model, state)
    if bad:
        more = f" (and {len(bad) - _SHOW} more)" if len(bad) > _SHOW else ""
        raise ModelSpecError(
            f"checkpoint {source} does not match architecture {type(model).__name__}: "
            + "; ".join(bad[:_SHOW]) + more
        )
    model.load_state_dict(state, strict=True)
    return model


def load_checkpoint(path: Path, *, arch: Any = None, trust: bool = False) -> nn.Module:
    """Load a checkpoint file into a module (eval mode, float32, CPU)."""
    if not path.is_file():
        raise ModelSpecError(f"checkpoint {path} does not exist")
    obj = read_checkpoint(path, trust=trust)
    if isinstance(obj, nn.Module):
        check_state_tensors(dict(obj.state_dict()), str(path))
        if arch is not None:
            target = build_arch(arch)
            model = load_state_into(target, obj.state_dict(), str(path))
        else:
            model = obj
    else:
        state = extract_state_dict(obj, path)
        if arch is None:
            raise ModelSpecError(
                f"{path} holds a state dict ({len(state)} tensors) but no architecture: pass arch= "
                f"(a bundled name {sorted(BUNDLED)}, an nn.Module class, or an instance)"
            )
        model = load_state_into(build_arch(arch), state, str(path))
    return model.to("cpu").float().eval()


__all__ = ["CHECKPOINT_SUFFIXES", "load_checkpoint", "read_checkpoint", "extract_state_dict", "build_arch",
           "state_dict_mismatches", "load_state_into"]
