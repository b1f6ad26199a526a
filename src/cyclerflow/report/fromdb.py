"""Where the lab report finds a cell's analysis in the lab database instead of its files.

:class:`LabIndex` names the database (a URL: picklable, so worker processes of the report
open their own read-only engine, one per process). :meth:`LabIndex.lookup` gives the
database's view of a cell file when it is current (:mod:`cyclerflow.db.cellview`), else
None; any database error also gives None, and the report reads the files as before.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cyclerflow.errors import InputError

log = logging.getLogger(__name__)

#: read-only engines of this process, by (pid, url)
_ENGINES: dict[tuple[int, str], Any] = {}


@dataclass(frozen=True)
class LabIndex:
    """A lab database the report reads (SQLAlchemy URL)."""

    url: str

    def _engine(self) -> Any:
        from cyclerflow.db.engine import make_engine, resolve

        key = (os.getpid(), self.url)
        if key not in _ENGINES:
            _ENGINES[key] = make_engine(resolve(None, self.url), readonly=True)
        return _ENGINES[key]

    def lookup(self, path: str | Path) -> Any:
        """The cell's :class:`~cyclerflow.db.cellview.IndexedCell` when current, else None."""
        import sqlalchemy as sa

        from cyclerflow.db.cellview import indexed_cell

        try:
            with self._engine().connect() as conn:
                return indexed_cell(conn, path)
        except (sa.exc.SQLAlchemyError, InputError) as err:
            log.debug("lab database not used for %s: %s", path, err)
            return None


def lab_index(root: str | Path | None, database: str | bool | None = None) -> LabIndex | None:
    """The lab database a report of ``root`` may read: ``database`` (a URL), else
    ``$CYCLERFLOW_DB_URL``, else ``ROOT/.cyclerflow/lab.db`` when it exists. None when
    ``database`` is False, the ``[db]`` extra is missing or there is no database (a report
    never creates one)."""
    if database is False:
        return None
    try:
        from cyclerflow.db.engine import resolve
    except ImportError:
        return None
    try:
        target = resolve(root, database if isinstance(database, str) else None)
    except InputError:
        return None
    if target.sqlite_path is not None and not target.sqlite_path.exists():
        return None
    return LabIndex(target.url)
