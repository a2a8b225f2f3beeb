"""Write a Llama-shaped safetensors checkpoint of SYNTHETIC, seeded random weights (not a trained model).

The weights are random numbers: N(0, 0.02²) for every matrix, ones for the RMSNorm weights, each tensor from its own
generator seeded by the seed and the tensor's name (the same seed gives the same bytes). The folder looks like a
Hugging Face checkpoint: ``config.json`` (``model_type: llama``), shards ``model-0000K-of-0000N.safetensors`` of at
most ``--shard-gib`` each and ``model.safetensors.index.json``. It exists to measure the streaming weight report on
large layouts without downloading anything; quantization figures on it say nothing about a real Llama (trained
weights have outlier channels that Gaussian ones lack). Memory stays bounded by one tensor (about 0.8 GB at most
for the 7B layout); the 7B layout is 12.6 GiB on disk in bf16.

    python scripts/make_llama_checkpoint.py /tmp/llama7b --layout 7b            # 6.74 G parameters, bf16
    python scripts/make_llama_checkpoint.py /tmp/llama1b --layout 1b --seed 3
    python scripts/make_llama_checkpoint.py /tmp/tiny --layout tiny --dtype float32
    python scripts/make_llama_checkpoint.py /tmp/mine --hidden 1024 --intermediate 2816 --layers 4 \\
        --heads 16 --kv-heads 4 --vocab 32000

Exit status 0 when written, 2 for bad arguments or an output folder that already holds a checkpoint (pass
``--overwrite``). See :mod:`workbench.models.synthetic_llama` (the same code, importable).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from workbench.errors import WorkbenchError  # noqa: E402
from workbench.models.synthetic_llama import (  # noqa: E402
    LAYOUTS,
    LlamaLayout,
    resolve_layout,
    write_llama_checkpoint,
)

_SIZES = ("hidden", "intermediate", "layers", "heads", "kv_heads", "vocab")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Write a Llama-shaped checkpoint of SYNTHETIC seeded random weights.")
    p.add_argument("output", help="folder to write (created; refused if it already holds a checkpoint)")
    p.add_argument("--layout", default=None, choices=sorted(LAYOUTS),
                   help="a named layout (7b = Llama-2-7B, 1b = TinyLlama-1.1B, tiny for tests); default tiny")
    p.add_argument("--hidden", type=int, help="hidden size (explicit sizes replace --layout; give all six)")
    p.add_argument("--intermediate", type=int, help="MLP intermediate size")
    p.add_argument("--layers", type=int, help="number of decoder layers")
    p.add_argument("--heads", type=int, help="attention heads")
    p.add_argument("--kv-heads", type=int, help="key-value heads (grouped-query attention)")
    p.add_argument("--vocab", type=int, help="vocabulary size")
    p.add_argument("--tie-embeddings", action="store_true", help="no lm_head (tied to the embedding)")
    p.add_argument("--dtype", default="bfloat16", help="bfloat16 (default), float16 or float32")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.add_argument("--shard-gib", type=float, default=2.0, help="largest shard in GiB (default 2)")
    p.add_argument("--overwrite", action="store_true", help="replace a checkpoint already in the folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def layout_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> LlamaLayout:
    given = [s for s in _SIZES if getattr(args, s) is not None]
    if not given:
        return resolve_layout(args.layout or "tiny")
    if args.layout is not None:
        parser.error("give either --layout or explicit sizes, not both")
    if len(given) != len(_SIZES):
        missing = ", ".join("--" + s.replace("_", "-") for s in _SIZES if s not in given)
        parser.error(f"explicit sizes need all six; missing {missing}")
    return LlamaLayout(args.hidden, args.intermediate, args.layers, args.heads, args.kv_heads, args.vocab,
                       tie_word_embeddings=args.tie_embeddings)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.shard_gib > 0:
        parser.error(f"--shard-gib must be positive, got {args.shard_gib}")
    try:
        layout = layout_from_args(args, parser)
        print(f"writing a SYNTHETIC (random weights) Llama checkpoint: {layout.num_parameters / 1e9:.3f} G "
              f"parameters, {args.dtype}, seed {args.seed} -> {args.output}", file=sys.stderr)
        out = write_llama_checkpoint(args.output, layout, dtype=args.dtype, seed=args.seed,
                                     max_shard_bytes=int(args.shard_gib * 1024**3), progress=not args.no_progress,
                                     overwrite=args.overwrite)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
