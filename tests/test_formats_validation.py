"""Bad input to the formats API: a WorkbenchError naming the argument and the value (truncated) before any work,
nothing changed; and apply/restore from two threads at once."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

from workbench.errors import (
    DeviceError,
    FormatError,
    LayerError,
    NonFiniteError,
    ShapeError,
    WorkbenchError,
)
from workbench.formats import apply, current_formats, model_lock, parse_format, quantize, restore


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("bad", ["int\u0668", "2:\u0664", "fp8_e4m3\u200b", "2:4\x00", "int" + "9" * 5000,
                                 "x" * 300, "2:4\n+int8", "int0009", "unstructured 150%", "unstructured 50",
                                 "unstructured", "2:4 greedy", "4:8-T fastest", "2:99999"])
def test_malformed_names_are_format_errors_with_a_short_message(bad: str) -> None:
    with pytest.raises(FormatError) as e:
        parse_format(bad)
    msg = str(e.value)
    assert len(msg) < 700 and "2:4" in msg and "Known formats" in msg
    assert "\x00" not in msg and "\u0668" not in msg  # the value is shown escaped (repr)


def test_format_names_are_ascii_and_digits_are_ascii_digits() -> None:
    assert parse_format("int8").number.bits == 8
    with pytest.raises(FormatError, match="ASCII"):
        parse_format("int\u0668")  # ARABIC-INDIC DIGIT EIGHT: str.isdigit() and re's \d accept it


@pytest.mark.parametrize("layers,match", [
    ("re:(", "regular expression"),
    (3, "`layers` takes"),
    ([3], "layer keys are names"),
    (b"0", "`layers` takes"),
    ("x" * 300, "characters"),
    ("0\x00", "no eligible layer"),
])
def test_bad_layer_selectors_are_layer_errors(layers, match) -> None:
    model = _model()
    before = _state(model)
    with pytest.raises(LayerError, match=match) as e:
        apply(model, "2:4", layers=layers)
    assert len(str(e.value)) < 700
    assert current_formats(model) == {} and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("mapping,exc", [({3: "int8"}, LayerError), ({"re:(": "int8"}, LayerError),
                                         ({"0": "int\u0668"}, FormatError), ({"0": 8}, FormatError)])
def test_bad_format_mappings(mapping, exc) -> None:
    model = _model()
    with pytest.raises(exc):
        apply(model, mapping)
    assert current_formats(model) == {}


def test_not_a_model_and_bad_granularity() -> None:
    with pytest.raises(LayerError, match="nn.Module"):
        apply("model", "int8")
    with pytest.raises(FormatError, match="granularity"):
        apply(_model(), "int8", granularity="row")


def test_zero_size_layer_is_skipped_or_refused_by_name() -> None:
    model = nn.Sequential(nn.Linear(0, 4), nn.Linear(4, 4))
    rep = apply(model, "int8").set_index("layer")
    assert rep.loc["0", "status"] == "skipped" and "no entries" in rep.loc["0", "reason"]
    assert current_formats(model) == {"1": "int8"}
    restore(model)
    with pytest.raises(ShapeError, match="layer '0'"):
        apply(model, "int8", layers=["0", "1"])
    assert current_formats(model) == {}


def test_meta_tensors_are_refused_naming_the_layer() -> None:
    model = nn.Sequential(nn.Linear(8, 4, device="meta"))
    with pytest.raises(DeviceError, match="layer '0'.*meta"):
        apply(model, "2:4")
    assert current_formats(model) == {}


def test_quantize_refuses_non_finite_under_a_scale_and_keeps_the_raw_cast() -> None:
    x = torch.tensor([[1.0, 2.0, float("inf"), 3.0], [1.0, -1.0, 0.5, 0.25]])
    for gran in ("channel", "tensor"):
        with pytest.raises(NonFiniteError, match="`x`.*1 NaN/inf"):
            quantize(x, "int8", granularity=gran)
    with pytest.raises(NonFiniteError):
        quantize(torch.tensor([float("nan"), 1.0]), "fp8_e4m3", granularity="tensor")
    raw = quantize(x, "int8", granularity=None)  # the raw rounding takes inf as torch does: clamped
    assert torch.equal(raw[1], torch.round(x[1])) and raw[0, 2] == 127
    assert quantize(torch.empty(0, 4), "2:4+int8").shape == (0, 4)
    assert isinstance(NonFiniteError("x"), WorkbenchError)


def test_apply_from_two_threads_is_safe() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(8, 8) for _ in range(40)])
    before = _state(model)
    errors: list[BaseException] = []

    def work(fmt: str) -> None:
        try:
            for _ in range(15):
                apply(model, fmt)
                current_formats(model)
                restore(model)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f,)) for f in ("2:4", "int8", "fp8_e4m3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert current_formats(model) == {}
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_the_model_lock_serializes_apply() -> None:
    model = _model()
    done = threading.Event()
    lock = model_lock(model)
    assert model_lock(model) is lock
    with lock:
        t = threading.Thread(target=lambda: (apply(model, "int8"), done.set()))
        t.start()
        t.join(timeout=0.3)
        assert not done.is_set() and current_formats(model) == {}  # waits for the lock
    t.join(timeout=30)
    assert done.is_set() and current_formats(model) == {"0": "int8", "2": "int8"}
