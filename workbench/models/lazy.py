"""A lazy, weights-only handle on a safetensors checkpoint: the layer table from the headers, one tensor at a time.

``load_model("safetensors:PATH", lazy=True)`` (or ``open_lazy(PATH)``) opens

- one ``.safetensors`` file,
- a sharded directory with its ``model.safetensors.index.json`` (``weight_map``: tensor name -> shard file), or
- a local Hugging Face directory (``config.json`` beside ``model.safetensors`` or a sharded index),

and reads only the headers: the safetensors format is an 8-byte little-endian header length ``N``, then ``N`` bytes
of JSON mapping each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets into the data
that follows the header), then the data. Every header is checked before anything else happens (a truncated file, an
entry whose byte range disagrees with its shape and dtype, an unknown dtype, a shard missing from disk: each a
:class:`~workbench.errors.WorkbenchError` naming the file and the tensor), and no tensor data is read.

:meth:`LazyCheckpoint.tensor` memory-maps one tensor (``safetensors.safe_open(framework="pt")``);
:meth:`LazyCheckpoint.rows` reads a range of its first dimension (``get_slice``), so a report can stream a layer
in row blocks and memory stays bounded by a block, not by the model.

Which tensors are "layers" (the weight-only analyses' unit, :attr:`LazyCheckpoint.layers`): floating-point tensors
(F64, F32, F16, BF16, F8_E4M3, F8_E5M2) with at least 2 dimensions whose name ends in ``.weight`` (or is
``weight``); the layer's name is the tensor name without ``.weight``, so ``fc1.weight`` is layer ``fc1``, as in an
eager model's layer table. Linear and convolution weights count, and so do embedding tables (``embed_tokens``),
which an eager handle does not list; biases, norms (1-D), integer tensors and buffers do not.

There is no module: :meth:`evaluate`, :meth:`run`, :attr:`model` and the data methods raise
:class:`~workbench.errors.WeightsOnlyError` saying so; the weight-only analyses
(:func:`workbench.reports.weights.weight_report`) work.

>>> # h = load_model("safetensors:/models/llama-7b", lazy=True); h.layers.head(); w = h.tensor("lm_head")
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from workbench.errors import DTypeError, ModelSpecError, WeightsOnlyError, shorten

#: safetensors dtype name -> (torch dtype name, bytes per element); torch dtypes missing from this torch are left out
_DTYPES: dict[str, tuple[str, int]] = {
    "F64": ("float64", 8), "F32": ("float32", 4), "F16": ("float16", 2), "BF16": ("bfloat16", 2),
    "F8_E4M3": ("float8_e4m3fn", 1), "F8_E5M2": ("float8_e5m2", 1), "F8_E8M0": ("float8_e8m0fnu", 1),
    "I64": ("int64", 8), "I32": ("int32", 4), "I16": ("int16", 2), "I8": ("int8", 1),
    "U64": ("uint64", 8), "U32": ("uint32", 4), "U16": ("uint16", 2), "U8": ("uint8", 1), "BOOL": ("bool", 1),
}
DTYPES: dict[str, tuple[str, int]] = {k: v for k, v in _DTYPES.items() if hasattr(torch, v[0])}
#: dtypes whose 2-D+ ``.weight`` tensors are layers
FLOAT_DTYPES: tuple[str, ...] = ("F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2")
INDEX_NAME = "model.safetensors.index.json"
HEADER_LIMIT = 100 * 2**20  # safetensors itself refuses headers past 100 MB
TENSOR_COLUMNS = ["name", "shape", "dtype", "numel", "bytes", "file", "offset", "st_dtype"]
LAYER_COLUMNS = ["name", "shape", "dtype", "numel", "bytes", "file", "tensor"]
_WEIGHTS_ONLY = ("the lazy path has weights only: {name!r} was opened with load_model(..., lazy=True), which reads "
                 "tensors from the safetensors file(s) one at a time and builds no model, so {what} is not "
                 "available. Weight-only analyses work (workbench.reports.weights.weight_report); to {why}, load "
                 "the model eagerly (load_model(PATH) for a Hugging Face directory, or a .safetensors file with "
                 "arch=)")


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lies: its file, its data's byte offset in that file, shape and safetensors dtype."""

    name: str
    file: str
    offset: int
    shape: tuple[int, ...]
    st_dtype: str

    @property
    def dtype(self) -> torch.dtype:
        return getattr(torch, DTYPES[self.st_dtype][0])

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * DTYPES[self.st_dtype][1]


# --------------------------------------------------------------------------------------------------------------
# headers


def _accepted_dtypes() -> str:
    return ", ".join(DTYPES)


