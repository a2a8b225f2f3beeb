"""Llama-shaped safetensors checkpoints of SYNTHETIC, seeded random weights (no download, nothing pretrained).

:func:`write_llama_checkpoint` writes a Hugging Face style folder: ``config.json`` (``model_type: "llama"``),
``model-0000K-of-0000N.safetensors`` shards of at most ``max_shard_bytes`` each and ``model.safetensors.index.json``
(``metadata.total_size`` and the ``weight_map`` tensor -> shard, as ``transformers`` writes it). It exists so that
the streaming weight report (:mod:`workbench.reports.weights`) can be measured on a 7B-parameter layout without
downloading anything. **The weights are random numbers, not a trained model**: Gaussian N(0, 0.02²) for every
matrix (the ``initializer_range`` of ``LlamaConfig``), ones for the RMSNorm weights, as ``LlamaPreTrainedModel``
initialises them. Trained weights have outlier channels that Gaussian weights lack, so per-format SQNR figures on
these checkpoints say how fast the code runs, not how a real Llama quantizes.

Layouts (:data:`LAYOUTS`): ``"7b"`` (Llama-2-7B: hidden 4096, intermediate 11008, 32 layers, 32 heads, vocab 32000;
6.74 G parameters, 12.6 GiB in bf16), ``"1b"`` (TinyLlama-1.1B: hidden 2048, intermediate 5632, 22 layers, 32 heads,
4 key-value heads, vocab 32000) and ``"tiny"`` (hidden 64, 2 layers: for tests), or explicit sizes
(:class:`LlamaLayout`).

Memory stays bounded by ONE tensor: each shard's safetensors header is computed from the shapes alone, then every
tensor is generated, converted and written in turn (the safetensors format: an 8-byte little-endian header length,
the JSON header, then the raw little-endian bytes of each tensor at its ``data_offsets``). ``safetensors``' own
``save_file`` would hold a whole shard plus a bytes copy of it; the files written here are read back by
``safetensors.safe_open`` and ``transformers`` like any other.

Each tensor comes from its own generator seeded with ``sha256(f"{seed}:{name}")``, so a tensor's values depend only
on the seed, its name and its shape — not on the shard size, the order or the other tensors (:func:`synthetic_tensor`
regenerates any one of them).

>>> import tempfile
>>> d = write_llama_checkpoint(tempfile.mkdtemp(), "tiny", seed=1, progress=False)
>>> from safetensors import safe_open
>>> idx = read_index(d)
>>> name = "model.layers.0.mlp.down_proj.weight"
>>> with safe_open(str(d / idx["weight_map"][name]), "pt") as f:
...     t = f.get_tensor(name)
>>> t.shape, t.dtype, bool((t == synthetic_tensor(name, (64, 128), seed=1)).all())
(torch.Size([64, 128]), torch.bfloat16, True)
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from workbench.errors import DataError, OptionError, OutputError

#: The std of every synthetic weight matrix (``LlamaConfig.initializer_range``).
INIT_STD = 0.02
#: Default shard size limit (bytes): 2 GiB.
DEFAULT_SHARD_BYTES = 2 * 1024**3
INDEX_NAME = "model.safetensors.index.json"
#: Said in config.json and in every shard's metadata.
SYNTHETIC_NOTE = ("SYNTHETIC checkpoint: seeded random weights N(0, 0.02^2), RMSNorm weights 1; not a trained model "
                  "(written by workbench.models.synthetic_llama)")

#: safetensors dtype names and element sizes of the dtypes the writer takes.
_DTYPES: dict[str, tuple[torch.dtype, str]] = {
    "bfloat16": (torch.bfloat16, "BF16"),
    "float16": (torch.float16, "F16"),
    "float32": (torch.float32, "F32"),
}
_DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "f16": "float16", "fp32": "float32", "f32": "float32"}


@dataclass(frozen=True)
class LlamaLayout:
    """The sizes of a Llama decoder (the ``LlamaConfig`` fields of the same names)."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    tie_word_embeddings: bool = False

    def __post_init__(self) -> None:
        for field in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                      "num_key_value_heads", "vocab_size"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DataError(f"LlamaLayout {field}={value!r}: must be a positive integer")
        if self.hidden_size % self.num_attention_heads:
            raise DataError(f"LlamaLayout hidden_size={self.hidden_size} is not a multiple of num_attention_heads="
                            f"{self.num_attention_heads}; the head size must be a whole number")
        if self.num_attention_heads % self.num_key_value_heads:
            raise DataError(f"LlamaLayout num_attention_heads={self.num_attention_heads} is not a multiple of "
                            f"num_key_value_heads={self.num_key_value_heads} (grouped-query attention needs it)")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def tensors(self) -> list[tuple[str, tuple[int, ...]]]:
        """(name, shape) of every tensor, in ``transformers``' ``LlamaForCausalLM`` naming and order."""
        h, i, kv = self.hidden_size, self.intermediate_size, self.num_key_value_heads * self.head_dim
        out: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (self.vocab_size, h))]
        for k in range(self.num_hidden_layers):
            p = f"model.layers.{k}."
            out += [
                (p + "input_layernorm.weight", (h,)),
                (p + "self_attn.q_proj.weight", (h, h)),
                (p + "self_attn.k_proj.weight", (kv, h)),
                (p + "self_attn.v_proj.weight", (kv, h)),
                (p + "self_attn.o_proj.weight", (h, h)),
                (p + "post_attention_layernorm.weight", (h,)),
                (p + "mlp.gate_proj.weight", (i, h)),
                (p + "mlp.up_proj.weight", (i, h)),
                (p + "mlp.down_proj.weight", (h, i)),
            ]
        out.append(("model.norm.weight", (h,)))
        if not self.tie_word_embeddings:
            out.append(("lm_head.weight", (self.vocab_size, h)))
        return out

    @property
    def num_parameters(self) -> int:
        return sum(_numel(s) for _, s in self.tensors())

    def config(self, dtype: str = "bfloat16", seed: int = 0) -> dict:
        """The ``config.json`` of a checkpoint of this layout (``LlamaConfig`` fields plus a synthetic note)."""
        return {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            **asdict(self),
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "initializer_range": INIT_STD,
            "attention_bias": False,
            "mlp_bias": False,
            "torch_dtype": dtype,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "workbench_synthetic": {"seed": seed, "note": SYNTHETIC_NOTE},
        }


