"""How far the weights have moved from their initialization: ‖w_t − w_0‖ per layer and in total.

Hoffer, Hubara & Soudry 2017 ("Train longer, generalize better") observe that the distance of the weights from their
initial point grows like ``log t`` with the number of updates ``t``, the signature of a random walk on a random
landscape ("ultra-slow diffusion") rather than of a free random walk (``√t``).

:class:`WeightDistanceTracker` keeps ``w_0`` (and, when the travelled distance is asked for, the previous snapshot) as
one flat float32 vector (the per-parameter tensors are views into it). An update works on NumPy views that share
the parameters' memory: per parameter tensor one subtraction into a preallocated buffer and one BLAS dot product,
then the per-tensor squares are summed per layer: no Python loop over elements and no copy of the model (a dozen
whole-tensor calls for digits-cnn's 38k parameters; see ``benchmarks/RESULTS.dynamics.md`` for the overhead). A *layer* is a module that owns
parameters directly (``conv1`` holds ``conv1.weight`` and ``conv1.bias``); ``"total"`` is the whole vector.

Recorded rows (a tidy DataFrame, one row per step × layer): ``step, layer, distance, travelled, init_norm``, where
``travelled`` = Σ_s ‖w_{s+1} − w_s‖ over every update the tracker saw (NaN when not tracked) and ``init_norm`` = ‖w_0‖
of that layer.

>>> m = torch.nn.Linear(3, 2)
>>> tr = WeightDistanceTracker(m)
>>> with torch.no_grad():
...     _ = m.weight.add_(1.0)
>>> rows = tr.update(1)
>>> round(tr.frame().query("step == 1 and layer == 'total'").distance.item(), 4)  # √6 ones moved by 1
2.4495
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.errors import DataError, LayerError

TOTAL = "total"
COLUMNS = ["step", "layer", "distance", "travelled", "init_norm"]


def _layer_parameters(model: nn.Module, layers: Iterable[str] | None,
                      trainable_only: bool) -> list[tuple[str, list[torch.Tensor]]]:
    groups: list[tuple[str, list[torch.Tensor]]] = []
    for name, module in model.named_modules():
        params = [p for p in module.parameters(recurse=False) if p.requires_grad or not trainable_only]
        if params:
            groups.append((name or type(model).__name__, params))
    if layers is not None:
        wanted = list(layers)
        known = {n for n, _ in groups}
        missing = [w for w in wanted if w not in known]
        if missing:
            raise LayerError(f"WeightDistanceTracker: no layer with parameters named {missing}; "
                             f"layers: {sorted(known)}")
        groups = [(n, ps) for n, ps in groups if n in set(wanted)]
    if not groups:
        raise LayerError(f"WeightDistanceTracker: {type(model).__name__} has no trainable parameters to track")
    return groups


class WeightDistanceTracker:
    """Record ``‖w_t − w_0‖`` per layer and in total every ``every`` steps (and optionally the distance travelled).

    Call :meth:`update` after every optimizer step with the step number (1, 2, ...); step 0 (the initial point) is
    recorded on construction. ``travelled=True`` compares each update with the previous one, so the path length is
    exact at the granularity of the calls (every step when called every step), at the cost of a second difference.
    """

    def __init__(self, model: nn.Module, every: int = 1, travelled: bool = False,
                 layers: Iterable[str] | None = None, trainable_only: bool = True,
                 record_steps: Iterable[int] | None = None) -> None:
        if int(every) < 1:
            raise DataError(f"WeightDistanceTracker: every must be a positive number of steps, got {every!r}")
        self.every = int(every)
        self.track_travelled = bool(travelled)
        self.record_steps = None if record_steps is None else set(int(s) for s in record_steps)
        groups = _layer_parameters(model, layers, trainable_only)
        self.layer_names = [n for n, _ in groups]
        self._params = [p for _, ps in groups for p in ps]
        sizes = [p.numel() for p in self._params]
        self.numel = int(sum(sizes))
        # which layer each parameter tensor belongs to (a handful of entries, not one per element)
        self._param_layer = np.repeat(np.arange(len(groups)), [len(ps) for _, ps in groups])
        self._fast = all(p.dtype == torch.float32 and p.device.type == "cpu" for p in self._params)
        self._bind_numpy()
        self.w0 = self._snapshot()
        self._w0_views = self._views(self.w0)
        self._w0_np = [v.numpy().reshape(-1) for v in self._w0_views]
        self._prev = self.w0.clone() if self.track_travelled else None
        self._prev_views = self._views(self._prev) if self._prev is not None else None
        self._prev_np = [v.numpy().reshape(-1) for v in self._prev_views] if self._prev_views else None
        self._travelled = np.zeros(len(groups) + 1)
        sq0 = np.bincount(self._param_layer, weights=np.array([float(v.double().pow(2).sum())
                                                               for v in self._w0_views]), minlength=len(groups))
        self.init_norms = np.sqrt(np.append(sq0, sq0.sum()))
        self._rows: list[tuple[int, str, float, float, float]] = []
        self._names = self.layer_names + [TOTAL]
        self._init_list = self.init_norms.tolist()
        self.last_step = 0
        self._emit(0, np.zeros(len(groups) + 1))

    def _bind_numpy(self) -> None:
        """NumPy views sharing memory with the parameters (CPU float32), rebuilt if a parameter's storage moves."""
        self._ptrs = [p.data_ptr() for p in self._params]
        if self._fast:
            self._np_params = [p.detach().numpy().reshape(-1) for p in self._params]
            self._np_tmp = [np.empty_like(a) for a in self._np_params]

    def _views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        return [v.view_as(p) for v, p in zip(flat.split([p.numel() for p in self._params]), self._params)]

    def _snapshot(self) -> torch.Tensor:
        """The tracked parameters as one new flat float32 vector."""
        with torch.no_grad():
            return torch.cat([p.detach().reshape(-1).float() for p in self._params])

    def _norms_from(self, ref_views: list[torch.Tensor], ref_np: list[np.ndarray]) -> np.ndarray:
        """Per-layer and total ‖w − ref‖, ``ref`` given as views of a flat float32 vector.

        For CPU float32 parameters the work is done on NumPy views that share the parameters' memory: per tensor one
        subtraction into a preallocated buffer and one BLAS dot product (a dozen calls for digits-cnn, each over a
        whole tensor), then the per-tensor squares are summed per layer. Other devices/dtypes take a torch path.
        """
        if [p.data_ptr() for p in self._params] != self._ptrs:  # e.g. model.to(...) replaced the storage
            self._bind_numpy()
        if self._fast:
            sq = np.empty(len(self._params))
            for i, (w, r, tmp) in enumerate(zip(self._np_params, ref_np, self._np_tmp)):
                np.subtract(w, r, out=tmp)
                sq[i] = np.dot(tmp, tmp)
        else:
            with torch.no_grad():
                sq = torch.stack([torch.linalg.vector_norm(p.detach().float().cpu() - r).square()
                                  for p, r in zip(self._params, ref_views)]).double().numpy()
        per_layer = np.bincount(self._param_layer, weights=sq, minlength=len(self.layer_names))
        return np.sqrt(np.append(per_layer, per_layer.sum()))

    def _emit(self, step: int, dist: np.ndarray) -> list[dict]:
        trav = self._travelled.tolist() if self.track_travelled else [float("nan")] * len(dist)
        step = int(step)
        new = [(step, name, d, tr, n0) for name, d, tr, n0 in zip(self._names, dist.tolist(), trav, self._init_list)]
        self._rows.extend(new)
        return [{"step": r[0], "layer": r[1], "distance": r[2], "travelled": r[3], "init_norm": r[4]} for r in new]

    def due(self, step: int) -> bool:
        """Whether ``step`` is one at which a row is recorded."""
        if self.record_steps is not None:
            return step in self.record_steps
        return step % self.every == 0

    def update(self, step: int, force: bool = False) -> list[dict]:
        """Observe the parameters after update number ``step``; returns the rows recorded now (empty if none)."""
        step = int(step)
        if step <= self.last_step and not force:
            return []
        record = force or self.due(step)
        if not record and not self.track_travelled:
            return []
        if self.track_travelled:
            assert self._prev_views is not None
            self._travelled += self._norms_from(self._prev_views, self._prev_np)
            # (the total entry is Σ‖Δw‖ of the whole vector, which the last entry of the norms already is)
            if self._fast:
                for prev, w in zip(self._prev_np, self._np_params):  # type: ignore[arg-type]
                    np.copyto(prev, w)
            else:
                with torch.no_grad():
                    for prev_t, p in zip(self._prev_views, self._params):
                        prev_t.copy_(p.detach())
        self.last_step = max(self.last_step, step)
        if not record:
            return []
        return self._emit(step, self._norms_from(self._w0_views, self._w0_np))

    def frame(self) -> pd.DataFrame:
        """Every row recorded so far: ``step, layer, distance, travelled, init_norm``."""
        return pd.DataFrame(self._rows, columns=COLUMNS)


def distances_direct(model: nn.Module, initial: dict[str, torch.Tensor]) -> dict[str, float]:
    """Reference: ‖w − w_0‖ per layer and in total from two state dicts, in float64, one tensor at a time."""
    per_layer: dict[str, float] = {}
    for name, param in model.named_parameters():
        layer = name.rpartition(".")[0] or type(model).__name__
        d = (param.detach().double() - initial[name].double()).pow(2).sum().item()
        per_layer[layer] = per_layer.get(layer, 0.0) + d
    total = sum(per_layer.values())
    out = {k: float(np.sqrt(v)) for k, v in per_layer.items()}
    out[TOTAL] = float(np.sqrt(total))
    return out


RowCallback = Callable[[list[dict]], None]

__all__ = ["WeightDistanceTracker", "distances_direct", "TOTAL", "COLUMNS"]
