"""Maccor text exports (tab-separated), both header styles, and split files .001/.002.

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
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cyclerflow.errors import InputError
from cyclerflow.importers.common import Imported, merge_imports, naive_to_unix, vendor_counts
from cyclerflow.importers.textfmt import (
    as_int,
    data_block,
    fail,
    head_lines,
    parse_block,
    read_raw,
)

FORMAT = "maccor"
EXTENSIONS = (".txt", ".csv") + tuple(f".{i:03d}" for i in range(1, 100))

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
}
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
    label = label.strip()
    m = _UNIT.match(label)
    name, unit = (m.group(1), m.group(2)) if m else (label, "")
    key = name.strip().lower()
    role = _ROLE.get(key)
    if role is None and key.startswith("test") and unit:
        role = "test_time"
    return role, unit.strip().lower()


def _find_columns(lines: Sequence[str], limit: int = 60) -> int | None:
    """Index of the column-name line (has a record, voltage and state column), or None."""
    for i, line in enumerate(lines[:limit]):
        roles = {_role(x)[0] for x in line.split("\t")}
        if {"record", "voltage", "current", "state"} <= roles:
            return i
    return None


def sniff(path: Path, head: bytes) -> bool:
    """A Maccor column line (record, current, voltage and state columns) near the top."""
    text = head.decode("latin-1")
    lines = text.splitlines()
    if len(text) == len(head) and len(lines) > 1:
        lines = lines[:-1]  # last line may be cut by the 4 KiB limit
    return _find_columns(lines) is not None


def _header_date(header: Sequence[str]) -> dt.date | None:
    """The test's date from 'Date of Test:' or 'Started' in the header lines."""
    for line in header:
        m = re.search(r"Date of Test:\s*(\d{1,2})/(\d{1,2})/(\d{4})", line)
        if not m:
            m = re.match(r"\s*Started:?\s+(\d{1,2})/(\d{1,2})/(\d{4})", line)
        if m:
            return dt.date(int(m.group(3)), int(m.group(1)), int(m.group(2)))
    return None


_DATE_FORMATS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M", "%Y-%m-%d %H:%M:%S")
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
                pa.array(values.tolist(), type=pa.string()),
                format=fmtstr,
                unit="s",
                error_is_null=True,
            )
            t = pd.Series(arr.to_numpy(zero_copy_only=False), dtype="datetime64[s]")
            if not t.isna().any():
                return t
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
            pass
    return pd.to_datetime(pd.Series(values, dtype=object), format=fmtstr, errors="coerce")


def _parse_all(path: Path, values: np.ndarray, fmtstr: str, first_line: int) -> pd.Series:
    """Every DPt Time value parsed with ``fmtstr``; the first that does not match fails."""
    t = _strptime(values, fmtstr)
    bad = np.flatnonzero(t.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise fail(
            FORMAT,
            path,
            f"DPt Time {values[i]!r} does not match {fmtstr!r}",
            f"line {first_line + i}",
        )
    return t


def _timestamps(
    path: Path, values: np.ndarray, header: Sequence[str], first_line: int
) -> np.ndarray:
    """Unix seconds of the DPT Time column (full dates, or times of day + header date)."""
    first = str(values[0])
    for fmtstr in _DATE_FORMATS:
        try:
            dt.datetime.strptime(first, fmtstr)
        except ValueError:
            continue
        t = _parse_all(path, values, fmtstr, first_line)
        return (t - pd.Timestamp(0)).dt.total_seconds().to_numpy("f8")
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
                "DPt Time holds only the time of day and the header has no 'Date of Test' or 'Started' date",
                f"line {first_line}",
            )
        t = _parse_all(path, values, fmtstr, first_line)
        tod = (t - t.dt.normalize()).dt.total_seconds().to_numpy("f8")
        wraps = np.concatenate([[0], np.cumsum(np.diff(tod) < 0)])
        base = naive_to_unix(dt.datetime(day.year, day.month, day.day))
        return base + tod + 86400.0 * wraps
    raise fail(
        FORMAT,
        path,
        f"cannot read DPt Time {first!r} (expected e.g. '03/31/2016 16:05:31' or '16:05:31')",
        f"line {first_line}",
    )


