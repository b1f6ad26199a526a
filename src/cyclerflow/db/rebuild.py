"""Index a lab into the database: incrementally after a lab run, or rebuilt from the files.

What changed is decided by the files table: a cell whose file size and mtime (ns) and
whose results file mtime are those indexed last time is not read again, so an
incremental run over thousands of unchanged cells costs one ``stat`` per file and one
query.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cyclerflow.db import schema as S
from cyclerflow.db.bulk import bulk_load
from cyclerflow.db.cellview import file_stamp
from cyclerflow.db.engine import Target, ensure_writable, make_engine, write_transaction
from cyclerflow.db.migrate import upgrade
from cyclerflow.db.streams import BatchWriter
from cyclerflow.lab import CellEntry, LabSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexReport:
    """What an index run did (counts of cells) and where."""

    database: str
    indexed: int
    unchanged: int


def indexed_stamps(conn: sa.Connection) -> dict[str, tuple[int, int]]:
    """path -> (size bytes, mtime ns) of every indexed file."""
    f = S.files
    rows = conn.execute(sa.select(f.c.path, f.c.size_bytes, f.c.mtime_ns))
    return {p: (s, m) for p, s, m in rows}


def needs_index(entry: CellEntry, stamps: dict[str, tuple[int, int]]) -> bool:
    """True when the cell file or its results file differs from what was indexed."""
    from cyclerflow.analysis import results_path

    if entry.live:
        return True
    cell = str(Path(entry.path).resolve())
    if stamps.get(cell) != (entry.size_bytes, entry.mtime_ns):
        return True
    rp = str(results_path(cell))
    return stamps.get(rp) != file_stamp(rp)


def open_writer(target: Target) -> sa.Engine:
    """A write engine on an up-to-date schema (created or migrated when needed)."""
    ensure_writable(target)
    engine = make_engine(target)
    upgrade(engine, target.display)
    return engine


@dataclass(frozen=True)
class _Plan:
    """What an index run writes and how (``batch`` cells per transaction)."""

    todo: list[CellEntry]
    settings: LabSettings
    lab_rows: dict[str, dict[str, Any]]
    batch: int


def _write_batches(
    engine: sa.Engine,
    plan: _Plan,
    fresh_table: bool,
    progress: Callable[[int], None] | None,
) -> None:
    """Read and write the planned cells. ``fresh_table``: a bulk load into an empty cycles
    table without its key (written over parallel streams, :mod:`cyclerflow.db.streams`)."""
    from cyclerflow.db.collect import cell_record

    with BatchWriter(engine, fresh_table) as writer:
        for start in range(0, len(plan.todo), plan.batch):
            part = plan.todo[start : start + plan.batch]
            lab = plan.lab_rows
            writer.write([cell_record(e, plan.settings, lab_row=lab.get(e.path)) for e in part])
            if progress:
                progress(start + len(part))


def index_cells(
    target: Target,
    entries: Sequence[CellEntry],
    settings: LabSettings,
    *,
    force: Iterable[str] = (),
    lab_rows: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[int], None] | None = None,
    batch: int = 1,
    bulk: bool = False,
) -> IndexReport:
    """Upsert every changed cell (and every path in ``force``), ``batch`` cells per
    transaction (1 for lab runs: a cell is indexed as soon as it is read). ``bulk``: a
    rebuild (see :mod:`cyclerflow.db.bulk`)."""
    engine = open_writer(target)
    forced = {str(Path(p).resolve()) for p in force}
    try:
        with engine.connect() as conn:
            stamps = indexed_stamps(conn)
        todo = [
            e for e in entries if str(Path(e.path).resolve()) in forced or needs_index(e, stamps)
        ]
        plan = _Plan(todo, settings, lab_rows or {}, batch)
        with bulk_load(engine) if bulk and todo else nullcontext(False) as fresh_table:
            _write_batches(engine, plan, fresh_table, progress)
    finally:
        engine.dispose()
    return IndexReport(target.display, len(todo), len(entries) - len(todo))


def refresh_statistics(engine: sa.Engine) -> None:
    """Planner statistics after a bulk load (ANALYZE), so joins and layer subqueries use
    their indexes."""
    with write_transaction(engine) as conn:
        conn.exec_driver_sql("ANALYZE")


def clear_root(conn: sa.Connection, root: Path) -> None:
    """Delete the rows of every cell and file under ``root`` (other labs' rows stay)."""
    prefix = str(root.resolve()).rstrip(os.sep) + os.sep
    like = prefix.replace("%", r"\%").replace("_", r"\_") + "%"
    ids = sa.select(S.cells.c.cell_id).where(S.cells.c.path.like(like, escape="\\"))
    for t in (*S.CELL_CHILD_TABLES, S.analysis_runs):
        conn.execute(t.delete().where(t.c.cell_id.in_(ids)))
    conn.execute(S.cells.delete().where(S.cells.c.path.like(like, escape="\\")))
    conn.execute(S.files.delete().where(S.files.c.path.like(like, escape="\\")))


def rebuild(
    target: Target,
    root: str | Path,
    *,
    settings: LabSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IndexReport:
    """Forget everything indexed under ``root`` and index every cell file from scratch."""
    from cyclerflow.lab import discover_cells

    root = Path(root)
    entries = discover_cells(root)
    engine = open_writer(target)
    try:
        with write_transaction(engine) as conn:
            clear_root(conn, root)
    finally:
        engine.dispose()
    n = len(entries)
    report = index_cells(
        target,
        entries,
        settings or LabSettings(),
        force=[e.path for e in entries],
        progress=None if progress is None else (lambda i: progress(i, n)),
        batch=50,
        bulk=True,
    )
    engine = make_engine(target)
    try:
        refresh_statistics(engine)
    finally:
        engine.dispose()
    return report
