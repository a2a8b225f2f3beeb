"""The structures a sparse model is trained under, named in the one format grammar, and their masks.

A structure is the sparsity part of a format name (:mod:`workbench.formats.spec`): ``"2:4"``, ``"4:8"``,
``"2:4-T"`` (N:M along the input dimension, transposable N:M per M×M tile), ``"unstructured 10%"`` (keep 10 %),
``"block4x4@80%"`` (4×4 blocks of largest L2 norm at 80 % sparsity; Narang et al. 2017). For the kinds whose
sparsity is free, the bare kind plus ``sparsity=`` also works: ``("unstructured", 0.9)``, ``("block8x8", 0.8)``.

Masks come from the formats' own solvers (:func:`workbench.formats.masks.weight_mask`), so a model trained here
carries exactly the masks that ``workbench.apply(model, structure)`` would compute on its weights.
"""

from __future__ import annotations

import dataclasses
import re

import torch
from torch import nn

from workbench.checks import number
from workbench.errors import FormatError, LayerError, ShapeError, shorten
from workbench.formats import Sparsity, eligible_layers, parse_format, to_matrix
from workbench.formats.masks import fits, is_nm, is_transposable, too_costly, weight_mask

STRUCTURE_EXAMPLES = ("2:4", "4:8", "2:4-T", "unstructured 10%", "block4x4@80%", "block8x8@80%", "block16x16@80%")
_BARE_BLOCK = re.compile(r"\s*(?i:block)\s*([0-9]{1,4})\s*[xX]\s*([0-9]{1,4})\s*")


def parse_structure(structure: object, sparsity: float | None = None, where: str = "train_sparse") -> Sparsity:
    """The :class:`~workbench.formats.Sparsity` of a structure name; ``sparsity`` (fraction of zeros, in [0, 1))
    completes a bare ``"unstructured"`` or ``"blockHxW"``.

    >>> parse_structure("block4x4", 0.8).name, parse_structure("unstructured", 0.9).name
    ('block4x4@80%', 'unstructured 10%')
    """
    if sparsity is not None:
        sparsity = number("sparsity", sparsity, low=0, high=1, high_open=True, where=where)
    if not isinstance(structure, str):
        raise FormatError(f"{where}: structure must be a name such as {', '.join(map(repr, STRUCTURE_EXAMPLES))}, "
                          f"got {type(structure).__name__}: {shorten(structure)}")
    text = structure.strip()
    bare_block = _BARE_BLOCK.fullmatch(text)
    if text.lower() == "unstructured" or bare_block:
        if sparsity is None:
            raise FormatError(f"{where}: structure {text!r} needs its sparsity: pass sparsity= (a fraction in [0, 1)) "
                              f"or name it, e.g. {'unstructured 10%' if not bare_block else text + '@80%'!r}")
        if sparsity == 0 and not bare_block:
            return Sparsity(keep=1.0)
        if bare_block:
            return Sparsity(keep=1.0 - sparsity, block=(int(bare_block.group(1)), int(bare_block.group(2))))
        return Sparsity(keep=1.0 - sparsity)
    f = parse_format(text)
    if f.number is not None or f.sparsity is None:
        raise FormatError(f"{where}: structure must be a sparsity pattern (no number format, not dense), got "
                          f"{shorten(text)}; e.g. {', '.join(map(repr, STRUCTURE_EXAMPLES))}")
    if sparsity is not None:
        raise FormatError(f"{where}: structure {f.sparsity.name!r} already fixes its sparsity "
                          f"({1 - f.sparsity.density:.4g}); drop sparsity={sparsity!r} or pass a bare "
                          "'unstructured' / 'blockHxW'")
    return f.sparsity


def at_fraction(sp: Sparsity, fraction: float) -> Sparsity | None:
    """The structure ``fraction`` (0..1) of the way from dense to ``sp``: the pruning schedule's intermediate
    structures. Unstructured and block: sparsity ``fraction · target``; N:M: N goes from M down to the target N
    (``round``). None means dense."""
    fraction = min(max(float(fraction), 0.0), 1.0)
    if sp.kind in ("unstructured", "block"):
        keep = 1.0 - fraction * (1.0 - sp.density)
        return None if keep >= 1.0 else dataclasses.replace(sp, keep=keep)
    n = sp.m - int(round(fraction * (sp.m - sp.n)))
    return None if n >= sp.m else dataclasses.replace(sp, n=n)