def read(path: str | Path) -> Imported:
    """Read one Maccor text export (SI units, BDF names, current > 0 charging)."""
    path = Path(path)
    raw = read_raw(path, FORMAT, allow_nul=True)
    lines = head_lines(raw, 80)  # header discovery only; the rows are parsed from bytes
    ci = _find_columns(lines)
    if ci is None:
        raise fail(
            FORMAT,
            path,
            "no Maccor column line found (expected tab-separated 'Rec#', 'Amps'/'Current [A]', "
            "'Volts'/'Voltage [V]', 'State'/'Md' ... in the first 60 lines)",
            "line 1",
        )
    labels = lines[ci].split("\t")
    roles: dict[str, tuple[int, str]] = {}
    for i, label in enumerate(labels):
        role, unit = _role(label)
        if role and role not in roles:
            roles[role] = (i, unit)
    for need in ("test_time", "step", "cycle", "capacity"):
        if need not in roles:
            raise fail(
                FORMAT, path, f"missing the {need.replace('_', ' ')} column", f"line {ci + 1}"
            )
    start = ci + 1
    while start < len(lines) and not lines[start].strip():
        start += 1
    data = data_block(raw, start)
    first_line = start + 1
    if not data:
        raise fail(FORMAT, path, "no data rows after the column line", f"line {ci + 2}")
    numeric = {
        r: roles[r][0]
        for r in (
            "record",
            "cycle",
            "step",
            "test_time",
            "capacity",
            "current",
            "voltage",
            "energy",
        )
        if r in roles
    }
    text_cols = {r: roles[r][0] for r in ("state", "dpt") if r in roles}
    n_fields = len(labels) if labels[-1].strip() else len(labels) - 1
    cols = parse_block(
        path, FORMAT, data, first_line, numeric, sep="\t", n_fields=n_fields, text_columns=text_cols
    )

    header = lines[: ci + 1]
    out: dict[str, np.ndarray] = {}
    state = cols["state"].astype("U1")
    charge = state == "C"
    discharge = state == "D"
    amps = np.abs(cols["current"]) * _SCALE.get(roles["current"][1], 1.0)
    out["current_ampere"] = np.where(discharge, -amps, np.where(charge, amps, cols["current"]))
    out["voltage_volt"] = cols["voltage"] * _SCALE.get(roles["voltage"][1], 1.0)
    cap = cols["capacity"] * _SCALE.get(roles["capacity"][1], 1.0)
    out["charge_capacity_ampere_hour"] = np.where(charge, cap, 0.0)
    out["discharge_capacity_ampere_hour"] = np.where(discharge, cap, 0.0)
    if "energy" in cols:
        e = cols["energy"] * _SCALE.get(roles["energy"][1], 1.0)
        out["charge_energy_watt_hour"] = np.where(charge, e, 0.0)
        out["discharge_energy_watt_hour"] = np.where(discharge, e, 0.0)
    unix = _timestamps(path, cols["dpt"], header, first_line) if "dpt" in cols else None
    tunit = roles["test_time"][1]
    if tunit:
        if tunit not in _TIME_UNITS:
            raise fail(FORMAT, path, f"unknown test time unit {tunit!r}", f"line {ci + 1}")
        scale = _TIME_UNITS[tunit]
    else:
        scale = _guess_time_scale(cols["test_time"], unix)
    out["test_time_second"] = cols["test_time"] * scale
    back = np.flatnonzero(np.diff(out["test_time_second"]) < 0)
    if len(back):
        raise fail(
            FORMAT, path, "test time goes backwards", f"line {first_line + int(back[0]) + 1}"
        )
    if unix is not None:
        out["unix_time_second"] = unix
    out["vendor_cycle_index"] = as_int(path, FORMAT, "cycle", cols["cycle"], first_line)
    out["vendor_step_index"] = as_int(path, FORMAT, "step", cols["step"], first_line)
    out["step_index"] = out["vendor_step_index"].copy()
    out["cycle_count"], out["step_count"] = vendor_counts(
        out["vendor_cycle_index"], out["vendor_step_index"]
    )
    return {"cycling": out, "spectra": [], "header": "\n".join(header)}


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


_PART = re.compile(r"\.(\d{3})$")


def read_many(paths: Sequence[str | Path]) -> Imported:
    """Read the parts of a split Maccor test (.001, .002, ...) in order and join them.

    The parts must be given in order: numbered suffixes must increase and each part
    must start no earlier (by its timestamps) than the previous one ended; otherwise
    :class:`InputError` names the file out of order. When a part's test time restarts,
    it is continued from the timestamps (or, without them, from the previous part's end).
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no Maccor files given")
    nums = [_PART.search(p.name.lower()) for p in paths]
    if all(nums):
        vals = [int(m.group(1)) for m in nums]  # type: ignore[union-attr]
        for a, b, pa, pb in zip(vals, vals[1:], paths, paths[1:], strict=False):
            if b <= a:
                raise fail(
                    FORMAT,
                    pb,
                    f"split Maccor files out of order: part .{b:03d} given after {pa.name} "
                    "(give .001, .002, ... in order)",
                )
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
    merged = merge_imports(parts)
    merged["format"] = FORMAT
    merged["source"] = ", ".join(str(p) for p in paths)
    c = merged["cycling"]
    c["cycle_count"], c["step_count"] = vendor_counts(
        c["vendor_cycle_index"], c["vendor_step_index"]
    )
    return merged
