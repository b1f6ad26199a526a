"""Bulk loads over parallel streams write every cell once: the same rows as one stream,
a later batch with an already written cell id replaces its rows (the key, built again
after the load on PostgreSQL, would refuse duplicates), and a failing batch is raised."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from cyclerflow.db import schema as S
from cyclerflow.db.bulk import bulk_load
from cyclerflow.db.engine import resolve
from cyclerflow.db.rebuild import open_writer
from cyclerflow.db.records import CellRecord, cycle_columns, metadata_rows
from cyclerflow.db.streams import BatchWriter


def record(k: int, n_cycles: int, capacity_ah: float) -> CellRecord:
    cell_id = f"C{k:03d}"
    meta = {"cell_id": cell_id, "wafer": f"W{k % 3}", "layers": [{"role": "anode"}]}
    cell, layers, keys = metadata_rows(cell_id, meta, f"/lab/{cell_id}.h5")
    width = len(cycle_columns()) - 3
    cycles = [(cell_id, n, capacity_ah * n, *([None] * width)) for n in range(1, n_cycles + 1)]
    summary = dict.fromkeys(S.summary_columns()) | {"cell_id": cell_id, "status": "ok"}
    summary["live"] = False
    return CellRecord(cell_id, cell, layers, cycles=cycles, summary=summary, keys=tuple(keys))


def load(url: str, batches: list[list[CellRecord]], streams: int) -> list[tuple]:
    engine = open_writer(resolve(None, url))
    try:
        with bulk_load(engine) as fresh, BatchWriter(engine, fresh, streams) as writer:
            assert writer.streams == (streams if url.startswith("postgresql") else 1)
            for b in batches:
                writer.write(b)
        c = S.cycles.c
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(c.cell_id, c.cycle, c.charge_capacity_ah).order_by(c.cell_id, c.cycle)
            ).all()
            pk = sa.inspect(conn).get_pk_constraint("cycles")["constrained_columns"]
        assert pk == ["cell_id", "cycle"]  # the key is back
        return [tuple(r) for r in rows]
    finally:
        engine.dispose()


@pytest.fixture
def second_url(db_url, request, tmp_path) -> str:
    """Another empty database on the same back-end."""
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'db2' / 'lab.db'}"
    return request.getfixturevalue("postgres_server").new_database()


def test_parallel_streams_write_what_one_stream_writes(db_url, second_url):
    batches = [[record(b * 4 + i, 30, 1e-6) for i in range(4)] for b in range(6)]
    batches.append([record(5, 12, 2e-6)])  # the same cell id again: the later file wins
    parallel = load(db_url, batches, streams=2)
    single = load(second_url, batches, streams=1)
    assert parallel == single
    by_cell = {}
    for cid, n, q in parallel:
        by_cell.setdefault(cid, []).append((n, q))
    assert len(by_cell) == 24
    assert by_cell["C005"] == [(n, pytest.approx(2e-6 * n)) for n in range(1, 13)]
    assert all(len(v) == 30 for cid, v in by_cell.items() if cid != "C005")


def test_a_failing_batch_is_raised(db_url):
    good = record(1, 3, 1e-6)
    bad = CellRecord(good.cell_id, {**good.cell, "path": None}, cycles=good.cycles)  # NOT NULL
    engine = open_writer(resolve(None, db_url))
    try:
        with pytest.raises(sa.exc.IntegrityError):
            with bulk_load(engine) as fresh, BatchWriter(engine, fresh, 2) as writer:
                writer.write([record(2, 3, 1e-6)])
                writer.write([bad])
    finally:
        engine.dispose()
