"""Reading the lab database: ``cells --where`` filters, read-only SQL, pandas DataFrames.

``--where`` grammar (one condition per option, all must hold)::

    condition := KEY OP VALUE
    OP        := "=" | "!=" | "<" | "<=" | ">" | ">="
    KEY       := summary field   (fade_rate_per_cycle, alias fade_per_cycle; ...)
               | cell field      (cell_id, wafer, die, cell, active_area_cm2, ...)
               | metadata key    (any key of the cell metadata, unknown ones included)
               | ROLE.KEY        (a layer key: electrolyte.material, cathode.thickness_um,
                                  electrolyte.power_w for a deposition parameter)
    VALUE     := a number (compared as a number) or text (quotes optional)

Keys are looked up in the schema and in the keys the lab has; the value is always a bound
parameter, so no input reaches the SQL text.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cyclerflow.db import schema as S
from cyclerflow.db.engine import Target, make_engine, resolve
from cyclerflow.db.migrate import require_current
from cyclerflow.errors import InputError

OPERATORS = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
ALIASES = {"fade_per_cycle": "fade_rate_per_cycle"}
_COND = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(<=|>=|!=|=|<|>)\s*(.*?)\s*$")
_CELL_KEYS = ("cell_id", "wafer", "die", "cell", "active_area_cm2", "nominal_capacity_uah", "path")
_LAYER_COLS = ("material", "thickness_um", "density_g_cm3", "mass_mg", "deposition", "anneal_c")


@dataclass(frozen=True)
class Condition:
    """One parsed ``--where`` condition."""

    key: str
    op: str
    value: str | float


def parse_condition(text: str) -> Condition:
    """``"electrolyte.material=LiPON"`` -> Condition (numbers become floats)."""
    m = _COND.match(text)
    if not m or m.group(3) == "":
        raise InputError(f"--where {text!r}: expected KEY<OP>VALUE with OP one of = != < <= > >=")
    key, op, raw = m.groups()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return Condition(key, op, raw[1:-1])
    try:
        return Condition(key, op, float(raw))
    except ValueError:
        return Condition(key, op, raw)


def summary_fields() -> list[str]:
    return [c for c in S.summary_columns()]


def known_keys(conn: sa.Connection) -> list[str]:
    """Every key ``--where`` / ``--sort`` accept on this database, sorted."""
    kk = S.known_keys
    found = {
        k if s == "metadata" else f"{s}.{k}"
        for s, k in conn.execute(sa.select(kk.c.scope, kk.c.key))
    }
    return sorted(found | set(summary_fields()) | set(ALIASES) | set(_CELL_KEYS))


def _json_value(col, key: str, numeric: bool):
    item = col[key]
    return item.as_float() if numeric else item.as_string()


def key_expression(conn: sa.Connection, key: str, numeric: bool) -> sa.ColumnElement:
    """The SQL expression of a key (a column, a JSON member or a layer subquery)."""
    key = ALIASES.get(key, key)
    if key in _CELL_KEYS:
        return S.cells.c[key]
    if key in summary_fields():
        return S.summaries.c[key]
    kk = S.known_keys
    if "." in key:
        role, sub = key.split(".", 1)
        hit = conn.execute(sa.select(kk.c.key).where(kk.c.scope == role, kk.c.key == sub)).first()
        if hit is not None:
            lay = S.layers
            col = (
                lay.c[sub]
                if sub in _LAYER_COLS
                else _json_value(lay.c.parameters_json, sub, numeric)
            )
            return (
                sa.select(col)
                .where(lay.c.cell_id == S.cells.c.cell_id, lay.c.role == role)
                .order_by(lay.c.position)
                .limit(1)
                .scalar_subquery()
            )
    else:
        q = sa.select(kk.c.key).where(kk.c.scope == "metadata", kk.c.key == key)
        if conn.execute(q).first() is not None:
            return _json_value(S.cells.c.metadata_json, key, numeric)
    raise InputError(f"unknown key {key!r}; known keys: {', '.join(known_keys(conn))}")


def _condition_clause(conn: sa.Connection, cond: Condition) -> sa.ColumnElement:
    numeric = isinstance(cond.value, float)
    expr = key_expression(conn, cond.key, numeric)
    value: Any = cond.value
    if not numeric and isinstance(expr.type, (sa.Float, sa.Integer)):
        raise InputError(f"--where {cond.key}: {cond.value!r} is not a number")
    if numeric and isinstance(expr.type, sa.Text):
        value = f"{cond.value:g}" if cond.value != int(cond.value) else str(int(cond.value))
    return OPERATORS[cond.op](expr, sa.bindparam(None, value))


def cells_statement(
    conn: sa.Connection, where: Sequence[str] = (), sort: str | None = None
) -> sa.Select:
    """The SELECT of ``cells``: one row per cell, cell_id + wafer/die + summary fields."""
    c, s = S.cells, S.summaries
    cols = [c.c.cell_id, c.c.wafer, c.c.die, c.c.path] + [s.c[k] for k in summary_fields()]
    stmt = sa.select(*cols).select_from(c.outerjoin(s, s.c.cell_id == c.c.cell_id))
    for text in where:
        stmt = stmt.where(_condition_clause(conn, parse_condition(text)))
    if sort:
        desc = sort.startswith("-")
        expr = key_expression(conn, sort.lstrip("-"), True)
        stmt = stmt.order_by(expr.desc() if desc else expr.asc(), c.c.cell_id)
    else:
        stmt = stmt.order_by(c.c.wafer, c.c.die, c.c.cell_id)
    return stmt


def _frame(result: sa.CursorResult):
    import pandas as pd

    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _reader(root: str | Path | None, db: str | None) -> tuple[Target, sa.Engine]:
    target = resolve(root, db)
    return target, make_engine(target, readonly=True)


def cells(
    root: str | Path | None = None,
    *,
    where: Sequence[str] = (),
    sort: str | None = None,
    db: str | None = None,
):
    """Cells matching every ``where`` condition, as a pandas DataFrame."""
    target, engine = _reader(root, db)
    try:
        with engine.connect() as conn:
            require_current(conn, target.display)
            return _frame(conn.execute(cells_statement(conn, where, sort)))
    finally:
        engine.dispose()


def query(sql: str, root: str | Path | None = None, *, db: str | None = None):
    """Run one SQL statement in a read-only transaction; the rows as a DataFrame.
    SQLite: the file is opened ``mode=ro`` with ``PRAGMA query_only``; PostgreSQL:
    ``SET TRANSACTION READ ONLY``. A writing statement fails with an InputError."""
    target, engine = _reader(root, db)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            require_current(conn, target.display)
            try:
                result = conn.exec_driver_sql(sql)
                if not result.returns_rows:
                    raise InputError("query: the statement returns no rows (only SELECT)")
                frame = _frame(result)
            except sa.exc.DBAPIError as err:
                msg = str(err.orig).strip().splitlines()[0]
                raise InputError(f"query failed: {msg}") from None
            finally:
                conn.rollback()
            return frame
    finally:
        engine.dispose()


def table(name: str, root: str | Path | None = None, *, db: str | None = None, cell_id=None):
    """One whole table (optionally one cell's rows) as a DataFrame."""
    if name not in S.metadata.tables:
        raise InputError(f"unknown table {name!r}; tables: {', '.join(sorted(S.metadata.tables))}")
    t = S.metadata.tables[name]
    stmt = sa.select(t)
    if cell_id is not None:
        stmt = stmt.where(t.c.cell_id == cell_id)
    target, engine = _reader(root, db)
    try:
        with engine.connect() as conn:
            require_current(conn, target.display)
            return _frame(conn.execute(stmt))
    finally:
        engine.dispose()
