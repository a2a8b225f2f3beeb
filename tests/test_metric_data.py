"""The metric lab's digits-cnn features: read with the one capture helper, under a format set in place of the
user's, whose own formats come back exactly (same objects, bit-identical weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.errors import DataError
from workbench.metric import cnn_features


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _penultimate_by_hand(model, x):
    """fc2's input of DigitsCNN, read by a forward pre-hook of its own (not the capture helper under test)."""
    grabbed = []
    h = model.fc2.register_forward_pre_hook(lambda _m, a: grabbed.append(a[0].detach().clone()))
    try:
        with torch.no_grad():
            model.eval()
            model(x)
    finally:
        h.remove()
    return grabbed[0].double().numpy()


def test_cnn_features_keep_the_users_formats_and_match_a_reference():
    h = wb.load_model("digits-cnn")
    x, y = h.test_data()
    dense_ref = _penultimate_by_hand(wb.load_model("digits-cnn").model, x)  # a fresh, unformatted copy
    wb.apply(h.model, {"fc1": "int4", "fc2": "int4"}, activations=True)
    h.model.train()
    user_ref = _penultimate_by_hand(h.model, x)  # the model as the user has it
    h.model.train()
    before_formats, before_state = wb.current_formats(h.model), _state(h.model)
    params = {n: h.model.get_submodule(n).parametrizations.weight[0] for n in ("fc1", "fc2")}
    quant = {n: wb.formats.activation_quantizer(h.model.get_submodule(n)) for n in ("fc1", "fc2")}
    assert all(q is not None for q in quant.values())

    dense, yd = cnn_features(h, "dense")
    binary, _ = cnn_features(h, "binary")
    as_is, _ = cnn_features(h, None)

    np.testing.assert_array_equal(dense, dense_ref)  # the user's formats were lifted for "dense"
    np.testing.assert_array_equal(as_is, user_ref)  # ... and in effect for None
    assert not np.array_equal(as_is, dense) and not np.array_equal(binary, dense)
    assert dense.shape == (len(y), 64) and np.array_equal(yd, np.asarray(y))

    assert wb.current_formats(h.model) == before_formats == {"fc1": "int4", "fc2": "int4"}
    for n in ("fc1", "fc2"):
        assert h.model.get_submodule(n).parametrizations.weight[0] is params[n]
        assert wb.formats.activation_quantizer(h.model.get_submodule(n)) is quant[n]
    after = _state(h.model)
    assert after.keys() == before_state.keys() and all(torch.equal(after[k], before_state[k]) for k in after)
    assert h.model.training  # the mode is left as it was


def test_cnn_features_failure_gives_the_users_formats_back():
    h = wb.load_model("digits-cnn")
    wb.apply(h.model, {"fc2": "int4"}, activations=True)
    before_formats, before_state = wb.current_formats(h.model), _state(h.model)
    param = h.model.fc2.parametrizations.weight[0]
    with pytest.raises(wb.errors.WorkbenchError):
        cnn_features(h, "no-such-format")
    with pytest.raises(DataError, match="split"):
        cnn_features(h, "int4", split="validation")
    assert wb.current_formats(h.model) == before_formats
    assert h.model.fc2.parametrizations.weight[0] is param
    after = _state(h.model)
    assert all(torch.equal(after[k], before_state[k]) for k in after)
