"""Formats compose with a layer's own parametrizations (orthogonal, spectral_norm, weight_norm, custom): masks and
scales come from the effective weight, and restore gives back exactly the user's module."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import orthogonal, spectral_norm, weight_norm

from workbench.errors import LayerError
from workbench.formats import (
    apply,
    current_formats,
    eligible_layers,
    format_table,
    model_size_bytes,
    original_weight,
    quantize,
    restore,
)


class Tilt(nn.Module):
    """A custom parametrization: scale input column j by j + 1 (the effective weight's large entries sit elsewhere
    than ``.original``'s, so a mask taken from ``.original`` would be wrong)."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * torch.arange(1, w.shape[-1] + 1, dtype=w.dtype)


def _custom(mod: nn.Module) -> nn.Module:
    parametrize.register_parametrization(mod, "weight", Tilt())
    return mod


USER_PARAMETRIZATIONS = {
    "orthogonal": orthogonal,
    "spectral_norm": spectral_norm,
    "weight_norm": weight_norm,
    "custom": _custom,
}


def _model(kind: str, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
    USER_PARAMETRIZATIONS[kind](model[0])
    if kind != "custom":
        _custom(model[2])
    return model.eval()


def _state(model: nn.Module) -> dict:
    """Everything of the user's that restore must give back: the state_dict (keys in order, values bit for bit),
    the effective weights, and the parametrization modules and stored tensors by identity."""
    sd = [(k, v.detach().clone()) for k, v in model.state_dict().items()]
    flags = {m: m.training for m in model.modules()}
    model.eval()  # reading the weight in training mode would move spectral_norm's vectors
    with torch.no_grad():
        weights = {n: m.weight.detach().clone() for n, m in eligible_layers(model).items()}
    for m, flag in flags.items():
        m.training = flag
    plists = {}
    for n, m in model.named_modules():
        if parametrize.is_parametrized(m, "weight"):
            pl = m.parametrizations.weight
            plists[n] = ([id(p) for p in pl], [id(t) for _, t in pl.named_parameters(recurse=False)], pl.unsafe)
    return {"sd": sd, "weights": weights,
            "plists": plists, "classes": {n: type(m).__name__ for n, m in model.named_modules()}}


def _same(a: dict, b: dict) -> bool:
    return ([k for k, _ in a["sd"]] == [k for k, _ in b["sd"]]
            and all(torch.equal(x, y) for (_, x), (_, y) in zip(a["sd"], b["sd"]))
            and a["weights"].keys() == b["weights"].keys()
            and all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])
            and a["plists"] == b["plists"] and a["classes"] == b["classes"])


@pytest.mark.parametrize("kind", list(USER_PARAMETRIZATIONS))
@pytest.mark.parametrize("fmt", ["2:4", "2:4+int8", "fp8_e4m3", "2:4-T", "unstructured 50%"])
def test_apply_uses_the_effective_weight_and_restore_gives_back_the_users_module(kind: str, fmt: str) -> None:
    model = _model(kind)
    x = torch.randn(3, 8)
    before, out0 = _state(model), model(x)
    w_user = model[0].weight.detach().clone()
    assert torch.equal(original_weight(model[0]), w_user)
    rep = apply(model, fmt)
    assert list(rep.status) == ["applied"] * 3
    assert current_formats(model) == {"0": fmt, "2": fmt, "4": fmt}
    # the user's parametrization is still first; ours is appended at the end of the list
    assert not isinstance(model[0].parametrizations.weight[0], type(model[0].parametrizations.weight[-1]))
    # the format acts on the effective weight the user's parametrization produces, not on `.original`
    assert torch.equal(model[0].weight, quantize(w_user, fmt))
    assert torch.equal(original_weight(model[0]), w_user)
    assert set(format_table(model).format) == {fmt}
    assert model_size_bytes(model) > 0
    # on a layer the user parametrized the state_dict keys do not change (masks and scales are not in it)
    assert [k for k in model.state_dict() if k.startswith("0.")] == [k for k, _ in before["sd"] if k.startswith("0.")]
    restored = restore(model)
    assert restored == ["0", "2", "4"]
    assert parametrize.is_parametrized(model[0], "weight")
    assert _same(_state(model), before)
    assert torch.equal(model(x), out0)


