"""Gamry Framework ``.DTA`` files (EXPLAIN text format): EIS, CV, chrono and OCV tables.

Layout: ``EXPLAIN`` on line 1, ``TAG <tab> EISPOT`` (the technique), then one setting
per line ``KEY <tab> TYPE <tab> value ...`` (``NOTES`` is followed by as many note lines
as its count says), and data tables ``NAME <tab> TABLE [<tab> declared points]`` followed
by a line of column names, a line of units and the rows (indented by a tab). The declared
point count is not trusted: a table ends at the first line that is not indented.

- ``ZCURVE`` tables become spectra (Freq, Zreal, Zimag; Gamry prints Zimag signed,
  negative = capacitive), with the technique (EISPOT -> PEIS, EISGALV -> GEIS), the AC
  amplitude (VAC mV rms -> V, IACREQ mA rms -> A) and DC level as attributes.
- Tables with time and ``Vf`` (``CURVE``, ``CURVE1``..., ``OCVCURVE``) become cycling
  rows: test_time from ``T``, voltage from ``Vf``, current from ``Im`` (0 for open-circuit
  tables). Gamry's default convention (``CONVENTION`` 1) is anodic current positive,
  i.e. charging for a cathode on the working lead; ``CONVENTION`` 0 flips the sign.
  An ``OCVCURVE`` measured before the experiment comes first; the experiment's tables
  are shifted by the end time of that OCV so time keeps increasing.
- ``cycle_count`` is the curve number (CURVE3 -> 3; 0 for OCV); ``step_index`` numbers
  the tables in file order.

``DATE``/``TIME`` (local time of the instrument PC, no zone) give ``unix_time_second``
(taken as UTC).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np

from cyclerflow.errors import InputError
from cyclerflow.importers.common import Imported, naive_to_unix, name_temperature
from cyclerflow.importers.guarded import MAX_WHOLE
from cyclerflow.importers.textfmt import BOM, fail, open_raw, parse_block, read_text
from cyclerflow.importers.textspan import find, is_ascii

FORMAT = "gamry-dta"
EXTENSIONS = (".dta",)
#: what :func:`sniff` looks for (said when no reader fits)
SIGNATURE = "'EXPLAIN' on line 1 and a 'TAG' line on line 2"

_TECHNIQUES = {"EISPOT": "PEIS", "EISGALV": "GEIS", "GALVEIS": "GEIS", "EISMON": "PEIS"}
_TIME = ("T", "Time")


def sniff(path: Path, head: bytes) -> bool:
    """``EXPLAIN`` on line 1 and a ``TAG`` line on line 2."""
    text = head.decode("latin-1").lstrip("\ufeff\xef\xbb\xbf")
    lines = text.splitlines()
    return len(lines) >= 2 and lines[0].strip() == "EXPLAIN" and lines[1].startswith("TAG")


def _settings(lines: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ln in lines:
        if ln[:1] in ("\t", " ") or "\t" not in ln:
            continue
        parts = ln.split("\t")
        out.setdefault(parts[0].strip(), [p.strip() for p in parts[1:]])
    return out


def _num(settings: dict[str, list[str]], key: str, index: int = 1) -> float | None:
    """A numeric setting; a decimal comma (``5,00000E-001``) is read as a point."""
    try:
        return float(settings[key][index].replace(",", "."))
    except (KeyError, IndexError, ValueError):
        return None


#: Gamry Framework script tags whose tables this reader understands
KNOWN_TAGS = (
    "EISPOT",
    "EISGALV",
    "EISMON",
    "CV",
    "LSV",
    "CHRONOA",
    "CHRONOC",
    "CHRONOP",
    "CORPOT",
    "OCP",
    "LPR",
    "GALVANOSTATIC",
    "POTENTIOSTATIC",
    # PWR800 battery scripts: one CURVE table (T, Vf, Im) per charge/discharge step or
    # voltage reading (the cycle summary PWR800_CYCLICCHARGEDISCHARGE has no time series
    # and stays refused)
    "PWR800_CHARGE",
    "PWR800_DISCHARGE",
    "PWR800_READVOLTAGE",
    "GALVEIS",
)
_COMMA = re.compile(r"\d,\d")
_POINT = re.compile(r"\d\.\d")


def _rows_text(path: Path, name: str, first: int, rows: str) -> str:
    """Rows of a table with a decimal comma turned into a point (tab-separated tables
    never use the comma as a separator); a table mixing both is refused."""
    if "," not in rows or not _COMMA.search(rows):  # the plain find is fast; regex only if needed
        return rows
    if _POINT.search(rows):
        m = next(i for i, r in enumerate(rows.split("\n")) if _POINT.search(r))
        raise fail(
            FORMAT,
            path,
            f"table {name} mixes decimal commas and decimal points: refusing to guess",
            f"line {first + m}",
        )
    return rows.replace(",", ".")


def _start(settings: dict[str, list[str]]) -> float | None:
    try:
        d = settings["DATE"][1]
        t = settings["TIME"][1]
    except (KeyError, IndexError):
        return None
    for day in ("%m/%d/%Y", "%d.%m.%Y", "%Y-%m-%d"):
        for fmtstr in (f"{day} %H:%M:%S", f"{day} %H:%M:%S.%f"):  # .%f: pygamry's TIME
            try:
                return naive_to_unix(dt.datetime.strptime(f"{d} {t}", fmtstr))
            except ValueError:
                continue
    return None


#: the line end before the first line after a table body (not indented, or blank); the
#: leading literal line feed lets the regex engine skip from line end to line end
_BODY_END = re.compile(r"\n(?:[^\t \r\n]|[\t \r]*(?:\n|\Z))")


def _next_line(text: str, pos: int) -> tuple[str, int]:
    """(line starting at ``pos`` without its line end, position of the next line)."""
    nl = text.find("\n", pos)
    end = len(text) if nl < 0 else nl
    return text[pos:end].rstrip("\r"), end + 1


def _table_at(
    path: Path, text: str, pos: int, key: str
) -> tuple[tuple[str, list[str], int, str], list[str], int]:
    """The table whose ``NAME<tab>TABLE`` line starts at ``pos``: ((name, column names,
    first data line no., rows as one string), its three header lines, position after it).
    The body is found in the text (no per-row Python)."""
    ln, p1 = _next_line(text, pos)
    if p1 >= len(text):
        line = text.count("\n", 0, pos) + 1
        raise fail(
            FORMAT, path, f"table {key} is cut off before its column and unit lines", f"line {line}"
        )
    l1, p2 = _next_line(text, p1)
    if p2 >= len(text):
        line = text.count("\n", 0, pos) + 1
        raise fail(
            FORMAT, path, f"table {key} is cut off before its column and unit lines", f"line {line}"
        )
    l2, start = _next_line(text, p2)
    names = [x.strip() for x in l1.split("\t")]
    if names and names[0] == "":
        names = names[1:]
    m = _BODY_END.search(text, start - 1) if start < len(text) else None  # text[start-1] is \n
    end = len(text) if m is None else m.start() + 1
    stop = end
    while stop > start and text[stop - 1] in "\r\n":
        stop -= 1  # one slice, no second copy by rstrip
    rows = text[start:stop] if start < len(text) else ""
    first = text.count("\n", 0, start) + 1
    return (key, names, first, rows), [ln, l1, l2], end


def _fields(ln: str) -> tuple[list[str], str, str, bool]:
    """A header line's tab fields, its key, its kind (``TABLE``, ``NOTES`` ...) and
    whether it is indented (a continuation, not a new entry)."""
    parts = ln.split("\t")
    kind = parts[1].strip() if len(parts) > 1 else ""
    return parts, parts[0].strip(), kind, ln[:1] in ("\t", " ")


def _notes_count(parts: list[str]) -> int:
    """The line count a ``NOTES`` entry declares (0 when it declares none)."""
    try:
        return int(parts[2])
    except (IndexError, ValueError):
        return 0


def _tables(path: Path, text: str) -> tuple[list[tuple[str, list[str], int, str]], list[str]]:
    """[(name, column names, first data line no., data rows as one string)], header lines."""
    tables = []
    header: list[str] = []
    pos = 0
    while pos < len(text):
        ln, nxt = _next_line(text, pos)
        parts, key, kind, indented = _fields(ln)
        if kind == "NOTES" and not indented:
            header.append(ln)
            count = _notes_count(parts)
            pos = nxt
            for _ in range(count):
                if pos >= len(text):
                    break
                note, pos = _next_line(text, pos)
                header.append(note)
            continue
        if kind == "TABLE" and not indented:
            table, lines, pos = _table_at(path, text, pos, key)
            tables.append(table)
            header.extend(lines)
            continue
        header.append(ln)
        pos = nxt
    return tables, header


class _Fallback(Exception):
    """The bytes path does not take this file on: read it as text."""


_BODY_END_B = re.compile(rb"\n(?:[^\t \r\n]|[\t \r]*(?:\n|\Z))")
_COMMA_B = re.compile(rb"\d,\d")
_POINT_B = re.compile(rb"\d\.\d")


class _Scan:
    """A file's bytes read line by line as the text path would decode them (UTF-8, or
    Latin-1 once a line is not UTF-8: the whole file then is), and line numbers of
    byte offsets counted forward from the last one asked for."""

    def __init__(self, view: memoryview, encoding: str = "utf-8") -> None:
        self.view, self.encoding, self.pos, self.line = view, encoding, 0, 1
        #: a line beyond ASCII: the rows must be ASCII for the decoding to be the text's
        self.non_ascii = False

    def next_line(self, pos: int) -> tuple[str, int]:
        """:func:`_next_line` on bytes; a line not UTF-8 raises :class:`_Latin1`."""
        nl = find(self.view, b"\n", pos)
        end = len(self.view) if nl < 0 else nl
        raw = bytes(self.view[pos:end])
        if not raw.isascii():
            self.non_ascii = True
        try:
            line = raw.decode(self.encoding)
        except UnicodeDecodeError:
            raise _Latin1 from None
        return line.rstrip("\r"), end + 1

    def at(self, pos: int) -> int:
        """1-based line number of the line holding byte ``pos`` (``pos`` never goes back)."""
        chunk = np.frombuffer(self.view[self.pos : pos], np.uint8)
        self.line += int(np.count_nonzero(chunk == 10))
        self.pos = pos
        return self.line


class _Latin1(Exception):
    """A line is not UTF-8: the file is read as Latin-1."""


def _rows_bytes(view: memoryview, start: int, stop: int) -> bytes | memoryview:
    """Rows of a table as bytes, a decimal comma turned into a point (a mixed or
    non-ASCII table with commas goes to the text path, which decides)."""
    rows = view[start:stop]
    if find(rows, b",") < 0:
        return rows
    raw = bytes(rows)
    if not raw.isascii():
        raise _Fallback
    if not _COMMA_B.search(raw):
        return rows
    if _POINT_B.search(raw):
        raise _Fallback
    return raw.replace(b",", b".")


def _table_b(
    scan: _Scan, pos: int, key: str
) -> tuple[tuple[str, list[str], int, bytes | memoryview], list[str], int]:
    """:func:`_table_at` on bytes: the body found in place, the rows not copied."""
    view = scan.view
    ln, p1 = scan.next_line(pos)
    if p1 >= len(view):
        raise _Fallback
    l1, p2 = scan.next_line(p1)
    if p2 >= len(view):
        raise _Fallback
    l2, start = scan.next_line(p2)
    names = [x.strip() for x in l1.split("\t")]
    if names and names[0] == "":
        names = names[1:]
    m = _BODY_END_B.search(view, start - 1) if start < len(view) else None
    end = len(view) if m is None else m.start() + 1
    stop = end
    while stop > start and view[stop - 1] in (10, 13):
        stop -= 1
    rows = _rows_bytes(view, start, stop) if start < len(view) else b""
    first = scan.at(min(start, len(view)))
    return (key, names, first, rows), [ln, l1, l2], end


def _notes_b(scan: _Scan, pos: int, count: int, header: list[str]) -> int:
    """Skip the ``count`` note lines after ``NOTES`` (kept in ``header``)."""
    for _ in range(count):
        if pos >= len(scan.view):
            break
        note, pos = scan.next_line(pos)
        header.append(note)
    return pos


def _tables_bytes(path: Path, view: memoryview) -> tuple[str, list, list[str]] | None:
    """(technique tag, tables, header lines) as :func:`_open` and :func:`_tables` give
    them, from the bytes; None (or :class:`_Fallback`) when the text path must read it."""
    if view[:3] == BOM or find(view, b"\r\r\n") >= 0:
        return None
    tag = _tag_b(view)
    try:
        scan = _Scan(view)
        tables, header = _scan_tables(scan)
    except _Latin1:
        scan = _Scan(view, "latin-1")
        tables, header = _scan_tables(scan)
    if scan.non_ascii and not all(is_ascii(t[3]) for t in tables):
        return None  # rows beyond ASCII: their bytes are the text path's only if ASCII
    return tag, tables, header


def _scan_tables(scan: _Scan) -> tuple[list, list[str]]:
    """:func:`_tables` on bytes."""
    tables: list = []
    header: list[str] = []
    pos = 0
    while pos < len(scan.view):
        ln, nxt = scan.next_line(pos)
        parts, key, kind, indented = _fields(ln)
        if kind == "NOTES" and not indented:
            header.append(ln)
            count = _notes_count(parts)
            pos = _notes_b(scan, nxt, count, header)
        elif kind == "TABLE" and not indented:
            table, three, pos = _table_b(scan, pos, key)
            tables.append(table)
            header.extend(three)
        else:
            header.append(ln)
            pos = nxt
    return tables, header


def _tag_b(view: memoryview) -> str:
    """The known technique TAG of lines 1-2 (else :class:`_Fallback`: the text path
    names the problem)."""
    second = find(view, b"\n", find(view, b"\n", 0, 2048) + 1, 2048)
    head = bytes(view[: max(second, 0) + 1])
    if second < 0 or not head.isascii():
        raise _Fallback
    lines = head.decode("ascii").splitlines()[:2]
    if lines[0].strip() != "EXPLAIN" or len(lines) < 2 or not lines[1].startswith("TAG"):
        raise _Fallback
    tag = lines[1].split("\t")[1].strip() if "\t" in lines[1] else ""
    if tag not in KNOWN_TAGS:
        raise _Fallback
    return tag


def _col(names: list[str], *candidates: str) -> int | None:
    for c in candidates:
        if c in names:
            return names.index(c)
    return None


def _open(path: Path) -> tuple[str, str]:
    """Text of the file and its technique tag; not EXPLAIN, no TAG, unknown TAG fail."""
    text = read_text(path, FORMAT)
    for bom in ("\ufeff", "\xef\xbb\xbf"):  # a BOM an editor added (UTF-8 or Latin-1 read)
        text = text.removeprefix(bom)
    lines = text[:4096].splitlines()[:2] or [""]
    if lines[0].strip() != "EXPLAIN":
        raise fail(
            FORMAT,
            path,
            f"not a Gamry EXPLAIN file (line 1 reads {lines[0][:60]!r}, expected 'EXPLAIN')",
            "line 1",
        )
    if len(lines) < 2 or not lines[1].startswith("TAG"):
        raise fail(FORMAT, path, "no 'TAG' line naming the technique", "line 2")
    tag = lines[1].split("\t")[1].strip() if "\t" in lines[1] else ""
    if tag not in KNOWN_TAGS:
        raise fail(
            FORMAT,
            path,
            f"unknown technique TAG {tag!r} (known: {', '.join(KNOWN_TAGS)}): "
            "its tables may not mean what their names suggest",
            "line 2",
        )
    return text, tag


def _table(
    path: Path,
    name: str,
    names: list[str],
    first: int,
    rows: str | bytes | memoryview,
    want: dict[str, int],
) -> dict[str, np.ndarray]:
    """The wanted columns of one table; every row must have one value per column name.
    Rows as bytes come from :func:`_tables_bytes` (decimal commas already turned)."""
    if isinstance(rows, str):
        body: bytes | memoryview = _rows_text(path, name, first, rows).encode("utf-8")
    else:
        body = rows
    return parse_block(path, FORMAT, body, first, want, n_fields=len(names))


def _spectrum(
    path: Path, table: tuple[str, list[str], int, str], tag: str, settings, t0: float | None
) -> dict:
    """One ZCURVE table as a spectrum with technique, amplitude and DC level."""
    name, names, first, rows = table
    want = {"Freq": names.index("Freq"), "Zreal": names.index("Zreal")}
    want["Zimag"] = names.index("Zimag")
    it = _col(names, *_TIME)
    if it is not None:
        want["T"] = it
    c = _table(path, name, names, first, rows, want)
    sp = {
        "frequency_hertz": c["Freq"],
        "real_impedance_ohm": c["Zreal"],
        "imaginary_impedance_ohm": c["Zimag"],
        "technique": _TECHNIQUES.get(tag, tag or "PEIS"),
        "table": name,
    }
    galv = _TECHNIQUES.get(tag) == "GEIS"
    amp, dc = (
        (_num(settings, "IACREQ"), _num(settings, "IDC"))
        if galv
        else (_num(settings, "VAC"), _num(settings, "VDC"))
    )
    sp["amplitude"] = None if amp is None else amp * 1e-3
    sp["dc_level"] = dc
    if not galv and "VDC" in settings and len(settings["VDC"]) > 2:
        sp["dc_level_vs_open_circuit"] = int(settings["VDC"][2] == "T")
    sp["amplitude_kind"] = "rms"
    if t0 is not None:
        sp["unix_time_second"] = t0 + (float(c["T"][0]) if "T" in c else 0.0)
    return {k: v for k, v in sp.items() if v is not None}


def _curve(
    path: Path, table: tuple[str, list[str], int, str], order: int, sign: float
) -> dict | None:
    """A table with time and Vf as cycling rows (None for tables we do not use)."""
    name, names, first, rows = table
    it, iv = _col(names, *_TIME), _col(names, "Vf")
    if it is None or iv is None:
        return None  # a table we do not use (kept in the header text)
    ii = _col(names, "Im")
    want = {"T": it, "Vf": iv, **({"Im": ii} if ii is not None else {})}
    c = _table(path, name, names, first, rows, want)
    m = re.match(r"^CURVE(\d*)$", name)
    ocv = name.startswith("OCV")
    cycle = 0 if ocv else (int(m.group(1)) if m and m.group(1) else 1)
    if cycle > MAX_WHOLE:  # the table's name line: CURVE<n>, two lines above its columns
        raise fail(FORMAT, path, f"curve number of {name[:40]!r} is too large", f"line {first - 3}")
    n = len(c["T"])
    return {
        "test_time_second": c["T"],
        "voltage_volt": c["Vf"],
        "current_ampere": sign * c["Im"] if "Im" in c else np.zeros(n),
        "cycle_count": np.full(n, cycle, "i8"),
        "step_index": np.full(n, order, "i8"),
        "_ocv": ocv,
        "_line": first,
    }


def _join_curves(path: Path, parts: list[dict], start: float | None) -> dict[str, np.ndarray]:
    """Curve tables in file order; the experiment continues after a preceding OCV."""
    if not parts:
        return {}
    offset = 0.0
    pieces = []
    for p in parts:
        t = p["test_time_second"] + offset
        if p["_ocv"]:
            offset = float(t[-1])
        pieces.append({**p, "test_time_second": t})
    keys = ("test_time_second", "voltage_volt", "current_ampere", "cycle_count", "step_index")
    cycling = {k: _joined([p[k] for p in pieces]) for k in keys}
    back = np.flatnonzero(np.diff(cycling["test_time_second"]) < 0)
    if len(back):
        k = int(back[0]) + 1  # locate the line of the offending row
        for p in pieces:
            if k < len(p["test_time_second"]):
                break
            k -= len(p["test_time_second"])
        raise fail(FORMAT, path, "time goes backwards", f"line {p['_line'] + k}")
    if start is not None:
        cycling["unix_time_second"] = start + cycling["test_time_second"]
    return cycling


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    """The arrays end to end; a single owned, writable, contiguous array is not copied."""
    a = arrays[0]
    if len(arrays) == 1 and a.flags.owndata and a.flags.writeable and a.flags.c_contiguous:
        return a
    return np.concatenate(arrays)


def read(path: str | Path) -> Imported:
    """Read a Gamry .DTA: spectra from ZCURVE tables, cycling rows from curve tables.

    The file is read as bytes (only the settings lines decoded, the rows handed to
    pyarrow in place); a file this fast path does not take on (non-ASCII settings,
    ``CR CR LF`` line ends, a second BOM) or one that fails is read again as text by
    :func:`_read_text`, which gives the exact result or error.
    """
    path = Path(path)
    try:
        with open_raw(path, FORMAT) as view:
            found = _tables_bytes(path, view)
            if found is not None:
                return _assemble(path, *found, None)
    except (InputError, _Fallback):
        pass
    return _read_text(path)


def _read_text(path: Path) -> Imported:
    """The whole file decoded as text (every file, and the exact errors)."""
    text, tag = _open(path)
    tables, header = _tables(path, text)
    return _assemble(path, tag, tables, header, text)


def _assemble(
    path: Path,
    tag: str,
    tables: list[tuple[str, list[str], int, str | bytes | memoryview]],
    header: list[str],
    text: str | None,
) -> Imported:
    """Spectra and cycling rows of the tables; ``text`` None: the bytes path (an error
    is raised as :class:`_Fallback` for the text path to name)."""
    settings = _settings(header)
    start = _start(settings)
    sign = -1.0 if _num(settings, "CONVENTION") == 0 else 1.0
    spectra: list[dict] = []
    curves: list[dict] = []
    ocv_end = 0.0  # experiment tables start after a preceding OCV measurement
    for order, table in enumerate(tables, start=1):
        name, names, _, rows = table
        if not rows:
            continue
        if all(x in names for x in ("Freq", "Zreal", "Zimag")):
            t0 = None if start is None else start + ocv_end
            spectra.append(_spectrum(path, table, tag, settings, t0))
            continue
        part = _curve(path, table, order, sign)
        if part is not None:
            if part["_ocv"]:
                ocv_end += float(part["test_time_second"][-1])
            curves.append(part)
    if not spectra and not curves:
        if text is None:
            raise _Fallback
        raise fail(
            FORMAT,
            path,
            f"no data table with rows (technique {tag or '?'}): truncated or unsupported file",
            f"line {text.count(chr(10)) + 1}",
        )
    cycling = _join_curves(path, curves, start)
    data: Imported = {"cycling": cycling, "spectra": spectra, "header": "\n".join(header)}
    if start is None and "DATE" in settings:
        data["warnings"] = [_date_warning(settings)]
    return name_temperature(_mark_aborted(data, settings), path)


def _date_warning(settings: dict[str, list[str]]) -> str:
    """What to say when DATE/TIME are present but not a date this reader can be sure of
    (e.g. ``10-2-2020``: October 2 or 10 February? The PC's short-date format is not
    written in the file): no Unix time rather than a guessed one."""
    d = (settings.get("DATE", []) + ["", ""])[1]
    t = (settings.get("TIME", []) + ["", ""])[1]
    return (
        f"gamry-dta: DATE {d!r} TIME {t!r} is not month/day/year, day.month.year or "
        "year-month-day: the rows get no Unix time (test time only)"
    )


def _mark_aborted(data: Imported, settings: dict[str, list[str]]) -> Imported:
    """``EXPERIMENTABORTED TOGGLE T`` (written after the tables when the run was stopped):
    the tables hold only the points measured before; say so, and flag the spectra."""
    flag = settings.get("EXPERIMENTABORTED", [])
    if len(flag) > 1 and flag[1] == "T":
        for sp in data["spectra"]:
            sp["experiment_aborted"] = 1
        data.setdefault("warnings", []).append(
            "gamry-dta: the experiment was aborted (EXPERIMENTABORTED T): "
            "its tables hold only the points measured before the abort"
        )
    return data
