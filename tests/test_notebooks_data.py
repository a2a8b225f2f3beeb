"""The results notebooks load instead of training: notebook 05's bundled binarized MLP (``data/digits-bnn.*``,
written by ``scripts/train_digits.py --only digits-bnn``) is the file its record names and scores what it records."""

from __future__ import annotations

import json

import torch

from workbench.data import DATA_DIR, digits_split
from workbench.models.zoo import sha256_file
from workbench.quant import BinarizedMLP


def test_bundled_binarized_mlp_matches_its_record():
    record = json.loads((DATA_DIR / "digits-bnn.json").read_text())
    path = DATA_DIR / record["file"]
    assert sha256_file(path) == record["sha256"]
    model = BinarizedMLP(tuple(record["sizes"]), batchnorm=record["batchnorm"])
    model.load_state_dict(torch.load(path, weights_only=True), strict=True)
    model.eval()
    split = digits_split()
    with torch.no_grad():
        acc = float((model(split.x_test).argmax(1) == split.y_test).float().mean())
    assert abs(acc - record["test_accuracy"]) < 1e-6
    assert record["runs"]["binarized + BN"]["test_accuracy"] == record["test_accuracy"]
    # latent weights clipped to [-1, 1]: what training with the straight-through estimator leaves
    assert all(float(layer.weight.detach().abs().max()) <= 1.0 for layer in model.layers)
    for name, run in record["runs"].items():
        h = run["metrics"]
        assert h["epoch"] == list(range(1, record["epochs"] + 1)), name
        assert h["test_acc"][-1] == run["test_accuracy"], name
