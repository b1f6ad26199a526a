"""Maccor text exports (tab-separated), both header styles, and split files .001/.002;
Maccor's comma-separated (CSV) export; Maccor's AC impedance export (one spectrum).

Header styles:

- one line ``Today's Date MM/DD/YYYY  Date of Test: <tab>MM/DD/YYYY <tab> Filename: ...``
  then ``Rec# Cyc# Step Test (Min) Step (Min) Amp-hr Watt-hr Amps Volts State ES DPt Time``;
- key/value lines ``Name:``, ``Channel:``, ``Tester``, ``Procedure``, ``Description``,
  ``Started`` ..., a blank line, ``Rec Cycle P Cycle C Step TestTime StepTime Cap. [Ah]
  Ener. [Wh] Current [A] Voltage [V] Md ES DPT Time VAR1..``, a blank line, data.

Maccor prints the current unsigned and says what the channel does in the state column
(``C`` charge, ``D`` discharge, ``R`` rest, ``O``/``S`` other): current is made positive
on ``C`` rows and negative on ``D`` rows. The capacity and energy columns count within
each step; they go to ``charge_*`` on ``C`` rows and ``discharge_*`` on ``D`` rows (0
elsewhere). Test time without a unit in its name is taken in minutes (Maccor's default),
checked against the row timestamps when they span enough time. Timestamps without a date
(continuation files .002, .003 ...) take it from the header (``Date of Test`` /
``Started``), adding a day whenever the time of day wraps. Naive timestamps are taken
as UTC.

The CSV export (``Rec,Cycle C,Step,Test Time (sec),...,DPT Time,Temp 1``) is read the
same way with commas for tabs. Without a state column the current must be signed (see
:func:`_step_signs`): currents that are all >= 0 while a step's voltage falls are refused.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cyclerflow.errors import InputError
from cyclerflow.importers.common import (
    Imported,
    merge_imports,
    naive_to_unix,
    name_temperature,
    vendor_counts,
)
from cyclerflow.importers.guarded import check_clock, check_dates
from cyclerflow.importers.quoted import unquote
from cyclerflow.importers.textfmt import (
    as_int,
    data_block,
    fail,
    head_lines,
    open_raw,
    parse_block,
)
from cyclerflow.importers.textspan import first_line

FORMAT = "maccor"
EXTENSIONS = (".txt", ".csv") + tuple(f".{i:03d}" for i in range(1, 100))
#: what :func:`sniff` looks for (said when no reader fits)
SIGNATURE = (
    "a tab- or comma-separated Maccor column line (Rec#/Cyc#, Step, Test Time, Amps/Current, "
    "Volts/Voltage and State/Md, ES or DPt Time) in the first 60 lines, or 'MACCOR, INC.' "
    "+ 'AC Impedance' on line 1"
)
_EIS_MAGIC = re.compile(rb"^(?:\xef\xbb\xbf)?MACCOR, INC\.[^\r\n]*AC Impedance", re.I)

_ROLE = {
    "rec#": "record",
    "rec": "record",
    "cyc#": "cycle",
    "cycle c": "cycle",
    "cycle": "cycle",
    "step": "step",
    "test (min)": "test_time",
    "testtime": "test_time",
    "test time": "test_time",
    "amp-hr": "capacity",
    "cap.": "capacity",
    "capacity": "capacity",
    "watt-hr": "energy",
    "ener.": "energy",
    "energy": "energy",
    "amps": "current",
    "current": "current",
    "volts": "voltage",
    "voltage": "voltage",
    "state": "state",
    "md": "state",
    "dpt time": "dpt",
    "dpt": "dpt",
    "es": "es",
    "temp 1": "temperature",
}
#: milli-unit exports name the unit in the column (cellpy's Maccor model THREE)
_PREFIXED = {
    "mamps": ("current", "ma"),
    "mamp-hr": ("capacity", "mah"),
    "mwatt-hr": ("energy", "mwh"),
}
_AUX = re.compile(r"^aux\s*#\s*(\d+)$", re.I)
#: ``Nd hh:mm:ss.ssss`` durations (also shortened ``0d 00:00:5``) of newer Maccor exports
_DURATION = r"^\s*(?P<d>\d+)d\s+(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d+(?:\.\d*)?)\s*$"
_UNIT = re.compile(r"^(.*?)\s*[(\[]\s*([^)\]]*)\s*[)\]]\s*$")
_TIME_UNITS = {"min": 60.0, "sec": 1.0, "s": 1.0, "hr": 3600.0, "h": 3600.0}
_SCALE = {
    "ah": 1.0,
    "mah": 1e-3,
    "wh": 1.0,
    "mwh": 1e-3,
    "a": 1.0,
    "ma": 1e-3,
    "v": 1.0,
    "mv": 1e-3,
}


def _role(label: str) -> tuple[str | None, str]:
    """(role, unit) of a Maccor column label, e.g. ('test_time', 'min') for 'Test (Min)'."""
    label = label.strip().strip('"').strip()
    m = _UNIT.match(label)
    name, unit = (m.group(1), m.group(2)) if m else (label, "")
    key = name.strip().lower()
    if key in _PREFIXED and not unit:
        return _PREFIXED[key]
    role = _ROLE.get(key)
    if role is None and key.startswith("test") and unit:
        role = "test_time"
    return role, unit.strip().lower()


#: separators a Maccor column line may use: its text export (tab) or a CSV export (comma)
_SEPARATORS = ("\t", ",")
#: what a column line must name (plus record or cycle, and state, ES or DPt Time)
_NEEDED = {"voltage", "current", "step", "test_time"}


def _column_roles(line: str, sep: str) -> set[str | None]:
    return {_role(x)[0] for x in line.split(sep)}


def _find_columns(lines: Sequence[str], limit: int = 60) -> tuple[int, str] | None:
    """(index of the column-name line, its separator), or None.

    The line names voltage, current, step and test time, a record or cycle column, and a
    Maccor-only one: the state (``State``/``Md``), ``ES`` or ``DPt Time``. Tab-separated
    text exports come first; a comma-separated line (Maccor's CSV export) is taken when
    no tab-separated one fits.
    """
    for sep in _SEPARATORS:
        for i, line in enumerate(lines[:limit]):
            if sep not in line:
                continue
            roles = _column_roles(line, sep)
            if _NEEDED <= roles and roles & {"record", "cycle"} and roles & {"state", "es", "dpt"}:
                return i, sep
    return None


def sniff(path: Path, head: bytes) -> bool:
    """A Maccor column line near the top, or a Maccor AC impedance export."""
    if _EIS_MAGIC.match(head):
        return True
    text = head.decode("latin-1")
    lines = text.splitlines()
    if len(text) == len(head) and len(lines) > 1:
        lines = lines[:-1]  # last line may be cut by the 4 KiB limit
    return _find_columns(lines) is not None


def _arrow(values) -> Any:
    """A text column as a pyarrow array (parse_block gives Arrow on its fast path,
    a NumPy object array on its slow one)."""
    import pyarrow as pa

    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    return pa.array(list(values), type=pa.string())


def _text_at(values, i: int) -> str:
    """Row ``i`` of a text column as a Python string (for messages)."""
    v = values[i]
    return v.as_py() if hasattr(v, "as_py") else str(v)


def _state_is(state, letter: str) -> np.ndarray:
    """Rows whose state column starts with ``letter`` (vectorised)."""
    import pyarrow.compute as pc

    first = pc.utf8_slice_codeunits(_arrow(state), 0, 1)
    return pc.equal(first, letter).to_numpy(zero_copy_only=False).astype(bool)


def _header_date(header: Sequence[str]) -> dt.date | None:
    """The test's date from 'Date of Test:' or 'Started' in the header lines.

    Both ``Date of Test:<tab>03/31/2016`` and the long form ``Date of Test:<tab>11
    December 2020, 12:22:12 PM`` are read.
    """
    for line in header:
        m = re.search(r"Date of Test:\s*(\d{1,2})/(\d{1,2})/(\d{4})", line)
        if not m:
            m = re.match(r"\s*Started:?\s+(\d{1,2})/(\d{1,2})/(\d{4})", line)
        if m:
            try:
                return dt.date(int(m.group(3)), int(m.group(1)), int(m.group(2)))
            except (ValueError, OverflowError):
                return None
        m = re.search(r"Date of Test:\s*(\d{1,2}) ([A-Za-z]+) (\d{4})", line)
        if m:
            try:
                return dt.datetime.strptime(" ".join(m.groups()), "%d %B %Y").date()
            except ValueError:
                return None
        m = re.search(r"Date of Test:[\s,]*(\d{1,2})-([A-Za-z]{3})-(\d{2}(?:\d{2})?)\b", line)
        if m:  # the CSV export: ``Date of Test:,23-Nov-23 3:56:08 PM``
            fmt = "%d-%b-%Y" if len(m.group(3)) == 4 else "%d-%b-%y"
            try:
                return dt.datetime.strptime("-".join(m.groups()), fmt).date()
            except ValueError:
                return None
    return None


_DATE_FORMATS = (
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%d-%b-%y %I:%M:%S %p",  # the CSV export: ``23-Nov-23 3:56:11 PM``
    "%d-%b-%y %H:%M:%S",
    "%d-%b-%Y %I:%M:%S %p",
    "%d-%b-%Y %H:%M:%S",
)
_TIME_FORMATS = ("%H:%M:%S", "%I:%M:%S %p")


def _strptime(values: np.ndarray, fmtstr: str) -> pd.Series:
    """Parse date strings with one format; NaT where a value does not match.

    Uses pyarrow's vectorised strptime when pyarrow is installed (about 25x faster
    than pandas for formats with AM/PM), else pandas.
    """
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ModuleNotFoundError:
        pa = None
    if pa is not None:
        try:
            arr = pc.strptime(
                _arrow(values),
                format=fmtstr,
                unit="s",
                error_is_null=True,
            )
            t = pd.Series(arr.to_numpy(zero_copy_only=False), dtype="datetime64[s]")
            if not t.isna().any():
                return t
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
            pass
    texts = [_text_at(values, i) for i in range(len(values))]
    return pd.to_datetime(pd.Series(texts, dtype=object), format=fmtstr, errors="coerce")


def _parse_all(path: Path, values: np.ndarray, fmtstr: str, first_line: int) -> pd.Series:
    """Every DPt Time value parsed with ``fmtstr``; the first that does not match fails."""
    t = _strptime(values, fmtstr)
    bad = np.flatnonzero(t.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise fail(
            FORMAT,
            path,
            f"DPt Time {_text_at(values, i)!r} does not match {fmtstr!r}",
            f"line {first_line + i}",
        )
    return t


def _unix_time(
    path: Path, cols: dict, header: Sequence[str], first_line: int, warnings: list[str]
) -> np.ndarray | None:
    """Unix seconds from the DPt Time column; None without one, or when every value is
    a plain number (a spreadsheet turned the dates into numbers: ``1`` on every row).
    Then the absolute time is unknown, and a warning says so."""
    if "dpt" not in cols:
        return None
    import pyarrow.compute as pc

    numbers = pc.match_substring_regex(_arrow(cols["dpt"]), r"^\s*[-+]?\d+(\.\d*)?\s*$")
    if len(numbers) and pc.all(numbers).as_py():
        warnings.append(
            f"maccor: DPt Time holds plain numbers ({_text_at(cols['dpt'], 0)!r} on line "
            f"{first_line}), not dates: the absolute time is not imported"
        )
        return None
    return _timestamps(path, cols["dpt"], header, first_line)


def _timestamps(
    path: Path, values: np.ndarray, header: Sequence[str], first_line: int
) -> np.ndarray:
    """Unix seconds of the DPT Time column (full dates, or times of day + header date)."""
    first = _text_at(values, 0)
    for fmtstr in _DATE_FORMATS:
        try:
            dt.datetime.strptime(first, fmtstr)
        except ValueError:
            continue
        t = _parse_all(path, values, fmtstr, first_line)
        unix = t.to_numpy("datetime64[us]").astype("i8") / 1e6
        check_dates(path, FORMAT, "DPt Time", unix, first_line)
        check_clock(path, FORMAT, "DPt Time", unix, first_line)
        return unix
    for fmtstr in _TIME_FORMATS:
        try:
            dt.datetime.strptime(first, fmtstr)
        except ValueError:
            continue
        day = _header_date(header)
        if day is None:
            raise fail(
                FORMAT,
                path,
                "DPt Time holds only the time of day and the header has no valid 'Date of Test' or 'Started' date",
                f"line {first_line}",
            )
        t = _parse_all(path, values, fmtstr, first_line)
        tod = (t - t.dt.normalize()).dt.total_seconds().to_numpy("f8")
        wraps = np.concatenate([[0], np.cumsum(np.diff(tod) < 0)])
        base = naive_to_unix(dt.datetime(day.year, day.month, day.day))
        return check_dates(path, FORMAT, "DPt Time", base + tod + 86400.0 * wraps, first_line)
    raise fail(
        FORMAT,
        path,
        f"cannot read DPt Time {first!r} (expected e.g. '03/31/2016 16:05:31' or '16:05:31')",
        f"line {first_line}",
    )


@dataclass(frozen=True)
class _Layout:
    """Where things are in one Maccor export (0-based field indexes)."""

    column_line: int  # 0-based index of the column-name line
    sep: str  # field separator: tab (text export) or comma (CSV export)
    labels: list[str]
    roles: dict[str, tuple[int, str]]  # role -> (field, unit in the label)
    aux: list[tuple[int, int, int | None]]  # (aux number, value field, units field)
    first_line: int  # 1-based line number of the first data row
    start: int  # 0-based index of the first data row
    duration_time: bool  # test time printed as ``Nd hh:mm:ss.s``


def _layout(path: Path, raw: bytes | memoryview) -> _Layout:
    """Find the column line, the role of each column and the first data row."""
    lines = head_lines(raw, 80)  # header discovery only; the rows are parsed from bytes
    found = _find_columns(lines)
    if found is None:
        raise fail(
            FORMAT,
            path,
            "no Maccor column line found (expected tab- or comma-separated 'Rec#', 'Step', "
            "'Test (Min)', 'Amps'/'Current [A]', 'Volts'/'Voltage [V]', 'State'/'Md' or "
            "'DPt Time' ... in the first 60 lines)",
            "line 1",
        )
    ci, sep = found
    labels = lines[ci].split(sep)
    roles: dict[str, tuple[int, str]] = {}
    aux: list[tuple[int, int, int | None]] = []
    for i, label in enumerate(labels):
        m = _AUX.match(label.strip())
        if m:
            units = i + 1 if i + 1 < len(labels) and labels[i + 1].strip() == "Units" else None
            aux.append((int(m.group(1)), i, units))
            continue
        role, unit = _role(label)
        if role and role not in roles:
            roles[role] = (i, unit)
    for need in ("test_time", "step", "cycle", "capacity", "current", "voltage"):
        if need not in roles:
            raise fail(
                FORMAT, path, f"missing the {need.replace('_', ' ')} column", f"line {ci + 1}"
            )
    start = ci + 1
    while start < len(lines) and not lines[start].strip():
        start += 1
    first_row = lines[start].split(sep) if start < len(lines) else []
    it = roles["test_time"][0]
    duration = it < len(first_row) and re.match(_DURATION, first_row[it]) is not None
    return _Layout(ci, sep, labels, roles, aux, start + 1, start, duration)


def _parse_rows(path: Path, raw: bytes | memoryview, lay: _Layout) -> dict[str, np.ndarray]:
    """Numeric and text columns of every data row (the row-width guard included)."""
    data = data_block(raw, lay.start)
    if not data:
        raise fail(
            FORMAT, path, "no data rows after the column line", f"line {lay.column_line + 2}"
        )
    if lay.sep == "\t":
        data = _decimal_point(data)  # (a comma-separated export cannot hold decimal commas)
    else:
        data = unquote(data)  # thousands separators, quoted text (quoted.py)
    numeric = {r: lay.roles[r][0] for r in _NUMERIC if r in lay.roles}
    text = {r: lay.roles[r][0] for r in ("state", "dpt") if r in lay.roles}
    if lay.duration_time:
        text["test_time"] = numeric.pop("test_time")
    for n, value, units in lay.aux:
        numeric[f"aux{n}"] = value
        if units is not None:
            text[f"aux{n}_units"] = units
    labels = lay.labels
    n_fields = len(labels) if labels[-1].strip() else len(labels) - 1
    return parse_block(
        path,
        FORMAT,
        data,
        lay.first_line,
        numeric,
        sep=lay.sep,
        n_fields=n_fields,
        text_columns=text,
        arrow_text=True,
    )


#: a decimal-comma number as a whole tab-separated field (``3,45807584``, ``-1,2E-05``)
_COMMA_FIELD = re.compile(rb"(?:^|\t) *-?\d+,\d+(?:[eE][-+]?\d+)? *(?=\t|\r?$)")


def _decimal_point(data: bytes | memoryview) -> bytes | memoryview:
    """Rows written on a decimal-comma locale (``3,45807584``) with points instead.

    Maccor rows are tab-separated and their text fields (state, date) hold no comma, so a
    comma in a row can only be a decimal comma; decided from the first row. Lengths are
    kept, so line numbers in later errors stay right.
    """
    first = first_line(data)  # (split(b"\n", 1) would copy every other row too)
    return bytes(data).replace(b",", b".") if _COMMA_FIELD.search(first) else data


_NUMERIC = (
    "record",
    "cycle",
    "step",
    "test_time",
    "capacity",
    "current",
    "voltage",
    "energy",
    "es",
    "temperature",
)


def durations(path: Path, values: np.ndarray, name: str, first_line: int) -> np.ndarray:
    """Seconds of ``Nd hh:mm:ss.ssss`` strings (vectorised); a value not of that form
    fails naming its line."""
    import pyarrow as pa
    import pyarrow.compute as pc

    m = pc.extract_regex(_arrow(values), _DURATION)
    ok = m.is_valid().to_numpy(zero_copy_only=False)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise fail(
            FORMAT,
            path,
            f"{name} {_text_at(values, i)!r} is not a duration 'Nd hh:mm:ss.s' like the rows before",
            f"line {first_line + i}",
        )
    part = {
        k: pc.cast(pc.struct_field(m, k), pa.float64()).to_numpy() for k in ("d", "h", "m", "s")
    }
    return part["d"] * 86400.0 + part["h"] * 3600.0 + part["m"] * 60.0 + part["s"]


def _signed(path: Path, cols: dict[str, np.ndarray], lay: _Layout) -> dict[str, np.ndarray]:
    """Current, voltage, capacities and energies in SI, current > 0 on charge rows.

    With a state column (``State``/``Md``) the state says what each row is; without one
    (some CSV exports) the current must be signed: see :func:`_step_signs`.
    """
    roles = lay.roles
    out: dict[str, np.ndarray] = {}
    amps = cols["current"] * _SCALE.get(roles["current"][1], 1.0)
    out["voltage_volt"] = cols["voltage"] * _SCALE.get(roles["voltage"][1], 1.0)
    if "state" in cols:
        charge = _state_is(cols["state"], "C")
        discharge = _state_is(cols["state"], "D")
        out["current_ampere"] = np.where(
            discharge, -np.abs(amps), np.where(charge, np.abs(amps), amps)
        )
        cap = cols["capacity"] * _SCALE.get(roles["capacity"][1], 1.0)
        energy = cols["energy"] * _SCALE.get(roles["energy"][1], 1.0) if "energy" in cols else None
    else:
        sign = _step_signs(path, cols, lay, amps, out["voltage_volt"])
        charge, discharge = sign > 0, sign < 0
        out["current_ampere"] = amps
        # the counters are magnitudes within a step, whatever sign an export prints
        cap = np.abs(cols["capacity"]) * _SCALE.get(roles["capacity"][1], 1.0)
        energy = (
            np.abs(cols["energy"]) * _SCALE.get(roles["energy"][1], 1.0)
            if "energy" in cols
            else None
        )
    out["charge_capacity_ampere_hour"] = np.where(charge, cap, 0.0)
    out["discharge_capacity_ampere_hour"] = np.where(discharge, cap, 0.0)
    if energy is not None:
        out["charge_energy_watt_hour"] = np.where(charge, energy, 0.0)
        out["discharge_energy_watt_hour"] = np.where(discharge, energy, 0.0)
    return out


#: how far a step's voltage may end below where it started and still count as not
#: falling (about one count of a Maccor 16-bit channel on its 5 V range: 0.15 mV)
FALL_TOLERANCE_VOLT = 2e-4


def _step_signs(
    path: Path, cols: dict[str, np.ndarray], lay: _Layout, amps: np.ndarray, volts: np.ndarray
) -> np.ndarray:
    """+1 on the rows of charge steps, -1 on discharge steps, 0 elsewhere, for an export
    without a state column (vectorised).

    The current must then carry its sign. A negative current anywhere means it does:
    each step is charge or discharge by the sign of its current. When every current is
    >= 0 the file is taken as signed only if no step with current has a voltage that
    falls (its last row with current more than :data:`FALL_TOLERANCE_VOLT` below its
    first): all charge-like. A step with current whose voltage falls while no current is
    negative means the export prints magnitudes: refused, as charge and discharge cannot
    be told apart.
    """
    n = len(amps)
    new_step = np.concatenate(
        [[True], (np.diff(cols["cycle"]) != 0) | (np.diff(cols["step"]) != 0)]
    )
    step_of_row = np.cumsum(new_step) - 1
    live = np.flatnonzero(amps != 0)  # rows with current, in order
    if not len(live):
        return np.zeros(n, "i8")
    sid = step_of_row[live]
    first = live[np.concatenate([[True], sid[1:] != sid[:-1]])]
    last = live[np.concatenate([sid[1:] != sid[:-1], [True]])]
    if not (amps < 0).any():
        falls = np.flatnonzero(volts[last] < volts[first] - FALL_TOLERANCE_VOLT)
        if len(falls):
            a, b = int(first[falls[0]]), int(last[falls[0]])
            raise fail(
                FORMAT,
                path,
                "the export has no state column (State/Md) and its currents are unsigned: "
                "every current is >= 0, yet the voltage falls under current in step "
                f"{int(cols['step'][a])} of cycle {int(cols['cycle'][a])} "
                f"({volts[a]:g} V at line {lay.first_line + a} -> {volts[b]:g} V at line "
                f"{lay.first_line + b}), so charge cannot be told from discharge: export "
                "with the State column, or with signed currents",
                f"line {lay.first_line + a}",
            )
    step_sign = np.zeros(int(step_of_row[-1]) + 1, "i8")
    step_sign[sid[np.concatenate([[True], sid[1:] != sid[:-1]])]] = np.sign(amps[first]).astype(
        "i8"
    )
    return step_sign[step_of_row]


def _test_time(
    path: Path, cols: dict[str, np.ndarray], lay: _Layout, unix: np.ndarray | None
) -> np.ndarray:
    """Test time in seconds: durations, a unit from the label, or minutes vs the clock."""
    if lay.duration_time:
        t = durations(path, cols["test_time"], "test time", lay.first_line)
    else:
        tunit = lay.roles["test_time"][1]
        if tunit and tunit not in _TIME_UNITS:
            raise fail(
                FORMAT, path, f"unknown test time unit {tunit!r}", f"line {lay.column_line + 1}"
            )
        scale = _TIME_UNITS[tunit] if tunit else _guess_time_scale(cols["test_time"], unix)
        t = cols["test_time"] * scale
    back = np.flatnonzero(np.diff(t) < 0)
    if len(back):
        raise fail(
            FORMAT, path, "test time goes backwards", f"line {lay.first_line + int(back[0]) + 1}"
        )
    return t


def _aux_columns(
    cols: dict[str, np.ndarray], lay: _Layout
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``Aux #n`` values as ``vendor_aux_<n>`` with the unit printed beside them."""
    out: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    for n, _, ufield in lay.aux:
        name = f"vendor_aux_{n}"
        out[name] = cols[f"aux{n}"]
        unit = _text_at(cols[f"aux{n}_units"], 0).strip() if ufield is not None else ""
        units[name] = {"C": "degC", "": "1"}.get(unit, unit)
    return out, units


