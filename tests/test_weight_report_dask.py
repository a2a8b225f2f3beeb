"""weight_report on executors: a Dask LocalCluster of 2 workers and a process pool give the local result; each task's
payload is a small LayerJob (no tensor), and workers open the safetensors file themselves."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import pickle
from pathlib import Path

import pandas as pd
import pytest
from safetensors.torch import save_file

from workbench.models import load_model
from workbench.reports.weights import LayerJob, run_layer_job, weight_report

FORMATS = ["fp8_e4m3", "int4"]
PATTERNS = ["2:4", "2:4-T"]


@pytest.fixture(scope="module")
def cnn_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "cnn.safetensors"
    save_file({k: v.contiguous() for k, v in load_model("digits-cnn").model.state_dict().items()}, str(path))
    return path


class RecordingExecutor(cf.Executor):
    """Pickles every task as a process executor would, records its size, and runs it on a thread."""

    def __init__(self) -> None:
        self.pool = cf.ThreadPoolExecutor(2)
        self.payloads: list[tuple[object, int]] = []

    def submit(self, fn, /, *args, **kwargs):
        blob = pickle.dumps((fn, args, kwargs))
        self.payloads.append((args, len(blob)))
        fn2, args2, kwargs2 = pickle.loads(blob)
        return self.pool.submit(fn2, *args2, **kwargs2)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def test_dask_local_cluster_equals_local(cnn_file: Path) -> None:
    distributed = pytest.importorskip("distributed")
    local = weight_report(str(cnn_file), FORMATS, PATTERNS, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cl, \
            distributed.Client(cl) as client:
        on_dask = weight_report(str(cnn_file), FORMATS, PATTERNS, executor=client, progress=False)
        assert len(client.nthreads()) == 2
    pd.testing.assert_frame_equal(on_dask, local, check_exact=True)


def test_task_payload_is_small_and_names_the_file(cnn_file: Path) -> None:
    ex = RecordingExecutor()
    try:
        got = weight_report(str(cnn_file), FORMATS, PATTERNS, executor=ex, progress=False)
    finally:
        ex.shutdown()
    pd.testing.assert_frame_equal(got, weight_report(str(cnn_file), FORMATS, PATTERNS, progress=False))
    assert len(ex.payloads) == 4  # one task per layer
    for (job,), size in ex.payloads:
        assert isinstance(job, LayerJob) and job.file == str(cnn_file)
        assert size < 1500, size  # the fc1 weight alone is 128 KB
    assert sorted(j.layer for (j,), _ in ex.payloads) == ["conv1", "conv2", "fc1", "fc2"]


def test_worker_processes_open_the_file_themselves(cnn_file: Path) -> None:
    """A process pool runs the same tasks in other processes, from the path alone. Spawned, not forked: inside the
    whole suite the parent holds OpenMP, numba and Dask threads by now, and a forked child died of it (a
    BrokenProcessPool in a clean-clone CI run; alone the test passed). One torch thread in the children."""
    import torch

    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(2, mp_context=ctx, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        got = weight_report(str(cnn_file), FORMATS, PATTERNS, executor=pool, progress=False)
    pd.testing.assert_frame_equal(got, weight_report(str(cnn_file), FORMATS, PATTERNS, progress=False))


def test_run_layer_job_alone(cnn_file: Path) -> None:
    job = LayerJob(0, "fc2", "fc2.weight", str(cnn_file), (10, 64), "float32", 32, (("format", "int8"),))
    (row,) = run_layer_job(job)
    assert row["layer"] == "fc2" and row["status"] == "ok" and row["bytes"] == 640 + 40


def test_stop_on_an_executor_then_resume(cnn_file: Path, tmp_path: Path) -> None:
    full = weight_report(str(cnn_file), FORMATS, PATTERNS, progress=False)
    out = tmp_path / "w.parquet"

    def two_done() -> bool:
        return out.exists() and pd.read_parquet(out)["layer"].nunique() >= 2

    with cf.ThreadPoolExecutor(2) as pool:
        part = weight_report(str(cnn_file), FORMATS, PATTERNS, out=out, executor=pool, stop=two_done, progress=False)
    assert not part.attrs["complete"] and list(part["layer"].unique()) == ["conv1", "conv2"]
    with cf.ThreadPoolExecutor(2) as pool:
        rest = weight_report(str(cnn_file), FORMATS, PATTERNS, out=out, executor=pool, resume=True, progress=False)
    pd.testing.assert_frame_equal(rest, full)
