"""Shared pieces of the BioLogic EC-Lab importers (.mpr binary, .mpt text).

Both formats hold the same table: EC-Lab's columns, named as in its text export
(``time/s``, ``Ewe/V``, ``I/mA``, ``freq/Hz`` ...). :func:`table_to_imported` maps
such a table to BDF names in SI units and splits impedance rows into spectra, so
the two readers give the same result for the same data.

Conventions (see docs/importers-biologic-neware.md):

- current: EC-Lab's sign (I > 0 = oxidation at the working electrode) is kept, which
  is charging when the positive electrode is the working electrode (the usual cabling).
- imaginary impedance: EC-Lab stores ``-Im(Z)``; we store ``Im(Z)`` (negative = capacitive).
- cycles: ``vendor_cycle_index`` is EC-Lab's ``cycle number`` (from 0; derived as
  ``half cycle // 2`` when only that is stored, which is what EC-Lab exports);
  ``cycle_count`` = vendor cycle - first vendor cycle in the file + 1 (ours, from 1;
  EC-Lab counts GCPL cycles from 0 but PEIS repeats from 1).
- steps: ``vendor_step_index`` = ``step_index`` = ``Ns`` (sequence number);
  ``step_count`` counts sequence changes from 1.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cyclerflow.errors import InputError
from cyclerflow.importers.biologic_columns import FLAG_COLUMNS
from cyclerflow.importers.common import Imported, name_temperature

#: EC-Lab's temperature column (a probe or thermostat): cycling rows and spectra
TEMPERATURE_COLUMN = "Temperature/°C"

#: technique byte of the settings module -> EC-Lab short name (0x04, 0x1D, 0x7F seen in the
#: vendor files here; the others from public descriptions of the settings module; 0x88
#: Battery Capacity Determination from yadg's BCD support)
TECHNIQUES: dict[int, str] = {
    0x04: "GCPL",
    0x06: "CV",
    0x0B: "OCV",
    0x16: "MP",
    0x18: "CA",
    0x19: "CP",
    0x1C: "WAIT",
    0x1D: "PEIS",
    0x1E: "GEIS",
    0x30: "CV",
    0x32: "ZIR",
    0x33: "CVA",
    0x6C: "LSV",
    0x75: "coV",
    0x76: "coC",
    0x77: "GCPL",
    0x7F: "MB",
    0x88: "BCD",
}

#: integer-valued columns (compared exactly; converted to int64)
INTEGER_COLUMNS = frozenset(
    [name for name, _ in FLAG_COLUMNS.values()] + ["Ns", "I Range", "half cycle", "z cycle"]
)

#: extra (non-BDF) columns kept: EC-Lab name -> (our name, scale to SI, units)
#: (a later name giving the same column wins: ``(Q-Qo)/mA.h`` over ``(Q-Qo)/C``, the
#: instantaneous ``Ece/V`` over the interval mean ``<Ece>/V``)
EXTRA_COLUMNS: dict[str, tuple[str, float, str]] = {
    "(Q-Qo)/C": ("charge_since_start_ampere_hour", 1 / 3600, "A h"),
    "(Q-Qo)/mA.h": ("charge_since_start_ampere_hour", 1e-3, "A h"),
    "P/W": ("power_watt", 1.0, "W"),
    "<Ece>/V": ("counter_electrode_voltage_volt", 1.0, "V"),
    "Ece/V": ("counter_electrode_voltage_volt", 1.0, "V"),
    "step time/s": ("step_time_second", 1.0, "s"),
    "half cycle": ("vendor_half_cycle_index", 1.0, "1"),
    "mode": ("vendor_mode", 1.0, "1"),
}

#: EC-Lab text header name of a technique -> short name
TECHNIQUE_TITLES: dict[str, str] = {
    "Galvanostatic Cycling with Potential Limitation": "GCPL",
    "Potentio Electrochemical Impedance Spectroscopy": "PEIS",
    "Galvano Electrochemical Impedance Spectroscopy": "GEIS",
    "Modulo Bat": "MB",
    "Open Circuit Voltage": "OCV",
    "Chronoamperometry / Chronocoulometry": "CA",
    "Chronopotentiometry": "CP",
    "Cyclic Voltammetry": "CV",
    "Cyclic Voltammetry Advanced": "CVA",
    "Linear Sweep Voltammetry": "LSV",
    "IR compensation (PEIS)": "ZIR",
    "Wait": "WAIT",
    "Constant Current": "coC",
    "Constant Voltage": "coV",
    "Modular Potentio": "MP",
    "Battery Capacity Determination": "BCD",
}

#: cell voltage columns, first present wins (BT-Lab names the working-electrode voltage Ecell)
#: (``<Ewe/V>``: EC-Lab 11.52's OCV export names the mean working-electrode voltage so)
VOLTAGE_COLUMNS = ("Ewe/V", "<Ewe>/V", "<Ewe/V>", "Ecell/V", "<Ecell>/V")
#: techniques during which no current flows (the cell is at open circuit)
OPEN_CIRCUIT = frozenset({"OCV"})

OLE_EPOCH_UNIX = -2209161600.0  # 1899-12-30T00:00:00 as Unix time (s)


def ole_to_unix(days: float) -> float:
    """OLE automation date (days since 1899-12-30) -> Unix time in s."""
    return OLE_EPOCH_UNIX + days * 86400.0


def _as_int(path: Path, name: str, values: np.ndarray, what: str, first: int) -> np.ndarray:
    """Float column holding integers -> int64; a clear error on NaN/inf/huge values."""
    v = np.asarray(values)
    if v.dtype.kind in "iu":
        return v.astype("i8", copy=False)
    bad = np.flatnonzero(~np.isfinite(v) | (np.abs(v) > 2**53))
    if len(bad):
        raise InputError(
            f"column {name!r} holds {float(v[bad[0]])!r}, not a cycle/step number",
            path=path,
            where=f"{what} {first + int(bad[0])}",
        )
    return np.rint(v).astype("i8")


def current_from_dq(dq_mah: np.ndarray, time_s: np.ndarray) -> np.ndarray:
    """Mean current in A over each record from EC-Lab's ``dq/mA.h`` (charge since the previous record).

    This is how EC-Lab computes ``<I>/mA`` in its export; the first record, and a record
    whose time does not advance, get 0.
    """
    t = np.asarray(time_s, dtype="f8")
    out = np.zeros(len(t))
    if len(t) > 1:
        dt = t[1:] - t[:-1]
        cur = out[1:]
        np.multiply(np.asarray(dq_mah)[1:], 3.6, out=cur, casting="unsafe")
        stuck = ~(dt > 0)
        if stuck.any():
            dt[stuck] = 1.0
            cur[stuck] = 0.0
        np.divide(cur, dt, out=cur)
    return out


def _split_restarts(idx: np.ndarray, f: np.ndarray, a: int, b: int) -> list[np.ndarray]:
    """One non-monotonic run split where the sweep restarts: the first step's sign is
    the sweep's direction, a step against it starts a new spectrum (whose own first
    step sets its direction). Steps of 0 or NaN are skipped. One loop turn per
    spectrum, not per point."""
    sign = np.sign(np.diff(f[a:b]))
    nz = np.flatnonzero((sign != 0) & np.isfinite(sign))  # step j: from point a+j to a+j+1
    v = sign[nz]
    turns = np.flatnonzero(v[1:] != v[:-1]) + 1  # k where v[k] differs from v[k - 1]
    groups = []
    s, k = a, 0
    while k < len(nz):
        c = int(np.searchsorted(turns, k, side="right"))
        if c == len(turns):
            break
        k2 = int(turns[c])
        cut = a + 1 + int(nz[k2])
        groups.append(idx[s:cut])
        s, k = cut, k2 + 1
    groups.append(idx[s:b])
    return groups


def _split_spectra(freq: np.ndarray, keys: list[np.ndarray]) -> list[np.ndarray]:
    """Row-index groups of impedance points: contiguous runs with f > 0, split where a key
    (cycle, z cycle, Ns) changes or the frequency sweep restarts (direction reverses)."""
    idx = np.flatnonzero(freq > 0)
    if not len(idx):
        return []
    # (slices and out= arguments rather than np.diff/np.r_: a file with few points pays
    # for the calls, not the points)
    cut = np.empty(len(idx), dtype=bool)
    cut[0] = True
    np.not_equal(idx[1:] - idx[:-1], 1, out=cut[1:])
    for k in keys:
        kv = k[idx]
        cut[1:] |= kv[1:] != kv[:-1]
    f = freq[idx]
    starts = np.flatnonzero(cut)
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:]
    ends[-1] = len(idx)
    # a run is monotonic unless it has both rising and falling steps (one vectorised pass)
    df = f[1:] - f[:-1]
    up = np.zeros(len(f), dtype=bool)
    down = np.zeros(len(f), dtype=bool)
    np.greater(df, 0, out=up[:-1])
    np.less(df, 0, out=down[:-1])
    last = ends - 1  # the step from a run's last point crosses into the next run
    up[last] = down[last] = False
    mixed = (np.add.reduceat(up, starts) > 0) & (np.add.reduceat(down, starts) > 0)
    groups: list[np.ndarray] = []
    for a, b, m in zip(starts.tolist(), ends.tolist(), mixed.tolist(), strict=True):
        if m:
            groups.extend(_split_restarts(idx, f, a, b))
        else:
            groups.append(idx[a:b])
    return groups


@dataclass(frozen=True)
class _Counters:
    """EC-Lab's cycle and sequence numbers of each row (None when the table has none);
    ``first_cycle``: the smallest cycle number of the whole file (cycle_count 1)."""

    vcyc: np.ndarray | None
    ns: np.ndarray | None
    first_cycle: int = 0

    def subset(self, keep: np.ndarray) -> _Counters:
        """The same counters for the rows in ``keep`` (first_cycle unchanged)."""
        return _Counters(
            None if self.vcyc is None else self.vcyc[keep],
            None if self.ns is None else self.ns[keep],
            self.first_cycle,
        )


def subset_table(
    table: Mapping[str, np.ndarray], keep: np.ndarray, names: Collection[str] | None = None
) -> Mapping[str, np.ndarray]:
    """The rows of ``table`` in the boolean mask ``keep``, of the columns in ``names``
    (all when None; a table with its own ``subset`` method, like the .mpr record table,
    filters its records in one pass)."""
    sub = getattr(table, "subset", None)
    if sub is not None:
        return sub(keep)
    return {k: np.asarray(v)[keep] for k, v in table.items() if names is None or k in names}


#: the EC-Lab value columns (current, charge, energy, temperature, extras) that cycling
#: rows are made from, besides voltage
_CYCLING_VALUES = (
    "I/mA",
    "<I>/mA",
    "dq/mA.h",
    "(Q-Qo)/mA.h",
    "Q charge/mA.h",
    "Q discharge/mA.h",
    "Q charge/discharge/mA.h",
    "Energy charge/W.h",
    "Energy discharge/W.h",
    "Temperature/°C",
    *EXTRA_COLUMNS,
)

#: the columns the cycling rows are made from once the impedance rows are split off
#: (time, cycle and step numbers are carried separately)
_CYCLING_SOURCES = frozenset([*VOLTAGE_COLUMNS, *_CYCLING_VALUES])


#: every EC-Lab column the conversion reads (voltage: the first of VOLTAGE_COLUMNS present)
_READ_COLUMNS = (
    "time/s",
    "cycle number",
    "half cycle",
    "Ns",
    "z cycle",
    "freq/Hz",
    "Re(Z)/Ohm",
    "-Im(Z)/Ohm",
    "|Z|/Ohm",
    "Phase(Z)/deg",
    *_CYCLING_VALUES,
)


def _materialized(table: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
    """The columns the conversion reads, as contiguous float64/int64 arrays made in one
    pass, when the table can do that (the .mpr record table); else the table itself."""
    make = getattr(table, "materialize", None)
    if make is None:
        return table
    volt = next((n for n in VOLTAGE_COLUMNS if n in table), None)
    names = [n for n in (*_READ_COLUMNS, volt) if n is not None and n in table]
    return make(list(dict.fromkeys(names)))


def _f8(table: Mapping[str, np.ndarray], name: str, scale: float = 1.0) -> np.ndarray:
    """A column as float64 in one pass (scaled when ``scale`` != 1)."""
    v = np.asarray(table[name], dtype="f8")
    return v * scale if scale != 1.0 else v


def _current(
    path: Path, table: Mapping[str, np.ndarray], t: np.ndarray
) -> tuple[np.ndarray | None, dict[str, str]]:
    """Current in A and its column attributes, from the first source the table has.

    Order: ``I/mA`` (instantaneous), ``<I>/mA`` (mean over the interval ending at the
    record), then the charge counters ``dq/mA.h`` (charge since the previous record)
    and ``(Q-Qo)/mA.h`` (running charge), both as the interval mean dQ/dt.
    """
    if "I/mA" in table:
        return _f8(table, "I/mA", 1e-3), {"sampling": "instantaneous"}
    if "<I>/mA" in table:
        return _f8(table, "<I>/mA", 1e-3), {"sampling": "interval_mean"}
    if "dq/mA.h" in table:
        return current_from_dq(table["dq/mA.h"], t), {"sampling": "interval_mean"}
    if "(Q-Qo)/mA.h" in table:
        back = np.flatnonzero(np.diff(t) <= 0)
        if len(back):
            raise InputError(
                "no current column, and the current cannot be derived from the charge "
                f"counter (Q-Qo)/mA.h: time does not increase ({t[back[0]]!r} -> {t[back[0] + 1]!r})",
                path=path,
                where=f"record {int(back[0]) + 2}",
            )
        dq = np.diff(_f8(table, "(Q-Qo)/mA.h"))
        cur = np.concatenate([[0.0], dq * 3.6 / np.diff(t)])
        attrs = {"sampling": "interval_mean", "derived_from": "(Q-Qo)/mA.h"}
        return cur, attrs
    return None, {}


def _counters(
    path: Path, table: Mapping[str, np.ndarray], row_word: str, first_row: int
) -> _Counters:
    """EC-Lab cycle number (or half cycle // 2) and Ns, as int64."""
    if "cycle number" in table:
        vcyc = _as_int(path, "cycle number", table["cycle number"], row_word, first_row)
    elif "half cycle" in table:
        vcyc = _as_int(path, "half cycle", table["half cycle"], row_word, first_row) // 2
    else:
        vcyc = None
    ns = _as_int(path, "Ns", table["Ns"], row_word, first_row) if "Ns" in table else None
    first = int(vcyc.min()) if vcyc is not None and len(vcyc) else 0
    return _Counters(vcyc, ns, first)


def _counter_columns(c: _Counters, n: int) -> dict[str, np.ndarray]:
    """BDF cycle/step columns and the vendor's numbers."""
    out: dict[str, np.ndarray] = {}
    if c.vcyc is not None:
        out["cycle_count"] = c.vcyc - c.first_cycle + 1
        out["vendor_cycle_index"] = c.vcyc
    if c.ns is not None:
        out["vendor_step_index"] = c.ns
        out["step_index"] = c.ns
        count = np.empty(n, dtype="i8")  # 1, then 1 at each change: summed in place
        count[:1] = 1
        np.not_equal(c.ns[1:], c.ns[:-1], out=count[1:])
        out["step_count"] = count.cumsum(out=count)
    return out


def _capacity_energy(table: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Charge/discharge capacity (A h), energy (W h) and temperature (K) columns."""
    out: dict[str, np.ndarray] = {}
    if "Q charge/mA.h" in table and "Q discharge/mA.h" in table:
        out["charge_capacity_ampere_hour"] = _f8(table, "Q charge/mA.h", 1e-3)
        out["discharge_capacity_ampere_hour"] = _f8(table, "Q discharge/mA.h", 1e-3)
    elif "Q charge/discharge/mA.h" in table:
        q = _f8(table, "Q charge/discharge/mA.h", 1e-3)
        out["charge_capacity_ampere_hour"] = pos = np.zeros(len(q))
        out["discharge_capacity_ampere_hour"] = neg = np.zeros(len(q))
        np.copyto(pos, q, where=q > 0)
        np.negative(q, out=neg, where=q < 0)
    if "Energy charge/W.h" in table and "Energy discharge/W.h" in table:
        out["charge_energy_watt_hour"] = _f8(table, "Energy charge/W.h")
        out["discharge_energy_watt_hour"] = _f8(table, "Energy discharge/W.h")
    if TEMPERATURE_COLUMN in table:
        out["temperature_kelvin"] = _f8(table, TEMPERATURE_COLUMN) + 273.15
    return out


def _extra_columns(
    table: Mapping[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Non-BDF columns kept (EXTRA_COLUMNS) and their units."""
    cols: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    for name, (ours, scale, unit) in EXTRA_COLUMNS.items():
        if name in table:
            v = np.asarray(table[name])
            cols[ours] = v.astype("i8", copy=False) if unit == "1" else _f8(table, name, scale)
            units[ours] = unit
    return cols, units


def _cycling_columns(
    path: Path,
    table: Mapping[str, np.ndarray],
    t: np.ndarray,
    start_unix: float | None,
    counters: _Counters,
    current: tuple[np.ndarray | None, dict[str, str]],
) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, dict[str, str]]]:
    """All per-row columns in BDF names/SI, their units and column attributes."""
    cyc: dict[str, np.ndarray] = {"test_time_second": t}
    if start_unix is not None:
        cyc["unix_time_second"] = start_unix + t
    for name in VOLTAGE_COLUMNS:
        if name in table:
            cyc["voltage_volt"] = _f8(table, name)
            break
    column_attrs: dict[str, dict[str, str]] = {}
    if current[0] is not None:
        cyc["current_ampere"] = current[0]
        column_attrs["current_ampere"] = current[1]
    cyc.update(_counter_columns(counters, len(t)))
    cyc.update(_capacity_energy(table))
    extra, units = _extra_columns(table)
    cyc.update(extra)
    return cyc, units, column_attrs


