"""APS, BlurPool and the digits CNN variants: exact shift invariance against brute force, references, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workbench.data import digits_split
from workbench.errors import DataError, LayerError, ShapeError, WorkbenchError
from workbench.geometry import (
    APSDownsample,
    BlurPool,
    Subsample,
    binomial_filter,
    check_input_size,
    find_breaking_shift,
    flops_per_image,
    make_digits_cnn,
    polyphase_components,
    receptive_field,
    swap_downsampling,
    total_stride,
)


@pytest.fixture(scope="module")
def digits32():
    s = digits_split(size=32)
    return s.x_test, s.y_test


def all_circular_shifts(image: torch.Tensor) -> torch.Tensor:
    """Every circular shift of one image (1, H, W) as a batch (H·W, 1, H, W), shift (dx, dy) at index dy·W + dx."""
    h, w = image.shape[-2:]
    return torch.stack([torch.roll(image, (dy, dx), (1, 2)) for dy in range(h) for dx in range(w)])


def assert_invariant(model: nn.Module, images: torch.Tensor) -> None:
    model.eval()
    with torch.no_grad():
        for image in images:
            out = model(all_circular_shifts(image))
            ref = out[0].expand_as(out)
            assert torch.equal(out.argmax(1), ref.argmax(1))  # the class, bit for bit
            torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)  # floats, up to summation order


def test_polyphase_components_are_strided_slices():
    x = torch.randn(2, 3, 6, 8)
    comps = polyphase_components(x, 2)
    for i in range(2):
        for j in range(2):
            assert torch.equal(comps[:, 2 * i + j], x[:, :, i::2, j::2])


@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_aps_layer_picks_the_largest_component_and_is_equivariant(norm):
    torch.manual_seed(0)
    x = torch.randn(4, 3, 8, 8)
    aps = APSDownsample(2, norm=norm)
    y = aps(x)
    comps = polyphase_components(x, 2).flatten(2)
    score = comps.square().sum(-1) if norm == "l2" else comps.abs().sum(-1)
    for b in range(4):  # brute force: the component of largest norm
        k = int(score[b].argmax())
        assert torch.equal(y[b], x[b, :, k // 2::2, k % 2::2])
    for dy in range(8):
        for dx in range(8):
            ys = aps(torch.roll(x, (dy, dx), (2, 3)))
            for b in range(4):  # the output is a circular shift of the unshifted output
                assert any(torch.equal(torch.roll(y[b], (a, c), (1, 2)), ys[b]) for a in range(4) for c in range(4))


def test_random_aps_network_is_exactly_invariant_to_every_circular_shift(digits32):
    model = make_digits_cnn("aps", size=32, seed=3)
    assert_invariant(model, digits32[0][:1])


def test_trained_aps_model_is_exactly_invariant_to_every_circular_shift(digits32):
    import workbench

    h = workbench.load_model("digits32-cnn-aps")
    assert_invariant(h.model, digits32[0][:2])


def test_trained_max_model_has_a_shift_that_changes_the_class(digits32):
    import workbench

    found = find_breaking_shift(workbench.load_model("digits32-cnn-max").model, digits32[0][:40])
    assert found is not None
    i, dx, dy = found
    assert (dx, dy) != (0, 0) and (dx % 8, dy % 8) != (0, 0)  # multiples of the total stride 8 cannot break it
    # and the class really changes under that shift
    import torch as t

    from workbench.geometry import shift_images

    m = workbench.load_model("digits32-cnn-max").model
    with t.no_grad():
        x = digits32[0][i:i + 1]
        assert int(m(x).argmax()) != int(m(shift_images(x, dx, dy)).argmax())


def test_trained_blur_model_is_only_approximately_invariant(digits32):
    import workbench

    m = workbench.load_model("digits32-cnn-blur").model
    x = digits32[0][:8]
    with torch.no_grad():
        p0 = torch.softmax(m(x), 1)
        p1 = torch.softmax(m(torch.roll(x, (1, 1), (2, 3))), 1)
    assert float((p1 - p0).abs().max()) > 1e-4  # the probabilities move under a one-pixel shift


@pytest.mark.parametrize("pool", ["max", "stride"])
def test_random_max_and_stride_networks_are_not_invariant(pool, digits32):
    model = make_digits_cnn(pool, size=32, seed=1)
    model.eval()
    with torch.no_grad():  # the logits change under some circular shift (exact invariance fails)
        x = digits32[0][:4]
        base = model(x)
        diffs = [float((model(torch.roll(x, (dy, dx), (2, 3))) - base).abs().max())
                 for dx, dy in [(1, 0), (0, 1), (1, 1), (3, 5)]]
    assert max(diffs) > 1e-3


def reference_blurpool(x: np.ndarray, size: int, stride: int, mode: str) -> np.ndarray:
    """float64 low-pass by explicit sums over the padded image, then every stride-th pixel."""
    from math import comb

    row = np.array([comb(size - 1, k) for k in range(size)], dtype=np.float64)
    f = np.outer(row, row) / np.outer(row, row).sum()
    lo, hi = (size - 1) // 2, size // 2
    pad_mode = {"circular": "wrap", "reflect": "reflect", "replicate": "edge", "zeros": "constant"}[mode]
    xp = np.pad(x, ((0, 0), (0, 0), (lo, hi), (lo, hi)), mode=pad_mode)
    n, c, h, w = x.shape
    out = np.zeros_like(x, dtype=np.float64)
    for u in range(size):
        for v in range(size):
            out += f[u, v] * xp[:, :, u:u + h, v:v + w]
    return out[:, :, ::stride, ::stride]


@pytest.mark.parametrize("size,stride,mode", [(3, 2, "circular"), (3, 2, "reflect"), (4, 2, "replicate"),
                                              (2, 3, "zeros"), (5, 2, "circular"), (1, 2, "circular")])
def test_blurpool_equals_low_pass_then_subsample(size, stride, mode):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    got = BlurPool(3, stride=stride, filter_size=size, pad_mode=mode).double()(x)
    want = reference_blurpool(x.numpy(), size, stride, mode)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


def test_binomial_filter_values():
    torch.testing.assert_close(binomial_filter(3), torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]],
                                                                dtype=torch.float64) / 16)
    assert float(binomial_filter(5).sum()) == pytest.approx(1.0)


def test_structure_flops_and_receptive_field():
    m = make_digits_cnn("max", size=32)
    assert total_stride(m) == 8
    # conv 3 (+2) · pool 2 (+1) · conv (+2·2) · pool (+2) · conv (+2·4) · pool (+4) = 1 + 2+1+4+2+8+4
    assert receptive_field(m) == 22
    expected = 2 * (32 * 32 * 8 * 9 + 16 * 16 * 16 * 72 + 8 * 8 * 32 * 144 + 32 * 10)
    assert flops_per_image(m, 32) == expected
    blur = make_digits_cnn("blur", size=32)
    assert flops_per_image(blur, 32) == expected + 2 * 9 * (16 * 16 * 8 + 8 * 8 * 16 + 4 * 4 * 32)


def test_swap_to_stride_keeps_the_function_and_to_aps_makes_it_invariant(digits32):
    m = make_digits_cnn("max", size=32, seed=0).eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = digits32[0][:8]
    with torch.no_grad():
        # the same function: max pool (k=2, s=2) = stride-1 max pool then every 2nd pixel (a non-contiguous slice
        # may send the next convolution down another kernel: equal up to summation order)
        torch.testing.assert_close(swap_downsampling(m, "stride").eval()(x), m(x), rtol=1e-5, atol=1e-6)
    aps = swap_downsampling(m, "aps")
    assert sum(isinstance(mod, APSDownsample) for mod in aps.modules()) == 3
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # the original is untouched
    assert not any(isinstance(mod, APSDownsample) for mod in m.modules())
    assert_invariant(aps, x[:1])


def test_swap_on_digits_cnn_and_strided_conv():
    import workbench

    h = workbench.load_model("digits-cnn")
    new = swap_downsampling(h.model, "blur")
    assert h.model.conv1.padding_mode == "zeros" and new.conv1.padding_mode == "circular"
    assert new(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU())
    swapped = swap_downsampling(net, "aps")
    assert isinstance(swapped[0][1], APSDownsample) and swapped[0][0].stride == (1, 1)
    assert net[0].stride == (2, 2)


def test_bad_inputs_raise_clear_errors():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(DataError, match="stride"):
            APSDownsample(bad)
        with pytest.raises(DataError, match="stride"):
            BlurPool(stride=bad)
    with pytest.raises(DataError, match="stride"):
        Subsample(0)
    with pytest.raises(DataError, match="norm"):
        APSDownsample(2, norm="l3")
    with pytest.raises(ShapeError, match=r"not divisible by the stride 2; pad the input to 34×32"):
        APSDownsample(2)(torch.zeros(1, 1, 33, 32))
    with pytest.raises(ShapeError, match="at least 8×8"):
        check_input_size(make_digits_cnn("max"), 4)
    with pytest.raises(ShapeError, match="multiple of its total stride 8; use 16 or 24"):
        check_input_size(make_digits_cnn("aps"), 20)
    with pytest.raises(DataError, match="pool"):
        make_digits_cnn("avg")
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(LayerError, match="no downsampling layer"):
        swap_downsampling(net, "aps")
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    with pytest.raises(LayerError, match="kernel_size == stride"):
        swap_downsampling(nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1)), "aps")
    with pytest.raises(DataError, match="kind"):
        swap_downsampling(make_digits_cnn("max"), "max")
    assert all(issubclass(e, WorkbenchError) for e in (DataError, LayerError, ShapeError))