def stop_events(out: dict[str, np.ndarray], state: np.ndarray) -> list[dict]:
    """A ``stop`` event at the first row of every run of Maccor state ``S`` (stopped)."""
    stopped = _state_is(state, "S")
    starts = np.flatnonzero(stopped & ~np.concatenate([[False], stopped[:-1]]))
    events = []
    for i in starts:
        ev = {
            "kind": "stop",
            "message": f"Maccor state S (test stopped) at data row {int(i) + 1}",
            "test_time_second": float(out["test_time_second"][i]),
            "step": int(out["step_count"][i]),
        }
        if "unix_time_second" in out:
            ev["unix_time_second"] = float(out["unix_time_second"][i])
        events.append(ev)
    return events


_EIS_COLUMNS = {"f": "Freq(Hz)", "re": "Z'(a)", "im": "Z''(b)"}
_EIS_EXTRA = {"t": "time(sec)", "vdc": "V-DC", "phase": "Phase_Angle"}
_EIS_START = re.compile(
    r"Start Date:\s*(?:[A-Za-z]+,\s*)?([A-Za-z]+\s+\d{1,2},\s*\d{4})\s+"
    r"Start Time:\s*(\d{1,2}:\d{2}(?::\d{2})?)"
)


def _eis_start(header: Sequence[str]) -> float | None:
    """Unix s of ``Start Date:  Wednesday, November 2, 2016 Start Time:   15:58``."""
    for line in header:
        m = _EIS_START.search(line)
        if not m:
            continue
        day = re.sub(r"\s+", " ", m.group(1).replace(",", ", ")).replace(" ,", ",")
        clock = m.group(2) if m.group(2).count(":") == 2 else m.group(2) + ":00"
        try:
            t = dt.datetime.strptime(f"{day} {clock}", "%B %d, %Y %H:%M:%S")
        except ValueError:
            return None
        return naive_to_unix(t)
    return None


