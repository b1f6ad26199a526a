"""bulk_insert stores exactly the rows given, whichever columns a batch leaves empty."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from cyclerflow.db import schema as S
from cyclerflow.db.engine import make_engine, resolve
from cyclerflow.db.migrate import upgrade
from cyclerflow.db.records import cycle_columns
from cyclerflow.db.upsert import bulk_insert


def _engine(url: str) -> sa.Engine:
    engine = make_engine(resolve(None, url))
    if engine.dialect.name == "sqlite":
        Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)
    upgrade(engine, "test")
    return engine


def _row(cols: list[str], cell: str, cycle: int, filled: set[str]) -> tuple:
    values = []
    for c in cols:
        if c == "cell_id":
            values.append(cell)
        elif c == "cycle":
            values.append(cycle)
        elif c not in filled:
            values.append(None)
        else:
            t = S.cycles.c[c].type
            if isinstance(t, sa.JSON):
                values.append(json.dumps({"k": cycle}))
            elif isinstance(t, sa.Boolean):
                values.append(cycle % 2 == 0)
            elif isinstance(t, sa.Integer):
                values.append(cycle * 3)
            elif isinstance(t, sa.Float):
                values.append(cycle + 0.25)
            else:
                values.append(f"v{cycle}")
    return tuple(values)


def test_batches_with_empty_columns_store_every_value(db_url):
    cols = cycle_columns()
    fields = [c for c in cols if c not in ("cell_id", "cycle")]
    batches = [
        [_row(cols, "A", k, set(fields)) for k in range(1, 6)],  # every field filled
        [_row(cols, "B", k, set(fields[:3])) for k in range(1, 6)],  # most fields empty
        [_row(cols, "C", k, set()) for k in range(1, 4)],  # only the key
        [_row(cols, "D", 1, set(fields[-2:]))],  # one row
        [_row(cols, "E", k, {fields[1]} if k == 2 else set()) for k in range(1, 4)],
    ]
    engine = _engine(db_url)
    with engine.begin() as conn:
        for batch in batches:
            bulk_insert(conn, S.cycles, cols, batch)
    with engine.connect() as conn:
        got = conn.execute(sa.select(*(S.cycles.c[c] for c in cols))).fetchall()
    engine.dispose()
    want = sorted((r for b in batches for r in b), key=lambda r: (r[0], r[1]))
    got = [tuple(json.dumps(v) if isinstance(v, dict) else v for v in r) for r in got]
    assert sorted(got, key=lambda r: (r[0], r[1])) == want
