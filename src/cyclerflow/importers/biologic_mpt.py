"""BioLogic EC-Lab text export ``.mpt`` (also BT-Lab).

Layout: ``EC-Lab ASCII FILE``, ``Nb header lines : N``, free-text header (technique
title on line 4, ``Acquisition started on : MM/DD/YYYY hh:mm:ss.fff``, settings
table), the tab-separated column line as line N, then tab-separated data. Numbers use
the Windows locale of the PC: decimal point or decimal comma. Text is Latin-1.
Exports without the header (first line = column names) are read too.
"""

from __future__ import annotations

import io
import math
import mmap
import os
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from cyclerflow.errors import InputError
from cyclerflow.importers.biologic_common import (
    INTEGER_COLUMNS,
    TECHNIQUE_TITLES,
    table_to_imported,
)
from cyclerflow.importers.common import Imported
from cyclerflow.importers.guarded import whole_numbers
from cyclerflow.importers.mpt_stamps import split_time_field, stamp_seconds, stamped_time
from cyclerflow.importers.textfmt import BOM
from cyclerflow.units import parse_quantity

FORMAT = "biologic-mpt"
EXTENSIONS = (".mpt",)
WHAT = "BioLogic .mpt"
MAGICS = (b"EC-Lab ASCII FILE", b"BT-Lab ASCII FILE")
#: names that mark a header-less export's column line
TYPICAL = {
    "time/s",
    "Ewe/V",
    "<Ewe>/V",
    "Ecell/V",
    "I/mA",
    "<I>/mA",
    "freq/Hz",
    "mode",
    "Ns",
    "cycle number",
}

_START = re.compile(
    r"Acquisition started on\s*:\s*(\d+)[/.-](\d+)[/.-](\d+)\s+(\d+):(\d+):(\d+(?:[.,]\d*)?)"
)
_NLINES = re.compile(r"Nb header lines\s*:\s*(\d+)")


def sniff(path: Path, head: bytes) -> bool:
    """EC-Lab/BT-Lab text export, with or without its header."""
    if head.startswith(MAGICS):
        return True
    first = head.split(b"\n", 1)[0].decode("latin-1").rstrip("\r")
    fields = set(first.split("\t"))
    return "time/s" in fields and len(fields & TYPICAL) >= 2


def _err(path: Path, msg: str, line: int | None = None) -> InputError:
    return InputError(f"{WHAT}: {msg}", path=path, where=None if line is None else f"line {line}")


class StartDateWarning(UserWarning):
    """The header's acquisition start could not be read: the rows get no Unix time."""


def _start_time(header: str, path: Path | None = None) -> float | None:
    """The ``Acquisition started on`` date of the header as Unix s (file clock taken as
    UTC), None when the header has none. A date that cannot be read (a day-first locale,
    a year no calendar holds, another layout) warns naming its line: the rows still
    import, their times relative to the start."""
    at = header.find("Acquisition started on")
    if at < 0:
        return None
    m = _START.match(header, at)
    if m:
        mo, d, y, hh, mm, ss = m.groups()
        try:
            sec = float(ss.replace(",", "."))
            return datetime(int(y), int(mo), int(d), int(hh), int(mm), tzinfo=UTC).timestamp() + sec
        except (ValueError, OverflowError):
            pass
    end = header.find("\n", at)
    text = header[at : len(header) if end < 0 else end].rstrip("\r")
    warnings.warn(
        f"{WHAT}: {path} line {header.count(chr(10), 0, at) + 1}: cannot read the "
        f"acquisition start {text!r} (month/day/year hh:mm:ss expected); the rows get no "
        "Unix time, only times from the start",
        StartDateWarning,
        stacklevel=3,
    )
    return None


def settings_table(header_lines: list[str]) -> dict[str, list[str]]:
    """EC-Lab's settings table: key (first 20 characters) -> one value per 20-character column."""
    table: dict[str, list[str]] = {}
    for ln in header_lines:
        ln = ln.rstrip("\r")
        if len(ln) < 21 or " : " in ln or ln[:1] in ("\t", " "):
            continue
        key = ln[:20].strip()
        if key and key not in table:
            table[key] = [ln[i : i + 20].strip() for i in range(20, len(ln), 20)]
    return table


