"""The weight report: per layer, what each format and sparsity pattern does to the weights, streamed layer by layer.

:func:`weight_report` reads one layer at a time from a lazy safetensors checkpoint
(:class:`~workbench.models.lazy.LazyCheckpoint`; memory bounded by a block of rows of the largest layer plus working
space, not by the model), or from an eager :class:`~workbench.models.ModelHandle` (the reference: the same
computation on the model's layers). Per layer × entry (``formats`` then ``patterns``, every name parsed by the one
format grammar, :mod:`workbench.formats.spec`), one row:

- ``weight_sqnr_db``, ``weight_nl2``, ``weight_cosine``: ``layer_error``'s weight-only columns, the error of the
  formatted weight against the stored one (:mod:`workbench.quant.metrics`: SQNR = 20·log10(‖w‖/‖w − q(w)‖)), where
  ``q`` is the format exactly as :func:`workbench.formats.apply` puts it on a layer (its
  :class:`~workbench.formats.FormatParametrization`: magnitude mask, then a per-output-channel scale and the
  format's rounding);
- ``bits_per_weight`` and ``bytes``: the layer's storage under the format at the stored dtype, per-channel scales
  included (:func:`workbench.formats.size.format_size_bits`, the rule ``layer_size_bits`` follows);
- for entries with a sparsity pattern: ``density`` (kept fraction), ``kept_abs`` / ``kept_sq`` (kept magnitude,
  :func:`workbench.sparsity.report.kept_fractions`), ``log10_diversity`` (mask diversity of the weight matrix,
  :func:`workbench.sparsity.patterns.pattern_log10_diversity`) and ``padded`` (a transposable solve zero-padded
  the matrix), as the sparsity lab's ``mask_report`` computes them; NaN for entries without a pattern.

A layer is streamed in blocks of whole output rows (about :data:`CHUNK_ELEMENTS` weights each, a multiple of M for
transposable patterns and of the block height for block patterns), each cast to float32: per-channel scales, N:M
groups, M×M transposable tiles and bh×bw blocks never cross a block, so the result is that of the whole weight; the
sums behind every metric are accumulated in float64. Unstructured and block patterns choose among the whole layer:
a first pass over the blocks collects what the choice needs (the bit patterns' histogram of |w| for an exact
top-k, with ``unstructured_mask``'s tie rule; every block's L2 norm), so memory stays bounded by a block here too,
at the price of reading such a layer two or three times. Weights stored in float64 are scored after rounding to
float32, as an eager model holds them.

Resumable (``out=`` a ``.parquet`` path): after each layer the table so far is written to ``out`` atomically (a
temporary file renamed over it, :func:`workbench.reports.files.atomic_open`; the arguments in the file's metadata),
so an interrupted run leaves every finished layer; ``resume=True`` reads it back, checks it was made with the same
formats, patterns and layers, and computes only the rest. An existing ``out`` without ``resume`` is refused.

``executor=`` a ``dask.distributed.Client`` (or any :class:`concurrent.futures.Executor`): one task per layer, whose
payload is a small :class:`LayerJob` (file path, tensor name, shape, format names; no tensor): each worker opens the
file itself. Results are gathered in layer order, a few tasks ahead at a time.

What the lazy path cannot do: anything needing activations (quantized inputs, calibrated scales, output error,
evaluation). Such a format is refused before any work, saying why; use ``workbench.quant.layer_error`` on an eager
model for those.

>>> # weight_report(load_model("safetensors:llama-7b", lazy=True), ["fp8_e4m3", "int4"], ["2:4"], out="w.parquet")
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from workbench.errors import DataError, FormatError, LayerError, ModelSpecError, OutputError, shorten
from workbench.formats import FormatParametrization, from_matrix, parse_format, to_matrix
from workbench.formats.masks import PaddedWeightWarning, block_norms, fits, too_costly, unstructured_mask
from workbench.formats.size import bits_per_weight, format_size_bits
from workbench.formats.spec import Format
from workbench.progress import progress_bar, stop_callable
from workbench.quant.metrics import block_stats, channel_rounding_sums, metric_sums, metrics_from_sums
from workbench.sparsity.patterns import parse_pattern, pattern_log10_diversity
from workbench.sparsity.report import kept_fractions, kept_sums

DEFAULT_FORMATS: tuple[str, ...] = ("fp8_e4m3", "fp8_e5m2", "int8", "int4")
DEFAULT_PATTERNS: tuple[str, ...] = ("2:4", "2:4-T")
#: weights per streamed block (32 MB in float32; the float64 sums take a few times that while a block is scored)
CHUNK_ELEMENTS = 1 << 23
COLUMNS = [
    "layer", "tensor", "shape", "rows", "cols", "dtype", "numel", "role", "format", "status", "reason",
    "weight_sqnr_db", "weight_nl2", "weight_cosine", "bits_per_weight", "bytes",
    "density", "kept_abs", "kept_sq", "log10_diversity", "padded",
]
META_KEY = b"workbench.weight_report"
META_VERSION = 1

#: words in a format name that ask for something only the model can give, and why
MODEL_ONLY: dict[str, str] = {
    "activations": "quantizing a layer's inputs (activations) needs those inputs, which only running the model on "
                   "data gives",
    "act": "quantizing a layer's inputs (activations) needs those inputs, which only running the model on data gives",
    "calibrated": "a calibrated scale is fitted to the activations of calibration data run through the model",
    "static": "a static activation scale is calibrated on activations of data run through the model",
    "adaquant": "AdaQuant fits each layer's rounding to its outputs on calibration data run through the model",
    "output": "a layer's output error needs its inputs (activations), which only running the model gives",
}
_WA = re.compile(r"(?i)^(w\d+)?a\d+$")  # w8a8, a8: an activation bit width


# --------------------------------------------------------------------------------------------------------------
# arguments


def _names(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, Format)):
        return [str(value)]
    if not isinstance(value, Sequence) or isinstance(value, bytes):
        raise FormatError(f"weight_report: {what} must be a list of format names such as ['int8', '2:4'], got "
                          f"{type(value).__name__} {shorten(value)}")
    return [v if isinstance(v, str) else str(v) if isinstance(v, Format) else _bad_name(v, what) for v in value]


def _bad_name(v: Any, what: str) -> str:
    raise FormatError(f"weight_report: {what} holds {type(v).__name__} {shorten(v)}; each entry is a format name "
                      "such as 'int8', 'fp8_e4m3', '2:4' or '2:4-T'")


def check_lazy_format(name: str, what: str = "formats") -> None:
    """Refuse a format name that needs the model (activations, calibration): :class:`FormatError` saying why."""
    tokens = [t for t in re.split(r"[+\s:@/,_-]+", name.lower()) if t]
    for t in tokens:
        why = MODEL_ONLY.get(t) or (MODEL_ONLY["activations"] if _WA.match(t) else None)
        if why:
            raise FormatError(
                f"weight_report: {what} entry {shorten(name)} cannot be evaluated without the model: {why}, and the "
                "weight report (like the lazy safetensors path) has the weights only. Accepted: weight formats of "
                "the format grammar ('int8', 'fp8_e4m3', 'int4', 'binary', '2:4+fp8_e4m3', ...) and sparsity "
                "patterns ('2:4', '4:8-T', 'unstructured 50%', ...); for activations load the model eagerly and "
                "use workbench.quant.layer_error(..., what='both')")


def parse_entries(formats: Any, patterns: Any) -> list[tuple[str, Format]]:
    """``[(role, Format)]``: the formats, then the patterns (sparsity only), each parsed by the one grammar and
    checked for the lazy path; duplicates (by canonical name and role) are dropped. Raises FormatError."""
    out: list[tuple[str, Format]] = []
    seen: set[tuple[str, str]] = set()
    for role, what, names in (("format", "formats", _names(formats, "formats")),
                              ("pattern", "patterns", _names(patterns, "patterns"))):
        for name in names:
            check_lazy_format(name, what)
            if role == "pattern":
                p = parse_pattern(name)
                f = parse_format(name)
                if p is None:
                    raise FormatError(f"weight_report: patterns entry {shorten(name)} is dense; a pattern is a "
                                      "sparsity such as '2:4', '4:8-T' or 'unstructured 50%' (put 'dense' in formats)")
            else:
                f = parse_format(name)
            if (role, f.name) not in seen:
                seen.add((role, f.name))
                out.append((role, f))
    if not out:
        raise FormatError("weight_report: no formats and no patterns given; pass e.g. formats=['int8', 'fp8_e4m3'] "
                          "or patterns=['2:4']")
    return out


# --------------------------------------------------------------------------------------------------------------
# one layer


@dataclass(frozen=True)
class LayerJob:
    """Everything one layer's analysis needs, and nothing large: the task payload sent to a worker.

    ``file``/``tensor`` name where the weight lies (``file=None``: an in-memory weight handed over separately);
    ``entries`` are ``(role, canonical format name)``.
    """

    index: int
    layer: str
    tensor: str
    file: str | None
    shape: tuple[int, ...]
    dtype: str
    dtype_bits: int
    entries: tuple[tuple[str, str], ...]
    chunk_elements: int = CHUNK_ELEMENTS


class _Stopped(Exception):
    """Raised inside a layer when ``stop`` asks to end the run; the layer's partial work is dropped."""


