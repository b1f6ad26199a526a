"""Scribner ZPlot ``.z`` files (``ZPLOT2 ASCII``): one impedance sweep per file.

Layout: ``ZPLOT2 ASCII`` on line 1, ``Key: value`` header lines (``Date``, ``Time``,
``Experiment Type`` ...), a tab-separated column line ``Freq(Hz) Ampl Bias Time(Sec)
Z'(a) Z''(b) GD Err Range`` and the line ``End Comments``; then whitespace-separated
rows. ``Z''`` is signed (negative = capacitive). The header's ``Data Points`` count is
not trusted (rows are read to the end of the file). ``Ampl`` (V rms for a voltage-
controlled sweep, A for current control) and ``Bias`` of the first row become the
spectrum's ``amplitude`` and ``dc_level``. ``Date`` (MM-DD-YYYY) and ``Time`` give
``unix_time_second`` (local time taken as UTC).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from cyclerflow.importers.common import Imported, naive_to_unix, name_temperature
from cyclerflow.importers.textfmt import data_block, fail, head_lines, open_raw, parse_block
from cyclerflow.importers.textspan import first_line

FORMAT = "zplot"
EXTENSIONS = (".z",)
#: what :func:`sniff` looks for (said when no reader fits)
SIGNATURE = "'ZPLOT' at the start of the file"
#: line 1: ``ZPLOT2 ASCII`` or, in ZPlot for Windows' text export, ``"ZPlotW Data File: ..."``
_MAGIC = re.compile(rb'^(?:\xef\xbb\xbf)?"?ZPLOT', re.IGNORECASE)


def sniff(path: Path, head: bytes) -> bool:
    """Starts with ``ZPLOT2 ASCII`` or ``"ZPlotW Data File`` (any case, quoted or not)."""
    return bool(_MAGIC.match(head))


def _value(header: list[str], key: str) -> str | None:
    for ln in header:
        k, sep, v = ln.partition(":")
        if sep and k.strip().lower() == key.lower():
            return v.strip()
    return None


#: lines read as text to find the header (ZPlot headers are ~130 lines)
_HEAD = 1000
_NUM = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")


def _is_row(line: str) -> bool:
    """A data row: only numbers, separated by whitespace and/or commas."""
    fields = [x for x in re.split(r"[,\s]+", line.strip()) if x]
    return len(fields) >= 3 and all(_NUM.match(x) for x in fields)


def _column_line(path: Path, lines: list[str]) -> tuple[int, int]:
    """(index of the column line, index of the first data row).

    The header ends at ``End Comments``; files without that marker (some ZPlot versions
    and converters) end it at the column line, the rows starting at the first all-numeric
    line after it.
    """
    end = next((i for i, ln in enumerate(lines) if ln.strip() == "End Comments"), None)
    top = end if end is not None else len(lines)
    labels = next(
        (i for i in range(top - 1, -1, -1) if "Freq" in lines[i] and "Z'" in lines[i]), None
    )
    if labels is None:
        where = "before 'End Comments'" if end is not None else "(and no 'End Comments' line)"
        raise fail(
            FORMAT,
            path,
            f"no column line (Freq(Hz) ... Z'(a) Z''(b)) {where}: truncated file?",
            f"line {top}",
        )
    if end is not None:
        return labels, end + 1
    first = next((i for i in range(labels + 1, len(lines)) if lines[i].strip()), None)
    if first is None or not _is_row(lines[first]):
        raise fail(
            FORMAT,
            path,
            "no data rows after the column line (and no 'End Comments' line)",
            f"line {labels + 2}",
        )
    return labels, first


def _names(line: str) -> list[str]:
    """Column names: tab-separated, or (``ZPlotW`` text) one quoted space-separated line."""
    names = [x.strip() for x in line.split("\t") if x.strip()]
    if len(names) == 1:
        names = names[0].strip('"').split()
    return names


def read(path: str | Path) -> Imported:
    """Read a ZPlot .z file into one spectrum (signed imaginary part)."""
    path = Path(path)
    with open_raw(path, FORMAT) as raw:  # a view: the rows are not copied
        return _read_view(path, raw[3:] if raw[:3] == b"\xef\xbb\xbf" else raw)


def _read_view(path: Path, raw: memoryview) -> Imported:
    """One spectrum from the bytes of a ZPlot .z file (see :func:`read`)."""
    lines = head_lines(raw, _HEAD) or [""]  # the header; rows are parsed from the bytes
    if not _MAGIC.match(lines[0].encode("latin-1", "replace")):
        raise fail(
            FORMAT,
            path,
            f"not a ZPlot file (line 1 reads {lines[0][:40]!r}, expected 'ZPLOT2 ASCII')",
            "line 1",
        )
    labels_line, first = _column_line(path, lines)
    names = _names(lines[labels_line])
    try:
        cols = {
            "f": names.index("Freq(Hz)"),
            "re": names.index("Z'(a)"),
            "im": names.index("Z''(b)"),
        }
    except ValueError:
        raise fail(
            FORMAT,
            path,
            f"column line lacks Freq(Hz), Z'(a) or Z''(b): {names}",
            f"line {labels_line + 1}",
        ) from None
    extra = {
        k: names.index(n)
        for k, n in (("ampl", "Ampl"), ("bias", "Bias"), ("t", "Time(Sec)"))
        if n in names
    }
    rows = data_block(raw, first)
    if not rows:  # (data_block drops trailing blanks: rows are empty or end in text)
        raise fail(FORMAT, path, "no data rows after the header", f"line {first + 1}")
    sep = "," if b"," in first_line(rows) else None
    c = parse_block(path, FORMAT, rows, first + 1, {**cols, **extra}, sep=sep, n_fields=len(names))
    return name_temperature(_result(c, lines[:first]), path)


def _date_time(header: list[str]) -> tuple[str | None, str | None]:
    """``Date: MM-DD-YYYY`` and ``Time: hh:mm:ss``, on two lines or on one (``ZPlotW``)."""
    text = "\n".join(header)
    date = re.search(r"^\s*Date:\s*(\S+)", text, re.MULTILINE | re.IGNORECASE)
    time = re.search(r"^\s*Time:\s*(\S+)", text, re.MULTILINE | re.IGNORECASE) or re.search(
        r"^\s*Date:\s*\S+\s+Time:\s*(\S+)", text, re.MULTILINE | re.IGNORECASE
    )
    return (date.group(1) if date else None), (time.group(1) if time else None)


def _result(c: dict, header: list[str]) -> Imported:
    """The spectrum with technique, amplitude, DC level and start time from the header."""
    sweep = next((ln for ln in header if "sweep frequency" in ln.lower()), "")
    etype = _value(header, "Experiment Type") or sweep
    sp = {
        "frequency_hertz": c["f"],
        "real_impedance_ohm": c["re"],
        "imaginary_impedance_ohm": c["im"],
        "technique": "GEIS" if "control current" in etype.lower() else "PEIS",
    }
    if "ampl" in c:
        sp["amplitude"] = float(c["ampl"][0])
        sp["amplitude_kind"] = "rms"
    if "bias" in c:
        sp["dc_level"] = float(c["bias"][0])
    date, time = _date_time(header)
    if date and time:
        try:
            start = naive_to_unix(dt.datetime.strptime(f"{date} {time}", "%m-%d-%Y %H:%M:%S"))
            sp["unix_time_second"] = start + (float(c["t"][0]) if "t" in c else 0.0)
        except ValueError:
            pass
    return {"cycling": {}, "spectra": [sp], "header": "\n".join(header)}