def _read_eis(path: Path, raw: memoryview) -> Imported:
    """A Maccor AC impedance export (``MACCOR, INC.    AC Impedance Test``) as one spectrum.

    Nine header lines (sweep, file name, ``Start Date: ... Start Time: ...``, a line of
    instrument settings), a blank line, a tab-separated column line ``Freq(Hz) Polar(V)
    time(sec) Z'(a) Z''(b) Phase_Angle Z-Mag C(F) Status irg VMag IMag V-DC isg ...``, a
    blank line, rows. The rows stop after the last column with a value (13 fields under 24
    names): every row must have the first row's width, which must hold the columns read.
    ``Z''(b)`` is signed as printed (negative = capacitive; ``Phase_Angle`` is its angle).
    """
    lines = head_lines(raw, 60)
    found = None
    for i, line in enumerate(lines):
        names = [x.strip() for x in line.split("\t")]
        if all(n in names for n in _EIS_COLUMNS.values()):
            found = i
            break
    if found is None:
        raise fail(
            FORMAT,
            path,
            "Maccor AC impedance export without a column line naming Freq(Hz), Z'(a) and "
            "Z''(b) in its first 60 lines",
            "line 1",
        )
    start = found + 1
    while start < len(lines) and not lines[start].strip():
        start += 1
    rows = data_block(raw, start)
    if not rows:
        raise fail(FORMAT, path, "no data rows after the column line", f"line {found + 2}")
    width = first_line(rows).rstrip(b"\r").count(b"\t") + 1
    cols = {k: names.index(n) for k, n in _EIS_COLUMNS.items()}
    cols.update({k: names.index(n) for k, n in _EIS_EXTRA.items() if n in names})
    cols = {k: i for k, i in cols.items() if i < width}
    if width > len(names) or any(k not in cols for k in _EIS_COLUMNS):
        raise fail(
            FORMAT,
            path,
            f"the first row has {width} fields for {len(names)} names: it must hold "
            "Freq(Hz), Z'(a) and Z''(b) and no more fields than the column line names",
            f"line {start + 1}",
        )
    c = parse_block(path, FORMAT, rows, start + 1, cols, sep="\t", n_fields=width)
    header = lines[:found]
    sweep = next((ln for ln in header if "frequency sweep" in ln.lower()), "")
    sp: dict[str, Any] = {
        "frequency_hertz": c["f"],
        "real_impedance_ohm": c["re"],
        "imaginary_impedance_ohm": c["im"],
        "technique": "GEIS" if "current" in sweep.lower() else "PEIS",
        "source_layout": "maccor-ac-impedance",
    }
    if "vdc" in c:
        sp["dc_level"] = float(c["vdc"][0])
    t0 = _eis_start(header)
    if t0 is not None:
        sp["unix_time_second"] = t0 + (float(c["t"][0]) if "t" in c else 0.0)
    return name_temperature({"cycling": {}, "spectra": [sp], "header": "\n".join(header)}, path)