def _step_techniques(table: dict[str, list[str]]) -> dict[int, str]:
    """Ns -> control type from a Modulo Bat settings table (``Ns`` and ``ctrl_type`` rows)."""
    ns, types = table.get("Ns", []), table.get("ctrl_type", [])
    if len(ns) != len(types) or not all(x.isdigit() for x in ns):
        return {}
    return {int(n): t for n, t in zip(ns, types, strict=True) if t in ("PEIS", "GEIS")}


def _quantity(value: str, unit: str, dimension: str) -> float | None:
    try:
        return parse_quantity(f"{value.replace(',', '.')} {unit}", dimension)
    except (InputError, ValueError):
        return None


def _amplitudes(table: dict[str, list[str]]) -> dict[int, float]:
    """Column (Ns) -> excitation amplitude in V (PEIS) or A (GEIS), where the header says."""
    out: dict[int, float] = {}
    ns = table.get("Ns")
    cols = [int(n) for n in ns] if ns and all(x.isdigit() for x in ns) else None

    def put(i: int, v: float | None) -> None:
        if v is not None:
            out[cols[i] if cols and i < len(cols) else i] = v

    for i, v in enumerate(table.get("Va (mV)", [])):
        put(i, _quantity(v, "mV", "voltage"))
    units_ia = table.get("unit Ia") or table.get("unit  Ia") or []
    for i, v in enumerate(table.get("Ia", [])):
        if i < len(units_ia):
            put(i, _quantity(v, units_ia[i].replace("µ", "u"), "current"))
    # Modulo Bat: a PEIS/GEIS sequence's amplitude is its ctrl1_val
    types = table.get("ctrl_type", [])
    vals, units = table.get("ctrl1_val", []), table.get("ctrl1_val_unit", [])
    for i, t in enumerate(types):
        if t in ("PEIS", "GEIS") and i < len(vals) and i < len(units):
            put(
                i,
                _quantity(
                    vals[i], units[i].replace("µ", "u"), "voltage" if t == "PEIS" else "current"
                ),
            )
    return out


def _find_bad_line(
    path: Path, lines: list[str], ncols: int, first_line: int, comma: bool
) -> InputError:
    for i, ln in enumerate(lines):
        fields = ln.rstrip("\r").split("\t")
        if fields and fields[-1] == "":
            fields = fields[:-1]
        if not fields:  # (trailing blank lines are cut off before: this one is inside)
            return _err(path, "blank line inside the data table", first_line + i)
        if len(fields) != ncols:
            return _err(
                path, f"expected {ncols} tab-separated values, found {len(fields)}", first_line + i
            )
        for f in fields:
            try:
                v = float(f.replace(",", ".") if comma else f)
            except ValueError:
                return _err(path, f"not a number: {f!r}", first_line + i)
            if not math.isfinite(v):
                return _err(path, f"not a finite number: {f!r}", first_line + i)
    return _err(path, "cannot parse the data table", first_line)


def _check_column_count(path: Path, names: list[str], data_lines: list[str], nhead: int) -> None:
    """The column line must name every value of the data rows (no silent misalignment)."""
    first = data_lines[0].rstrip("\r").split("\t")
    trailing = int(len(first) > 1 and first[-1] == "")
    nvals = len(first) - trailing
    if nvals != len(names):
        raise _err(
            path,
            f"the column line names {len(names)} columns but the first data row "
            f"(line {nhead + 1}) has {nvals} values: a column name is "
            f"{'missing' if nvals > len(names) else 'extra'}; refusing to guess the alignment",
            nhead,
        )
    tabs = len(first) - 1
    total = "\n".join(data_lines).count("\t")  # one C-level count, not one per line
    if total != tabs * len(data_lines):
        for i, ln in enumerate(data_lines):
            if ln.count("\t") != tabs and ln.strip():
                n = len(ln.rstrip("\r").split("\t")) - trailing
                raise _err(
                    path,
                    f"expected {len(names)} tab-separated values as named by the column "
                    f"line (line {nhead}), found {n}",
                    nhead + 1 + i,
                )
    if trailing:
        _check_trailing(path, names, data_lines, nhead)


