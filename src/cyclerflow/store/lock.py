"""The writer lock: ``<cell>.h5.lock`` beside a file being written (pid, host, since).

One writer at a time; readers and recovery ask :func:`live_writer_pid` whether the
writer that marked a file open is still alive on this host.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from cyclerflow.errors import InputError


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".lock")


def live_writer_pid(path: str | Path) -> int | None:
    """PID of a live writer on this host holding the file's lock, else None."""
    lp = lock_path(path)
    try:
        info = json.loads(lp.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if info.get("host") == socket.gethostname() and pid_alive(int(info.get("pid", -1))):
        return int(info["pid"])
    return None


def take_lock(path: Path) -> Path:
    """Write the lock for this process; refuse when a live writer holds it."""
    lp = lock_path(path)
    pid = live_writer_pid(path)
    if pid is not None:
        raise InputError(f"file is being written by process {pid}", path=path)
    lp.write_text(
        json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
    )
    return lp