def read(path: str | Path) -> Imported:
    """Read one Maccor text export (SI units, BDF names, current > 0 charging), or a
    Maccor AC impedance export (one spectrum)."""
    path = Path(path)
    with open_raw(path, FORMAT, allow_nul=True) as raw:  # a view: the rows are not copied
        if _EIS_MAGIC.match(bytes(raw[:200])):
            return _read_eis(path, raw)
        lay = _layout(path, raw)
        cols = _parse_rows(path, raw, lay)
        header = head_lines(raw, lay.column_line + 1)
    out = _signed(path, cols, lay)
    warnings = _milli_volts(out, lay.roles)
    if "temperature" in cols:
        out["temperature_kelvin"] = _kelvin(path, cols["temperature"], lay)
    unix = _unix_time(path, cols, header, lay.first_line, warnings)
    out["test_time_second"] = _test_time(path, cols, lay, unix)
    if unix is not None:
        out["unix_time_second"] = unix
    out["vendor_cycle_index"] = as_int(path, FORMAT, "cycle", cols["cycle"], lay.first_line)
    out["vendor_step_index"] = as_int(path, FORMAT, "step", cols["step"], lay.first_line)
    out["step_index"] = out["vendor_step_index"].copy()
    out["cycle_count"], out["step_count"] = vendor_counts(
        out["vendor_cycle_index"], out["vendor_step_index"]
    )
    aux, units = _aux_columns(cols, lay)
    out.update(aux)
    return {
        "cycling": out,
        "spectra": [],
        "units": units,
        "events": stop_events(out, cols["state"]) if "state" in cols else [],
        "header": "\n".join(header),
        "warnings": warnings,
    }


