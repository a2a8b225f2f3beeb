"""Format names and the frozen dataclasses behind them, with a registry filled by decorators: the ONE format grammar.

A format is at most one sparsity pattern and at most one number format, joined by ``+``:

- ``"dense"``: neither.
- ``"N:M"`` (``"2:4"``): keep N of every M consecutive weights along the input dimension (Mishra et al. 2021).
- ``"N:M-T"`` (``"4:8-T"``): transposable N:M: N of M along rows and along columns of every M×M tile, so that W
  and Wᵀ are both N:M (Hubara et al. 2021, "Accelerated Sparse Neural Training"), solved exactly per tile.
  ``"N:M-T greedy"`` (``"16:32-T greedy"``) is the fast approximate method instead: the paper's greedy
  2-approximation with repair, then a 4-cycle local search; ``"N:M-T optimal"`` is the same format as ``"N:M-T"``.
  Any M up to 1024 parses; the solve itself is guarded by its cost estimate (``8:16-T`` and ``16:32-T`` on a
  4096×4096 weight solve exactly in seconds with numba; see :mod:`workbench.formats.masks`).
- ``"unstructured P%"`` (``"unstructured 50%"``): keep the P % largest |w| of the whole layer;
  ``"unstructured:F"`` with a fraction F in (0, 1] (``"unstructured:0.5"``) is the same format.
- ``"blockHxW@S%"`` (``"block4x4@80%"``): block sparsity at S % *sparsity* (S in [0, 100)): the weight matrix is cut
  into H×W blocks (H output rows × W input columns) and the ``round((1 − S) · #blocks)`` blocks of largest L2 norm
  are kept whole (Narang, Undersander & Diamos 2017, "Block-sparse recurrent neural networks").
- ``"fp8_e4m3"``, ``"fp8_e5m2"`` (Micikevicius et al. 2022), ``"int8"``, ``"int4"`` (any ``"intB"`` with 2 <= B <= 16
  parses), ``"binary"`` (sign with +1 at 0 times a scale; Hubara/Courbariaux et al. 2016, XNOR-Net).
- combinations: ``"2:4+fp8_e4m3"``.

Names are ASCII, at most 64 characters; whitespace around the parts, a lower-case ``-t`` and the method's case
are accepted and canonicalized (``parse_format("2:4-t").name == "2:4-T"``).

>>> parse_format("2:4+fp8_e4m3")
Format(name='2:4+fp8_e4m3', sparsity=Sparsity(n=2, m=4, transposable=False, method='optimal', keep=None, block=None), number=Number(name='fp8_e4m3', kind='float', bits=8))
>>> parse_format("4:8-t greedy").name, parse_format("unstructured:0.25").name
('4:8-T greedy', 'unstructured 25%')
>>> list_formats("fp8*")
['fp8_e4m3', 'fp8_e5m2']
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass
from typing import Callable, Literal

import torch

from workbench.errors import FormatError, shorten

NumberKind = Literal["float", "int", "binary"]


SolverMethod = Literal["optimal", "greedy"]
SparsityKind = Literal["nm", "transposable", "unstructured", "block"]
SOLVER_METHODS: tuple[str, ...] = ("optimal", "greedy")
MAX_M = 1024  # the largest M a pattern may name (a transposable solve is guarded by its own cost estimate)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@dataclass(frozen=True)
class Sparsity:
    """One mask abstraction with parameters (not subclasses): an N:M pattern along the input dimension
    (``n``, ``m``); ``transposable`` also asks for N:M along output rows per M×M tile, solved by ``method``
    (``"optimal"`` or ``"greedy"``); or, with ``keep`` set (and no N:M), unstructured: the fraction ``keep`` of
    largest |w| of the whole layer; or, with ``block=(bh, bw)`` and ``keep`` too, block sparsity: the fraction
    ``keep`` of bh×bw blocks of largest L2 norm."""

    n: int | None = None
    m: int | None = None
    transposable: bool = False
    method: SolverMethod = "optimal"
    keep: float | None = None
    block: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.block is not None:
            b = self.block
            if (not isinstance(b, tuple) or len(b) != 2 or not all(_is_int(v) and 0 < v <= MAX_M for v in b)):
                raise FormatError(f"block sparsity needs block=(rows, columns) of ints in 1..{MAX_M}, "
                                  f"got {shorten(b)}")
            if self.keep is None:
                raise FormatError(f"block sparsity {b[0]}x{b[1]} needs `keep`, the fraction of blocks kept, "
                                  "in (0, 1] (sparsity in [0, 1))")
        if self.keep is not None:
            if self.n is not None or self.m is not None or self.transposable or self.method != "optimal":
                what = "a block" if self.block is not None else "an unstructured"
                raise FormatError(f"{what} sparsity takes only `keep` (no n, m, transposable or method), "
                                  f"got {self!r}")
            if isinstance(self.keep, bool) or not isinstance(self.keep, (int, float)) or not (
                    math.isfinite(self.keep) and 0 < self.keep <= 1):
                raise FormatError(f"unstructured sparsity: keep must be a fraction in (0, 1], got {shorten(self.keep)}")
            return
        if not (_is_int(self.n) and _is_int(self.m)) or self.m <= 0 or self.n <= 0 or self.n > self.m:
            raise FormatError(f"sparsity {shorten(self.n)}:{shorten(self.m)} needs integers 0 < N <= M "
                              f"(known formats: {', '.join(list_formats())})")
        if self.m > MAX_M:
            raise FormatError(f"sparsity {self.n}:{self.m}: M must be at most {MAX_M}")
        if self.method not in SOLVER_METHODS:
            raise FormatError(f"sparsity {self.n}:{self.m}: unknown solver method {shorten(self.method)}; "
                              f"known: {', '.join(SOLVER_METHODS)}")
        if self.method != "optimal" and not self.transposable:
            raise FormatError(f"sparsity {self.n}:{self.m}: method {self.method!r} applies to transposable "
                              f"patterns only ('{self.n}:{self.m}-T {self.method}')")

    @property
    def kind(self) -> SparsityKind:
        """``"unstructured"``, ``"transposable"`` or ``"nm"``."""
        if self.block is not None:
            return "block"
        if self.keep is not None:
            return "unstructured"
        return "transposable" if self.transposable else "nm"

    @property
    def name(self) -> str:
        if self.block is not None:
            return f"block{self.block[0]}x{self.block[1]}@{(1 - self.keep) * 100:.6g}%"
        if self.keep is not None:
            return f"unstructured {self.keep * 100:.6g}%"
        base = f"{self.n}:{self.m}" + ("-T" if self.transposable else "")
        return base + (f" {self.method}" if self.method != "optimal" else "")

    @property
    def density(self) -> float:
        """Fraction of weights kept: N/M, or ``keep`` (of weights, or of blocks)."""
        return float(self.keep) if self.keep is not None else self.n / self.m


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
LISTED_SPARSITY = ("1:2", "2:4", "4:8", "2:4-T", "4:8-T", "2:4-T greedy", "unstructured 50%", "block4x4@80%",
                   "block8x8@80%", "block16x16@90%")
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
    number format and a few combinations. Any valid ``N:M``, ``N:M-T [greedy]``, ``unstructured P%`` and ``intB``
    parses even if not listed."""
    names = ["dense", *LISTED_SPARSITY, *_NUMBER_REGISTRY, *LISTED_COMBINATIONS]
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


