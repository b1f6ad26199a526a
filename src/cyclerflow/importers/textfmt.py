"""Vendor text exports: reading, decoding and parsing numeric blocks.

Shared by the text importers (Arbin CSV, Maccor, Gamry DTA, ZPlot, EIS text). Every
error is an :class:`InputError` naming the format, the file and the line or byte.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cyclerflow.errors import InputError
from cyclerflow.importers.guarded import float64, whole_numbers
from cyclerflow.importers.textspan import file_view, find, is_ascii, tail
from cyclerflow.importers.textspan import first_line as first_row


def fail(fmt: str, path: str | Path, message: str, where: str | None = None) -> InputError:
    """An :class:`InputError` naming the format, the file and the place."""
    return InputError(f"{fmt}: {message}", path=path, where=where)


def read_raw(path: str | Path, fmt: str, *, allow_nul: bool = False) -> bytes:
    """Whole file as bytes; an empty (or all-blank) file is an error.

    A NUL byte in the first 4 KiB means a binary file given to a text reader (error),
    unless ``allow_nul``.
    """
    with open_raw(path, fmt, allow_nul=allow_nul) as view:
        # a small file was read into bytes already: no second copy (a map is copied)
        whole = isinstance(view.obj, bytes) and len(view) == len(view.obj)
        return view.obj if whole else bytes(view)


@contextmanager
def open_raw(path: str | Path, fmt: str, *, allow_nul: bool = False) -> Iterator[memoryview]:
    """The whole file as a zero-copy view (:func:`textspan.file_view`: read when small,
    memory-mapped when large, closed on leaving the block) after the checks of
    :func:`read_raw`. Search it with :func:`textspan.find`; slices stay views. A UTF-8
    byte-order mark (an editor's) is left out of the view."""
    path = Path(path)
    if not path.exists():
        raise InputError("input file not found", path=path)
    with file_view(path) as view:
        if _all_blank(view):
            raise fail(fmt, path, "file is empty", "byte 0")
        off = -1 if allow_nul else find(view, b"\x00", 0, 4096)
        if off >= 0:
            raise fail(
                fmt,
                path,
                "binary content (NUL byte) in what should be a text export",
                f"byte {off}",
            )
        yield view[3:] if view[:3] == BOM else view


#: the UTF-8 byte-order mark some editors write at the start of a text file
BOM = b"\xef\xbb\xbf"


def _all_blank(view: memoryview) -> bool:
    """Is the view empty or whitespace only? (Stops at the first chunk with text.)"""
    step = 1 << 16
    for pos in range(0, len(view), step):
        if not bytes(view[pos : pos + step]).isspace():
            return False
    return True


def decode(raw: bytes) -> str:
    """UTF-8 (BOM stripped) when valid, else Latin-1."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_text(path: str | Path, fmt: str, *, allow_nul: bool = False) -> str:
    """Whole file as text (see :func:`read_raw` and :func:`decode`).

    ``CR CR LF`` line ends (PAR PowerSuite text written through a second CR/LF
    conversion) are one line end, not a blank line after every row.
    """
    return decode(read_raw(path, fmt, allow_nul=allow_nul)).replace("\r\r\n", "\n")


def head_lines(raw: bytes | memoryview, n: int) -> list[str]:
    """The first ``n`` lines (split at LF, CR stripped), each decoded on its own."""
    end = 0
    for _ in range(n):  # only the first n lines are copied, not the rest of the file
        nl = find(raw, b"\n", end)
        if nl < 0:
            end = len(raw)
            break
        end = nl + 1
    pieces = bytes(raw[:end]).split(b"\n")[:n]
    if pieces and pieces[0].startswith(b"\xef\xbb\xbf"):
        pieces[0] = pieces[0][3:]
    return [decode(p.rstrip(b"\r")) for p in pieces]


def data_block(raw: bytes | memoryview, start_line: int) -> bytes | memoryview:
    """Bytes from 0-based line ``start_line`` to the end, trailing blank lines dropped
    (a view into ``raw`` when it is a ``memoryview``: no copy)."""
    off = 0
    for _ in range(start_line):
        nl = find(raw, b"\n", off)
        if nl < 0:
            return b""
        off = nl + 1
    end = len(raw)
    while end > off and raw[end - 1] in _BLANK:
        end -= 1
    return raw[off:end]


_BLANK = frozenset(b" \t\r\n")


def field_counts(body: bytes, sep: str | None, *, trailing_sep_ok: bool = True) -> np.ndarray:
    """Number of fields on every line of ``body`` (split at LF; a CR before it ignored).

    ``sep=None`` counts runs of non-blank characters (whitespace-separated tables);
    otherwise fields = separators + 1, and with ``trailing_sep_ok`` a separator that
    ends the line (``1,2,3,``) does not open a field. A blank line counts 0. Vectorised
    over the bytes (no per-row Python).
    """
    a = np.frombuffer(body, np.uint8)
    nl = np.flatnonzero(a == 10)
    n_lines = len(nl) + 1
    starts = np.concatenate([[0], nl + 1])
    ends = np.concatenate([nl, [len(a)]])  # exclusive
    cr = (ends > starts) & (a[np.maximum(ends - 1, 0)] == 13) if len(a) else ends > starts
    ends = ends - cr
    if sep is None:
        ws = (a == 32) | (a == 9) | (a == 13) | (a == 10)
        prev_ws = np.concatenate([[True], ws[:-1]])
        tok = np.flatnonzero(~ws & prev_ws)
        return np.bincount(np.searchsorted(nl, tok), minlength=n_lines)
    code = ord(sep)
    pos = np.flatnonzero(a == code)
    counts = np.bincount(np.searchsorted(nl, pos), minlength=n_lines) + 1
    blank = ends <= starts
    if trailing_sep_ok:
        last = a[np.maximum(ends - 1, 0)] if len(a) else np.zeros(n_lines, np.uint8)
        counts = counts - ((last == code) & ~blank)
    counts[blank & (counts <= 1)] = 0
    return counts


def check_row_widths(
    path: str | Path,
    fmt: str,
    body: bytes,
    first_line: int,
    n_names: int,
    sep: str | None,
    *,
    what: str = "the column line",
) -> None:
    """The guard against silent misreads: every data row has exactly as many fields as
    the column line names (a trailing separator tolerated).

    Raises naming the first line that differs, with both counts: a header with one
    name missing, a row cut short, a row with an extra value or a blank line inside
    the table all stop the import instead of shifting columns.
    """
    counts = field_counts(body, sep)
    bad = np.flatnonzero(counts != n_names)
    if not len(bad):
        return
    i = int(bad[0])
    got = int(counts[i])
    if got == 0:
        msg = "blank line inside the table (half-written or concatenated file?)"
    elif i == len(counts) - 1 and got < n_names:
        msg = f"last row has {got} fields, {what} names {n_names} (truncated file?)"
    else:
        msg = (
            f"row has {got} fields but {what} names {n_names} columns "
            "(a column name missing, or a value too many/few): refusing to guess which"
        )
    raise fail(fmt, path, msg, f"line {first_line + i}")


def as_bytes(lines: Sequence[str] | bytes | memoryview) -> bytes | memoryview:
    """Data rows as bytes (joined with LF when given as decoded lines; a view stays one)."""
    if isinstance(lines, (bytes, memoryview)):
        return lines
    return "\n".join(lines).encode("utf-8")


def parse_block(
    path: str | Path,
    fmt: str,
    lines: Sequence[str] | bytes | memoryview,
    first_line: int,
    columns: dict[str, int],
    *,
    sep: str | None = None,
    n_fields: int | None = None,
    text_columns: dict[str, int] | None = None,
    arrow_text: bool = False,
) -> dict[str, np.ndarray]:
    """Parse numeric columns (name -> field index) from data lines of a text table.

    ``sep=None`` splits on any run of whitespace. ``first_line`` is the 1-based line
    number of ``lines[0]`` in the file (used in errors); ``lines`` may also be the raw
    bytes of the data rows (faster: no decoding round trip). ``text_columns`` (name ->
    field index) are returned as arrays of stripped strings. With ``n_fields`` (the
    number of names on the column line) every row must have exactly that many fields
    (:func:`check_row_widths`). Raises naming the line for a short or long row, a
    non-numeric or a missing value. With ``arrow_text`` text columns may come back as
    pyarrow arrays (no Python string per row) instead of NumPy object arrays.
    """
    text_columns = text_columns or {}
    if not lines:
        raise fail(fmt, path, "table has no data rows", f"line {first_line}")
    body = as_bytes(lines)
    fast = _arrow_columns(body, sep, columns, text_columns, n_fields)
    if fast is not None:
        return _from_arrow(path, fmt, fast, first_line, columns, text_columns, arrow_text)
    body = bytes(body)  # the slow path (names the bad line) works on a copy
    if n_fields is not None:
        check_row_widths(path, fmt, body, first_line, n_fields, sep)
    n_lines = body.count(b"\n") + 1
    df = _frame(path, fmt, body, first_line, columns, text_columns, sep)
    if len(df) != n_lines:
        raise fail(
            fmt, path, "blank or unreadable line inside the table", f"line {first_line + len(df)}"
        )
    out = {name: _numeric(path, fmt, name, df[idx], first_line) for name, idx in columns.items()}
    for name, idx in text_columns.items():
        col = df[idx]
        miss = np.flatnonzero(col.isna().to_numpy())
        if len(miss):
            raise fail(
                fmt,
                path,
                f"column {name!r} is missing (short or truncated row)",
                f"line {first_line + int(miss[0])}",
            )
        out[name] = col.str.strip().to_numpy(dtype=object)
    return out


def _arrow_columns(
    body: bytes | memoryview,
    sep: str | None,
    columns: dict[str, int],
    text_columns: dict[str, int],
    n_fields: int | None,
) -> dict[str, Any] | None:
    """The wanted columns parsed by pyarrow's CSV reader (multi-threaded, exact floats),
    or None when the table is not a clean delimited grid (then the slower pandas path
    finds and names the problem). Every row must have the first row's field count:
    a short, long or blank row sends the table to the slow path. ``body`` is handed to
    pyarrow without a copy (a view into the file when it is a ``memoryview``)."""
    if not is_ascii(body):
        try:
            codecs.utf_8_decode(body, "strict", True)
        except UnicodeDecodeError:
            return None  # Latin-1 text: pandas decodes it with replacement
    lead = 0
    if sep is None:
        if find(body, b" ") >= 0:
            return None  # runs of spaces: pandas' whitespace splitting
        sep = "\t"
        lead = 1 if body[:1] == b"\t" else 0  # Gamry rows start with a tab
    first = first_row(body)
    bsep = sep.encode()
    trailing = first.endswith(bsep)  # a separator ending the rows opens no field
    if trailing and not tail(body).rstrip(b"\r\n").endswith(bsep):
        body = bytes(body).rstrip(b"\r\n") + bsep  # the last row often lacks it
    ncols = first.count(bsep) + (0 if trailing else 1)
    if n_fields is not None and ncols != n_fields + lead:
        return None
    names = [f"c{i}" for i in range(ncols + trailing)]
    wanted = {**columns, **text_columns}
    if max(wanted.values()) + lead >= ncols:
        return None
    return _arrow_read(
        body,
        sep,
        names,
        [names[i + lead] for i in wanted.values()],
        [names[i + lead] for i in text_columns.values()],
        {name: names[i + lead] for name, i in wanted.items()},
    )


def _arrow_read(
    body: bytes | memoryview,
    sep: str,
    names: list[str],
    include: list[str],
    text: list[str],
    wanted: dict[str, str],
) -> dict[str, Any] | None:
    """pyarrow's CSV read of ``body`` (zero-copy buffer): the ``include`` columns (the
    ``text`` ones as strings), returned as ``wanted`` (name -> column); None on any
    refusal or a row of another width."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    bad: list[object] = []

    def invalid(row: object) -> str:
        bad.append(row)
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(body)),
            read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 22),
            parse_options=pacsv.ParseOptions(
                delimiter=sep,
                quote_char=False,
                ignore_empty_lines=False,
                invalid_row_handler=invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=sorted(set(include)),
                column_types=dict.fromkeys(text, pa.string()),
                null_values=[""],
                strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if bad:
        return None
    return {name: table.column(col) for name, col in wanted.items()}


def _from_arrow(
    path: str | Path,
    fmt: str,
    cols: dict[str, Any],
    first_line: int,
    columns: dict[str, int],
    text_columns: dict[str, int],
    arrow_text: bool = False,
) -> dict[str, np.ndarray]:
    """Arrays from pyarrow columns: numbers as float64, text stripped; a missing or
    non-numeric value fails naming its line."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out: dict[str, np.ndarray] = {}
    for name in columns:
        col = cols[name]
        if pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
            values = float64(col)
            out[name] = _all_finite(path, fmt, name, values, first_line)
        else:
            raw = col.to_numpy(zero_copy_only=False)
            series = pd.Series(
                [x.decode("latin-1") if isinstance(x, bytes) else x for x in raw], dtype=object
            )
            out[name] = _numeric(path, fmt, name, series, first_line)
    for name in text_columns:
        col = cols[name]
        if col.null_count:
            miss = np.flatnonzero(~col.is_valid().to_numpy(zero_copy_only=False))
            raise fail(
                fmt,
                path,
                f"column {name!r} is missing (short or truncated row)",
                f"line {first_line + int(miss[0])}",
            )
        trimmed = pc.utf8_trim_whitespace(col)
        out[name] = trimmed if arrow_text else trimmed.to_numpy(zero_copy_only=False)
    return out


def _frame(
    path: str | Path,
    fmt: str,
    body: bytes,
    first_line: int,
    columns: dict[str, int],
    text_columns: dict[str, int],
    sep: str | None,
) -> pd.DataFrame:
    """The wanted fields of every row (pandas' C parser), errors naming the line."""
    wanted = {**columns, **text_columns}
    width = max(wanted.values()) + 1
    try:
        return pd.read_csv(
            io.BytesIO(body),
            encoding="utf-8",
            encoding_errors="replace",
            sep=r"\s+" if sep is None else sep,
            header=None,
            usecols=sorted(set(wanted.values())),
            dtype={i: str for i in text_columns.values()},
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
            engine="c",
            low_memory=False,
        )
    except pd.errors.ParserError as err:
        m = re.search(r"line (\d+), saw (\d+)", str(err))
        if m:
            raise fail(
                fmt,
                path,
                f"row has {m.group(2)} fields, more than the table's",
                f"line {first_line + int(m.group(1)) - 1}",
            ) from None
        raise fail(fmt, path, f"cannot parse the table: {err}", f"line {first_line}") from None
    except ValueError as err:  # usecols out of range: every row is short
        raise fail(
            fmt, path, f"rows have fewer than {width} fields ({err})", f"line {first_line}"
        ) from None


def _numeric(path: str | Path, fmt: str, name: str, col: pd.Series, first_line: int) -> np.ndarray:
    """One column as float64; a non-numeric, missing or non-finite value fails with its line."""
    if not pd.api.types.is_numeric_dtype(col):
        num = pd.to_numeric(col.astype(str).str.strip(), errors="coerce")
        bad = np.flatnonzero(num.isna().to_numpy() & col.notna().to_numpy())
        if len(bad):
            i = int(bad[0])
            raise fail(
                fmt,
                path,
                f"column {name!r} has a non-numeric value {col.iloc[i]!r}",
                f"line {first_line + i}",
            )
        col = num
    return _all_finite(path, fmt, name, col.to_numpy(dtype="f8"), first_line)


def _all_finite(
    path: str | Path, fmt: str, name: str, values: np.ndarray, first_line: int
) -> np.ndarray:
    """``values`` when all finite; else fail naming the line of the first missing value."""
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise fail(
            fmt,
            path,
            f"column {name!r} is missing (short or truncated row)",
            f"line {first_line + int(bad[0])}",
        )
    return values


def as_int(
    path: str | Path, fmt: str, name: str, values: np.ndarray, first_line: int
) -> np.ndarray:
    """Whole-number column as int64, error naming the line of the first fraction,
    non-finite or huge (beyond 2**53) value."""
    return whole_numbers(path, fmt, name, values, first_line)
