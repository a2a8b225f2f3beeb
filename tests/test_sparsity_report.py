"""mask_report, pattern parsing, conversion (magnitude and reconstruction), the viz figures and the MaskView widget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.errors import FormatError
from workbench.formats import to_matrix
from workbench.sparsity.convert import conversion_table, convert_to_nm, refit_rows
from workbench.sparsity.diversity import log10_int, mask_diversity
from workbench.sparsity.masks import is_nm, is_transposable, nm_mask
from workbench.sparsity.patterns import parse_pattern, pattern_mask
from workbench.sparsity.report import mask_report, pattern_summary


@pytest.fixture(scope="module")
def report(digits_cnn):
    return mask_report(digits_cnn, n_batches=1)


def test_parse_pattern():
    assert parse_pattern("2:4").kind == "nm" and parse_pattern("2:4-T").kind == "transposable"
    assert parse_pattern("4:8-T greedy").method == "greedy"
    assert parse_pattern("unstructured 50%").density == 0.5 == parse_pattern("unstructured:0.5").density
    for bad in ["5:4", "2:4 greedy", "sparse", "unstructured 150%"]:
        with pytest.raises(FormatError):
            parse_pattern(bad)


def test_report_values_against_direct_computation(digits_cnn, report):
    assert set(report.layer) == {"conv1", "conv2", "fc1", "fc2"}
    row = report[(report.layer == "fc1") & (report.pattern == "2:4")].iloc[0]
    w = digits_cnn.model.fc1.weight.detach()
    mask = nm_mask(w, 2, 4)
    assert row.kept_abs == pytest.approx(float((w * mask).abs().sum() / w.abs().sum()), rel=1e-6)
    assert row.kept_sq == pytest.approx(float((w * mask).pow(2).sum() / w.pow(2).sum()), rel=1e-5)
    assert row.log10_diversity == pytest.approx(log10_int(mask_diversity("nm", 2, 4, shape=(64, 512))))
    # output error of this layer alone, recomputed here from a hook
    xs = []
    hk = digits_cnn.model.fc1.register_forward_hook(lambda mod, a, out: xs.append(a[0]))
    digits_cnn.run(digits_cnn.calibration_batches(n_batches=1)[0])
    hk.remove()
    b = digits_cnn.model.fc1.bias.detach()
    y = torch.nn.functional.linear(xs[0], w, b)
    ys = torch.nn.functional.linear(xs[0], w * mask, b)
    assert row.output_rel_error == pytest.approx(float((y - ys).norm() / y.norm()), rel=1e-4)


def test_report_skips_conv1_for_nm_and_orders_patterns(report):
    c1 = report[report.layer == "conv1"].set_index("pattern")
    assert c1.loc["2:4", "status"] == "skipped" and "multiple of M=4" in c1.loc["2:4", "reason"]
    assert c1.loc["unstructured 50%", "status"] == "applied"
    fc1 = report[report.layer == "fc1"].set_index("pattern")
    # relaxations keep at least as much: unstructured >= 4:8 >= 2:4 >= 1:2, N:M >= N:M-T
    assert fc1.kept_abs["unstructured 50%"] >= fc1.kept_abs["4:8"] >= fc1.kept_abs["2:4"] >= fc1.kept_abs["1:2"]
    assert fc1.kept_abs["2:4"] >= fc1.kept_abs["2:4-T"] and fc1.kept_abs["4:8"] >= fc1.kept_abs["4:8-T"]
    assert fc1.log10_diversity["4:8-T"] > fc1.log10_diversity["2:4-T"]
    assert bool(report[(report.layer == "fc2") & (report.pattern == "2:4-T")].padded.iloc[0])  # 10 rows
    s = pattern_summary(report)
    assert list(s.pattern)[:2] == ["1:2", "2:4"] and (s.kept_abs <= 1).all()


def test_pattern_masks_satisfy_their_constraints():
    w = torch.randn(16, 32)
    assert is_transposable(pattern_mask(w, "4:8-T")[0], 4, 8, exact=True)
    assert is_nm(pattern_mask(w, "1:2")[0], 1, 2)
    m, _ = pattern_mask(w, "unstructured 25%")
    assert int(m.sum()) == 128 and w.abs()[m].min() >= w.abs()[~m].max()


def test_refit_rows_recovers_a_sparse_linear_map_exactly():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 16, generator=g, dtype=torch.float64)
    w_true = torch.randn(6, 16, generator=g, dtype=torch.float64)
    mask = nm_mask(w_true, 2, 4)
    w_true = w_true * mask
    b_true = torch.randn(6, generator=g, dtype=torch.float64)
    y = x @ w_true.T + b_true
    w, b = refit_rows(x, y, torch.zeros(6, 16), mask, torch.zeros(6), ridge=1e-12)
    assert torch.allclose(w, w_true, atol=1e-6) and torch.allclose(b, b_true, atol=1e-6)
    assert (w[~mask] == 0).all()


def test_reconstruction_recovers_at_least_half_the_lost_accuracy(digits_cnn):
    """digits-cnn at 2:4: layer-wise reconstruction recovers at least half of what magnitude pruning loses."""
    dense = digits_cnn.evaluate()["accuracy"]
    mag_model, _ = convert_to_nm(digits_cnn, "2:4", "magnitude")
    model, per_layer = convert_to_nm(digits_cnn, "2:4", "reconstruct", n_batches=4, max_samples=6000)
    mag, rec = digits_cnn.evaluate(mag_model)["accuracy"], digits_cnn.evaluate(model)["accuracy"]
    assert mag < dense  # magnitude pruning costs accuracy here
    assert rec - mag >= 0.5 * (dense - mag)
    assert per_layer.set_index("layer").status["conv1"] == "skipped"
    for name in ("conv2", "fc1", "fc2"):
        w = dict(model.named_modules())[name].weight.detach()
        assert is_nm(to_matrix(w), 2, 4)
        assert torch.equal(to_matrix(w) != 0, to_matrix(dict(mag_model.named_modules())[name].weight) != 0)
    # the handle is untouched
    assert torch.equal(digits_cnn.model.conv2.weight, wb.load_model("digits-cnn").model.conv2.weight)


def test_conversion_table_columns(digits_cnn):
    t = conversion_table(digits_cnn, formats=("2:4",), methods=("magnitude",))
    assert list(t.columns) == ["model", "pattern", "method", "layers_converted", "metric", "dense", "converted", "change"]
    assert t.layers_converted.iloc[0] == 3 and t.change.iloc[0] == pytest.approx(t.converted.iloc[0] - t.dense.iloc[0])


def test_convert_bad_method(digits_cnn):
    with pytest.raises(FormatError):
        convert_to_nm(digits_cnn, "2:4", "prune-harder")


def test_viz_figures(report):
    from workbench.viz import sparsity as V

    fc1 = report[report.layer == "fc1"]
    f = V.kept_magnitude_bar(fc1)
    assert list(f.data[0].x) == list(fc1.pattern) and max(f.data[0].y) <= 1
    f = V.diversity_bar(fc1)
    assert f.data[0].y[list(fc1.pattern).index("4:8-T")] == pytest.approx(
        float(fc1.set_index("pattern").log10_diversity["4:8-T"]))
    f = V.kept_vs_diversity(fc1)
    assert sum(len(t.x) for t in f.data) == len(fc1)
    absw, mask = np.abs(np.random.randn(8, 8)), np.eye(8, dtype=bool)
    f = V.mask_heatmap(absw, mask, m=4)
    z = np.array(f.data[1].z, dtype=float)
    assert np.isnan(z[~mask]).all() and np.allclose(z[mask], absw[mask]) and len(f.layout.shapes) == 2


def test_mask_view_headless(digits_cnn):
    from workbench.widgets.masks import MaskView

    v = MaskView(digits_cnn, n_batches=1)
    assert v.ui is not None and v.layer.value == "conv2"  # the first layer 2:4 fits (conv1 has 1 input channel)
    v.layer.value = "fc1"
    v.pattern.value = "4:8-T"
    z = np.array(v.heatmap.data[1].z, dtype=float)
    assert z.shape == (16, 32) and np.isnan(z).mean() == pytest.approx(0.5)
    assert "4:8-T" in v.heatmap.layout.title.text and "4:8-T" in v.table.value
    kept = dict(zip(v.kept_fig.data[0].x, v.kept_fig.data[0].y))
    assert kept["unstructured 50%"] >= kept["4:8-T"]
    v.row0.value = 60
    assert np.array(v.heatmap.data[1].z, dtype=float).shape[0] == 4  # clipped at the last rows
    v.layer.value = "conv1"
    v.pattern.value = "2:4"
    assert "multiple of M=4" in v.status.value


def test_capture_stop_early_gives_the_same_inputs(digits_cnn):
    from workbench.sparsity.layerio import capture_inputs

    batches = digits_cnn.calibration_batches(n_batches=2)
    full = capture_inputs(digits_cnn, digits_cnn.model, ["conv2"], batches)["conv2"]
    early = capture_inputs(digits_cnn, digits_cnn.model, ["conv2"], batches, stop_early=True)["conv2"]
    assert len(full) == len(early) == 2 and all(torch.equal(a, b) for a, b in zip(full, early))


def test_formats_registry_uses_these_solvers():
    """The "N:M-T" toggles and the lab agree: apply() masks equal transposable_mask on the same weight."""
    from workbench.sparsity.masks import transposable_mask

    h = wb.load_model("digits-cnn")
    dense = h.model.fc1.weight.detach().clone()
    wb.apply(h.model, "2:4-T", layers=["fc1"])
    try:
        kept = h.model.fc1.weight.detach() != 0
        assert torch.equal(kept, transposable_mask(dense, 2, 4)) and is_transposable(kept, 2, 4, exact=True)
    finally:
        wb.restore(h.model)
    assert torch.equal(h.model.fc1.weight, dense)
