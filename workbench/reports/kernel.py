"""The Jupyter kernel a report runs in: quiet on a clean shutdown, private sockets, never left behind.

:func:`new_kernel_manager` returns the kernel manager :func:`workbench.reports.run_report` hands to papermill
(nbclient's ``km``), so the report runner owns the kernel and can end it whatever happens:

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
import shutil
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


def new_kernel_manager(kernel_name: str = "python3") -> tuple[ReportKernelManager, Path | None]:
    """A kernel manager for one report and the private folder of its sockets (None on TCP); see the module doc."""
    if os.name != "posix":  # pragma: no cover - Windows has no IPC transport in ZeroMQ
        return ReportKernelManager(kernel_name=kernel_name), None
    sockets = Path(tempfile.mkdtemp(prefix="wb-kernel-"))  # short path: a Unix socket name has ~100 bytes
    return ReportKernelManager(kernel_name=kernel_name, transport="ipc", ip=str(sockets / "k")), sockets


def kernel_pid(km: Any) -> int | None:
    """The kernel's process id while it runs, else None."""
    process = getattr(getattr(km, "provisioner", None), "process", None)
    if process is None or process.poll() is not None:
        return None
    return process.pid


def kill_kernel(km: Any, sockets: Path | None = None) -> None:
    """Kill the kernel's process group now if it still runs, and remove its connection file and sockets."""
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
    if sockets is not None:
        with contextlib.suppress(Exception):
            km.cleanup_ipc_files()
        shutil.rmtree(sockets, ignore_errors=True)


__all__ = ["ReportKernelManager", "new_kernel_manager", "kernel_pid", "kill_kernel"]
