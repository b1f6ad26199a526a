"""Reading delimited numeric tables with errors that name the file, line and column."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cyclerflow.errors import InputError
from cyclerflow.importers.common import check_finite
from cyclerflow.importers.guarded import float64, whole_numbers
from cyclerflow.importers.textfmt import check_row_widths, data_block

DELIMITERS = (",", ";", "\t")


def read_header_line(path: Path, head: bytes | None = None) -> str:
    """First non-empty line of a text file (header), decoded as UTF-8 (BOM stripped)."""
    if head is None:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    text = head.decode("utf-8-sig", "replace")
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def split_header(line: str) -> tuple[str, list[str]]:
    """(delimiter, field names) of a header line; the delimiter that splits most."""
    best = max(DELIMITERS, key=line.count)
    if line.count(best) == 0:
        return ",", [line.strip()]
    fields = next(csv.reader(io.StringIO(line), delimiter=best))
    return best, [f.strip() for f in fields]


def check_widths(path: Path, delim: str, n_names: int) -> int:
    """Every row after the header has one value per header name (the shared guard of
    :func:`cyclerflow.importers.textfmt.check_row_widths`): a header with a name missing
    would otherwise shift every column by one (pandas takes the extra value as an index).
    Returns the 1-based line number of the first data row."""
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    k = next((i for i, ln in enumerate(lines) if ln.strip()), 0) + 1  # first line after the header
    while k < len(lines) and not lines[k].strip():  # blank lines right after it are skipped
        k += 1
    body = data_block(raw, k)
    if body:
        check_row_widths(path, "table", body, k + 1, n_names, delim)
    return k + 1


def _check_utf8(path: Path) -> None:
    """The neutral CSVs are UTF-8: other bytes fail naming their offset."""
    raw = path.read_bytes()
    if raw.isascii():
        return
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"not UTF-8 text (byte offset {err.start})", path=path) from None


def _arrow_table(path: Path, delim: str, header_index: int) -> Any:
    """The whole table parsed by pyarrow's CSV reader (multi-threaded, exact floats)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    bad: list[object] = []

    def invalid(row: object) -> str:
        bad.append(row)
        return "skip"

    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(skip_rows=header_index, autogenerate_column_names=False),
            parse_options=pacsv.ParseOptions(
                delimiter=delim, ignore_empty_lines=True, invalid_row_handler=invalid
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as err:
        raise InputError(
            f"rows do not match the header: {str(err).strip()[:200]}", path=path
        ) from None
    if bad:
        check_widths(path, delim, table.num_columns)  # names the first bad line
        raise InputError("rows do not match the header (too many or too few fields)", path=path)
    return table


def _values(path: Path, label: str, col: Any, first_line: int) -> np.ndarray:
    """One column as float64; a non-numeric cell fails naming its line and value."""
    import pyarrow as pa

    t = col.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t):
        return float64(col)
    text = pd.Series(col.to_numpy(zero_copy_only=False), dtype=object)
    num = pd.to_numeric(text.map(lambda x: x.strip() if isinstance(x, str) else x), errors="coerce")
    bad = np.flatnonzero(num.isna().to_numpy() & text.notna().to_numpy() & (text != "").to_numpy())
    if len(bad):
        i = int(bad[0])
        raise InputError(
            f"column {label!r} has a non-numeric value {text.iloc[i]!r}",
            path=path,
            where=f"line {first_line + i}",
        )
    return num.to_numpy(dtype="f8")


def _mapping(
    path: Path, header: str, fields: list[str], rename: Mapping[str, str], required, what: str
) -> dict[int, str]:
    """Field index -> canonical name; a required column missing fails naming the header."""
    lower = {k.lower(): v for k, v in rename.items()}
    mapping: dict[int, str] = {}
    for i, f in enumerate(fields):
        canon = rename.get(f) or lower.get(f.lower())
        if canon and canon not in mapping.values():
            mapping[i] = canon
    missing = [c for c in required if c not in mapping.values()]
    if missing:
        shown = header if len(header) < 120 else header[:117] + "..."
        raise InputError(
            f"missing column(s) {missing} for a {what}; header line reads {shown!r} "
            f"(expected comma-, semicolon- or tab-separated BDF names or labels)",
            path=path,
            where="line 1",
        )
    return mapping


def read_numeric_table(
    path: str | Path,
    *,
    rename: Mapping[str, str],
    required: Sequence[str],
    integer: Sequence[str] = (),
    what: str = "table",
) -> tuple[dict[str, np.ndarray], int]:
    """Read a header + numeric rows file. Returns (columns by canonical name, first data line).

    ``rename`` maps header labels (exact or case-insensitive) to canonical names;
    unknown columns are ignored. Raises :class:`InputError` naming the line/column for
    missing columns, non-numeric cells, NaN or ragged rows. Parsed by pyarrow's CSV
    reader: floats are read exactly (a value written with 17 digits comes back bit for bit).
    """
    path = Path(path)
    if not path.exists():
        raise InputError("input file not found", path=path)
    if path.stat().st_size == 0:
        raise InputError(f"file is empty (expected a {what} with a header line)", path=path)
    header = read_header_line(path)
    delim, fields = split_header(header)
    mapping = _mapping(path, header, fields, rename, required, what)
    with open(path, "rb") as fh:
        head = fh.read(1 << 16).split(b"\n")
    header_index = next((i for i, ln in enumerate(head) if ln.strip()), 0)
    first_line = header_index + 2
    while first_line - 1 < len(head) and not head[first_line - 1].strip():
        first_line += 1  # blank lines between the header and the rows are skipped
    _check_utf8(path)
    table = _arrow_table(path, delim, header_index)
    if table.num_columns != len(fields):
        check_widths(path, delim, len(fields))
        raise InputError("rows do not match the header", path=path)
    if table.num_rows == 0:
        raise InputError(f"no data rows after the header (expected a {what})", path=path)
    out: dict[str, np.ndarray] = {}
    for i, canon in mapping.items():
        values = _values(path, fields[i], table.column(i), first_line)
        check_finite(path, fields[i], values, first_line=first_line)
        if canon in integer:
            values = whole_numbers(path, "", fields[i], values, first_line)
        out[canon] = values
    return out, first_line
