"""Sparse training: schedule, group lasso gradient, augmented(k=∞) == fixed_mask, structures at the end, errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from workbench.errors import DataError, FormatError, LayerError, OptionError, ShapeError, WorkbenchError
from workbench.formats import parse_format
from workbench.sparse_training import (
    group_lasso_penalty,
    satisfies,
    schedule_fraction,
    train_sparse,
)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(16, 16)
        self.fc2 = nn.Linear(16, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def _handle() -> SimpleNamespace:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 16, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return SimpleNamespace(name="tiny", model=Tiny(), train_data=lambda: (x[:64], y[:64]),
                           test_data=lambda: (x[64:], y[64:]))


FAST = dict(steps=24, batch_size=16, lr=0.05, progress=False, eval_every=0.5)


def test_schedule_shape_and_exact_end() -> None:
    f = [schedule_fraction(t, 10, 30, 50) for t in range(0, 60)]
    assert f[10] == 0.0 and f[50] == 1.0 and all(v == 1.0 for v in f[50:])
    assert all(b >= a for a, b in zip(f, f[1:]))  # monotone
    slope1, slope2 = f[20] - f[19], f[40] - f[39]
    assert slope2 == pytest.approx(1.5 * slope1)
    assert f[49] < 1.0


def test_block_pruning_reaches_the_target_exactly_at_its_end_step() -> None:
    r = train_sparse(_handle(), "block4x4@75%", "block_pruning", start=4, ramp=8, end=16, prune_every=3, **FAST)
    # fc1 16×16 and fc2 8×16 (the head stays dense): 16 + 8 blocks, 75 % sparsity keeps 4 + 2
    t = r.table.set_index("step")
    before = r.table[r.table.step < 16]
    assert (before.sparsity < 0.75).all()
    assert r.table[r.table.step >= 16].sparsity.eq(0.75).all()
    assert list(r.layers.sparsity) == [0.75, 0.75] and r.layers.satisfies.all()
    assert t.loc[0, "sparsity"] == 0.0 and r.ever_entered == 1.0
    for name, mask in r.masks.items():  # pruned weights are exactly zero in the returned model
        w = dict(r.model.named_modules())[name].weight
        assert torch.equal(w != 0, mask) or bool(((w != 0) <= mask).all())


def test_group_lasso_gradient_equals_the_analytic_one() -> None:
    sp = parse_format("block2x4@50%").sparsity
    w = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        w[2:, 4:] = 0.0  # a zero block: subgradient 0
    group_lasso_penalty(w, sp).backward()
    analytic = torch.zeros_like(w)
    for i in range(2):
        for j in range(2):
            b = w.detach()[2 * i:2 * i + 2, 4 * j:4 * j + 4]
            n = b.norm()
            analytic[2 * i:2 * i + 2, 4 * j:4 * j + 4] = b / n if n > 0 else 0.0
    assert torch.allclose(w.grad, analytic, atol=1e-12)
    # unstructured groups are single weights: the lasso, gradient sign(w)
    v = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    group_lasso_penalty(v, parse_format("unstructured 50%").sparsity).backward()
    assert torch.equal(v.grad, torch.sign(v.detach()))


@pytest.mark.parametrize("structure", ["2:4", "unstructured 25%", "block4x4@50%"])
def test_augmented_with_k_infinite_equals_fixed_mask(structure: str) -> None:
    a = train_sparse(_handle(), structure, "augmented", k=None, **FAST)
    f = train_sparse(_handle(), structure, "fixed_mask", **FAST)
    assert all(torch.equal(a.masks[n], f.masks[n]) for n in f.masks)
    sa, sf = a.model.state_dict(), f.model.state_dict()
    assert all(torch.equal(sa[k], sf[k]) for k in sf)
    assert a.table.test_acc.tolist() == f.table.test_acc.tolist()
    assert f.ever_entered == pytest.approx(1 - f.sparsity)  # the narrow search space: only the first mask


@pytest.mark.parametrize("method", ["block_pruning", "group_lasso", "fixed_mask", "augmented"])
@pytest.mark.parametrize("structure", ["2:4", "4:8", "2:4-T", "unstructured 20%", "block4x4@75%", "block8x8@50%"])
def test_every_mask_satisfies_its_structure_at_the_end(method: str, structure: str) -> None:
    r = train_sparse(_handle(), structure, method, k=4, start=2, ramp=6, end=12, prune_every=2, **FAST)
    sp = parse_format(structure).sparsity
    assert r.layers.satisfies.all() and all(satisfies(m, sp) for m in r.masks.values())
    for row in r.layers.itertuples():  # the exact target: round(keep · #groups) groups kept in every layer
        groups = row.params if sp.block is None else row.params // (sp.block[0] * sp.block[1])
        kept = round(sp.density * groups) if sp.keep is not None else sp.density * groups
        assert row.sparsity == pytest.approx(1 - kept / groups, abs=1e-12)
    if method == "augmented":
        assert r.ever_entered >= 1 - r.sparsity


def test_augmented_widens_the_search_space() -> None:
    r = train_sparse(_handle(), "unstructured 25%", "augmented", k=2, **FAST)
    assert r.ever_entered > 0.25 + 0.01 and r.table.changed.sum() > 0


def _unchanged(h: SimpleNamespace):
    return {k: v.clone() for k, v in h.model.state_dict().items()}


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(structure="block3x3@50%"), ShapeError, "fits none|pad"),
    (dict(structure="block3x3@50%", layers=["fc1"]), ShapeError, r"pad 2 zero row\(s\) and 2 zero column"),
    (dict(structure="block4x4", sparsity=1.0), DataError, "sparsity"),
    (dict(structure="unstructured", sparsity=-0.1), DataError, "sparsity"),
    (dict(structure="block4x4@100%"), FormatError, r"\[0, 100%\)"),
    (dict(structure="4:16", layers=["head"]), ShapeError, "not a multiple of M=16"),
    (dict(structure="2:4", method="block_pruning", start=10, end=5, ramp=5), DataError, "before it starts"),
    (dict(structure="2:4", method="group_lasso", lasso=-1.0), DataError, "lasso"),
    (dict(structure="2:4", method="magic"), OptionError, "method"),
    (dict(structure="2:4+fp8_e4m3"), FormatError, "sparsity pattern"),
    (dict(structure="2:4", layers=["nope"]), LayerError, "eligible"),
])
def test_bad_input_is_a_clear_error_and_changes_nothing(kwargs, error, match) -> None:
    h = _handle()
    before = _unchanged(h)
    kwargs = {"method": "fixed_mask", **kwargs}
    with pytest.raises(error, match=match) as e:
        train_sparse(h, **kwargs, **FAST)
    assert isinstance(e.value, WorkbenchError)
    after = h.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_model_without_linear_or_recurrent_layers_is_refused() -> None:
    h = _handle()
    h.model = nn.Sequential(nn.GRU(4, 8))
    with pytest.raises(LayerError, match="nn.Linear"):
        train_sparse(h, "2:4", "fixed_mask", **FAST)


class TinyWithArgs(Tiny):
    """A model whose architecture cannot be rebuilt without its constructor's arguments."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("reinit", [True, False])
