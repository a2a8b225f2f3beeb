"""workbench.models.capture.capture against direct computation: inputs and outputs by layer, hooks always removed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench.errors import LayerError, NonFiniteError, OptionError
from workbench.models.capture import capture


class Shared(nn.Module):
    """fc is called twice per forward; tail after it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(4, 4)
        self.tail = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(torch.relu(self.fc(torch.relu(self.fc(x)))))


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_inputs_and_outputs_match_direct_computation() -> None:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    batches = [torch.randn(4, 6), torch.randn(2, 6)]
    got = capture(net, ["0", "2"], batches)
    for i, x in enumerate(batches):
        h = net[0](x)
        assert torch.equal(got.inputs["0"][i], x)
        assert torch.equal(got.outputs["0"][i], h)
        assert torch.equal(got.inputs["2"][i], torch.relu(h))
        assert torch.equal(got.outputs["2"][i], net(x))
    assert not got.outputs["2"][0].requires_grad
    assert _hooks(net) == 0


def test_layer_called_twice_and_stop_early() -> None:
    net = Shared()
    x = torch.randn(3, 4)
    got = capture(net, "fc", x)
    assert len(got.inputs["fc"]) == 2
    assert torch.equal(got.inputs["fc"][1], torch.relu(net.fc(x)))
    calls = []
    net.tail.register_forward_hook(lambda *a: calls.append(1))
    early = capture(net, ["fc"], [x, x], stop_early=True, keep="outputs")
    assert len(early.outputs["fc"]) == 2 and early.inputs["fc"] == [] and calls == []  # tail never ran
    assert torch.equal(early.outputs["fc"][0], net.fc(x))


def test_custom_run_keep_and_pairs() -> None:
    net = nn.Sequential(nn.Linear(2, 2))
    seen = []
    got = capture(net, {"first": net[0]}, [{"x": torch.ones(1, 2)}], run=lambda b: seen.append(net(b["x"])),
                  keep="inputs")
    assert len(seen) == 1 and got.outputs["first"] == [] and got.pairs("first")[0][1] is None


def test_hooks_removed_when_the_run_raises_and_errors_named() -> None:
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    with pytest.raises(NonFiniteError, match="layer '1': input of shape \\(1, 2\\) contains 2 NaN/inf values, here"):
        capture(net, ["1"], torch.full((1, 2), float("nan")), finite=True, context=", here")
    assert _hooks(net) == 0

    def boom(_b):
        net(torch.ones(1, 2))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        capture(net, ["0"], torch.ones(1, 2), run=boom)
    assert _hooks(net) == 0
    with pytest.raises(LayerError, match="no layer named 'fc'.*layers: 0, 1"):
        capture(net, ["fc"], torch.ones(1, 2))
    with pytest.raises(OptionError, match="keep must be one of"):
        capture(net, ["0"], torch.ones(1, 2), keep="grads")


def test_grad_keeps_the_graph() -> None:
    net = nn.Sequential(nn.Linear(2, 2))
    x = torch.ones(1, 2, requires_grad=True)
    got = capture(net, ["0"], x, grad=True)
    got.outputs["0"][0].sum().backward()
    assert x.grad is not None


def test_head_input_is_the_last_linear_layers_input_and_keeps_the_mode():
    import torch
    from torch import nn

    from workbench.errors import LayerError
    from workbench.models.capture import head_input

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    net.train()
    x = torch.randn(7, 6)
    got = head_input(net, x)
    net.eval()
    with torch.no_grad():
        want = net[2](net[1](net[0](x)))  # eval mode: BatchNorm uses its running statistics
    net.train()
    assert torch.equal(got, want) and net.training
    with pytest.raises(LayerError, match="no nn.Linear layer"):
        head_input(nn.Sequential(nn.Conv1d(1, 1, 1)), torch.randn(2, 1, 4))
