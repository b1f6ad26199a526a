"""Neware BTSDA CSV exports, the flat one-row-per-record kind.

Two header variants are seen in the wild (comma- or tab-separated, one header line):

- ``DataPoint, Cycle Index, Step Index, Step Type, Time, Total Time, Current(uA),
  Voltage(mV), Capacity(mAs), Energy(mWs), Date, ...`` (BTSDA 7/8 "record" export; the
  micro sign is often a single Latin-1 byte ``0xB5``);
- ``DataPoint, Cycle Index, Step Index, Step Type, Time, Cumulative Time, Current(A),
  Voltage(V), Capacity(Ah), Chg. Cap.(Ah), DChg. Cap.(Ah), Energy(Wh), ..., Date,
  Power(W), dQ/dV(mAh/V), ...``.

BTSDA lets the user choose the exported columns: ``Cycle Index``/``Step Index`` may be
missing (steps then come from the step type and the step time restarting; no vendor
numbers are stored), and a ``Date`` holding only the day gives no absolute time (a
warning says so) rather than every record at midnight.

Times are ``hh:mm:ss`` or ``hh:mm:ss.fff`` (hours may exceed 24). Units come from the
column headers (any SI prefix n/u/µ/m/k); a unit this reader does not know is refused,
never guessed. Neware's current is > 0 when charging; the reader checks that sign
against the step type (``CC Chg``/``CC DChg`` ...) and refuses a file where they
disagree. Columns kept: BDF time/voltage/current/capacity/energy, Neware's cycle and
step numbers (``vendor_*``), our ``cycle_count``/``step_count``, the step time, power.
The three-level "regular" export (cycle/step/record rows interleaved) is not this format.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cyclerflow.errors import InputError
from cyclerflow.importers import neware_fast, neware_levels
from cyclerflow.importers.common import Imported
from cyclerflow.importers.guarded import (
    MAX_WHOLE,
    check_clock,
    check_dates,
    parse_dates,
    whole_numbers,
)
from cyclerflow.importers.textfmt import _all_blank
from cyclerflow.importers.textspan import file_view, first_line

FORMAT = "neware-csv"
EXTENSIONS = (".csv", ".txt")
WHAT = "Neware BTSDA CSV"
REQUIRED = ("DataPoint", "Step Type")
#: BTSDA lets the user leave these out of an export; steps then come from the step
#: type and the step time (see :func:`_steps_without_counters`)
COUNTERS = ("Cycle Index", "Step Index")
_UNIT = re.compile(r"^(?P<name>[^()]*?)\s*\((?P<unit>[^()]*)\)\s*$")
PREFIXES = {"": 1.0, "n": 1e-9, "u": 1e-6, "µ": 1e-6, "μ": 1e-6, "m": 1e-3, "k": 1e3}
#: base unit -> (dimension, factor to our unit: A, V, A h, W h, W)
BASE_UNITS = {
    "A": ("current", 1.0),
    "V": ("voltage", 1.0),
    "Ah": ("charge", 1.0),
    "As": ("charge", 1.0 / 3600.0),
    "Wh": ("energy", 1.0),
    "Ws": ("energy", 1.0 / 3600.0),
    "W": ("power", 1.0),
}
#: column name -> (our column, dimension)
MEASURED = {
    "Current": ("current_ampere", "current"),
    "Voltage": ("voltage_volt", "voltage"),
    "Capacity": ("capacity", "charge"),
    "Chg. Cap.": ("charge_capacity_ampere_hour", "charge"),
    "DChg. Cap.": ("discharge_capacity_ampere_hour", "charge"),
    "Energy": ("energy", "energy"),
    "Chg. Energy": ("charge_energy_watt_hour", "energy"),
    "DChg. Energy": ("discharge_energy_watt_hour", "energy"),
    "Power": ("power_watt", "power"),
}
TEST_TIME = ("Total Time", "Cumulative Time")
#: read as text (times are parsed strictly here; names are compared)
TEXT_COLUMNS = ("Step Type", "Time", "Date")
#: the columns the reader uses (pyarrow converts only these)
USED = (*REQUIRED, *COUNTERS, *TEST_TIME, *TEXT_COLUMNS, *MEASURED)


@dataclass(frozen=True)
class Column:
    """One header field: position, bare name, unit text and factor to our unit."""

    index: int
    name: str
    unit: str
    factor: float


def _first_line(head: bytes) -> list[str]:
    line = head.split(b"\n", 1)[0].decode("latin-1").strip("\r\ufeff\xef\xbb\xbf")
    return [f.strip() for f in line.split(_delimiter(line))]


def _delimiter(line: str) -> str:
    """BTSDA writes commas (CSV) or tabs (TXT export); the header line tells which."""
    return "\t" if line.count("\t") > line.count(",") else ","


def _other_layout(head: bytes) -> str | None:
    """Which other BTSDA export ``head`` is (recognised to be refused by name), or None."""
    fields = _first_line(head)
    lines = head.split(b"\n", 2)
    second = lines[1].decode("latin-1").lstrip("\ufeff") if len(lines) > 1 else ""
    if fields[:1] == ["Cycle Index"] and second[1:].startswith("Step Index"):
        return (
            "a three-level export (cycle, step and record rows interleaved) whose third "
            "line is not the record header ',,DataPoint,...'"
        )
    if fields[:3] == ["Cycle ID", "Step ID", "Record ID"]:
        return "the 'Cycle ID, Step ID, Record ID' export of older BTS software"
    if _bare(lines[0])[:1] == ["Cycle ID"] and _bare(second)[:2] == ["", "Step ID"]:
        return (
            "the three-level export of older BTS software (cycle, step and record rows "
            "interleaved; 'Cycle ID', 'Step ID', 'Record ID')"
        )
    return None


def _bare(line: bytes | str) -> list[str]:
    """Comma-separated fields without the quotes, tabs and blanks around them (older
    BTS software writes each value as a quoted text starting with a tab)."""
    text = line.decode("latin-1") if isinstance(line, bytes) else line
    return [f.strip(' "\t\r\ufeff') for f in text.split(",")]


def sniff(path: Path, head: bytes) -> bool:
    """A comma- or tab-separated header starting with BTSDA's record columns (or one of
    BTSDA's other exports, which :func:`read` refuses by name)."""
    fields = _first_line(head)
    flat = all(r in fields for r in REQUIRED) and any(t in fields for t in TEST_TIME)
    return flat or neware_levels.is_three_level(head) or _other_layout(head) is not None


