"""EC-Lab / BT-Lab text exports whose ``time/s`` column holds dates.

EC-Lab and BT-Lab can export the time as an absolute date (``11/20/2024 11:38:41.707``,
month first like the header's ``Acquisition started on``) under the same column name
``time/s``. Those rows are read as dates (file clock taken as UTC, like every reader
here) and turned into seconds from the acquisition start, so the rest of the reader
sees the usual ``time/s``.

Decision (issue 12 is silent): only the month-first order EC-Lab uses in its header is
accepted; a row that is not a valid month-first date is refused naming its line, and so
is a first row dated before the header's acquisition start (the two would disagree).
"""

from __future__ import annotations

import mmap
import re
from pathlib import Path

import numpy as np

from cyclerflow.errors import InputError
from cyclerflow.importers.guarded import check_clock, parse_dates

#: a date and time of day in the first row's ``time/s`` field
_LOOKS_LIKE_DATE = re.compile(r"^\s*\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}[ T]+\d{1,2}:\d\d")
#: the forms read (EC-Lab: month/day/year, fraction of s after a point or a comma); the
#: date separator is the PC's (``/``, or ``-`` as in a public EC-Lab 11.52 header
#: ``04-05-2024``, or ``.``), the order month first as in every EC-Lab header seen
FORMATS = ("%m/%d/%Y %H:%M:%S.%f", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M:%S,%f")
#: the first row may precede the header's start by this much (its rounding), s
_START_SLACK_S = 0.001


def stamped_time(raw: bytes | mmap.mmap, start: int, end: int, names: list[str]) -> bool:
    """True when the first data row (bytes ``raw[start:end]``) has a date in ``time/s``."""
    if "time/s" not in names:
        return False
    nl = raw.find(b"\n", start, end)
    first = raw[start : end if nl < 0 else nl].decode("latin-1").split("\t")
    j = names.index("time/s")
    return j < len(first) and _LOOKS_LIKE_DATE.match(first[j]) is not None


def split_time_field(lines: list[str], j: int) -> tuple[list[str], list[str]]:
    """(the ``j``-th tab-separated field of every line, the lines with that field set to
    ``0``): the dates go to :func:`stamp_seconds`, the rest to the number parser (which
    names a blank or short line)."""
    texts: list[str] = []
    numeric: list[str] = []
    for ln in lines:
        fields = ln.split("\t")
        if len(fields) > j:
            texts.append(fields[j])
            fields[j] = "0"
        else:
            texts.append("")
        numeric.append("\t".join(fields))
    return texts, numeric


def _form(text: str) -> str:
    """The one of :data:`FORMATS` the first row is written in (every row must be), with
    the first row's date separator."""
    day, _, clock = text.strip().partition(" ")
    sep = next((c for c in day if c in "/-."), "/")
    form = FORMATS[2] if "," in clock else FORMATS[0] if "." in clock else FORMATS[1]
    return form.replace("/", sep)


def stamp_seconds(
    path: Path, what: str, texts: list[str], first: int, start_unix: float | None
) -> tuple[np.ndarray, float]:
    """(s from the acquisition start, that start as Unix s) of the date texts on lines
    ``first``, ``first + 1`` ...; the start is the header's (``start_unix``) or else the
    first row's. Dates that are not month-first, step back or precede the start are
    refused naming the line. Seconds are rounded to the µs (the dates print ms)."""
    try:
        unix = parse_dates(path, what, "time/s", texts, first, formats=(_form(texts[0]),))
    except InputError as err:
        raise InputError(
            f"{err.bare_message} (expected month/day/year hh:mm:ss.fff as EC-Lab writes, "
            "with the first row's separators)",
            path=path,
            where=err.where,
        ) from None
    check_clock(path, what, "time/s", unix, first)
    origin = float(unix[0]) if start_unix is None else start_unix
    if unix[0] < origin - _START_SLACK_S:
        raise InputError(
            f"{what}: the first row's date in 'time/s' ({texts[0].strip()}) is before the "
            "header's acquisition start: the two disagree, refusing to guess the time origin",
            path=path,
            where=f"line {first}",
        )
    return np.round((unix - origin) * 1e6) / 1e6, origin
