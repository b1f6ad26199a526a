"""Reading delimited numeric tables with errors that name the file, line and column."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cyclerflow.errors import InputError
from cyclerflow.importers.common import check_finite
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


def check_widths(path: Path, delim: str, n_names: int) -> None:
    """Every row after the header has one value per header name (the shared guard of
    :func:`cyclerflow.importers.textfmt.check_row_widths`): a header with a name missing
    would otherwise shift every column by one (pandas takes the extra value as an index)."""
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    k = next((i for i, ln in enumerate(lines) if ln.strip()), 0) + 1  # first line after the header
    while k < len(lines) and not lines[k].strip():  # blank lines right after it are skipped
        k += 1
    body = data_block(raw, k)
    if body:
        check_row_widths(path, "table", body, k + 1, n_names, delim)


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
    missing columns, non-numeric cells, NaN or ragged rows.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("input file not found", path=path)
    if path.stat().st_size == 0:
        raise InputError(f"file is empty (expected a {what} with a header line)", path=path)
    header = read_header_line(path)
    delim, fields = split_header(header)
    lower = {k.lower(): v for k, v in rename.items()}
    mapping = {}
    for f in fields:
        canon = rename.get(f) or lower.get(f.lower())
        if canon and canon not in mapping.values():
            mapping[f] = canon
    missing = [c for c in required if c not in mapping.values()]
    if missing:
        shown = header if len(header) < 120 else header[:117] + "..."
        raise InputError(
            f"missing column(s) {missing} for a {what}; header line reads {shown!r} "
            f"(expected comma-, semicolon- or tab-separated BDF names or labels)",
            path=path,
            where="line 1",
        )
    check_widths(path, delim, len(fields))
    try:
        df = pd.read_csv(
            path,
            sep=delim,
            skip_blank_lines=True,
            encoding="utf-8-sig",
            engine="c",
            low_memory=False,
        )
    except pd.errors.ParserError as err:
        msg = str(err)
        line = ""
        if "line" in msg:
            line = msg.split("line", 1)[1].strip().split()[0].rstrip(",")
        raise InputError(
            f"rows do not match the header: {msg.strip()}",
            path=path,
            where=f"line {line}" if line else None,
        ) from None
    except UnicodeDecodeError as err:
        raise InputError(f"not UTF-8 text (byte offset {err.start})", path=path) from None
    if len(df) == 0:
        raise InputError(f"no data rows after the header (expected a {what})", path=path)
    first_line = 2
    out: dict[str, np.ndarray] = {}
    for label, canon in mapping.items():
        col = df[label]
        if not pd.api.types.is_numeric_dtype(col):
            col = col.astype(object)
            num = pd.to_numeric(
                col.map(lambda x: x.strip() if isinstance(x, str) else x), errors="coerce"
            )
            bad = np.flatnonzero(num.isna().to_numpy() & col.notna().to_numpy())
            if len(bad):
                i = int(bad[0])
                raise InputError(
                    f"column {label!r} has a non-numeric value {col.iloc[i]!r}",
                    path=path,
                    where=f"line {first_line + i}",
                )
            col = num
        values = col.to_numpy(dtype="f8")
        check_finite(path, label, values, first_line=first_line)
        if canon in integer:
            if np.any(values != np.round(values)):
                i = int(np.flatnonzero(values != np.round(values))[0])
                raise InputError(
                    f"column {label!r} must hold whole numbers",
                    path=path,
                    where=f"line {first_line + i}",
                )
            values = values.astype("i8")
        out[canon] = values
    return out, first_line