def _check_trailing(path: Path, names: list[str], data_lines: list[str], nhead: int) -> None:
    """Rows end with a tab (as the first does): a row with a value after its last tab
    has one value more than the column line names (it would be dropped unseen)."""
    for i, ln in enumerate(data_lines):
        row = ln.rstrip("\r")
        if row.strip() and not row.endswith("\t"):
            raise _err(
                path,
                f"expected {len(names)} tab-separated values as named by the column line "
                f"(line {nhead}), found {len(names) + 1} (a value after the last tab)",
                nhead + 1 + i,
            )


def _header_lines(path: Path, raw: bytes | mmap.mmap, lines: list[str]) -> int:
    """Number of header lines declared (the column line is the last); 1 for a header-less
    export. ``lines``: at least the file's first two lines."""
    if not raw[:32].startswith(MAGICS):
        return 1
    m = _NLINES.match(lines[1]) if len(lines) > 1 else None
    if not m:
        raise _err(path, "expected 'Nb header lines : N'", 2)
    nhead = int(m.group(1))
    if nhead < 3:
        raise _err(path, f"header declares {nhead} lines", 2)
    return nhead


def _utf8_or_latin1(line: str) -> str:
    """A Latin-1-decoded line as UTF-8 when its bytes are valid UTF-8 (an export saved
    as UTF-8 writes ``°`` as two bytes); else unchanged (a lone Latin-1 ``°`` byte is
    never valid UTF-8, so the two cannot be confused)."""
    try:
        return line.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return line


def _column_names(path: Path, line: str, nhead: int) -> list[str]:
    names = _utf8_or_latin1(line).rstrip("\r").split("\t")
    if names and names[-1] == "":
        names = names[:-1]
    if "time/s" not in names:
        raise _err(path, f"column line has no 'time/s' (found {names[:6]})", nhead)
    if len(set(names)) != len(names):
        raise _err(path, "repeated column names", nhead)
    return names


def _numbers(path: Path, names: list[str], data_lines: list[str], first_line: int) -> np.ndarray:
    """The data rows as a float64 array (C parser); a clear error naming the bad line."""
    comma = bool(re.search(r"\d,\d", data_lines[0]))
    try:
        df = pd.read_csv(
            io.BytesIO("\n".join(data_lines).encode("utf-8")),  # bytes: pandas' fast reader
            encoding="utf-8",
            sep="\t",
            header=None,
            usecols=range(len(names)),
            dtype="float64",
            decimal="," if comma else ".",
            na_filter=False,
            engine="c",
            skip_blank_lines=False,
        )
    except (ValueError, pd.errors.ParserError):
        raise _find_bad_line(path, data_lines, len(names), first_line, comma) from None
    arr = df.to_numpy()
    if arr.shape[0] != len(data_lines) or not np.isfinite(arr).all():
        raise _find_bad_line(path, data_lines, len(names), first_line, comma)
    return arr


def _named_columns(
    path: Path, columns: dict[str, np.ndarray], first_line: int
) -> dict[str, np.ndarray]:
    """The columns with the integer ones (``INTEGER_COLUMNS``) checked whole and cast to int64."""
    cols: dict[str, np.ndarray] = {}
    for name, v in columns.items():
        if name in INTEGER_COLUMNS:
            v = whole_numbers(path, WHAT, name, v, first_line)
        cols[name] = v
    return cols


def _head(raw: bytes | mmap.mmap, n: int) -> list[str]:
    """The first ``n`` lines of ``raw`` (split at LF, CR kept), decoded as Latin-1."""
    end = 0
    for _ in range(n):
        nl = raw.find(b"\n", end)
        if nl < 0:
            return raw[:].decode("latin-1").split("\n")[:n]
        end = nl + 1
    return raw[:end].decode("latin-1").split("\n")[:n]


def _data_start(path: Path, raw: bytes | mmap.mmap, nhead: int) -> int:
    """Byte offset of the first data row (after ``nhead`` lines); the file's length when
    its last line is the column line. Fails when the file has fewer than ``nhead`` lines."""
    off = 0
    for i in range(nhead):
        nl = raw.find(b"\n", off)
        if nl < 0:
            if i < nhead - 1:
                raise _err(path, f"header declares {nhead} lines but the file has {i + 1}", 2)
            return len(raw)
        off = nl + 1
    return off


