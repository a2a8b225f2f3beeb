"""Benchmark: the streaming weight report on a 7B-layout bf16 checkpoint (SYNTHETIC random weights, ~12.6 GiB).

    python benchmarks/scale.py [--layout 7b] [--dir /tmp/wb-scale] [--keep] [--no-dask] [--json FILE]

Measured in one run, under ``flock /tmp/wb-bench.lock`` (taken by the script itself):

1. the checkpoint is written by :func:`workbench.models.synthetic_llama.write_llama_checkpoint` into ``--dir``
   (seeded random weights, not a model; skipped when a complete one is already there) — its time and peak RSS;
2. the page cache of every shard is dropped with ``posix_fadvise(POSIX_FADV_DONTNEED)`` (works per file without
   root; ``/proc/sys/vm/drop_caches`` is not writable in this container) and the resident bytes are checked with
   ``fincore`` before each measurement, so every read below starts cold in this machine's page cache (the virtual
   disk's host may still cache: the figures are this VM's view);
3. the baseline: reading every shard once, sequentially, 16 MiB at a time (the disk's own sequential read speed);
4. ``workbench weights CK --formats fp8_e4m3 fp8_e5m2 int8 int4 --patterns`` (4 formats, no pattern) as a
   subprocess under ``/usr/bin/time -v``: wall time, peak RSS (target: under 2 GiB), GB of weights per second and
   the ratio to the read (target: within 3x of reading the file once);
5. the same report on a Dask ``LocalCluster`` of 1 and of 2 single-threaded worker processes (cache dropped before
   each): the speed-up of 2 workers over 1, and each worker's peak RSS (``getrusage`` inside the worker).

Prints a markdown table with the ratios and the load average; ``--json`` also writes the figures. The checkpoint is
deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FORMATS = ["fp8_e4m3", "fp8_e5m2", "int8", "int4"]
LOCK = "/tmp/wb-bench.lock"
GIB = 1024**3


def shards(ck: Path) -> list[Path]:
    return sorted(ck.glob("*.safetensors"))


def drop_cache(files: list[Path]) -> None:
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)  # dirty pages cannot be dropped: write them first
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def resident_bytes(files: list[Path]) -> int | None:
    """Bytes of ``files`` in the page cache (``fincore``), or None without fincore."""
    if not shutil.which("fincore"):
        return None
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES", *map(str, files)],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        return None
    return sum(int(x) for x in out.stdout.split())


def sequential_read(files: list[Path], block: int = 16 * 2**20) -> tuple[float, int]:
    buf = bytearray(block)
    view = memoryview(buf)
    total = 0
    t0 = time.perf_counter()
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            while True:
                n = fh.readinto(view)
                if not n:
                    break
                total += n
    return time.perf_counter() - t0, total


def _timed(cmd: list[str], timeout: float) -> dict:
    """Run ``cmd`` under /usr/bin/time -v; wall time, CPU time (user + system), peak RSS (bytes), return code and
    output tail. A run past ``timeout`` is stopped (SIGTERM, then SIGKILL) and marked ``timed_out``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(["/usr/bin/time", "-v", *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT, start_new_session=True)
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, 15)
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0

    def field(label: str) -> float | None:
        m = re.search(label + r": ([\d.]+)", stderr)
        return float(m.group(1)) if m else None

    rss = field(r"Maximum resident set size \(kbytes\)")
    user, system = field(r"User time \(seconds\)"), field(r"System time \(seconds\)")
    return {"wall_s": wall, "cpu_s": (user or 0) + (system or 0), "peak_rss": int(rss * 1024) if rss else None,
            "rc": proc.returncode, "timed_out": timed_out, "stdout": stdout[-2000:], "stderr": stderr[-3000:]}


def analysed_bytes(parquet: Path) -> tuple[int, int]:
    """(layers, bytes of stored weights) that a (possibly unfinished) report's parquet holds."""
    import pandas as pd

    if not parquet.is_file():
        return 0, 0
    t = pd.read_parquet(parquet).drop_duplicates("layer")
    per = {"bfloat16": 2, "float16": 2, "float32": 4}
    return len(t), int(sum(n * per.get(str(d).removeprefix("torch."), 2) for n, d in zip(t["numel"], t["dtype"])))


def block_layers(handle, blocks: int) -> list[str]:
    """The layers of the first ``blocks`` decoder blocks (``model.layers.K.*``, K < blocks)."""
    names = list(handle.layers["name"])
    return [n for n in names if re.match(r"model\.layers\.(\d+)\.", n)
            and int(re.match(r"model\.layers\.(\d+)\.", n).group(1)) < blocks]


