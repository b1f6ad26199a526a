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
from operator import itemgetter
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


#: PostgreSQL type of each schema column type, for binary COPY
_PG_TYPES = {
    sa.Text: "text",
    sa.Integer: "int4",
    sa.BigInteger: "int8",
    sa.Float: "float8",
    sa.Boolean: "bool",
    sa.JSON: "json",
}


def bulk_insert(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[tuple]
) -> None:
    """Append many rows fast: COPY (PostgreSQL) or executemany (SQLite). JSON columns must
    already be text. Table and column names come from the schema, never from input."""
    if not rows:
        return
    raw = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        names = ", ".join(f'"{c}"' for c in columns)
        sql = f'COPY "{table.name}" ({names}) FROM STDIN (FORMAT BINARY)'
        types = [_PG_TYPES[type(table.c[c].type)] for c in columns]
        with raw.cursor() as cur, cur.copy(sql) as cp:
            cp.set_types(types)
            for r in rows:
                cp.write_row(r)
    else:
        _sqlite_executemany(raw, table, columns, rows)


def _sqlite_executemany(raw: Any, table: sa.Table, columns: Sequence[str], rows: Sequence[tuple]):
    """``executemany`` without the columns that are NULL in every row of this batch (and
    have no server default, so leaving them out stores the same NULL): the sqlite3 module
    spends as long binding a ``None`` as a number, and a cycler's export leaves many
    per-cycle fields empty for a whole cell."""
    keep = [i for i, c in enumerate(columns) if not _null_everywhere(table, c, i, rows)]
    if not keep:
        keep = [0]
    if len(keep) < len(columns):
        pick = itemgetter(*keep)
        rows = [pick(r) for r in rows] if len(keep) > 1 else [(pick(r),) for r in rows]
        columns = [columns[i] for i in keep]
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" * len(columns))
    raw.executemany(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', rows)


def _null_everywhere(table: sa.Table, column: str, i: int, rows: Sequence[tuple]) -> bool:
    col = table.c[column]
    if col.server_default is not None or col.default is not None:
        return False
    if rows[0][i] is not None:
        return False
    return list(map(itemgetter(i), rows)).count(None) == len(rows)


def delete_cell_rows(conn: sa.Connection, cell_ids: Sequence[str], *, cycles: bool = True) -> None:
    """Delete the child rows of some cells (``cycles=False``: all but their cycles)."""
    for t in S.CELL_CHILD_TABLES:
        if cycles or t is not S.cycles:
            conn.execute(t.delete().where(t.c.cell_id.in_(list(cell_ids))))


def write_records(
    conn: sa.Connection, recs: Sequence[CellRecord], *, new_cycles: bool = False
) -> None:
    """All rows of some cells (call inside one transaction). Cells are locked in cell-id
    order, so two writers of overlapping sets cannot deadlock. ``new_cycles``: the cells
    have no cycle rows yet (a bulk load into an empty table), so none are deleted."""
    recs = sorted({r.cell_id: r for r in recs}.values(), key=lambda r: r.cell_id)
    if not recs:
        return
    upsert_rows(conn, S.cells, [r.cell for r in recs])
    delete_cell_rows(conn, [r.cell_id for r in recs], cycles=not new_cycles)
    layers = [row for r in recs for row in r.layers]
    if layers:
        conn.execute(S.layers.insert(), layers)
    bulk_insert(conn, S.cycles, cycle_columns(), [row for r in recs for row in r.cycles])
    spectra = [row for r in recs for row in r.spectra]
    if spectra:
        conn.execute(S.spectra.insert(), spectra)
    summaries = [r.summary for r in recs if r.summary is not None]
    if summaries:
        conn.execute(S.summaries.insert(), summaries)
    events = [row for r in recs for row in r.events]
    if events:
        conn.execute(S.events.insert(), events)
    upsert_rows(conn, S.files, sorted((f for r in recs for f in r.files), key=lambda f: f["path"]))
    runs = [r.run for r in recs if r.run is not None]
    if runs:
        conn.execute(S.analysis_runs.insert(), runs)
    keys = sorted({k for r in recs for k in r.keys})
    insert_ignore(conn, S.known_keys, [{"scope": s, "key": k} for s, k in keys])


def write_record(conn: sa.Connection, rec: CellRecord) -> None:
    """All rows of one cell (call inside one transaction)."""
    write_records(conn, [rec])
