"""HDF5 cell store: one file per cell, streaming writer (SWMR), xarray reader, recovery."""

from cyclerflow.store.oneshot import write_cell
from cyclerflow.store.reader import (
    open_cell_file,
    read_cell_attrs,
    read_cycling,
    read_events,
    read_metadata,
    read_protocol,
    read_spectra,
    summary,
)
from cyclerflow.store.recovery import needs_recovery, recover
from cyclerflow.store.writer import LIVE_COLUMNS, CellWriter, create_cell, resume_cell

__all__ = [
    "LIVE_COLUMNS",
    "CellWriter",
    "create_cell",
    "needs_recovery",
    "open_cell_file",
    "read_cell_attrs",
    "read_cycling",
    "read_events",
    "read_metadata",
    "read_protocol",
    "read_spectra",
    "recover",
    "resume_cell",
    "summary",
    "write_cell",
]
