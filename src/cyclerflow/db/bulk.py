"""Bulk loads (``db rebuild``): on PostgreSQL into an empty cycles table, build its key
once at the end; on SQLite, no fsync during the load.

Inserting 10M rows into the (cell_id, cycle) primary-key B-tree one by one cost half the
load time; building the index once from the loaded rows (a sort) is about twice as fast
overall. Only when the table is empty at the start (a first fill or a rebuild of the
only lab), only on PostgreSQL (SQLite's cycles table *is* its key's B-tree, WITHOUT
ROWID). While the key is away, a concurrent lab run still writes correctly (it deletes
a cell's rows before inserting them, under the cell's row lock), only more slowly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from cyclerflow.db import schema as S

log = logging.getLogger(__name__)

#: PostgreSQL advisory lock held by a bulk load (lab writers take it shared)
LOCK_KEY = 0x63666462  # "cfdb"
#: memory PostgreSQL may use to sort the rows when it builds the key again (this
#: transaction only): 10M rows sort in memory; with 256MB the sort spilled to disk and
#: the key build took 9.1 s instead of 6.6 s (docs/database.md)
INDEX_BUILD_MEMORY = "1GB"


#: the key's name when the table has none (a load killed before it built the key again)
DEFAULT_KEY_NAME = "cycles_pkey"


def _drop_key_if_empty(engine: sa.Engine) -> str | None:
    """Drop the cycles primary key when the table is empty; its name, else None. A key
    left dropped by an interrupted load is built again first."""
    with engine.connect() as conn:
        name = sa.inspect(conn).get_pk_constraint("cycles").get("name")
    if not name:
        log.warning("cycles table has no key (an interrupted bulk load?): building it")
        _restore_key(engine, DEFAULT_KEY_NAME)
        name = DEFAULT_KEY_NAME
    with engine.begin() as conn:
        if conn.execute(sa.select(S.cycles.c.cycle).limit(1)).first() is not None:
            return None
        conn.exec_driver_sql(f'ALTER TABLE cycles DROP CONSTRAINT "{name}"')
    return name


def _restore_key(engine: sa.Engine, name: str) -> None:
    cols = ", ".join(f'"{c.name}"' for c in S.cycles.primary_key.columns)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
        conn.exec_driver_sql(f'ALTER TABLE cycles ADD CONSTRAINT "{name}" PRIMARY KEY ({cols})')


def wait_for_bulk_load(conn: sa.Connection) -> None:
    """A lab writer's first statement on PostgreSQL: wait while a bulk load runs without
    the key (its rows could otherwise meet the load's rows of the same cell twice)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": LOCK_KEY})


@contextmanager
def _exclusive(engine: sa.Engine) -> Iterator[None]:
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            conn.commit()


def _unsynced(dbapi_conn, _record) -> None:
    dbapi_conn.execute("PRAGMA synchronous=OFF")


@contextmanager
def _sqlite_unsynced(engine: sa.Engine) -> Iterator[None]:
    """SQLite during a bulk load: ``synchronous=OFF`` on the engine's connections (no
    fsync at WAL checkpoints; an application crash loses nothing committed, a power cut
    may lose the load, which ``db rebuild`` redoes), ``NORMAL`` again after."""
    engine.dispose()
    sa.event.listen(engine, "connect", _unsynced)
    try:
        yield
    finally:
        sa.event.remove(engine, "connect", _unsynced)
        engine.dispose()  # connections opened later are NORMAL again (engine.py)


@contextmanager
def bulk_load(engine: sa.Engine) -> Iterator[bool]:
    """Around a bulk load: on PostgreSQL with an empty cycles table, the key is dropped and
    built again at the end (even when the load fails), and lab writers wait meanwhile.
    Yields whether the key was dropped (then each cell's cycles must be written once)."""
    if engine.dialect.name != "postgresql":
        with _sqlite_unsynced(engine):
            yield False
        return
    with _exclusive(engine):
        name = _drop_key_if_empty(engine)
        if name is None:
            yield False
            return
        log.info("cycles table empty: its key is built once after the load")
        try:
            yield True
        finally:
            _restore_key(engine, name)