#: Named layouts: ``7b`` = Llama-2-7B, ``1b`` = TinyLlama-1.1B, ``tiny`` for tests (every matrix dimension a
#: multiple of 16, so N:M and transposable patterns fit).
LAYOUTS: dict[str, LlamaLayout] = {
    "7b": LlamaLayout(4096, 11008, 32, 32, 32, 32000),
    "1b": LlamaLayout(2048, 5632, 22, 32, 4, 32000),
    "tiny": LlamaLayout(64, 128, 2, 4, 2, 256),
}


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def check_dtype(dtype: str) -> str:
    """The canonical name (``bfloat16``, ``float16``, ``float32``) of a dtype name or alias, or an OptionError."""
    name = _DTYPE_ALIASES.get(str(dtype).lower(), str(dtype).lower())
    if name not in _DTYPES:
        raise OptionError(f"dtype {dtype!r} is not one the synthetic checkpoint writer takes; choose one of "
                          f"{sorted(_DTYPES) + sorted(_DTYPE_ALIASES)}")
    return name


def resolve_layout(layout: str | LlamaLayout) -> LlamaLayout:
    """A :class:`LlamaLayout` from a name of :data:`LAYOUTS` or a layout itself."""
    if isinstance(layout, LlamaLayout):
        return layout
    if str(layout).lower() in LAYOUTS:
        return LAYOUTS[str(layout).lower()]
    raise OptionError(f"layout {layout!r} is not a known Llama layout; choose one of {sorted(LAYOUTS)} or give "
                      "explicit sizes (LlamaLayout / --hidden --intermediate --layers --heads --kv-heads --vocab)")


