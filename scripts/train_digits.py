"""Train the bundled digits models and write their checkpoints and records to ``data/``.

    python scripts/train_digits.py            # trains every bundled model, writes data/*.pt + checkpoints.json
    python scripts/train_digits.py --only digits32-cnn-aps   # one model (the geometry lab's are digits32-cnn-*)
    python scripts/train_digits.py --only digits-gru   # only the GRU (digits read row by row, 8 steps)
    python scripts/train_digits.py --check    # trains again and compares with the committed records, writes nothing
    python scripts/train_digits.py --only digits-bnn   # the binarized MLP of notebook 05 (+ its float twins' records)

Both models train on the fixed training split of :func:`workbench.data.digits_split` only (1,437 images); the 360
test images are only used for the recorded accuracy. Training is seeded (``torch.manual_seed``, a seeded shuffling
generator, deterministic algorithms, one thread): on one machine a rerun gives bitwise the same weights. Across CPUs
and torch builds floating-point reductions may differ, so a rerun elsewhere reproduces the accuracy (to within a few
test images), not necessarily the bytes.

``digits-bnn`` is notebook 05's binarized MLP (64-256-256-10, BatchNorm, 40 epochs, seed 0; trained by
:func:`workbench.quant.train_digits_mlp` with the notebook's arguments), saved as ``data/digits-bnn.pt`` with its
record in ``data/digits-bnn.json``: file, sha256, test accuracy, and the per-epoch histories of the three runs the
notebook compares (binarized + BN, binarized without BN, float), so the notebook loads them instead of training
for minutes. It is not a ``load_model`` spec (its architecture is :class:`workbench.quant.BinarizedMLP`).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from workbench.data import DATA_DIR, digits_split
from workbench.models.zoo import BUNDLED, CHECKPOINTS_FILE, sha256_file

SEED = 0
# name -> (epochs, batch size, peak learning rate, weight decay)
RECIPES: dict[str, tuple[int, int, float, float]] = {
    "digits-mlp": (40, 64, 3e-3, 1e-4),
    "digits-cnn": (30, 64, 3e-3, 1e-4),
    # the geometry lab's 32×32 models (workbench.geometry): max pool, blur pool, adaptive polyphase sampling
    "digits32-cnn-max": (15, 64, 6e-3, 1e-4),
    "digits32-cnn-blur": (15, 64, 6e-3, 1e-4),
    "digits32-cnn-aps": (15, 64, 6e-3, 1e-4),
    "digits-gru": (40, 64, 1e-2, 1e-4),
}


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``model`` on ``(x, y)`` in eval mode."""
    model.eval()
    with torch.inference_mode():
        logits = model(x)
        return (logits.argmax(1) == y).float().mean().item(), F.cross_entropy(logits, y).item()


