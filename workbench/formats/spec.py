"""Format names and the frozen dataclasses behind them, with a registry filled by decorators.

A format is at most one sparsity pattern and at most one number format, joined by ``+``:

- ``"dense"``: neither.
- ``"N:M"`` (``"2:4"``): keep N of every M consecutive weights along the input dimension (Mishra et al. 2021).
- ``"N:M-T"`` (``"4:8-T"``): transposable N:M: N of M along rows and along columns of every M×M tile, so that W
  and Wᵀ are both N:M (Hubara et al. 2021, "Accelerated Sparse Neural Training").
- ``"fp8_e4m3"``, ``"fp8_e5m2"`` (Micikevicius et al. 2022), ``"int8"``, ``"int4"`` (any ``"intB"`` with 2 <= B <= 16
  parses), ``"binary"`` (sign with +1 at 0 times a scale; Hubara/Courbariaux et al. 2016, XNOR-Net).
- combinations: ``"2:4+fp8_e4m3"``.

>>> parse_format("2:4+fp8_e4m3")
Format(name='2:4+fp8_e4m3', sparsity=Sparsity(n=2, m=4, transposable=False), number=Number(name='fp8_e4m3', kind='float', bits=8))
>>> list_formats("fp8*")
['fp8_e4m3', 'fp8_e5m2']
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Callable, Literal

import torch

from workbench.errors import FormatError

NumberKind = Literal["float", "int", "binary"]


@dataclass(frozen=True)
class Sparsity:
    """An N:M pattern along the input dimension; ``transposable`` also asks for N:M along output rows per M×M tile."""

    n: int
    m: int
    transposable: bool = False

    def __post_init__(self) -> None:
        if self.m <= 0 or self.n <= 0 or self.n > self.m:
            raise FormatError(f"sparsity {self.n}:{self.m} needs 0 < N <= M (known formats: {', '.join(list_formats())})")

    @property
    def name(self) -> str:
        return f"{self.n}:{self.m}" + ("-T" if self.transposable else "")

    @property
    def density(self) -> float:
        return self.n / self.m


@dataclass(frozen=True)
class Number:
    """A number format: ``kind`` float (an FP8 torch dtype), int (symmetric, ``bits``) or binary (1 bit)."""

    name: str
    kind: NumberKind
    bits: int

    def __post_init__(self) -> None:
        if self.kind == "int" and not 2 <= self.bits <= 16:
            raise FormatError(f"integer format {self.name!r} needs 2..16 bits")
        if self.kind == "float" and self.name not in FLOAT_DTYPES:
            raise FormatError(f"unknown float format {self.name!r}; known: {', '.join(FLOAT_DTYPES)}")

    @property
    def dtype(self) -> torch.dtype | None:
        """The torch dtype that does the rounding (FP8 formats only)."""
        return FLOAT_DTYPES.get(self.name)

    @property
    def fmax(self) -> float:
        """Largest finite magnitude of the unscaled grid: 448 (E4M3), 57344 (E5M2), 2^(B-1)-1 (intB), 1 (binary)."""
        if self.kind == "float":
            return float(torch.finfo(self.dtype).max)
        if self.kind == "int":
            return float(2 ** (self.bits - 1) - 1)
        return 1.0


@dataclass(frozen=True)
class Format:
    """A parsed format: ``name`` is canonical (sparsity first, then number format)."""

    name: str
    sparsity: Sparsity | None = None
    number: Number | None = None

    @property
    def is_dense(self) -> bool:
        return self.sparsity is None and self.number is None

    def __str__(self) -> str:
        return self.name


FLOAT_DTYPES: dict[str, torch.dtype] = {
    "fp8_e4m3": torch.float8_e4m3fn,
    "fp8_e5m2": torch.float8_e5m2,
}

# name -> factory of the Number it stands for; filled by @register_number_format
_NUMBER_REGISTRY: dict[str, Callable[[], Number]] = {}
# sparsity patterns that list_formats shows (any valid N:M parses)
LISTED_SPARSITY = ("1:2", "2:4", "4:8", "2:4-T", "4:8-T")
LISTED_COMBINATIONS = ("2:4+fp8_e4m3", "2:4+int8", "2:4+int4", "4:8-T+fp8_e4m3", "2:4+binary")


def register_number_format(name: str) -> Callable[[Callable[[], Number]], Callable[[], Number]]:
    """Decorator: register a factory returning the :class:`Number` behind ``name``."""

    def deco(factory: Callable[[], Number]) -> Callable[[], Number]:
        if name in _NUMBER_REGISTRY:
            raise FormatError(f"number format {name!r} is already registered")
        _NUMBER_REGISTRY[name] = factory
        return factory

    return deco


@register_number_format("fp8_e4m3")
def _fp8_e4m3() -> Number:
    return Number("fp8_e4m3", "float", 8)


@register_number_format("fp8_e5m2")
def _fp8_e5m2() -> Number:
    return Number("fp8_e5m2", "float", 8)


@register_number_format("int8")
def _int8() -> Number:
    return Number("int8", "int", 8)


@register_number_format("int4")
def _int4() -> Number:
    return Number("int4", "int", 4)


@register_number_format("binary")
def _binary() -> Number:
    return Number("binary", "binary", 1)


def list_formats(pattern: str = "*") -> list[str]:
    """Named formats matching a shell-style ``pattern``: dense, the listed sparsity patterns, every registered
    number format and a few combinations. Any valid ``N:M``, ``N:M-T`` and ``intB`` parses even if not listed."""
    names = ["dense", *LISTED_SPARSITY, *_NUMBER_REGISTRY, *LISTED_COMBINATIONS]
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


_NM = re.compile(r"^(\d+):(\d+)(-T)?$")
_INT = re.compile(r"^int(\d+)$")


def _unknown(name: str, why: str = "unknown format") -> FormatError:
    return FormatError(
        f"{why}: {name!r}. Known formats: {', '.join(list_formats())}; also any 'N:M' or 'N:M-T' with "
        f"0 < N <= M, 'intB' with 2 <= B <= 16, and one pattern plus one number format joined by '+'"
    )


def _parse_part(part: str) -> Sparsity | Number | None:
    if part == "dense":
        return None
    nm = _NM.match(part)
    if nm:
        n, m = int(nm.group(1)), int(nm.group(2))
        if n <= 0 or n > m:
            raise _unknown(part, f"malformed sparsity pattern (needs 0 < N <= M, got N={n}, M={m})")
        return Sparsity(n, m, bool(nm.group(3)))
    if part in _NUMBER_REGISTRY:
        return _NUMBER_REGISTRY[part]()
    im = _INT.match(part)
    if im:
        bits = int(im.group(1))
        if not 2 <= bits <= 16:
            raise _unknown(part, "integer formats need 2..16 bits")
        return Number(part, "int", bits)
    raise _unknown(part)


def parse_format(fmt: "str | Format") -> Format:
    """Parse a format name (see the module docstring) into a :class:`Format`; raise FormatError listing the known
    formats when it is unknown or malformed."""
    if isinstance(fmt, Format):
        return fmt
    if not isinstance(fmt, str):
        raise FormatError(f"a format is a name such as '2:4+fp8_e4m3', got {type(fmt).__name__}: {fmt!r}")
    name = fmt.strip()
    if not name:
        raise _unknown(fmt, "empty format name")
    sparsity: Sparsity | None = None
    number: Number | None = None
    for part in name.split("+"):
        parsed = _parse_part(part.strip())
        if isinstance(parsed, Sparsity):
            if sparsity is not None:
                raise _unknown(name, "a format takes at most one sparsity pattern")
            sparsity = parsed
        elif isinstance(parsed, Number):
            if number is not None:
                raise _unknown(name, "a format takes at most one number format")
            number = parsed
    parts = [p.name for p in (sparsity, number) if p is not None]
    return Format("+".join(parts) if parts else "dense", sparsity, number)


__all__ = [
    "Sparsity",
    "Number",
    "Format",
    "FLOAT_DTYPES",
    "register_number_format",
    "list_formats",
    "parse_format",
]
