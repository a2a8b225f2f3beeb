"""Benchmark: wall time of every notebook's default run (quick=False, what ``workbench lab`` opens) and quick run.

    flock /tmp/wb-bench.lock nice python benchmarks/notebooks.py [--mode default quick] [--timeout 600] [NAME ...]

Each notebook is executed top to bottom in a fresh kernel of the current environment (nbclient), with
``WORKBENCH_QUICK`` unset (default) or ``1`` (quick); the time of the slowest cell is reported beside the total.
A run past ``--timeout`` seconds is stopped and reported as ``> timeout``. Prints a markdown table and the load
average, since the machine may be shared. The target: default under 120 s, quick well under 60 s, on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(path: Path, quick: bool, timeout: float) -> tuple[str, float, str]:
    """(status, wall seconds, slowest cell 'index: seconds') of one execution."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    env_quick = os.environ.pop("WORKBENCH_QUICK", None)
    if quick:
        os.environ["WORKBENCH_QUICK"] = "1"
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    status = "ok"
    try:
        client.execute()
    except (CellTimeoutError, TimeoutError):
        status = "timeout"
    except DeadKernelError:
        status = "kernel died"
    except CellExecutionError as e:
        status = "error: " + str(e).strip().splitlines()[-1][:80]
    wall = time.perf_counter() - t0
    os.environ.pop("WORKBENCH_QUICK", None)
    if env_quick is not None:
        os.environ["WORKBENCH_QUICK"] = env_quick
    slow = ""
    times = []
    for i, c in enumerate(nb.cells):
        ex = c.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in ex and "shell.execute_reply" in ex:
            from datetime import datetime

            a = datetime.fromisoformat(ex["iopub.execute_input"].replace("Z", "+00:00"))
            b = datetime.fromisoformat(ex["shell.execute_reply"].replace("Z", "+00:00"))
            times.append(((b - a).total_seconds(), i))
    if times:
        t, i = max(times)
        slow = f"cell {i}: {t:.0f} s"
    return status, wall, slow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names or prefixes (default: all in notebooks/)")
    parser.add_argument("--mode", nargs="+", default=["default", "quick"], choices=["default", "quick"])
    parser.add_argument("--timeout", type=float, default=600, help="seconds per cell before the run is stopped")
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    paths = sorted([*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("notebooks/reports/*.ipynb")])
    if args.names:
        paths = [p for p in paths if any(p.name.startswith(n) for n in args.names)]
    print(f"Notebook wall times; {platform.machine()}, {os.cpu_count()} cores, load average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| notebook | mode | status | wall (s) | slowest cell |")
    print("|---|---|---|---:|---|")
    for p in paths:
        for mode in args.mode:
            status, wall, slow = run(p, mode == "quick", args.timeout)
            print(f"| {p.relative_to(ROOT / 'notebooks')} | {mode} | {status} | {wall:.0f} | {slow} |", flush=True)
    print(f"\nload average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