def dask_child(ck: str, workers: int, formats: list[str], blocks: int) -> None:
    """Child mode: the report on a LocalCluster of ``workers`` single-threaded processes (the layers of the first
    ``blocks`` decoder blocks; 0: all); prints JSON."""
    import resource

    from distributed import Client, LocalCluster

    from workbench.models import load_model
    from workbench.reports.weights import weight_report

    handle = load_model(f"safetensors:{ck}", lazy=True)
    layers = block_layers(handle, blocks) if blocks else None
    lt = handle.layers if layers is None else handle.layers[handle.layers["name"].isin(layers)]
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        t0 = time.perf_counter()
        table = weight_report(handle, formats=formats, patterns=(), executor=client, progress=False, layers=layers)
        wall = time.perf_counter() - t0
        rss = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps({"report_s": wall, "rows": len(table), "layers": len(lt), "bytes": int(lt["bytes"].sum()),
                      "worker_peak_rss": sorted(rss.values()),
                      "driver_peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", default="7b", help="checkpoint layout (7b, 1b, tiny; default 7b)")
    parser.add_argument("--dir", default="/tmp/wb-scale",
                        help="where the checkpoint is written (default /tmp/wb-scale)")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoint afterwards")
    parser.add_argument("--no-dask", action="store_true", help="skip the 1- and 2-worker LocalCluster runs")
    parser.add_argument("--no-cli", action="store_true", help="skip the `workbench weights` run")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per measured run (default 1800)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    parser.add_argument("--cli-blocks", type=int, default=0,
                        help="the CLI run covers the embedding, lm_head and the first K decoder blocks (default 0: "
                        "the whole checkpoint)")
    parser.add_argument("--lock", choices=["wait", "try"], default="wait",
                        help="wait for the benchmark lock (default), or take it only if free and otherwise run "
                        "without it (said in the output)")
    parser.add_argument("--dask-blocks", type=int, default=2,
                        help="Dask runs cover the first K decoder blocks (default 2; 0: the whole checkpoint)")
    parser.add_argument("--dask-child", nargs=3, metavar=("CHECKPOINT", "WORKERS", "BLOCKS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dask_child:
        dask_child(args.dask_child[0], int(args.dask_child[1]), FORMATS, int(args.dask_child[2]))
        return

    from workbench.models.synthetic_llama import INDEX_NAME, resolve_layout, write_llama_checkpoint

    layout = resolve_layout(args.layout)
    base = Path(args.dir)
    ck = base / f"llama-{args.layout}"
    fig: dict = {"layout": args.layout, "parameters": layout.num_parameters, "formats": FORMATS,
                 "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                            f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / GIB:.0f} GiB RAM"}
    lock = open(LOCK, "a+")
    t_wait = time.perf_counter()
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | (fcntl.LOCK_NB if args.lock == "try" else 0))
        fig["under_lock"] = True
    except BlockingIOError:
        fig["under_lock"] = False
        print(f"{LOCK} is held by another benchmark: running WITHOUT it (--lock try)", file=sys.stderr)
    fig["lock_wait_s"] = round(time.perf_counter() - t_wait, 1)
    fig["load_before"] = os.getloadavg()
    print(f"lock {LOCK} held after {fig['lock_wait_s']} s; load avg {fig['load_before']}", file=sys.stderr)
    try:
        if not (ck / INDEX_NAME).is_file():
            base.mkdir(parents=True, exist_ok=True)
            gen = _timed([sys.executable, "-c",
                          "import sys; from workbench.models.synthetic_llama import write_llama_checkpoint as w; "
                          f"w({str(ck)!r}, {args.layout!r}, progress=False, overwrite=True)"], args.timeout)
            assert gen["rc"] == 0, gen["stderr"]
            fig["generate"] = {"wall_s": gen["wall_s"], "peak_rss": gen["peak_rss"]}
            print(f"generated {ck} in {gen['wall_s']:.0f} s", file=sys.stderr)
        files = shards(ck)
        size = sum(f.stat().st_size for f in files)
        fig["checkpoint_bytes"] = size

        drop_cache(files)
        fig["read_resident_before"] = resident_bytes(files)
        read_s, nread = sequential_read(files)
        fig["read"] = {"wall_s": read_s, "bytes": nread}
        print(f"sequential read: {nread / 1e9:.2f} GB in {read_s:.1f} s", file=sys.stderr)

        out = base / "out"
        shutil.rmtree(out, ignore_errors=True)
        drop_cache(files)
        fig["cli_resident_before"] = resident_bytes(files)
        if not args.no_cli:
            layers: list[str] = []
            if args.cli_blocks:
                from workbench.models import load_model

                handle = load_model(f"safetensors:{ck}", lazy=True)
                layers = [n for n in handle.layers["name"] if not n.startswith("model.layers.")]
                layers += block_layers(handle, args.cli_blocks)
            fig["cli_layers"] = layers or "all"
            cli = _timed([sys.executable, "-m", "workbench.cli", "weights", str(ck), "--formats", *FORMATS,
                          "--patterns", "-o", str(out), "--name", "scale", "--no-progress",
                          *(["--layers", *layers] if layers else [])], args.timeout)
            assert cli["rc"] == 0 or cli["timed_out"], cli["stderr"]
            m = re.search(r"rows in ([\d.]+) s", cli["stdout"])
            done_layers, done_bytes = analysed_bytes(out / "scale.parquet")
            fig["cli"] = {**{k: cli[k] for k in ("wall_s", "cpu_s", "peak_rss", "timed_out", "stdout")},
                          "report_s": float(m.group(1)) if m else None, "layers_done": done_layers,
                          "bytes_done": done_bytes}
            print(f"workbench weights: {cli['wall_s']:.0f} s ({'TIMED OUT, ' if cli['timed_out'] else ''}"
                  f"{done_layers} layers), peak RSS {cli['peak_rss'] / GIB:.2f} GiB", file=sys.stderr)

        if not args.no_dask:
            for n in (1, 2):
                drop_cache(files)
                fig[f"dask{n}_resident_before"] = resident_bytes(files)
                run = _timed([sys.executable, str(Path(__file__).resolve()), "--dask-child", str(ck), str(n),
                              str(args.dask_blocks)], args.timeout)
                if run["rc"] != 0:
                    fig[f"dask{n}"] = {"failed": run["stderr"][-500:], "timed_out": run["timed_out"]}
                    print(f"dask {n}: failed: {run['stderr'][-500:]}", file=sys.stderr)
                    break
                child = json.loads(run["stdout"].strip().splitlines()[-1])
                fig[f"dask{n}"] = {"wall_s": run["wall_s"], "cpu_s": run["cpu_s"], **child}
                print(f"dask {n} worker(s): report {child['report_s']:.0f} s", file=sys.stderr)
        shutil.rmtree(out, ignore_errors=True)
    finally:
        fig["load_after"] = os.getloadavg()
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
        if not args.keep:
            shutil.rmtree(ck, ignore_errors=True)
    print_table(fig)
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2, default=str) + "\n", encoding="utf-8")


