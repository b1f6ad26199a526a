"""Battery Data Format tables in Parquet (``cyclerflow export --format bdf-parquet``).

Columns are BDF labels (``Test Time / s`` ...), machine names, or ``name / unit`` for
other columns, exactly as in the BDF CSV; a table with ``frequency_hertz``,
``real_impedance_ohm`` and ``imaginary_impedance_ohm`` holds spectra (long format,
``spectrum_id`` per row) instead. Read with pyarrow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cyclerflow.errors import InputError
from cyclerflow.importers.bdf_csv import INTEGER, RENAME, extra_columns, finish
from cyclerflow.importers.common import Imported, check_finite
from cyclerflow.importers.guarded import whole_numbers
from cyclerflow.schema import CYCLING_COLUMNS, REQUIRED_CYCLING

FORMAT = "bdf-parquet"
EXTENSIONS = (".parquet", ".pq")
#: what :func:`sniff` looks for (said when no reader fits)
SIGNATURE = "the Parquet magic 'PAR1' at the start of the file"
_EIS = ("frequency_hertz", "real_impedance_ohm", "imaginary_impedance_ohm")


def sniff(path: Path, head: bytes) -> bool:
    """Starts with the Parquet magic ``PAR1``."""
    return head.startswith(b"PAR1")


def _table(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        table.column_names  # noqa: B018 (names are decoded here: bad UTF-8 fails now)
        return table
    except (pa.ArrowException, OSError, ValueError) as err:  # UnicodeDecodeError included
        raise InputError(
            f"{FORMAT}: not a readable Parquet file ({str(err).strip()[:160]})", path=path
        ) from None


def _column(path: Path, table, label: str) -> np.ndarray:
    import pyarrow as pa

    col = table.column(label)
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        raise InputError(f"{FORMAT}: column {label!r} is {col.type}, not numeric", path=path)
    values = col.to_numpy(zero_copy_only=False)
    if col.null_count:
        i = int(np.flatnonzero(~col.is_valid().to_numpy(zero_copy_only=False))[0])
        raise InputError(
            f"{FORMAT}: column {label!r} has a missing value", path=path, where=f"row {i + 1}"
        )
    return values


def _spectra(path: Path, table) -> Imported:
    cols = {c: _column(path, table, c) for c in table.column_names}
    for k in ("spectrum_id", "cycle_count"):
        if k in cols:
            cols[k] = whole_numbers(path, FORMAT, k, cols[k], 1, "row")
    for k in (*_EIS, "temperature_kelvin", "unix_time_second"):
        if k in cols:
            check_finite(path, k, cols[k].astype("f8", copy=False), first_line=1)
    sid = cols.get("spectrum_id", np.ones(len(cols["frequency_hertz"]), "i8"))
    spectra = []
    _, first = np.unique(sid, return_index=True)
    for s in sid[np.sort(first)]:
        m = sid == s
        sp = {"spectrum_id": int(s), **{k: cols[k][m] for k in _EIS}}
        for k in ("temperature_kelvin", "cycle_count", "unix_time_second"):
            if k in cols:
                sp[k] = np.unique(cols[k][m])[0].item()
        spectra.append(sp)
    return {"cycling": {}, "spectra": spectra, "header": ""}


def read(path: str | Path) -> Imported:
    """Read a BDF Parquet table (cycling rows, or long-format spectra)."""
    path = Path(path)
    if not path.exists():
        raise InputError("input file not found", path=path)
    table = _table(path)
    names = table.column_names
    if all(c in names for c in _EIS):
        return _spectra(path, table)
    extra = extra_columns(names)
    lower = {k.lower(): v for k, v in RENAME.items()}
    cols: dict[str, np.ndarray] = {}
    for label in names:
        canon = RENAME.get(label) or lower.get(label.lower()) or extra.get(label, (None,))[0]
        if canon is None or canon in cols:
            continue
        values = _column(path, table, label)
        if canon in INTEGER:
            values = whole_numbers(path, FORMAT, label, values, 1, "row")
        else:
            values = values.astype("f8", copy=False)
            check_finite(path, label, values, first_line=1)
        cols[canon] = values
    missing = [c for c in REQUIRED_CYCLING if c not in cols]
    if missing:
        raise InputError(f"{FORMAT}: missing column(s) {missing}; columns: {names}", path=path)
    units = {n: u for n, u in extra.values() if n not in CYCLING_COLUMNS}
    return finish(path, cols, 1, ", ".join(names), units)
