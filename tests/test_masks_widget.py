"""MaskView headless: it opens on the first layer a pattern fits, and says why a pattern does not fit in the words
of the formats' own check (the formats tab says the same)."""

from __future__ import annotations

import html

import pytest


import workbench
from workbench.widgets.dashboard import Workbench
from workbench.widgets.masks import MaskView, first_fitting_layer, fit_reason


@pytest.fixture(scope="module")
def cnn():
    return workbench.load_model("digits-cnn")


def test_opens_on_the_first_layer_the_pattern_fits(cnn):
    view = MaskView(cnn, n_batches=1)
    assert view.layer.options[0] == "conv1" and view.pattern.value == "2:4"
    assert view.layer.value == "conv2"  # conv1 has one input channel: no N:M pattern fits it
    assert view.status.value == "" and len(view.heatmap.data) == 2
    assert view.heatmap.layout.title.text.startswith("conv2 · 2:4 (")
    shown = [t for t in view.heatmap.data[1].z for t in t if t is not None]
    assert shown and len(shown) * 2 == sum(len(r) for r in view.heatmap.data[1].z)  # 2:4 keeps half


def test_skip_message_agrees_with_the_formats_tab(cnn):
    view = MaskView(cnn, n_batches=1)
    view.layer.value = "conv1"
    wb = Workbench(cnn, sync=True, views=False)
    try:
        wb.sparsity.value = "2:4"
        skipped = wb.layer_errors.set_index("layer")["skipped"]["conv1"]
    finally:
        wb.restore_dense()
        wb.close()
    assert "input dimension 1 " in skipped
    assert html.escape(skipped) in view.status.value  # the same words, escaped for HTML
    assert view.heatmap.layout.title.text == "conv1 · 2:4: does not fit, |w| only"


def test_fit_helpers(cnn):
    mods = dict(cnn.model.named_modules())
    assert fit_reason(mods["conv2"].weight, "2:4") is None
    assert "M=8" in fit_reason(mods["conv1"].weight, "4:8-T")
    assert fit_reason(mods["conv1"].weight, "unstructured 50%") is None  # not a formats pattern: fits anything
    assert first_fitting_layer({"conv1": mods["conv1"], "fc1": mods["fc1"]}, "2:4") == "fc1"
    assert first_fitting_layer({"conv1": mods["conv1"]}, "2:4") == "conv1"  # none fits: the first
    assert first_fitting_layer({}, "2:4") is None


def test_offers_the_large_transposable_patterns(cnn):
    import torch

    from workbench.formats import eligible_layers, original_weight, to_matrix
    from workbench.formats.masks import is_transposable
    from workbench.sparsity.patterns import pattern_mask

    view = MaskView(cnn, n_batches=1)
    assert {"8:16-T", "16:32-T"} <= set(view.pattern.options)
    view.layer.value = "fc1"
    view.pattern.value = "16:32-T"
    row = view.report().set_index("pattern").loc["16:32-T"]
    assert row.status == "applied" and 0 < row.kept_abs < 1
    assert view.heatmap.layout.title.text.startswith("fc1 · 16:32-T (")
    mask, padded = pattern_mask(to_matrix(original_weight(eligible_layers(cnn.model)["fc1"])).float(), "16:32-T")
    pr, pc = (-mask.shape[0]) % 32, (-mask.shape[1]) % 32
    assert padded == bool(pr or pc)
    assert is_transposable(torch.nn.functional.pad(mask, (0, pc, 0, pr)), 16, 32)  # ≤ 16 per row and column
