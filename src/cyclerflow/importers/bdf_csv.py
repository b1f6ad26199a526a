"""Neutral cycling CSV in the Battery Data Format (machine names or labels).

Labels are BDF's (``Test Time / s``, ``Voltage / V`` ...); any other column labelled
``name / unit`` (what ``cyclerflow export --format bdf-csv`` writes for columns BDF has
no label for, e.g. ``vendor_aux_1 / degC``) is kept under that name with that unit, so
an exported file imports to the same columns.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from cyclerflow.errors import InputError
from cyclerflow.importers.common import Imported, check_time_increasing
from cyclerflow.importers.csvtable import read_header_line, read_numeric_table, split_header
from cyclerflow.schema import BDF_LABELS, CYCLING_COLUMNS, REQUIRED_CYCLING

FORMAT = "bdf-csv"
EXTENSIONS = (".csv", ".txt")
#: what :func:`sniff` looks for (said when no reader fits)
SIGNATURE = "a header naming test time and voltage or current (BDF names or labels)"

RENAME = {**{c: c for c in CYCLING_COLUMNS}, **BDF_LABELS}
INTEGER = tuple(c for c, (_, dtype) in CYCLING_COLUMNS.items() if dtype == "i8")
_EXTRA = re.compile(r"^(?P<name>[a-z][a-z0-9_]*) / (?P<unit>.+)$")


def extra_columns(labels: list[str]) -> dict[str, tuple[str, str]]:
    """Label -> (column name, unit) for ``name / unit`` labels that are not BDF's own."""
    lower = {k.lower() for k in RENAME}
    out = {}
    for label in labels:
        m = _EXTRA.match(label.strip())
        if m and label not in RENAME and label.lower() not in lower:
            out[label] = (m.group("name"), m.group("unit").strip())
    return out


def sniff(path: Path, head: bytes) -> bool:
    """A header naming test time and voltage or current (BDF names or labels)."""
    _, fields = split_header(read_header_line(path, head))
    known = {
        RENAME.get(f) or {k.lower(): v for k, v in RENAME.items()}.get(f.lower()) for f in fields
    }
    return "test_time_second" in known and ("voltage_volt" in known or "current_ampere" in known)


def finish(path: Path, cols: dict[str, np.ndarray], first: int, header: str, units) -> Imported:
    """Checks shared by the CSV and Parquet readers: time increasing, two rows at least."""
    check_time_increasing(path, "test_time_second", cols["test_time_second"], first_line=first)
    if "unix_time_second" in cols:
        check_time_increasing(path, "unix_time_second", cols["unix_time_second"], first_line=first)
    if len(cols["test_time_second"]) < 2:
        raise InputError("needs at least two rows", path=path)
    return {"cycling": cols, "spectra": [], "header": header, "units": units}


def read(path: str | Path) -> Imported:
    """Read a BDF CSV; cycle_count is optional (cycles are then found from the current)."""
    path = Path(path)
    header = read_header_line(path) if path.exists() else ""
    extra = extra_columns(split_header(header)[1])
    rename = {**RENAME, **{label: name for label, (name, _) in extra.items()}}
    cols, first = read_numeric_table(
        path, rename=rename, required=REQUIRED_CYCLING, integer=INTEGER, what="BDF cycling CSV"
    )
    units = {name: unit for name, unit in extra.values() if name not in CYCLING_COLUMNS}
    return finish(path, cols, first, header, units)