def print_table(fig: dict) -> None:
    size = fig["checkpoint_bytes"]
    read_s = fig["read"]["wall_s"]
    speed = size / read_s  # bytes per second of the cold sequential read

    def res(key: str) -> str:
        v = fig.get(key)
        return "?" if v is None else f"{v / 1e6:.0f} MB"

    print(f"\nWeight report on a SYNTHETIC {fig['layout']}-layout bf16 checkpoint ({fig['parameters'] / 1e9:.2f} G "
          f"parameters, {size / 1e9:.2f} GB on disk), formats {', '.join(fig['formats'])}; {fig['machine']}; "
          f"load avg before {[round(x, 2) for x in fig['load_before']]}, after "
          f"{[round(x, 2) for x in fig['load_after']]}; "
          + ("under the benchmark lock" if fig.get("under_lock") else "NOT under the benchmark lock (it was held)")
          + "\n")
    print("| run | weights covered | wall (s) | CPU (s) | GB of weights / s | x the time to read them | peak RSS | "
          "cached before |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| cold sequential read of every shard (baseline) | {size / 1e9:.2f} GB | {read_s:.1f} | - | "
          f"{speed / 1e9:.3f} | 1.00x | - | {res('read_resident_before')} |")
    cli = fig.get("cli")
    if cli is None:
        cli = {"bytes_done": 0, "report_s": None, "wall_s": 0.0, "timed_out": False, "layers_done": 0, "cpu_s": 0,
               "peak_rss": 0, "skipped": True}
    done = cli["bytes_done"] or 1
    wall = cli["report_s"] or cli["wall_s"]
    label = "`workbench weights`, 4 formats" + (" (TIMED OUT: partial)" if cli["timed_out"] else "")
    if not cli.get("skipped"):
        print(f"| {label} | {done / 1e9:.2f} GB ({cli['layers_done']} layers) | {cli['wall_s']:.1f} | "
              f"{cli['cpu_s']:.0f} | {done / 1e9 / wall:.3f} | {wall / (done / speed):.2f}x | "
              f"{cli['peak_rss'] / GIB:.2f} GiB | {res('cli_resident_before')} |")
    for n in (1, 2):
        d = fig.get(f"dask{n}")
        if d and "report_s" in d:
            rss = ", ".join(f"{r / GIB:.2f}" for r in d["worker_peak_rss"])
            print(f"| Dask LocalCluster, {n} worker(s), report only | {d['bytes'] / 1e9:.2f} GB ({d['layers']} layers) "
                  f"| {d['report_s']:.1f} | {d['cpu_s']:.0f} | {d['bytes'] / 1e9 / d['report_s']:.3f} | "
                  f"{d['report_s'] / (d['bytes'] / speed):.2f}x | workers {rss} GiB, driver "
                  f"{d['driver_peak_rss'] / GIB:.2f} GiB | {res(f'dask{n}_resident_before')} |")
    if fig.get("dask1", {}).get("report_s") and fig.get("dask2", {}).get("report_s"):
        print(f"\nspeed-up of 2 Dask workers over 1: {fig['dask1']['report_s'] / fig['dask2']['report_s']:.2f}x")
    if cli.get("report_s"):
        print(f"`workbench weights` wall time includes start-up; the report itself took {cli['report_s']:.1f} s")
    if fig.get("generate"):
        g = fig["generate"]
        print(f"writing the checkpoint took {g['wall_s']:.0f} s, peak RSS {g['peak_rss'] / GIB:.2f} GiB")


if __name__ == "__main__":
    main()
