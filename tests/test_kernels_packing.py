"""pack / unpack: exact round trip to the format's fake-quantized weight, the layouts, the byte counts, bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.errors import FormatError, NonFiniteError, ShapeError, WorkbenchError
from workbench.kernels import (
    FORMATS,
    DTypeError,
    pack,
    pack_bits,
    pack_positions,
    pack_signs,
    packed_bytes,
    unpack,
    unpack_bits,
    unpack_positions,
    unpack_signs,
)
from workbench.sparsity.masks import nm_mask

DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def _weight(out: int, k: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, k, generator=g) * torch.logspace(-3, 1, out)[:, None]
    w[0, :8] = torch.tensor([1.0, -1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])  # ties and zeros
    w[-1] = 0.0  # an all-zero row: scale 1
    return w.to(dtype)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_equals_the_format_quantize(fmt, dtype):
    from workbench.formats import quantize

    for seed, (out, k) in enumerate([(5, 8), (7, 44), (3, 96)]):
        w = _weight(out, k, dtype, seed)
        q = unpack(pack(w, fmt))
        ref = quantize(w, fmt, granularity="channel")
        assert q.dtype == dtype and q.shape == w.shape
        assert torch.equal(q, ref), f"{fmt} {dtype} {tuple(w.shape)}: max diff {(q.float() - ref.float()).abs().max()}"


@pytest.mark.parametrize("fmt", ["2:4", "2:4+fp8_e4m3"])
def test_24_keeps_what_nm_mask_keeps(fmt):
    w = _weight(6, 40, torch.float32, 3)
    q = unpack(pack(w, fmt))
    mask = nm_mask(w, 2, 4)
    assert torch.equal(q[~mask], torch.zeros_like(q[~mask]))
    if fmt == "2:4":
        assert torch.equal(q[mask], w[mask])
    # ties go to the lower index: [1, -1, 1, 1] keeps positions 0 and 1
    assert pack(w, fmt).positions[0, 0].item() & 0xF == 0b0100


def test_24_layout_by_hand():
    w = torch.tensor([[1.0, -4.0, 3.0, 2.0, 0.5, 0.0, -0.25, 8.0]])
    p = pack(w, "2:4")
    assert p.values.tolist() == [[-4.0, 3.0, 0.5, 8.0]]
    # positions 1, 2 | 0, 3 at 2 bits each
    assert p.positions.tolist() == [[1 | 2 << 2 | 0 << 4 | 3 << 6]]


def test_fp8_layout_scale_is_amax_over_448():
    w = torch.tensor([[448.0 * 2, -3.0, 0.0], [0.0, 0.0, 0.0], [0.1, -0.2, 0.05]])
    p = pack(w, "fp8_e4m3")
    assert p.values.dtype == torch.float8_e4m3fn
    assert torch.equal(p.scale, torch.tensor([2.0, 1.0, 0.2 / 448]))
    assert torch.equal(p.values.float(), (w / p.scale[:, None]).to(torch.float8_e4m3fn).float())


def test_binary_layout_signs_and_scale():
    w = torch.zeros(2, 40)
    w[0, 0], w[0, 33], w[0, 5] = -1.0, -2.0, 3.0
    w[1] = -0.5
    p = pack(w, "binary")
    assert p.values.shape == (2, 2) and p.values.dtype == torch.int32
    bits0 = unpack_bits(p.values, 40)[0]
    assert not bits0[0] and not bits0[33] and bits0[5] and bits0[1]  # sign(0) = +1
    assert (p.values[1] == 0).all()  # all negative: no bits, padding bits 0
    assert torch.allclose(p.scale, torch.tensor([6.0 / 40, 0.5]))


@pytest.mark.parametrize("fmt,ratio", [("2:4", 0.5625), ("fp8_e4m3", 0.5), ("2:4+fp8_e4m3", 0.3125), ("binary", 0.0625)])
def test_bytes_match_the_bandwidth_floor_ratios(fmt, ratio):
    n = k = 4096
    assert packed_bytes(fmt, (n, k)) / (n * k * 2) == pytest.approx(ratio, abs=1e-3)
    p = pack(torch.randn(64, 256, dtype=torch.bfloat16), fmt)
    assert p.nbytes == packed_bytes(fmt, (64, 256))


def test_packed_weight_moves_between_devices_and_keeps_its_layout():
    p = pack(torch.randn(4, 32), "2:4+fp8_e4m3")
    q = p.to("cpu")
    assert q is not p and torch.equal(unpack(q), unpack(p)) and "2:4+fp8_e4m3" in repr(q)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(1, 100), st.integers(0, 2**31))
def test_bit_helpers_round_trip(rows, k, seed):
    g = torch.Generator().manual_seed(seed)
    flags = torch.rand(rows, k, generator=g) < 0.5
    words = pack_bits(flags)
    assert words.shape == (rows, -(-k // 32)) and words.dtype == torch.int32
    assert torch.equal(unpack_bits(words, k), flags)
    x = torch.randn(rows, k, generator=g)
    assert torch.equal(unpack_signs(pack_signs(x), k), torch.where(x >= 0, 1.0, -1.0))
    pos = torch.randint(0, 4, (rows, k), generator=g)
    assert torch.equal(unpack_positions(pack_positions(pos), k), pos)


def test_bit_31_is_the_sign_bit_of_the_word():
    flags = torch.zeros(32, dtype=torch.bool)
    flags[31] = True
    assert pack_bits(flags).item() == -(2**31)


@pytest.mark.parametrize(
    "weight,fmt,err,words",
    [
        (torch.randn(4, 6), "2:4", ShapeError, "multiple of 4"),
        (torch.randn(4, 8, 2), "fp8_e4m3", ShapeError, "2-D"),
        (torch.randint(0, 3, (4, 8)), "binary", DTypeError, "int64"),
        (torch.randn(4, 8, dtype=torch.float64), "fp8_e4m3", DTypeError, "float64"),
        (torch.randn(4, 8), "int4", FormatError, "int4"),
        (torch.tensor([[1.0, float("nan"), 0.0, 1.0]]), "2:4", NonFiniteError, "NaN"),
    ],
)
def test_bad_weights_raise_clear_errors(weight, fmt, err, words):
    with pytest.raises(err, match=words) as info:
        pack(weight, fmt)
    assert isinstance(info.value, WorkbenchError)
    assert fmt in str(info.value)


def test_tampered_packed_weight_is_refused():
    p = pack(torch.randn(4, 8), "2:4")
    p.fmt = "fp8_e4m3"  # values of a 2:4 weight read as fp8: wrong shape and dtype
    with pytest.raises(FormatError, match="another format"):
        unpack(p)
    with pytest.raises(FormatError, match="PackedWeight"):
        unpack(torch.randn(4, 8))


def test_bit_helper_errors():
    with pytest.raises(DTypeError):
        pack_bits(torch.ones(3))
    with pytest.raises(ShapeError, match="words"):
        unpack_bits(torch.zeros(2, 3, dtype=torch.int32), 32)
    with pytest.raises(ShapeError, match="0..3"):
        pack_positions(torch.tensor([4]))


def test_24_positions_increase_within_each_group():
    # the kernel relies on it: column 0 can only hold the first kept value, column 3 only the second
    w = torch.randn(16, 256)
    w[:, ::4] = 0.0  # many ties and zeros
    pos = unpack_positions(pack(w, "2:4").positions, 128).reshape(16, 64, 2)
    assert (pos[..., 0] < pos[..., 1]).all()
