"""The fast path of the Neware BTSDA CSV reader: pyarrow's CSV reader on a clean table.

Taken only when the file is a plain grid: ASCII data rows, a header of unique,
unquoted names, every row with the header's number of fields, every needed value
present and of its kind (numbers numeric, times ``[h]h:mm:ss[.fff]``, dates
``YYYY-MM-DD hh:mm:ss``). Anything else raises :class:`Doubt`, and the caller reads
the file with the pandas path, which names the line and what is wrong. So this
module never decides that a file is bad; it only reads good ones faster (one
multi-threaded parse, no Python object per value).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from cyclerflow.importers import neware_clock as clock
from cyclerflow.importers.neware_clock import Doubt
from cyclerflow.importers.textspan import find, is_ascii

#: widest duration text taken (as the pandas path)
DURATION_WIDTH = 31
#: a duration as BTSDA prints it: [h]h:mm:ss[.fff] or plain seconds (no blanks here)
DURATION_SHAPE = re.compile(r"(?:\d{1,12}:\d{1,12}:)?\d{1,12}(?:\.\d{0,8})?")
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
#: the duration layouts read eight bytes at a time (others: one pass per character)
WORD_SHAPE = re.compile(r"(\d{2,12}):\d\d:\d\d(?:\.(\d{1,8}))?")


@dataclass(frozen=True)
class ArrowTable:
    """Header names and the parsed columns (by header position) of a clean table."""

    names: list[str]
    columns: dict[int, Any]  # position -> pyarrow ChunkedArray


def _header(first: str, sep: str) -> list[str]:
    """Header names; Doubt unless unique, unquoted and non-empty (a trailing empty
    name is allowed: rows ending with the separator)."""
    names = first.split(sep)
    core = names[:-1] if names and names[-1] == "" else names
    if '"' in first or any(n == "" for n in core) or len(set(core)) != len(core):
        raise Doubt("header")
    return names


def read_table(raw: memoryview, first: str, sep: str, wanted: dict[int, bool]) -> ArrowTable:
    """Parse the data rows after the header line ``first`` (``raw``: the file, a view is
    handed to pyarrow without a copy); ``wanted``: position -> True for text columns,
    False for numeric ones."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = _header(first, sep)
    nl = find(raw, b"\n")
    if nl < 0 or not is_ascii(raw[nl + 1 :]):
        raise Doubt("no rows, or rows not ASCII")
    cols = [f"c{i}" for i in range(len(names))]
    bad: list[object] = []

    def invalid(row: object) -> str:
        bad.append(row)
        return "skip"

    want = {i: t for i, t in wanted.items() if i < len(names)}
    trail = len(names) - 1 if names[-1] == "" else None
    if trail is not None:
        want[trail] = True  # rows ending with the separator: that last field stays empty
    try:
        table = pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(raw[nl + 1 :])),  # no copy
            read_options=pacsv.ReadOptions(
                column_names=cols, block_size=1 << 22, use_threads=False
            ),
            # no quoting (a quote stays in the text, where it is doubted), no null
            # values (an empty number fails its column; empty text is doubted below),
            # no UTF-8 check (the rows are ASCII)
            parse_options=pacsv.ParseOptions(
                delimiter=sep, quote_char=False, invalid_row_handler=invalid
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=[cols[i] for i in sorted(want)],
                column_types={cols[i]: pa.string() for i, t in want.items() if t},
                null_values=[],
                check_utf8=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise Doubt(str(err)) from None
    if bad or table.num_rows == 0:
        raise Doubt("rows")
    columns = {i: table.column(cols[i]) for i in want}
    if trail is not None and _longest(columns.pop(trail)) != 0:
        raise Doubt("trailing column")
    return ArrowTable(names, columns)


def _longest(col: Any) -> int:
    """Length of the longest text in a string column (0 when all are empty)."""
    import pyarrow.compute as pc

    return int(pc.max(pc.binary_length(col)).as_py() or 0)


def numbers(col: Any) -> np.ndarray:
    """A numeric column as float64 (read-only when pyarrow's own buffer, else a new
    array); Doubt for text or non-finite values."""
    import pyarrow as pa

    if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
        raise Doubt("not numeric")
    v = col.to_numpy()  # (several chunks: concatenated, new)
    if v.dtype != np.float64:
        v = v.astype("f8")
    if not (np.isfinite(v.min()) and np.isfinite(v.max())):  # (NaN propagates to both)
        raise Doubt("non-finite")
    return v


def _flat(col: Any) -> tuple[np.ndarray, np.ndarray]:
    """The bytes of a string column and each row's offset into them (n + 1, from 0)."""
    import pyarrow as pa

    if not pa.types.is_string(col.type):
        raise Doubt("not text")
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    off = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2], np.uint8)[off[0] : off[-1]]
    return data, (off - off[0]).astype(np.int64)


