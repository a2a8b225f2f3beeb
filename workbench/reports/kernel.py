"""The Jupyter kernel a report runs in: quiet on a clean shutdown, private sockets, never left behind.

:func:`report_kernel_manager_class` gives the kernel manager class :func:`workbench.reports.run_report` hands to
papermill (nbclient's ``kernel_manager_class``), which keeps a handle on the kernel so the runner can end it
whatever happens:

- **No SIGINT on a clean shutdown.** jupyter_client's ``shutdown_kernel`` interrupts the kernel (SIGINT to its
  process group) before asking it to shut down. When that signal lands while ipykernel handles a message, the kernel
  logs ``[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.`` to the terminal after a report that succeeded.
  :class:`ReportKernelManager` skips that interrupt while shutting down; a kernel busy in a cell is interrupted by
  nbclient on a cell timeout as before, and one that does not answer the shutdown request is killed after
  ``shutdown_wait_time``.
- **IPC sockets** (POSIX): the kernel listens on Unix sockets in a private ``0700`` folder instead of TCP ports on
  127.0.0.1 that any local user can reach (ipykernel also warns, on every start, about unencrypted TCP).
- :func:`kill_kernel` ends the kernel's process group at once (Ctrl-C, a sweep being stopped), so no kernel
  outlives the report that started it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager


class ReportKernelManager(AsyncKernelManager):
    """An :class:`~jupyter_client.manager.AsyncKernelManager` that does not interrupt the kernel to shut it down."""

    async def _async_interrupt_kernel(self) -> None:
        if self.shutting_down:  # shutdown_kernel() interrupts first; a report's kernel is idle then: skip it
            return
        await super()._async_interrupt_kernel()


def report_kernel_manager_class() -> tuple[type[ReportKernelManager], list[ReportKernelManager], Path | None]:
    """A kernel manager class for one report (nbclient's ``kernel_manager_class``), the list its instances are put
    in, and the private folder of their sockets (None on TCP).

    nbclient creates, owns and cleanly shuts down the manager (without the SIGINT, see the module doc); the list
    gives the report runner a handle to :func:`kill_kernel` whatever happens (Ctrl-C while a cell runs).
    """
    instances: list[ReportKernelManager] = []
    sockets = Path(tempfile.mkdtemp(prefix="wb-kernel-")) if os.name == "posix" else None  # short: ~100-byte limit

    class _OneReportKernelManager(ReportKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            if sockets is not None:
                kwargs.setdefault("transport", "ipc")
                kwargs.setdefault("ip", str(sockets / "k"))
            super().__init__(**kwargs)
            instances.append(self)

    return _OneReportKernelManager, instances, sockets


def kernel_pid(km: Any) -> int | None:
    """The kernel's process id while it runs, else None."""
    process = getattr(getattr(km, "provisioner", None), "process", None)
    if process is None or process.poll() is not None:
        return None
    return process.pid


def kill_kernel(km: Any) -> None:
    """Kill the kernel's process group now if it still runs, and remove its connection file and IPC sockets."""
    provisioner = getattr(km, "provisioner", None)
    process = getattr(provisioner, "process", None)
    if process is not None and process.poll() is None:
        pgid = getattr(provisioner, "pgid", None)
        with contextlib.suppress(OSError):
            if pgid and hasattr(os, "killpg"):
                os.killpg(pgid, signal.SIGKILL)
            else:  # pragma: no cover
                process.kill()
        with contextlib.suppress(Exception):
            process.wait(timeout=10)
    with contextlib.suppress(Exception):
        km.cleanup_connection_file()
    with contextlib.suppress(Exception):
        km.cleanup_ipc_files()


__all__ = ["ReportKernelManager", "report_kernel_manager_class", "kernel_pid", "kill_kernel"]
