"""linear(x, pack(w, fmt)): the Triton kernels (interpreter on CPU, compiled on CUDA) against float64 products.

Every check draws fresh random inputs and hands the kernel an output filled with NaN, so an element the kernel
forgets to write fails the check. Bounds: |y − y64| <= u·|y64| + (K+2)·2^-23·(|x|·|w|ᵀ + |b|) with u = 2^-8 (bf16),
2^-10 (fp16), 2^-23 (fp32), y64 the float64 product with the exact dequantized weight.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest
import torch

from test_kernels_support import assert_close_to_exact, exact_weight  # sets TRITON_INTERPRET=1 without CUDA
from workbench.errors import FormatError, OptionError, ShapeError, WorkbenchError
from workbench.kernels import TRITON_FORMATS, DeviceError, DTypeError, interpreter_mode, linear, linear_path, pack, unpack

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
BACKEND = "triton" if CUDA else "emulated"
_seed = itertools.count(1000)


def _fresh(shape, dtype, scale=1.0):
    g = torch.Generator().manual_seed(next(_seed))
    return (torch.randn(shape, generator=g) * scale).to(dtype).to(DEVICE)


@pytest.fixture(autouse=True)
def _needs_interpreter_or_gpu():
    if not CUDA and not interpreter_mode():
        pytest.skip("triton was imported in compiled mode before these tests ran; run this file in its own process")


# (rows of x, out_features, in_features): M=1 (GEMV), M not a multiple of the block, K and N with tails
SHAPES = [(1, 24, 96), (3, 40, 72), (17, 16, 100)]  # 2:4 takes the gather kernel up to 4 rows


@pytest.mark.parametrize("fmt", TRITON_FORMATS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_kernel_matches_float64_reference(fmt, dtype):
    for m, n, k in SHAPES:
        if fmt.startswith("2:4") and k % 4:
            k += 4 - k % 4
        w = _fresh((n, k), dtype)
        p = pack(w, fmt)
        x = _fresh((m, k), dtype)
        bias = _fresh((n,), dtype) if m != 1 else None
        out = torch.full((m, n), float("nan"), dtype=dtype, device=DEVICE)
        y = linear(x, p, bias, backend=BACKEND, out=out)
        assert y.data_ptr() == out.data_ptr() and y.dtype == dtype
        assert_close_to_exact(y.cpu(), x.cpu(), exact_weight(p.to("cpu")), None if bias is None else bias.cpu())


@pytest.mark.parametrize("fmt", TRITON_FORMATS)
def test_kernel_agrees_with_the_torch_backend_and_the_fake_quantized_weight(fmt):
    from workbench.formats import quantize

    w = _fresh((32, 64), torch.float32)
    x = _fresh((3, 2, 64), torch.float32)  # leading dimensions are kept
    p = pack(w, fmt)
    y_kernel = linear(x, p, backend=BACKEND)
    y_torch = linear(x, p, backend="torch")
    y_fake = x @ quantize(w.cpu(), fmt, granularity="channel").to(DEVICE).T
    assert y_kernel.shape == (3, 2, 32)
    torch.testing.assert_close(y_kernel, y_torch, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y_torch, y_fake, rtol=1e-5, atol=1e-5)


def test_large_weights_keep_the_error_relative():
    # fp8 scales of very different rows: the per-row scale is applied after accumulation
    w = _fresh((16, 64), torch.float32) * torch.logspace(-4, 4, 16, device=DEVICE)[:, None]
    x = _fresh((4, 64), torch.bfloat16)
    for fmt in ("fp8_e4m3", "2:4+fp8_e4m3"):
        p = pack(w, fmt)
        out = torch.full((4, 16), float("nan"), dtype=torch.bfloat16, device=DEVICE)
        y = linear(x, p, backend=BACKEND, out=out)
        assert_close_to_exact(y.cpu(), x.cpu(), exact_weight(p.to("cpu")), None)


def test_auto_backend_on_cpu_is_a_cpu_path():
    p = pack(torch.randn(8, 16), "fp8_e4m3")
    x = torch.randn(2, 16)
    assert linear_path(x, p).startswith("cpu:")
    assert linear_path(x, p, "torch") == "torch"
    assert linear_path(x, p, "emulated") == "interpreter"
    torch.testing.assert_close(linear(x, p), x @ unpack(p).T)


def test_empty_batch():
    p = pack(torch.randn(8, 16), "binary")
    assert linear(torch.randn(0, 16), p, backend=BACKEND if CUDA else "emulated").shape == (0, 8)


@pytest.mark.parametrize(
    "make,err,words",
    [
        (lambda p: linear(torch.randn(2, 16, dtype=torch.float64), p), DTypeError, "float64"),
        (lambda p: linear(torch.ones(2, 16, dtype=torch.int32), p), DTypeError, "int32"),
        (lambda p: linear(torch.randn(2, 12), p), ShapeError, "in_features=16"),
        (lambda p: linear(torch.randn(2, 16), p, bias=torch.randn(7)), ShapeError, r"\(8,\)"),
        (lambda p: linear(torch.randn(2, 16), p, backend="cuda"), OptionError, "backend.*'torch'"),
        (lambda p: linear(torch.randn(2, 16), torch.randn(8, 16)), FormatError, "PackedWeight"),
        (lambda p: linear(torch.randn(2, 16), p, backend="emulated", out=torch.empty(3, 8)), ShapeError, "out"),
    ],
)
def test_bad_input_raises_clear_errors(make, err, words):
    p = pack(torch.randn(8, 16), "2:4")
    with pytest.raises(err, match=words) as info:
        make(p)
    assert isinstance(info.value, WorkbenchError)


def test_packed_weight_from_another_format_is_refused():
    p = pack(torch.randn(8, 16), "binary")
    p.fmt = "2:4"
    with pytest.raises(FormatError, match="2:4"):
        linear(torch.randn(1, 16), p)


_SCRIPT = """
import torch
from workbench.kernels import pack, linear, DeviceError
p = pack(torch.randn(8, 32), "{fmt}")
x = torch.randn(3, 32)
{body}
"""


def _run(body: str, fmt: str = "2:4", interpret: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(fmt=fmt, body=body)], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow  # a fresh interpreter that imports torch and triton (several seconds on 2 cores)
@pytest.mark.skipif(CUDA, reason="checks the CPU refusal of the GPU-only path")
def test_imports_stay_light_and_cpu_tensors_to_the_gpu_path_are_refused():
    r = _run(
        "import sys, workbench, workbench.kernels, kernels\n"
        "assert 'triton' not in sys.modules, 'import workbench pulled in triton'\n"
        "assert not torch.cuda.is_initialized(), 'import workbench initialised CUDA'\n"
        "print('IMPORTS-CLEAN')\n"
        "import triton\n"  # compiled mode: triton imported without TRITON_INTERPRET
        "try:\n    linear(x, p, backend='triton')\nexcept DeviceError as e:\n    print('REFUSED', e)\n"
        "try:\n    linear(x, p, backend='emulated')\nexcept DeviceError as e:\n    print('NO-INTERP', e)\n"
    )
    assert r.returncode == 0, r.stderr
    assert "REFUSED" in r.stdout and "CUDA" in r.stdout and "TRITON_INTERPRET" in r.stdout
    assert "NO-INTERP" in r.stdout and "IMPORTS-CLEAN" in r.stdout


@pytest.mark.slow  # a fresh interpreter that imports torch and triton (several seconds on 2 cores)
def test_triton_backend_runs_in_the_interpreter_under_triton_interpret():
    r = _run("y = linear(x, p, backend='triton')\nprint('MAXERR', (y - x @ __import__('workbench.kernels', fromlist=['unpack']).unpack(p).T).abs().max().item())", fmt="fp8_e4m3", interpret=True)
    assert r.returncode == 0, r.stderr
    assert float(r.stdout.split("MAXERR")[1]) < 1e-4


@pytest.mark.slow  # a fresh interpreter that imports torch and triton (several seconds on 2 cores)
def test_every_kernel_compiles_for_an_h100_without_a_gpu():
    """Triton's full pipeline down to a cubin for sm_90 (bundled ptxas), in a process with the interpreter off."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    r = subprocess.run(
        [sys.executable, "-m", "kernels.aot_check", "--arch", "90", "--quick"], env=env, capture_output=True, text=True,
        timeout=300,
    )
    if r.returncode and "ptxas" in r.stderr and "not found" in r.stderr.lower():
        pytest.skip("no ptxas in this triton install")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 7 and all("cubin=True" in ln for ln in lines), r.stdout
    by_name = {ln.split()[0]: ln for ln in lines}
    assert "popc=True" in by_name["kernel=xnor_gemm[popcount]"]
    assert "tensor_cores=True" in by_name["kernel=xnor_gemm[mma]"] and "tensor_cores=True" in lines[0]