def _err(path: Path, msg: str, line: int | None = None) -> InputError:
    return InputError(f"{WHAT}: {msg}", path=path, where=None if line is None else f"line {line}")


def unit_factor(path: Path, header: str, unit: str, dimension: str) -> float:
    """Factor from ``unit`` (as written in ``header``) to our unit of ``dimension``."""
    u = unit.replace("\xc2\xb5", "µ").replace("\xb5", "µ").strip()  # UTF-8 read as Latin-1
    for base, (dim, f) in BASE_UNITS.items():
        if u.endswith(base) and u[: -len(base)] in PREFIXES and dim == dimension:
            return PREFIXES[u[: -len(base)]] * f
    raise _err(path, f"column {header!r}: unit {unit!r} is not a known {dimension} unit", 1)


def _columns(path: Path, fields: list[str]) -> dict[str, Column]:
    """Header fields by bare name, with the unit factor of the measured ones."""
    out: dict[str, Column] = {}
    for i, f in enumerate(fields):
        m = _UNIT.match(f)
        name, unit = (m["name"].strip(), m["unit"]) if m else (f, "")
        factor = 1.0
        if name in MEASURED:
            factor = unit_factor(path, f, unit, MEASURED[name][1])
        out.setdefault(name, Column(i, name, unit, factor))
    missing = [r for r in (*REQUIRED, "Current", "Voltage") if r not in out]
    if missing:
        raise _err(path, f"header lacks {missing} (found {fields[:12]})", 1)
    return out