def test_mask_from_original_would_differ() -> None:
    """The custom Tilt moves the largest entries: the 2:4 mask must follow the effective weight."""
    torch.manual_seed(1)
    lin = _custom(nn.Linear(16, 4))
    apply(nn.Sequential(lin), "2:4+int8")
    raw = lin.parametrizations.weight.original.detach()
    eff = raw * torch.arange(1, 17)
    assert torch.equal(lin.weight, quantize(eff, "2:4+int8"))
    assert not torch.equal(lin.weight != 0, quantize(raw, "2:4") != 0)  # the mask of `.original` differs


def test_spectral_norm_in_training_mode_keeps_its_vectors() -> None:
    model = _model("spectral_norm").train()
    before = _state(model)
    apply(model, "int8")
    restore(model)
    assert _same(_state(model), before)


def test_a_parametrization_added_after_apply_stays_after_restore() -> None:
    model = _model("custom")
    apply(model, "2:4", layers=["4"])
    orthogonal(model[4])  # the user parametrizes a formatted layer
    user = model[4].parametrizations.weight[-1]
    assert current_formats(model) == {"4": "2:4"}
    assert restore(model) == ["4"]
    assert list(model[4].parametrizations.weight) == [user]


def test_hook_style_weight_norm_is_skipped_or_refused_by_name() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.nn.utils.weight_norm(model[0])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rep = apply(model, "2:4").set_index("layer")
    assert rep.loc["0", "status"] == "skipped" and "weight_norm" in rep.loc["0", "reason"]
    assert rep.loc["2", "status"] == "applied"
    assert current_formats(model) == {"2": "2:4"}
    restore(model)
    with pytest.raises(LayerError, match="layer '0'.*weight_norm"):
        apply(model, "2:4", layers=["0", "2"])
    assert current_formats(model) == {}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model(torch.randn(2, 8))  # the hook still works


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kinds=st.lists(st.sampled_from(list(USER_PARAMETRIZATIONS) + [None]), min_size=3, max_size=3),
    steps=st.lists(
        st.tuples(st.sampled_from(["apply", "restore", "current", "analysis"]),
                  st.sampled_from(["2:4", "int8", "2:4+fp8_e4m3", "4:8-T", "binary", "dense", "unstructured 50%"]),
                  st.lists(st.booleans(), min_size=3, max_size=3)),
        min_size=1, max_size=6),
    train=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_random_sequences_restore_the_users_state_bit_exactly(kinds, steps, train, seed) -> None:
    torch.manual_seed(seed)
    layers = [nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)]
    for lin, kind in zip(layers, kinds):
        if kind is not None:
            USER_PARAMETRIZATIONS[kind](lin)
    model = nn.Sequential(*layers).train(train)
    names = ["0", "1", "2"]
    before = _state(model)
    users = {n: original_weight(m).clone() for n, m in eligible_layers(model).items()}
    expected: dict[str, str] = {}
    for op, fmt, pick in steps:
        chosen = [n for n, p in zip(names, pick) if p]
        if op == "apply":
            apply(model, fmt, layers=lambda name, _m: name in chosen)
            for n in chosen:
                expected.pop(n, None) if fmt == "dense" else expected.__setitem__(n, fmt)
        elif op == "restore":
            restore(model, layers=chosen or None)
            for n in chosen or names:
                expected.pop(n, None)
        elif op == "current":
            assert current_formats(model) == expected
        else:  # a cheap analysis: it reads the layers (in eval mode, as analyses do) and leaves them as they were
            flags = {m: m.training for m in model.modules()}
            model.eval()
            with torch.no_grad():
                for n, m in eligible_layers(model).items():
                    assert torch.equal(original_weight(m), users[n])
                    if n in expected:
                        assert torch.equal(m.weight, quantize(users[n], expected[n]))
            for m, flag in flags.items():
                m.training = flag
            assert model_size_bytes(model) > 0
        assert current_formats(model) == expected
    restore(model)
    assert _same(_state(model), before)
