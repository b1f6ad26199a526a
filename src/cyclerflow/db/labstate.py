"""The lab at a glance (``watch --lab``): one row per cell file, from the lab database
when its entry is current, from the file otherwise.

An entry is current when the file's size and mtime (ns) are those indexed (nothing
written since), or when the acquisition writing the file updated it less than
:data:`LIVE_FRESH_SECOND` ago (live, last sample time). Any other file is opened and
summarised (``cyclerflow.store.reader.summary``), so a stale or missing entry is never
shown as if it were current. Without the ``[db]`` extra or a database, every file is read.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cyclerflow.errors import InputError

#: an acquisition's files row younger than this is trusted for live / last sample (s)
LIVE_FRESH_SECOND = 60.0


@dataclass(frozen=True)
class CellState:
    """One cell file: where it stands (times in Unix seconds) and where that was read."""

    path: str
    cell_id: str | None
    wafer: str | None
    state: str  # live | closed | unclosed | unreadable
    last_sample_time_second: float | None
    n_cycles: int | None
    last_capacity_retention: float | None
    fade_rate_per_cycle: float | None
    status: str | None  # the lab analysis: ok, stale, failed, not_analysed; None = unknown
    source: str  # database | database (live) | file


def lab_files(root: Path) -> list[Path]:
    """Every ``*.h5`` file under ``root`` (hidden names skipped), sorted."""
    return sorted(
        p
        for p in root.rglob("*.h5")
        if p.is_file() and not any(x.startswith(".") for x in p.relative_to(root).parts)
    )


def _db_rows(root: Path, db: str | None) -> dict[str, dict[str, Any]]:
    """path -> files row joined with its cell and summary; {} without a database."""
    try:
        import sqlalchemy as sa

        from cyclerflow.db import schema as S
        from cyclerflow.db.engine import make_engine, resolve
    except ImportError:
        return {}
    try:
        engine = make_engine(resolve(root, db), readonly=True)
    except InputError:
        return {}
    f, c, s = S.files, S.cells, S.summaries
    cols = [f, c.c.wafer, s.c.n_cycles, s.c.last_capacity_retention]
    cols += [s.c.fade_rate_per_cycle, s.c.status.label("analysis_status")]
    stmt = (
        sa.select(*cols)
        .select_from(f.outerjoin(c, c.c.cell_id == f.c.cell_id))
        .outerjoin(s, s.c.cell_id == f.c.cell_id)
        .where(f.c.kind == "cell")
    )
    try:
        with engine.connect() as conn:
            return {r.path: dict(r._mapping) for r in conn.execute(stmt)}
    except sa.exc.SQLAlchemyError:
        return {}  # no tables yet, or another schema: read the files
    finally:
        engine.dispose()


def _from_row(path: Path, row: dict[str, Any], source: str) -> CellState:
    state = "live" if row.get("live") else "closed" if row.get("closed") else "unclosed"
    return CellState(
        str(path),
        row.get("cell_id"),
        row.get("wafer"),
        state,
        row.get("last_sample_time_second"),
        row.get("n_cycles"),
        row.get("last_capacity_retention"),
        row.get("fade_rate_per_cycle"),
        row.get("analysis_status"),
        source,
    )


def _from_file(path: Path, row: dict[str, Any] | None) -> CellState:
    from cyclerflow.store.reader import summary

    try:
        info = summary(path)
    except InputError as err:
        why = f"unreadable: {err.bare_message}"
        return CellState(str(path), None, None, why, None, None, None, None, None, "file")
    meta = info.get("metadata") or {}
    state = str(info.get("state") or "")
    return CellState(
        str(path),
        meta.get("cell_id"),
        meta.get("wafer"),
        "unclosed" if state.startswith("unclosed") else state,
        info.get("last_unix_time_second"),
        info.get("cycles"),
        None,
        None,
        "stale" if row is not None else None,  # the analysis, if any, predates this file
        "file",
    )


def cell_state(path: Path, row: dict[str, Any] | None, now: float) -> CellState:
    """The state of one file given its database row (None: not indexed)."""
    if row is not None:
        st = os.stat(path)
        if (row.get("size_bytes"), row.get("mtime_ns")) == (st.st_size, st.st_mtime_ns):
            return _from_row(path, row, "database")
        seen = row.get("indexed_unix_time_second")
        if row.get("live") and seen is not None and now - seen < LIVE_FRESH_SECOND:
            return _from_row(path, row, "database (live)")
    return _from_file(path, row)


def lab_state(root: str | Path, db: str | None = None) -> list[CellState]:
    """Every cell file under ``root``: from the database where current, else the file."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("lab root is not a folder", path=root)
    rows = _db_rows(root, db)
    now = time.time()
    return [cell_state(p, rows.get(str(p.resolve())), now) for p in lab_files(root)]
