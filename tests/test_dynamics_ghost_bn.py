"""Ghost Batch Norm against BatchNorm itself (ghost == batch), BatchNorm chunk by chunk, and a float64 reference."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from workbench.dynamics import GhostBatchNorm, swap_ghost_bn
from workbench.errors import DataError, LayerError, ShapeError
from workbench.models.zoo import DigitsCNN, DigitsMLP


def _pair(bn_cls, c, ghost, momentum=0.1, seed=0):
    torch.manual_seed(seed)
    bn = bn_cls(c, momentum=momentum)
    with torch.no_grad():  # non-trivial affine parameters and running statistics
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    gbn = GhostBatchNorm(c, ghost, momentum=momentum)
    gbn.load_state_dict(bn.state_dict())
    return bn, gbn


@pytest.mark.parametrize("bn_cls,shape", [(nn.BatchNorm2d, (16, 4, 5, 5)), (nn.BatchNorm1d, (16, 6)),
                                          (nn.BatchNorm1d, (16, 3, 7))])
def test_ghost_equal_to_batch_is_batchnorm_exactly(bn_cls, shape):
    bn, gbn = _pair(bn_cls, shape[1], ghost=shape[0])
    x = torch.randn(shape) * 3 + 1
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = bn(xa), gbn(xb)
    assert torch.equal(ya, yb)
    (ya * torch.arange(ya.numel()).reshape(ya.shape)).sum().backward()
    (yb * torch.arange(yb.numel()).reshape(yb.shape)).sum().backward()
    assert torch.equal(xa.grad, xb.grad) and torch.equal(bn.weight.grad, gbn.weight.grad)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(bn, name), getattr(gbn, name)), name


@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
@pytest.mark.parametrize("n,ghost", [(16, 4), (24, 8), (18, 4)])  # 18 = 4·4 + 2: a last, smaller ghost batch
def test_smaller_ghost_is_batchnorm_chunk_by_chunk(n, ghost, momentum):
    bn, gbn = _pair(nn.BatchNorm2d, 5, ghost, momentum=momentum)
    x = torch.randn(n, 5, 3, 3) * 2 - 0.5
    ref = torch.cat([bn(chunk) for chunk in x.split(ghost)])
    out = gbn(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gbn.running_mean, bn.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gbn.running_var, bn.running_var, rtol=1e-5, atol=1e-6)
    assert int(gbn.num_batches_tracked) == int(bn.num_batches_tracked) == -(-n // ghost)
    # and it is not plain BatchNorm over the whole batch
    whole = _pair(nn.BatchNorm2d, 5, ghost, momentum=momentum)[0]
    assert not torch.allclose(whole(x), out, atol=1e-3)


def test_against_float64_reference():
    gbn = GhostBatchNorm(3, ghost_size=4)
    x = torch.randn(12, 3, 2, 2)
    out = gbn(x).detach().double().numpy()
    xs = x.double().numpy()
    for k in range(3):
        chunk = xs[4 * k:4 * k + 4]
        mean = chunk.mean(axis=(0, 2, 3), keepdims=True)
        var = chunk.var(axis=(0, 2, 3), keepdims=True)
        np.testing.assert_allclose(out[4 * k:4 * k + 4], (chunk - mean) / np.sqrt(var + 1e-5), rtol=1e-5, atol=1e-5)
    rm, rv = np.zeros(3), np.ones(3)
    for k in range(3):
        chunk = xs[4 * k:4 * k + 4]
        rm = 0.9 * rm + 0.1 * chunk.mean(axis=(0, 2, 3))
        rv = 0.9 * rv + 0.1 * chunk.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(gbn.running_mean.double().numpy(), rm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gbn.running_var.double().numpy(), rv, rtol=1e-5, atol=1e-6)


def test_eval_mode_uses_running_statistics():
    bn, gbn = _pair(nn.BatchNorm2d, 4, ghost=2)
    bn.eval(), gbn.eval()
    x = torch.randn(8, 4, 3, 3)
    assert torch.equal(bn(x), gbn(x))
    before = gbn.running_mean.clone()
    gbn(x)
    assert torch.equal(before, gbn.running_mean)


def test_swap_ghost_bn_on_digits_cnn():
    torch.manual_seed(0)
    model = DigitsCNN()
    model.train()
    model(torch.randn(64, 1, 8, 8))  # give BN non-trivial running statistics
    model.eval()
    x = torch.randn(10, 1, 8, 8)
    before = model(x)
    ghosted = copy.deepcopy(model)
    assert swap_ghost_bn(ghosted, 16) == ["bn1", "bn2"]
    assert isinstance(ghosted.bn1, GhostBatchNorm) and ghosted.bn2.ghost_size == 16
    assert not ghosted.training and torch.equal(ghosted(x), before)
    assert swap_ghost_bn(ghosted, 8) == ["bn1", "bn2"] and ghosted.bn1.ghost_size == 8  # re-swap updates the size
    assert set(ghosted.state_dict()) == set(model.state_dict())


def test_bad_input():
    with pytest.raises(LayerError, match="DigitsMLP has none"):
        swap_ghost_bn(DigitsMLP(), 8)
    with pytest.raises(DataError):
        GhostBatchNorm(4, 0)
    with pytest.raises(ShapeError, match="channels"):
        GhostBatchNorm(4, 2)(torch.randn(4, 3, 2, 2))
    with pytest.raises(LayerError):
        swap_ghost_bn(nn.BatchNorm2d(3), 2)
