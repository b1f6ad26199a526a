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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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


def lab_keys(conn: sa.Connection) -> frozenset[tuple[str, str]]:
    """(scope, key) of every metadata key ("metadata") and layer key (role) of the lab."""
    kk = S.known_keys
    return frozenset(tuple(r) for r in conn.execute(sa.select(kk.c.scope, kk.c.key)))


def known_keys(keys: frozenset[tuple[str, str]]) -> list[str]:
    """Every key ``--where`` / ``--sort`` accept on this database, sorted."""
    found = {k if s == "metadata" else f"{s}.{k}" for s, k in keys}
    return sorted(found | set(summary_fields()) | set(ALIASES) | set(_CELL_KEYS))


def _json_value(col, key: str, numeric: bool):
    item = col[key]
    return item.as_float() if numeric else item.as_string()


def key_expression(keys: frozenset[tuple[str, str]], key: str, numeric: bool) -> sa.ColumnElement:
    """The SQL expression of a key (a column, a JSON member or a layer subquery)."""
    key = ALIASES.get(key, key)
    if key in _CELL_KEYS:
        return S.cells.c[key]
    if key in summary_fields():
        return S.summaries.c[key]
    layer = _layer_key(keys, key)
    if layer is not None:
        return (
            sa.select(_layer_column(*layer, numeric))
            .where(S.layers.c.cell_id == S.cells.c.cell_id, S.layers.c.role == layer[0])
            .order_by(S.layers.c.position)
            .limit(1)
            .scalar_subquery()
        )
    if "." not in key and ("metadata", key) in keys:
        return _json_value(S.cells.c.metadata_json, key, numeric)
    raise InputError(f"unknown key {key!r}; known keys: {', '.join(known_keys(keys))}")


def _layer_key(keys: frozenset[tuple[str, str]], key: str) -> tuple[str, str] | None:
    """(role, key) when ``key`` is a ROLE.KEY the lab has."""
    if "." not in key:
        return None
    role, sub = key.split(".", 1)
    return (role, sub) if role != "metadata" and (role, sub) in keys else None


def _layer_column(role: str, sub: str, numeric: bool) -> sa.ColumnElement:
    lay = S.layers
    return lay.c[sub] if sub in _LAYER_COLS else _json_value(lay.c.parameters_json, sub, numeric)


def _condition_clause(keys: frozenset[tuple[str, str]], cond: Condition) -> sa.ColumnElement:
    """A layer key holds when any layer of that role satisfies it (EXISTS: the planner
    estimates it well); other keys compare their column or JSON member."""
    numeric = isinstance(cond.value, float)
    layer = _layer_key(keys, cond.key)
    if layer is not None:
        expr = _layer_column(*layer, numeric)
        lay = S.layers
        inner = _comparison(cond, expr, numeric)
        sub = sa.select(1).where(lay.c.cell_id == S.cells.c.cell_id, lay.c.role == layer[0])
        return sa.exists(sub.where(inner))
    return _comparison(cond, key_expression(keys, cond.key, numeric), numeric)


def _comparison(cond: Condition, expr: sa.ColumnElement, numeric: bool) -> sa.ColumnElement:
    value: Any = cond.value
    if not numeric and isinstance(expr.type, (sa.Float, sa.Integer)):
        raise InputError(f"--where {cond.key}: {cond.value!r} is not a number")
    if numeric and isinstance(expr.type, sa.Text):
        value = f"{cond.value:g}" if cond.value != int(cond.value) else str(int(cond.value))
    return OPERATORS[cond.op](expr, sa.bindparam(None, value))


def cells_statement(
    conn: sa.Connection,
    where: Sequence[str] = (),
    sort: str | None = None,
    columns: Sequence[str] | None = None,
) -> sa.Select:
    """The SELECT of ``cells``: one row per cell, cell_id + wafer/die + summary fields
    (or cell_id + the keys in ``columns``, any key ``--where`` accepts)."""
    c, s = S.cells, S.summaries
    keys = lab_keys(conn)
    if columns:
        cols = [c.c.cell_id] + [key_expression(keys, k, True).label(k) for k in columns]
    else:
        cols = [c.c.cell_id, c.c.wafer, c.c.die, c.c.path] + [s.c[k] for k in summary_fields()]
    stmt = sa.select(*cols).select_from(c.outerjoin(s, s.c.cell_id == c.c.cell_id))
    for text in where:
        stmt = stmt.where(_condition_clause(keys, parse_condition(text)))
    if sort:
        desc = sort.startswith("-")
        expr = key_expression(keys, sort.lstrip("-"), True)
        stmt = stmt.order_by(expr.desc() if desc else expr.asc(), c.c.cell_id)
    else:
        stmt = stmt.order_by(c.c.wafer, c.c.die, c.c.cell_id)
    return stmt


