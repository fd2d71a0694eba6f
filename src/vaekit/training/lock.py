"""One writer per run directory.

`RunLock` holds an exclusive ``flock`` on ``RUN/.lock`` for as long as a process writes into the
run. The kernel drops the lock when the process dies, however it dies (SIGKILL included), so a
crashed run never leaves a stale lock. The file records who holds it (pid, host, start time,
command) so that a second process can say whom it is waiting for. Re-entrant within a process.
On systems without ``fcntl`` (Windows) runs are not locked.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from vaekit.errors import VaekitError

LOCK_NAME = ".lock"
_held: dict[str, tuple[int, int]] = {}  # resolved path -> (fd, depth)


def holder(run_dir: str | Path) -> str:
    """Who holds the lock of `run_dir`, in words (from the lock file)."""
    try:
        info = json.loads((Path(run_dir) / LOCK_NAME).read_text())
        return f"process {info['pid']} on {info['host']} (started {info['started']}: {info['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


class RunLock:
    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_NAME
        self.key = str(self.path.resolve())

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        if self.key in _held:
            fd, depth = _held[self.key]
            _held[self.key] = (fd, depth + 1)
            return self
        from vaekit.training.checkpoints import open_no_follow

        fd = open_no_follow(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # the lock's JSON never lands in a link's target
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise VaekitError(
                f"run directory '{self.path.parent}' is in use by {holder(self.path.parent)}; "
                "wait for it to finish or stop it, then resume"
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "command": " ".join(sys.argv)[:200],
        }
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode())
        _held[self.key] = (fd, 1)
        return self

    def check_free(self) -> None:
        """Refuse if another process holds the lock, without creating or writing anything."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return
        if self.key in _held or self.path.is_symlink() or not self.path.is_file():
            return
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return  # unreadable: acquire() reports it when the run starts writing
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise VaekitError(
                f"run directory '{self.path.parent}' is in use by {holder(self.path.parent)}; "
                "wait for it to finish or stop it, then resume"
            ) from None
        finally:
            os.close(fd)  # drops the probe's flock

    def release(self) -> None:
        if self.key not in _held:
            return
        fd, depth = _held.pop(self.key)
        if depth > 1:
            _held[self.key] = (fd, depth - 1)
            return
        os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
