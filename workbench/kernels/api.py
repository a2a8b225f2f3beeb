"""``linear(x, packed)`` and ``xnor_gemm(a_bits, b_bits, k)``: one call, several paths.

Backends (the same code path runs in CI without a GPU):

- ``"torch"``: the plain-torch reference (:mod:`workbench.kernels.reference`): dequantize, matmul in fp32.
- ``"triton"``: the Triton kernel in ``kernels/``; needs CUDA tensors, unless ``TRITON_INTERPRET=1`` is set, in which
  case Triton's interpreter runs it on CPU tensors.
- ``"emulated"``: the same Triton kernel run by Triton's interpreter on CPU copies of the tensors (any device; slow:
  for tests and small demos).
- ``"auto"``: CUDA tensors with triton installed → the kernel for batch ≤ 64 rows; above that (compute bound) the
  best library path: ``torch._scaled_mm`` for ``"fp8_e4m3"`` and ``"2:4+fp8_e4m3"`` (dense e4m3 codes) on sm89+
  with bf16 activations (activations are then also rounded to e4m3 with a per-row scale), cuSPARSELt
  (``to_sparse_semi_structured``) for ``"2:4"``, a dense GEMM on the ±1 expansion for ``"binary"`` (``"dense"``),
  the kernel otherwise. CPU tensors → the CPU paths (as ``"cpu"``). ``"int8"`` has no Triton kernel: on CUDA it
  takes ``"torch"``.
- ``"cpu"``: the CPU implementations of :mod:`workbench.kernels.cpu` (numba kernels when numba is installed,
  vectorized torch otherwise): XNOR-popcount for binary weights with ``activations="binary"``, dequantize-in-the-loop
  GEMV up to 16 rows, tile-wise dequantize + float32 GEMM above.

:func:`linear_path` says which path a call takes, without running it; :func:`linear` runs exactly that path (the
CPU paths are named ``"cpu:<kernel>-<numba|torch>"``, so the name also says whether numba ran).
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import torch

from workbench.errors import DeviceError, DTypeError, ShapeError
from workbench.kernels.bits import pack_signs, tail_mask, unpack_positions, unpack_signs, words_for  # pack_signs: doctests
from workbench.kernels.packing import TRITON_FORMATS, PackedWeight, check_packed, pack, unpack  # pack: doctests
from workbench.kernels.reference import linear_reference, xnor_gemm_reference

Backend = Literal["auto", "torch", "triton", "emulated", "cpu"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "triton", "emulated", "cpu")
Activations = Literal["real", "binary"]
ACTIVATIONS: tuple[str, ...] = ("real", "binary")
ACT_DTYPES: tuple[torch.dtype, ...] = (torch.bfloat16, torch.float16, torch.float32)
SMALL_BATCH = 64  # rows up to which the kernel is the auto choice on CUDA


def triton_available() -> bool:
    """True when triton can be imported (checked without importing it)."""
    return importlib.util.find_spec("triton") is not None


def interpreter_mode() -> bool:
    """True when Triton kernels in this process run in Triton's interpreter.

    Triton fixes this when it is first imported, from ``TRITON_INTERPRET``; before that, the environment decides.
    """
    import os
    import sys

    if "triton" in sys.modules and triton_available():
        return _kernel_module("_runtime").interpreting()
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in {"1", "true", "on", "yes"}


def _ensure_interpreter(what: str) -> None:
    """Make the interpreter this process's mode (sets TRITON_INTERPRET=1 if triton is not imported yet)."""
    import os
    import sys

    _need_triton(what)
    if "triton" not in sys.modules:
        os.environ["TRITON_INTERPRET"] = "1"
    if not interpreter_mode():
        raise DeviceError(
            f"{what} runs the Triton kernel in Triton's interpreter, but triton was already imported in compiled mode "
            "in this process; set TRITON_INTERPRET=1 in the environment before triton is imported (or use a fresh "
            "process), or use backend='torch'"
        )


def _check_backend(backend: str) -> None:
    from workbench.checks import option

    option("backend", backend, BACKENDS, where="kernels")


def _need_triton(what: str) -> None:
    if not triton_available():
        raise DeviceError(f"{what} needs triton (pip install 'workbench[kernels]'); use backend='torch'")


