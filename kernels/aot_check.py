"""Compile every kernel for a CUDA architecture without a GPU (Triton's bundled ptxas), as a build check.

    python -m kernels.aot_check [--arch 90]

Runs Triton's full pipeline (TTIR → TTGIR → LLVM IR → PTX → cubin) for one small and one large configuration of each
kernel and prints one line per kernel: shared memory, and whether the expected instructions are in the PTX
(``popc`` for the popcount XNOR kernel, tensor-core ``mma``/``wgmma`` for the dot kernels). It proves the kernels
compile for that GPU; it says nothing about their speed. Needs a process where triton is not in interpreter mode.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _compile(fn: Any, sig: dict[str, str], consts: dict[str, Any], arch: int, **opts: Any) -> Any:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import JITFunction

    jf = JITFunction(fn)
    # what a real launch specializes: pointers and the int arguments that are multiples of 16 get
    # tt.divisibility=16 (every shape the benchmark uses is), which lets loads vectorize
    attrs = {(jf.arg_names.index(a),): [["tt.divisibility", 16]] for a, t in sig.items()
             if t.startswith("*") or (t == "i32" and a not in ("k", "last_mask", "M"))}
    src = ASTSource(fn=jf, signature=sig, constexprs=consts, attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", arch, 32), options=opts)


def compile_all(arch: int = 90, quick: bool = False) -> list[dict[str, Any]]:
    """Compile each kernel; one dict per compiled variant (name, shared bytes, PTX features).

    ``quick``: one variant of each kernel (2:4+fp8 small tile for the compressed kernel) instead of all six."""
    from kernels import binary_linear, compressed_linear, xnor_gemm
    from kernels._runtime import interpreting

    if interpreting():
        raise RuntimeError("triton is in interpreter mode (TRITON_INTERPRET=1): ahead-of-time compilation needs it off")
    out = []
    lin = {"x_ptr": "*bf16", "v_ptr": "*bf16", "p_ptr": "*i32", "s_ptr": "*fp32", "b_ptr": "*bf16", "o_ptr": "*bf16",
           "M": "i32", "N": "i32", "K": "i32", "stride_xm": "i32", "stride_om": "i32", "SPARSE": "constexpr",
           "SCALED": "constexpr", "HAS_BIAS": "constexpr", "DOT_F32": "constexpr", "BLOCK_M": "constexpr",
           "BLOCK_N": "constexpr", "BLOCK_K": "constexpr"}
    variants = [("2:4", True, False, "*bf16"), ("fp8_e4m3", False, True, "*fp8e4nv"), ("2:4+fp8_e4m3", True, True, "*fp8e4nv")]
    tiles = [(16, 32, 128), (128, 128, 64)]
    for fmt, sparse, scaled, vdt in variants[2:] if quick else variants:
        for bm, bn, bk in tiles[:1] if quick else tiles:
            k = _compile(compressed_linear._compressed_linear_kernel, dict(lin, v_ptr=vdt),
                         {"SPARSE": sparse, "SCALED": scaled, "HAS_BIAS": True, "DOT_F32": False, "BLOCK_M": bm,
                          "BLOCK_N": bn, "BLOCK_K": bk}, arch, num_warps=4, num_stages=3)
            out.append(dict(kernel=f"compressed_linear[{fmt}] {bm}x{bn}x{bk}", shared=k.metadata.shared,
                            tensor_cores="mma" in k.asm["ptx"], cubin=bool(k.asm.get("cubin"))))
    gsig = {k_: v for k_, v in lin.items() if k_ not in ("SPARSE", "DOT_F32", "BLOCK_K")}
    gsig["BLOCK_J"] = "constexpr"
    k = _compile(compressed_linear._sparse_gemv_kernel, dict(gsig, v_ptr="*fp8e4nv"),
                 {"SCALED": True, "HAS_BIAS": False, "BLOCK_M": 1, "BLOCK_N": 8, "BLOCK_J": 256}, arch, num_warps=4,
                 num_stages=3)
    out.append(dict(kernel="sparse_gemv[2:4+fp8_e4m3] 1x8x256", shared=k.metadata.shared, cubin=bool(k.asm.get("cubin"))))
    sig = {"x_ptr": "*bf16", "w_ptr": "*i32", "s_ptr": "*fp32", "b_ptr": "*bf16", "o_ptr": "*bf16", "M": "i32",
           "N": "i32", "K": "i32", "stride_xm": "i32", "stride_om": "i32", "HAS_BIAS": "constexpr",
           "DOT_F32": "constexpr", "W16": "constexpr", "NEG_ONE": "constexpr", "BLOCK_M": "constexpr",
           "BLOCK_N": "constexpr", "BLOCK_K": "constexpr"}
    k = _compile(binary_linear._binary_linear_kernel, sig, {"HAS_BIAS": False, "DOT_F32": False, "W16": True,
                 "NEG_ONE": 0xBF80, "BLOCK_M": 16,
                 "BLOCK_N": 32, "BLOCK_K": 256}, arch, num_warps=4, num_stages=3)
    bsig = {k_: v for k_, v in sig.items() if k_ not in ("DOT_F32", "W16", "NEG_ONE")}
    kb = _compile(binary_linear._binary_gemv_kernel, bsig, {"HAS_BIAS": False, "BLOCK_M": 1, "BLOCK_N": 16,
                  "BLOCK_K": 256}, arch, num_warps=4, num_stages=3)
    out.append(dict(kernel="binary_gemv 1x16x256", shared=kb.metadata.shared, cubin=bool(kb.asm.get("cubin"))))
    out.append(dict(kernel="binary_linear 16x32x256", shared=k.metadata.shared, tensor_cores="mma" in k.asm["ptx"],
                    cubin=bool(k.asm.get("cubin"))))
    sig = {"a_ptr": "*i32", "b_ptr": "*i32", "o_ptr": "*i32", "M": "i32", "N": "i32", "W": "i32", "k": "i32",
           "last_mask": "i32", "USE_PTX": "constexpr", "BLOCK_M": "constexpr", "BLOCK_N": "constexpr",
           "BLOCK_W": "constexpr"}
    k = _compile(xnor_gemm._xnor_popcount_kernel, sig, {"USE_PTX": True, "BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_W": 8},
                 arch, num_warps=4)
    out.append(dict(kernel="xnor_gemm[popcount] 32x32x8w", shared=k.metadata.shared, popc="popc" in k.asm["ptx"],
                    cubin=bool(k.asm.get("cubin"))))
    sig = {kk: v for kk, v in sig.items() if kk not in ("last_mask", "USE_PTX")}
    k = _compile(xnor_gemm._xnor_mma_kernel, sig, {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_W": 2}, arch,
                 num_warps=8, num_stages=3)
    out.append(dict(kernel="xnor_gemm[mma] 128x128x64", shared=k.metadata.shared, tensor_cores="mma" in k.asm["ptx"],
                    cubin=bool(k.asm.get("cubin"))))
    k = _compile(xnor_gemm._expand_signs_kernel, {"w_ptr": "*i32", "o_ptr": "*i8", "R": "i32", "W": "i32", "k": "i32",
                 "BLOCK_R": "constexpr", "BLOCK_W": "constexpr"}, {"BLOCK_R": 32, "BLOCK_W": 8}, arch, num_warps=4)
    out.append(dict(kernel="expand_signs 32x8w", shared=k.metadata.shared, cubin=bool(k.asm.get("cubin"))))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="compile every kernel for a CUDA arch without a GPU")
    ap.add_argument("--arch", type=int, default=90)
    ap.add_argument("--quick", action="store_true", help="one variant of each kernel")
    args = ap.parse_args(argv)
    for row in compile_all(args.arch, args.quick):
        print(" ".join(f"{k}={v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
