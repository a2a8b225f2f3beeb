"""Model loading refuses what it cannot load faithfully: code in a model folder, wrong Hugging Face folders, unusable
tokenizers, complex / sparse / meta tensors, malformed specs; shipped data is found in a source tree and in a wheel.

The Hugging Face folders are built here from tiny random configs (no download).
"""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import workbench.data as wdata
import workbench.models as wm
from workbench.errors import DataError, ModelSpecError
from workbench.models import DigitsMLP, load_model
from workbench.models.zoo import sha256_file

REPO = Path(__file__).resolve().parent.parent
RECORDS = json.loads((REPO / "data" / "checkpoints.json").read_text())
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
    "the quick brown fox jumps over lazy dog a cat sat on mat . , and 42 people watched it happen").split()
EVIL_CODE = '''
import pathlib
pathlib.Path({marker!r}).write_text("code from the model folder ran")
from transformers import BertConfig, BertModel


class EvilConfig(BertConfig):
    model_type = "evil"


class EvilModel(BertModel):
    config_class = EvilConfig
'''


# -- tiny Hugging Face folders ------------------------------------------------------------------------------------
def _tiny_config(**overrides):
    from transformers import BertConfig

    kw = dict(vocab_size=len(WORDS), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
              intermediate_size=16, max_position_embeddings=32)
    return BertConfig(**{**kw, **overrides})


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A valid tiny BERT folder: random weights (seed 0), a 27-word vocabulary, 32 positions."""
    from transformers import BertModel, BertTokenizer

    out = tmp_path_factory.mktemp("hf") / "tiny-bert"
    torch.manual_seed(0)
    BertModel(_tiny_config()).save_pretrained(out)
    (out / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    BertTokenizer(str(out / "vocab.txt")).save_pretrained(out)
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_json(path: Path, **changes) -> None:
    d = json.loads(path.read_text())
    d.update(changes)
    path.write_text(json.dumps(d))


def _evil_folder(tiny: Path, tmp_path: Path, where: str = "config.json") -> tuple[Path, Path]:
    folder = _copy(tiny, tmp_path / "evil")
    marker = tmp_path / "marker"
    (folder / "evil_model.py").write_text(EVIL_CODE.format(marker=str(marker)))
    auto_map = {"AutoConfig": "evil_model.EvilConfig", "AutoModel": "evil_model.EvilModel"}
    if where == "config.json":
        _edit_json(folder / "config.json", auto_map=auto_map, model_type="evil")
    else:
        _edit_json(folder / where, auto_map={"AutoTokenizer": ["evil_model.EvilTokenizer", None]})
    return folder, marker


def test_tiny_folder_loads(tiny_bert):
    h = load_model(tiny_bert)
    assert h.task == "embedding" and type(h.model).__name__ == "BertModel"
    assert h.max_length == 32  # capped by max_position_embeddings: longer inputs would index past the table
    assert h.evaluate() == {"cosine": 1.0, "loss": 0.0}
    assert len(h.layers) == 6


@pytest.mark.parametrize("where", ["config.json", "tokenizer_config.json"])
def test_remote_code_is_refused_even_when_stdin_says_yes(tiny_bert, tmp_path, monkeypatch, where):
    folder, marker = _evil_folder(tiny_bert, tmp_path, where)
    asked = []
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n" * 10))
    monkeypatch.setattr(builtins, "input", lambda *a: asked.append(a) or "y")
    with pytest.raises(ModelSpecError) as e:
        load_model(folder)
    msg = str(e.value)
    assert "auto_map" in msg and "trust_remote_code=True" in msg and where in msg
    assert not marker.exists(), "code from the model folder ran"
    assert not asked, "loading must never prompt"


def test_transformers_gets_trust_remote_code_false(tiny_bert, tmp_path, monkeypatch):
    """With the folder check out of the way, transformers itself refuses: it was told trust_remote_code=False."""
    import workbench.models.hf as hf

    folder, marker = _evil_folder(tiny_bert, tmp_path)
    monkeypatch.setattr(hf, "_check_no_remote_code", lambda path, trust: None)
    monkeypatch.setattr(builtins, "input", lambda *a: pytest.fail("transformers prompted"))
    with pytest.raises(ModelSpecError, match="trust_remote_code"):
        load_model(folder)
    assert not marker.exists()


@pytest.mark.slow
def test_remote_code_runs_only_with_the_opt_in(tiny_bert, tmp_path):
    """In a fresh process (transformers copies the code into its module cache, kept in tmp_path here)."""
    folder, marker = _evil_folder(tiny_bert, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HOME": str(tmp_path / "hf"),
           "HF_MODULES_CACHE": str(tmp_path / "modules")}
    code = ("import workbench.models as wm; h = wm.load_model(%r, trust_remote_code=True); "
            "print(type(h.model).__name__)" % str(folder))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "EvilModel" and marker.exists()


def test_bert_weights_under_a_gpt2_config_are_refused(tiny_bert, tmp_path):
    from transformers import GPT2Config

    folder = _copy(tiny_bert, tmp_path / "gpt")
    GPT2Config(vocab_size=len(WORDS), n_embd=8, n_layer=1, n_head=2, n_positions=32).to_json_file(
        folder / "config.json")
    with pytest.raises(ModelSpecError) as e:
        load_model(folder)
    msg = str(e.value)
    assert "GPT2Model" in msg and "16 weights missing" in msg and "h.0.attn.c_attn.weight" in msg
    assert "unexpected" in msg and "embeddings.word_embeddings.weight" in msg


def test_missing_and_mismatched_weights_are_named(tiny_bert, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = _copy(tiny_bert, tmp_path / "missing")
    state = load_file(folder / "model.safetensors")
    del state["encoder.layer.0.output.dense.weight"]
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelSpecError, match=r"1 weights missing .*encoder\.layer\.0\.output\.dense\.weight"):
        load_model(folder)

    folder = _copy(tiny_bert, tmp_path / "mismatched")
    _edit_json(folder / "config.json", intermediate_size=12)
    with pytest.raises(ModelSpecError, match=r"3 weights of another shape .*intermediate\.dense\.bias"):
        load_model(folder)


def test_tokenizer_without_vocabulary_is_refused(tiny_bert, tmp_path):
    folder = _copy(tiny_bert, tmp_path / "novocab")
    (folder / "vocab.txt").unlink()
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelSpecError) as e:
        load_model(folder)
    msg = str(e.value)
    assert "unusable" in msg and "all unknown" in msg and "vocab.txt" in msg and "tokenizer.json" in msg


def test_tokenizer_mapping_everything_to_unknown_is_refused(tiny_bert, tmp_path):
    folder = _copy(tiny_bert, tmp_path / "foreign")
    words = WORDS[:5] + ["zzz%d" % i for i in range(40)]  # a real vocabulary, but of no word in the probe
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelSpecError, match="all unknown"):
        load_model(folder)


def test_complex_safetensors_in_a_folder_are_refused(tiny_bert, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = _copy(tiny_bert, tmp_path / "complex")
    state = load_file(folder / "model.safetensors")
    key = "encoder.layer.0.output.dense.weight"
    state[key] = state[key].to(torch.complex64) * (1 + 1j)
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelSpecError, match=r"output\.dense\.weight' is complex \(C64\)"):
        load_model(folder)


@pytest.mark.parametrize("content, match", [
    ("{not json", "not readable JSON"),
    ('{"idx": 0}', "JSON dict; a list is expected"),
    ('["1_Pooling"]', "entry 0"),
    ('[{"path": "../../../etc", "type": "sentence_transformers.models.Pooling"}]', "outside the model folder"),
    ('[{"path": 7, "type": "sentence_transformers.models.Pooling"}]', "must be a string"),
])
def test_malformed_modules_json_is_refused(tiny_bert, tmp_path, content, match):
    folder = _copy(tiny_bert, tmp_path / "st")
    (folder / "modules.json").write_text(content)
    with pytest.raises(ModelSpecError, match=match):
        load_model(folder)


def test_malformed_config_json_is_refused(tiny_bert, tmp_path):
    folder = _copy(tiny_bert, tmp_path / "cfg")
    (folder / "config.json").write_text("[1, 2")
    with pytest.raises(ModelSpecError, match=r"config\.json is not readable JSON"):
        load_model(folder)


# -- checkpoints and modules ----------------------------------------------------------------------------------------
def _state_with(tmp_path: Path, key: str, make) -> Path:
    state = load_model("digits-mlp").model.state_dict()
    state[key] = make(state[key])
    p = tmp_path / "ckpt.pt"
    torch.save(state, p)
    return p


@pytest.mark.parametrize("make, match", [
    (lambda w: w.to(torch.complex64) + 1j, r"complex64.*imaginary"),
    (lambda w: w.to_sparse(), r"sparse tensor \(sparse_coo\)"),
    (lambda w: w.to_sparse_csr(), r"sparse tensor \(sparse_csr\)"),
    (lambda w: torch.empty(w.shape, device="meta"), "meta tensor"),
])
def test_checkpoint_tensors_that_cannot_load_faithfully(tmp_path, make, match):
    p = _state_with(tmp_path, "fc1.weight", make)
    with pytest.raises(ModelSpecError, match=match) as e:
        load_model(p, arch="digits-mlp")
    assert "'fc1.weight'" in str(e.value) and "Accepted: dense real tensors" in str(e.value)


def test_complex_module_is_refused_not_truncated(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3))
    model[0].weight = nn.Parameter(torch.ones(3, 4, dtype=torch.complex64) * (1 + 2j))
    with pytest.raises(ModelSpecError, match=r"parameter '0\.weight'.*imaginary"):
        load_model(model, data=(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long)))
    assert model[0].weight.is_complex(), "refusing leaves the module as it was"
    p = tmp_path / "whole.pt"
    torch.save(model, p)
    with pytest.raises(ModelSpecError, match="imaginary"):
        load_model(p, trust=True)


def test_meta_module_is_refused():
    model = nn.Sequential(nn.Linear(4, 3, device="meta"))
    with pytest.raises(ModelSpecError, match=r"'0\.weight'.*meta tensor"):
        load_model(model, data=(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long)))


@pytest.mark.parametrize("shapes", [[(4, 0), (0, 3)], [(0, 3)]])
def test_zero_size_layers_are_refused(shapes):
    with pytest.warns(UserWarning, match="zero-element"):
        layers = [nn.Linear(i, o) for i, o in shapes]
    model = nn.Sequential(*layers)
    with pytest.raises(ModelSpecError, match=r"layer '0' .* no elements"):
        load_model(model, data=(torch.zeros(2, layers[0].in_features), torch.zeros(2, dtype=torch.long)))


def test_non_string_state_dict_keys_are_refused(tmp_path):
    p = tmp_path / "ints.pt"
    torch.save({0: torch.zeros(2), 1: torch.zeros(3)}, p)
    with pytest.raises(ModelSpecError, match="key 0 that is not a string"):
        load_model(p, arch="digits-mlp")


@pytest.mark.parametrize("spec, match", [
    ("a" * 300, "300 characters"),
    ("a" * 300 + ".pt", "303 characters"),
    ("/tmp/" + "b" * 300 + "/w.safetensors", "300 characters"),
    ("w\x00.pt", "NUL byte"),
    ("digits-mlp\x00", "NUL byte"),
    ("", "empty"),
])
def test_impossible_spec_strings(spec, match):
    with pytest.raises(ModelSpecError, match=match) as e:
        load_model(spec)
    assert len(str(e.value)) < 400, "the value is shortened in the message"


def test_long_and_nul_arch_names(tmp_path):
    p = tmp_path / "w.pt"
    torch.save(DigitsMLP().state_dict(), p)
    for arch, shown in (("z" * 300, "(302 characters)"), ("digits-mlp\x00", "'digits-mlp\\x00'")):
        with pytest.raises(ModelSpecError, match="unknown arch") as e:
            load_model(p, arch=arch)
        msg = str(e.value)
        assert len(msg) < 250 and shown in msg and "'digits-mlp'" in msg


@pytest.mark.parametrize("kw", [dict(trust="no"), dict(trust_remote_code=1), dict(trust_remote_code="yes")])
def test_trust_flags_must_be_bools(kw):
    with pytest.raises(ModelSpecError, match=f"{next(iter(kw))} must be True or False"):
        load_model("digits-mlp", **kw)


# -- shipped data -----------------------------------------------------------------------------------------------------
def test_sha256_file_matches_hashlib(tmp_path):
    p = tmp_path / "blob"
    payload = os.urandom(3 * (1 << 20) + 17)  # more than one read chunk
    p.write_bytes(payload)
    assert sha256_file(p) == hashlib.sha256(payload).hexdigest()
    for name, rec in RECORDS.items():
        assert sha256_file(REPO / "data" / rec["file"]) == rec["sha256"], name


def test_data_resolution_order(tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "sentences.json").write_text(json.dumps({"sentences": ["Only this one."]}))
    monkeypatch.setenv("WORKBENCH_DATA", str(mine))
    assert wdata.data_path("sentences.json") == mine / "sentences.json"
    assert wdata.sentences() == ["Only this one."]
    # the first folder holding the file wins: checkpoints come from the repository's data/
    assert wdata.data_dir() == REPO / "data"
    monkeypatch.setenv("WORKBENCH_DATA", "")
    assert wdata.data_dirs() == [REPO / "data", REPO / "workbench" / "_data"]


def test_missing_data_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(wdata, "REPO_DATA_DIR", tmp_path / "repo")
    monkeypatch.setattr(wdata, "PACKAGE_DATA_DIR", tmp_path / "pkg")
    with pytest.raises(DataError) as e:
        wdata.sentences()
    msg = str(e.value)
    for where in ("env", "repo", "pkg"):
        assert str(tmp_path / where) in msg
    assert "WORKBENCH_DATA" in msg
    with pytest.raises(ModelSpecError, match=r"bundled model 'digits-mlp'.*checkpoints\.json"):
        load_model("digits-mlp")


@pytest.mark.slow
def test_built_wheel_finds_the_bundled_models(tmp_path):
    """Build a wheel from a copy of the source (no build/ left in the repository), install it into a throwaway
    folder and load digits-mlp from outside the repository."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("workbench", "kernels", "data"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    out = subprocess.run(pip[:3] + ["wheel"] + pip[3:] + ["--no-deps", "--no-build-isolation", str(src), "-w",
                         str(wheels)], capture_output=True, text=True, timeout=120, cwd=elsewhere)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = wheels.glob("workbench-*.whl")
    out = subprocess.run(pip[:3] + ["install"] + pip[3:] + ["--no-deps", "--target", str(target), str(wheel)],
                         capture_output=True, text=True, timeout=120, cwd=elsewhere)
    assert out.returncode == 0, out.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "WORKBENCH_DATA")}
    env["PYTHONPATH"] = str(target)
    code = ("import workbench, workbench.data as d, workbench.models as wm; h = wm.load_model('digits-mlp'); "
            "print(workbench.__file__); print(d.data_path('checkpoints.json')); print(h.evaluate()['accuracy'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         cwd=elsewhere)
    assert out.returncode == 0, out.stderr[-2000:]
    where, data, accuracy = out.stdout.split()[-3:]
    assert Path(where).is_relative_to(target) and Path(data) == target / "workbench" / "_data" / "checkpoints.json"
    assert abs(float(accuracy) - RECORDS["digits-mlp"]["test_accuracy"]) <= 1 / 360 + 1e-9


def test_gitignore_covers_default_outputs():
    paths = ["reports/r.html", "sweep/summary.csv", "sweeps/demo/index.html", "dashboard_state.json",
             "notebooks/dashboard_state.json"]
    out = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.split() == paths
    kept = subprocess.run(["git", "check-ignore", "--no-index", "workbench/reports/run.py", "data/digits-mlp.pt"],
                          cwd=REPO, capture_output=True, text=True)
    assert kept.stdout == ""


@pytest.mark.parametrize("kw", [dict(batch_size=0), dict(batch_size=2.5), dict(n_batches=True), dict(n_batches=-1),
                                dict(batch_size="8")])
def test_calibration_batch_counts_are_validated(kw):
    h = load_model("digits-mlp")
    name = next(iter(kw))
    with pytest.raises(DataError, match=f"{name} must be a positive integer"):
        h.calibration_batches(**kw)
    assert [len(b) for b in h.calibration_batches(n_batches=np.int64(2), batch_size=3)] == [3, 3]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"digits-mlp": {"file": "digits-mlp.pt"}}'])
def test_malformed_checkpoint_records_are_refused(tmp_path, content):
    for f in ("digits-mlp.pt", "digits-cnn.pt"):
        shutil.copy(REPO / "data" / f, tmp_path / f)
    (tmp_path / "checkpoints.json").write_text(content)
    with pytest.raises(ModelSpecError, match=r"checkpoints\.json .*(readable JSON|'sha256')"):
        wm._bundled_handle("digits-mlp", None, data_dir=tmp_path)


def test_checkpoint_record_cannot_point_outside_its_folder(tmp_path):
    (tmp_path / "data").mkdir()
    shutil.copy(REPO / "data" / "digits-mlp.pt", tmp_path / "elsewhere.pt")
    records = {"digits-mlp": {**RECORDS["digits-mlp"], "file": "../elsewhere.pt"}}
    (tmp_path / "data" / "checkpoints.json").write_text(json.dumps(records))
    with pytest.raises(ModelSpecError, match=r"not found at .*data/elsewhere\.pt"):
        wm._bundled_handle("digits-mlp", None, data_dir=tmp_path / "data")
