"""Formats: names, rounding against torch's casts and float64 references, exact reversibility, errors."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import workbench as wb
from workbench.errors import FormatError, LayerError, NonFiniteError, ShapeError, WorkbenchError
from workbench.formats import (
    apply,
    bits_per_weight,
    current_formats,
    format_table,
    from_matrix,
    list_formats,
    model_size_bytes,
    parse_format,
    quantize,
    representable_values,
    restore,
    to_matrix,
)

ALL_FORMATS = list_formats()


class Small(nn.Module):
    """A model with every eligible kind: conv (in 8), linear (in 32), a linear whose input (6) fits no M."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(32, 16)
        self.odd = nn.Linear(16, 6)
        self.head = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x)).mean(dim=(2, 3))
        x = torch.relu(self.fc(torch.cat([x, x, x, x], dim=1)))
        return self.head(torch.relu(self.odd(x)))


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    def eq(x: torch.Tensor, y: torch.Tensor) -> bool:  # bit-identical, NaN equal to NaN
        return x.shape == y.shape and bool(torch.equal(x.isnan(), y.isnan())) and torch.equal(
            x.nan_to_num(0.0), y.nan_to_num(0.0))

    return a.keys() == b.keys() and all(eq(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- names


def test_registry_lists_the_agreed_names() -> None:
    for name in ["dense", "2:4", "4:8-T", "fp8_e4m3", "fp8_e5m2", "int8", "int4", "binary", "2:4+fp8_e4m3"]:
        assert name in ALL_FORMATS
    assert list_formats("fp8*") == ["fp8_e4m3", "fp8_e5m2"]


@pytest.mark.parametrize("name", ALL_FORMATS)
def test_every_listed_name_parses_to_itself(name: str) -> None:
    assert parse_format(name).name == name


def test_parse_canonical_order_and_parts() -> None:
    f = parse_format("fp8_e4m3+2:4")
    assert f.name == "2:4+fp8_e4m3" and f.sparsity.n == 2 and f.sparsity.m == 4 and f.number.bits == 8
    assert parse_format("4:8-T").sparsity.transposable
    assert parse_format("int3").number.fmax == 3


@pytest.mark.parametrize("bad", ["5:4", "0:4", "2:3:4", "fp9", "", "2:4+1:2", "int8+fp8_e4m3", "int1", "int17"])
def test_malformed_formats_are_errors_listing_known_formats(bad: str) -> None:
    with pytest.raises(FormatError) as e:
        parse_format(bad)
    assert "2:4" in str(e.value) and "fp8_e4m3" in str(e.value)
    assert isinstance(e.value, WorkbenchError) and isinstance(e.value, ValueError)


# ---------------------------------------------------------------- rounding


@pytest.mark.parametrize("name,dtype", [("fp8_e4m3", torch.float8_e4m3fn), ("fp8_e5m2", torch.float8_e5m2)])
def test_fp8_equals_torch_cast_on_all_codes(name: str, dtype: torch.dtype) -> None:
    codes = torch.arange(256, dtype=torch.uint8).view(dtype).float()
    q = quantize(codes, name, granularity=None)
    assert torch.equal(q.isnan(), codes.isnan())
    ok = ~codes.isnan()
    assert torch.equal(q[ok], codes[ok])
    # the per-tensor scale maps amax onto fmax: with amax == fmax the scale is exactly 1
    finite = codes[codes.isfinite()]
    assert torch.equal(quantize(finite, name, granularity="tensor"), finite)


@pytest.mark.parametrize("name,dtype", [("fp8_e4m3", torch.float8_e4m3fn), ("fp8_e5m2", torch.float8_e5m2)])
def test_fp8_equals_torch_cast_on_random_ties_subnormals_overflow(name: str, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    grid = representable_values(name).float()
    mids = (grid[1:] + grid[:-1]) / 2  # exact ties between neighbours: round to even
    fmax = float(grid.max())
    x = torch.cat([
        torch.randn(20000, generator=g) * 10.0 ** torch.randint(-8, 5, (20000,), generator=g),
        mids,
        torch.tensor([2.0 ** -9, 2.0 ** -10, 2.0 ** -16, 2.0 ** -17, 3 * 2.0 ** -18]),
        torch.tensor([fmax * 1.01, -fmax * 1.5, 1e30, -1e30, 0.0, -0.0]),
    ])
    assert torch.equal(quantize(x, name, granularity=None), x.to(dtype).float())


def _fp_round_reference(x: torch.Tensor, exp_bits: int, man_bits: int, bias: int, fmax: float) -> torch.Tensor:
    """Round to nearest even onto a binary float grid, in float64, from the format's definition (saturating)."""
    x = x.double()
    e = torch.floor(torch.log2(x.abs().clamp_min(1e-300)))
    e = torch.clamp(e, min=1 - bias)  # subnormals share the smallest exponent
    step = 2.0 ** (e - man_bits)
    q = torch.round(x / step) * step  # torch.round is half-to-even
    return torch.clamp(q, -fmax, fmax)


@pytest.mark.parametrize("name,e,m,bias", [("fp8_e4m3", 4, 3, 7), ("fp8_e5m2", 5, 2, 15)])
def test_fp8_matches_float64_definition_within_range(name: str, e: int, m: int, bias: int) -> None:
    fmax = float(parse_format(name).number.fmax)
    x = torch.randn(50000, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * fmax / 8
    ref = _fp_round_reference(x, e, m, bias, fmax)
    got = quantize(x.float(), name, granularity=None).double()
    # float32 input rounding can move a value across a tie only where x is within float32 eps of it
    assert (got != ref).float().mean() < 1e-4
    assert 2.0 ** (1 - bias - m) == float(representable_values(name)[representable_values(name) > 0].min())


@pytest.mark.parametrize("bits", [8, 4, 3])
def test_int_matches_float64_reference_per_channel(bits: int) -> None:
    w = torch.randn(16, 40, generator=torch.Generator().manual_seed(bits))
    qmax = 2 ** (bits - 1) - 1
    wd = w.double()
    s = wd.abs().amax(dim=1, keepdim=True) / qmax
    ref = torch.clamp(torch.round(wd / s), -qmax, qmax) * s
    got = quantize(w, f"int{bits}")
    assert torch.allclose(got.double(), ref, rtol=0, atol=1e-6)
    assert ((got.double() / s).round().abs() <= qmax).all()
    # every row has at most 2*qmax+1 distinct values
    assert all(len(torch.unique(r)) <= 2 * qmax + 1 for r in got)


def test_binary_two_values_per_row_sign_plus_one_at_zero() -> None:
    w = torch.randn(12, 20, generator=torch.Generator().manual_seed(3))
    w[0, :5] = 0.0
    q = quantize(w, "binary")
    for r, row in enumerate(q):
        vals = torch.unique(row)
        assert len(vals) == 2 and torch.isclose(vals[1], -vals[0])
        assert torch.isclose(vals[1], w[r].abs().mean())
    assert (q[0, :5] > 0).all()


def test_nm_keeps_the_largest_in_every_group() -> None:
    w = torch.randn(32, 64, generator=torch.Generator().manual_seed(4))
    q = quantize(w, "2:4")
    groups, orig = q.reshape(32, 16, 4), w.reshape(32, 16, 4)
    assert ((groups != 0).sum(-1) <= 2).all()
    top2 = orig.abs().topk(2, dim=-1).values.sort(dim=-1).values
    kept = groups.abs().sort(dim=-1).values[..., 2:]
    assert torch.equal(kept, top2)


def test_conv_groups_run_along_input_channels() -> None:
    w = torch.randn(4, 8, 3, 3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(from_matrix(to_matrix(w), w.shape), w)
    q = quantize(w, "2:4")
    # for every output channel and kernel position, 2 of every 4 consecutive input channels survive
    per_pos = (q != 0).permute(0, 2, 3, 1).reshape(4, 3, 3, 2, 4).sum(-1)
    assert (per_pos == 2).all()


def test_representable_grid_sizes() -> None:
    assert len(representable_values("fp8_e4m3")) == 253
    assert float(representable_values("fp8_e4m3").max()) == 448.0
    assert float(representable_values("fp8_e5m2").max()) == 57344.0
    assert len(representable_values("int4")) == 15
    with pytest.raises(FormatError):
        representable_values("2:4")


def test_bits_per_weight() -> None:
    assert bits_per_weight("dense") == 32
    assert bits_per_weight("2:4", 16) == pytest.approx(9.0)  # 0.5625 of bf16, as sparse tensor cores store it
    assert bits_per_weight("binary") == 1
    assert bits_per_weight("2:4+fp8_e4m3") == pytest.approx(5.0)


# ---------------------------------------------------------------- apply / restore on a small model


@pytest.mark.parametrize("name", ALL_FORMATS)
def test_apply_forward_restore_is_bit_identical(name: str) -> None:
    torch.manual_seed(0)
    model = Small().eval()
    x = torch.randn(5, 8, 4, 4)
    before, out0 = _weights(model), model(x)
    report = apply(model, name)
    assert set(report["status"]) <= {"applied", "skipped"}
    if name != "dense":
        assert (report["status"] == "applied").any()
    model(x)
    restored = restore(model)
    assert set(restored) == set(current_formats(model)) | set(report.loc[report.status == "applied", "layer"]) - (
        {"conv", "fc", "odd", "head"} if name == "dense" else set())
    assert _same(_weights(model), before)
    assert torch.equal(model(x), out0)


def test_apply_changes_the_effective_weight_and_keeps_originals() -> None:
    model = Small()
    w0 = model.fc.weight.detach().clone()
    apply(model, "2:4+int8", layers=["fc"])
    assert current_formats(model) == {"fc": "2:4+int8"}
    assert torch.equal(model.fc.parametrizations.weight.original, w0)
    assert torch.equal(model.fc.weight, quantize(w0, "2:4+int8"))
    # masks and scales are not in the state dict; the original is
    keys = set(model.state_dict())
    assert "fc.parametrizations.weight.original" in keys and not any("mask" in k or "scale" in k for k in keys)


def test_unfit_layer_is_skipped_when_not_named_and_an_error_when_named() -> None:
    model = Small()
    report = apply(model, "2:4")
    row = report.set_index("layer").loc["head"]
    assert row.status == "skipped" and "6" in row.reason and "M=4" in row.reason
    restore(model)
    before = _weights(model)
    with pytest.raises(ShapeError, match="head"):
        apply(model, "2:4", layers=["fc", "head"])
    assert _same(_weights(model), before) and current_formats(model) == {}


def test_unknown_layer_is_an_error_listing_layers() -> None:
    model = Small()
    with pytest.raises(LayerError, match="eligible layers: conv, fc, odd, head"):
        apply(model, "int8", layers=["nope"])
    with pytest.raises(LayerError):
        apply(model, "int8", layers="re:zz.*")
    with pytest.raises(LayerError):
        apply(model, {"nope": "int8"})


def test_nan_weight_is_an_error_and_nothing_changes() -> None:
    model = Small()
    apply(model, "fp8_e4m3", layers=["conv"])
    with torch.no_grad():
        model.odd.weight[0, 0] = float("nan")
    before, formats = _weights(model), current_formats(model)
    with pytest.raises(NonFiniteError, match="odd"):
        apply(model, "int4")
    assert _same(_weights(model), before) and current_formats(model) == formats


def test_failed_registration_rolls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    model = Small()
    apply(model, "int8", layers=["fc"])
    before, formats = _weights(model), current_formats(model)
    import workbench.formats.api as api

    real = api.parametrize.register_parametrization
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(api.parametrize, "register_parametrization", flaky)
    with pytest.raises(RuntimeError, match="boom"):  # the injected failure itself, after the model is rolled back
        apply(model, "binary", layers=["fc", "conv"])
    monkeypatch.setattr(api.parametrize, "register_parametrization", real)
    assert current_formats(model) == formats and _same(_weights(model), before)


def test_per_layer_mapping_patterns_default_and_none() -> None:
    model = Small()
    report = apply(model, {"fc": "2:4", "re:o.*": "int4", "default": "fp8_e5m2", "head": None})
    assert current_formats(model) == {"conv": "fp8_e5m2", "fc": "2:4", "odd": "int4"}
    assert "head" not in set(report.layer)
    table = format_table(model).set_index("layer")
    assert table.loc["head", "format"] == "dense"


def test_predicate_selector_and_replace() -> None:
    model = Small()
    apply(model, "int8", layers=lambda name, m: isinstance(m, nn.Linear))
    assert set(current_formats(model)) == {"fc", "odd", "head"}
    apply(model, "binary", layers="fc")
    assert current_formats(model)["fc"] == "binary"
    apply(model, "dense", layers="fc")
    assert "fc" not in current_formats(model)


def test_activations_are_quantized_and_removed() -> None:
    torch.manual_seed(0)
    model = Small().eval()
    x = torch.randn(3, 8, 4, 4)
    seen = {}
    apply(model, "int4", layers=["fc"], activations=True)
    # registered after the quantizer, so it sees what the layer sees
    model.fc.register_forward_pre_hook(lambda m, a: seen.__setitem__("x", a[0].detach().clone()))
    model(x)
    act = seen["x"]
    scale = act.abs().max() / 7
    assert len(torch.unique(act)) <= 15 and torch.allclose(act / scale, (act / scale).round(), atol=1e-4)
    assert format_table(model).set_index("layer").loc["fc", "activations"] == "int4"
    out_q = model(x)
    restore(model)
    model(x)
    assert len(torch.unique(seen["x"])) > 15
    assert not torch.equal(out_q, model(x))


def test_gradients_flow_straight_through() -> None:
    model = Small()
    apply(model, "int4", layers=["fc"])
    model(torch.randn(2, 8, 4, 4)).sum().backward()
    g = model.fc.parametrizations.weight.original.grad
    assert g is not None and g.abs().sum() > 0


def test_model_size_counts_formats() -> None:
    model = Small()
    dense = model_size_bytes(model)
    assert dense == sum(p.numel() * 4 for p in model.parameters())
    apply(model, "int8", layers=["fc"])
    w = model.fc.parametrizations.weight.original
    assert dense - model_size_bytes(model) == w.numel() * 3 - w.shape[0] * 4
    restore(model)
    assert model_size_bytes(model) == dense


# ---------------------------------------------------------------- properties


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    out_f=st.integers(1, 12),
    groups=st.integers(1, 6),
    m=st.sampled_from([2, 4, 8]),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_nm_property_random_shapes(out_f: int, groups: int, m: int, seed: int, data: st.DataObject) -> None:
    n = data.draw(st.integers(1, m))
    w = torch.randn(out_f, groups * m, generator=torch.Generator().manual_seed(seed))
    w[w.abs() < 0.3] = 0.0  # zeros and ties
    q = quantize(w, f"{n}:{m}")
    g, orig = q.reshape(out_f, groups, m), w.reshape(out_f, groups, m)
    assert ((g != 0).sum(-1) <= n).all()
    # the kept magnitude equals the sum of the n largest
    assert torch.allclose(g.abs().sum(-1), orig.abs().topk(n, dim=-1).values.sum(-1))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    widths=st.lists(st.sampled_from([4, 8, 12, 16]), min_size=2, max_size=4),
    steps=st.lists(
        st.tuples(st.sampled_from(["apply", "restore"]), st.sampled_from(ALL_FORMATS),
                  st.lists(st.booleans(), min_size=4, max_size=4), st.booleans()),
        min_size=1, max_size=6),
    seed=st.integers(0, 1000),
)
def test_sequences_of_apply_and_restore_end_bit_identical(widths, steps, seed) -> None:
    torch.manual_seed(seed)
    layers = [nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])]
    model = nn.Sequential(*layers)
    names = [str(i) for i in range(len(layers))]
    x = torch.randn(3, widths[0])
    before, out0 = _weights(model), model(x)
    expected: dict[str, str] = {}
    for op, fmt, pick, acts in steps:
        chosen = [n for n, p in zip(names, pick) if p]
        if op == "apply":
            rep = apply(model, fmt, layers=lambda name, _m: name in chosen, activations=acts)
            for row in rep.itertuples():
                if row.status == "applied":
                    if fmt == "dense":
                        expected.pop(row.layer, None)
                    else:
                        expected[row.layer] = parse_format(fmt).name
        else:
            restore(model, layers=chosen if chosen else None)
            for n in chosen or names:
                expected.pop(n, None)
        assert current_formats(model) == expected
        assert torch.isfinite(model(x)).all() or any("e5m2" in v for v in expected.values())
    restore(model)
    assert _same(_weights(model), before)
    assert torch.equal(model(x), out0)


def test_top_level_api() -> None:
    assert wb.apply is apply and wb.restore is restore and wb.quantize is quantize
    assert math.isclose(wb.bits_per_weight("int4"), 4)


def test_parametrizations_are_reused_until_the_weight_changes() -> None:
    model = Small()
    apply(model, "2:4-T", layers=["fc"])
    first = model.fc.parametrizations.weight[0]
    apply(model, "int8", layers=["fc"])
    apply(model, "2:4-T", layers=["fc"])
    assert model.fc.parametrizations.weight[0] is first  # toggling back does not re-solve the mask
    restore(model)
    with torch.no_grad():
        model.fc.weight.mul_(-2.0)  # an in-place change invalidates the cached mask and scale
    apply(model, "2:4-T", layers=["fc"])
    again = model.fc.parametrizations.weight[0]
    assert again is not first
    assert torch.equal(model.fc.weight, quantize(model.fc.parametrizations.weight.original, "2:4-T"))


def test_padded_transposable_solve_is_noted_in_the_report() -> None:
    model = Small()
    with pytest.warns(UserWarning, match="padded"):
        report = apply(model, "2:4-T", layers=["odd"]).set_index("layer")
    assert report.loc["odd", "status"] == "applied" and "padded" in report.loc["odd", "reason"]
    again = apply(model, "2:4-T", layers=["odd"]).set_index("layer")  # from the cache: the note stays
    assert "padded" in again.loc["odd", "reason"]


def test_activations_only_leaves_weights_and_uses_the_number_part() -> None:
    model = Small().eval()
    w0 = model.fc.weight.detach().clone()
    seen = {}
    apply(model, "2:4+int4", layers=["fc"], activations=True, weights=False)
    model.fc.register_forward_pre_hook(lambda m, a: seen.__setitem__("x", a[0].detach().clone()))
    model(torch.randn(3, 8, 4, 4))
    assert current_formats(model) == {} and torch.equal(model.fc.weight, w0)
    assert format_table(model).set_index("layer").loc["fc", "activations"] == "int4"
    assert len(torch.unique(seen["x"])) <= 15 and (seen["x"] != 0).float().mean() > 0.5  # no 2:4 mask on inputs
    with pytest.raises(FormatError):
        apply(model, "int8", weights=False)
