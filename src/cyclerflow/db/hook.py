"""The lab runs' one call into the database: index what a run analysed.

``database``: None = index into the default database when the ``[db]`` extra is installed
and the lab root is writable (a failure is logged, the lab run goes on); a URL or True =
required (errors raise); False = off.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cyclerflow.errors import InputError
from cyclerflow.lab import CellEntry, LabSettings

log = logging.getLogger(__name__)


def index_lab_run(
    root: str | Path,
    entries: Sequence[CellEntry],
    rows: Sequence[dict[str, Any]],
    settings: LabSettings,
    *,
    database: str | bool | None = None,
) -> Any:
    """Upsert the cells of a lab run; returns an IndexReport, or None when skipped."""
    from cyclerflow.db.engine import resolve
    from cyclerflow.db.rebuild import index_cells

    if database is False:
        return None
    url = database if isinstance(database, str) else None
    fresh = [r["path"] for r in rows if r.get("status") in ("ok", "failed")]
    by_path = {r["path"]: r for r in rows}
    try:
        return index_cells(resolve(root, url), entries, settings, force=fresh, lab_rows=by_path)
    except InputError as err:
        if database is not None:
            raise
        log.warning("lab database not updated: %s", err)
        return None


def known_entries(root: str | Path, database: str | bool | None = None) -> dict[str, CellEntry]:
    """Cell entries the lab database has indexed (closed files that read without error),
    by absolute path, as discovery would probe them (cell id, wafer, die from the raw
    metadata); {} when there is no database or it cannot be read."""
    import sqlalchemy as sa

    from cyclerflow.db import schema as S
    from cyclerflow.db.engine import make_engine, resolve

    if database is False:
        return {}
    f, c = S.files, S.cells
    stmt = (
        sa.select(f.c.path, f.c.size_bytes, f.c.mtime_ns, f.c.error, c.c.metadata_json)
        .select_from(f.join(c, c.c.cell_id == f.c.cell_id))
        .where(f.c.kind == "cell", sa.not_(sa.func.coalesce(f.c.live, False)))
    )
    try:
        engine = make_engine(
            resolve(root, database if isinstance(database, str) else None), readonly=True
        )
        try:
            with engine.connect() as conn:
                rows = conn.execute(stmt).fetchall()
        finally:
            engine.dispose()
    except (InputError, sa.exc.SQLAlchemyError) as err:
        log.debug("lab database not used for discovery: %s", err)
        return {}
    return {r.path: _entry(r) for r in rows if r.size_bytes is not None and r.error is None}


def _entry(r: Any) -> CellEntry:
    meta = r.metadata_json if isinstance(r.metadata_json, dict) else {}
    return CellEntry(
        path=r.path,
        cell_id=meta.get("cell_id"),
        wafer=meta.get("wafer"),
        die=meta.get("die"),
        size_bytes=int(r.size_bytes),
        mtime_ns=int(r.mtime_ns),
    )


def known_if_installed(root: str | Path, database: str | bool | None = None) -> dict:
    """:func:`known_entries` when SQLAlchemy is importable, else {}."""
    try:
        import sqlalchemy  # noqa: F401
    except ImportError:
        return {}
    return known_entries(root, database)


def index_if_installed(
    root: str | Path,
    entries: Sequence[CellEntry],
    rows: Sequence[dict[str, Any]],
    settings: LabSettings,
    database: str | bool | None = None,
) -> Any:
    """:func:`index_lab_run` when SQLAlchemy and Alembic are importable (else None, or a
    clear error when a database was asked for)."""
    if database is False:
        return None
    try:
        import alembic  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError:
        if database is not None:
            raise InputError(
                "the lab database needs the 'db' extra: pip install 'cyclerflow[db]'"
            ) from None
        return None
    return index_lab_run(root, entries, rows, settings, database=database)
