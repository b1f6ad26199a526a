"""Guarded conversions shared by the readers: a date, a whole number or a time read
from a vendor file either converts correctly or fails once with an :class:`InputError`
naming the file, the line (or row) and the column, never a pandas/pyarrow exception
and never a silently wrapped or clipped value.

- dates: 1900-01-01 .. 2200-01-01 UTC (:data:`UNIX_MIN_S` .. :data:`UNIX_MAX_S`);
  outside that a cycler's clock was not set or a digit was damaged. Text dates with a
  UTC offset on every row are converted to UTC (a DST change gives mixed offsets);
  rows with and without an offset in one column are refused (no rule says which zone
  the naive rows are in).
- whole numbers (cycle, step, record counters): finite and at most 2**53 in size
  (beyond it float64 cannot hold every integer, so the value is not what the file says).
- numeric pyarrow columns: cast to float64 without pyarrow's overflow refusal
  (integers beyond 2**53 round to the nearest float64, as pandas reads them).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cyclerflow.errors import InputError

#: earliest plausible date, 1900-01-01T00:00:00Z, Unix s
UNIX_MIN_S = -2208988800.0
#: latest plausible date, 2200-01-01T00:00:00Z, Unix s
UNIX_MAX_S = 7258118400.0
#: largest counter magnitude float64 holds exactly
MAX_WHOLE = 2**53
#: a wall clock may step back this much between rows (DST ends, NTP), s
MAX_CLOCK_STEP_BACK_S = 3600.0

#: a time of day followed by a UTC offset (``Z``, ``+01``, ``-05:00``, ``+0530``)
_OFFSET = re.compile(r"\d:\d\d(?::\d\d)?(?:[.,]\d*)?\s*(?:Z|[+-]\d\d(?::?\d\d)?)$", re.IGNORECASE)


def _error(path: str | Path, fmt: str, message: str, where: str) -> InputError:
    prefix = f"{fmt}: " if fmt else ""
    return InputError(f"{prefix}{message}", path=path, where=where)


def show_unix(t: float) -> str:
    """A Unix time as an ISO date for messages (any float, even far outside the range)."""
    if not np.isfinite(t):
        return repr(float(t))
    days, sec = divmod(int(np.floor(t)), 86400)
    if abs(days) > 3_000_000:
        return f"{t:.6g} s"
    d = np.datetime64("1970-01-01") + np.timedelta64(days, "D")
    h, rem = divmod(sec, 3600)
    return f"{d} {h:02d}:{rem // 60:02d}:{rem % 60:02d}"


def float64(col: Any) -> np.ndarray:
    """A numeric pyarrow (Chunked)Array as a float64 array; nulls become NaN."""
    import pyarrow as pa

    return (
        col.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False).astype("f8", copy=False)
    )


def whole_numbers(
    path: str | Path, fmt: str, name: str, values: np.ndarray, first: int, unit: str = "line"
) -> np.ndarray:
    """A counter column as int64: every value finite, whole and at most 2**53 in size;
    else fail naming ``{unit} {first + i}`` of the first bad value."""
    v = np.asarray(values)
    if v.dtype.kind in "iu":
        if v.dtype.kind == "u" and len(v) and int(v.max()) > MAX_WHOLE:
            i = int(np.argmax(v > MAX_WHOLE))
            raise _error(path, fmt, _not_whole(name, v[i]), f"{unit} {first + i}")
        return v.astype("i8", copy=False)
    v = v.astype("f8", copy=False)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(v) | (np.abs(v) > MAX_WHOLE) | (v != np.round(v))
    if bad.any():
        i = int(np.argmax(bad))
        raise _error(path, fmt, _not_whole(name, v[i]), f"{unit} {first + i}")
    return v.astype("i8")


def _not_whole(name: str, value: float) -> str:
    return (
        f"column {name!r}: {float(value)!r} is not a whole number "
        f"(integer columns hold whole numbers, finite, at most 2**53 in size)"
    )


def check_dates(
    path: str | Path, fmt: str, name: str, unix_s: np.ndarray, first: int, unit: str = "line"
) -> np.ndarray:
    """``unix_s`` (s) when every finite value is a date in 1900..2200; else fail naming
    the first one outside. NaN (no date on the row) passes: readers decide on those."""
    u = np.asarray(unix_s, dtype="f8")
    with np.errstate(invalid="ignore"):
        bad = np.isinf(u) | (u < UNIX_MIN_S) | (u >= UNIX_MAX_S)
    if bad.any():
        i = int(np.argmax(bad))
        raise _error(
            path,
            fmt,
            f"column {name!r}: date {show_unix(u[i])} is outside 1900-01-01 .. 2200-01-01",
            f"{unit} {first + i}",
        )
    return u


def parse_dates(
    path: str | Path,
    fmt: str,
    name: str,
    texts: Sequence[object],
    first: int,
    *,
    formats: Sequence[str] = ("mixed",),
    unit: str = "line",
) -> np.ndarray:
    """Date/time texts -> Unix s (naive = taken as UTC, like every reader here). The
    first of ``formats`` that reads every row wins; a row no format reads, a date
    outside 1900..2200 or a column mixing rows with and without a UTC offset fails
    naming ``{unit} {first + i}`` and the text."""
    s = pd.Series([str(x).strip() for x in texts], dtype=object)
    t = _first_format(s, formats, utc=False)
    if t is None or t.isna().any():  # rows with UTC offsets? (the regex only runs here)
        if _all_zoned(path, fmt, name, s, first, unit):
            t = _first_format(s, formats, utc=True)
    if t is None or t.isna().any():
        i = 0 if t is None else int(np.flatnonzero(t.isna().to_numpy())[0])
        raise _error(
            path,
            fmt,
            f"column {name!r}: {s.iloc[i]!r} is not a date (or outside 1900..2200)",
            f"{unit} {first + i}",
        )
    if t.dt.tz is not None:
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    unix = t.to_numpy("datetime64[us]").astype("i8") / 1e6
    return check_dates(path, fmt, name, unix, first, unit)


def _all_zoned(path: str | Path, fmt: str, name: str, s: pd.Series, first: int, unit: str) -> bool:
    """True when every row carries a UTC offset, False when none does; a column mixing
    both fails naming the first row unlike the first."""
    aware = s.str.contains(_OFFSET, regex=True).to_numpy(dtype=bool)
    if aware.any() and not aware.all():
        i = int(np.flatnonzero(aware != aware[0])[0])
        raise _error(
            path,
            fmt,
            f"column {name!r}: {s.iloc[i]!r} "
            f"{'has' if aware[i] else 'lacks'} a UTC offset, unlike {s.iloc[0]!r}",
            f"{unit} {first + i}",
        )
    return bool(aware.all())


def _first_format(s: pd.Series, formats: Sequence[str], *, utc: bool) -> pd.Series | None:
    """The parse by the first of ``formats`` that reads every row, else the last parse
    (NaT where a row did not parse); None when pandas refused the column as a whole
    (e.g. rows with and without a UTC offset)."""
    t = None
    for f in formats:
        try:
            t = pd.to_datetime(s, format=f, errors="coerce", utc=utc)
        except (ValueError, TypeError, OverflowError):
            t = None
            continue
        if not t.isna().any():
            return t
    return t


def check_clock(
    path: str | Path, fmt: str, name: str, unix_s: np.ndarray, first: int, unit: str = "line"
) -> None:
    """Fail where a wall-clock column steps back by more than an hour (a DST change or
    a clock sync steps back less; more is a damaged date)."""
    u = np.asarray(unix_s, dtype="f8")
    with np.errstate(invalid="ignore"):
        back = np.flatnonzero(np.diff(u) < -MAX_CLOCK_STEP_BACK_S)
    if len(back):
        i = int(back[0]) + 1
        raise _error(
            path,
            fmt,
            f"column {name!r}: the date steps back from {show_unix(u[i - 1])} "
            f"to {show_unix(u[i])} (more than an hour)",
            f"{unit} {first + i}",
        )


def check_imported(data: dict[str, Any], path: str | Path) -> None:
    """The last check on what any reader returns (rows counted from 1, spectra too):
    test time finite, non-negative and non-decreasing, dates inside 1900..2200 and the
    wall clock never stepping back by more than an hour."""
    fmt = str(data.get("format", ""))
    cyc = data.get("cycling") or {}
    t = cyc.get("test_time_second")
    if t is not None and len(t):
        _check_test_time(path, fmt, np.asarray(t, dtype="f8"))
    u = cyc.get("unix_time_second")
    if u is not None and len(u):
        check_dates(path, fmt, "unix_time_second", u, 1, "row")
        check_clock(path, fmt, "unix_time_second", u, 1, "row")
    for k, sp in enumerate(data.get("spectra") or [], start=1):
        _check_spectrum(path, fmt, sp, k)


def _check_spectrum(path: str | Path, fmt: str, sp: dict[str, Any], k: int) -> None:
    """Spectrum ``k``: frequency (Hz) finite and > 0, impedance (Ohm) finite, equal
    lengths, every float attribute finite, its date in 1900..2200."""
    where = f"spectrum {k}"
    f = np.asarray(sp["frequency_hertz"], dtype="f8")
    re_z = np.asarray(sp["real_impedance_ohm"], dtype="f8")
    im_z = np.asarray(sp["imaginary_impedance_ohm"], dtype="f8")
    if not len(f) == len(re_z) == len(im_z):
        raise _error(path, fmt, "frequency and impedance columns differ in length", where)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(f) | (f <= 0) | ~np.isfinite(re_z) | ~np.isfinite(im_z)
    if bad.any():
        i = int(np.argmax(bad))
        raise _error(
            path,
            fmt,
            f"point {i + 1}: frequency {float(f[i])!r} Hz, impedance "
            f"{float(re_z[i])!r} {float(im_z[i]):+} j Ohm (frequency must be > 0, all finite)",
            where,
        )
    for key, value in sp.items():  # amplitude, dc_level, temperature ... from a header
        if isinstance(value, float) and not np.isfinite(value):
            raise _error(path, fmt, f"{key} is {value!r} (a header value not a number)", where)
    when = sp.get("unix_time_second")
    if when is not None:
        check_dates(path, fmt, "unix_time_second", np.atleast_1d(when), k, "spectrum")


def _check_test_time(path: str | Path, fmt: str, t: np.ndarray) -> None:
    """Test time (s) finite, >= 0 and non-decreasing; else fail naming the row."""
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(t) | (t < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise _error(
            path, fmt, f"test time {float(t[i])!r} s is negative or not finite", f"row {i + 1}"
        )
    back = np.flatnonzero(np.diff(t) < 0)
    if len(back):
        i = int(back[0]) + 1
        raise _error(
            path,
            fmt,
            f"test time goes backwards ({float(t[i - 1])!r} s -> {float(t[i])!r} s)",
            f"row {i + 1}",
        )
