"""How a kernel runs: compiled for CUDA (autotuned), or in Triton's interpreter on CPU tensors.

Triton 3.x reads ``TRITON_INTERPRET`` when ``@triton.jit`` decorates a function, and ``triton.language`` decorates
its own helpers (``tl.zeros``, ``tl.sum`` …) when triton is first imported. So the mode is fixed per process by the
environment at the moment triton is imported: with ``TRITON_INTERPRET=1`` every kernel runs in the interpreter (on
CPU tensors, one fixed small configuration, no autotuning), otherwise every kernel is compiled for CUDA and
autotuned over its configurations. :func:`interpreting` tells which.

Known interpreter limitation (triton 3.9): ``tl.dot`` on bfloat16 (and float16-converted) operands gives wrong
results, so the kernels take a ``DOT_F32`` flag that casts the operands to float32 before the dot when
interpreted. A bf16·bf16 or fp16·fp16 product is exact in float32, so this changes only the summation order.
Its casts float32 → bfloat16 truncate (the GPU rounds to nearest even) and int → bfloat16 are wrong: interpreted,
the kernels convert integers through float32 and write float32 results that torch then rounds to the output dtype.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import triton


def interpreting() -> bool:
    """True when this process's triton runs kernels in the interpreter (TRITON_INTERPRET=1 at triton's import)."""
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(tl.zeros, InterpretedFunction)


class Kernel:
    """One Triton kernel: autotuned over ``configs`` when compiled, ``interp_meta`` when interpreted."""

    def __init__(
        self,
        fn: Callable[..., Any],
        configs: list[triton.Config],
        key: list[str],
        interp_meta: dict[str, Any],
        prune: Callable[..., list[triton.Config]] | None = None,
    ):
        self.fn = fn
        self.prune = prune
        self.configs = configs
        self.key = key
        self.interp_meta = interp_meta
        self._obj: Any = None

    @property
    def obj(self) -> Any:
        if self._obj is None:
            jitted = triton.jit(self.fn)
            if interpreting():
                self._obj = jitted
            else:
                by = {"early_config_prune": self.prune} if self.prune is not None else None
                self._obj = triton.autotune(configs=self.configs, key=self.key, prune_configs_by=by)(jitted)
        return self._obj

    def launch(self, grid: Callable[[dict[str, Any]], tuple[int, ...]], *args: Any, **meta: Any) -> None:
        """Run the kernel (interpreted: with ``interp_meta``; compiled: autotuned)."""
        if interpreting():
            self.obj[grid](*args, **{**self.interp_meta, **meta})
        else:
            self.obj[grid](*args, **meta)

    def best_config(self) -> Any:
        """The autotuner's choice for the last key it tuned (None when interpreted or before any run)."""
        return getattr(self._obj, "best_config", None)


def tile_fits(block_m: int, config: triton.Config) -> bool:
    """Whether a ``BLOCK_M × BLOCK_K`` activation tile stays in registers: ptxas (sm_90) listed no or small spills
    up to ``BLOCK_M·BLOCK_K = 1024 × warps`` for ``BLOCK_M >= 32`` (hundreds of bytes beyond, e.g. 64×128 with 4
    warps), and none up to ``2048 × warps`` for ``BLOCK_M = 16``."""
    per_warp = 2048 if block_m <= 16 else 1024
    return block_m * config.kwargs.get("BLOCK_K", 0) <= per_warp * config.num_warps


def prune_by_tile(configs: list[triton.Config], named_args: dict[str, Any], **kwargs: Any) -> list[triton.Config]:
    """Autotuner pre-filter: the configs whose tiles fit (:func:`tile_fits`); the smallest tile if none does."""
    bm = kwargs.get("BLOCK_M") or named_args.get("BLOCK_M") or 16
    ok = [c for c in configs if tile_fits(bm, c)]
    return ok or [min(configs, key=lambda c: c.kwargs.get("BLOCK_K", 0) * c.kwargs.get("BLOCK_N", 0))]


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


__all__ = ["interpreting", "Kernel", "cdiv", "prune_by_tile", "tile_fits"]
