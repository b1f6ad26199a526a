"""Shared pieces of the importers: the result type, validation, vendor counters, merging."""

from __future__ import annotations

import calendar
import datetime as dt
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
            f"{name} goes backwards ({t[i - 1]!r} -> {t[i]!r})",
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
    column_attrs = _merged_column_attrs([p for p in parts if p.get("cycling")])
    common: Imported = {
        "spectra": spectra,
        "units": units,
        "header": header,
        "events": events,
        "column_attrs": column_attrs,
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