@contextmanager
def _safetensors_rows(file: str, tensor: str) -> Iterator[Callable[[int, int], torch.Tensor]]:
    """``read(start, stop)`` of rows of one tensor, the file opened once (``safe_open`` + ``get_slice``)."""
    from safetensors import safe_open

    try:
        handle = safe_open(file, framework="pt", device="cpu")
        f = handle.__enter__()
        sl = f.get_slice(tensor)
    except Exception as e:  # safetensors raises its own error types (SafetensorError, OSError ...)
        raise ModelSpecError(f"cannot read tensor {shorten(tensor)} from {file}: {type(e).__name__}: "
                             f"{shorten(str(e), 200)}") from e
    try:
        yield lambda a, b: sl[a:b]
    finally:
        handle.__exit__(None, None, None)


def _block_rows(job: LayerJob, fmts: list[Format]) -> int:
    """Rows per streamed block: about ``job.chunk_elements`` weights, a multiple of every transposable pattern's M
    and every block pattern's block height, so no tile, block, N:M group or output channel crosses a block."""
    rows = job.shape[0]
    row_numel = max(1, math.prod(job.shape[1:]))
    align = 1
    for f in fmts:
        if f.sparsity is not None and f.sparsity.kind == "transposable":
            align = math.lcm(align, f.sparsity.m)
        if f.sparsity is not None and f.sparsity.kind == "block":
            align = math.lcm(align, f.sparsity.block[0])
    return min(rows, max(align, (job.chunk_elements // row_numel) // align * align))


class _TopK:
    """The mask of :func:`workbench.formats.masks.unstructured_mask` (the ``round(keep · numel)`` largest |w| of the
    whole weight matrix, ties to the lower flat index), computed on a weight streamed in row blocks.

    Exact two-pass radix select on the float32 bit patterns of |w| (for non-negative floats the int32 view orders
    as the values do): pass 1 counts the high 16 bits, pass 2 the low 16 bits inside the bin that holds the k-th
    largest, which gives the threshold ``t`` and how many of the values equal to ``t`` are kept; the scoring pass
    then keeps every |w| > t and the first of those equal to t in flat order.
    """

    def __init__(self, numel: int, keep: float) -> None:
        self.k = int(round(keep * numel))
        self.numel = numel
        self.hi = torch.zeros(1 << 15, dtype=torch.int64)
        self.lo = torch.zeros(1 << 16, dtype=torch.int64)
        self.bin = -1
        self.need = 0
        self.t_bits = 0
        self.ties = 0  # how many values equal to t to keep
        self.seen = 0  # values equal to t met so far in the scoring pass

    @staticmethod
    def bits(mat: torch.Tensor) -> torch.Tensor:
        return mat.abs().contiguous().view(torch.int32).flatten()

    @staticmethod
    def _find(counts: torch.Tensor, k: int) -> tuple[int, int]:
        """(index j such that Σcounts[>j] < k <= Σcounts[>=j], k − Σcounts[>j])."""
        c = counts.flip(0).cumsum(0)
        j = int(torch.searchsorted(c, torch.tensor([k]), side="left")[0])
        idx = len(counts) - 1 - j
        return idx, k - (int(c[j]) - int(counts[idx]))

    @property
    def trivial(self) -> bool:
        return self.k == 0 or self.k == self.numel

    def see_high(self, b: torch.Tensor) -> None:
        self.hi += torch.bincount(b >> 16, minlength=1 << 15)

    def settle_high(self) -> None:
        if not self.trivial:
            self.bin, self.need = self._find(self.hi, self.k)

    def see_low(self, b: torch.Tensor) -> None:
        if not self.trivial:
            self.lo += torch.bincount(b[(b >> 16) == self.bin] & 0xFFFF, minlength=1 << 16)

    def settle_low(self) -> None:
        if not self.trivial:
            low, self.ties = self._find(self.lo, self.need)
            self.t_bits = (self.bin << 16) | low

    def mask(self, mat: torch.Tensor) -> torch.Tensor:
        if self.trivial:
            return torch.full(mat.shape, self.k == self.numel, dtype=torch.bool)
        b = self.bits(mat)
        eq = b == self.t_bits
        rank = torch.cumsum(eq, 0) + self.seen
        self.seen += int(eq.sum())
        return ((b > self.t_bits) | (eq & (rank <= self.ties))).reshape(mat.shape)


class _Blocks:
    """The mask of :func:`workbench.formats.masks.block_mask` on a weight streamed in row blocks (a multiple of the
    block height): every block's L2 norm is collected in a first pass (one float64 per bh×bw block), the blocks kept
    are chosen among all of them as ``block_mask`` does, and each row block's mask is cut from that choice."""

    def __init__(self, block: tuple[int, int], keep: float) -> None:
        self.block, self.keep = block, keep
        self.norms: list[torch.Tensor] = []
        self.kept: torch.Tensor | None = None
        self.row = 0

    def see(self, mat: torch.Tensor) -> None:
        self.norms.append(block_norms(mat, self.block))

    def settle(self) -> None:
        self.kept = unstructured_mask(torch.cat(self.norms), self.keep)
        self.norms = []

    def mask(self, mat: torch.Tensor) -> torch.Tensor:
        bh, bw = self.block
        nb = mat.shape[0] // bh
        part = self.kept[self.row:self.row + nb]
        self.row += nb
        return part.repeat_interleave(bh, 0).repeat_interleave(bw, 1)


def analyse_layer(job: LayerJob, read: Callable[[int, int], torch.Tensor],
                  check: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """The rows of one layer (see the module docstring), reading its weight through ``read(start, stop)`` (rows of
    the first dimension, any float dtype); ``check`` is called between blocks (it raises to stop)."""
    entries = [(role, parse_format(name)) for role, name in job.entries]
    shape = job.shape
    rows, cols = shape[0], math.prod(shape[1:])
    numel = rows * cols
    meta = torch.empty(shape, device="meta")
    reasons: list[str] = []
    for _, f in entries:
        r = ""
        if f.sparsity is not None:
            r = fits(meta, f.sparsity) or too_costly(meta, f.sparsity) or ""
        reasons.append(r)
    ok = [i for i in range(len(entries)) if not reasons[i]]
    # masks chosen among the whole weight, streamed: exact top-k (unstructured) and block choice (block)
    topk = {i: _TopK(numel, entries[i][1].sparsity.density) for i in ok
            if entries[i][1].sparsity is not None and entries[i][1].sparsity.kind == "unstructured"}
    blocks = {i: _Blocks(entries[i][1].sparsity.block, entries[i][1].sparsity.density) for i in ok
              if entries[i][1].sparsity is not None and entries[i][1].sparsity.kind == "block"}
    sums = {i: [0.0, 0.0, 0.0, 0.0] for i in ok}
    kept = {i: [0.0, 0.0, 0.0, 0.0] for i in ok}
    count = {i: 0 for i in ok}
    step = _block_rows(job, [entries[i][1] for i in ok]) if ok else rows

    def stream(raw: bool = False) -> Iterator[torch.Tensor]:
        for start in range(0, rows, step):
            if check is not None:
                check()
            x = read(start, min(rows, start + step))
            yield x if raw and x.dtype in (torch.float32, torch.bfloat16) else x.float()

    def accumulate(i: int, x: torch.Tensor, x_sq: float, amax: torch.Tensor) -> None:
        f = entries[i][1]
        if f.sparsity is None and f.number is not None and f.number.kind in ("int", "float"):
            # a number format alone: FormatParametrization's per-channel scale from the block's amax, shared by
            # every format, and round_number's q, fused with the sums (channel_rounding_sums)
            for k, v in enumerate((x_sq, *channel_rounding_sums(x, f.number, amax)[1:])):
                sums[i][k] += v
            return
        if i in topk or i in blocks:  # the mask comes from the whole weight; the number part as apply() does it
            mat_mask = (topk[i] if i in topk else blocks[i]).mask(to_matrix(x))
            mask = from_matrix(mat_mask, x.shape)
            xm = x * mask.to(x.dtype)
            q = FormatParametrization(parse_format(f.number.name), xm)(xm) if f.number is not None else xm
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PaddedWeightWarning)  # reported in the `padded` column
                param = FormatParametrization(f, x)  # the mask and scales apply() would put on this weight
            mask = param.mask
            with torch.no_grad():
                q = param(x)
        for k, v in enumerate(metric_sums(x, q, x_sq=x_sq)):  # ‖x‖²: once per block for every entry
            sums[i][k] += v
        if mask is not None:
            for k, v in enumerate(kept_sums(to_matrix(x).double(), to_matrix(mask))):
                kept[i][k] += v
            count[i] += int(mask.sum())

    def bad(x: torch.Tensor) -> int:
        return 0 if bool(torch.isfinite(x).all()) else int((~torch.isfinite(x)).sum())

    nonfinite = 0
    if topk or blocks:  # first pass: the high bits of |w| and the block norms
        for x in stream():
            nonfinite += bad(x)
            if nonfinite:
                continue
            mat = to_matrix(x)
            b = _TopK.bits(mat) if topk else None
            for t in topk.values():
                t.see_high(b)
            for bl in blocks.values():
                bl.see(mat)
        if not nonfinite:
            for bl in blocks.values():
                bl.settle()
            for t in topk.values():
                t.settle_high()
            if any(not t.trivial for t in topk.values()):  # second pass: the low bits inside the k-th's bin
                for x in stream():
                    b = _TopK.bits(to_matrix(x))
                    for t in topk.values():
                        t.see_low(b)
            for t in topk.values():
                t.settle_low()
    if ok and not nonfinite:  # the scoring pass
        # number formats alone read bf16 blocks as they are (the kernels decode them); anything else gets float32
        plain_only = all(entries[i][1].sparsity is None and entries[i][1].number is not None
                         and entries[i][1].number.kind in ("int", "float") for i in ok)
        for x in stream(raw=plain_only):
            x_sq, amax = block_stats(x)  # ‖x‖² and compute_scale's per-channel amax, once for every entry
            if not math.isfinite(x_sq):  # cheaper than isfinite() on every block
                nonfinite += bad(x)
                continue
            if nonfinite:
                continue
            for i in ok:
                accumulate(i, x, x_sq, amax)

    out = []
    base = {"layer": job.layer, "tensor": job.tensor, "shape": "x".join(map(str, shape)), "rows": rows, "cols": cols,
            "dtype": job.dtype, "numel": math.prod(shape)}
    for i, (role, f) in enumerate(entries):
        bpw = bits_per_weight(f, job.dtype_bits)
        scale_numel = rows if f.number is not None else 0
        row: dict[str, Any] = {
            **base, "role": role, "format": f.name, "status": "ok", "reason": "",
            "weight_sqnr_db": math.nan, "weight_nl2": math.nan, "weight_cosine": math.nan,
            "bits_per_weight": bpw,
            "bytes": math.ceil(format_size_bits(base["numel"], f, job.dtype_bits, scale_numel) / 8),
            "density": math.nan, "kept_abs": math.nan, "kept_sq": math.nan, "log10_diversity": math.nan,
            "padded": False,
        }
        if reasons[i]:
            row.update(status="skipped", reason=f"{job.layer}: {reasons[i]}")
        elif nonfinite:
            row.update(status="skipped", reason=f"{job.layer}: the weight holds {nonfinite} NaN/inf value(s); no "
                                                 "format's scale or error is defined on it")
        else:
            m = metrics_from_sums(*sums[i])
            row.update(weight_sqnr_db=m["sqnr_db"], weight_nl2=m["nl2"], weight_cosine=m["cosine"])
            sp = f.sparsity
            if sp is not None:
                kept_abs, kept_sq = kept_fractions(*kept[i])
                row.update(density=count[i] / base["numel"], kept_abs=kept_abs, kept_sq=kept_sq,
                           log10_diversity=pattern_log10_diversity(sp, (rows, cols)),
                           padded=bool(sp.kind == "transposable" and (rows % sp.m or cols % sp.m)))
        out.append(row)
    return out


def run_layer_job(job: LayerJob) -> list[dict[str, Any]]:
    """A worker's task: open ``job.file`` itself, stream the layer, return its rows (plain Python values)."""
    if job.file is None:
        raise DataError(f"layer {job.layer!r}: a worker task needs the weight's file; in-memory weights run locally")
    with _safetensors_rows(job.file, job.tensor) as read:
        return analyse_layer(job, read)


# --------------------------------------------------------------------------------------------------------------
# sources


@dataclass
class _Source:
    name: str
    spec: str
    jobs: list[LayerJob]
    readers: dict[str, Callable[[], Any]]  # layer -> context manager giving read(start, stop), local runs
    lazy: bool


def _choose(names: list[str], layers: Any, source_name: str) -> list[str]:
    if not names:
        raise LayerError(f"weight_report: {source_name} has no weight layers (floating-point tensors of 2 or more "
                         "dimensions named '<layer>.weight'; Linear / Conv layers of a model), so there is nothing "
                         "to report")
    if layers is None:
        return names
    if not isinstance(layers, str) and isinstance(layers, Sequence) and len(layers) == 0:
        raise LayerError("weight_report: layers is empty; pass None for every layer, or some of "
                         f"{names[:12]}")
    wanted = [layers] if isinstance(layers, str) else layers
    if not isinstance(wanted, Sequence) or not all(isinstance(n, str) for n in wanted):
        raise LayerError(f"weight_report: layers must be a layer name or a list of names, got "
                         f"{type(layers).__name__} {shorten(layers)}")
    missing = [n for n in wanted if n not in names]
    if missing:
        raise LayerError(f"weight_report: {source_name} has no layer {shorten(missing[0])}"
                         + (f" (nor {len(missing) - 1} more)" if len(missing) > 1 else "")
                         + f"; layers: {names[:12]}" + (f" … ({len(names)} in all)" if len(names) > 12 else ""))
    keep = set(wanted)
    return [n for n in names if n in keep]


def _entries_key(entries: list[tuple[str, Format]]) -> tuple[tuple[str, str], ...]:
    return tuple((role, f.name) for role, f in entries)


def _source(source: Any, entries: list[tuple[str, Format]], layers: Any) -> _Source:
    from torch import nn

    from workbench.models.handle import ModelHandle
    from workbench.models.lazy import DTYPES, LazyCheckpoint, open_lazy

    key = _entries_key(entries)
    if isinstance(source, (str, Path)) or hasattr(source, "__fspath__"):
        source = open_lazy(source)
    if isinstance(source, LazyCheckpoint):
        infos = {name: source.info(name) for name in source.layers["name"]}
        chosen = _choose(list(infos), layers, source.name)
        jobs = []
        for i, name in enumerate(chosen):
            t = infos[name]
            jobs.append(LayerJob(i, name, t.name, t.file, tuple(t.shape), DTYPES[t.st_dtype][0],
                                 DTYPES[t.st_dtype][1] * 8, key, CHUNK_ELEMENTS))
        readers = {j.layer: (lambda j=j: _safetensors_rows(j.file, j.tensor)) for j in jobs}
        return _Source(source.name, str(source.spec), jobs, readers, True)
    if isinstance(source, ModelHandle) or isinstance(source, nn.Module):
        from workbench.formats import eligible_layers, original_weight

        model = source.model if isinstance(source, ModelHandle) else source
        name = source.name if isinstance(source, ModelHandle) else type(source).__name__
        mods = eligible_layers(model)
        chosen = _choose(list(mods), layers, name)
        jobs, readers = [], {}
        for i, lname in enumerate(chosen):
            w = original_weight(mods[lname])
            jobs.append(LayerJob(i, lname, f"{lname}.weight", None, tuple(w.shape),
                                 str(w.dtype).removeprefix("torch."), w.element_size() * 8, key, CHUNK_ELEMENTS))

            @contextmanager
            def reader(w: torch.Tensor = w) -> Iterator[Callable[[int, int], torch.Tensor]]:
                yield lambda a, b: w[a:b].detach()

            readers[lname] = reader
        spec = source.spec if isinstance(source, ModelHandle) else name
        return _Source(name, str(spec), jobs, readers, False)
    raise ModelSpecError(f"weight_report: source must be a LazyCheckpoint (load_model('safetensors:PATH', lazy=True)),"
                         f" a safetensors path, or a ModelHandle; got {type(source).__name__} {shorten(source)}")


# --------------------------------------------------------------------------------------------------------------
# the output file


def _meta(src: _Source, entries: list[tuple[str, Format]]) -> dict[str, Any]:
    return {"version": META_VERSION, "source": src.spec,
            "entries": [list(e) for e in _entries_key(entries)],
            "layers": [[j.layer, list(j.shape), j.dtype] for j in src.jobs]}


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLUMNS)
    for c in ("rows", "cols", "numel", "bytes"):
        df[c] = df[c].astype("int64")
    df["padded"] = df["padded"].astype(bool)
    return df


def _write(out: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from workbench.reports.files import atomic_open

    table = pa.Table.from_pandas(_frame(rows), preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()})
    with atomic_open(out, "wb") as fh:
        pq.write_table(table, fh)


def _read_existing(out: Path, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of a previous run at ``out``, checked to be this run's (same source layers, formats, patterns)."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(out)
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError ...
        raise OutputError(f"weight_report: out {str(out)!r} exists but is not a readable parquet file "
                          f"({type(e).__name__}: {shorten(str(e), 120)}); resume=True continues a weight report's "
                          "own output. Remove it or pass another out") from e
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise OutputError(f"weight_report: out {str(out)!r} is a parquet file that no weight report wrote (no "
                          f"{META_KEY.decode()} metadata); remove it or pass another out")
    old = json.loads(raw)
    for key, what in (("entries", "formats and patterns"), ("layers", "layers (names, shapes, dtypes)")):
        if old.get(key) != meta[key]:
            raise OutputError(f"weight_report: out {str(out)!r} holds a report made with other {what} than this "
                              f"run's (it has {shorten(old.get(key), 120)}, this run asks "
                              f"{shorten(meta[key], 120)}); resume with the same arguments, or pass another out")
    df = table.to_pandas()
    return df.to_dict("records")


# --------------------------------------------------------------------------------------------------------------
# the report


def _executor(executor: Any) -> tuple[cf.Executor, int]:
    if hasattr(executor, "get_executor") and hasattr(executor, "nthreads"):  # a dask.distributed.Client
        try:
            workers = sum(executor.nthreads().values())
        except Exception:  # noqa: BLE001 - a closed client answers later, with its own error
            workers = 2
        return executor.get_executor(), max(1, workers)
    if isinstance(executor, cf.Executor):
        return executor, max(1, int(getattr(executor, "_max_workers", 2) or 2))
    raise DataError(f"weight_report: executor must be a dask.distributed.Client or a concurrent.futures.Executor, "
                    f"got {type(executor).__name__} {shorten(executor)}")


def weight_report(
    source: Any,
    formats: Sequence[str] | str | None = DEFAULT_FORMATS,
    patterns: Sequence[str] | str | None = DEFAULT_PATTERNS,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    executor: Any = None,
    progress: bool = True,
    stop: Any = None,
    layers: Sequence[str] | str | None = None,
) -> pd.DataFrame:
    """Per layer × format/pattern: weight SQNR (and NL2, cosine), size, kept magnitude and mask diversity; one row
    each, columns :data:`COLUMNS` (see the module docstring), layers in the source's order.

    ``source``: a :class:`~workbench.models.lazy.LazyCheckpoint`, a safetensors path (opened lazily) or a
    :class:`~workbench.models.ModelHandle` (its eligible layers' weights; the reference). ``formats`` and
    ``patterns``: names of the format grammar (patterns: sparsity only). ``out``: a parquet file written after every
    layer (atomically); ``resume=True`` continues it. ``executor``: a ``dask.distributed.Client`` or a
    ``concurrent.futures.Executor`` running one task per layer (lazy sources only). ``stop``: None, a callable or an
    event, polled between layers and blocks; a stopped run returns the finished layers (``attrs["complete"]`` is
    False; with ``out`` they are saved, and ``resume=True`` picks up from there). ``layers``: names to keep.

    Raises, before any work and writing nothing: :class:`FormatError` (a malformed name, a pattern with a number
    format, a format needing the model), :class:`LayerError`, :class:`ModelSpecError` (a source that is not a
    safetensors file or directory, a corrupt one), :class:`DTypeError`, :class:`OutputError` (``out`` exists and
    ``resume`` is false, or holds another report), :class:`DataError` (a bad ``stop`` or ``executor``;
    :class:`~workbench.errors.OptionError` for a ``resume`` or ``progress`` that is not a bool).
    """
    from workbench.checks import option

    option("resume", resume, (False, True), where="weight_report")
    option("progress", progress, (True, False), where="weight_report")
    should_stop = stop_callable(stop)
    entries = parse_entries(formats, patterns)
    src = _source(source, entries, layers)
    pool = _executor(executor) if executor is not None else None
    if pool is not None and not src.lazy:
        raise DataError("weight_report: executor= runs layers on workers that open the safetensors file themselves; "
                        f"{src.name!r} is an in-memory model. Pass a lazy handle or a safetensors path, or no "
                        "executor")
    meta = _meta(src, entries)
    path = None
    if out is not None:
        path = _out_path(out, resume)
    if path is None:
        return _run(src, entries, [], None, meta, pool, progress, should_stop)
    from workbench.reports.files import output_lock

    with output_lock(path.parent, path.name, what="weight report"):
        done = _read_existing(path, meta) if path.exists() else []
        return _run(src, entries, done, path, meta, pool, progress, should_stop)


def _out_path(out: Any, resume: bool) -> Path:
    from workbench.reports.files import prepare_output_dir

    if not isinstance(out, (str, Path)) or not str(out).strip():
        raise OutputError(f"weight_report: out must be a path to a .parquet file, got {type(out).__name__} "
                          f"{shorten(out)}")
    path = Path(out).expanduser()
    if path.suffix.lower() != ".parquet":
        raise OutputError(f"weight_report: out {str(out)!r} must end in .parquet (the report is one parquet file)")
    if path.is_dir():
        raise OutputError(f"weight_report: out {str(out)!r} is a folder; give a .parquet file path")
    if path.exists() and not resume:
        raise OutputError(f"weight_report: out {str(out)!r} exists; pass resume=True to continue it (finished "
                          "layers are kept), or remove it / pass another out to start again")
    parent = prepare_output_dir(path.parent if str(path.parent) else ".", option="weight_report: out's folder")
    return parent / path.name


def _run(src: _Source, entries: list[tuple[str, Format]], done: list[dict[str, Any]], path: Path | None,
         meta: dict[str, Any], pool: tuple[cf.Executor, int] | None, progress: bool,
         should_stop: Callable[[], bool]) -> pd.DataFrame:
    finished = {r["layer"] for r in done}
    by_layer: dict[str, list[dict[str, Any]]] = {}
    for r in done:
        by_layer.setdefault(r["layer"], []).append(r)
    todo = [j for j in src.jobs if j.layer not in finished]
    stopped = False

    def rows_in_order() -> list[dict[str, Any]]:
        return [r for j in src.jobs for r in by_layer.get(j.layer, [])]

    def finish(job: LayerJob, rows: list[dict[str, Any]]) -> None:
        by_layer[job.layer] = rows
        if path is not None:
            _write(path, rows_in_order(), meta)

    def check() -> None:
        if should_stop():
            raise _Stopped

    bar = progress_bar(total=len(src.jobs), initial=len(src.jobs) - len(todo), desc=f"weight report {src.name}",
                       unit="layer", disable=not progress)
    try:
        if pool is None:
            for job in todo:
                if should_stop():
                    stopped = True
                    break
                try:
                    with src.readers[job.layer]() as read:
                        rows = analyse_layer(job, read, check)
                except _Stopped:
                    stopped = True
                    break
                finish(job, rows)
                bar.update(1)
        else:
            stopped = _run_pool(pool, todo, finish, bar, should_stop)
    finally:
        bar.close()
    df = _frame(rows_in_order())
    df.attrs.update(source=src.spec, complete=not stopped and len(by_layer) == len(src.jobs),
                    layers_done=len(by_layer), layers_total=len(src.jobs))
    return df


def _run_pool(pool: tuple[cf.Executor, int], todo: list[LayerJob], finish: Callable[[LayerJob, list], None],
              bar: Any, should_stop: Callable[[], bool]) -> bool:
    """Submit ``todo`` a window ahead, take results in layer order; True when stopped."""
    executor, workers = pool
    window = 2 * workers
    pending: dict[int, cf.Future] = {}
    nxt = 0
    try:
        for k, job in enumerate(todo):
            while nxt < len(todo) and nxt < k + window:
                pending[nxt] = executor.submit(run_layer_job, todo[nxt])
                nxt += 1
            fut = pending.pop(k)
            while True:
                if should_stop():
                    return True
                try:
                    rows = fut.result(timeout=0.2)
                    break
                except cf.TimeoutError:
                    continue
            finish(job, rows)
            bar.update(1)
        return False
    finally:
        for f in pending.values():
            f.cancel()


__all__ = ["COLUMNS", "DEFAULT_FORMATS", "DEFAULT_PATTERNS", "CHUNK_ELEMENTS", "LayerJob", "MODEL_ONLY",
           "analyse_layer", "check_lazy_format", "parse_entries", "run_layer_job", "weight_report"]
