"""Write one cell's rows in one transaction, idempotently, on SQLite or PostgreSQL.

The cell row is upserted first (``INSERT ... ON CONFLICT DO UPDATE``): on PostgreSQL that
takes the row lock, so a second lab run writing the same cell waits for the first to
commit and then replaces its rows, never duplicating them. The cell's child rows are
deleted and written again; large tables go through COPY on PostgreSQL and the driver's
``executemany`` on SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from cyclerflow.db import schema as S
from cyclerflow.db.records import CellRecord, cycle_columns


def _insert(conn: sa.Connection, table: sa.Table):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def upsert_rows(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or replace rows by primary key."""
    if not rows:
        return
    pk = [c.name for c in table.primary_key.columns]
    stmt = _insert(conn, table)
    cols = [c.name for c in table.columns if c.name not in pk]
    stmt = stmt.on_conflict_do_update(index_elements=pk, set_={c: stmt.excluded[c] for c in cols})
    conn.execute(stmt, list(rows))


def insert_ignore(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows whose primary key is not there yet."""
    if rows:
        conn.execute(_insert(conn, table).on_conflict_do_nothing(), list(rows))


def _json_cell(v: Any) -> Any:
    return v if v is None or isinstance(v, str) else json.dumps(v, allow_nan=False)


def bulk_insert(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[tuple]
) -> None:
    """Append many rows fast: COPY (PostgreSQL) or executemany (SQLite). JSON columns must
    already be text. Table and column names come from the schema, never from input."""
    if not rows:
        return
    raw = conn.connection.driver_connection
    names = ", ".join(f'"{c}"' for c in columns)
    if conn.dialect.name == "postgresql":
        with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as cp:
            for r in rows:
                cp.write_row(r)
    else:
        marks = ", ".join("?" * len(columns))
        raw.executemany(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', rows)


def delete_cell_rows(conn: sa.Connection, cell_id: str) -> None:
    for t in S.CELL_CHILD_TABLES:
        conn.execute(t.delete().where(t.c.cell_id == cell_id))


def write_record(conn: sa.Connection, rec: CellRecord) -> None:
    """All rows of one cell (call inside one transaction)."""
    upsert_rows(conn, S.cells, [rec.cell])
    delete_cell_rows(conn, rec.cell_id)
    if rec.layers:
        conn.execute(S.layers.insert(), rec.layers)
    bulk_insert(conn, S.cycles, cycle_columns(), rec.cycles)
    if rec.spectra:
        conn.execute(S.spectra.insert(), rec.spectra)
    if rec.summary is not None:
        conn.execute(S.summaries.insert(), [rec.summary])
    if rec.events:
        conn.execute(S.events.insert(), rec.events)
    upsert_rows(conn, S.files, rec.files)
    if rec.run is not None:
        conn.execute(S.analysis_runs.insert(), [rec.run])
    insert_ignore(conn, S.known_keys, [{"scope": s, "key": k} for s, k in rec.keys])