def _same_width_rows(b: np.ndarray, off: np.ndarray, rows: np.ndarray, width: int) -> np.ndarray:
    """The bytes of ``rows`` (all ``width`` long) as an (n, width) array."""
    first, last = int(rows[0]), int(rows[-1])
    if last - first + 1 == len(rows):  # one run of rows (e.g. hours < 100, then >= 100)
        return b[off[first] : off[last + 1]].reshape(len(rows), width)
    return b[off[rows][:, None] + np.arange(width)]


def _number(m: np.ndarray, at: int, n: int) -> np.ndarray:
    """Integer value of the ``n`` digit bytes starting at column ``at`` of each row."""
    v = np.zeros(len(m), np.int64)
    for j in range(at, at + n):  # one pass per digit position (n is small)
        v *= 10
        v += m[:, j]
        v -= 48
    return v


def _word_seconds(m: np.ndarray, first: str) -> np.ndarray | None:
    """Seconds of same-width ``H..H:mm:ss[.f..f]`` texts ((n, width) bytes, C order)
    read with :mod:`neware_clock` (None for another layout); Doubt for a row laid out
    otherwise. Same arithmetic as :func:`_group_seconds`, so the same float64."""
    match = WORD_SHAPE.fullmatch(first)
    if match is None:
        return None
    width, at = m.shape[1], first.index(":") - 2
    p = clock.pairs(clock.checked(clock.words(m.reshape(-1), width, at), clock.CLOCK))
    hours = None
    if at:
        hours = clock.digit_columns(m, 0, at)
        hours *= 100
        hours += p[:, 0]
    whole = clock.clock_seconds(p, hours)  # hours * 3600 + minutes * 60
    frac = match[2]
    if not frac:
        whole += p[:, 6]
        return whole.astype("f8")
    if not (m[:, at + 8] == 46).all():
        raise Doubt("no dot")
    num = clock.digit_columns(m, at + 9, width)
    num += p[:, 6].astype(np.int64) * 10 ** len(frac)
    out = whole.astype("f8")
    out += num / float(10 ** len(frac))  # the seconds correctly rounded from the decimal
    return out


def _group_seconds(m: np.ndarray) -> np.ndarray:
    """Seconds of same-width duration texts (rows of bytes) laid out like the first
    row: every row has its colons and dot where the first has them, digits elsewhere."""
    first = bytes(m[0]).decode("ascii")
    fast = _word_seconds(m, first)
    if fast is not None:
        return fast
    fields = first.split(":")
    whole, dot, frac = fields[-1].partition(".")
    if DURATION_SHAPE.fullmatch(first) is None or len(whole) + len(frac) > 15:
        raise Doubt("not a duration")
    digit = (m[0] >= 48) & (m[0] <= 57)
    seps, digs = np.flatnonzero(~digit), np.flatnonzero(digit)
    if not (m[:, seps] == m[0, seps]).all() or ((m[:, digs] - 48) > 9).any():
        raise Doubt("durations of one width laid out differently")
    h = mi = np.zeros(len(m), np.int64)
    if len(fields) == 3:
        h = _number(m, 0, len(fields[0]))
        mi = _number(m, len(fields[0]) + 1, len(fields[1]))
    at = len(first) - len(fields[-1])
    scale = 10 ** len(frac)
    num = _number(m, at, len(whole)) * scale + _number(m, at + len(whole) + len(dot), len(frac))
    return h * 3600.0 + mi * 60.0 + num / float(scale)  # num < 1e15: exact in float64


def integers(col: Any) -> np.ndarray | None:
    """An integer-typed column as int64 (None when pyarrow typed it otherwise); Doubt
    beyond 2**53 (where the careful path, going through float64, would round)."""
    import pyarrow as pa

    if not pa.types.is_integer(col.type):
        return None
    v = np.asarray(col.to_numpy(), dtype=np.int64)
    if len(v) and max(-int(v.min()), int(v.max())) >= 2**53:
        raise Doubt("huge integer")
    return v


#: rows per piece in :func:`by_chunk` (temporaries of 8-byte words: 512 KiB)
PIECE = 1 << 16


def by_chunk(col: Any, fn: Any) -> np.ndarray:
    """``fn`` (float64 per row) of each chunk of a column, joined: the temporaries stay
    the size of one chunk (a block of the CSV: they stay in the CPU cache)."""
    import pyarrow as pa

    whole = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    chunks = [c.slice(a, PIECE) for c in whole for a in range(0, len(c), PIECE)]
    if len(chunks) == 1:
        return fn(chunks[0])
    out = np.empty(sum(len(c) for c in chunks))
    at = 0
    for c in chunks:
        out[at : at + len(c)] = fn(c)
        at += len(c)
    return out


def durations(col: Any) -> np.ndarray:
    """Seconds of ``[h]h:mm:ss[.fff]`` or plain-second texts (hours may exceed 24),
    from the column's bytes: rows grouped by width, each group parsed as a matrix of
    digits (seconds correctly rounded from the decimal); Doubt for anything else."""
    return by_chunk(col, _durations)


