"""``ModelHandle``: a model together with what the workbench needs to study it.

A handle holds the model (eval mode, float32, CPU), its layer table, batches for calibration, held-out batches with
targets, and a fast ``evaluate()`` that every analysis calls after each change of format. ``evaluate`` always returns
a ``"loss"`` where smaller is better, so sensitivity code works the same for classifiers and embedding models:

- classification: ``{"accuracy", "loss"}``, loss = mean cross-entropy on the held-out split;
- embedding: ``{"cosine", "loss"}``, cosine = mean cosine similarity of each example's output to the unmodified
  model's output (computed once, when the handle is built), loss = 1 - cosine.

Forward passes in ``evaluate`` run under ``torch.inference_mode()`` and ``torch.nn.utils.parametrize.cached()``, so
a parametrized (formatted) weight is computed once per evaluation, not once per batch.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from workbench.errors import DataError
from workbench.models.layers import layer_table

Batch = Any  # a tensor for plain models, a dict of tensors (input_ids, attention_mask, ...) for Hugging Face models


def _count(value: Any, name: str, default: int | None) -> int | None:
    """``value`` as a positive int (``None`` gives ``default``); a bool, a float, zero or a negative is refused."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise DataError(f"calibration_batches: {name} must be a positive integer (or None for the default "
                        f"{default}), got {type(value).__name__} {value!r:.60}")
    return int(value)


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


