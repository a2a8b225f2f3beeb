"""CPU paths of :func:`workbench.kernels.linear` and :func:`workbench.kernels.xnor_gemm`: compressed weights that
pay off without a GPU.

Paths (the names :func:`workbench.kernels.linear_path` returns; the chosen one is the one that runs):

- ``"cpu:xnor-numba"``: binary weights and ``activations="binary"`` (Hubara/Courbariaux et al. 2016, XNOR-Net
  Rastegari et al. 2016): the activations' signs are packed 64 per ``uint64`` word, and
  ``y = scale·(K − 2·popcount(x_bits XOR w_bits)) + bias`` with a parallel numba popcount loop
  (:mod:`workbench.kernels.cpu_numba`). Exact in integers; one float32 rounding for the scale.
- ``"cpu:xnor-torch"``: the same product without numba: both operands expanded to ±1 int8 (the weight's once, cached
  on the packed weight) and ``torch._int_mm`` (oneDNN int8 GEMM, exact int32).
- ``"cpu:gemv-numba"``: up to :data:`GEMV_ROWS` rows of real activations, any format: dequantize-in-the-loop,
  one pass over the compressed weight (the batch-1 case is bound by reading the weight); e4m3 is decoded by bit
  moves (:func:`workbench.kernels.cpu_numba.e4m3_to_f32`, checked against torch's cast for all 256 codes).
- ``"cpu:tiles-torch"``: more rows, or no numba: tile-wise dequantize :data:`TILE_ROWS` output rows at a time to
  float32 (unscaled codes, exact), ``x @ tile.T`` by torch's float32 GEMM, the row scale applied to the output.

All paths accumulate in float32 (int32 for popcounts), apply the per-row scale after accumulation and the bias last,
and round once to ``x.dtype``: the kernels lab's contract. numba is an optional extra (``pip install
'workbench[cpu]'``); without it every format still runs (``cpu:tiles-torch`` / ``cpu:xnor-torch``).
"""

from __future__ import annotations

import importlib.util
import numpy as np
import torch

from workbench.errors import DeviceError
from workbench.kernels.bits import tail_mask, unpack_positions, unpack_signs
from workbench.kernels.packing import PackedWeight

GEMV_ROWS = 16  # rows of x up to which the numba dequantize-in-the-loop kernels run (above: tiles + torch GEMM)
TILE_ROWS = 256  # output rows dequantized per tile on the torch path
SERIAL_WORK = 1 << 20  # below this many inner-loop steps a numba kernel runs on one thread (no fork/join wait)
CPU_IMPLS: tuple[str, ...] = ("auto", "numba", "torch")
CPU_PATHS: tuple[str, ...] = ("cpu:xnor-numba", "cpu:xnor-torch", "cpu:gemv-numba", "cpu:tiles-torch")


def numba_available() -> bool:
    """True when numba can be imported (checked without importing it)."""
    return importlib.util.find_spec("numba") is not None


def _nb():
    from workbench.kernels import cpu_numba

    return cpu_numba


class _threads:
    """Run numba kernels on one thread when the work is small: a parallel region waits for every worker, and on a
    loaded machine a descheduled worker costs a whole time slice (milliseconds) for microseconds of work."""

    def __init__(self, work: int):
        self.serial = work < SERIAL_WORK

    def __enter__(self):
        if self.serial:
            import numba

            self.prev = numba.get_num_threads()
            numba.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        if self.serial:
            import numba

            numba.set_num_threads(self.prev)
        return False


def cpu_path(rows: int, packed: PackedWeight, activations: str = "real", impl: str = "auto") -> str:
    """The CPU path for ``rows`` rows of activations times ``packed``; ``impl`` ``"numba"`` / ``"torch"`` forces one."""
    if impl == "numba" and not numba_available():
        raise DeviceError("the numba CPU kernels need numba (pip install 'workbench[cpu]'); use impl='torch'")
    use_numba = impl == "numba" or (impl == "auto" and numba_available())
    if packed.fmt == "binary" and activations == "binary":
        return "cpu:xnor-numba" if use_numba else "cpu:xnor-torch"
    if use_numba and rows <= GEMV_ROWS:
        return "cpu:gemv-numba"
    return "cpu:tiles-torch"


# ---------------------------------------------------------------------------------------------------- operands