def _durations(col: Any) -> np.ndarray:
    """:func:`durations` of one chunk."""
    b, off = _flat(col)
    lens = np.diff(off)
    if not len(lens) or lens.min() < 1 or lens.max() > DURATION_WIDTH:
        raise Doubt("duration width")
    widths = np.flatnonzero(np.bincount(lens))
    if len(widths) > 12:
        raise Doubt("too many widths")
    if len(widths) == 1:  # one width: the rows lie back to back
        return _group_seconds(b.reshape(len(lens), int(widths[0])))
    out = np.empty(len(lens))
    for w in widths.tolist():
        rows = np.flatnonzero(lens == w)
        first, last = int(rows[0]), int(rows[-1])
        where = slice(first, last + 1) if last - first + 1 == len(rows) else rows
        out[where] = _group_seconds(_same_width_rows(b, off, rows, w))
    return out


def type_codes(col: Any) -> np.ndarray:
    """One integer per distinct step type name, per row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return pc.dictionary_encode(arr).indices.to_numpy(zero_copy_only=False)


def step_kinds(col: Any, kind_of: Any) -> np.ndarray:
    """``kind_of(name)`` (+1/-1/0) of every row's step type, computed once per run of
    rows with the same name (per distinct name when runs are short)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(arr)
    change = np.ones(n, dtype=bool)
    if n > 1:
        differs = pc.not_equal(arr.slice(1), arr.slice(0, n - 1))
        change[1:] = differs.to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(change)
    if len(starts) > n // 8:  # short runs: one hash per row is cheaper
        enc = pc.dictionary_encode(arr)
        return _kinds_of(enc.dictionary.to_pylist(), kind_of)[enc.indices.to_numpy()]
    kinds = _kinds_of(arr.take(pa.array(starts)).to_pylist(), kind_of)
    return np.repeat(kinds, np.diff(np.r_[starts, n]))


def _kinds_of(names: list[str], kind_of: Any) -> np.ndarray:
    """``kind_of`` of each name (int64); Doubt for an empty or quoted name."""
    if any(not n or '"' in n for n in names):
        raise Doubt("step type empty or quoted")
    known: dict[str, int] = {}
    return np.asarray([known.setdefault(n, kind_of(n)) for n in names], dtype="i8")


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (vectorised)."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    doy = (153 * np.where(m > 2, m - 3, m + 9) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _valid_days(t: np.ndarray) -> np.ndarray:
    """Days since 1970 of ``YYYY-MM-DD`` rows of bytes; Doubt for an impossible date."""
    d = t[:, [0, 1, 2, 3, 5, 6, 8, 9]].astype(np.int64) - 48
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    month, day = d[:, 4] * 10 + d[:, 5], d[:, 6] * 10 + d[:, 7]
    dim = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[np.clip(month - 1, 0, 11)]
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    dim = dim + ((month == 2) & leap)
    ok = (month >= 1) & (month <= 12) & (day >= 1) & (day <= dim)
    if not (ok & (year > 1677) & (year < 2262)).all():
        raise Doubt("not a date")
    return _days_from_civil(year, month, day)


def unix_seconds(col: Any) -> np.ndarray:
    """``YYYY-MM-DD hh:mm:ss`` (zero-padded, a real date and time) -> Unix s as if UTC,
    from the column's bytes read eight at a time (:mod:`neware_clock`), the calendar
    worked out once per run of equal dates; Doubt for any other form (the pandas path
    reads those)."""
    return by_chunk(col, _unix_seconds)


def _unix_seconds(col: Any) -> np.ndarray:
    """:func:`unix_seconds` of one chunk."""
    b, off = _flat(col)
    n = len(off) - 1
    if not n or not (np.diff(off) == 19).all():
        raise Doubt("date width")
    w0, w1 = clock.words(b, 19, 0), clock.words(b, 19, 8)
    clock.checked(w0, b"0000-00-")
    clock.checked(w1, b"00 00:00")
    p = clock.pairs(clock.checked(clock.words(b, 19, 11), clock.CLOCK))
    if (p[:, 0] > 23).any() or (p[:, 3] > 59).any() or (p[:, 6] > 59).any():
        raise Doubt("not a time")
    # rows whose date (bytes 0-9: all of w0, the low two bytes of w1) differs from the last
    changed = w0[1:] != w0[:-1]
    changed |= ((w1[1:] ^ w1[:-1]) & 0xFFFF) != 0
    starts = np.flatnonzero(np.r_[True, changed])
    days = _valid_days(b.reshape(n, 19)[starts])
    total = np.repeat(days * 86400, np.diff(np.r_[starts, n]))
    total += clock.clock_seconds(p)
    total += p[:, 6]
    return total.astype("f8")  # whole seconds below 2**53: exact
