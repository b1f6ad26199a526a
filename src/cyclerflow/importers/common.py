"""Shared pieces of the importers: the result type, validation, vendor counters, merging."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from cyclerflow.errors import InputError


class Imported(TypedDict, total=False):
    """What an importer returns (all SI, BDF names, current > 0 charging)."""

    format: str
    source: str
    cycling: dict[str, np.ndarray]  # column -> 1-D array, equal lengths
    units: dict[str, str]  # units of non-BDF columns
    column_attrs: dict[str, dict[str, str]]  # e.g. {"current_ampere": {"sampling": ...}}
    spectra: list[
        dict[str, Any]
    ]  # frequency_hertz, real_impedance_ohm, imaginary_impedance_ohm + attrs
    events: list[dict[str, Any]]
    header: str  # vendor header text, kept in /cell attrs
    warnings: list[str]  # said to the user at import (e.g. a value taken from the file name)


def check_finite(path: str | Path, name: str, values: np.ndarray, *, first_line: int) -> None:
    """Raise naming the line of the first NaN/inf in a numeric column."""
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise InputError(
            f"column {name!r} has a missing or non-finite value",
            path=path,
            where=f"line {first_line + int(bad[0])}",
        )


def check_time_increasing(path: str | Path, name: str, t: np.ndarray, *, first_line: int) -> None:
    """Raise naming the line where time goes backwards."""
    back = np.flatnonzero(np.diff(t) < 0)
    if len(back):
        i = int(back[0]) + 1
        raise InputError(
            f"{name} goes backwards ({float(t[i - 1])!r} -> {float(t[i])!r})",
            path=path,
            where=f"line {first_line + i}",
        )


def vendor_counts(
    vendor_cycle: np.ndarray, vendor_step: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Our ``cycle_count`` and ``step_count`` (both from 1) from the vendor's numbers.

    ``cycle_count`` goes up by one whenever the vendor's cycle number changes;
    ``step_count`` whenever the vendor's step or cycle number changes.
    """
    c = np.asarray(vendor_cycle)
    s = np.asarray(vendor_step)
    if len(c) == 0:
        return np.zeros(0, "i8"), np.zeros(0, "i8")
    cyc_change = np.concatenate([[False], c[1:] != c[:-1]])
    step_change = cyc_change | np.concatenate([[False], s[1:] != s[:-1]])
    return 1 + np.cumsum(cyc_change, dtype="i8"), 1 + np.cumsum(step_change, dtype="i8")


def naive_to_unix(t: dt.datetime) -> float:
    """Seconds since 1970 UTC of a timestamp; a naive one (no time zone) is taken as UTC."""
    if t.tzinfo is not None:
        return t.timestamp()
    return calendar.timegm(t.timetuple()) + t.microsecond * 1e-6


def merge_imports(parts: Sequence[Imported]) -> Imported:
    """Join files in the order given: cycling rows concatenated, spectra appended.

    When a later file's test time restarts (first time < last time of the previous
    one), it is shifted to continue; vendor cycle numbers are kept as they are.
    """
    cyc_parts = [p["cycling"] for p in parts if p.get("cycling")]
    spectra = []
    for p in parts:
        for i, s in enumerate(p.get("spectra", [])):
            s = dict(s)
            s["source_spectrum_id"] = s.pop("spectrum_id", i + 1)
            s.setdefault("source_file", str(p.get("source", "")))
            spectra.append(s)
    units: dict[str, str] = {}
    for p in parts:
        units.update(p.get("units", {}))
    header = "\n\n".join(
        f"# {p.get('source', '')} ({p.get('format', '')})\n{p.get('header', '')}" for p in parts
    )
    events = [e for p in parts for e in p.get("events", [])]
    warnings = [f"{p.get('source', '')}: {w}" for p in parts for w in p.get("warnings", [])]
    column_attrs = _merged_column_attrs([p for p in parts if p.get("cycling")])
    common: Imported = {
        "spectra": spectra,
        "units": units,
        "header": header,
        "events": events,
        "column_attrs": column_attrs,
        "warnings": warnings,
    }
    if len(cyc_parts) <= 1:
        return {"cycling": cyc_parts[0] if cyc_parts else {}, **common}
    columns = list(dict.fromkeys(c for p in cyc_parts for c in p))
    out: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    offset = 0.0
    last = None
    for p in cyc_parts:
        n = len(next(iter(p.values())))
        t = np.asarray(p["test_time_second"], dtype="f8")
        if last is not None and n and t[0] < last:
            offset = last - t[0]
        for c in columns:
            if c not in p:
                fill = np.full(n, np.nan) if c != "cycle_count" else np.full(n, -1)
                out[c].append(fill)
            elif c == "test_time_second":
                out[c].append(t + offset)
            else:
                out[c].append(np.asarray(p[c]))
        if n:
            last = float(t[-1] + offset)
    merged = {c: np.concatenate(v) for c, v in out.items()}
    return {"cycling": merged, **common}


