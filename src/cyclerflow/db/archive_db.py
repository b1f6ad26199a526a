"""Write the BatteryArchive tables into a database (a PostgreSQL schema of that shape, or
an SQLite file), so a lab's cells can be loaded beside public BatteryArchive data.

Column types follow BatteryArchive's ``init.sql`` (text ids and materials, float values,
a timestamp ``date_time``, integer ``cycle_index``). Writing is idempotent: the exported
cells' rows are deleted and written again in one transaction, other cells' rows stay.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd
import sqlalchemy as sa

from cyclerflow.db.archive import CELL_METADATA, CYCLE_DATA, TIMESERIES_DATA
from cyclerflow.errors import InputError

_TEXT = {"cell_id", "cathode", "anode", "source", "form_factor"}
_INT = {"cycle_index"}
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def archive_metadata(schema: str | None) -> sa.MetaData:
    """The three BatteryArchive tables (in PostgreSQL schema ``schema``)."""
    md = sa.MetaData(schema=schema)
    for name, cols in (
        ("cell_metadata", CELL_METADATA),
        ("cycle_data", CYCLE_DATA),
        ("timeseries_data", TIMESERIES_DATA),
    ):
        sa.Table(name, md, *(sa.Column(c, _type(c), primary_key=_is_key(name, c)) for c in cols))
    return md


def _type(col: str) -> sa.types.TypeEngine:
    if col in _TEXT:
        return sa.Text()
    if col in _INT:
        return sa.Integer()
    if col == "date_time":
        return sa.DateTime()
    return sa.Float()


def _is_key(table: str, col: str) -> bool:
    return col == "cell_id" and table == "cell_metadata"


def check_schema_name(schema: str) -> str:
    """``schema`` when it is a plain lower-case SQL identifier (it becomes part of DDL)."""
    if not _SCHEMA_NAME.match(schema):
        raise InputError(f"--schema: {schema!r} is not a plain name (a-z, 0-9, _)")
    return schema


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts of Python values, NaN/NaT as NULL."""
    cols = {}
    for c in frame.columns:
        s = frame[c]
        if s.dtype.kind == "M":
            # databases keep microseconds (PostgreSQL's timestamp): rounded, not cut
            values = [None if pd.isna(v) else v.to_pydatetime() for v in s.dt.round("us")]
        else:
            values = [None if (isinstance(v, float) and np.isnan(v)) else v for v in s.tolist()]
        cols[c] = values
    names = list(cols)
    return [dict(zip(names, row, strict=True)) for row in zip(*cols.values(), strict=True)]


def write_archive_tables(
    engine: sa.Engine, frames: Iterable[tuple[str, pd.DataFrame]], schema: str | None
) -> dict[str, int]:
    """Replace the exported cells' rows of each table; rows written per table."""
    md = archive_metadata(schema)
    written: dict[str, int] = {}
    with engine.begin() as conn:
        if schema is not None:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        md.create_all(conn, checkfirst=True)
        for name, frame in frames:
            table = md.tables[f"{schema}.{name}" if schema else name]
            ids = sorted(set(frame["cell_id"].tolist()))
            if ids:
                conn.execute(table.delete().where(table.c.cell_id.in_(ids)))
            rows = _records(frame)
            if rows:
                conn.execute(table.insert(), rows)
            written[name] = len(rows)
    return written
