"""Reading the unchecksummed text of older cell files without risking a hang.

Files written before text was stored fixed-length (store/text.py) keep their text
attributes as variable-length strings in HDF5's global heap, which has no checksum;
some damage there makes HDF5 loop inside the read, and a lab run must never stop on
one file. :func:`check_legacy_text` reads every such attribute once in a child process
(forked from a clean fork server, so no lock held by another thread of this process is
inherited) and kills it after a time limit: a read that does not return is
:class:`~cyclerflow.store.damage.DamagedFile` of kind ``hang`` naming the attribute.
A file that passes is remembered (by path, size and modification time), so one command
opening a file several times pays for one check.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import select
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import h5py

from cyclerflow.store.damage import HDF5_ERRORS, DamagedFile
from cyclerflow.store.recovery import needs_recovery

#: seconds a child may take to read every variable-length text attribute of one file
TIME_LIMIT_S = 20.0

#: seconds the child may take to start (importing h5py on a loaded machine)
START_LIMIT_S = 300.0

_checked: dict[tuple[str, int, int], bool] = {}


def is_vlen_text(obj: h5py.HLObject, name: str) -> bool:
    """True when attribute ``name`` of ``obj`` is variable-length text (the type is in
    the checksummed object header; the value is not read)."""
    info = h5py.check_string_dtype(obj.attrs.get_id(name).dtype)
    return info is not None and info.length is None


def legacy_text(f: h5py.File) -> bool:
    """True for a file whose text attributes are variable-length (written by an older
    version): its root ``format`` attribute is."""
    return "format" in f.attrs and is_vlen_text(f, "format")


def _read_all(path: str, conn: Connection) -> None:
    """Child: read every variable-length text attribute, saying which before each."""
    live = needs_recovery(path)
    with h5py.File(path, "r", libver="latest", swmr=True) if live else h5py.File(path, "r") as f:
        objects = [f]
        f.visit(lambda name: objects.append(f[name]))
        for obj in objects:
            for name in obj.attrs:
                if is_vlen_text(obj, name):
                    conn.send(f"{obj.name} attribute {name}")
                    obj.attrs[name]  # noqa: B018 - the read is the point
    conn.send(None)


def _child(path: str, conn: Connection) -> None:
    conn.send("started")  # the time limit counts from here (start-up is slow under load)
    try:
        _read_all(path, conn)
    except HDF5_ERRORS:
        conn.send(None)  # an error is the parent's readers' business: no hang here


def _context() -> mp.context.BaseContext:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["h5py"])
    return ctx


class _Lines:
    """The child's end over stdout (one JSON value a line), as a Connection."""

    def send(self, msg: str | None) -> None:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()


class _LineReader:
    """The parent's end of a child started with subprocess, as a Connection."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc

    def poll(self, timeout_s: float) -> bool:
        return bool(select.select([self.proc.stdout], [], [], timeout_s)[0])

    def recv(self) -> str | None:
        line = self.proc.stdout.readline()
        if not line:
            raise EOFError
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdout.close()


def _start(path: str) -> tuple[Any, Any]:
    """(process, parent end) of a reader child: forked from the fork server, or, in a
    daemonic process (which multiprocessing does not let have children), a new
    interpreter."""
    if mp.current_process().daemon:
        proc = subprocess.Popen([sys.executable, "-m", "cyclerflow.store.guard", path],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        return proc, _LineReader(proc)
    parent, child = _context().Pipe(duplex=False)
    proc = _context().Process(target=_child, args=(path, child), daemon=True)
    proc.start()
    child.close()
    return proc, parent


def check_legacy_text(path: str | Path, time_limit_s: float | None = None) -> None:
    """Raise :class:`DamagedFile` (kind ``hang``) when reading a variable-length text
    attribute of ``path`` does not return within ``time_limit_s`` (default
    :data:`TIME_LIMIT_S`)."""
    time_limit_s = TIME_LIMIT_S if time_limit_s is None else time_limit_s
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if _checked.get(key):
        return
    proc, parent = _start(str(path))
    where = "text attributes"
    try:
        if parent.poll(START_LIMIT_S):
            parent.recv()
        while parent.poll(time_limit_s):
            msg = parent.recv()
            if msg is None:
                _checked[key] = True
                return
            where = msg
    except EOFError:  # the child died (a crash of HDF5 is damage too)
        raise DamagedFile(path, "hang", where, "the reader process died") from None
    finally:
        proc.kill()
        proc.wait() if isinstance(proc, subprocess.Popen) else proc.join()
        parent.close()
    raise DamagedFile(
        path,
        "hang",
        where,
        f"HDF5 did not return within {time_limit_s:g} s: variable-length text of an "
        "older file, kept without checksum",
    )


if __name__ == "__main__":  # the child of a daemonic process (see _start)
    _child(sys.argv[1], _Lines())