def test_train_sparse_leaves_the_users_formats_and_trains_without_them(reinit: bool) -> None:
    """A handle with formats applied (weights and activations) keeps them, objects and weights unchanged, and the
    training copy trains dense: the same result as from the same model without formats (also for a model that
    cannot be rebuilt without arguments)."""
    import workbench as wb

    plain, h = _handle(), _handle()
    h.model = TinyWithArgs(16)
    h.model.load_state_dict(plain.model.state_dict())
    wb.apply(h.model, {"fc2": "int4"}, activations=True)
    before_formats, before_state = wb.current_formats(h.model), _state(h.model)
    before_param = h.model.fc2.parametrizations.weight[0]
    during = []  # the handle keeps its formats while the copy trains (a dashboard may show it meanwhile)
    res = train_sparse(h, "unstructured 50%", "augmented", k=6, reinit=reinit,
                       on_metrics=lambda row: during.append(wb.current_formats(h.model)), **FAST)
    assert during and all(d == {"fc2": "int4"} for d in during)
    assert wb.current_formats(h.model) == before_formats == {"fc2": "int4"}
    assert h.model.fc2.parametrizations.weight[0] is before_param
    assert wb.formats.activation_quantizer(h.model.fc2) is not None
    after = _state(h.model)
    assert after.keys() == before_state.keys() and all(torch.equal(after[k], before_state[k]) for k in after)
    ref = train_sparse(plain, "unstructured 50%", "augmented", k=6, reinit=reinit, **FAST)
    assert wb.current_formats(res.model) == {}
    assert res.table.test_acc.tolist() == ref.table.test_acc.tolist()
    got, want = res.model.state_dict(), ref.model.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)