class _EvalMode:
    """Put a model in eval mode for a block and restore its previous mode afterwards."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.was_training = model, model.training

    def __enter__(self) -> nn.Module:
        self.model.eval()
        return self.model

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was_training)


class ModelHandle:
    """A loaded model and its data. Build one with :func:`workbench.load_model`.

    Attributes: ``name`` (str), ``model`` (nn.Module), ``task`` (``"classification"`` or ``"embedding"``),
    ``notes`` (what the handle is, where its weights and data come from; says plainly when weights are random),
    ``spec`` (what was passed to ``load_model``), ``record`` (the checkpoint record for bundled models, else ``{}``).
    """

    task: str = ""

    def __init__(self, name: str, model: nn.Module, *, notes: str = "", spec: Any = None,
                 record: dict | None = None) -> None:
        self.name = name
        self.model = model
        self.notes = notes
        self.spec = spec if spec is not None else name
        self.record = dict(record or {})

    # -- the layer table -------------------------------------------------------------------------------------
    @property
    def layers(self) -> pd.DataFrame:
        """One row per eligible layer (Linear / Conv1d / Conv2d with a weight): ``name, kind, weight_shape,
        params, dtype, in_features, out_features``."""
        return layer_table(self.model)

    # -- running ---------------------------------------------------------------------------------------------
    def _forward(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def run(self, batch: Batch, model: nn.Module | None = None) -> torch.Tensor:
        """The output of ``model`` (default: the handle's) for one batch, under ``torch.no_grad()``.

        Logits for classifiers; L2-normalised sentence embeddings for Hugging Face encoders; the raw output for
        other models. The model's train/eval mode is left as it is.
        """
        with torch.no_grad():
            return self._forward(self.model if model is None else model, batch)

    def calibration_batches(self, n_batches: int | None = None, batch_size: int | None = None) -> list[Batch]:
        """Batches that :meth:`run` accepts, from the training/calibration data, in a fixed order."""
        raise NotImplementedError

    def eval_batches(self) -> list[tuple[Batch, torch.Tensor]]:
        """Held-out ``(batch, target)`` pairs: class labels, or the unmodified model's outputs."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module | None = None) -> dict[str, float]:
        """Score ``model`` (default: the handle's) on the held-out batches; see the module docstring."""
        raise NotImplementedError

    def train_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of the training split, shaped for the model (classification handles only)."""
        raise DataError(f"model {self.name!r} ({self.task}) has no labelled training data")

    def test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of the held-out split, shaped for the model (classification handles only)."""
        raise DataError(f"model {self.name!r} ({self.task}) has no labelled test data")

    def __repr__(self) -> str:
        n = len(self.layers)
        return f"ModelHandle(name={self.name!r}, task={self.task!r}, model={type(self.model).__name__}, {n} layers)"


class ClassificationHandle(ModelHandle):
    """A classifier with labelled data: ``evaluate`` gives accuracy and mean cross-entropy on the test split."""

    task = "classification"

    def __init__(self, name: str, model: nn.Module, *, train: tuple[torch.Tensor, torch.Tensor] | None = None,
                 test: tuple[torch.Tensor, torch.Tensor] | None = None, calib: torch.Tensor | None = None,
                 calib_batch_size: int = 128, calib_n_batches: int = 4, eval_batch_size: int = 512,
                 **kw: Any) -> None:
        super().__init__(name, model, **kw)
        self._train, self._test = train, test
        self._calib = calib if calib is not None else (train[0] if train is not None else None)
        self.calib_batch_size, self.calib_n_batches, self.eval_batch_size = calib_batch_size, calib_n_batches, eval_batch_size
        self._eval_cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def _forward(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return model(batch)

    def _need(self, what: str, value: Any) -> Any:
        if value is None:
            raise DataError(f"model {self.name!r} has no {what} data: pass data=(x, y) or "
                            "data=dict(calib=x, eval=(x, y)) to workbench.load_model")
        return value

    def calibration_batches(self, n_batches: int | None = None, batch_size: int | None = None) -> list[torch.Tensor]:
        """Input batches from the training split, in its fixed order (default 4 batches of 128)."""
        size = _count(batch_size, "batch_size", self.calib_batch_size)
        n = _count(n_batches, "n_batches", self.calib_n_batches)
        x = self._need("calibration", self._calib)
        return [x[s] for s in _chunks(len(x), size)[:n]]

    def eval_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The held-out split as ``(x, y)`` batches (one batch of up to 512 examples for the digits)."""
        if self._eval_cache is None:
            x, y = self._need("evaluation", self._test)
            self._eval_cache = [(x[s], y[s]) for s in _chunks(len(x), self.eval_batch_size)]
        return list(self._eval_cache)

    def evaluate(self, model: nn.Module | None = None) -> dict[str, float]:
        """``{"accuracy", "loss"}``: top-1 accuracy and mean cross-entropy on the held-out split."""
        model = self.model if model is None else model
        batches = self.eval_batches()
        correct, loss, count = 0, 0.0, 0
        with _EvalMode(model), torch.inference_mode(), parametrize.cached():
            for x, y in batches:
                logits = model(x)
                loss += F.cross_entropy(logits.float(), y, reduction="sum").item()
                correct += int((logits.argmax(-1) == y).sum())
                count += len(y)
        return {"accuracy": correct / count, "loss": loss / count}

    def train_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._need("training", self._train)

    def test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._need("test", self._test)


class EmbeddingHandle(ModelHandle):
    """A model scored by how close its outputs stay to the unmodified model's (cosine similarity per example).

    ``encode(model, batch)`` gives one output row per example; ``make_batches(items, batch_size)`` turns a list of
    items (sentences, or a tensor of inputs) into batches. The reference outputs are computed here, once.
    """

    task = "embedding"

    def __init__(self, name: str, model: nn.Module, *, encode: Callable[[nn.Module, Batch], torch.Tensor],
                 make_batches: Callable[[Sequence[Any], int], list[Batch]], calib_items: Sequence[Any],
                 eval_items: Sequence[Any], batch_size: int = 32, calib_n_batches: int | None = None,
                 **kw: Any) -> None:
        super().__init__(name, model, **kw)
        if len(eval_items) == 0 or len(calib_items) == 0:
            raise DataError(f"model {name!r}: calibration and evaluation data must not be empty")
        self._encode, self._make_batches = encode, make_batches
        self._calib_items, self._eval_items = calib_items, eval_items
        self.batch_size = batch_size
        self.calib_n_batches = calib_n_batches
        inputs = make_batches(eval_items, batch_size)
        with _EvalMode(model), torch.no_grad():  # not inference_mode: the references may serve as training targets
            refs = [encode(model, b).detach().clone() for b in inputs]
        self._eval_cache = list(zip(inputs, refs))

    def _forward(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return self._encode(model, batch)

    @property
    def eval_items(self) -> Sequence[Any]:
        """The evaluation items (sentences or inputs) in the order of :meth:`eval_batches`."""
        return self._eval_items

    def calibration_batches(self, n_batches: int | None = None, batch_size: int | None = None) -> list[Batch]:
        """Batches of the calibration items (default: all of them, 32 per batch)."""
        size = _count(batch_size, "batch_size", self.batch_size)
        n = _count(n_batches, "n_batches", self.calib_n_batches)
        items = self._calib_items if n is None else self._calib_items[: n * size]
        return self._make_batches(items, size)

    def eval_batches(self) -> list[tuple[Batch, torch.Tensor]]:
        """``(batch, reference output)`` pairs; the reference is the unmodified model's output."""
        return list(self._eval_cache)

    def evaluate(self, model: nn.Module | None = None) -> dict[str, float]:
        """``{"cosine", "loss"}``: mean cosine to the unmodified model's outputs, and ``1 - cosine``."""
        model = self.model if model is None else model
        total, count = 0.0, 0
        with _EvalMode(model), torch.inference_mode(), parametrize.cached():
            for batch, ref in self._eval_cache:
                out = self._encode(model, batch)
                cos = F.cosine_similarity(out.flatten(1).double(), ref.flatten(1).double(), dim=1).clamp(-1.0, 1.0)
                total += float(cos.sum())
                count += len(cos)
        cosine = total / count
        return {"cosine": cosine, "loss": 1.0 - cosine}


__all__ = ["ModelHandle", "ClassificationHandle", "EmbeddingHandle"]
