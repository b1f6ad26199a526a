"""Neware BTSDA exports saved as an Excel workbook (``.xlsx``).

BTSDA 8 writes one workbook per channel with the sheets ``unit`` and ``test`` (the
channel, the test's settings), ``cycle`` and ``step`` (per-cycle and per-step summaries)
and ``record``: one row per record with the columns of the flat CSV export (``DataPoint,
Step Type, Time, Total Time, Current(A), Voltage(V), Capacity(Ah), ..., Date``; often
without ``Cycle Index``/``Step Index``). A record sheet too long for one sheet continues
in ``record1``, ``record2`` ... (same header, read in workbook order).

The record rows are read by the CSV reader (:mod:`neware_csv`: units from the headers,
the sign checked against the step type, steps from the step type and the step time when
the export has no step numbers), row ``n`` of the sheet being its line ``n``. Cells
formatted as durations or times become ``h:mm:ss.ffffff`` and dates
``YYYY-mm-dd HH:MM:SS.ffffff``; a plain number in a duration column (days or seconds?) is
refused, never guessed, and so is a date-time there (a duration over 24 h under a
time-of-day format: Excel's 1900 leap day makes the day count ambiguous). The ``unit`` and ``test`` sheets are kept as the header text.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cyclerflow.errors import InputError
from cyclerflow.importers import neware_csv, xlsx
from cyclerflow.importers.common import Imported
from cyclerflow.importers.textfmt import fail

FORMAT = "neware-xlsx"
EXTENSIONS = (".xlsx",)
SIGNATURE = "an .xlsx workbook with a 'record' sheet (Neware BTSDA's Excel export)"
_RECORD = re.compile(r"^record(?:[ _-]?\d+)?$", re.IGNORECASE)
#: sheets kept as header text (the others are large summaries or the records)
META_SHEETS = ("unit", "test")
DURATIONS = ("Time", "Total Time", "Cumulative Time", "Step Time")


def sniff(path: Path, head: bytes) -> bool:
    """An .xlsx workbook with a sheet named ``record``."""
    if not head.startswith(b"PK") or Path(path).suffix.lower() not in (".xlsx", ".xlsm"):
        return False
    return any(_RECORD.match(n) for n in xlsx.sheet_names(path))


def _duration_text(v: object) -> str | None:
    """``h:mm:ss.ffffff`` of a duration cell; None when ``v`` is not one."""
    if isinstance(v, dt.timedelta):
        us = round(v.total_seconds() * 1e6)
    elif isinstance(v, dt.time):
        us = ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond
    else:
        return None
    s, frac = divmod(us, 1_000_000)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}.{frac:06d}"


def _cell_text(path: Path, v: object, duration: bool, name: str, where: str) -> str:
    """The CSV text of one cell (see the module docstring)."""
    if v is None:
        return ""
    if duration:
        text = _duration_text(v)
        if text is not None:
            return text
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            raise fail(
                FORMAT,
                path,
                f"column {name!r} holds the number {v!r}, not a duration text or cell: "
                "days or seconds? refusing to guess",
                where,
            )
        if isinstance(v, dt.datetime):  # a time-of-day format on a duration over 24 h
            raise fail(
                FORMAT,
                path,
                f"column {name!r} holds the date-time {v} where a duration belongs: the "
                "workbook formats durations as a time of day (hh:mm:ss), which Excel "
                "cannot hold past 24 h without a date (and its 1900 leap day makes that "
                "date ambiguous); format the column as [h]:mm:ss or export CSV",
                where,
            )
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, float):
        return repr(v)
    return str(v).strip()


@dataclass
class _Records:
    """The record sheets as CSV fields: ``header``, ``body`` (one list per record row),
    ``where`` (sheet and row of each body row) and ``meta`` (header text lines)."""

    header: list[str] | None = None
    body: list[list[str]] = field(default_factory=list)
    where: list[str] = field(default_factory=list)
    meta: list[str] = field(default_factory=list)

    def add_sheet(
        self, path: Path, title: str, names: list[str], rows: Iterator[Sequence[object]]
    ) -> None:
        """The rows of one record sheet (header row ``names``), from row 2."""
        bare = [neware_csv._UNIT.sub(lambda m: m["name"], n).strip() for n in names]
        is_duration = [b in DURATIONS for b in bare]
        for k, r in enumerate(rows, 2):
            cells = list(r)[: len(names)]
            if not any(c is not None and c != "" for c in cells):
                continue
            cells += [None] * (len(names) - len(cells))
            where = f"sheet {title!r} row {k}"
            self.body.append(
                [
                    _cell_text(path, v, d, n, where)
                    for v, d, n in zip(cells, is_duration, names, strict=True)
                ]
            )
            self.where.append(where)


def _records(path: Path) -> _Records:
    """Every record sheet's rows as text, and the metadata sheets as header lines."""
    sheets, close = xlsx.open_workbook(path, FORMAT)
    rec = _Records()
    try:
        for title, rows in sheets:
            if title.strip().lower() in META_SHEETS:
                rec.meta += xlsx.sheet_text(title, rows)
            if not _RECORD.match(title.strip()):
                continue
            first = next(rows, None)
            if first is None:
                continue
            names = ["" if h is None else str(h).strip() for h in first]
            while names and names[-1] == "":
                names.pop()
            if rec.header is not None and names != rec.header:
                raise fail(
                    FORMAT,
                    path,
                    "other columns than the first record sheet",
                    f"sheet {title!r} row 1",
                )
            rec.header = names
            rec.add_sheet(path, title, names, rows)
    finally:
        close()
    if rec.header is None or not rec.body:
        raise fail(FORMAT, path, "no record rows (sheet 'record' is missing or empty)")
    return rec


def read(path: str | Path) -> Imported:
    """Read the record sheet(s) of a BTSDA workbook into BDF columns (SI, current > 0
    charging), through the CSV reader's checks."""
    path = Path(path)
    rec = _records(path)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(rec.header)
    w.writerows(rec.body)
    raw = memoryview(buf.getvalue().encode("utf-8"))
    try:
        out = neware_csv._assemble(path, neware_csv._PandasSource(path, raw))
    except InputError as err:
        raise fail(FORMAT, path, _bare(err), _sheet_place(err.where, rec)) from None
    out["header"] = "\n".join([*rec.meta, "[record] " + "\t".join(rec.header or [])])
    return out


def _bare(err: InputError) -> str:
    return err.bare_message.removeprefix(f"{neware_csv.WHAT}: ")


def _sheet_place(where: str | None, rec: _Records) -> str | None:
    """The sheet and row of the CSV reader's ``line n`` (line 1: the header row)."""
    m = re.fullmatch(r"line (\d+)", where or "")
    if m is None:
        return where
    n = int(m.group(1))
    return "record sheet row 1" if n < 2 or n - 2 >= len(rec.where) else rec.where[n - 2]