def _check_linear_inputs(x: torch.Tensor, packed: PackedWeight, bias: torch.Tensor | None) -> None:
    check_packed(packed, "linear")
    fmt, shape = packed.fmt, packed.shape
    if not isinstance(x, torch.Tensor):
        raise DTypeError(f"linear({fmt!r}, weight {shape}): x must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in ACT_DTYPES:
        raise DTypeError(
            f"linear({fmt!r}, weight {shape}): activations must be bfloat16, float16 or float32, got {x.dtype}"
        )
    if x.dim() == 0 or x.shape[-1] != packed.in_features:
        raise ShapeError(
            f"linear({fmt!r}): x of shape {tuple(x.shape)} does not fit weight {shape} "
            f"(last dimension must be in_features={packed.in_features})"
        )
    if x.device != packed.device:
        raise DeviceError(f"linear({fmt!r}, weight {shape}): x is on {x.device}, the packed weight on {packed.device}")
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or not bias.is_floating_point():
            raise DTypeError(f"linear({fmt!r}, weight {shape}): bias must be a floating tensor")
        if tuple(bias.shape) != (packed.out_features,):
            raise ShapeError(
                f"linear({fmt!r}): bias of shape {tuple(bias.shape)} does not fit weight {shape} (needs ({packed.out_features},))"
            )
        if bias.device != x.device:
            raise DeviceError(f"linear({fmt!r}, weight {shape}): bias is on {bias.device}, x on {x.device}")


def _sm() -> tuple[int, int]:
    return torch.cuda.get_device_capability()


def _check_activations(activations: str) -> None:
    from workbench.checks import option

    option("activations", activations, ACTIVATIONS, where="kernels.linear")


def linear_path(x: torch.Tensor, packed: PackedWeight, backend: Backend = "auto", activations: Activations = "real") -> str:
    """The path :func:`linear` takes: ``"torch"``, ``"triton"``, ``"interpreter"``, ``"scaled_mm"``, ``"cusparselt"``,
    ``"dense"``, or one of the CPU paths ``"cpu:xnor-numba"``, ``"cpu:xnor-torch"``, ``"cpu:gemv-numba"``,
    ``"cpu:tiles-torch"`` (:mod:`workbench.kernels.cpu`)."""
    _check_backend(backend)
    _check_activations(activations)
    if backend == "torch":
        return "torch"
    rows = x.numel() // max(1, x.shape[-1])
    if backend == "cpu" or (backend == "auto" and x.device.type == "cpu"):
        if x.device.type != "cpu":
            raise DeviceError(
                f"linear({packed.fmt!r}, weight {packed.shape}): backend='cpu' runs on CPU tensors, x is on {x.device}"
            )
        from workbench.kernels.cpu import cpu_path

        return cpu_path(rows, packed, activations)
    if packed.fmt not in TRITON_FORMATS:
        if backend == "auto":
            return "torch"
        from workbench.errors import FormatError

        raise FormatError(
            f"linear({packed.fmt!r}, weight {packed.shape}): backend={backend!r} has Triton kernels for "
            f"{', '.join(map(repr, TRITON_FORMATS))}; {packed.fmt!r} runs on backend='cpu' (CPU tensors) or 'torch'"
        )
    if backend == "emulated":
        _ensure_interpreter(f"linear({packed.fmt!r}) backend='emulated'")
        return "interpreter"
    if backend == "triton":
        _need_triton("backend='triton'")
        if interpreter_mode():
            return "interpreter"
        if x.device.type == "cuda":
            return "triton"
        raise DeviceError(
            f"linear({packed.fmt!r}, weight {packed.shape}): backend='triton' runs on CUDA tensors, x is on {x.device} "
            "(set TRITON_INTERPRET=1 to run the kernel in Triton's interpreter, or use backend='emulated' or 'torch')"
        )
    # auto
    if x.device.type != "cuda" or not triton_available() or interpreter_mode():
        return "torch"
    if rows > SMALL_BATCH:
        n, k = packed.shape
        fp8 = packed.fmt in ("fp8_e4m3", "2:4+fp8_e4m3")
        if fp8 and x.dtype == torch.bfloat16 and _sm() >= (8, 9) and n % 16 == 0 and k % 16 == 0:
            return "scaled_mm"
        if packed.fmt == "2:4" and x.dtype in (torch.bfloat16, torch.float16) and packed.dtype == x.dtype:
            return "cusparselt"
        if packed.fmt == "binary":
            return "dense"
    return "triton"


def _kernel_module(name: str):
    """``kernels.<name>`` (imports triton). Imported by full name, so it works even where ``kernels`` resolves as a
    namespace package (an editable install made before ``kernels/__init__.py`` existed)."""
    import importlib

    return importlib.import_module(f"kernels.{name}")


def _run_kernel(x2: torch.Tensor, packed: PackedWeight, bias: torch.Tensor | None, out: torch.Tensor) -> torch.Tensor:
    n, k = packed.shape
    if packed.fmt == "binary":
        return _kernel_module("binary_linear").run(x2, packed.values, packed.scale, bias, out, n, k)
    return _kernel_module("compressed_linear").run(x2, packed.values, packed.positions, packed.scale, bias, out, n, k)


def fp8_codes(packed: PackedWeight) -> torch.Tensor:
    """The dense ``[out, in]`` e4m3 codes of an fp8 packed weight (2:4+fp8: zeros where a weight was dropped)."""
    if packed.fmt == "fp8_e4m3":
        return packed.values
    out, k = packed.shape
    pos = unpack_positions(packed.positions, k // 2).reshape(out, k // 4, 2)
    dense = torch.zeros(out, k // 4, 4, dtype=torch.float16, device=packed.device)  # e4m3 codes are exact in fp16
    dense.scatter_(-1, pos, packed.values.to(torch.float16).reshape(out, k // 4, 2))
    return dense.reshape(out, k).to(torch.float8_e4m3fn)


def _scaled_mm(x2: torch.Tensor, packed: PackedWeight, bias: torch.Tensor | None) -> torch.Tensor:
    """FP8 GEMM (sm89+): x rounded to e4m3 per row (scale amax/448), W's e4m3 codes and row scales; fp32 dequant."""
    xf = x2.float()
    sx = (xf.abs().amax(dim=1, keepdim=True) / 448.0).clamp_min(torch.finfo(torch.float32).tiny)
    xq = (xf / sx).to(torch.float8_e4m3fn)
    return torch._scaled_mm(
        xq, fp8_codes(packed).t(), scale_a=sx, scale_b=packed.scale[None, :].contiguous(),
        bias=None if bias is None else bias.to(x2.dtype), out_dtype=x2.dtype,
    )


def _dense_binary(x2: torch.Tensor, packed: PackedWeight, bias: torch.Tensor | None) -> torch.Tensor:
    """Large-batch binary: expand the signs once to ±1 in x's dtype, one dense GEMM, then the row scale."""
    n, k = packed.shape
    if packed.device.type == "cuda" and triton_available():
        signs = _kernel_module("xnor_gemm").expand_signs(packed.values, k)[:, :k].to(x2.dtype)
    else:
        signs = unpack_signs(packed.values, k, x2.dtype)
    y = (x2 @ signs.T).float() * packed.scale[None, :]
    if bias is not None:
        y = y + bias.float()
    return y.to(x2.dtype)


def _cusparselt(x2: torch.Tensor, packed: PackedWeight, bias: torch.Tensor | None) -> torch.Tensor:
    key = f"semi_structured_{x2.dtype}"
    if key not in packed._cache:
        from torch.sparse import to_sparse_semi_structured

        packed._cache[key] = to_sparse_semi_structured(unpack(packed).to(x2.dtype))
    return torch.nn.functional.linear(x2, packed._cache[key], None if bias is None else bias.to(x2.dtype))


def linear(
    x: torch.Tensor,
    packed: PackedWeight,
    bias: torch.Tensor | None = None,
    backend: Backend = "auto",
    out: torch.Tensor | None = None,
    activations: Activations = "real",
) -> torch.Tensor:
    """``x @ unpack(packed).T + bias`` for ``x`` of shape ``[..., in_features]``, in ``x``'s dtype.

    fp32 accumulation, one rounding to ``x.dtype`` at the end (the ``"scaled_mm"`` path also rounds ``x`` to e4m3).
    ``out`` (optional, ``[rows, out_features]`` contiguous, ``x.dtype``) receives the result of the kernel paths.
    ``activations="binary"``: ``x`` is binarized first (``sign(x)``, ``sign(0) = +1``, the packing rule), so
    ``y = sign(x) @ unpack(packed).T + bias``; with binary weights on the CPU this is the XNOR-popcount GEMM.
    Which path ran: :func:`linear_path` with the same arguments.

    >>> w = torch.tensor([[1.0, -4.0, 3.0, 2.0]])
    >>> linear(torch.ones(1, 4), pack(w, "2:4"), backend="torch").tolist()
    [[-1.0]]
    """
    _check_backend(backend)
    _check_activations(activations)
    _check_linear_inputs(x, packed, bias)
    path = linear_path(x, packed, backend, activations)
    n, k = packed.shape
    lead = tuple(x.shape[:-1])
    if out is not None and (
        tuple(out.shape) != (x.numel() // k, n) or out.dtype != x.dtype or not out.is_contiguous() or out.device != x.device
    ):
        raise ShapeError(
            f"linear({packed.fmt!r}): out must be a contiguous {x.dtype} tensor of shape {(x.numel() // k, n)} on "
            f"{x.device}, got {tuple(out.shape)} {out.dtype}"
        )
    x2 = x.reshape(-1, k)
    if path.startswith("cpu:"):
        from workbench.kernels.cpu import linear_cpu

        res = linear_cpu(x2, packed, bias, activations, path)
        if out is not None:
            out.copy_(res)
            res = out
        return res.reshape(*lead, n)
    if activations == "binary":
        x2 = torch.where(x2 >= 0, 1.0, -1.0).to(x2.dtype)
    if path == "torch":
        res = linear_reference(x2, packed, bias)
        if out is not None:
            out.copy_(res)
            res = out
        return res.reshape(*lead, n)
    if path == "scaled_mm":
        try:
            return _scaled_mm(x2.contiguous(), packed, bias).reshape(*lead, n)
        except RuntimeError:  # a shape or build _scaled_mm rejects: the kernel takes any shape
            path = "triton"
    if path == "dense":
        return _dense_binary(x2.contiguous(), packed, bias).reshape(*lead, n)
    if path == "cusparselt":
        try:
            return _cusparselt(x2.contiguous(), packed, bias).reshape(*lead, n)
        except (RuntimeError, ValueError, TypeError, AssertionError, NotImplementedError):
            path = "triton"  # a shape or dtype cuSPARSELt rejects: the kernel takes any
    if path == "interpreter" and x.device.type != "cpu":
        res = linear(x.cpu(), packed.to("cpu"), None if bias is None else bias.cpu(), backend="emulated")
        if out is not None:
            out.copy_(res.reshape(-1, n))
            return out.reshape(*lead, n)
        return res.to(x.device)
    x2 = x2.contiguous()
    if out is None:
        out = torch.empty(x2.shape[0], n, dtype=x.dtype, device=x.device)
    elif out.shape != (x2.shape[0], n) or out.dtype != x.dtype or not out.is_contiguous() or out.device != x.device:
        raise ShapeError(
            f"linear({packed.fmt!r}): out must be a contiguous {x.dtype} tensor of shape {(x2.shape[0], n)} on {x.device}, "
            f"got {tuple(out.shape)} {out.dtype}"
        )
    if x2.shape[0] == 0:
        return out.reshape(*lead, n)
    _run_kernel(x2, packed, bias, out)
    return out.reshape(*lead, n)


XnorMethod = Literal["auto", "popcount", "mma", "int8"]


XNOR_METHODS = ("auto", "popcount", "mma", "int8")


def xnor_path(a_bits: torch.Tensor, b_bits: torch.Tensor, backend: Backend = "auto", method: XnorMethod = "auto") -> str:
    """``"torch"``, ``"cpu:numba"`` or ``"<triton|interpreter>:<popcount|mma|int8>"``: the path :func:`xnor_gemm`
    takes. CPU tensors with numba installed (``backend="auto"`` or ``"cpu"``) take the numba popcount kernel over
    64-bit words; ``backend="cpu"`` without numba is the torch reference."""
    _check_backend(backend)
    from workbench.checks import option

    option("method", method, XNOR_METHODS, where="xnor_gemm")
    if backend == "cpu" or (backend == "auto" and a_bits.device.type == "cpu"):
        if a_bits.device.type != "cpu":
            raise DeviceError(f"xnor_gemm: backend='cpu' runs on CPU tensors, a_bits is on {a_bits.device}")
        from workbench.kernels.cpu import numba_available

        return "cpu:numba" if numba_available() else "torch"
    if backend == "torch" or (
        backend == "auto" and (a_bits.device.type != "cuda" or not triton_available() or interpreter_mode())
    ):
        return "torch"
    if backend == "emulated":
        _ensure_interpreter("xnor_gemm backend='emulated'")
    _need_triton(f"xnor_gemm backend={backend!r}")
    if interpreter_mode():
        runner = "interpreter"
    elif a_bits.device.type == "cuda":
        runner = "triton"
    else:
        raise DeviceError(
            f"xnor_gemm: backend='triton' runs on CUDA tensors, a_bits is on {a_bits.device} "
            "(set TRITON_INTERPRET=1, or use backend='emulated' or 'torch')"
        )
    if method == "auto":
        big = min(a_bits.shape[0], b_bits.shape[0]) >= 128
        int8_ok = runner == "triton" and hasattr(torch, "_int_mm") and b_bits.shape[0] % 8 == 0
        method = ("int8" if int8_ok else "mma") if big else "popcount"
    return f"{runner}:{method}"


def xnor_gemm(
    a_bits: torch.Tensor,
    b_bits: torch.Tensor,
    k: int,
    backend: Backend = "auto",
    method: XnorMethod = "auto",
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Binary × binary GEMM: ``out[i, j] = k − 2·popcount(a_i XOR b_j) = Σ_c a_ic · b_jc`` for ±1 rows.

    ``a_bits`` ``[M, ceil(k/32)]`` and ``b_bits`` ``[N, ceil(k/32)]`` are int32 from :func:`pack_signs` (bit 1 = +1);
    padding bits past ``k`` are ignored. Returns exact int32 ``[M, N]``. ``method``: ``"popcount"`` (CUDA-core
    popc), ``"mma"`` (bits expanded to int8 per tile in registers, tensor cores), ``"int8"`` (operands expanded once
    to int8 in memory, then ``torch._int_mm``) or ``"auto"`` (popcount below 128 rows a side; above, int8 on CUDA
    when ``torch._int_mm`` takes the shape, else mma).

    >>> a = pack_signs(torch.tensor([[1., -1., 1.]])); b = pack_signs(torch.tensor([[1., 1., 1.], [-1., 1., -1.]]))
    >>> xnor_gemm(a, b, 3).tolist()
    [[1, -3]]
    """
    for name, t in (("a_bits", a_bits), ("b_bits", b_bits)):
        if not isinstance(t, torch.Tensor) or t.dtype != torch.int32:
            got = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
            raise DTypeError(f"xnor_gemm: {name} must be int32 words (32 signs each, from pack_signs), got {got}")
        if t.dim() != 2:
            raise ShapeError(f"xnor_gemm: {name} must be 2-D [rows, ceil(k/32)], got shape {tuple(t.shape)}")
    if not isinstance(k, int) or k <= 0:
        raise ShapeError(f"xnor_gemm: k must be a positive int (the number of ±1 entries per row), got {k!r}")
    n_words = words_for(k)
    if a_bits.shape[1] != n_words or b_bits.shape[1] != n_words:
        raise ShapeError(
            f"xnor_gemm: k={k} needs ceil(k/32)={n_words} words per row; got a_bits {tuple(a_bits.shape)}, "
            f"b_bits {tuple(b_bits.shape)}"
        )
    if a_bits.device != b_bits.device:
        raise DeviceError(f"xnor_gemm: a_bits on {a_bits.device}, b_bits on {b_bits.device}")
    path = xnor_path(a_bits, b_bits, backend, method)
    m, n = a_bits.shape[0], b_bits.shape[0]
    if path in ("torch", "cpu:numba"):
        if path == "torch":
            res = xnor_gemm_reference(a_bits, b_bits, k)
        else:
            from workbench.kernels.cpu import xnor_gemm_cpu

            res = xnor_gemm_cpu(a_bits, b_bits, k)
        if out is not None:
            out.copy_(res)
            return out
        return res
    runner, meth = path.split(":")
    if runner == "interpreter" and a_bits.device.type != "cpu":
        return xnor_gemm(a_bits.cpu(), b_bits.cpu(), k, backend="emulated", method=meth).to(a_bits.device)
    if out is None:
        out = torch.empty(m, n, dtype=torch.int32, device=a_bits.device)
    elif out.shape != (m, n) or out.dtype != torch.int32 or not out.is_contiguous():
        raise ShapeError(f"xnor_gemm: out must be a contiguous int32 tensor of shape {(m, n)}, got {tuple(out.shape)} {out.dtype}")
    if m == 0 or n == 0:
        return out
    return _kernel_module("xnor_gemm").run(a_bits.contiguous(), b_bits.contiguous(), k, tail_mask(k), out, meth)


__all__ = ["BACKENDS", "SMALL_BATCH", "interpreter_mode", "linear", "linear_path", "xnor_gemm", "xnor_path", "triton_available"]