def test_autotune_pruning_keeps_a_config_for_every_block_m_and_drops_spilling_tiles():
    from kernels import binary_linear, compressed_linear
    from kernels._runtime import prune_by_tile, tile_fits

    for mod in (compressed_linear, binary_linear):
        for bm in (16, 32, 64, 128):
            kept = prune_by_tile(mod.KERNEL.configs, {}, BLOCK_M=bm)
            assert len(kept) >= 2 and all(tile_fits(bm, c) for c in kept), (mod.__name__, bm)
    # measured with ptxas for sm_90: 64 rows × 128 K with 4 warps spilled ~400 bytes, 128 × 64 with 8 warps ~0
    cfg = {(c.kwargs["BLOCK_N"], c.kwargs["BLOCK_K"], c.num_warps): c for c in compressed_linear.KERNEL.configs}
    assert not tile_fits(64, cfg[(64, 128, 4)]) and tile_fits(128, cfg[(128, 64, 8)])
    assert tile_fits(16, cfg[(16, 512, 4)])


@pytest.mark.parametrize("fmt", ["fp8_e4m3", "2:4+fp8_e4m3"])
def test_large_batch_fp8_path_uses_the_exact_codes(fmt):
    # the auto path for > 64 rows on sm89+ (torch._scaled_mm; CPU torch has it too): W's codes are exact,
    # only x is rounded to e4m3 per row, so the error is that of x's rounding (2^-4 relative per element at most)
    from workbench.kernels.api import _scaled_mm, fp8_codes

    w = torch.randn(32, 64)
    p = pack(w, fmt)
    codes = fp8_codes(p)
    assert codes.dtype == torch.float8_e4m3fn
    assert torch.equal(codes.float() * p.scale[:, None], unpack(p))  # float32 weight: unpack is q·scale
    x = torch.randn(80, 64, dtype=torch.bfloat16)
    y = _scaled_mm(x, p, None)
    ref = x.double() @ exact_weight(p).T
    bound = 2.0**-4 * (x.double().abs() @ exact_weight(p).abs().T) + 2.0**-8 * ref.abs()
    assert ((y.double() - ref).abs() <= bound).all()


def test_large_batch_binary_path_is_exact_up_to_rounding():
    from workbench.kernels.api import _dense_binary

    w = torch.randn(24, 70)
    p = pack(w, "binary")
    x = torch.randn(80, 70, dtype=torch.float32)
    b = torch.randn(24)
    assert_close_to_exact(_dense_binary(x, p, b), x, exact_weight(p), b)
