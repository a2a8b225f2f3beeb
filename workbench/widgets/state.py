"""The dashboard's state as plain data: model spec, whole-model format, per-layer overrides, activations flag.

The same small dict is the JSON file a user saves (``{"version": 1, "model": ..., "formats": {...},
"activations": ...}``) and the parameters of the compression report (:meth:`DashboardState.to_report_params`),
following the "configs serialize to dicts with a version" pattern (torchao ``config_to_dict``). ``formats`` uses
the format-dict convention of :func:`workbench.formats.apply`: ``"default"`` is the whole-model format and every
other key is an exact layer name with its override.

No ipywidgets here: the state is testable and usable from a plain script.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from workbench.errors import DataError, FormatError
from workbench.formats.spec import parse_format

__all__ = [
    "STATE_VERSION",
    "SPARSITY_CHOICES",
    "NUMBER_CHOICES",
    "DashboardState",
    "combine_format",
    "split_format",
    "format_choices",
]

STATE_VERSION = 1

#: The sparsity switch of the dashboard ("dense" = no pattern).
SPARSITY_CHOICES: tuple[str, ...] = ("dense", "2:4", "4:8-T")
#: The number-format switch of the dashboard ("fp32" = the model's own float32 weights).
NUMBER_CHOICES: tuple[str, ...] = ("fp32", "fp8_e4m3", "fp8_e5m2", "int8", "int4", "binary")


def combine_format(sparsity: str, number: str) -> str:
    """The format name of one sparsity choice and one number choice.

    >>> combine_format("2:4", "fp8_e4m3"), combine_format("dense", "int8"), combine_format("dense", "fp32")
    ('2:4+fp8_e4m3', 'int8', 'dense')
    """
    parts = [p for p, none in ((sparsity, "dense"), (number, "fp32")) if p and p != none]
    return "+".join(parts) if parts else "dense"


def split_format(fmt: str) -> tuple[str, str]:
    """The (sparsity, number) pair of a format name, the inverse of :func:`combine_format`.

    >>> split_format("2:4+fp8_e4m3"), split_format("binary"), split_format("dense")
    (('2:4', 'fp8_e4m3'), ('dense', 'binary'), ('dense', 'fp32'))
    """
    f = parse_format(fmt)
    return (f.sparsity.name if f.sparsity else "dense"), (f.number.name if f.number else "fp32")


def format_choices() -> list[str]:
    """Every format a per-layer override can take: each sparsity choice combined with each number choice."""
    return [combine_format(s, n) for s in SPARSITY_CHOICES for n in NUMBER_CHOICES]


@dataclass
class DashboardState:
    """What the dashboard shows: which model, which formats, and whether activations are quantized too.

    >>> s = DashboardState("digits-cnn", default="2:4", overrides={"fc2": "dense"})
    >>> s.format_for("fc1"), s.format_for("fc2")
    ('2:4', 'dense')
    >>> DashboardState.from_dict(s.to_dict()) == s
    True
    """

    model: str
    default: str = "dense"
    overrides: dict[str, str] = field(default_factory=dict)
    activations: bool = False

    def format_for(self, layer: str) -> str:
        """The format this state asks for on ``layer``: its override, else the whole-model format."""
        return self.overrides.get(layer, self.default)

    def resolve(self, layers: Iterable[str]) -> dict[str, str]:
        """The format of every named layer (overrides applied)."""
        return {name: self.format_for(name) for name in layers}

    def formats(self) -> dict[str, str]:
        """The format dict in :func:`workbench.formats.apply` convention: ``{"default": fmt, layer: fmt, ...}``."""
        out = {"default": self.default}
        out.update(self.overrides)
        return out

    def copy(self) -> "DashboardState":
        return DashboardState(self.model, self.default, dict(self.overrides), self.activations)

    # --- serialization ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{"version", "model", "formats", "activations"}``: JSON-ready."""
        return {"version": STATE_VERSION, "model": self.model, "formats": self.formats(),
                "activations": bool(self.activations)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DashboardState":
        """Read a dict written by :meth:`to_dict`; a missing or newer version, or bad fields, raise DataError."""
        if not isinstance(d, Mapping):
            raise DataError(f"dashboard state must be a JSON object, got {type(d).__name__}")
        version = d.get("version")
        if not isinstance(version, int) or version < 1 or version > STATE_VERSION:
            raise DataError(f"dashboard state has version {version!r}; this workbench reads version 1..{STATE_VERSION}")
        model = d.get("model")
        if not isinstance(model, str) or not model:
            raise DataError(f"dashboard state needs a model spec string, got {model!r}")
        formats = d.get("formats", {"default": "dense"})
        if isinstance(formats, str):
            formats = {"default": formats}
        if not isinstance(formats, Mapping):
            raise DataError(f"dashboard state 'formats' must be an object of layer -> format, got {formats!r}")
        for k, v in formats.items():
            if not isinstance(k, str) or not isinstance(v, str) or not v:
                raise FormatError(f"dashboard state 'formats' entry {k!r}: {v!r} is not a format name")
        default = formats.get("default", "dense")
        overrides = {k: v for k, v in formats.items() if k != "default"}
        activations = d.get("activations", False)
        if not isinstance(activations, bool):
            raise DataError(f"dashboard state 'activations' must be true or false, got {activations!r}")
        return cls(model, default, overrides, activations)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "DashboardState":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"dashboard state is not valid JSON: {e}") from e
        return cls.from_dict(d)

    def save(self, path: str | Path) -> Path:
        """Write the state as JSON to ``path`` (parent folders created); returns the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.to_json() + "\n")
        return p

    @classmethod
    def load(cls, path: str | Path) -> "DashboardState":
        p = Path(path)
        if not p.is_file():
            raise DataError(f"dashboard state file {p} does not exist")
        return cls.from_json(p.read_text())

    def to_report_params(self) -> dict[str, Any]:
        """Parameters of ``notebooks/reports/compression_report.ipynb`` (papermill) for this state.

        The report compares whole-model formats, so ``formats`` lists every format this state uses (the
        whole-model one first, then the overrides' formats; ``["dense"]`` when nothing is compressed) and
        ``mask_format`` is the first sparsity pattern among them. Per-layer assignments and the activations flag
        have no report parameter: they stay in the state JSON (:meth:`to_dict`).

        >>> DashboardState("digits-cnn", "2:4+int8", {"fc2": "binary"}).to_report_params()
        {'model': 'digits-cnn', 'formats': ['2:4+int8', 'binary'], 'mask_format': '2:4'}
        """
        used = [f for f in dict.fromkeys([self.default, *self.overrides.values()]) if f != "dense"]
        params: dict[str, Any] = {"model": self.model, "formats": used or ["dense"]}
        sparse = next((split_format(f)[0] for f in used if split_format(f)[0] != "dense"), None)
        if sparse is not None:
            params["mask_format"] = sparse
        return params
