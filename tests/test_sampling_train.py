"""train(..., sampler=...): the default loop is unchanged bit for bit; a sampler picks the batches and weights the
loss; bad combinations are refused before any work."""

import numpy as np
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
    steps = 2 * len(handle.train_data()[0]) // 256 + 3  # crosses two epoch boundaries
    res = train(handle, batch_size=256, lr=0.05, steps=steps, seed=3, progress=False, track_points=4)
    ref = reference_default_loop(handle, 256, 0.05, steps, 3)
    for (k, a), (_, b) in zip(res.model.state_dict().items(), ref.state_dict().items()):
        assert torch.equal(a, b), k


def test_sampler_picks_the_batches_and_weights_the_loss():
    from workbench.sampling import StaticSampler, sampling_handle

    handle = sampling_handle("wine")
    x, y = handle.train_data()
    n = len(x)

    class Recording(StaticSampler):
        def __init__(self):
            super().__init__(n, np.arange(n) + 1.0, floor=0.2, seed=0)
            self.batches, self.seen_losses = [], []

        def _sample(self, b):
            idx, w = super()._sample(b)
            self.batches.append((idx, w))
            return idx, w

        def _update(self, idx, losses):
            self.seen_losses.append((idx, losses))

    s = Recording()
    res = train(handle, batch_size=16, lr=0.05, steps=5, seed=0, sampler=s, progress=False, track_points=2)
    assert len(s.batches) == 5 and len(s.seen_losses) == 5 and res.config["sampler"] == "static"
    assert res.extra["sampler"]["name"] == "static" and len(res.extra["train_seconds"]) == len(res.metrics)
    # replay: from the same initialisation, the weighted loss of the recorded batches gives the same model
    model = reinitialize(dense_copy(handle.model), 0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for idx, w in s.batches:
        opt.zero_grad(set_to_none=True)
        (w * F.cross_entropy(model(x[idx]), y[idx], reduction="none")).mean().backward()
        opt.step()
    for a, b in zip(res.model.state_dict().values(), model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)
    # the sampler was told the per-sample losses of the batches it picked
    assert torch.equal(torch.unique(s.batches[0][0]), s.seen_losses[0][0])


@pytest.mark.parametrize("name", ["loss", "nw_sketch"])
def test_train_with_adaptive_samplers(name):
    from workbench.sampling import make_sampler, sampling_handle

    handle = sampling_handle("breast-cancer")
    x, y = handle.train_data()
    s = make_sampler(name, x, y, seed=0)
    res = train(handle, batch_size=32, steps=20, seed=0, sampler=s, progress=False, track_points=2)
    assert res.steps == 20 and bool(s.seen.any()) and s.loss_fn is None  # unbound after training
    assert res.test_accuracy > 0.8


def test_train_refuses_bad_sampler_combinations():
    from workbench.errors import DataError
    from workbench.sampling import UniformSampler, sampling_handle

    handle = sampling_handle("wine")
    n = len(handle.train_data()[0])
    with pytest.raises(DataError, match="covers 10 samples but the training set has"):
        train(handle, steps=2, sampler=UniformSampler(10), progress=False)
    with pytest.raises(DataError, match="loss_fn"):
        train(handle, steps=2, sampler=UniformSampler(n), loss_fn=F.cross_entropy, progress=False)
    with pytest.raises(DataError, match="batch_augmentation"):
        train(handle, steps=2, batch_size=8, sampler=UniformSampler(n), batch_augmentation=2, progress=False)
    with pytest.raises(DataError, match="Sampler"):
        train(handle, steps=2, sampler="uniform", progress=False)


def test_static_sampler_default_trains_notebook_06s_setting_instead_of_collapsing():
    """Notebook 06 with sampler="static" (B = 32, lr 0.05): with the old floor 0.1 the heavy-tailed proxy scores made
    digits-cnn collapse to chance (0.100); the static default floor 0.5 trains it (0.981 recorded)."""
    from workbench.sampling import make_sampler
    from workbench.sampling.proxy import static_scores

    handle = workbench.load_model("digits-cnn")
    x, y = handle.train_data()
    scores = static_scores(x, y, seed=0)
    sampler = make_sampler("static", x, y, seed=0, scores=scores)
    assert sampler.floor == 0.5 and float((1 / (len(x) * sampler.weights())).max()) <= 2.0 + 1e-9
    res = train(handle, batch_size=32, lr=0.05, steps=600, seed=0, eval_every=600, progress=False, sampler=sampler)
    assert res.test_accuracy > 0.9, res.metrics


def test_dense_copy_of_a_formatted_layer_with_the_users_own_parametrization_holds_the_users_weight():
    """A layer under orthogonal (the user's) and 2:4 (a format): the dense copy's weight is the orthogonal matrix, not
    the raw ``parametrizations.weight.original`` it used to load; the source keeps its formats."""
    from torch import nn
    from torch.nn.utils import parametrizations

    from workbench.formats import apply, original_weight
    from workbench.models.zoo import DigitsMLP

    torch.manual_seed(0)
    model = DigitsMLP()
    parametrizations.orthogonal(model.fc2)
    user = original_weight(model.fc2).clone()
    apply(model, "2:4")
    raw = model.fc2.parametrizations.weight.original.detach().clone()
    copy = dense_copy(model)
    assert not any(isinstance(m, nn.Module) and hasattr(m, "parametrizations") for m in copy.modules())
    assert torch.equal(copy.fc2.weight, user) and not torch.allclose(copy.fc2.weight, raw)
    assert torch.equal(copy.fc1.weight, model.fc1.parametrizations.weight.original)
    assert hasattr(model.fc2, "parametrizations") and len(model.fc2.parametrizations.weight) == 2
