"""Shared helpers for the kernel tests: exact float64 weights and the error bound each output dtype allows."""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():  # the kernels run in Triton's interpreter on CPU (fixed when triton is imported)
    os.environ.setdefault("TRITON_INTERPRET", "1")

from workbench.kernels import PackedWeight, unpack_positions, unpack_signs  # noqa: E402

# unit roundoff of the output dtype (round to nearest), times 2 for margin
OUT_U = {torch.float32: 2.0**-23, torch.bfloat16: 2.0**-8, torch.float16: 2.0**-10}
ACC_U = 2.0**-23  # fp32 accumulation, per term (margin 2)


def exact_weight(p: PackedWeight) -> torch.Tensor:
    """The dense weight a packed weight stands for, in float64 with no rounding (independent of ``unpack``)."""
    out, k = p.shape
    if p.fmt == "binary":
        return unpack_signs(p.values, k, torch.float64) * p.scale.double()[:, None]
    if p.fmt in ("fp8_e4m3", "int8"):
        return p.values.double() * p.scale.double()[:, None]
    vals = p.values.double()
    if p.scale is not None:
        vals = vals * p.scale.double()[:, None]
    pos = unpack_positions(p.positions, k // 2)
    dense = torch.zeros(out, k, dtype=torch.float64)
    cols = (torch.arange(k // 2) // 2 * 4)[None, :] + pos
    dense.scatter_(1, cols, vals)
    return dense


def assert_close_to_exact(y: torch.Tensor, x: torch.Tensor, w64: torch.Tensor, bias: torch.Tensor | None) -> None:
    """|y − y64| <= u_out·|y64| + K·u_acc·(|x|·|w|ᵀ + |bias|) elementwise, y64 the float64 product."""
    x64 = x.double().reshape(-1, x.shape[-1])
    ref = x64 @ w64.T
    mag = x64.abs() @ w64.abs().T
    if bias is not None:
        ref = ref + bias.double()
        mag = mag + bias.double().abs()
    got = y.double().reshape(ref.shape)
    assert torch.isfinite(got).all(), "kernel left NaN/inf in the output (unwritten elements of a poisoned out?)"
    k = x.shape[-1]
    bound = OUT_U[y.dtype] * ref.abs() + (k + 2) * ACC_U * mag + 1e-30
    err = (got - ref).abs()
    worst = (err / bound).max().item()
    assert worst <= 1.0, f"error {err.max().item():.3g} exceeds the bound (ratio {worst:.3g}) for {y.dtype}"


def test_exact_weight_agrees_with_unpack_for_float32_weights():
    from workbench.kernels import FORMATS, pack, unpack

    torch.manual_seed(1)
    w = torch.randn(6, 64)
    for fmt in FORMATS:
        p = pack(w, fmt)
        # unpack rounds q·scale to float32 once; the float64 weight is within half an ulp of it
        diff = (unpack(p).double() - exact_weight(p)).abs()
        assert (diff <= 2.0**-24 * exact_weight(p).abs()).all(), fmt


def test_bound_catches_a_wrong_result():
    import pytest

    x = torch.randn(2, 8)
    w = torch.randn(3, 8).double()
    y = (x.double() @ w.T).float()
    assert_close_to_exact(y, x, w, None)
    with pytest.raises(AssertionError):
        assert_close_to_exact(y * (1 + 1e-4), x, w, None)
    with pytest.raises(AssertionError):
        assert_close_to_exact(torch.full_like(y, float("nan")), x, w, None)


def CUDA_OR_INTERP() -> bool:
    """True when kernels can run here: a GPU, or triton in interpreter mode."""
    from workbench.kernels import interpreter_mode

    return torch.cuda.is_available() or interpreter_mode()