def read_header(path: str | os.PathLike) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """``({tensor name: TensorInfo}, metadata)`` of one safetensors file, from its header alone, checked.

    Raises :class:`~workbench.errors.ModelSpecError` for a file that is not safetensors, a truncated file or a
    corrupt header (naming the tensor whose entry is wrong), :class:`~workbench.errors.DTypeError` for a dtype
    outside :data:`DTYPES`.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ModelSpecError(f"{path} is not a safetensors file: it holds {size} bytes, fewer than the "
                                     "8-byte header length every safetensors file starts with")
            (n,) = struct.unpack("<Q", head)
            if n == 0 or n > HEADER_LIMIT or n > size - 8:
                raise ModelSpecError(
                    f"{path} is not a safetensors file (or is truncated): its first 8 bytes give a header of {n:,} "
                    f"bytes, but the file holds {size:,} bytes (headers are 1 byte to 100 MB)")
            raw = fh.read(n)
    except OSError as e:
        raise ModelSpecError(f"cannot read {path}: {e.strerror or e}") from e
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelSpecError(f"{path} is not a safetensors file: its {n:,}-byte header is not JSON "
                             f"({type(e).__name__}: {shorten(str(e), 120)})") from e
    if not isinstance(header, dict):
        raise ModelSpecError(f"{path} is not a safetensors file: its header is a JSON {type(header).__name__}, "
                             "not an object of tensor entries")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise ModelSpecError(f"{path}: corrupt header: __metadata__ is a {type(metadata).__name__}, not an object "
                             "of strings")
    data_size = size - 8 - n
    data_start = 8 + n
    out: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        where = f"{path}: corrupt header: tensor {shorten(name)}"
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
            raise ModelSpecError(f"{where}: its entry {shorten(entry)} is not an object with dtype, shape and "
                                 "data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise DTypeError(f"{path}: tensor {shorten(name)} has dtype {shorten(dtype)}, which the lazy path "
                             f"cannot read; accepted dtypes: {_accepted_dtypes()}")
        if (not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                   for s in shape)):
            raise ModelSpecError(f"{where}: shape {shorten(shape)} is not a list of non-negative integers")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
                or offsets[0] > offsets[1]):
            raise ModelSpecError(f"{where}: data_offsets {shorten(offsets)} is not a pair [begin, end] of "
                                 "non-negative integers with begin <= end")
        info = TensorInfo(str(name), str(path), data_start + offsets[0], tuple(shape), dtype)
        if offsets[1] - offsets[0] != info.nbytes:
            raise ModelSpecError(f"{where}: data_offsets {offsets} span {offsets[1] - offsets[0]:,} bytes, but "
                                 f"shape {tuple(shape)} of {dtype} needs {info.nbytes:,}")
        if offsets[1] > data_size:
            raise ModelSpecError(f"{path} is truncated: tensor {shorten(name)} needs bytes {offsets[0]:,}.."
                                 f"{offsets[1]:,} of the data, but the file holds only {data_size:,} bytes of data "
                                 f"after its header ({size:,} bytes in all)")
        out[str(name)] = info
    return out, {str(k): str(v) for k, v in metadata.items()}


def _read_index(path: Path) -> dict[str, str]:
    """``weight_map`` of a sharded checkpoint's index JSON: tensor name -> shard file name (checked)."""
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelSpecError(f"{path} is not a readable index JSON ({type(e).__name__}: {shorten(str(e), 120)}); "
                             'a sharded checkpoint\'s index is {"weight_map": {"tensor name": "shard file"}}') from e
    wmap = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(wmap, dict) or not wmap or not all(isinstance(k, str) and isinstance(v, str)
                                                         for k, v in wmap.items()):
        raise ModelSpecError(f"{path}: no weight_map of tensor names to shard file names; a sharded checkpoint's "
                             'index is {"weight_map": {"tensor name": "shard file"}}')
    return wmap


def _files_of(path: Path) -> tuple[list[Path], Path | None]:
    """The safetensors files of ``path`` (a file or a directory) and the index that names them (or None)."""
    if path.is_file():
        return [path], None
    if not path.is_dir():
        raise ModelSpecError(f"safetensors path {shorten(str(path), 200)} does not exist; accepted: a .safetensors "
                             f"file, a directory with {INDEX_NAME} and its shards, or a Hugging Face directory with "
                             "model.safetensors")
    indexes = [path / INDEX_NAME] if (path / INDEX_NAME).is_file() else sorted(path.glob("*.safetensors.index.json"))
    if len(indexes) == 1:
        return [], indexes[0]
    if len(indexes) > 1:
        raise ModelSpecError(f"directory {path} holds {len(indexes)} safetensors indexes "
                             f"({', '.join(p.name for p in indexes)}); pass the one to use as its shard folder "
                             f"with only {INDEX_NAME}")
    if (path / "model.safetensors").is_file():
        return [path / "model.safetensors"], None
    files = sorted(path.glob("*.safetensors"))
    if len(files) == 1:
        return files, None
    if not files:
        others = sorted(p.name for p in path.iterdir())[:8]
        raise ModelSpecError(f"directory {path} holds no .safetensors file (it holds {others}); accepted: a "
                             f".safetensors file, a directory with {INDEX_NAME} and its shards, or a Hugging Face "
                             "directory with model.safetensors")
    raise ModelSpecError(f"directory {path} holds {len(files)} .safetensors files but no {INDEX_NAME} saying which "
                         "tensor is in which; add the index, or pass one file")