def _merged_column_attrs(parts: Sequence[Imported]) -> dict[str, dict[str, str]]:
    """Column attributes that every file with cycling rows agrees on (a joined column
    whose files disagree, e.g. on ``sampling``, keeps only what they share)."""
    out: dict[str, dict[str, str]] = {}
    for i, p in enumerate(parts):
        attrs = p.get("column_attrs", {})
        if i == 0:
            out = {c: dict(a) for c, a in attrs.items()}
            continue
        for c in list(out):
            shared = {k: v for k, v in out[c].items() if attrs.get(c, {}).get(k) == v}
            if shared:
                out[c] = shared
            else:
                del out[c]
    return out


_NAME_TEMPERATURE = re.compile(
    r"(?:^|[_\s-])(?P<sign>[-m]?)(?P<v>\d+(?:[.p]\d+)?)\s*(?P<u>degC|deg|°C|C|K)(?=$|[^A-Za-z0-9])"
)


#: a bare ``<number>C`` below this in a file name may be a C-rate (``1C``, ``0.5C``)
C_RATE_BELOW = 10.0


def temperature_from_name(path: str | Path) -> tuple[float | None, str | None]:
    """(kelvin, warning) from a temperature written in the file name, or (None, None).

    ``...-140deg.txt`` and ``..._25C.txt`` are degrees Celsius (a ``-`` right after a
    letter separates, ``_-20C``/``_m20C`` is minus 20), ``_298K`` kelvin. A name with two
    different temperatures gives none, with a warning saying so. A bare ``C`` under
    :data:`C_RATE_BELOW` (``_1C``, ``_0.5C``) may be a C-rate and is not taken (a
    warning says so when nothing else is); ``degC``/``°C``/``deg`` always are.
    """
    stem = Path(path).stem
    found, rates = [], []
    for m in _NAME_TEMPERATURE.finditer(stem):
        v = float(m.group("v").replace("p", "."))
        text = m.group(0).lstrip("_ -")
        if m.group("u") == "C" and not m.group("sign") and v < C_RATE_BELOW:
            rates.append(text)  # "1C", "0.5C": a C-rate as often as a temperature
            continue
        v = -v if m.group("sign") else v
        found.append((v + (0.0 if m.group("u") == "K" else 273.15), text))
    if rates and not found:
        return None, (
            f"the file name's {rates[0]!r} may be a C-rate: no temperature taken from it "
            "(write degC, as in '5degC', to mean a temperature)"
        )
    kelvins = {round(k, 6) for k, _ in found}
    if not found:
        return None, None
    if len(kelvins) > 1:
        names = ", ".join(repr(t) for _, t in found)
        return None, f"the file name holds several temperatures ({names}): none taken"
    k, text = found[0]
    if k <= 0:
        return None, f"the file name's temperature {text!r} is below absolute zero: not taken"
    return k, f"temperature {k - 273.15:g} degC ({k:g} K) taken from the file name ({text!r})"


def name_temperature(data: Imported, path: str | Path) -> Imported:
    """Give spectra without a temperature the one in the file name, with a warning."""
    spectra = [sp for sp in data.get("spectra", []) if sp.get("temperature_kelvin") is None]
    if not spectra:
        return data
    kelvin, warning = temperature_from_name(path)
    if warning is not None:
        data.setdefault("warnings", []).append(warning)
    if kelvin is not None:
        for sp in spectra:
            sp["temperature_kelvin"] = kelvin
            sp["temperature_source"] = "file name"
    return data