MAX_NAME_CHARS = 64
_NM = re.compile(r"([0-9]{1,6})\s*:\s*([0-9]{1,6})(?:\s*-\s*([Tt]))?(?:\s+([A-Za-z]+))?")
_UNSTRUCTURED = re.compile(r"(?i:unstructured)\s*[:_\s-]?\s*([0-9]{1,6}(?:\.[0-9]{1,9})?)?\s*(%?)")
_INT = re.compile(r"int([0-9]+)")
_BLOCK = re.compile(r"(?i:block)\s*([0-9]{1,6})\s*[xX]\s*([0-9]{1,6})\s*(?:@\s*([0-9]{1,6}(?:\.[0-9]{1,9})?)\s*(%?))?")


def _unknown(name: object, why: str = "unknown format") -> FormatError:
    return FormatError(
        f"{why}: {shorten(name)}. Known formats: {', '.join(list_formats())}; also any 'N:M' or 'N:M-T' with "
        f"0 < N <= M (optionally 'N:M-T greedy'), 'unstructured P%' (or 'unstructured:F', F in (0, 1]), "
        "'blockHxW@S%' (H×W blocks at S% sparsity, 0 <= S < 100, e.g. 'block4x4@80%'), 'intB' "
        "with 2 <= B <= 16, and one pattern plus one number format joined by '+'"
    )