def _kelvin(path: Path, values: np.ndarray, lay: _Layout) -> np.ndarray:
    """``Temp 1`` in kelvin (printed in degC; ``(C)``/``(K)`` in the label respected)."""
    field, unit = lay.roles["temperature"]
    unit = unit.replace("°", "").replace("deg", "").strip().upper()
    if unit not in ("", "C", "K"):
        raise fail(
            FORMAT,
            path,
            f"unknown temperature unit {unit!r} in column {lay.labels[field]!r}",
            f"line {lay.column_line + 1}",
        )
    return values if unit == "K" else values + 273.15


def _milli_volts(out: dict[str, np.ndarray], roles: dict) -> list[str]:
    """A milli-unit export (``mAmps``, ``mAmp-hr``) prints mV under ``Volts``: values above
    100 there are read as mV, with a warning (a unit-less ``Volts`` is V otherwise)."""
    v = out["voltage_volt"]
    if roles["current"][1] != "ma" or roles["voltage"][1] or not len(v):
        return []
    if float(np.nanmax(np.abs(v))) <= 100.0:
        return []
    out["voltage_volt"] = v * 1e-3
    return [
        f"maccor: 'Volts' holds values up to {float(np.nanmax(np.abs(v))):g} in an "
        "export with milli-units (mAmps): read as mV, as Maccor prints them there"
    ]


