"""The fused numba error sums (workbench.kernels.cpu_sums, through workbench.quant.metrics) against float64 brute
force: random, tie-heavy, all-zero and saturating inputs; the kernels' rounding bit for bit torch's; x − q exact in
float32; the weight report's fused path equal to the torch path."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import workbench.kernels.cpu as kcpu
import workbench.quant.metrics as qm
from workbench.formats import parse_format, quantize
from workbench.formats.numbers import compute_scale, round_number
from workbench.quant.metrics import block_stats, channel_rounding_sums, metric_sums, sqnr_db
from workbench.reports.weights import weight_report

pytest.importorskip("numba")

NUMBERS = ["fp8_e4m3", "fp8_e5m2", "int8", "int4"]
ROWS, COLS = 96, 768  # 73,728 elements: above FUSED_MIN, so the fused kernels run


def _brute(x: torch.Tensor, q: torch.Tensor) -> list[float]:
    x64, q64 = x.double().flatten(), q.double().flatten()
    return [float((x64 * x64).sum()), float((q64 * q64).sum()), float(((x64 - q64) ** 2).sum()),
            float((x64 * q64).sum())]


def _close(got, want, rel: float = 1e-12) -> None:
    for g, w in zip(got, want):
        assert g == pytest.approx(w, rel=rel, abs=0 if w else 1e-300), (got, want)


def _inputs(number: str) -> dict[str, torch.Tensor]:
    """random, tie-heavy (values on the midpoints of the scaled grid, power-of-two scales), all-zero rows, and
    saturating rows (large values at the row's amax and tiny ones that underflow)."""
    g = torch.Generator().manual_seed(7)
    n = parse_format(number).number
    rnd = torch.randn(ROWS, COLS, generator=g) * 0.02
    # ties: row r has scale 2^-(r % 9): amax = fmax · scale; the rest are midpoints between grid values
    grid = torch.arange(256, dtype=torch.uint8).view(n.dtype).float() if n.kind == "float" else \
        torch.arange(-n.fmax, n.fmax + 1.0)
    grid = grid[torch.isfinite(grid)].unique()
    mids = (grid[1:] + grid[:-1]) / 2
    idx = torch.randint(0, len(mids), (ROWS, COLS), generator=g)
    scales = torch.tensor([2.0 ** -(r % 9) for r in range(ROWS)]).reshape(-1, 1)
    ties = mids[idx] * scales
    ties[:, 0] = n.fmax * scales[:, 0]
    zeros = rnd.clone()
    zeros[::3] = 0.0
    sat = rnd.clone()
    sat[:, ::97] = 1e4
    sat[:, 1::5] = 1e-30
    return {"random": rnd, "ties": ties, "zero rows": zeros, "all zero": torch.zeros(ROWS, COLS), "saturating": sat}


def _reference_q(x: torch.Tensor, number: str) -> torch.Tensor:
    n = parse_format(number).number
    return round_number(x, n, compute_scale(x, n, "channel"))


@pytest.mark.parametrize("number", NUMBERS)
def test_channel_rounding_sums_equal_float64_brute_force(number: str) -> None:
    n = parse_format(number).number
    for what, x in _inputs(number).items():
        q = _reference_q(x, number)
        assert torch.equal(quantize(x, number), q)  # the reference is quantize()'s per-channel rounding
        sx, amax = block_stats(x)
        assert torch.equal(amax, x.abs().amax(dim=1)), what
        assert sx == pytest.approx(_brute(x, x)[0], rel=1e-12, abs=1e-300), what
        _close(channel_rounding_sums(x, n, amax), _brute(x, q))
        _close(metric_sums(x, q), _brute(x, q))


@pytest.mark.parametrize("number", NUMBERS)
def test_kernel_rounding_is_torch_rounding_bit_for_bit(number: str) -> None:
    """The q the fused kernels score (written out by their twins) is round_number's, every bit, on grid values,
    midpoints and their float32 neighbours at every scale of the tie-heavy input, and on the other inputs."""
    from workbench.kernels import cpu_sums

    n = parse_format(number).number
    for what, x in _inputs(number).items():
        s = compute_scale(x, n, "channel")
        xa, sa = x.numpy(), s.flatten().contiguous().numpy()
        if n.kind == "int":
            got = cpu_sums.rounded(xa, sa, "int", fmax=float(n.fmax))
        else:
            fi = torch.finfo(n.dtype)
            got = cpu_sums.rounded(xa, sa, "float", mbits=round(-math.log2(fi.eps)), emin=round(math.log2(fi.tiny)))
        want = round_number(x, n, s)
        assert torch.equal(torch.from_numpy(got).view(torch.int32), want.view(torch.int32)), what
    if n.kind == "float":  # the whole unscaled grid, its midpoints and their neighbours (scale 1)
        grid = torch.arange(256, dtype=torch.uint8).view(n.dtype).float()
        grid = grid[torch.isfinite(grid)].unique()
        mids = (grid[1:] + grid[:-1]) / 2
        v = torch.cat([grid, mids, torch.nextafter(mids, torch.tensor(math.inf)),
                       torch.nextafter(mids, torch.tensor(-math.inf)), torch.tensor([-0.0, 1e-40, -1e-44])])
        fi = torch.finfo(n.dtype)
        got = cpu_sums.rounded(v.reshape(1, -1).contiguous().numpy(), np.ones(1, np.float32), "float",
                               mbits=round(-math.log2(fi.eps)), emin=round(math.log2(fi.tiny)))
        want = v.to(n.dtype).float()
        assert torch.equal(torch.from_numpy(got).view(torch.int32).flatten(), want.view(torch.int32))


@pytest.mark.parametrize("number", NUMBERS)
def test_difference_is_exact_in_float32(number: str) -> None:
    """x − q rounded to nearest on a scaled grid holding 0 is exact in float32 (Sterbenz), saturation included."""
    for what, x in _inputs(number).items():
        q = _reference_q(x, number)
        assert torch.equal((x - q).double(), x.double() - q.double()), what


def test_fused_and_torch_paths_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The report on a bf16 layer large enough for the kernels equals the torch path to 1e-12 and quantize()'s
    SQNR to 1e-9; without numba it runs the torch path."""
    g = torch.Generator().manual_seed(3)
    w = (torch.randn(2 * ROWS, COLS, generator=g) * 0.02).bfloat16()
    save_file({"lin.weight": w}, str(tmp_path / "w.safetensors"))
    fused = weight_report(str(tmp_path / "w.safetensors"), NUMBERS, [], progress=False).set_index("format")
    calls = []
    real = kcpu.numba_available
    monkeypatch.setattr(kcpu, "numba_available", lambda: (calls.append(1), False)[1])
    plain = weight_report(str(tmp_path / "w.safetensors"), NUMBERS, [], progress=False).set_index("format")
    assert calls and real()
    for fmt in NUMBERS:
        for col in ("weight_sqnr_db", "weight_nl2", "weight_cosine"):
            assert fused.loc[fmt, col] == pytest.approx(plain.loc[fmt, col], rel=1e-12)
        wf = w.float()
        assert fused.loc[fmt, "weight_sqnr_db"] == pytest.approx(sqnr_db(wf, quantize(wf, fmt)), rel=1e-9)
    assert qm.FUSED_MIN <= w.numel()


@pytest.mark.parametrize("number", NUMBERS)
def test_bfloat16_blocks_equal_their_float32_copies(number: str) -> None:
    """The kernels decode bfloat16 themselves: the sums of a bf16 block equal those of its float32 copy exactly."""
    n = parse_format(number).number
    for what, x in _inputs(number).items():
        xb = x.bfloat16()
        if not bool(torch.isfinite(xb).all()):
            continue
        sb, ab = block_stats(xb)
        sf, af = block_stats(xb.float())
        assert sb == sf and torch.equal(ab, af), what
        assert channel_rounding_sums(xb, n, ab) == channel_rounding_sums(xb.float(), n, af), what


def test_bf16_file_report_equals_float32_file_report(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(5)
    w = (torch.randn(2 * ROWS, COLS, generator=g) * 0.02).bfloat16()
    save_file({"lin.weight": w}, str(tmp_path / "b.safetensors"))
    save_file({"lin.weight": w.float()}, str(tmp_path / "f.safetensors"))
    cols = ["format", "weight_sqnr_db", "weight_nl2", "weight_cosine"]
    b = weight_report(str(tmp_path / "b.safetensors"), NUMBERS, [], progress=False)[cols]
    f = weight_report(str(tmp_path / "f.safetensors"), NUMBERS, [], progress=False)[cols]
    assert b.equals(f)
