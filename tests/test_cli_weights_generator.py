"""The synthetic Llama checkpoint writer (workbench.models.synthetic_llama, scripts/make_llama_checkpoint.py):
shapes, dtypes, the index JSON, config.json, seeded reproducibility, the safetensors bytes, bad input."""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from workbench.errors import DataError, OptionError, OutputError
from workbench.models.synthetic_llama import (
    INDEX_NAME,
    INIT_STD,
    LAYOUTS,
    LlamaLayout,
    iter_checkpoint_files,
    plan_shards,
    read_index,
    synthetic_tensor,
    write_llama_checkpoint,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = LAYOUTS["tiny"]


def _load_all(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in iter_checkpoint_files(folder):
        out.update(load_file(str(f)))
    return out


def test_tiny_round_trip_shapes_dtypes_index_and_config(tmp_path):
    d = write_llama_checkpoint(tmp_path / "ck", "tiny", seed=3, max_shard_bytes=50_000, progress=False)
    sd = _load_all(d)
    expected = dict(TINY.tensors())
    assert set(sd) == set(expected)
    for name, t in sd.items():
        assert tuple(t.shape) == expected[name], name
        assert t.dtype == torch.bfloat16, name
    # Llama's names and GQA shapes: k/v have num_key_value_heads * head_dim rows
    assert expected["model.layers.1.self_attn.k_proj.weight"] == (2 * 16, 64)
    assert expected["model.layers.0.mlp.down_proj.weight"] == (64, 128)
    assert sum(t.numel() for t in sd.values()) == TINY.num_parameters
    index = read_index(d)
    files = sorted(p.name for p in d.glob("*.safetensors"))
    assert len(files) > 1 and sorted(set(index["weight_map"].values())) == files
    assert files[0] == f"model-00001-of-{len(files):05d}.safetensors"
    assert index["metadata"]["total_size"] == 2 * TINY.num_parameters
    assert index["metadata"]["total_size"] == sum((d / f).stat().st_size for f in files) - sum(
        8 + struct.unpack("<Q", (d / f).read_bytes()[:8])[0] for f in files)
    for name, fname in index["weight_map"].items():  # each tensor lies in the shard the index names
        with safe_open(str(d / fname), "pt") as fh:
            assert name in fh.keys()
            assert "SYNTHETIC" in fh.metadata()["synthetic"]
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["torch_dtype"] == "bfloat16"
    assert (cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"],
            cfg["num_key_value_heads"], cfg["vocab_size"]) == (64, 128, 2, 4, 2, 256)
    assert cfg["workbench_synthetic"]["seed"] == 3
    assert not list(d.glob(".*"))  # no temporary file left


def test_values_are_seeded_and_independent_of_sharding(tmp_path):
    a = _load_all(write_llama_checkpoint(tmp_path / "a", "tiny", seed=7, progress=False))
    b = _load_all(write_llama_checkpoint(tmp_path / "b", "tiny", seed=7, max_shard_bytes=20_000, progress=False))
    c = _load_all(write_llama_checkpoint(tmp_path / "c", "tiny", seed=8, progress=False))
    for name in a:
        assert torch.equal(a[name], b[name]), name
        assert torch.equal(a[name], synthetic_tensor(name, tuple(a[name].shape), seed=7)), name
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(a[q], c[q])
    assert not torch.equal(a[q], a["model.layers.1.self_attn.q_proj.weight"])  # per-tensor streams differ
    assert torch.equal(a["model.norm.weight"], torch.ones(64, dtype=torch.bfloat16))  # RMSNorm weights are 1
    big = synthetic_tensor("lm_head.weight", (512, 512), seed=0, dtype="float32")
    assert abs(float(big.std()) - INIT_STD) < 0.001 and abs(float(big.mean())) < 0.0005


@pytest.mark.parametrize("dtype,torch_dtype", [("float32", torch.float32), ("fp16", torch.float16)])
def test_other_dtypes(tmp_path, dtype, torch_dtype):
    d = write_llama_checkpoint(tmp_path / "ck", "tiny", dtype=dtype, progress=False)
    sd = _load_all(d)
    assert {t.dtype for t in sd.values()} == {torch_dtype}
    name = "model.layers.1.mlp.up_proj.weight"
    ref = synthetic_tensor(name, (128, 64), dtype="float32").to(torch_dtype)
    assert torch.equal(sd[name], ref)


def test_bytes_load_like_safetensors_own_writer(tmp_path):
    """A shard written tensor by tensor holds what safetensors' save_file would store for the same tensors."""
    d = write_llama_checkpoint(tmp_path / "ck", "tiny", seed=1, progress=False)
    (shard,) = list(iter_checkpoint_files(d))
    ours = load_file(str(shard))
    save_file(ours, str(tmp_path / "ref.safetensors"))
    ref = load_file(str(tmp_path / "ref.safetensors"))
    assert set(ours) == set(ref) and all(torch.equal(ours[k], ref[k]) for k in ours)
    header_len = struct.unpack("<Q", shard.read_bytes()[:8])[0]
    assert header_len % 8 == 0
    header = json.loads(shard.read_bytes()[8: 8 + header_len])
    assert header["__metadata__"]["seed"] == "1"


def test_plan_shards_respects_the_limit_and_order():
    tensors = [("a", (10,)), ("b", (30,)), ("c", (50,)), ("d", (200,)), ("e", (5,))]
    shards = plan_shards(tensors, 2, 100)
    assert [[n for n, _ in s] for s in shards] == [["a", "b"], ["c"], ["d"], ["e"]]  # d alone: larger than limit
    seven = plan_shards(LAYOUTS["7b"].tensors(), 2, 2 * 1024**3)
    assert all(sum(2 * torch.Size(s).numel() for _, s in sh) <= 2 * 1024**3 for sh in seven)
    assert len(seven) == 7


def test_named_layouts_have_the_published_sizes():
    assert round(LAYOUTS["7b"].num_parameters / 1e9, 2) == 6.74  # Llama-2-7B
    assert round(LAYOUTS["1b"].num_parameters / 1e9, 2) == 1.10  # TinyLlama-1.1B
    assert LlamaLayout(64, 128, 1, 4, 4, 10, tie_word_embeddings=True).tensors()[-1][0] == "model.norm.weight"


def test_bad_input_is_refused_before_writing(tmp_path):
    with pytest.raises(OptionError, match="layout 'huge'"):
        write_llama_checkpoint(tmp_path / "x", "huge", progress=False)
    with pytest.raises(OptionError, match="dtype 'int8'"):
        write_llama_checkpoint(tmp_path / "x", "tiny", dtype="int8", progress=False)
    with pytest.raises(DataError, match="num_attention_heads=5"):
        LlamaLayout(64, 128, 1, 5, 5, 10)
    with pytest.raises(DataError, match="num_key_value_heads=3"):
        LlamaLayout(64, 128, 1, 4, 3, 10)
    with pytest.raises(DataError, match="vocab_size=0"):
        LlamaLayout(64, 128, 1, 4, 4, 0)
    assert not (tmp_path / "x").exists()
    d = write_llama_checkpoint(tmp_path / "ck", "tiny", seed=1, progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in d.iterdir()}
    with pytest.raises(OutputError, match="already holds"):
        write_llama_checkpoint(d, "tiny", seed=2, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in d.iterdir()} == before
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        write_llama_checkpoint(tmp_path / "file", "tiny", progress=False)
    again = write_llama_checkpoint(d, "tiny", seed=2, progress=False, overwrite=True)
    assert json.loads((again / "config.json").read_text())["workbench_synthetic"]["seed"] == 2


def _script():
    path = ROOT / "scripts" / "make_llama_checkpoint.py"
    spec = importlib.util.spec_from_file_location("make_llama_checkpoint", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_script_writes_explicit_sizes_and_refuses_bad_arguments(tmp_path, capsys):
    main = _script().main
    assert main([str(tmp_path / "m"), "--hidden", "32", "--intermediate", "64", "--layers", "1", "--heads", "2",
                 "--kv-heads", "1", "--vocab", "16", "--no-progress"]) == 0
    assert "SYNTHETIC" in capsys.readouterr().err
    sd = _load_all(tmp_path / "m")
    assert tuple(sd["model.layers.0.self_attn.k_proj.weight"].shape) == (16, 32)
    assert (tmp_path / "m" / INDEX_NAME).is_file()
    assert main([str(tmp_path / "m"), "--no-progress"]) == 2
    assert "already holds" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # argparse: usage error, exit 2
        main([str(tmp_path / "p"), "--hidden", "32"])
    assert exc.value.code == 2 and "--intermediate" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "p"), "--layout", "tiny", "--hidden", "32"])
    assert not (tmp_path / "p").exists()


def test_the_lazy_handle_reads_the_sharded_checkpoint(tmp_path):
    from workbench.models import load_model

    d = write_llama_checkpoint(tmp_path / "ck", "tiny", seed=4, max_shard_bytes=50_000, progress=False)
    h = load_model(f"safetensors:{d}", lazy=True)
    expected = {n.removesuffix(".weight"): s for n, s in TINY.tensors() if len(s) == 2}  # norms are 1-D: not layers
    assert dict(zip(h.layers["name"], h.layers["shape"])) == expected
    assert set(h.layers["dtype"]) == {"bfloat16"}
    index = read_index(d)
    for name, file in zip(h.layers["tensor"], h.layers["file"]):
        assert file.endswith(index["weight_map"][name])
    name = "model.layers.1.mlp.gate_proj.weight"
    assert torch.equal(h.tensor(name), synthetic_tensor(name, (128, 64), seed=4))