def _guess_time_scale(test: np.ndarray, unix: np.ndarray | None) -> float:
    """Seconds per unit of a unit-less test time: minutes unless the clock says seconds."""
    if unix is not None and len(test) > 1:
        span_t = float(test[-1] - test[0])
        span_u = float(unix[-1] - unix[0])
        if span_t > 0 and span_u >= 120:
            ratio = span_u / span_t
            for scale in (1.0, 60.0, 3600.0):
                if abs(ratio / scale - 1) < 0.2:
                    return scale
    return 60.0


def _is_eis_export(path: Path) -> bool:
    """Does the file start like a Maccor AC impedance export?"""
    try:
        with open(path, "rb") as fh:
            return _EIS_MAGIC.match(fh.read(200)) is not None
    except OSError:
        return False  # (read() names the missing file)


_PART = re.compile(r"\.(\d{3})$")


def _part_key(path: Path) -> tuple[str, int, bool] | None:
    """(base name, part number, continuation?) of ``name.001`` / ``namecon.001``."""
    m = _PART.search(path.name.lower())
    if not m:
        return None
    stem = path.name[: m.start()]
    con = stem.lower().endswith("con")
    return (stem[:-3] if con else stem).lower(), int(m.group(1)), con


def _check_part_order(paths: Sequence[Path]) -> None:
    """Parts must be given in order: .001 before .002, ``a.078`` before ``acon.078``."""
    keys = [_part_key(p) for p in paths]
    if not all(keys):
        return
    for ka, kb, pa, pb in zip(keys, keys[1:], paths, paths[1:], strict=False):
        assert ka is not None and kb is not None
        later = kb[1] > ka[1] or (kb[1] == ka[1] and kb[2] and not ka[2] and kb[0] == ka[0])
        if not later:
            raise fail(
                FORMAT,
                pb,
                f"split Maccor files out of order: {pb.name} given after {pa.name} "
                "(give .001, .002, ... and a continuation file <name>con.<ext> after <name>.<ext>)",
            )
    for k, p in zip(keys, paths, strict=True):
        assert k is not None
        if k[2] and not any(o is not None and o[:2] == k[:2] and not o[2] for o in keys):
            raise fail(
                FORMAT,
                p,
                f"continuation file {p.name} given without its first part "
                f"({k[0]}.{k[1]:03d}): give both, the first part first",
            )