#: what ``str.strip`` removes from Latin-1 text: a line of only these is blank
_BLANK = b" \t\r\n\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0"


def _data_end(raw: bytes | mmap.mmap, start: int) -> int:
    """End of the last non-blank line at or after ``start`` (trailing blank lines dropped;
    the last row's own trailing separator or CR kept); ``start`` when there is none.
    Looks only at the file's tail."""
    end = len(raw)
    while end > start:
        lo = max(start, end - 4096)
        kept = len(raw[lo:end].rstrip(_BLANK))
        if kept:
            nl = raw.find(b"\n", lo + kept)
            return len(raw) if nl < 0 else nl
        end = lo
    return start


def _fast_columns(raw: bytes | mmap.mmap, start: int, end: int, names: list[str]) -> dict | None:
    """Every column as float64 parsed from the bytes ``raw[start:end]`` by pyarrow (no copy,
    multi-threaded, exactly rounded), or None when this path cannot vouch for the table:
    a row of another width than the first, a blank row, an empty, non-numeric or
    non-finite value, a value under a trailing separator. The line-by-line path then
    reads the table and names what is wrong."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    nl = raw.find(b"\n", start, end)
    first = raw[start : end if nl < 0 else nl].rstrip(b"\r")
    tabs = first.count(b"\t")
    trailing = int(tabs > 0 and first.endswith(b"\t"))
    if tabs - trailing + 1 != len(names):
        return None
    if tabs == 0 and raw[start:end].count(b"\n") + 1 != _rows_of_one_column(raw, start, end):
        return None
    comma = re.search(rb"\d,\d", first) is not None
    cols = [f"c{i}" for i in range(tabs + 1)]
    try:
        # every row must have the first row's width (pyarrow refuses any other), every
        # line is a row (a blank one is refused or null), every field a float64
        table = pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(raw)[start:end]),
            read_options=pacsv.ReadOptions(column_names=cols, block_size=1 << 22),
            parse_options=pacsv.ParseOptions(
                delimiter="\t", quote_char=False, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(cols, pa.float64()),
                decimal_point="," if comma else ".",
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if trailing and table.column(tabs).null_count != table.num_rows:
        return None  # a value under the trailing separator: a name would be missing
    return _finite(names, table.columns[: len(names)])


def _rows_of_one_column(raw: bytes | mmap.mmap, start: int, end: int) -> int:
    """Rows of a one-column table as pyarrow splits them (CR, LF and CRLF end a row)."""
    body = raw[start:end]
    return body.count(b"\n") + body.count(b"\r") - body.count(b"\r\n") + 1


def _finite(names: list[str], columns: list) -> dict[str, np.ndarray] | None:
    """name -> float64 array, or None when a value is missing or not finite."""
    out: dict[str, np.ndarray] = {}
    for name, col in zip(names, columns, strict=True):
        if col.null_count:
            return None
        v = col.to_numpy() if col.num_chunks == 1 else col.combine_chunks().to_numpy()
        if not np.isfinite(v).all():
            return None
        out[name] = v
    return out


def _slow_arrays(path: Path, names: list[str], body: bytes, nhead: int) -> np.ndarray:
    """The line-by-line read (pandas' C parser on decoded lines): the path that names the
    line and what is wrong when the table is not clean."""
    data_lines = body.decode("latin-1").split("\n")
    _check_column_count(path, names, data_lines, nhead)
    return _numbers(path, names, data_lines, nhead + 1)


def _map(path: Path) -> bytes | mmap.mmap:
    """The file's bytes, memory-mapped read-only (no copy of a large file)."""
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                return b""
            try:
                return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):  # a file system without mmap
                return fh.read()
    except OSError as err:
        raise InputError(f"cannot read file ({err.strerror})", path=path) from None


