"""Where the lab database is and how to connect to it (SQLite or PostgreSQL, one code path).

URL resolution, first match wins: the ``--db`` option, the ``CYCLERFLOW_DB_URL``
environment variable, else SQLite at ``ROOT/.cyclerflow/lab.db``. SQLite runs in WAL mode
(readers never block the writer) and writers take the write lock at the start of their
transaction (``BEGIN IMMEDIATE``) so a second lab run waits, saying so, instead of failing
half-way. PostgreSQL URLs use psycopg 3 (``postgresql+psycopg://user@host/db``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

from cyclerflow.errors import InputError

log = logging.getLogger(__name__)

ENV_URL = "CYCLERFLOW_DB_URL"
DEFAULT_RELATIVE = Path(".cyclerflow") / "lab.db"
#: how long a writer waits for another writer's SQLite lock before giving up (s)
DEFAULT_LOCK_WAIT_SECOND = 600.0


@dataclass(frozen=True)
class Target:
    """A resolved database: the SQLAlchemy URL and, for SQLite, the file path."""

    url: str
    sqlite_path: Path | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.sqlite_path is not None

    @property
    def display(self) -> str:
        """The URL without a password (for messages)."""
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)


def resolve(root: str | Path | None, db: str | None = None) -> Target:
    """The database for a lab root: ``db`` URL, ``$CYCLERFLOW_DB_URL``, or the root's SQLite."""
    url = db or os.environ.get(ENV_URL) or None
    if url:
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError:
            raise InputError(f"--db: not a database URL: {url!r}") from None
        if parsed.get_backend_name() == "sqlite":
            return Target(url, Path(parsed.database or ":memory:"))
        if parsed.get_backend_name() != "postgresql":
            raise InputError(
                f"--db: unsupported database {parsed.get_backend_name()!r} "
                "(use sqlite:///PATH or postgresql+psycopg://...)"
            )
        if parsed.drivername == "postgresql":
            url = parsed.set(drivername="postgresql+psycopg").render_as_string(False)
        return Target(url)
    if root is None:
        raise InputError("no database: give --root ROOT or --db URL")
    path = Path(root) / DEFAULT_RELATIVE
    return Target(f"sqlite:///{path}", path)


def ensure_writable(target: Target) -> None:
    """Create the SQLite folder; a clear error when the lab root cannot be written."""
    if target.sqlite_path is None:
        return
    folder = target.sqlite_path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise InputError(
            f"cannot write the lab database here ({err.strerror or err}); "
            "give a writable place with --db sqlite:///PATH or a PostgreSQL URL",
            path=folder,
        ) from None


def _sqlite_pragmas(immediate: bool) -> Callable:
    def on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=200")
        if immediate:
            mode = _switch_to_wal(cur)
            if str(mode).lower() != "wal":
                log.warning("SQLite journal mode is %s, not WAL", mode)
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return on_connect


def _switch_to_wal(cur, wait_second: float = 60.0) -> str:
    """``PRAGMA journal_mode=WAL``, waited for while another process holds the file (two
    first writers of a new database both switch it; the loser sees "database is locked"
    at connect time, before any transaction could retry)."""
    import sqlite3

    t0 = time.monotonic()
    while True:
        try:
            return cur.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as err:
            text = str(err).lower()
            locked = "locked" in text or "busy" in text
            if not locked or time.monotonic() - t0 > wait_second:
                raise
            time.sleep(0.05)


def make_engine(target: Target, *, readonly: bool = False) -> sa.Engine:
    """An engine for ``target``. SQLite writers BEGIN IMMEDIATE; readonly SQLite opens the
    file with ``mode=ro`` and ``PRAGMA query_only``."""
    if target.sqlite_path is None:
        return sa.create_engine(target.url, pool_pre_ping=True)
    if readonly:
        if not target.sqlite_path.exists():
            raise InputError(
                "no lab database yet: run `cyclerflow db upgrade` or a lab run",
                path=target.sqlite_path,
            )
        uri = f"file:{target.sqlite_path.resolve()}?mode=ro"
        engine = sa.create_engine("sqlite://", creator=lambda: _ro_connect(uri))
    else:
        engine = sa.create_engine(target.url)
    event.listen(engine, "connect", _sqlite_pragmas(not readonly))
    begin = "BEGIN" if readonly else "BEGIN IMMEDIATE"
    event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(begin))
    return engine


def _ro_connect(uri: str):
    import sqlite3

    conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    conn.execute("PRAGMA query_only=ON")
    return conn


def _is_locked(err: sa.exc.OperationalError) -> bool:
    text = str(err.orig).lower()
    return "database is locked" in text or "database is busy" in text


@contextmanager
def write_transaction(
    engine: sa.Engine,
    *,
    wait_second: float = DEFAULT_LOCK_WAIT_SECOND,
    on_wait: Callable[[float], None] | None = None,
) -> Iterator[sa.Connection]:
    """One write transaction. On SQLite another writer's lock is waited for (``on_wait``
    is told the seconds waited, once a second), then an InputError after ``wait_second``."""
    t0 = time.monotonic()
    told = 0.0
    while True:
        try:
            ctx = engine.begin()
            conn = ctx.__enter__()
            break
        except sa.exc.OperationalError as err:
            waited = time.monotonic() - t0
            if not _is_locked(err) or waited > wait_second:
                if _is_locked(err):
                    raise InputError(
                        f"the lab database stayed locked by another writer for {waited:.0f} s"
                    ) from None
                raise
            if waited - told >= 1.0:
                told = waited
                (on_wait or _log_wait)(waited)
            time.sleep(0.05)
    try:
        yield conn
    except BaseException as exc:
        if not ctx.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        ctx.__exit__(None, None, None)


def _log_wait(waited: float) -> None:
    log.warning("waiting for another writer of the lab database (%.0f s)", waited)
