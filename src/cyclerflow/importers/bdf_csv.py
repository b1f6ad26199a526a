"""Neutral cycling CSV in the Battery Data Format (machine names or labels)."""

from __future__ import annotations

from pathlib import Path

from cyclerflow.errors import InputError
from cyclerflow.importers.common import Imported, check_time_increasing
from cyclerflow.importers.csvtable import read_header_line, read_numeric_table, split_header
from cyclerflow.schema import BDF_LABELS, CYCLING_COLUMNS, REQUIRED_CYCLING

FORMAT = "bdf-csv"
EXTENSIONS = (".csv", ".txt")
#: what :func:`sniff` looks for (said when no reader fits)
SIGNATURE = "a header naming test time and voltage or current (BDF names or labels)"

RENAME = {**{c: c for c in CYCLING_COLUMNS}, **BDF_LABELS}
INTEGER = ("cycle_count", "step_count", "step_index", "vendor_cycle_index", "vendor_step_index")


def sniff(path: Path, head: bytes) -> bool:
    _, fields = split_header(read_header_line(path, head))
    known = {
        RENAME.get(f) or {k.lower(): v for k, v in RENAME.items()}.get(f.lower()) for f in fields
    }
    return "test_time_second" in known and ("voltage_volt" in known or "current_ampere" in known)


def read(path: str | Path) -> Imported:
    """Read a BDF CSV; cycle_count is optional (cycles are then found from the current)."""
    path = Path(path)
    cols, first = read_numeric_table(
        path, rename=RENAME, required=REQUIRED_CYCLING, integer=INTEGER, what="BDF cycling CSV"
    )
    check_time_increasing(path, "test_time_second", cols["test_time_second"], first_line=first)
    if "unix_time_second" in cols:
        check_time_increasing(path, "unix_time_second", cols["unix_time_second"], first_line=first)
    if len(cols["test_time_second"]) < 2:
        raise InputError("needs at least two rows", path=path)
    return {"cycling": cols, "spectra": [], "header": read_header_line(path)}