@dataclass(frozen=True)
class MptTable:
    """One parsed export: EC-Lab-named columns (vendor units; ``time/s`` in s from the
    acquisition start), the header text, the first data line's number and the
    acquisition start (Unix s, file clock taken as UTC) or None."""

    columns: dict[str, np.ndarray]
    header: str
    first_line: int
    start_unix: float | None


def parse_mpt(path: str | Path) -> tuple[dict[str, np.ndarray], str, int]:
    """Read an .mpt file into EC-Lab-named columns (vendor units), header text, first data line."""
    t = parse_table(path)
    return t.columns, t.header, t.first_line


def parse_table(path: str | Path) -> MptTable:
    """Read an .mpt file (see :class:`MptTable`)."""
    path = Path(path)
    raw = _map(path)
    if raw[:3] == BOM:  # an editor's byte-order mark (rare: the copy is fine)
        raw = raw[3:]
    if not raw:
        raise _err(path, "file is empty")
    nhead = _header_lines(path, raw, _head(raw, 2))
    start = _data_start(path, raw, nhead)
    lines = _head(raw, nhead)
    names = _column_names(path, lines[nhead - 1], nhead)
    header = "\n".join(ln.rstrip("\r") for ln in lines)
    first_line = nhead + 1
    end = _data_end(raw, start)
    if end == start:
        raise _err(path, "no data rows after the column line", first_line)
    start_unix = _start_time(header, path)
    if stamped_time(raw, start, end, names):
        cols, start_unix = _stamped_columns(path, names, raw[start:end], nhead, start_unix)
        return MptTable(_named_columns(path, cols, first_line), header, first_line, start_unix)
    fast = _fast_columns(raw, start, end, names)
    if fast is None:
        arr = _slow_arrays(path, names, raw[start:end], nhead)
        fast = {name: arr[:, j] for j, name in enumerate(names)}
    return MptTable(_named_columns(path, fast, first_line), header, first_line, start_unix)


def _stamped_columns(
    path: Path, names: list[str], body: bytes, nhead: int, start_unix: float | None
) -> tuple[dict[str, np.ndarray], float]:
    """The table of an export whose ``time/s`` holds dates (see :mod:`.mpt_stamps`):
    the other columns as usual, ``time/s`` in s from the acquisition start (the
    header's, else the first row's), and that start."""
    data_lines = body.decode("latin-1").split("\n")
    _check_column_count(path, names, data_lines, nhead)
    j = names.index("time/s")
    texts, numeric = split_time_field(data_lines, j)
    arr = _numbers(path, names, numeric, nhead + 1)
    cols = {name: arr[:, k] for k, name in enumerate(names)}
    t, origin = stamp_seconds(path, WHAT, texts, nhead + 1, start_unix)
    cols["time/s"] = t
    return cols, origin


def _technique(path: Path, header_lines: list[str]) -> str:
    """Short name of the technique titled on header line 4; an unknown title is refused
    (a header-less export has no title and is read as "unknown")."""
    if len(header_lines) <= 3 or not header_lines[0].startswith(("EC-Lab", "BT-Lab")):
        return "unknown"
    title = header_lines[3].strip()
    if title not in TECHNIQUE_TITLES:
        raise _err(
            path,
            f"unknown technique {title!r} (known: {', '.join(sorted(TECHNIQUE_TITLES))}); "
            "refusing to guess what the columns mean",
            4,
        )
    return TECHNIQUE_TITLES[title]


def read(path: str | Path) -> Imported:
    """Read an .mpt export: cycling rows in BDF names/SI, impedance rows split into spectra."""
    path = Path(path)
    parsed = parse_table(path)
    cols, header, first_line = parsed.columns, parsed.header, parsed.first_line
    hl = header.split("\n")
    technique = _technique(path, hl)
    table = settings_table(hl)
    imp = table_to_imported(
        path,
        cols,
        start_unix=parsed.start_unix,
        technique=technique,
        header=header,
        row_word="line",
        first_row=first_line,
        step_techniques=_step_techniques(table),
    )
    amps = _amplitudes(table)
    for sp in imp["spectra"]:
        a = amps.get(sp.get("vendor_step_index", 0), amps.get(0) if len(amps) == 1 else None)
        if a is not None:
            sp["amplitude"] = a
    return imp