def words64(words32: torch.Tensor, k: int) -> np.ndarray:
    """int32 sign words ``[R, ceil(k/32)]`` as ``uint64`` words ``[R, ceil(k/64)]`` (bit ``c % 64`` of word
    ``c // 64``: the same bit order, since x86 is little-endian), with every bit past ``k`` cleared."""
    w = words32.detach().to("cpu", torch.int32).clone()
    if w.numel():
        w[:, -1] &= tail_mask(k)
    if w.shape[1] % 2:
        w = torch.nn.functional.pad(w, (0, 1))
    return w.contiguous().view(torch.int64).numpy().view(np.uint64)


def sign_words64(x: torch.Tensor, k: int) -> np.ndarray:
    """Pack the signs of float32 rows ``[M, k]`` (``x >= 0`` → 1) into ``uint64`` words (numba)."""
    out = np.empty((x.shape[0], -(-k // 64)), dtype=np.uint64)
    with _threads(x.numel()):
        _nb().sign_pack64(x.numpy(), k, out)
    return out


def _cached(packed: PackedWeight, key: str, make):
    if key not in packed._cache:
        packed._cache[key] = make()
    return packed._cache[key]


def _scale_or_ones(packed: PackedWeight) -> np.ndarray:
    if packed.scale is not None:
        return packed.scale.numpy()
    return _cached(packed, "cpu_ones", lambda: np.ones(packed.out_features, dtype=np.float32))


# ---------------------------------------------------------------------------------------------------- paths


def _gemv_numba(x32: torch.Tensor, packed: PackedWeight) -> torch.Tensor:
    nb = _nb()
    m, n = x32.shape[0], packed.out_features
    k = packed.in_features
    xa = x32.numpy()
    out = np.empty((m, n), dtype=np.float32)
    with _threads(m * n * k):
        _gemv_dispatch(nb, xa, packed, out)
    return torch.from_numpy(out)


def _gemv_dispatch(nb, xa: np.ndarray, packed: PackedWeight, out: np.ndarray) -> None:
    k = packed.in_features
    fmt = packed.fmt
    if fmt == "int8":
        nb.gemv_int8(xa, packed.values.numpy(), packed.scale.numpy(), out)
    elif fmt == "fp8_e4m3":
        nb.gemv_e4m3(xa, packed.values.view(torch.uint8).numpy(), packed.scale.numpy(), out)
    elif fmt == "binary":
        bits = _cached(packed, "cpu_words64", lambda: words64(packed.values, k))
        nb.gemv_binary(xa.view(np.uint32), bits, k, packed.scale.numpy(), out)
    else:
        pos = packed.positions.numpy().view(np.uint32)
        scale = _scale_or_ones(packed)
        if fmt == "2:4+fp8_e4m3":
            nb.gemv_24_e4m3(xa, packed.values.view(torch.uint8).numpy(), pos, scale, out)
        elif packed.values.dtype == torch.bfloat16:
            nb.gemv_24_bf16(xa, packed.values.view(torch.int16).numpy().view(np.uint16), pos, scale, out)
        else:
            vals = packed.values
            if vals.dtype != torch.float32:  # fp16: numba has no fp16 arithmetic; a float32 copy, made once
                vals = _cached(packed, "cpu_values_f32", lambda: packed.values.float().contiguous())
            nb.gemv_24_f32(xa, vals.numpy(), pos, scale, out)


def unscaled_rows(packed: PackedWeight, n0: int, n1: int) -> torch.Tensor:
    """Rows ``n0:n1`` of the dense weight before the row scale, float32 (exact: codes, ±1, or the 2:4 values)."""
    k = packed.in_features
    fmt = packed.fmt
    if fmt in ("int8", "fp8_e4m3"):
        return packed.values[n0:n1].float()
    if fmt == "binary":
        return unpack_signs(packed.values[n0:n1], k, torch.float32)
    r = n1 - n0
    pos = unpack_positions(packed.positions[n0:n1], k // 2).reshape(r, k // 4, 2)
    dense = torch.zeros(r, k // 4, 4, dtype=torch.float32)
    dense.scatter_(-1, pos, packed.values[n0:n1].float().reshape(r, k // 4, 2))
    return dense.reshape(r, k)


def _tiles_torch(x32: torch.Tensor, packed: PackedWeight, tile_rows: int = TILE_ROWS) -> torch.Tensor:
    n = packed.out_features
    y = torch.empty(x32.shape[0], n, dtype=torch.float32)
    for n0 in range(0, n, tile_rows):
        n1 = min(n, n0 + tile_rows)
        torch.matmul(x32, unscaled_rows(packed, n0, n1).T, out=y[:, n0:n1])
    if packed.scale is not None:
        y *= packed.scale
    return y


def _signs_int8(packed: PackedWeight) -> torch.Tensor:
    """The binary weight as ±1 int8, transposed ``[K8, N]`` for ``torch._int_mm``, K zero-padded to a multiple of 8
    (zeros add nothing; torch 2.13's CPU ``_int_mm`` returns garbage for K = 1). Made once, cached."""

    def make() -> torch.Tensor:
        k = packed.in_features
        s = unpack_signs(packed.values, k, torch.float32).to(torch.int8)
        return torch.nn.functional.pad(s, (0, -k % 8)).T.contiguous()

    return _cached(packed, "cpu_signs_int8_t", make)


def xnor_counts(x32: torch.Tensor, packed: PackedWeight, path: str) -> torch.Tensor:
    """``sign(x) · sign(W)ᵀ`` as exact int32 (``K − 2·popcount``) by ``path`` (``cpu:xnor-numba``/``-torch``)."""
    k, n = packed.in_features, packed.out_features
    if path == "cpu:xnor-numba":
        a = sign_words64(x32, k)
        b = _cached(packed, "cpu_words64", lambda: words64(packed.values, k))
        out = np.empty((x32.shape[0], n), dtype=np.int32)
        with _threads(out.size * b.shape[1]):
            _nb().xnor_int(a, b, k, out)
        return torch.from_numpy(out)
    xs = torch.nn.functional.pad(torch.where(x32 >= 0, 1, -1).to(torch.int8), (0, -k % 8))
    return torch._int_mm(xs, _signs_int8(packed))


def linear_cpu(x2: torch.Tensor, packed: PackedWeight, bias: torch.Tensor | None, activations: str, path: str) -> torch.Tensor:
    """Run CPU ``path`` on 2-D CPU ``x2``; float32 accumulation, scale, bias, one rounding to ``x2.dtype``."""
    x32 = x2.to(torch.float32).contiguous()
    if activations == "binary" and not path.startswith("cpu:xnor"):
        x32 = torch.where(x32 >= 0, 1.0, -1.0)
    if x32.shape[0] == 0:
        y = torch.empty(0, packed.out_features, dtype=torch.float32)
    elif path == "cpu:xnor-numba":
        k = packed.in_features
        a = sign_words64(x32, k)
        b = _cached(packed, "cpu_words64", lambda: words64(packed.values, k))
        out = np.empty((x32.shape[0], packed.out_features), dtype=np.float32)
        with _threads(out.size * b.shape[1]):
            _nb().xnor_linear(a, b, k, packed.scale.numpy(), out)
        y = torch.from_numpy(out)
    elif path == "cpu:xnor-torch":
        y = xnor_counts(x32, packed, path).float() * packed.scale
    elif path == "cpu:gemv-numba":
        y = _gemv_numba(x32, packed)
    else:
        y = _tiles_torch(x32, packed)
    if bias is not None:
        y = y + bias.float()
    return y.to(x2.dtype)


def xnor_gemm_cpu(a_bits: torch.Tensor, b_bits: torch.Tensor, k: int) -> torch.Tensor:
    """Exact int32 ``k − 2·popcount(a XOR b)`` of int32 sign words (padding bits ignored), by the numba kernel."""
    a, b = words64(a_bits, k), words64(b_bits, k)
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.int32)
    if out.size:
        with _threads(out.size * a.shape[1]):
            _nb().xnor_int(a, b, k, out)
    return torch.from_numpy(out)


__all__ = [
    "GEMV_ROWS",
    "TILE_ROWS",
    "CPU_IMPLS",
    "CPU_PATHS",
    "numba_available",
    "cpu_path",
    "words64",
    "sign_words64",
    "unscaled_rows",
    "xnor_counts",
    "linear_cpu",
    "xnor_gemm_cpu",
]
