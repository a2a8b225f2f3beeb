"""Replaying the unchanged upstream of a layer: one evaluation per layer × format at a fraction of a forward's cost.

When only layer ``l`` is quantized, every module that finished before ``l`` started computes exactly what it did in
full precision. :class:`UpstreamReplay` records, once, the call order of all submodules during ``handle.evaluate()``
and the outputs of the modules that will be skipped; while a layer is evaluated, the outermost modules that finished
before it are replaced by a replay of their recorded outputs (their ``forward`` is shadowed for the duration), so
``handle.evaluate()`` only computes from ``l`` onwards. On a 6-block transformer that is about half the work on
average. Only modules called exactly once per forward pass are replayed; outputs are cloned on replay (an in-place
op downstream cannot corrupt the record). :meth:`UpstreamReplay.check` compares a replayed evaluation with the
plain one and the caller falls back to plain evaluation if they differ.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

__all__ = ["UpstreamReplay"]


def _clone(obj: Any) -> Any:
    if torch.is_tensor(obj):
        return obj.clone()
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_clone(o) for o in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(_clone(o) for o in obj)
    if isinstance(obj, dict):
        return type(obj)((k, _clone(v)) for k, v in obj.items())
    return obj


def _detach(obj: Any) -> Any:
    if torch.is_tensor(obj):
        return obj.detach()
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_detach(o) for o in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(_detach(o) for o in obj)
    if isinstance(obj, dict):
        return type(obj)((k, _detach(v)) for k, v in obj.items())
    return obj


class UpstreamReplay:
    """Record the full-precision call structure of ``handle.evaluate()`` and replay the upstream of chosen layers."""

    def __init__(self, handle: Any, targets: list[str]) -> None:
        self.handle = handle
        self.model: nn.Module = handle.model
        self.modules = {n: m for n, m in self.model.named_modules() if n}
        self.targets = list(targets)
        self.skip: dict[str, list[str]] = {}
        self.records: dict[str, list[Any]] = {}
        self._order()
        self._record()

    # one evaluation with hooks on every submodule: call counts and the order of events in the first forward
    def _order(self) -> None:
        events: list[tuple[str, str]] = []
        counts: dict[str, int] = {n: 0 for n in self.modules}
        root_calls = [0]
        hooks = []

        def pre(name: str):
            def f(mod: nn.Module, args: Any) -> None:
                counts[name] += 1
                if root_calls[0] == 1:
                    events.append(("start", name))
            return f

        def post(name: str):
            def f(mod: nn.Module, args: Any, out: Any) -> None:
                if root_calls[0] == 1:
                    events.append(("end", name))
            return f

        def root_pre(mod: nn.Module, args: Any) -> None:
            root_calls[0] += 1

        hooks.append(self.model.register_forward_pre_hook(root_pre))
        for n, m in self.modules.items():
            hooks.append(m.register_forward_pre_hook(pre(n)))
            hooks.append(m.register_forward_hook(post(n)))
        try:
            self.baseline = dict(self.handle.evaluate())
        finally:
            for h in hooks:
                h.remove()
        n_forward = root_calls[0]
        self.n_forward = n_forward
        once = {n for n, c in counts.items() if n_forward > 0 and c == n_forward}
        pos: dict[tuple[str, str], int] = {}
        for i, ev in enumerate(events):
            pos.setdefault(ev, i)
        for t in self.targets:
            start = pos.get(("start", t))
            if start is None:
                self.skip[t] = []
                continue
            ended = {n for n in once if pos.get(("end", n), 1 << 60) < start}
            outer = [n for n in ended
                     if not any(a in ended for a in _ancestors(n))]
            self.skip[t] = sorted(outer, key=lambda n: pos[("start", n)])

    def _record(self) -> None:
        needed = sorted({n for s in self.skip.values() for n in s})
        self.records = {n: [] for n in needed}
        hooks = []
        for n in needed:
            def f(mod: nn.Module, args: Any, out: Any, n: str = n) -> None:
                self.records[n].append(_detach(out))
            hooks.append(self.modules[n].register_forward_hook(f))
        try:
            self.handle.evaluate()
        finally:
            for h in hooks:
                h.remove()

    @contextmanager
    def replaying(self, target: str) -> Iterator[None]:
        """Within the block, modules upstream of ``target`` return their recorded outputs instead of computing."""
        patched = []
        try:
            for n in self.skip.get(target, []):
                mod = self.modules[n]
                outs = self.records[n]
                counter = [0]

                def forward(*args: Any, _outs: list = outs, _c: list = counter, **kwargs: Any) -> Any:
                    out = _outs[_c[0] % len(_outs)]
                    _c[0] += 1
                    return _clone(out)
                object.__setattr__(mod, "forward", forward)
                patched.append(mod)
            yield
        finally:
            for mod in patched:
                try:
                    object.__delattr__(mod, "forward")
                except AttributeError:
                    pass

    def evaluate(self, target: str) -> dict[str, float]:
        """``handle.evaluate()`` with the upstream of ``target`` replayed."""
        with self.replaying(target):
            return dict(self.handle.evaluate())

    def check(self, target: str | None = None, rtol: float = 1e-5) -> bool:
        """True if a replayed evaluation (by default for the last target, which skips the most) equals the plain one."""
        if not self.targets:
            return True
        t = target or self.targets[-1]
        got = self.evaluate(t)
        return all(abs(got[k] - v) <= rtol * max(1.0, abs(v)) for k, v in self.baseline.items())

    @property
    def fraction_skipped(self) -> float:
        """Share of targets with at least one replayed module (a rough gauge of the saving)."""
        return sum(bool(s) for s in self.skip.values()) / max(1, len(self.skip))


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]