def _tensor_seed(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little") & ((1 << 63) - 1)


def synthetic_tensor(name: str, shape: tuple[int, ...], *, seed: int = 0, dtype: str = "bfloat16") -> torch.Tensor:
    """The synthetic value of tensor ``name``: ones for a 1-D norm weight, else N(0, 0.02²) from a generator seeded
    with ``sha256(f"{seed}:{name}")``, rounded to ``dtype``."""
    tdtype = _DTYPES[check_dtype(dtype)][0]
    if len(shape) == 1 and name.endswith("norm.weight"):
        return torch.ones(shape, dtype=tdtype)
    g = torch.Generator().manual_seed(_tensor_seed(seed, name))
    x = torch.randn(shape, generator=g, dtype=torch.float32)
    return x.mul_(INIT_STD).to(tdtype)


def plan_shards(tensors: list[tuple[str, tuple[int, ...]]], itemsize: int,
                max_shard_bytes: int) -> list[list[tuple[str, tuple[int, ...]]]]:
    """Split ``tensors`` (in order) into shards of at most ``max_shard_bytes`` of data each (a tensor larger than
    the limit gets a shard of its own, as ``transformers``' ``shard_checkpoint`` does)."""
    shards: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, shape in tensors:
        nbytes = _numel(shape) * itemsize
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append((name, shape))
        size += nbytes
    return shards


def _header(entries: list[tuple[str, tuple[int, ...]]], st_dtype: str, itemsize: int,
            metadata: dict[str, str]) -> bytes:
    header: dict = {"__metadata__": metadata}
    offset = 0
    for name, shape in entries:
        nbytes = _numel(shape) * itemsize
        header[name] = {"dtype": st_dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors pads the header with spaces to a multiple of 8 bytes
    return raw


def _write_bytes(fh, t: torch.Tensor) -> None:
    t = t.contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: write the same 2-byte patterns as int16
        t = t.view(torch.int16)
    fh.write(memoryview(t.numpy()).cast("B"))


def write_llama_checkpoint(path: str | Path, layout: str | LlamaLayout = "tiny", *, dtype: str = "bfloat16",
                           seed: int = 0, max_shard_bytes: int = DEFAULT_SHARD_BYTES, progress: bool = True,
                           overwrite: bool = False) -> Path:
    """Write a Llama-shaped checkpoint of synthetic random weights into folder ``path``; returns the folder.

    ``layout``: a name of :data:`LAYOUTS` (``"7b"``, ``"1b"``, ``"tiny"``) or a :class:`LlamaLayout`; ``dtype``:
    ``"bfloat16"`` (default), ``"float16"`` or ``"float32"``; shards hold at most ``max_shard_bytes`` of tensor data.
    A folder that already holds ``config.json``, an index or shards is refused (:class:`OutputError`) unless
    ``overwrite``. Shards are written under a temporary name and renamed when complete; the index and
    ``config.json`` come last, so a folder with an index is a complete checkpoint. Memory: one tensor at a time.
    """
    lay = resolve_layout(layout)
    dname = check_dtype(dtype)
    tdtype, st_dtype = _DTYPES[dname]
    itemsize = torch.empty((), dtype=tdtype).element_size()
    if not isinstance(max_shard_bytes, int) or max_shard_bytes < 1:
        raise DataError(f"max_shard_bytes={max_shard_bytes!r}: must be a positive number of bytes")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise DataError(f"seed={seed!r}: must be an integer")
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise OutputError(f"checkpoint folder {str(path)!r} is a file; give a folder")
    existing = [p.name for p in out.glob("*")
                if p.name in ("config.json", INDEX_NAME) or p.suffix == ".safetensors"] if out.is_dir() else []
    if existing and not overwrite:
        raise OutputError(f"checkpoint folder {str(path)!r} already holds {sorted(existing)[:3]}; choose an empty "
                          "folder or pass overwrite=True (--overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    for name in existing:  # overwrite: drop the old index first, so a half-rewritten folder is never complete
        if name == INDEX_NAME:
            os.unlink(out / name)
    for name in existing:
        if name != INDEX_NAME:
            os.unlink(out / name)

    tensors = lay.tensors()
    shards = plan_shards(tensors, itemsize, max_shard_bytes)
    total = sum(_numel(s) for _, s in tensors) * itemsize
    metadata = {"format": "pt", "synthetic": SYNTHETIC_NOTE, "seed": str(seed)}
    weight_map: dict[str, str] = {}
    from workbench.progress import progress_bar

    bar = progress_bar(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="synthetic llama",
                       disable=not progress)
    try:
        for k, entries in enumerate(shards, start=1):
            fname = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
            tmp = out / f".{fname}.tmp"
            header = _header(entries, st_dtype, itemsize, metadata)
            try:
                with open(tmp, "wb") as fh:
                    fh.write(struct.pack("<Q", len(header)))
                    fh.write(header)
                    for name, shape in entries:
                        t = synthetic_tensor(name, shape, seed=seed, dtype=dname)
                        _write_bytes(fh, t)
                        del t
                        weight_map[name] = fname
                        bar.update(_numel(shape) * itemsize)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, out / fname)
            except BaseException:
                if tmp.exists():
                    os.unlink(tmp)
                raise
    finally:
        bar.close()
    _write_json(out / "config.json", lay.config(dname, seed))
    _write_json(out / INDEX_NAME, {"metadata": {"total_size": total, "synthetic": SYNTHETIC_NOTE},
                                   "weight_map": weight_map})
    return out


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_index(path: str | Path) -> dict:
    """The ``model.safetensors.index.json`` of checkpoint folder ``path``."""
    return json.loads((Path(path) / INDEX_NAME).read_text(encoding="utf-8"))


def iter_checkpoint_files(path: str | Path) -> Iterator[Path]:
    """The shard files of checkpoint folder ``path``, in index order."""
    seen: dict[str, None] = dict.fromkeys(read_index(path)["weight_map"].values())
    for name in seen:
        yield Path(path) / name


__all__ = ["LlamaLayout", "LAYOUTS", "INIT_STD", "DEFAULT_SHARD_BYTES", "INDEX_NAME", "SYNTHETIC_NOTE",
           "check_dtype", "resolve_layout", "synthetic_tensor", "plan_shards", "write_llama_checkpoint",
           "read_index", "iter_checkpoint_files"]
