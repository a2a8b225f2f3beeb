"""Binarized networks: XNOR-popcount identity against the float ±1 dot; STE; training reaches the target."""

from __future__ import annotations

import pytest
import torch

from workbench.errors import ShapeError
from workbench.quant.binarized import (
    BinaryLinear,
    pack_signs,
    sign_ste,
    train_digits_mlp,
    xnor_popcount_dot,
)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 63, 64, 65, 200])
def test_xnor_popcount_equals_pm1_dot(n: int) -> None:
    g = torch.Generator().manual_seed(n)
    a = torch.randn(5, n, generator=g)
    b = torch.randn(6, n, generator=g)
    a[0, 0] = 0.0  # sign(0) = +1 on both sides of the identity
    sa = torch.where(a >= 0, 1.0, -1.0).double()
    sb = torch.where(b >= 0, 1.0, -1.0).double()
    ref = (sa @ sb.T).long()
    got = xnor_popcount_dot(pack_signs(a), pack_signs(b), n)
    assert torch.equal(got, ref)


def test_xnor_extremes() -> None:
    ones = torch.ones(1, 13)
    assert int(xnor_popcount_dot(pack_signs(ones), pack_signs(ones), 13)) == 13
    assert int(xnor_popcount_dot(pack_signs(ones), pack_signs(-ones), 13)) == -13


def test_xnor_shape_errors() -> None:
    with pytest.raises(ShapeError, match="do not match"):
        xnor_popcount_dot(pack_signs(torch.ones(2, 16)), pack_signs(torch.ones(2, 24)), 16)
    # the kernels' layout packs 32 signs a word: 16 signs take one word, which cannot hold n=40
    with pytest.raises(ShapeError, match="n=40"):
        xnor_popcount_dot(pack_signs(torch.ones(2, 16)), pack_signs(torch.ones(2, 16)), 40)
    with pytest.raises(ShapeError, match="n=8"):  # rows packed from 16 signs do not match n=8
        xnor_popcount_dot(pack_signs(torch.ones(2, 16)), pack_signs(torch.ones(2, 16)), 8)


def test_pack_signs_is_the_kernels_layout() -> None:
    from workbench.kernels.bits import pack_signs as kernels_pack_signs

    assert pack_signs is kernels_pack_signs
    x = torch.tensor([[1.0, -1.0, 0.0, -2.0] * 9])  # 36 signs: bits 0, 2 of every 4 set, two words
    assert pack_signs(x).tolist() == [[0x55555555, 0x5]]


def test_sign_ste_forward_and_gradient() -> None:
    x = torch.tensor([-3.0, -1.0, -0.2, 0.0, 0.7, 1.0, 1.5], requires_grad=True)
    y = sign_ste(x)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]
    (y * torch.arange(7.0)).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0]


def test_binary_linear_uses_signs_and_clips() -> None:
    layer = BinaryLinear(4, 3)
    with torch.no_grad():
        layer.weight.mul_(3.0)
    x = torch.randn(2, 4)
    ref = torch.where(x >= 0, 1.0, -1.0) @ torch.where(layer.weight >= 0, 1.0, -1.0).T
    assert torch.allclose(layer(x), ref)
    layer.clip_()
    assert float(layer.weight.detach().abs().max()) <= 1.0


def test_binarized_mlp_reaches_085() -> None:
    r = train_digits_mlp(True, epochs=12, seed=0)
    assert r.test_accuracy >= 0.85
    # weights and activations really are binary: every hidden input of the later layers is ±1
    seen = []
    for layer in r.model.layers[1:]:
        layer.register_forward_pre_hook(lambda m, inp: seen.append(sign_ste(inp[0])))
    from workbench.data import digits_split

    r.model(digits_split().x_test[:8])
    assert all(set(t.unique().tolist()) <= {-1.0, 1.0} for t in seen)
    assert all(float(m.weight.detach().abs().max()) <= 1.0 for m in r.model.layers)
