"""One cell's analysis as the lab report needs it, read from the lab database.

The database holds the per-cycle and per-spectrum numbers, the rest of the ``analyze``
JSON object, the raw metadata, the events and the provenance of the analysis. It does not
hold raw samples, impedance arrays or fit curves: the report still reads those from the
cell file and the results file.

An entry is *current* for a cell file when its indexed size and mtime (ns) are the
file's, its results file's are too, the cell row was written from this very file, and
the analysis status is ``ok`` (made from this version of the file). Anything else gives
None and the report reads the files as before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cyclerflow.db import schema as S
from cyclerflow.db.records import cycle_columns


@dataclass(frozen=True)
class IndexedCell:
    """What the database says about one current cell file (JSON-like values)."""

    path: str
    metadata: dict[str, Any]  # the raw metadata mapping ({} = the file has none)
    summary: dict[str, Any]  # the ``analyze --json`` object (without ``eis.drt``)
    events: list[dict[str, Any]]
    sha256: str | None  # of the cell file, when indexed
    results_path: str | None
    software_version: str | None  # of the analysis
    settings: Any  # the analysis settings (JSON value)


def file_stamp(path: str) -> tuple[int, int] | None:
    """(size bytes, mtime ns) of ``path``, None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _current_files(conn: sa.Connection, path: str) -> dict[str, Any] | None:
    """The cell's files rows when both are current, else None."""
    from cyclerflow.analysis import results_path

    f, c, s = S.files, S.cells, S.summaries
    row = conn.execute(
        sa.select(f.c.cell_id, f.c.size_bytes, f.c.mtime_ns, f.c.sha256, f.c.error, s.c.status)
        .select_from(f.join(c, c.c.cell_id == f.c.cell_id).join(s, s.c.cell_id == f.c.cell_id))
        .where(f.c.path == path, f.c.kind == "cell", c.c.path == path)
    ).first()
    if row is None or row.status != "ok" or row.error is not None:
        return None
    if (row.size_bytes, row.mtime_ns) != file_stamp(path):
        return None
    rp = str(results_path(path))
    res = conn.execute(
        sa.select(f.c.size_bytes, f.c.mtime_ns).where(f.c.path == rp, f.c.kind == "results")
    ).first()
    if res is None or (res.size_bytes, res.mtime_ns) != file_stamp(rp):
        return None
    return {"cell_id": row.cell_id, "sha256": row.sha256, "results_path": rp}


def _cycles(conn: sa.Connection, cell_id: str) -> list[dict[str, Any]]:
    t = S.cycles
    cols = [t.c[k] for k in cycle_columns()[1:]]
    rows = conn.execute(sa.select(*cols).where(t.c.cell_id == cell_id).order_by(t.c.cycle))
    out = []
    for r in rows:
        d = {k: v for k, v in r._mapping.items() if k != "extra_json" and v is not None}
        d.update(r.extra_json or {})
        out.append(d)
    return out


def _json_column(conn: sa.Connection, column: sa.Column, cell_id: str, order: sa.Column) -> list:
    stmt = sa.select(column).where(column.table.c.cell_id == cell_id).order_by(order)
    return [v for (v,) in conn.execute(stmt)]


def _summary(conn: sa.Connection, cell_id: str) -> dict[str, Any]:
    """The analyze JSON object again: summary_json + the cycles and spectra rows."""
    (blocks,) = conn.execute(
        sa.select(S.summaries.c.summary_json).where(S.summaries.c.cell_id == cell_id)
    ).one()
    result = dict(blocks or {})
    cycles = _cycles(conn, cell_id)
    if cycles or result.get("cycling"):
        result["cycling"] = {**(result.get("cycling") or {}), "cycles": cycles}
    sp = S.spectra
    spectra = _json_column(conn, sp.c.spectrum_json, cell_id, sp.c.spectrum)
    if spectra or result.get("eis"):
        result["eis"] = {**(result.get("eis") or {}), "spectra": spectra}
    return {k: v for k, v in result.items() if v is not None}


def _run(conn: sa.Connection, cell_id: str) -> tuple[str | None, Any]:
    """(software version, analysis settings) of the cell's latest ok analysis run."""
    r = S.analysis_runs
    row = conn.execute(
        sa.select(r.c.software_version, r.c.settings_json)
        .where(r.c.cell_id == cell_id, r.c.status == "ok")
        .order_by(r.c.run_id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None, None
    settings = row.settings_json if isinstance(row.settings_json, dict) else {}
    return row.software_version, settings.get("analysis")


def indexed_cell(conn: sa.Connection, path: str | Path) -> IndexedCell | None:
    """The database's view of a cell file when it is current (see the module), else None."""
    path = str(Path(path).resolve())
    found = _current_files(conn, path)
    if found is None:
        return None
    cid = found["cell_id"]
    (meta,) = conn.execute(sa.select(S.cells.c.metadata_json).where(S.cells.c.cell_id == cid)).one()
    events = _json_column(conn, S.events.c.event_json, cid, S.events.c.seq)
    version, settings = _run(conn, cid)
    return IndexedCell(
        path=path,
        metadata=meta if isinstance(meta, dict) else {},
        summary=_summary(conn, cid),
        events=events,
        sha256=found["sha256"],
        results_path=found["results_path"],
        software_version=version,
        settings=settings,
    )
