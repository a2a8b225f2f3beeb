"""train(..., sampler=...): the default loop is unchanged bit for bit; a sampler picks the batches and weights the
loss; bad combinations are refused before any work."""

import pytest
import torch
import torch.nn.functional as F

import workbench
from workbench.dynamics.train import dense_copy, reinitialize, train


def reference_default_loop(handle, batch_size, lr, steps, seed):
    """The default training loop written out by hand: seeded re-init, SGD with momentum 0.9, batches from a stream
    of seeded permutations."""
    x, y = handle.train_data()
    model = reinitialize(dense_copy(handle.model), seed)
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.9)
    gen = torch.Generator().manual_seed(seed + 1_000_003)
    n = len(x)
    order, cursor = torch.randperm(n, generator=gen), 0
    for _ in range(steps):
        take, need = [], batch_size
        while need > 0:
            if cursor >= n:
                order, cursor = torch.randperm(n, generator=gen), 0
            chunk = order[cursor:cursor + need]
            take.append(chunk)
            cursor += len(chunk)
            need -= len(chunk)
        idx = torch.cat(take)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return model


def test_default_training_is_unchanged_bit_for_bit():
    handle = workbench.load_model("digits-mlp")
    steps = 2 * len(handle.train_data()[0]) // 64 + 3  # crosses two epoch boundaries
    res = train(handle, batch_size=64, lr=0.05, steps=steps, seed=3, progress=False, track_points=4)
    ref = reference_default_loop(handle, 64, 0.05, steps, 3)
    for (k, a), (_, b) in zip(res.model.state_dict().items(), ref.state_dict().items()):
        assert torch.equal(a, b), k