def structure_mask(w: torch.Tensor, sp: Sparsity | None) -> torch.Tensor:
    """Boolean mask of ``w``'s shape by magnitude (the formats' solver); all ones for None (dense)."""
    if sp is None:
        return torch.ones_like(w, dtype=torch.bool)
    return weight_mask(w, sp)


def satisfies(mask: torch.Tensor, sp: Sparsity) -> bool:
    """True when a mask obeys the structure: N:M groups hold at most N, transposable tiles at most N per row and
    column, block masks are constant on every block and keep ``round(keep · #blocks)`` blocks, unstructured
    masks keep ``round(keep · numel)`` entries."""
    mat = to_matrix(mask)
    if sp.kind == "nm":
        return is_nm(mat, sp.n, sp.m)
    if sp.kind == "transposable":
        r, c = mat.shape
        pad = torch.nn.functional.pad(mat.float(), (0, (-c) % sp.m, 0, (-r) % sp.m))
        return is_transposable(pad, sp.n, sp.m)
    if sp.kind == "unstructured":
        return int(mat.sum()) == int(round(sp.density * mat.numel()))
    bh, bw = sp.block
    r, c = mat.shape
    blocks = mat.reshape(r // bh, bh, c // bw, bw).float()
    per_block = blocks.mean(dim=(1, 3))
    whole = bool(((per_block == 0) | (per_block == 1)).all())
    return whole and int(per_block.sum()) == int(round(sp.density * per_block.numel()))


def sparse_layers(model: nn.Module, sp: Sparsity, layers: object = None, where: str = "train_sparse") -> list[str]:
    """The layers to train sparse: ``layers=None`` takes every eligible layer (``nn.Linear``, and convolutions)
    except the last one (the classifier stays dense, as in Narang et al. 2017 and most sparse-training work) that
    the structure fits; named layers must each fit (a ShapeError says why not, e.g. the padding a block needs)."""
    eligible = eligible_layers(model)
    if not eligible:
        rnn = [type(m).__name__ for m in model.modules() if isinstance(m, nn.RNNBase)]
        hint = (f" ({', '.join(sorted(set(rnn)))} keeps its weights in fused parameters: build the cell from "
                "nn.Linear layers, as workbench.models.zoo.LinearGRUCell does)") if rnn else ""
        raise LayerError(f"{where}: {type(model).__name__} has no recurrent or linear layer that can take a mask "
                         f"(an nn.Linear or a convolution){hint}")
    if layers is None:
        names = list(eligible)[:-1] if len(eligible) > 1 else list(eligible)
        chosen, reasons = [], []
        for name in names:
            why = _why_not(name, eligible[name], sp)
            (reasons if why else chosen).append(why or name)
        if not chosen:
            raise ShapeError(f"{where}: structure {sp.name!r} fits none of the layers {names}: " + "; ".join(reasons))
        return chosen
    if isinstance(layers, str):
        layers = [layers]
    try:
        names = [str(n) for n in layers]  # type: ignore[union-attr]
    except TypeError:
        raise LayerError(f"{where}: layers must be None, a layer name or a list of names, got {shorten(layers)}") from None
    missing = [n for n in names if n not in eligible]
    if missing or not names:
        raise LayerError(f"{where}: layers {missing or names} are not eligible layers of {type(model).__name__}; "
                         f"eligible: {list(eligible)}")
    for name in names:
        why = _why_not(name, eligible[name], sp)
        if why:
            raise ShapeError(f"{where}: {why}")
    return names


def _why_not(name: str, mod: nn.Module, sp: Sparsity) -> str | None:
    w = mod.weight
    reason = fits(w, sp) or too_costly(w, sp)
    return f"layer {name!r}: {reason}" if reason else None


__all__ = ["STRUCTURE_EXAMPLES", "parse_structure", "at_fraction", "structure_mask", "satisfies", "sparse_layers"]