def _frame(result: sa.CursorResult, stmt: sa.Select | None = None):
    """Rows as a DataFrame, read straight from the driver's cursor (SQLAlchemy's row
    objects cost ~1 µs a value); booleans and JSON of ``stmt``'s columns decoded."""
    import json

    import pandas as pd

    names = list(result.keys())
    frame = pd.DataFrame(result.cursor.fetchall(), columns=names)
    result.close()
    if stmt is not None:
        for name, col in zip(names, stmt.selected_columns, strict=True):
            if isinstance(col.type, sa.Boolean):
                frame[name] = frame[name].map(lambda v: None if v is None else bool(v))
            elif isinstance(col.type, sa.JSON):
                frame[name] = frame[name].map(lambda v: json.loads(v) if isinstance(v, str) else v)
    return frame


@dataclass(frozen=True)
class Reader:
    """A read-only engine on a lab database; reuse one for many queries (``db=`` of
    :func:`cells`, :func:`query`, :func:`table`) to skip connecting each time."""

    target: Target
    engine: sa.Engine

    def close(self) -> None:
        self.engine.dispose()


def open_reader(root: str | Path | None = None, db: str | None = None) -> Reader:
    """A :class:`Reader` for the lab root's database (or ``db`` URL), its schema checked
    (present, not older, not newer than this version's)."""
    target = resolve(root, db)
    reader = Reader(target, make_engine(target, readonly=True))
    try:
        with reader.engine.connect() as conn:
            require_current(conn, target.display)
    except BaseException:
        reader.close()
        raise
    return reader


@contextmanager
def _reading(root, db) -> Iterator[sa.Engine]:
    if isinstance(db, Reader):
        yield db.engine
        return
    reader = open_reader(root, db)
    try:
        yield reader.engine
    finally:
        reader.close()


def cells(
    root: str | Path | None = None,
    *,
    where: Sequence[str] = (),
    sort: str | None = None,
    columns: Sequence[str] | None = None,
    db: str | Reader | None = None,
):
    """Cells matching every ``where`` condition, as a pandas DataFrame (all summary
    fields, or cell_id + ``columns``)."""
    with _reading(root, db) as engine, engine.connect() as conn:
        stmt = cells_statement(conn, where, sort, columns)
        return _frame(conn.execute(stmt), stmt)


def query(sql: str, root: str | Path | None = None, *, db: str | Reader | None = None):
    """Run one SQL statement in a read-only transaction; the rows as a DataFrame.
    SQLite: the file is opened ``mode=ro`` with ``PRAGMA query_only``; PostgreSQL:
    ``SET TRANSACTION READ ONLY``. A writing statement fails with an InputError."""
    with _reading(root, db) as engine, engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        try:
            result = conn.exec_driver_sql(sql)
            if not result.returns_rows:
                raise InputError("query: the statement returns no rows (only SELECT)")
            return _frame(result)
        except sa.exc.DBAPIError as err:
            msg = str(err.orig).strip().splitlines()[0]
            raise InputError(f"query failed: {msg}") from None
        finally:
            conn.rollback()


def table(
    name: str, root: str | Path | None = None, *, db: str | Reader | None = None, cell_id=None
):
    """One whole table (optionally one cell's rows) as a DataFrame."""
    if name not in S.metadata.tables:
        raise InputError(f"unknown table {name!r}; tables: {', '.join(sorted(S.metadata.tables))}")
    t = S.metadata.tables[name]
    stmt = sa.select(t)
    if cell_id is not None:
        stmt = stmt.where(t.c.cell_id == cell_id)
    with _reading(root, db) as engine, engine.connect() as conn:
        return _frame(conn.execute(stmt), stmt)
