"""xnor_gemm: k − 2·popcount(a XOR b) against the ±1 float product, with garbage in the padding bits."""

from __future__ import annotations

import itertools

import pytest
import torch

from test_kernels_support import CUDA_OR_INTERP  # noqa: F401  (sets TRITON_INTERPRET=1 without CUDA)
from workbench.errors import ShapeError, WorkbenchError
from workbench.kernels import DTypeError, pack_signs, unpack_signs, xnor_gemm, xnor_gemm_reference, xnor_path

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
BACKEND = "triton" if CUDA else "emulated"
_seed = itertools.count(7)


def _signs(rows: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """±1 rows and their words, with the padding bits of the last word set at random (they must be ignored)."""
    g = torch.Generator().manual_seed(next(_seed))
    pm = torch.where(torch.rand(rows, k, generator=g) < 0.5, 1.0, -1.0)
    words = pack_signs(pm)
    tail = k % 32
    if tail:
        junk = torch.randint(0, 2**31 - 1, (rows,), generator=g, dtype=torch.int64) << tail
        words[:, -1] = ((words[:, -1].long() & ((1 << tail) - 1)) | (junk & 0x7FFFFFFF)).to(torch.int32)
        assert torch.equal(unpack_signs(words, k), pm)
    return pm, words


@pytest.mark.parametrize("m,n,k", [(1, 9, 32), (5, 7, 70), (20, 18, 100), (3, 4, 1)])
def test_reference_equals_the_pm1_product(m, n, k):
    a, wa = _signs(m, k)
    b, wb = _signs(n, k)
    assert torch.equal(xnor_gemm_reference(wa, wb, k), (a @ b.T).to(torch.int32))


@pytest.mark.parametrize("method", ["popcount", "mma", "int8"])
@pytest.mark.parametrize("m,n,k", [(1, 9, 64), (13, 11, 70), (17, 20, 33)])
def test_kernels_equal_the_pm1_product(method, m, n, k):
    if not CUDA and not CUDA_OR_INTERP():
        pytest.skip("triton was imported in compiled mode before these tests ran")
    if method == "int8" and CUDA and (m <= 16 or n % 8):
        pytest.skip("torch._int_mm on CUDA needs more than 16 rows and N % 8 == 0")
    a, wa = _signs(m, k)
    b, wb = _signs(n, k)
    out = torch.full((m, n), -(2**31), dtype=torch.int32, device=DEVICE)  # poison: impossible for |dot| <= k
    got = xnor_gemm(wa.to(DEVICE), wb.to(DEVICE), k, backend=BACKEND, method=method, out=out)
    assert got.data_ptr() == out.data_ptr()
    assert torch.equal(got.cpu(), (a @ b.T).to(torch.int32))


def test_paths():
    _, w = _signs(4, 40)
    from workbench.kernels.cpu import numba_available

    cpu_path = "cpu:numba" if numba_available() else "torch"
    assert xnor_path(w, w) == ("triton:popcount" if CUDA else cpu_path)
    big = torch.zeros(128, 2, dtype=torch.int32)
    assert xnor_path(big, big, backend="torch") == "torch"
    if not CUDA and CUDA_OR_INTERP():
        assert xnor_path(big, big, backend="emulated") == "interpreter:mma"
        assert xnor_path(big, big, backend="emulated", method="int8") == "interpreter:int8"


def test_sign_expansion_kernel():
    if not CUDA and not CUDA_OR_INTERP():
        pytest.skip("triton was imported in compiled mode before these tests ran")
    from kernels.xnor_gemm import expand_signs

    pm, words = _signs(11, 45)  # junk in the padding bits
    got = expand_signs(words.to(DEVICE), 45).cpu()
    assert got.dtype == torch.int8 and got.shape == (11, 64)
    assert torch.equal(got[:, :45], pm.to(torch.int8)) and (got[:, 45:] == 0).all()


@pytest.mark.parametrize(
    "args,err,words",
    [
        ((torch.zeros(2, 2, dtype=torch.int64), torch.zeros(2, 2, dtype=torch.int32), 40), DTypeError, "int32"),
        ((torch.zeros(2, 2, dtype=torch.int32), torch.zeros(2, 3, dtype=torch.int32), 40), ShapeError, "ceil"),
        ((torch.zeros(2, 2, dtype=torch.int32), torch.zeros(2, 2, dtype=torch.int32), 0), ShapeError, "positive"),
        ((torch.zeros(2, dtype=torch.int32), torch.zeros(2, 2, dtype=torch.int32), 40), ShapeError, "2-D"),
    ],
)
def test_bad_input(args, err, words):
    with pytest.raises(err, match=words) as info:
        xnor_gemm(*args)
    assert isinstance(info.value, WorkbenchError)