#: widest duration text the fast parser takes (longer text is refused)
DURATION_WIDTH = 32


def _duration_bytes(values: pd.Series) -> np.ndarray | None:
    """Fixed-width ASCII bytes of the texts (n, DURATION_WIDTH), None for non-ASCII."""
    try:
        b = np.array(values.to_numpy(dtype=object), dtype=f"S{DURATION_WIDTH}")
    except (UnicodeEncodeError, ValueError, TypeError):
        return None
    return b.view(np.uint8).reshape(len(b), DURATION_WIDTH)


def _duration_values(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Seconds of ``[h]h:mm:ss[.fff]`` or ``ss[.fff]`` rows of bytes, and a validity mask.

    Vectorised over rows: one pass per character position (no per-row Python).
    """
    ok = m[:, -1] == 0
    width = int(np.flatnonzero(m.any(axis=0))[-1]) + 1 if m.any() else 1
    c = np.ascontiguousarray(m[:, :width].T)  # (position, row): each position contiguous
    colon, dot = c == 58, c == 46
    digit = (c >= 48) & (c <= 57)
    ncolon = colon.sum(axis=0)
    blank = (c == 0) | (c == 32)
    ok &= (colon | dot | digit | blank).all(axis=0) & ((ncolon == 0) | (ncolon == 2))
    ok &= dot.sum(axis=0) <= 1
    # blanks only around the text, never inside it
    started = np.logical_or.accumulate(~blank, axis=0)
    ended = np.logical_or.accumulate((~blank)[::-1], axis=0)[::-1]
    ok &= ~(blank & started & ended).any(axis=0)
    field = np.cumsum(colon, axis=0, dtype=np.int8) + np.where(ncolon == 0, 2, 0).astype(np.int8)
    after_dot = np.logical_or.accumulate(dot, axis=0)
    ok &= ~(dot & (field != 2)).any(axis=0)
    d = c.astype("f8") - 48.0
    vals = np.zeros((3, c.shape[1]))
    seen = np.zeros((3, c.shape[1]), dtype=bool)
    scale = np.ones(c.shape[1])
    for j in range(width):
        whole_j = digit[j] & ~after_dot[j]
        for k in range(3):
            w = whole_j & (field[j] == k)
            vals[k] += w * (vals[k] * 9.0 + d[j])
            seen[k] |= w
        frac = digit[j] & after_dot[j]
        scale *= np.where(frac, 0.1, 1.0)
        vals[2] += frac * d[j] * scale
    ok &= seen[2] & ((ncolon == 0) | (seen[0] & seen[1]))
    return vals[0] * 3600.0 + vals[1] * 60.0 + vals[2], ok


def parse_durations(path: Path, name: str, values: pd.Series) -> np.ndarray:
    """``[h]h:mm:ss[.fff]`` (hours may exceed 24) or plain seconds -> seconds (float64).

    Strict: any other text is refused naming its line.
    """
    if values.dtype.kind in "fiu":
        out, ok = values.to_numpy(dtype="f8"), np.ones(len(values), dtype=bool)
    else:
        m = _duration_bytes(values)
        if m is None:
            out, ok = np.zeros(len(values)), np.zeros(len(values), dtype=bool)
        else:
            out, ok = _duration_values(m)
    ok &= np.isfinite(out) & (out >= 0)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise _err(path, f"column {name!r}: {values.iloc[i]!r} is not hh:mm:ss", i + 2)
    return out


def _numeric(path: Path, df: pd.DataFrame, col: Column) -> np.ndarray:
    s = df.iloc[:, col.index]
    if s.dtype.kind in "fiu":
        v = s.to_numpy(dtype="f8")
    else:
        v = pd.to_numeric(s, errors="coerce").to_numpy(dtype="f8")
    bad = np.flatnonzero(~np.isfinite(v))
    if len(bad):
        raw = df.iloc[int(bad[0]), col.index]
        raise _err(path, f"column {col.name!r}: {raw!r} is not a number", int(bad[0]) + 2)
    return v * col.factor


def _integers(path: Path, df: pd.DataFrame, col: Column) -> np.ndarray:
    """A counter column as int64; a fractional or huge value is refused naming its line."""
    return whole_numbers(path, WHAT, col.name, _numeric(path, df, col), 2)


def _check_step_names(path: Path, types: pd.Series, kind: np.ndarray, current: np.ndarray) -> None:
    """Current flows but no step is recognised as charge or discharge: refuse (the step
    names decide cycles, capacities and the sign check)."""
    if not np.any(kind) and np.any(current != 0):
        names = sorted({str(t) for t in pd.unique(types)})[:8]
        raise _err(path, f"no charge or discharge step among the step types {names}", 2)


def kind_of(name: str) -> int:
    """+1 charge, -1 discharge, 0 other, from one BTSDA step type name."""
    t = name.replace(" ", "").lower()
    if "dchg" in t or "discharge" in t:
        return -1
    if "chg" in t or "charge" in t:
        return 1
    return 0


def _step_kind(types: pd.Series) -> np.ndarray:
    """+1 charge, -1 discharge, 0 other, from BTSDA's step type names (per distinct name)."""
    codes, names = pd.factorize(types.astype(str))
    return np.asarray([kind_of(str(n)) for n in names], dtype="i8")[codes]


def _check_sign(path: Path, kind: np.ndarray, current: np.ndarray) -> None:
    """Current > 0 on charge steps, < 0 on discharge steps (Neware's convention)."""
    wrong = np.flatnonzero(((kind > 0) & (current < 0)) | ((kind < 0) & (current > 0)))
    if len(wrong):
        i = int(wrong[0])
        raise _err(
            path,
            f"current {current[i]!r} A has the wrong sign for a "
            f"{'charge' if kind[i] > 0 else 'discharge'} step; refusing to guess the convention",
            i + 2,
        )


def our_cycles(kind: np.ndarray) -> np.ndarray:
    """Cycle number from 1, +1 at each charge step that follows a discharge step."""
    starts = np.flatnonzero(np.r_[True, kind[1:] != kind[:-1]])
    ends = np.r_[starts[1:], len(kind)]
    out = np.empty(len(kind), dtype="i8")
    cycle, seen_dchg = 1, False
    for a, b in zip(starts, ends, strict=True):  # one pass per run of steps, not per row
        if kind[a] > 0 and seen_dchg:
            cycle, seen_dchg = cycle + 1, False
        elif kind[a] < 0:
            seen_dchg = True
        out[a:b] = cycle
    return out


@contextmanager
def _opened(path: Path) -> Iterator[memoryview]:
    """The file as a zero-copy view (:func:`textspan.file_view`: read when small, mapped
    when large) without a UTF-8 BOM; an empty file is refused."""
    with ExitStack() as stack:
        try:
            view = stack.enter_context(file_view(path))
        except OSError as err:
            raise InputError(f"cannot read file ({err.strerror})", path=path) from None
        if _all_blank(view):
            raise _err(path, "file is empty")
        yield view[3:] if view[:3] == b"\xef\xbb\xbf" else view


def _read_table(path: Path, raw: memoryview) -> pd.DataFrame:
    first = first_line(raw).decode("latin-1")
    sep = _delimiter(first)
    fields = first.split(sep)
    as_text = {f: object for f in fields if f.strip() in (*TEXT_COLUMNS, *TEST_TIME)}
    try:
        df = pd.read_csv(
            io.BytesIO(raw),  # (a copy: this careful path is the rare one)
            sep=sep,
            dtype=as_text,
            keep_default_na=False,
            encoding="latin-1",
            engine="c",
        )
    except (ValueError, pd.errors.ParserError) as err:
        raise _err(path, f"not a consistent {sep!r}-separated table ({err})") from None
    if len(df) == 0:
        raise _err(path, "no data rows after the header", 2)
    if (df.iloc[:, -1] == "").all() and df.columns[-1].startswith("Unnamed"):
        df = df.iloc[:, :-1]
    return df


class _PandasSource:
    """Columns of the table as pandas' C parser reads them (the careful path: every
    error names its line and value)."""

    def __init__(self, path: Path, raw: memoryview) -> None:
        self.path = path
        self.df = _read_table(path, raw)
        self.names = [str(c) for c in self.df.columns]

    def numeric(self, col: Column) -> np.ndarray:
        return _numeric(self.path, self.df, col)

    def integers(self, col: Column) -> np.ndarray:
        return _integers(self.path, self.df, col)

    def durations(self, col: Column) -> np.ndarray:
        return parse_durations(self.path, col.name, self.df.iloc[:, col.index])

    def kinds(self, col: Column) -> np.ndarray:
        return _step_kind(self.df.iloc[:, col.index])

    def type_codes(self, col: Column) -> np.ndarray:
        return pd.factorize(self.df.iloc[:, col.index].astype(str))[0]

    def first_text(self, col: Column) -> str:
        return str(self.df.iloc[0, col.index]).strip()

    def check_step_names(self, col: Column, kind: np.ndarray, current: np.ndarray) -> None:
        _check_step_names(self.path, self.df.iloc[:, col.index], kind, current)

    def unix(self, col: Column) -> np.ndarray:
        return _unix_time(self.path, self.df.iloc[:, col.index])


class _ArrowSource:
    """Columns of a clean table as pyarrow reads them (see :mod:`neware_fast`); any
    doubt raises :class:`neware_fast.Doubt` and the file is read by the pandas path."""

    def __init__(self, path: Path, raw: memoryview, extra: dict[str, Any] | None = None) -> None:
        """``extra``: more columns (name -> pyarrow array, one value per row), after the
        file's own (the three-level export's cycle and step numbers and step types)."""
        self.path = path
        first = first_line(raw).decode("latin-1")
        sep = _delimiter(first)
        fields = first.split(sep)
        names = fields[:-1] if fields[-1] == "" else fields
        extra = extra or {}
        cols = _columns(path, [*names, *extra])
        wanted = {  # only the columns read below are converted
            c.index: c.name in (*TEXT_COLUMNS, *TEST_TIME)
            for c in cols.values()
            if c.name in USED and c.index < len(names)
        }
        self.table = neware_fast.read_table(raw, first, sep, wanted)
        for k, col in enumerate(extra.values()):
            self.table.columns[len(names) + k] = col
        self.names = [*names, *extra]

    def numeric(self, col: Column) -> np.ndarray:
        v = neware_fast.numbers(self.table.columns[col.index])
        if col.factor != 1.0:
            return v * col.factor
        return v if v.flags.writeable else v.copy()  # (v * 1.0 is v, bit for bit)

    def integers(self, col: Column) -> np.ndarray:
        exact = neware_fast.integers(self.table.columns[col.index])
        if exact is not None and col.factor == 1.0:
            return exact if exact.flags.writeable else exact.copy()
        v = self.numeric(col)
        if (v != np.rint(v)).any() or (np.abs(v) > MAX_WHOLE).any():
            raise neware_fast.Doubt("fraction or huge")  # the careful path names the line
        return v.astype("i8")

    def durations(self, col: Column) -> np.ndarray:
        return neware_fast.durations(self.table.columns[col.index])

    def kinds(self, col: Column) -> np.ndarray:
        return neware_fast.step_kinds(self.table.columns[col.index], kind_of)

    def type_codes(self, col: Column) -> np.ndarray:
        return neware_fast.type_codes(self.table.columns[col.index])

    def first_text(self, col: Column) -> str:
        return str(self.table.columns[col.index][0].as_py() or "").strip()

    def check_step_names(self, col: Column, kind: np.ndarray, current: np.ndarray) -> None:
        if not np.any(kind) and np.any(current != 0):
            raise neware_fast.Doubt("step names")

    def unix(self, col: Column) -> np.ndarray:
        try:
            unix = neware_fast.unix_seconds(self.table.columns[col.index])
        except neware_fast.Doubt:
            texts = self.table.columns[col.index].to_numpy(zero_copy_only=False)
            return _unix_time(self.path, pd.Series(texts, dtype=object))
        return {"unix_time_second": _checked_clock(self.path, unix)}


def _capacities(
    cols: dict[str, Column], src: _PandasSource | _ArrowSource, kind: np.ndarray
) -> dict:
    out: dict[str, np.ndarray] = {}
    for name in ("Chg. Cap.", "DChg. Cap.", "Chg. Energy", "DChg. Energy", "Power"):
        if name in cols:
            out[MEASURED[name][0]] = src.numeric(cols[name])
    for name, (chg, dchg) in {
        "Capacity": ("charge_capacity_ampere_hour", "discharge_capacity_ampere_hour"),
        "Energy": ("charge_energy_watt_hour", "discharge_energy_watt_hour"),
    }.items():
        if name in cols and chg not in out:
            v = src.numeric(cols[name])  # a new array: made the discharge one below
            np.abs(v, out=v)
            out[chg] = np.where(kind > 0, v, 0.0)
            v[kind >= 0] = 0.0
            out[dchg] = v
    return out


def read(path: str | Path) -> Imported:
    """Read a BTSDA record export into BDF columns (SI, current > 0 charging).

    A clean table is read by pyarrow; anything unusual (and every error) goes through
    pandas' parser, which names the line and value."""
    path = Path(path)
    with _opened(path) as raw:
        head = bytes(raw[:4096])
        if neware_levels.is_three_level(head):
            return _three_level(path, raw)
        other = _other_layout(head)
        if other is not None:
            raise _err(
                path,
                f"this is {other}, which is not read: export the record layer from BTSDA "
                "(one row per record: DataPoint, Cycle Index, Step Index, Step Type, Time, ...)",
                1,
            )
        return _read_flat(path, raw)


def _read_flat(path: Path, raw: memoryview) -> Imported:
    """The flat export: pyarrow for a clean table, else pandas (which names the line)."""
    try:
        return _assemble(path, _ArrowSource(path, raw))
    except (neware_fast.Doubt, InputError):
        pass
    return _assemble(path, _PandasSource(path, raw))


def _three_level(path: Path, raw: memoryview) -> Imported:
    """The three-level export read as the flat export of its record rows: pyarrow on the
    record rows with the cycle and step columns added; else (any doubt or error) the
    flat text of :func:`neware_levels.flatten` read as a flat export, every error naming
    the line in the file."""
    try:
        out = _assemble(path, _level_source(path, raw))
    except (neware_fast.Doubt, InputError):
        flat, where = neware_levels.flatten(path, bytes(raw).decode("latin-1"), _err)
        try:
            out = _read_flat(path, memoryview(flat))
        except InputError as err:
            raise neware_levels.remapped(path, err, where) from None
    names = out["header"].split(",")
    out["header"] = "three-level export; record columns: " + ",".join(names[4:])
    return out


def _level_source(path: Path, raw: memoryview) -> _ArrowSource:
    """The pyarrow source of a three-level export's record rows (Doubt if unusual)."""
    import pyarrow as pa

    rec = neware_levels.records(raw)
    extra = {
        "Cycle Index": pa.array(rec.cycle),
        "Step Index": pa.array(rec.step),
        "Step Type": pa.array(rec.types, pa.string()).take(pa.array(rec.type_index)),
    }
    return _ArrowSource(path, memoryview(rec.body), extra)


def _step_count(vcyc: np.ndarray, vstep: np.ndarray) -> np.ndarray:
    """``step_count`` of :func:`common.vendor_counts` (from 1, +1 whenever the vendor's
    step or cycle number changes), without its cycle count."""
    change = np.zeros(len(vstep), dtype=bool)
    np.not_equal(vstep[1:], vstep[:-1], out=change[1:])
    change[1:] |= vcyc[1:] != vcyc[:-1]
    out = np.cumsum(change, dtype="i8")
    out += 1
    return out


def _counters(
    src: _PandasSource | _ArrowSource, cols: dict[str, Column], step_time: np.ndarray | None
) -> dict[str, np.ndarray]:
    """``step_count`` and the vendor's cycle/step numbers (``step_index``: the vendor
    step), or ``step_count`` alone when the export left the numbers out."""
    if not all(c in cols for c in COUNTERS):
        return {"step_count": _steps_without_counters(src, cols, step_time)}
    vcyc = src.integers(cols["Cycle Index"])
    vstep = src.integers(cols["Step Index"])
    return {
        "step_count": _step_count(vcyc, vstep),
        "vendor_cycle_index": vcyc,
        "vendor_step_index": vstep,
        "step_index": vstep,
    }


def _steps_without_counters(
    src: _PandasSource | _ArrowSource, cols: dict[str, Column], step_time: np.ndarray | None
) -> np.ndarray:
    """``step_count`` (from 1) of an export without ``Cycle Index``/``Step Index``: a new
    step wherever the step type's name changes or the step time (``Time``, s) starts
    again (it restarts at every step, so two steps of the same type in a row stay
    apart). Without a ``Time`` column two such steps merge into one."""
    codes = src.type_codes(cols["Step Type"])
    change = np.zeros(len(codes), dtype=bool)
    np.not_equal(codes[1:], codes[:-1], out=change[1:])
    if step_time is not None:
        change[1:] |= step_time[1:] < step_time[:-1]
    out = np.cumsum(change, dtype="i8")
    out += 1
    return out


def _assemble(path: Path, src: _PandasSource | _ArrowSource) -> Imported:
    """BDF columns from the table's columns, with every check."""
    cols = _columns(path, src.names)
    tname = next((t for t in TEST_TIME if t in cols), None)
    if tname is None:
        raise _err(path, f"header has no test-time column ({' or '.join(TEST_TIME)})", 1)
    t = src.durations(cols[tname])
    back = np.flatnonzero(np.diff(t) < 0)
    if len(back):
        raise _err(path, f"{tname} goes backwards", int(back[0]) + 3)
    kind = src.kinds(cols["Step Type"])
    current = src.numeric(cols["Current"])
    _check_sign(path, kind, current)
    src.check_step_names(cols["Step Type"], kind, current)
    step_time = src.durations(cols["Time"]) if "Time" in cols else None
    cyc: dict[str, np.ndarray] = {
        "test_time_second": t,
        "voltage_volt": src.numeric(cols["Voltage"]),
        "current_ampere": current,
        "cycle_count": our_cycles(kind),
        **_counters(src, cols, step_time),
        "vendor_record_index": src.integers(cols["DataPoint"]),
    }
    units = {"vendor_record_index": "1"}
    if step_time is not None:
        cyc["step_time_second"] = step_time
        units["step_time_second"] = "s"
    warnings = []
    first_date = src.first_text(cols["Date"]) if "Date" in cols else None
    if first_date is not None and ":" not in first_date:
        warnings.append(
            f"'Date' holds no time of day ({first_date!r} on line 2): "
            "imported without absolute time"
        )
    elif first_date is not None:
        cyc.update(src.unix(cols["Date"]))
    extra = _capacities(cols, src, kind)
    if "power_watt" in extra:
        units["power_watt"] = "W"
    cyc.update(extra)
    header = ",".join(src.names)
    return {"cycling": cyc, "spectra": [], "units": units, "header": header, "warnings": warnings}


def _unix_time(path: Path, dates: pd.Series) -> dict[str, np.ndarray]:
    """``Date`` (local wall clock, no zone: stored as if UTC, like the other readers)."""
    formats = ("%Y-%m-%d %H:%M:%S", "mixed")
    unix = parse_dates(path, WHAT, "Date", dates, 2, formats=formats)  # range checked there
    check_clock(path, WHAT, "Date", unix, 2)
    return {"unix_time_second": unix}


def _checked_clock(path: Path, unix: np.ndarray) -> np.ndarray:
    """``Date`` as Unix s when every date is in 1900..2200 and never steps back by more
    than an hour; else fail naming the line (rows from line 2)."""
    check_dates(path, WHAT, "Date", unix, 2)
    check_clock(path, WHAT, "Date", unix, 2)
    return unix
