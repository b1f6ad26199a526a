"""The acquisition's hook into the lab database: each cell writer reports its progress to
the files table (``cyclerflow.db.live``) when the ``[db]`` extra is installed and the
file has a lab database; otherwise nothing happens."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def observe(writer: Any, metadata: Any = None) -> Any:
    """Attach the files-table observer to ``writer`` (when possible); returns ``writer``."""
    try:
        from cyclerflow.db.live import attach
    except ImportError:  # no [db] extra: the next lab run indexes the file
        return writer
    attach(writer, cell_id=getattr(metadata, "cell_id", None))
    return writer
