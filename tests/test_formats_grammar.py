"""One format grammar: the sparsity lab's pattern names (solver method, unstructured density) are format names of
the registry grammar, and apply takes them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench.errors import FormatError
from workbench.formats import Sparsity, apply, bits_per_weight, parse_format, quantize, restore
from workbench.formats.masks import transposable_mask, unstructured_mask
from workbench.sparsity import parse_pattern, pattern_mask


@pytest.mark.parametrize("name,canonical", [
    ("2:4-t", "2:4-T"), ("4:8-T greedy", "4:8-T greedy"), ("4:8-t GREEDY", "4:8-T greedy"),
    ("4:8-T optimal", "4:8-T"), (" 2 : 4 ", "2:4"), ("unstructured 50%", "unstructured 50%"),
    ("unstructured:0.5", "unstructured 50%"), ("Unstructured 12.5%", "unstructured 12.5%"),
    ("unstructured 50%+int8", "unstructured 50%+int8"), ("fp8_e4m3+4:8-T greedy", "4:8-T greedy+fp8_e4m3"),
    ("int08", "int8"),
])
def test_spellings_parse_to_one_canonical_name(name: str, canonical: str) -> None:
    f = parse_format(name)
    assert f.name == canonical and parse_format(canonical) == f


def test_pattern_parse_is_the_format_parse() -> None:
    for name in ["2:4", "4:8-T", "4:8-T greedy", "unstructured 25%", "unstructured:0.5"]:
        assert parse_pattern(name) == parse_format(name).sparsity
    assert parse_pattern("dense") is None
    g = parse_format("4:8-T greedy").sparsity
    assert (g.kind, g.n, g.m, g.method, g.density) == ("transposable", 4, 8, "greedy", 0.5)
    u = parse_format("unstructured 25%").sparsity
    assert (u.kind, u.n, u.m, u.density) == ("unstructured", None, None, 0.25)
    with pytest.raises(FormatError, match="number format"):
        parse_pattern("2:4+int8")


@pytest.mark.parametrize("kwargs", [dict(n=2, m=4, method="greedy"), dict(n=2, m=4, transposable=True, method="x"),
                                    dict(keep=0.0), dict(keep=1.5), dict(keep=0.5, n=2, m=4), dict(n=2.0, m=4),
                                    dict(n=True, m=4), dict(keep=float("nan"))])
def test_sparsity_dataclass_checks_itself(kwargs) -> None:
    with pytest.raises(FormatError):
        Sparsity(**kwargs)


def test_apply_takes_unstructured_and_greedy_and_matches_the_solvers() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 8))
    w0 = model[0].weight.detach().clone()
    apply(model, "unstructured 25%")
    kept = model[0].weight != 0
    assert int(kept.sum()) == 32 and torch.equal(kept, unstructured_mask(w0, 0.25))
    # the kept entries are the 32 largest |w| of the whole layer
    assert w0.abs()[kept].min() >= w0.abs()[~kept].max()
    apply(model, "2:4-T greedy")
    assert torch.equal(model[0].weight != 0, transposable_mask(w0, 2, 4, "greedy"))
    assert torch.equal(model[0].weight, quantize(w0, "2:4-T greedy"))
    restore(model)
    assert torch.equal(model[0].weight, w0)


def test_pattern_mask_uses_the_same_solvers() -> None:
    w = torch.randn(8, 16, generator=torch.Generator().manual_seed(3))
    for name in ["2:4", "4:8-T", "2:4-T greedy", "unstructured 50%"]:
        mask, _ = pattern_mask(w, name)
        assert torch.equal(w * mask, quantize(w, name))


def test_bits_per_weight_of_unstructured_counts_a_bitmap() -> None:
    assert bits_per_weight("unstructured 50%", 16) == pytest.approx(0.5 * 16 + 1)
    assert bits_per_weight("unstructured 25%+int8") == pytest.approx(0.25 * 8 + 1)
