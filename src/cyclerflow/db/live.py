"""Keep the files table current while an acquisition writes a cell file: live, closed, the
time of the last sample on disk. "Which channels are running and when did each last write?"
is then one query.

The acquisition gives each cell writer an observer (:func:`attach`); the writer calls it
after each flush and at close. A background thread writes the newest state at most every
``interval_second`` and once at close, so sampling never waits for the database; a
database that is locked, unreachable or of another schema is logged once and skipped.

Which database: ``db`` / ``$CYCLERFLOW_DB_URL``, else an existing ``.cyclerflow/lab.db`` in
the cell file's folder or one of its parents (a lab root that has a database). None: the
acquisition does nothing. Only ``live``, ``closed``, ``last_sample_time_second`` (and the
cell id, kind) are written: size and mtime stay those of the last index, so the next lab
run still sees that the file changed and indexes it. ``indexed_unix_time_second`` says
when the acquisition last wrote the row (``watch --lab`` trusts a recent one).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from cyclerflow.db import schema as S
from cyclerflow.db.engine import (
    DEFAULT_RELATIVE,
    ENV_URL,
    Target,
    make_engine,
    resolve,
    write_transaction,
)
from cyclerflow.errors import InputError
from cyclerflow.store.writer import CellWriter, FileProgress

log = logging.getLogger(__name__)

#: seconds between two writes of one file's state (the state at close is always written)
DEFAULT_INTERVAL_SECOND = 10.0
#: how long a write waits for another writer's lock before it is skipped (s)
LOCK_WAIT_SECOND = 2.0
_LIVE_COLUMNS = (
    "cell_id",
    "kind",
    "live",
    "closed",
    "last_sample_time_second",
    "indexed_unix_time_second",
)


def find_database(cell_path: str | Path, db: str | None = None) -> Target | None:
    """The lab database of a cell file being written, or None (see the module doc)."""
    if db or os.environ.get(ENV_URL):
        return resolve(None, db)
    for folder in Path(cell_path).resolve().parents:
        if (folder / DEFAULT_RELATIVE).is_file():
            return resolve(folder)
    return None


def write_progress(conn: sa.Connection, info: FileProgress, cell_id: str | None) -> None:
    """Upsert the files row of a cell being written (live until closed)."""
    from cyclerflow.db.upsert import _insert

    row = {
        "path": str(Path(info.path).resolve()),
        "cell_id": cell_id,
        "kind": "cell",
        "live": not info.closed,
        "closed": info.closed,
        "last_sample_time_second": info.last_unix_time_second,
        "indexed_unix_time_second": time.time(),
    }
    stmt = _insert(conn, S.files).values(row)
    keep = {c: stmt.excluded[c] for c in _LIVE_COLUMNS if c != "cell_id"}
    keep["cell_id"] = sa.func.coalesce(stmt.excluded.cell_id, S.files.c.cell_id)
    conn.execute(stmt.on_conflict_do_update(index_elements=["path"], set_=keep))


class FilesTableObserver:
    """An ``on_flush`` observer writing a file's progress from a background thread."""

    def __init__(self, target: Target, cell_id: str | None, interval_second: float):
        self.target = target
        self.cell_id = cell_id
        self.interval_second = interval_second
        self._pending: FileProgress | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._warned = False
        self._thread = threading.Thread(target=self._loop, name="files-table", daemon=True)
        self._thread.start()

    def __call__(self, info: FileProgress) -> None:
        with self._lock:
            self._pending = info
        if info.closed:
            self._wake.set()
            self._thread.join(timeout=5 * LOCK_WAIT_SECOND)

    def _take(self) -> FileProgress | None:
        with self._lock:
            info, self._pending = self._pending, None
        return info

    def _loop(self) -> None:
        engine = None
        try:
            while True:
                self._wake.wait(self.interval_second)
                self._wake.clear()
                info = self._take()
                if info is None:
                    continue
                engine = engine or make_engine(self.target)
                self._write(engine, info)
                if info.closed:
                    return
        finally:
            if engine is not None:
                engine.dispose()

    def _write(self, engine: sa.Engine, info: FileProgress) -> None:
        try:
            with write_transaction(engine, wait_second=LOCK_WAIT_SECOND) as conn:
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_WAIT_SECOND:g}s'")
                write_progress(conn, info, self.cell_id)
        except (InputError, sa.exc.SQLAlchemyError) as err:
            if not self._warned:
                self._warned = True
                log.warning("lab database %s not updated: %s", self.target.display, err)


def attach(
    writer: CellWriter,
    *,
    cell_id: str | None = None,
    db: str | None = None,
    interval_second: float = DEFAULT_INTERVAL_SECOND,
) -> FilesTableObserver | None:
    """Keep the lab database's files row of ``writer``'s file current; None when the file
    has no lab database (then nothing happens)."""
    try:
        target = find_database(writer.path, db)
    except InputError as err:
        log.warning("lab database not used by the acquisition: %s", err)
        return None
    if target is None:
        return None
    observer = FilesTableObserver(target, cell_id, interval_second)
    writer.on_flush = observer
    observer(FileProgress(writer.path, writer.rows_flushed, None, closed=False))
    return observer