def read_many(paths: Sequence[str | Path]) -> Imported:
    """Read the parts of a split Maccor test (.001, .002, ...) in order and join them.

    The parts must be given in order: numbered suffixes must increase and each part
    must start no earlier (by its timestamps) than the previous one ended; otherwise
    :class:`InputError` names the file out of order. When a part's test time restarts,
    it is continued from the timestamps (or, without them, from the previous part's end).
    AC impedance exports among the files (``<name>.EDA0001.041`` beside ``<name>.041``)
    are not parts of the cycling record: their spectra are added to the cell.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no Maccor files given")
    eis = [p for p in paths if _is_eis_export(p)]
    cycling = [p for p in paths if p not in eis]
    if eis:
        parts = ([read_many(cycling)] if cycling else []) + [read(p) for p in eis]
        for part, src in zip(parts[-len(eis) :], eis, strict=True):
            part["source"], part["format"] = str(src), FORMAT
        merged = merge_imports(parts)
        merged["format"] = FORMAT
        merged["source"] = ", ".join(str(p) for p in paths)
        return merged
    _check_part_order(paths)
    parts = [read(p) for p in paths]
    for p, src in zip(parts, paths, strict=True):
        p["source"] = str(src)
        p["format"] = FORMAT
    first = parts[0]["cycling"]
    for prev, cur, src in zip(parts, parts[1:], paths[1:], strict=False):
        pc, cc = prev["cycling"], cur["cycling"]
        if "unix_time_second" in pc and "unix_time_second" in cc:
            if cc["unix_time_second"][0] < pc["unix_time_second"][-1]:
                raise fail(
                    FORMAT,
                    src,
                    "split Maccor files out of order: this part starts before the previous one ends "
                    f"({cc['unix_time_second'][0]:.0f} < {pc['unix_time_second'][-1]:.0f} unix s)",
                    "line 1",
                )
            t = cc["test_time_second"]
            if "unix_time_second" in first and t[0] < pc["test_time_second"][-1]:
                shift = (cc["unix_time_second"][0] - t[0]) - (
                    first["unix_time_second"][0] - first["test_time_second"][0]
                )
                cc["test_time_second"] = t + shift
                for ev in cur.get("events", []):
                    ev["test_time_second"] += shift
    merged = merge_imports(parts)
    merged["format"] = FORMAT
    merged["source"] = ", ".join(str(p) for p in paths)
    c = merged["cycling"]
    c["cycle_count"], c["step_count"] = vendor_counts(
        c["vendor_cycle_index"], c["vendor_step_index"]
    )
    return merged
