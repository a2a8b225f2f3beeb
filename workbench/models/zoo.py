"""The bundled model zoo: three small classifiers of scikit-learn's 8×8 handwritten digits (an MLP, a CNN, and a
GRU that reads each image row by row as an 8-step sequence).

The architectures are part of the API: layer attribute names (``fc1``, ``conv2``, ``bn1`` ...) are what users type
when they pick layers for a format, so they do not change. Weights are trained by ``scripts/train_digits.py`` on the
fixed training split of :func:`workbench.data.digits_split` and committed in ``data/`` with their sha256 and recorded
test accuracy in ``data/checkpoints.json``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from workbench.errors import ModelSpecError


class DigitsMLP(nn.Module):
    """Multilayer perceptron on flattened digits: 64 → 256 → 128 → 10 with ReLU.

    >>> DigitsMLP()(torch.zeros(2, 64)).shape
    torch.Size([2, 10])
    """

    input_shape: tuple[int, ...] = (64,)

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 256)
        self.fc2 = nn.Linear(256, 128)
        self.fc3 = nn.Linear(128, 10)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        x = self.act(self.fc1(x))
        x = self.act(self.fc2(x))
        return self.fc3(x)


class DigitsCNN(nn.Module):
    """Small CNN on 1×8×8 digits: two 3×3 convolutions with BatchNorm, a 2×2 max-pool, two linear layers.

    conv1 (1→16) · bn1 · ReLU · conv2 (16→32) · bn2 · ReLU · maxpool 2 · flatten (32·4·4 = 512) · fc1 (512→64) ·
    ReLU · fc2 (64→10). BatchNorm is there on purpose: Ghost Batch Norm and data-free calibration work on it.

    >>> DigitsCNN()(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """

    input_shape: tuple[int, ...] = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(512, 64)
        self.fc2 = nn.Linear(64, 10)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.conv1(x)))
        x = self.act(self.bn2(self.conv2(x)))
        x = self.pool(x).flatten(1)
        x = self.act(self.fc1(x))
        return self.fc2(x)


class LinearGRUCell(nn.Module):
    """A GRU cell whose two weight matrices are ``nn.Linear`` layers, so that formats (and the sparse training lab)
    reach an RNN's recurrent weights like any linear layer's: ``ih`` holds W_ir|W_iz|W_in (3H × input) and ``hh``
    holds W_hr|W_hz|W_hn (3H × H), in torch.nn.GRU's gate order and equations (Cho et al. 2014):

    r = σ(W_ir x + b_ir + W_hr h + b_hr), z = σ(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h.

    >>> cell = LinearGRUCell(8, 16)
    >>> gru = nn.GRUCell(8, 16)
    >>> with torch.no_grad():
    ...     for a, b in [(gru.weight_ih, cell.ih.weight), (gru.weight_hh, cell.hh.weight),
    ...                  (gru.bias_ih, cell.ih.bias), (gru.bias_hh, cell.hh.bias)]:
    ...         _ = a.copy_(b)
    >>> x, h = torch.randn(3, 8), torch.randn(3, 16)
    >>> torch.allclose(cell(x, h), gru(x, h), atol=1e-6)
    True
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.ih = nn.Linear(input_size, 3 * hidden_size)
        self.hh = nn.Linear(hidden_size, 3 * hidden_size)

    def forward(self, x: torch.Tensor, h: torch.Tensor, xi: torch.Tensor | None = None) -> torch.Tensor:
        """One step; ``xi`` = ``self.ih(x)`` when the caller computed the input part for a whole sequence."""
        xr, xz, xn = (self.ih(x) if xi is None else xi).chunk(3, dim=-1)
        hr, hz, hn = self.hh(h).chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h


class DigitsGRU(nn.Module):
    """A recurrent classifier of digits read row by row: 8 steps of 8 pixels into a GRU with 64 hidden units
    (:class:`LinearGRUCell`: ``cell.ih`` 192×8, ``cell.hh`` 192×64), the last hidden state into ``fc`` (64→10).

    The recurrent weight ``cell.hh`` (192×64) tiles into 4×4, 8×8 and 16×16 blocks; the input weight ``cell.ih``
    (192×8) into 4×4 and 8×8 (the block-sparse RNNs of Narang et al. 2017 prune both).

    >>> DigitsGRU()(torch.zeros(2, 64)).shape
    torch.Size([2, 10])
    """

    input_shape: tuple[int, ...] = (64,)
    hidden_size = 64

    def __init__(self) -> None:
        super().__init__()
        self.cell = LinearGRUCell(8, self.hidden_size)
        self.fc = nn.Linear(self.hidden_size, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(x.shape[0], 8, 8)  # (batch, step = image row, 8 pixels)
        h = rows.new_zeros(x.shape[0], self.hidden_size)
        xi = self.cell.ih(rows)  # the input part of every step in one call (the recurrent part cannot be)
        for t in range(rows.shape[1]):
            h = self.cell(rows[:, t], h, xi[:, t])
        return self.fc(h)


@dataclass(frozen=True)
class BundledModel:
    """A bundled model: its spec name, architecture class, and checkpoint file name in ``data/``."""

    name: str
    arch_ref: type[nn.Module] | str  # the class, or "module:Class" for a lab's architecture (imported on first use)
    file: str
    images: bool  # True when the model takes 1×8×8 images, False for flat 64-vectors
    size: int = 8  # image side: 8, or the geometry lab's upsampled digits (32: workbench.data.upsample_digits)

    @property
    def arch(self) -> type[nn.Module]:
        """The architecture class; a lab's class named by ``"module:Class"`` is imported here, on first use, so the
        models package imports no lab."""
        if isinstance(self.arch_ref, str):
            module, _, cls = self.arch_ref.partition(":")
            return getattr(importlib.import_module(module), cls)
        return self.arch_ref


BUNDLED: dict[str, BundledModel] = {
    "digits-mlp": BundledModel("digits-mlp", DigitsMLP, "digits-mlp.pt", images=False),
    "digits-cnn": BundledModel("digits-cnn", DigitsCNN, "digits-cnn.pt", images=True),
    "digits-gru": BundledModel("digits-gru", DigitsGRU, "digits-gru.pt", images=False),
    # the geometry lab's shift-invariance models, trained by scripts/train_digits32.py on 32×32 digits
    "digits32-cnn-max": BundledModel("digits32-cnn-max", "workbench.geometry.cnn:Digits32CNNMax", "digits32-cnn-max.pt", True, 32),
    "digits32-cnn-blur": BundledModel("digits32-cnn-blur", "workbench.geometry.cnn:Digits32CNNBlur", "digits32-cnn-blur.pt", True, 32),
    "digits32-cnn-aps": BundledModel("digits32-cnn-aps", "workbench.geometry.cnn:Digits32CNNAPS", "digits32-cnn-aps.pt", True, 32),
}

CHECKPOINTS_FILE = "checkpoints.json"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (``hashlib.file_digest``, which reads in chunks)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_checkpoint_records(data_dir: Path) -> dict[str, dict]:
    """The records in ``data/checkpoints.json`` (file, sha256, test accuracy and loss, seed, epochs, versions)."""
    path = Path(data_dir) / CHECKPOINTS_FILE
    if not path.is_file():
        raise ModelSpecError(f"{path} is missing: run `python scripts/train_digits.py` to build the bundled models")
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelSpecError(f"{path} is not readable JSON ({e}): restore it from git or rerun "
                             "scripts/train_digits.py") from e
    if not isinstance(records, dict) or not all(isinstance(r, dict) and isinstance(r.get("sha256"), str)
                                                 for r in records.values()):
        raise ModelSpecError(f"{path} must map each bundled name to a record with a 'sha256' string: restore it "
                             "from git or rerun scripts/train_digits.py")
    return records


def load_bundled_model(name: str, data_dir: Path) -> tuple[nn.Module, dict]:
    """Build the bundled architecture ``name`` and load its committed weights after checking their sha256.

    Returns the model (eval mode, float32, CPU) and its record from ``checkpoints.json``.
    """
    entry = BUNDLED[name]
    records = read_checkpoint_records(data_dir)
    if name not in records:
        raise ModelSpecError(f"{Path(data_dir) / CHECKPOINTS_FILE} has no record for {name!r}")
    record = records[name]
    path = Path(data_dir) / Path(str(record.get("file", entry.file))).name  # a file name, never a path elsewhere
    if not path.is_file():
        raise ModelSpecError(f"checkpoint of {name!r} not found at {path}: run `python scripts/train_digits.py`")
    digest = sha256_file(path)
    if digest != record["sha256"]:
        raise ModelSpecError(
            f"checkpoint {path} of {name!r} has sha256 {digest[:16]}…, but {CHECKPOINTS_FILE} records "
            f"{record['sha256'][:16]}…: the file was changed; restore it from git or rerun scripts/train_digits.py"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = entry.arch()
    model.load_state_dict(state, strict=True)
    return model.float().eval(), record


__all__ = ["DigitsMLP", "DigitsCNN", "DigitsGRU", "LinearGRUCell", "BundledModel", "BUNDLED", "sha256_file", "load_bundled_model",
           "read_checkpoint_records"]
