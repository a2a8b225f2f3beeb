"""The CPU paths of linear(x, pack(w, fmt)) and xnor_gemm against float64 products (workbench.kernels.cpu).

Same bound as the Triton kernels' tests (test_kernels_support.assert_close_to_exact): |y − y64| <= u·|y64| +
(K+2)·2^-23·(|x|·|w|ᵀ + |b|), y64 the float64 product with the exact dequantized weight. Every path is run
explicitly (numba and torch), at batch 1, 7 and 64, on K not a multiple of 64 (the padding bits must be masked).
"""

from __future__ import annotations

import itertools
import pickle

import pytest
import torch

from test_kernels_support import assert_close_to_exact, exact_weight
from workbench.errors import DTypeError, FormatError, OptionError, ShapeError
from workbench.kernels import FORMATS, linear, linear_path, pack, pack_signs, unpack, unpack_signs, xnor_gemm, xnor_path
from workbench.kernels import cpu
from workbench.kernels.bits import tail_mask

NUMBA = cpu.numba_available()
PATHS = ["cpu:tiles-torch"] + (["cpu:gemv-numba"] if NUMBA else [])
XNOR_PATHS = ["cpu:xnor-torch"] + (["cpu:xnor-numba"] if NUMBA else [])
_seed = itertools.count(7000)


def _fresh(shape, dtype=torch.float32):
    g = torch.Generator().manual_seed(next(_seed))
    return torch.randn(shape, generator=g).to(dtype)


def _k_for(fmt: str, k: int) -> int:
    return k + (-k % 4) if fmt.startswith("2:4") else k


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_cpu_path_matches_the_float64_product(fmt, path):
    for (m, n, k), dtype in itertools.product([(1, 24, 100), (7, 40, 72), (64, 17, 130)], [torch.float32, torch.bfloat16, torch.float16]):
        k = _k_for(fmt, k)
        p = pack(_fresh((n, k), dtype), fmt)
        x = _fresh((m, k), dtype)
        bias = _fresh((n,), dtype) if m != 1 else None
        y = cpu.linear_cpu(x, p, bias, "real", path)
        assert y.dtype == dtype and y.shape == (m, n)
        assert_close_to_exact(y, x, exact_weight(p), bias)


@pytest.mark.parametrize("fmt", FORMATS)
def test_linear_dispatches_cpu_tensors_to_the_cpu_paths(fmt):
    k = _k_for(fmt, 100)
    p = pack(_fresh((24, k)), fmt)
    for m in (1, 7, 64):
        x = _fresh((m, k))
        path = linear_path(x, p)
        want = "cpu:gemv-numba" if NUMBA and m <= cpu.GEMV_ROWS else "cpu:tiles-torch"
        assert path == want and linear_path(x, p, "cpu") == want
        out = torch.full((m, 24), float("nan"))
        y = linear(x, p, out=out)
        assert y.data_ptr() == out.data_ptr()
        assert_close_to_exact(y, x, exact_weight(p), None)
    x3 = _fresh((2, 3, k))  # leading dimensions are kept
    torch.testing.assert_close(linear(x3, p), linear(x3, p, backend="torch"), rtol=1e-5, atol=1e-5)


def test_without_numba_the_torch_paths_run(monkeypatch):
    monkeypatch.setattr(cpu, "numba_available", lambda: False)
    p = pack(_fresh((24, 100)), "binary")
    x = _fresh((1, 100))
    assert linear_path(x, p) == "cpu:tiles-torch"
    assert linear_path(x, p, activations="binary") == "cpu:xnor-torch"
    assert_close_to_exact(linear(x, p), x, exact_weight(p), None)
    with pytest.raises(Exception, match="numba"):
        cpu.cpu_path(1, p, "real", impl="numba")


@pytest.mark.parametrize("path", XNOR_PATHS)
def test_xnor_popcount_equals_the_pm1_float_product_exactly(path):
    for m, n, k in [(1, 24, 100), (7, 40, 64), (64, 33, 130), (3, 5, 1)]:
        w = _fresh((n, k))
        x = _fresh((m, k))
        p = pack(w, "binary")
        sx, sw = torch.where(x >= 0, 1.0, -1.0), torch.where(w >= 0, 1.0, -1.0)
        counts = cpu.xnor_counts(x, p, path)
        assert counts.dtype == torch.int32
        assert torch.equal(counts.double(), sx.double() @ sw.double().T)
        bias = _fresh((n,))
        y = cpu.linear_cpu(x, p, bias, "binary", path)
        assert_close_to_exact(y, sx, exact_weight(p), bias)


def test_binary_activations_through_linear_match_the_reference_on_sign_x():
    p = pack(_fresh((40, 100)), "binary")
    x = _fresh((64, 100))
    assert linear_path(x, p, activations="binary") == ("cpu:xnor-numba" if NUMBA else "cpu:xnor-torch")
    y = linear(x, p, activations="binary")
    ref = linear(x, p, backend="torch", activations="binary")
    sx = torch.where(x >= 0, 1.0, -1.0)
    torch.testing.assert_close(ref, sx @ unpack(p).T)
    assert_close_to_exact(y, sx, exact_weight(p), None)
    # other formats binarize x, then the real-activation path
    q = pack(_fresh((40, 100)), "int8")
    assert_close_to_exact(linear(x[:3], q, activations="binary"), sx[:3], exact_weight(q), None)