def _parse_part(part: str) -> Sparsity | Number | None:
    if part == "dense":
        return None
    nm = _NM.fullmatch(part)
    if nm:
        n, m = int(nm.group(1)), int(nm.group(2))
        if n <= 0 or n > m:
            raise _unknown(part, f"malformed sparsity pattern (needs 0 < N <= M, got N={n}, M={m})")
        if m > MAX_M:
            raise _unknown(part, f"malformed sparsity pattern (M must be at most {MAX_M}, got M={m})")
        method = (nm.group(4) or "optimal").lower()
        if method not in SOLVER_METHODS:
            raise _unknown(part, f"unknown solver method {nm.group(4)!r} (known: {', '.join(SOLVER_METHODS)})")
        if method != "optimal" and not nm.group(3):
            raise _unknown(part, f"the solver method {method!r} applies to transposable patterns only "
                                 f"('{n}:{m}-T {method}')")
        return Sparsity(n, m, bool(nm.group(3)), method)
    un = _UNSTRUCTURED.fullmatch(part)
    if un:
        if un.group(1) is None:
            raise _unknown(part, "an unstructured pattern needs its density ('unstructured 50%' or 'unstructured:0.5')")
        value = float(un.group(1))
        keep = value / 100 if un.group(2) else value
        if not 0 < keep <= 1:
            hint = " (a percentage needs '%')" if not un.group(2) and value > 1 else ""
            raise _unknown(part, f"unstructured density must be in (0, 100%], got {un.group(1)}{un.group(2)}{hint}")
        return Sparsity(keep=keep)
    bl = _BLOCK.fullmatch(part)
    if bl:
        bh, bw = int(bl.group(1)), int(bl.group(2))
        if not (0 < bh <= MAX_M and 0 < bw <= MAX_M):
            raise _unknown(part, f"block sides must be in 1..{MAX_M}, got {bh}x{bw}")
        if bl.group(3) is None:
            raise _unknown(part, f"a block pattern needs its sparsity ('block{bh}x{bw}@80%')")
        value = float(bl.group(3))
        sparsity = value / 100 if bl.group(4) else value
        if not 0 <= sparsity < 1:
            hint = " (a percentage needs '%')" if not bl.group(4) and value >= 1 else ""
            raise _unknown(part, f"block sparsity must be in [0, 100%), got {bl.group(3)}{bl.group(4)}{hint}")
        return Sparsity(keep=1.0 - sparsity, block=(bh, bw))
    if part in _NUMBER_REGISTRY:
        return _NUMBER_REGISTRY[part]()
    im = _INT.fullmatch(part)
    if im:
        digits = im.group(1)
        bits = int(digits) if len(digits) <= 3 else None
        if bits is None or not 2 <= bits <= 16:
            raise _unknown(part, "integer formats need 2..16 bits")
        return Number(f"int{bits}", "int", bits)
    raise _unknown(part)


def parse_format(fmt: "str | Format") -> Format:
    """Parse a format name (see the module docstring) into a :class:`Format`; raise FormatError listing the known
    formats when it is unknown or malformed (names are ASCII, printable, at most 64 characters)."""
    if isinstance(fmt, Format):
        return fmt
    if not isinstance(fmt, str):
        raise FormatError(f"a format is a name such as '2:4+fp8_e4m3', got {type(fmt).__name__}: {shorten(fmt)}")
    if len(fmt) > MAX_NAME_CHARS:
        raise _unknown(fmt, f"format names are at most {MAX_NAME_CHARS} characters, got {len(fmt)}")
    if not fmt.isascii() or not fmt.isprintable():
        raise _unknown(fmt, "format names are printable ASCII")
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
    "SOLVER_METHODS",
    "SolverMethod",
    "SparsityKind",
    "Sparsity",
    "Number",
    "Format",
    "FLOAT_DTYPES",
    "register_number_format",
    "list_formats",
    "parse_format",
]
