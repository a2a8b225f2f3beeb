"""Output files of reports and sweeps, written safely: atomic, never through a planted link, one writer per name.

- :func:`atomic_write` / :func:`atomic_open`: the content goes to a new file with a unique name created by
  :func:`tempfile.mkstemp` in the target's own folder (``O_CREAT | O_EXCL``: an existing name, a planted symlink
  included, is never opened), written through that descriptor, flushed to disk, then renamed over the target with
  :func:`os.replace`. A reader sees the old file or the new one, never half of one. **A symlink at the final name is
  replaced by the new file; the file it pointed to is never written** (a rename replaces the directory entry).
- :func:`output_lock`: one writer per output name. ``fcntl.flock`` on ``DIR/.NAME.lock`` (opened with
  ``O_NOFOLLOW``); a second writer is refused at once with :class:`~workbench.errors.OutputError` naming the run
  that holds the lock. The lock file is removed when the writer is done (a writer that finds the file it locked
  already unlinked tries again), so finished runs leave nothing behind. Without ``fcntl`` (Windows) the lock is the
  ``O_EXCL`` creation of that file.
- :func:`prepare_output_dir`: create the output folder (parents too) and prove it writable with a real probe file,
  or raise one :class:`~workbench.errors.OutputError` line (a file in the way, a path under a file, no permission).

This module imports only the standard library: report notebooks call :func:`atomic_write` (through
:func:`workbench.reports.write_metrics`) inside their kernel.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from workbench.errors import OptionError, OutputError


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: The process's umask, read once: files made by :func:`atomic_open` get the mode ``open()`` would give them.
_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", *, encoding: str = "utf-8") -> Iterator[IO]:
    """Open a new, uniquely named temporary file beside ``path``; on a clean exit move it over ``path``.

    ``mode`` is ``"w"`` (text) or ``"wb"``. On an exception the temporary file is removed and ``path`` is left as
    it was. See the module docstring for what happens to symlinks.
    """
    if mode not in {"w", "wb"}:
        raise OptionError(f"atomic_open: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600: give the mode open() would (POSIX)
            os.fchmod(fd, 0o666 & ~_UMASK)
        with (open(fd, "wb") if mode == "wb" else open(fd, "w", encoding=encoding, newline="")) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | Path, data: str | bytes, *, encoding: str = "utf-8") -> Path:
    """Write ``data`` (text or bytes) to ``path`` atomically (:func:`atomic_open`); returns ``path``."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w", encoding=encoding) as fh:
        fh.write(data)
    return Path(path)


def lock_path(directory: str | Path, name: str) -> Path:
    """The lock file of output ``name`` in ``directory``: ``.NAME.lock``."""
    return Path(directory) / f".{name}.lock"


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return "another run"
    return f"process {text}" if text.isdigit() else "another run"


@contextlib.contextmanager
def output_lock(directory: str | Path, name: str, *, what: str = "report") -> Iterator[Path]:
    """Hold the lock of output ``name`` in ``directory`` for the ``with`` block; refuse if another run holds it.

    Raises :class:`~workbench.errors.OutputError` at once (no waiting) when the name is taken, so two runs never mix
    their files (one run's provenance with the other's metrics).
    """
    path = lock_path(directory, name)
    busy = (f"{what} {name!r} in {Path(directory)} is being written by {{holder}} (lock {path}); wait for it to "
            "finish or choose another output folder or name")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: the lock is the file's exclusive creation
        fcntl = None  # type: ignore[assignment]
    nofollow = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        flags = os.O_RDWR | os.O_CREAT | nofollow | (os.O_EXCL if fcntl is None else 0)
        try:
            fd = os.open(path, flags, 0o644)
        except FileExistsError:  # pragma: no cover - Windows
            raise OutputError(busy.format(holder=_holder(path))) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OutputError(f"{path} is a symbolic link; remove it (a lock file is never followed)") from None
            raise OutputError(f"cannot create the lock file {path}: {exc.strerror}") from None
        if fcntl is None:  # pragma: no cover
            break
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OutputError(busy.format(holder=_holder(path))) from None
        # The holder before us unlinks the file before it unlocks: make sure we locked the file now at ``path``.
        try:
            current = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        mine = os.fstat(fd)
        if current is not None and (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def prepare_output_dir(path: str | Path, *, option: str = "-o/--output-dir") -> Path:
    """Create the output folder ``path`` (parents too) and check that files can be created in it; returns it resolved.

    Raises :class:`~workbench.errors.OutputError` with one line naming the option, the path and the reason: a file
    in the way, a path under a file, no permission, a read-only file system.
    """
    out = Path(path).expanduser()
    where = f"{option} {str(path)!r}"
    if out.exists() and not out.is_dir():
        raise OutputError(f"{where} is a file, not a folder; give a folder for the outputs")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{where}: a file is in the way ({_first_file(out)}); give a folder for the outputs") from None
    except NotADirectoryError:
        raise OutputError(f"{where} lies under a file ({_first_file(out)}); give a folder for the outputs") from None
    except OSError as exc:
        raise OutputError(f"{where}: cannot create the folder: {exc.strerror}") from None
    try:  # a real probe: os.access is wrong for root, ACLs and read-only mounts
        fd, probe = tempfile.mkstemp(dir=out, prefix=".workbench-probe.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"{where}: cannot write in this folder: {exc.strerror}") from None
    os.close(fd)
    os.unlink(probe)
    return out.resolve()


def _first_file(path: Path) -> Path:
    """The first existing non-folder on the way from the root to ``path`` (what blocks creating it)."""
    for parent in reversed([path, *path.parents]):
        if parent.exists() and not parent.is_dir():
            return parent
    return path


def remove(*paths: Path) -> None:
    """Remove files that may not exist (a symlink is removed itself, never its target)."""
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)


__all__ = ["atomic_open", "atomic_write", "lock_path", "output_lock", "prepare_output_dir", "remove"]
