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
