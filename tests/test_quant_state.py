"""Every analysis leaves the handle exactly as it found it: the user's formats, activation quantizers (with their
static scales), the very parametrization objects, and every weight and buffer bit for bit."""

from __future__ import annotations

import copy
import random

import pytest
import torch

from workbench.errors import NonFiniteError
from workbench.formats import (
    activation_quantizer,
    apply,
    current_formats,
    eligible_layers,
    format_table,
    restore,
    suspended,
)
from workbench.quant import calibration, datafree, error
from workbench.quant.sensitivity import allocate_bits, frontier, measure_assignment, sensitivity


def _state(model: torch.nn.Module) -> dict:
    """Everything a user could have set: formats, activation quantizers and scales, objects, weights, buffers."""
    layers = eligible_layers(model)
    out = {"formats": current_formats(model), "table": format_table(model).to_dict("records"), "objects": {},
           "acts": {}, "weights": {}, "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
           "training": model.training}
    with torch.no_grad():
        for name, mod in layers.items():
            plist = getattr(getattr(mod, "parametrizations", None), "weight", None)
            out["objects"][name] = [id(p) for p in plist] if plist is not None else []
            q = activation_quantizer(mod)
            out["acts"][name] = (id(q), q.scale) if q is not None else None
            out["weights"][name] = mod.weight.detach().clone()
    return out


def _assert_same(before: dict, after: dict) -> None:
    assert after["formats"] == before["formats"]
    assert after["table"] == before["table"]
    assert after["objects"] == before["objects"]
    assert after["acts"] == before["acts"]
    assert after["training"] == before["training"]
    assert after["state"].keys() == before["state"].keys()
    for k, v in before["state"].items():
        assert torch.equal(after["state"][k], v), k
    for k, v in before["weights"].items():
        assert torch.equal(after["weights"][k], v), k  # bit-identical, formats applied


def _user_formats(model: torch.nn.Module) -> None:
    apply(model, {"fc2": "int4"})
    apply(model, {"conv2": "2:4+int8"}, activations=True)
    activation_quantizer(model.get_submodule("conv2")).scale = 0.0123  # a calibrated static scale


SMALL = dict(n_batches=2)


def _dense_copy(model: torch.nn.Module) -> torch.nn.Module:
    with suspended(model):  # a deep copy of a parametrized module shares its class: copy it without formats
        return copy.deepcopy(model)

ANALYSES = {
    "layer_error isolated": lambda h, b: error.layer_error(h, ["int8", "int4"], "isolated", batches=b,
                                                           progress=False),
    "layer_error cumulative": lambda h, b: error.layer_error(h, ["int4"], "cumulative", what="both", batches=b,
                                                             evaluate=False, progress=False),
    "capture_layer_io": lambda h, b: error.capture_layer_io(h, b),
    "sensitivity": lambda h, b: sensitivity(h, ["int4"], ["conv2", "fc1"], progress=False),
    "measure_assignment": lambda h, b: measure_assignment(h, {"fc1": "int4"}),
    "allocate_bits": lambda h, b: allocate_bits(
        sensitivity(h, ["int8", "int4"], ["fc1", "fc2"], progress=False), None, 25_000, handle=h),
    "frontier": lambda h, b: frontier(
        sensitivity(h, ["int8", "int4"], ["fc1", "fc2"], progress=False), budgets=2, handle=h,
        progress=False),
    "calibrate_activations": lambda h, b: calibration.calibrate_activations(h, "int8", b),
    "scaling_comparison": lambda h, b: calibration.scaling_comparison(h, "int8", b),
    "adaquant": lambda h, b: calibration.adaquant(h, "int4", b, steps=2, progress=False),
    "post_training_quantize": lambda h, b: calibration.post_training_quantize(h, "int8", b, bn_reestimate=True,
                                                                             use_adaquant=True, adaquant_steps=1,
                                                                             progress=False),
    "reestimate_bn on a copy": lambda h, b: calibration.reestimate_bn(h, calibration.quantize_model(
        _dense_copy(h.model), "int8"), b),
    "synthesize": lambda h, b: datafree.synthesize(h, 16, steps=2, progress=False),
}


@pytest.mark.parametrize("name", list(ANALYSES))
def test_analysis_leaves_user_formats_as_they_were(digits_cnn, name: str) -> None:
    _user_formats(digits_cnn.model)
    try:
        before = _state(digits_cnn.model)
        ANALYSES[name](digits_cnn, digits_cnn.calibration_batches(**SMALL))
        _assert_same(before, _state(digits_cnn.model))
    finally:
        restore(digits_cnn.model)


def test_layer_error_measures_without_the_user_formats(digits_cnn) -> None:
    """The isolated rows are those of the dense model: the user's formats elsewhere do not leak in."""
    b = digits_cnn.calibration_batches(**SMALL)
    plain = error.layer_error(digits_cnn, ["int4"], batches=b, evaluate=False, progress=False)
    _user_formats(digits_cnn.model)
    try:
        with_user = error.layer_error(digits_cnn, ["int4"], batches=b, evaluate=False, progress=False)
        assert current_formats(digits_cnn.model) == {"conv2": "2:4+int8", "fc2": "int4"}
    finally:
        restore(digits_cnn.model)
    cols = ["weight_sqnr_db", "output_sqnr_db", "output_nl2"]
    assert with_user[cols].to_numpy().tolist() == plain[cols].to_numpy().tolist()


def test_state_comes_back_after_an_analysis_fails(digits_cnn) -> None:
    _user_formats(digits_cnn.model)
    try:
        before = _state(digits_cnn.model)
        bad = [torch.full_like(digits_cnn.calibration_batches(**SMALL)[0], float("nan"))]
        with pytest.raises(NonFiniteError):
            error.layer_error(digits_cnn, ["int4"], batches=bad, progress=False)
        _assert_same(before, _state(digits_cnn.model))
    finally:
        restore(digits_cnn.model)


def test_suspended_takes_formats_off_and_puts_the_same_objects_back(digits_cnn) -> None:
    _user_formats(digits_cnn.model)
    try:
        before = _state(digits_cnn.model)
        with suspended(digits_cnn.model):
            assert current_formats(digits_cnn.model) == {}
            assert all(activation_quantizer(m) is None for m in eligible_layers(digits_cnn.model).values())
            apply(digits_cnn.model, "int4")  # whatever happens inside stays inside
        _assert_same(before, _state(digits_cnn.model))
    finally:
        restore(digits_cnn.model)


@pytest.mark.parametrize("seed", range(4))
def test_random_user_states_survive_random_analyses(digits_cnn, seed: int) -> None:
    """Random per-layer formats (with or without activation quantizers) and a random analysis: bit-exact state."""
    rng = random.Random(seed)
    names = list(eligible_layers(digits_cnn.model))
    choices = ["int8", "int4", "fp8_e4m3", "binary", "2:4", "2:4+int8", None]
    try:
        for name in names:
            fmt = rng.choice(choices)
            if fmt is not None:
                table = apply(digits_cnn.model, {name: fmt}, activations=rng.random() < 0.5 and fmt != "2:4") \
                    if not (fmt.startswith("2:4") and name == "conv1") else None
                assert table is None or (table["status"] == "applied").all()
        before = _state(digits_cnn.model)
        pick = rng.sample([k for k in ANALYSES if k not in ("adaquant", "post_training_quantize", "frontier")], 2)
        for key in pick:
            ANALYSES[key](digits_cnn, digits_cnn.calibration_batches(n_batches=1))
            _assert_same(before, _state(digits_cnn.model))
    finally:
        restore(digits_cnn.model)
