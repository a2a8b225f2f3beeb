"""The compression report's optional feature metric table (``metric_table``): a real quick report run on digits-mlp
whose metrics JSON holds one record per (format, method), the parameter listed with its help, and models the table
cannot use refused before any work."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from workbench.errors import DataError
from workbench.reports import run_report
from workbench.reports.compression import FEATURE_METHODS, feature_metric_table
from workbench.reports.params import notebook_parameters

ROOT = Path(__file__).resolve().parents[1]
COMPRESSION = ROOT / "notebooks" / "reports" / "compression_report.ipynb"


def test_metric_table_parameter_is_declared_with_help():
    p = notebook_parameters(COMPRESSION)["metric_table"]
    assert p.default is False  # current reports unchanged
    assert "NCA" in p.help and "free-energy" in p.help and "classification" in p.help


@pytest.mark.slow
def test_report_with_metric_table_writes_the_table(tmp_path):
    params = {"model": "digits-mlp", "formats": ["int8"], "output_error": False, "mask_format": "",
              "metric_table": True, "quick": True, "seed": 1}
    result = run_report(COMPRESSION, params, output_dir=tmp_path, name="compression")
    assert result.status == "complete"
    metrics = json.loads(result.metrics_file.read_text())
    table = metrics["metric_table"]
    pairs = [(r["format"], r["method"]) for r in table]
    assert sorted(pairs) == sorted((f, m) for f in ("dense", "int8") for m in FEATURE_METHODS)  # one row each
    for r in table:
        assert r["status"] == "ok" and 0.0 <= r["accuracy_mean"] <= 1.0 and r["accuracy_sd"] >= 0.0
        assert "fit_seconds" not in r  # no timings: the JSON stays reproducible
    nca = {r["format"]: r for r in table if r["method"] == "nca"}
    assert all(v["diff_vs_nca"] == 0.0 for v in nca.values())
    # the dense features of a trained digits MLP separate the ten classes far above chance (0.1)
    assert next(r for r in table if r["format"] == "dense" and r["method"] == "euclidean")["accuracy_mean"] > 0.8
    assert "Metric table of the features" in result.html.read_text(encoding="utf-8")


def test_metric_table_refuses_models_it_cannot_use():
    embedding = SimpleNamespace(name="emb", task="embedding", model=torch.nn.Linear(4, 2))
    with pytest.raises(DataError, match="classification"):
        feature_metric_table(embedding, ["int8"])
    conv_last = SimpleNamespace(name="convlast", task="classification",
                                model=torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Conv1d(1, 2, 3)))
    with pytest.raises(DataError, match=r"'1' \(Conv1d\), not a Linear"):
        feature_metric_table(conv_last, ["int8"])