def _impedance(path: Path, table: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Re(Z), Im(Z) in ohm (Im < 0 capacitive) from Re/-Im or |Z|/Phase."""
    if "Re(Z)/Ohm" in table and "-Im(Z)/Ohm" in table:
        return _f8(table, "Re(Z)/Ohm"), -_f8(table, "-Im(Z)/Ohm")
    if "|Z|/Ohm" in table and "Phase(Z)/deg" in table:
        mag = _f8(table, "|Z|/Ohm")
        ph = np.deg2rad(_f8(table, "Phase(Z)/deg"))
        return mag * np.cos(ph), mag * np.sin(ph)
    raise InputError("impedance rows without Re(Z)/-Im(Z) or |Z|/Phase(Z)", path=path)


@dataclass(frozen=True)
class _SpectrumContext:
    """What every spectrum of one table shares."""

    technique: str
    start_unix: float | None
    step_techniques: Mapping[int, str]


_Z_COLUMNS = ("Re(Z)/Ohm", "-Im(Z)/Ohm", "|Z|/Ohm", "Phase(Z)/deg")


@dataclass(frozen=True)
class _Points:
    """The impedance points of all spectra, packed group after group."""

    rows: np.ndarray  # table row of each point
    starts: np.ndarray  # offset of each spectrum's first point in ``rows``
    lengths: np.ndarray  # points per spectrum


def _pack(groups: list[np.ndarray]) -> _Points:
    lengths = np.fromiter((len(g) for g in groups), dtype="i8", count=len(groups))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return _Points(np.concatenate(groups), starts, lengths)


def _first_values(
    pts: _Points,
    t: np.ndarray,
    counters: _Counters,
    volt: np.ndarray | None,
    temp_c: np.ndarray | None = None,
) -> dict[str, list]:
    """Per spectrum: time, cycle, Ns of its first point, mean voltage and mean
    temperature (vectorised); ``volt``/``temp_c``: the voltage (V) and temperature (°C)
    of the packed points. A temperature column of zeros only (no probe) is not taken."""
    first = pts.rows[pts.starts]
    out: dict[str, list] = {"t0": t[first].tolist()}
    if counters.vcyc is not None:
        out["cycle_count"] = (counters.vcyc[first] - counters.first_cycle + 1).tolist()
    if counters.ns is not None:
        out["ns"] = counters.ns[first].tolist()
    if volt is not None:
        out["dc_level"] = (np.add.reduceat(volt, pts.starts) / pts.lengths).tolist()
    if temp_c is not None and np.all(np.isfinite(temp_c)) and np.any(temp_c != 0):
        mean_c = np.add.reduceat(temp_c, pts.starts) / pts.lengths
        out["temperature_kelvin"] = (mean_c + 273.15).tolist()
    return out


def _spectrum_dicts(
    pts: _Points,
    z: tuple[np.ndarray, np.ndarray, np.ndarray],
    first: dict[str, list],
    ctx: _SpectrumContext,
) -> list[dict[str, Any]]:
    """One dict per spectrum: its points (views into the packed arrays) and attributes."""
    freq, re, im = z
    spectra = []
    for k, (a, n) in enumerate(zip(pts.starts.tolist(), pts.lengths.tolist(), strict=True)):
        t0 = first["t0"][k]
        sp: dict[str, Any] = {
            "spectrum_id": k + 1,
            "frequency_hertz": freq[a : a + n],
            "real_impedance_ohm": re[a : a + n],
            "imaginary_impedance_ohm": im[a : a + n],
            "technique": ctx.technique,
            "test_time_second": t0,
        }
        if ctx.start_unix is not None:
            sp["unix_time_second"] = ctx.start_unix + t0
        if "cycle_count" in first:
            sp["cycle_count"] = first["cycle_count"][k]
        if "ns" in first:
            sp["vendor_step_index"] = first["ns"][k]
            sp["technique"] = ctx.step_techniques.get(first["ns"][k], ctx.technique)
        if "dc_level" in first:
            sp["dc_level"] = first["dc_level"][k]
        if "temperature_kelvin" in first:
            sp["temperature_kelvin"] = first["temperature_kelvin"][k]
            sp["temperature_source"] = "column"
        spectra.append(sp)
    return spectra


def _spectra(
    path: Path,
    table: Mapping[str, np.ndarray],
    t: np.ndarray,
    counters: _Counters,
    ctx: _SpectrumContext,
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Impedance rows split into spectra, and the mask of the rows they use.

    Only the impedance rows of the impedance columns are converted."""
    eis_rows = np.zeros(len(t), dtype=bool)
    if "freq/Hz" not in table:
        return [], eis_rows
    freq = _f8(table, "freq/Hz")
    groups = _split_spectra(freq, _split_keys(table, counters))
    if not groups:
        return [], eis_rows
    pts = _pack(groups)
    eis_rows[pts.rows] = True
    zcols = {n: np.asarray(table[n])[pts.rows] for n in _Z_COLUMNS if n in table}
    re, im = _impedance(path, zcols)
    name = next((n for n in VOLTAGE_COLUMNS if n in table), None)
    volt = None if name is None else np.asarray(table[name])[pts.rows].astype("f8")
    temp = None
    if TEMPERATURE_COLUMN in table:
        temp = np.asarray(table[TEMPERATURE_COLUMN])[pts.rows].astype("f8")
    first = _first_values(pts, t, counters, volt, temp)
    return _spectrum_dicts(pts, (freq[pts.rows], re, im), first, ctx), eis_rows


def _split_keys(table: Mapping[str, np.ndarray], counters: _Counters) -> list[np.ndarray]:
    keys = [k for k in (counters.vcyc, counters.ns) if k is not None]
    if "z cycle" in table:
        keys.append(np.asarray(table["z cycle"]))
    return keys


def table_to_imported(
    path: str | Path,
    table: Mapping[str, np.ndarray],
    *,
    start_unix: float | None,
    technique: str,
    header: str,
    row_word: str = "row",
    first_row: int = 1,
    step_techniques: Mapping[int, str] | None = None,
) -> Imported:
    """Map an EC-Lab table (export names) to BDF names, SI units and spectra.

    ``start_unix``: acquisition start (Unix s) or None; ``time/s`` counts from it.
    ``step_techniques``: Ns -> technique (Modulo Bat sequences), for spectrum attributes.
    Impedance rows are split off first, so the cycling columns are converted for the
    cycling rows only.
    """
    path = path if isinstance(path, Path) else Path(path)
    if "time/s" not in table:
        raise InputError("no 'time/s' column", path=path)
    all_names = list(table)
    table = _materialized(table)
    t = _f8(table, "time/s")
    counters = _counters(path, table, row_word, first_row)
    ctx = _SpectrumContext(technique, start_unix, step_techniques or {})
    spectra, eis_rows = _spectra(path, table, t, counters, ctx)
    keep = ~eis_rows
    if not keep.any():
        return name_temperature(
            {"cycling": {}, "spectra": spectra, "units": {}, "header": header}, path
        )
    # a current from a charge counter needs every row (dQ/dt across impedance rows)
    from_counter = "I/mA" not in table and "<I>/mA" not in table
    current = _current(path, table, t) if from_counter else (None, {})
    if eis_rows.any():
        table = subset_table(table, keep, _CYCLING_SOURCES)
        t, counters = t[keep], counters.subset(keep)
        current = (None if current[0] is None else current[0][keep], current[1])
    if not from_counter:
        current = _current(path, table, t)
    if current[0] is None and technique in OPEN_CIRCUIT:
        # an OCV export has no current column: none flows (Gamry's OCV tables likewise)
        current = (np.zeros(len(t)), {"derived_from": f"technique {technique}: open circuit"})
    cycling, units, column_attrs = _cycling_columns(path, table, t, start_unix, counters, current)
    missing = [c for c in ("voltage_volt", "current_ampere") if c not in cycling]
    if missing:
        raise InputError(
            f"no column for {', '.join(missing)} (columns: {', '.join(all_names)})", path=path
        )
    out = {
        "cycling": cycling,
        "spectra": spectra,
        "units": units,
        "header": header,
        "column_attrs": column_attrs,
    }
    return name_temperature(out, path) if spectra else out
