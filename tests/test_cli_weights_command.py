"""``workbench weights`` end to end on a tiny synthetic Llama checkpoint: parquet + self-contained HTML +
provenance, refusal of existing outputs unless --resume (exit 2, nothing changed), the stale page after an
interrupted rerun (exit 130), bad input before any output."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from workbench.cli import build_parser, main
from workbench.errors import OptionError
from workbench.models import load_model
from workbench.models.synthetic_llama import write_llama_checkpoint
from workbench.reports.files import output_lock
from workbench.reports.html import html_is_self_contained
from workbench.reports.weights import weight_report
from workbench.reports.weights_run import dask_client, default_name, weights_paths

ARGS = ["--formats", "int8", "fp8_e4m3", "--patterns", "2:4", "--no-progress"]
LAYERS = ["model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj", "lm_head"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_llama_checkpoint(tmp_path_factory.mktemp("ck") / "llama-tiny", "tiny", seed=5,
                                  max_shard_bytes=60_000, progress=False)


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_writes_parquet_html_and_provenance_equal_to_the_report(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["weights", str(ckpt), *ARGS, "--layers", *LAYERS, "-o", str(out)]) == 0
    paths = weights_paths(out, "weights-llama-tiny")
    assert sorted(p.name for p in out.iterdir()) == sorted(paths[k].name for k in ("parquet", "html", "provenance"))
    table = pd.read_parquet(paths["parquet"])
    ref = weight_report(load_model(f"safetensors:{ckpt}", lazy=True), formats=["int8", "fp8_e4m3"],
                        patterns=["2:4"], layers=LAYERS, progress=False)
    pd.testing.assert_frame_equal(table.reset_index(drop=True), ref.reset_index(drop=True))
    assert set(table["layer"]) == set(LAYERS) and set(table["format"]) == {"int8", "fp8_e4m3", "2:4"}
    page = paths["html"].read_text(encoding="utf-8")
    assert html_is_self_contained(page)
    assert page.count('class="plotly-graph-div"') == 3
    assert "SYNTHETIC" in page  # the checkpoint's config says its weights are random
    record = json.loads(paths["provenance"].read_text())
    assert record["status"] == "complete" and record["formats"] == "int8, fp8_e4m3" and record["layers"] == 3
    assert record["outputs"] == {"parquet": paths["parquet"].name, "html": paths["html"].name}
    printed = capsys.readouterr().out
    assert f"report: {paths['html']}" in printed and "3 layers" in printed


def test_existing_outputs_refused_unless_resume(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["weights", str(ckpt), *ARGS, "--layers", *LAYERS[:1], "-o", str(out), "--name", "r"]
    assert main(argv) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--resume" in err and "r.parquet" in err
    assert _snapshot(out) == before  # nothing changed
    assert main(argv + ["--resume"]) == 0
    assert "(resumed)" in capsys.readouterr().out
    after = _snapshot(out)
    assert after["r.parquet"] == before["r.parquet"]  # every layer was finished: nothing recomputed
    assert sorted(after) == sorted(before)


def test_resume_with_other_formats_is_refused_and_changes_nothing(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["weights", str(ckpt), "--patterns", "--no-progress", "--layers", *LAYERS[:1], "-o", str(out), "--name", "r"]
    assert main(argv + ["--formats", "int8"]) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert main(argv + ["--formats", "int4", "--resume"]) == 2
    assert "error: " in capsys.readouterr().err
    assert _snapshot(out) == before  # the page and the completion marker are back, the parquet untouched


def test_interrupted_rerun_leaves_a_stale_page_and_resume_finishes(ckpt, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    argv = ["weights", str(ckpt), *ARGS, "--layers", *LAYERS[:2], "-o", str(out), "--name", "r"]
    assert main(argv) == 0
    page = (out / "r.html").read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("workbench.reports.weights.weight_report", interrupted)
    assert main(argv + ["--resume"]) == 130
    assert "interrupted" in capsys.readouterr().err
    names = {p.name for p in out.iterdir()}
    assert names == {"r.parquet", "r.stale.html"}  # no page and no completion marker: it never looks complete
    assert (out / "r.stale.html").read_bytes() == page
    monkeypatch.undo()
    assert main(argv + ["--resume"]) == 0
    assert {p.name for p in out.iterdir()} == {"r.parquet", "r.html", "r.provenance.json"}


def test_bad_input_exits_2_before_any_output(ckpt, tmp_path, capsys):
    out = tmp_path / "never"
    cases = [
        (["weights", str(tmp_path / "missing"), *ARGS], "missing"),
        (["weights", str(ckpt), "--formats", "int99", "--patterns", "--no-progress"], "int99"),
        (["weights", str(ckpt), "--formats", "--patterns", "fp8_e4m3", "--no-progress"], "fp8_e4m3"),
        (["weights", str(ckpt), "--formats", "int8_activations", "--no-progress"], "without the model"),
        (["weights", str(ckpt), *ARGS, "--layers", "nope"], "nope"),
        (["weights", str(ckpt), *ARGS, "--dask", "tcp://127.0.0.1:1", "--workers", "2"], "give one"),
        (["weights", str(ckpt), *ARGS, "--name", ".hidden"], ".hidden"),
    ]
    for argv, needle in cases:
        assert main(argv + ["-o", str(out)]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and needle in err, (argv, err)
        assert not out.exists(), argv
    with pytest.raises(SystemExit) as exc:  # argparse's own check
        main(["weights", str(ckpt), "--workers", "0", "-o", str(out)])
    assert exc.value.code == 2


def test_a_second_writer_of_the_same_name_is_refused(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    with output_lock(out, "r", what="weight report"):
        assert main(["weights", str(ckpt), *ARGS, "-o", str(out), "--name", "r"]) == 2
    assert "being written by" in capsys.readouterr().err
    assert not any(p.name.startswith("r.") for p in out.iterdir())


def test_parser_defaults_and_helpers():
    args = build_parser().parse_args(["weights", "ck"])
    assert args.formats is None and args.patterns is None and args.output_dir == "reports"
    assert args.scheduler is None and args.workers == 1 and not args.resume
    assert build_parser().parse_args(["weights", "ck", "--scheduler", "tcp://h:1"]).scheduler == "tcp://h:1"
    assert default_name("safetensors:/m/llama-7b/") == "weights-llama-7b"
    assert default_name("/m/model.safetensors") == "weights-model"
    with dask_client(None, 1) as client:
        assert client is None  # one worker: run in this process, no cluster
    with pytest.raises(OptionError, match="give one"), dask_client("tcp://h:1", 2):
        pass
    assert os.environ.get("WORKBENCH_TEST_NEVER_SET") is None


@pytest.mark.slow  # starts a 2-process LocalCluster (about 9 s on 2 loaded cores)
def test_workers_2_runs_on_a_local_dask_cluster_and_equals_the_local_run(ckpt, tmp_path, capsys):
    pytest.importorskip("distributed")
    common = ["weights", str(ckpt), "--formats", "int4", "--patterns", "2:4", "--no-progress", "--layers", *LAYERS]
    assert main(common + ["-o", str(tmp_path / "local")]) == 0
    assert main(common + ["-o", str(tmp_path / "dask"), "--workers", "2"]) == 0
    name = "weights-llama-tiny.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "local" / name), pd.read_parquet(tmp_path / "dask" / name))
    record = json.loads((tmp_path / "dask" / "weights-llama-tiny.provenance.json").read_text())
    assert record["run on"] == "Dask LocalCluster, 2 workers"