def _is_layer(info: TensorInfo) -> bool:
    return (info.st_dtype in FLOAT_DTYPES and len(info.shape) >= 2 and info.numel > 0
            and (info.name == "weight" or info.name.endswith(".weight")))


def _layer_name(tensor: str) -> str:
    return "weight" if tensor == "weight" else tensor.removesuffix(".weight")


class LazyCheckpoint:
    """A weights-only handle on a safetensors checkpoint (see the module docstring).

    Attributes: ``name``, ``spec``, ``path`` (what was opened), ``files`` (the safetensors files), ``metadata`` (the
    first file's ``__metadata__``), ``task = "weights"``, ``notes``; :attr:`tensors` (every tensor) and
    :attr:`layers` (the weight tensors the analyses use) as DataFrames.
    """

    task = "weights"

    def __init__(self, path: str | os.PathLike, *, spec: Any = None) -> None:
        path = Path(path).expanduser()
        files, index = _files_of(path)
        infos: dict[str, TensorInfo] = {}
        metadata: dict[str, str] = {}
        if index is not None:
            wmap = _read_index(index)
            shards: dict[str, list[str]] = {}
            for tensor, shard in wmap.items():
                shards.setdefault(shard, []).append(tensor)
            root = index.parent.resolve()
            located: list[tuple[Path, list[str]]] = []
            for shard, names in sorted(shards.items()):
                target = index.parent / shard
                if not target.resolve().is_relative_to(root):
                    raise ModelSpecError(f"{index}: shard {shorten(shard)} points outside the checkpoint folder "
                                         f"{index.parent}; shards are file names inside it")
                if not target.is_file():
                    more = f" and {len(names) - 1} more" if len(names) > 1 else ""
                    raise ModelSpecError(f"{index} names shard {shorten(shard)} (for tensor {shorten(names[0])}"
                                         f"{more}), but {target} is missing; copy every shard the index names")
                located.append((target, names))
            for target, names in located:
                got, meta = read_header(target)
                metadata = metadata or meta
                for tensor in names:
                    if tensor not in got:
                        raise ModelSpecError(f"{index} puts tensor {shorten(tensor)} in shard {target.name}, whose "
                                             f"header has no such tensor ({len(got)} tensors); the index and the "
                                             "shards do not belong together")
                    infos[tensor] = got[tensor]
                files.append(target)
        else:
            for target in files:
                got, meta = read_header(target)
                metadata = metadata or meta
                infos.update(got)
        if not infos:
            raise ModelSpecError(f"{path} holds no tensors")
        order = {f: i for i, f in enumerate(map(str, files))}  # the order the data lies on disk
        infos = dict(sorted(infos.items(), key=lambda kv: (order[kv[1].file], kv[1].offset, kv[0])))
        self.path = path
        self.files = [str(f) for f in files]
        self.spec = spec if spec is not None else f"safetensors:{path}"
        self.name = (spec if isinstance(spec, str) and spec.startswith("hf:")
                     else path.stem if path.is_file() else path.name)
        self.metadata = metadata
        self.record: dict = {}
        self._infos = infos
        self._layers = {_layer_name(t.name): t for t in infos.values() if _is_layer(t)}
        total = sum(t.nbytes for t in infos.values())
        self.notes = (f"lazy safetensors checkpoint {path} ({len(files)} file(s), {len(infos)} tensors, "
                      f"{total / 2**30:.2f} GiB): header-only layer table, weights memory-mapped one tensor at a "
                      "time; no model (weights only)")

    # -- tables ----------------------------------------------------------------------------------------------
    @property
    def tensors(self) -> pd.DataFrame:
        """Every tensor: ``name, shape, dtype, numel, bytes, file, offset, st_dtype`` (dtype as torch names it)."""
        rows = [(t.name, t.shape, DTYPES[t.st_dtype][0], t.numel, t.nbytes, t.file, t.offset, t.st_dtype)
                for t in self._infos.values()]
        return pd.DataFrame(rows, columns=TENSOR_COLUMNS)

    @property
    def layers(self) -> pd.DataFrame:
        """One row per weight layer (see the module docstring for which tensors count): ``name, shape, dtype,
        numel, bytes, file, tensor`` (``name`` without ``.weight``; ``tensor`` the stored name)."""
        rows = [(name, t.shape, DTYPES[t.st_dtype][0], t.numel, t.nbytes, t.file, t.name)
                for name, t in self._layers.items()]
        return pd.DataFrame(rows, columns=LAYER_COLUMNS)

    def info(self, name: str) -> TensorInfo:
        """The :class:`TensorInfo` of a tensor or of a layer (by its layer name)."""
        if name in self._infos:
            return self._infos[name]
        if name in self._layers:
            return self._layers[name]
        from workbench.errors import LayerError

        some = list(self._layers)[:12]
        raise LayerError(f"{self.name}: no tensor or layer named {shorten(name)}; layers include {some}"
                         + (f" … ({len(self._layers)} in all)" if len(self._layers) > 12 else ""))

    # -- reading ---------------------------------------------------------------------------------------------
    def tensor(self, name: str) -> torch.Tensor:
        """One tensor (by tensor name, or a layer's weight by layer name), memory-mapped from its file by
        ``safe_open(framework="pt")``; nothing else is read."""
        info = self.info(name)
        return read_tensor(info.file, info.name)

    def rows(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of a tensor's first dimension (``get_slice``: only those bytes are read)."""
        info = self.info(name)
        return read_rows(info.file, info.name, start, stop)

    # -- what needs a model ----------------------------------------------------------------------------------
    def _refuse(self, what: str, why: str) -> WeightsOnlyError:
        return WeightsOnlyError(_WEIGHTS_ONLY.format(name=self.name, what=what, why=why))

    @property
    def model(self) -> Any:
        raise self._refuse("the model (an nn.Module)", "run or change the model")

    def evaluate(self, model: Any = None) -> dict[str, float]:
        """Refused: there is no model to evaluate (:class:`~workbench.errors.WeightsOnlyError`)."""
        raise self._refuse("evaluate()", "evaluate it")

    def run(self, batch: Any, model: Any = None) -> Any:
        """Refused: there is no model to run."""
        raise self._refuse("run()", "run it on data")

    def calibration_batches(self, *args: Any, **kwargs: Any) -> Any:
        """Refused: a lazy handle has no data (activations need the model)."""
        raise self._refuse("calibration data", "calibrate activations")

    def eval_batches(self) -> Any:
        """Refused: a lazy handle has no data."""
        raise self._refuse("evaluation data", "evaluate it")

    def __repr__(self) -> str:
        return f"LazyCheckpoint(name={self.name!r}, {len(self.files)} file(s), {len(self._layers)} layers, weights only)"


def read_tensor(file: str, name: str) -> torch.Tensor:
    """One tensor of a safetensors file (``safe_open(framework="pt")``, memory-mapped)."""
    from safetensors import safe_open

    try:
        with safe_open(file, framework="pt", device="cpu") as f:
            return f.get_tensor(name)
    except Exception as e:  # safetensors raises its own error types
        raise ModelSpecError(f"cannot read tensor {shorten(name)} from {file}: {type(e).__name__}: "
                             f"{shorten(str(e), 200)}") from e


def read_rows(file: str, name: str, start: int, stop: int) -> torch.Tensor:
    """Rows ``start:stop`` (first dimension) of one tensor of a safetensors file, reading only those bytes."""
    from safetensors import safe_open

    try:
        with safe_open(file, framework="pt", device="cpu") as f:
            return f.get_slice(name)[start:stop]
    except Exception as e:
        raise ModelSpecError(f"cannot read rows {start}:{stop} of tensor {shorten(name)} from {file}: "
                             f"{type(e).__name__}: {shorten(str(e), 200)}") from e


def open_lazy(path: str | os.PathLike, *, spec: Any = None) -> LazyCheckpoint:
    """A :class:`LazyCheckpoint` on ``path`` (a file, a sharded directory, a Hugging Face directory); a
    ``"safetensors:"`` prefix is accepted."""
    text = os.fspath(path)
    if isinstance(text, str) and text.startswith("safetensors:"):
        text = text.removeprefix("safetensors:")
    return LazyCheckpoint(text, spec=spec if spec is not None else path)


__all__ = ["LazyCheckpoint", "TensorInfo", "DTYPES", "FLOAT_DTYPES", "INDEX_NAME", "open_lazy", "read_header",
           "read_tensor", "read_rows"]