@pytest.mark.skipif(not NUMBA, reason="numba not installed")
def test_xnor_gemm_on_cpu_takes_numba_and_ignores_junk_padding_bits():
    g = torch.Generator().manual_seed(3)
    for m, n, k in [(5, 7, 100), (64, 9, 64), (2, 3, 33)]:
        a, b = torch.randn(m, k, generator=g), torch.randn(n, k, generator=g)
        ab, bb = pack_signs(a), pack_signs(b)
        if k % 32:  # junk in the padding bits of the last word
            junk = ~tail_mask(k)
            ab[:, -1] |= junk
            bb[::2, -1] |= junk
        assert xnor_path(ab, bb) == "cpu:numba"
        got = xnor_gemm(ab, bb, k)
        want = unpack_signs(pack_signs(a), k, torch.float64) @ unpack_signs(pack_signs(b), k, torch.float64).T
        assert torch.equal(got.double(), want)
        assert torch.equal(got, xnor_gemm(ab, bb, k, backend="torch"))


def test_int8_packs_like_the_format_and_has_no_triton_kernel():
    from workbench.formats import quantize

    w = _fresh((8, 33)) * torch.logspace(-3, 3, 8)[:, None]
    w[3] = 0
    p = pack(w, "int8")
    assert p.values.dtype == torch.int8 and p.values.abs().max() <= 127
    assert torch.equal(unpack(p), quantize(w, "int8", granularity="channel"))
    with pytest.raises(FormatError, match="'int8'.*backend='cpu'"):
        linear_path(_fresh((1, 33)), p, "triton")


def test_a_packed_weight_from_another_layout_version_is_refused():
    p = pack(_fresh((8, 64)), "binary")
    x = _fresh((2, 64))
    old = pickle.loads(pickle.dumps(p))
    old.layout = 0
    for call in (lambda: linear(x, old), lambda: unpack(old), lambda: linear(x, old, backend="torch")):
        with pytest.raises(FormatError, match="layout version 0.*reads layout version 1"):
            call()
    unversioned = pickle.loads(pickle.dumps(p))
    del unversioned.__dict__["layout"]  # pickled before PackedWeight recorded its layout
    with pytest.raises(FormatError, match="layout version None"):
        linear(x, unversioned)
    assert torch.equal(linear(x, pickle.loads(pickle.dumps(p))), linear(x, p))  # same version: accepted


def test_bad_input_is_refused_before_any_work():
    p = pack(_fresh((8, 64)), "int8")
    x = _fresh((2, 64))
    out = torch.full((3, 8), 5.0)
    with pytest.raises(ShapeError, match="out must be"):
        linear(x, p, out=out)
    assert (out == 5.0).all()
    with pytest.raises(OptionError, match="activations"):
        linear(x, p, activations="ternary")
    with pytest.raises(DTypeError):
        linear(x.to(torch.int32), p)
    with pytest.raises(ShapeError, match="in_features=64"):
        linear(_fresh((2, 63)), p, backend="cpu")
    with pytest.raises(OptionError, match="backend"):
        linear(x, p, backend="gpu")


def test_empty_batch_on_cpu():
    for fmt in FORMATS:
        p = pack(_fresh((8, 64)), fmt)
        assert linear(torch.zeros(0, 64), p).shape == (0, 8)
        assert linear(torch.zeros(0, 64), p, activations="binary").shape == (0, 8)


def test_cpu_bench_table_times_every_method_against_f32_in_the_same_run(tmp_path):
    from workbench.kernels import cpu_bench

    df, meta = cpu_bench.bench_table({"tiny": (16, 128)}, batches=(1, 3), budget_s=0.001, flush=False, copy_mb=8)
    assert set(df.method) == set(cpu_bench.METHODS) and len(df) == 2 * len(cpu_bench.METHODS)
    assert (df.loc[df.method == "f32", "speedup_vs_f32"] == 1).all() and (df.best_us > 0).all()
    assert df.loc[df.method == "int8", "vs_torch_int8"].notna().all()
    assert (df.loc[df.method == "xnor", "path"] == ("cpu:xnor-numba" if NUMBA else "cpu:xnor-torch")).all()
    # bytes: the stored weight + float32 x in + y out, and gbps / copy bandwidth = bw_fraction
    r = df[(df.method == "int8") & (df.batch == 3)].iloc[0]
    assert r.bytes == 16 * 128 + 4 * 16 + 4 * 3 * (128 + 16)
    assert abs(r.bw_fraction - r.bytes / r.best_us / 1e3 / meta["copy_gbps"]) < 1e-9
    path = cpu_bench.save_results(df, meta, tmp_path / "cpu.json")
    back, meta2 = cpu_bench.load_results(path)
    assert meta2["source"] == "measured" and len(back) == len(df)
    from workbench.widgets.kernels import KernelBenchView, cpu_table_html

    html = cpu_table_html(path)
    assert "CPU kernels, measured" in html and "xnor" in html
    view = KernelBenchView(path=tmp_path / "none.json", cpu_path=path, show_cpu=True)
    assert view.cpu in view.ui.children
    assert "No CPU benchmark" in cpu_table_html(tmp_path / "none.json")


@pytest.mark.skipif(not NUMBA, reason="numba not installed")
def test_e4m3_bit_decoding_equals_torchs_cast_for_every_finite_code():
    import numpy as np

    codes = torch.arange(256, dtype=torch.uint8)
    values = codes.view(torch.float8_e4m3fn).float()
    finite = torch.isfinite(values)
    p = pack(torch.ones(1, 256), "fp8_e4m3")
    p.values = codes[None].view(torch.float8_e4m3fn).clone()
    p.scale = torch.ones(1)
    eye = torch.eye(256)  # row c of x picks weight column c: y[c] = decoded code c
    y = cpu.linear_cpu(eye, p, None, "real", "cpu:gemv-numba")[:, 0]
    assert torch.equal(y[finite], values[finite])
    assert np.isfinite(y.numpy()).all()
