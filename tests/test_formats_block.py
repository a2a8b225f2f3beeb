"""Block formats ("blockHxW@S%"): the largest-L2 blocks, their number, brute force, bit-exact round trips, errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

import workbench as wb
from workbench.errors import FormatError, ShapeError
from workbench.formats import block_mask, parse_format
from workbench.formats.masks import weight_mask
from workbench.sparsity.patterns import pattern_log10_diversity


def _brute_force(w: torch.Tensor, block: tuple[int, int], kept: int) -> torch.Tensor:
    """Try every choice of ``kept`` blocks; return the mask with the largest kept Σw² (in float64)."""
    bh, bw = block
    r, c = w.shape
    cells = [(i, j) for i in range(r // bh) for j in range(c // bw)]
    best, best_mask = -1.0, None
    for choice in itertools.combinations(cells, kept):
        mask = torch.zeros(r, c, dtype=torch.bool)
        for i, j in choice:
            mask[i * bh:(i + 1) * bh, j * bw:(j + 1) * bw] = True
        score = float((w.double() * mask).pow(2).sum())
        if score > best:
            best, best_mask = score, mask
    return best_mask


@pytest.mark.parametrize("shape,block,sparsity", [((4, 6), (2, 2), 0.5), ((6, 4), (3, 2), 0.75), ((4, 8), (2, 4), 0.25),
                                                  ((8, 8), (4, 4), 0.5)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_block_mask_keeps_the_largest_norm_blocks_by_brute_force(shape, block, sparsity, seed) -> None:
    w = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    nblocks = (shape[0] // block[0]) * (shape[1] // block[1])
    kept = round((1 - sparsity) * nblocks)
    mask = weight_mask(w, parse_format(f"block{block[0]}x{block[1]}@{sparsity * 100:g}%").sparsity)
    assert int(mask.sum()) == kept * block[0] * block[1]  # the right number of whole blocks
    assert torch.equal(mask, _brute_force(w, block, kept))


def test_block_mask_doc_example_and_ties() -> None:
    w = torch.ones(4, 4)
    mask = block_mask(w, (2, 2), 0.5)  # all norms tie: lower block index first
    assert mask[:2].all() and not mask[2:].any()


def test_names_parse_and_canonicalize() -> None:
    f = parse_format("Block 8x8 @ 90%")
    assert f.name == "block8x8@90%" and f.sparsity.block == (8, 8) and f.sparsity.kind == "block"
    assert math.isclose(f.sparsity.density, 0.1)
    assert "block4x4@80%" in wb.list_formats() and parse_format("block4x4@80%").name == "block4x4@80%"
    assert wb.bits_per_weight("block4x4@80%") == pytest.approx(0.2 * 32 + 1 / 16)


@pytest.mark.parametrize("bad", ["block4x4@100%", "block4x4@150%", "block4x4", "block0x4@50%", "block4x4@-5%",
                                 "block4x4@80%+2:4"])
def test_bad_block_names(bad: str) -> None:
    with pytest.raises(FormatError):
        parse_format(bad)


def test_block_not_dividing_the_weight_says_what_to_pad() -> None:
    with pytest.raises(ShapeError, match=r"pad 2 zero row\(s\) and 0 zero column\(s\)"):
        block_mask(torch.randn(6, 8), (4, 4), 0.5)
    net = nn.Sequential(nn.Linear(8, 6))
    before = net[0].weight.detach().clone()
    with pytest.raises(ShapeError, match="pad"):
        wb.apply(net, "block4x4@50%", layers=["0"])
    assert torch.equal(net[0].weight, before) and not wb.current_formats(net)


def test_block_format_round_trips_bit_exactly_and_masks_forward() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(5, 16)
    y0 = net(x)
    report = wb.apply(net, "block4x4@50%")
    assert report.set_index("layer").status.to_dict() == {"0": "applied", "2": "applied"}
    w = net[0].weight
    assert float((w == 0).float().mean()) == 0.5
    wb.restore(net)
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert torch.equal(net(x), y0)


def test_mask_diversity_of_block_format_is_binomial_of_blocks() -> None:
    # 8×8 weight, 2×2 blocks: 16 blocks, 25 % sparsity keeps 12: C(16, 12)
    assert pattern_log10_diversity("block2x2@25%", (8, 8)) == pytest.approx(math.log10(math.comb(16, 12)))