def train(name: str, seed: int = SEED, epochs: int | None = None) -> tuple[torch.nn.Module, dict]:
    """Train bundled model ``name`` from scratch; return the model (eval mode) and its record (without file/sha256).

    Adam with a cosine learning-rate schedule, mini-batches drawn by a seeded generator, cross-entropy loss.
    """
    entry = BUNDLED[name]
    n_epochs, batch, lr, wd = RECIPES[name]
    n_epochs = epochs if epochs is not None else n_epochs
    split = digits_split(images=entry.images, size=entry.size)
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(seed)
        model = entry.arch()
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
        n = len(split.y_train)
        steps_per_epoch = math.ceil(n / batch)
        total = n_epochs * steps_per_epoch
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
        for _ in range(n_epochs):
            model.train()
            order = torch.randperm(n, generator=gen)
            for i in range(steps_per_epoch):
                idx = order[i * batch:(i + 1) * batch]
                loss = F.cross_entropy(model(split.x_train[idx]), split.y_train[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        acc, loss = evaluate(model, split.x_test, split.y_test)
        train_acc, _ = evaluate(model, split.x_train, split.y_train)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    record = {
        "arch": entry.arch.__name__,
        "test_accuracy": round(acc, 6),
        "test_loss": round(loss, 6),
        "train_accuracy": round(train_acc, 6),
        "seed": seed,
        "epochs": n_epochs,
        "batch_size": batch,
        "optimizer": f"AdamW(lr={lr}, weight_decay={wd}), cosine schedule",
        "torch_version": torch.__version__,
        "split": "scikit-learn digits, stratified train_test_split(test_size=0.2, random_state=0): 1437 train / 360 test",
    }
    if entry.size != 8:
        record["input"] = f"digits upsampled to {entry.size}×{entry.size} (workbench.data.upsample_digits)"
    return model.float().eval(), record


BNN = "digits-bnn"
BNN_RECORD = "digits-bnn.json"
# notebook 05's defaults: hidden sizes, epochs, seed (train_digits_mlp's own recipe: Adam, cosine lr, batch 64)
BNN_RECIPE = {"hidden": [256, 256], "epochs": 40, "seed": SEED}
# the per-epoch columns of TrainResult.metrics kept in the record (timings are left out: they vary by machine)
HISTORY_COLUMNS = ["step", "epoch", "train_loss", "train_acc", "test_loss", "test_acc"]
BNN_RUNS = {"binarized + BN": {"binary": True, "batchnorm": True},
            "binarized, no BN": {"binary": True, "batchnorm": False},
            "float": {"binary": False}}


def train_binarized(seed: int = SEED, epochs: int | None = None, hidden: list[int] | None = None) -> tuple[torch.nn.Module, dict]:
    """Train notebook 05's three digits MLPs; return the binarized + BN model and a record (without file/sha256)
    holding every run's final test accuracy and per-epoch metrics."""
    from workbench.quant import train_digits_mlp

    epochs = epochs if epochs is not None else BNN_RECIPE["epochs"]
    hidden = list(hidden if hidden is not None else BNN_RECIPE["hidden"])
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        results = {run: train_digits_mlp(kw["binary"], batchnorm=kw.get("batchnorm", True), hidden=tuple(hidden),
                                         epochs=epochs, seed=seed) for run, kw in BNN_RUNS.items()}
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    main_run = results["binarized + BN"]
    record = {
        "arch": "BinarizedMLP",
        "sizes": [64, *hidden, 10],
        "batchnorm": True,
        "test_accuracy": round(main_run.test_accuracy, 6),
        "seed": seed,
        "epochs": epochs,
        "trainer": "workbench.quant.train_digits_mlp (Adam lr 1e-2 binary / 1e-3 float, cosine schedule, batch 64)",
        "torch_version": torch.__version__,
        "split": "scikit-learn digits, stratified train_test_split(test_size=0.2, random_state=0): 1437 train / 360 test",
        "runs": {run: {"test_accuracy": round(r.test_accuracy, 6),
                       "metrics": {c: [int(v) if c in ("epoch", "step") else round(float(v), 6) for v in r.metrics[c]]
                                   for c in HISTORY_COLUMNS}}
                 for run, r in results.items()},
    }
    return main_run.model.float().eval(), record


def _bnn(args: argparse.Namespace) -> int:
    """Train (or check) the binarized MLP of notebook 05 and write data/digits-bnn.pt + data/digits-bnn.json."""
    model, record = train_binarized()
    print(f"{BNN}: " + ", ".join(f"{k} {v['test_accuracy']:.4f}" for k, v in record["runs"].items()))
    path = args.out / f"{BNN}.pt"
    if args.check:
        old = json.loads((args.out / BNN_RECORD).read_text())
        diff = abs(old["test_accuracy"] - record["test_accuracy"])
        print(f"  committed {old['test_accuracy']}, difference {100 * diff:.2f} percentage points")
        return int(diff > 0.005)
    args.out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().contiguous() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save(state, path)
    record = {"file": path.name, "sha256": sha256_file(path), **record}
    text = json.dumps(record, indent=1, sort_keys=True)
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)  # one line a list
    (args.out / BNN_RECORD).write_text(text + "\n")
    print(f"wrote {path} and {args.out / BNN_RECORD}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="retrain and compare with data/checkpoints.json; write nothing")
    p.add_argument("--out", type=Path, default=DATA_DIR, help="directory for the checkpoints (default: data/)")
    p.add_argument("--only", choices=sorted(BUNDLED) + [BNN], help="train only this model")
    args = p.parse_args(argv)
    if args.only == BNN:
        return _bnn(args)
    names = [args.only] if args.only else list(BUNDLED)
    records_path = args.out / CHECKPOINTS_FILE
    records = json.loads(records_path.read_text()) if records_path.is_file() else {}
    status = 0
    for name in names:
        model, record = train(name)
        print(f"{name}: test accuracy {record['test_accuracy']:.4f}, loss {record['test_loss']:.4f}")
        if args.check:
            old = records.get(name, {})
            diff = abs(old.get("test_accuracy", -1.0) - record["test_accuracy"])
            print(f"  committed {old.get('test_accuracy')}, difference {100 * diff:.2f} percentage points")
            status |= diff > 0.005
            continue
        path = args.out / BUNDLED[name].file
        state = {k: v.detach().float().contiguous() if v.is_floating_point() else v for k, v in model.state_dict().items()}
        torch.save(state, path)
        records[name] = {"file": path.name, "sha256": sha256_file(path), **record}
    if not args.check:
        args.out.mkdir(parents=True, exist_ok=True)
        records_path.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
        print(f"wrote {records_path}")
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
