"""Run dashboard work off the UI thread: one worker thread, the newest request wins, cancellable, waitable.

A widget callback must return quickly or the Jupyter kernel stops answering the browser. :class:`LatestJobRunner`
takes a job (a function of a :class:`JobContext`), runs it on a single worker thread and calls back with its result.
Every submission increments a *generation counter*; a job still running when a newer one arrives is *superseded*:
its next :meth:`JobContext.check` raises :class:`Cancelled` and its result is never published, and a job waiting
to start is simply replaced. :meth:`LatestJobRunner.cancel` stops the running job the same way. :meth:`wait`
blocks until the runner is idle, so headless tests and benchmarks can wait for completion deterministically;
``sync=True`` runs every job inline (no thread at all).

Nothing here imports ipywidgets: the runner is plain threading and can be tested on its own.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Cancelled", "JobContext", "LatestJobRunner", "RunnerView"]


class Cancelled(Exception):
    """Raised inside a job by :meth:`JobContext.check` once the job was cancelled or superseded.

    ``reason`` is ``"cancelled"`` (the user pressed cancel) or ``"superseded"`` (a newer job was submitted).
    """

    def __init__(self, reason: str = "cancelled") -> None:
        super().__init__(reason)
        self.reason = reason


ProgressFn = Callable[[float, str], None]


@dataclass
class JobContext:
    """What a running job sees: its generation, a cancellation check and a progress reporter."""

    generation: int
    runner: "LatestJobRunner"
    label: str = ""

    def cancelled_reason(self) -> str | None:
        """``"superseded"``, ``"cancelled"`` or ``None`` while the job may go on."""
        return self.runner._stop_reason(self.generation)

    def check(self) -> None:
        """Raise :class:`Cancelled` when this job was cancelled or superseded; cheap, call it often."""
        reason = self.cancelled_reason()
        if reason is not None:
            raise Cancelled(reason)

    def progress(self, fraction: float, text: str = "") -> None:
        """Report progress in [0, 1] with a short text (forwarded to the runner's ``on_progress``)."""
        self.runner._report(self.generation, fraction, text)


@dataclass
class _Job:
    generation: int
    fn: Callable[[JobContext], Any]
    on_done: Callable[[Any], None] | None
    on_error: Callable[[BaseException], None] | None
    on_cancel: Callable[[str], None] | None
    label: str
    submitted: float = field(default_factory=time.perf_counter)


class LatestJobRunner:
    """A single worker thread that runs the most recent job; older ones are superseded.

    Callbacks (``on_done``, ``on_error``, ``on_cancel``, ``on_progress``, ``on_busy``) run on the worker thread (or
    inline when ``sync=True``); ``on_done`` is only called when no newer job was submitted meanwhile, so a stale
    result never overwrites a fresh one.

    >>> r = LatestJobRunner(sync=True)
    >>> out = []
    >>> r.submit(lambda ctx: 2 + 2, on_done=out.append)
    1
    >>> out
    [4]
    """

    def __init__(
        self,
        *,
        sync: bool = False,
        on_progress: ProgressFn | None = None,
        on_busy: Callable[[bool], None] | None = None,
        name: str = "workbench-dashboard",
        min_progress_interval: float = 0.05,
    ) -> None:
        self.sync = sync
        self.on_progress = on_progress
        self.on_busy = on_busy
        self.name = name
        self.min_progress_interval = min_progress_interval
        self._cond = threading.Condition()
        self._generation = 0
        self._cancelled_upto = 0  # jobs with generation <= this were cancelled by the user
        self._pending: _Job | None = None
        self._running: _Job | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._last_progress = 0.0
        self.last_error: BaseException | None = None
        self.completed = 0  # jobs whose on_done ran

    # --- public API -------------------------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        """The generation of the newest submitted job."""
        return self._generation

    @property
    def busy(self) -> bool:
        """True while a job runs or waits to run."""
        with self._cond:
            return self._running is not None or self._pending is not None

    def submit(
        self,
        fn: Callable[[JobContext], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_cancel: Callable[[str], None] | None = None,
        label: str = "",
    ) -> int:
        """Queue ``fn(ctx)`` as the newest job, superseding any older one; returns its generation."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the dashboard's job runner is closed")
            self._generation += 1
            job = _Job(self._generation, fn, on_done, on_error, on_cancel, label)
            if self.sync:
                self._running = job
            else:
                self._pending = job  # an older pending job is dropped: it never started
                self._ensure_thread()
                self._cond.notify_all()
        if self.sync:
            self._set_busy(True)
            try:
                self._run(job)
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()
                self._set_busy(False)
        return job.generation

    def cancel(self) -> None:
        """Stop the running job (at its next :meth:`JobContext.check`) and drop a pending one."""
        with self._cond:
            self._cancelled_upto = self._generation
            dropped = self._pending
            self._pending = None
            self._cond.notify_all()
        if dropped is not None and dropped.on_cancel is not None:
            dropped.on_cancel("cancelled")

    def wait(self, timeout: float | None = 60.0) -> bool:
        """Block until no job runs or waits; True when idle, False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._running is not None or self._pending is not None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 0.5)
        return True

    def close(self) -> None:
        """Cancel everything and stop the worker thread."""
        self.cancel()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5)

    # --- internals --------------------------------------------------------------------------------------------
    def _stop_reason(self, generation: int) -> str | None:
        if generation <= self._cancelled_upto:
            return "cancelled"
        if generation < self._generation:
            return "superseded"
        return None

    def _report(self, generation: int, fraction: float, text: str) -> None:
        if self.on_progress is None or self._stop_reason(generation) is not None:
            return
        now = time.monotonic()
        if 0.0 < fraction < 1.0 and now - self._last_progress < self.min_progress_interval:
            return
        self._last_progress = now
        try:
            self.on_progress(max(0.0, min(1.0, float(fraction))), text)
        except Exception:  # a broken progress display must not kill the job
            traceback.print_exc()

    def _set_busy(self, busy: bool) -> None:
        if self.on_busy is not None:
            try:
                self.on_busy(busy)
            except Exception:
                traceback.print_exc()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job, self._pending = self._pending, None
                self._running = job
            self._set_busy(True)
            try:
                self._run(job)
            finally:
                with self._cond:
                    self._running = None
                    idle = self._pending is None
                    self._cond.notify_all()
                if idle:
                    self._set_busy(False)

    def _run(self, job: _Job) -> None:
        ctx = JobContext(job.generation, self, job.label)
        try:
            ctx.check()
            result = job.fn(ctx)
            ctx.check()  # a result that arrives after a newer submission is stale
        except Cancelled as c:
            if job.on_cancel is not None:
                self._call(job.on_cancel, c.reason)
            return
        except BaseException as e:  # noqa: BLE001 - reported inline by the caller's on_error
            self.last_error = e
            if self._stop_reason(job.generation) is not None:
                return  # an error of a superseded job is not news
            if job.on_error is not None:
                self._call(job.on_error, e)
            else:
                traceback.print_exception(e)
            return
        if job.on_done is not None:
            self._call(job.on_done, result)
        self.completed += 1

    def _call(self, fn: Callable[[Any], None], arg: Any) -> None:
        try:
            fn(arg)
        except Exception as e:  # a callback failure must not kill the worker thread
            self.last_error = e
            traceback.print_exc()


class RunnerView:
    """What every lab view that runs one job at a time does around its :class:`LatestJobRunner`: show an error in
    its status line, move its progress bar, disable its train button and enable its cancel button while busy, and
    :meth:`wait` for headless use. A view sets ``runner``, ``status`` (an HTML widget), ``progress`` (a progress bar),
    ``train_button`` and ``cancel_button``, and passes ``on_progress=self._on_progress, on_busy=self._on_busy`` to
    its runner and ``on_error=self._on_error`` to its submissions."""

    error: BaseException | None = None

    def _on_error(self, e: BaseException) -> None:
        self.error = e
        self.status.value = f"<b>error:</b> {e}"  # type: ignore[attr-defined]

    def _on_progress(self, fraction: float, text: str) -> None:
        self.progress.value = fraction  # type: ignore[attr-defined]

    def _on_busy(self, busy: bool) -> None:
        self.train_button.disabled = busy  # type: ignore[attr-defined]
        self.cancel_button.disabled = not busy  # type: ignore[attr-defined]

    def wait(self, timeout: float | None = 300) -> bool:
        """Block until the running job is done (headless use); False on timeout."""
        return self.runner.wait(timeout)  # type: ignore[attr-defined]
