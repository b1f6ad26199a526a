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

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cyclerflow.errors import InputError
from cyclerflow.importers.biologic_columns import FLAG_COLUMNS
from cyclerflow.importers.common import Imported

#: technique byte of the settings module -> EC-Lab short name (the ones seen in real files)
TECHNIQUES: dict[int, str] = {0x04: "GCPL", 0x1D: "PEIS", 0x7F: "MB"}

#: integer-valued columns (compared exactly; converted to int64)
INTEGER_COLUMNS = frozenset(
    [name for name, _ in FLAG_COLUMNS.values()] + ["Ns", "I Range", "half cycle", "z cycle"]
)

#: extra (non-BDF) columns kept: EC-Lab name -> (our name, scale to SI, units)
EXTRA_COLUMNS: dict[str, tuple[str, float, str]] = {
    "(Q-Qo)/mA.h": ("charge_since_start_ampere_hour", 1e-3, "A h"),
    "P/W": ("power_watt", 1.0, "W"),
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
}

OLE_EPOCH_UNIX = -2209161600.0  # 1899-12-30T00:00:00 as Unix time (s)


def ole_to_unix(days: float) -> float:
    """OLE automation date (days since 1899-12-30) -> Unix time in s."""
    return OLE_EPOCH_UNIX + days * 86400.0


def _as_int(path: Path, name: str, values: np.ndarray, what: str, first: int) -> np.ndarray:
    """Float column holding integers -> int64; a clear error on NaN/inf/huge values."""
    v = np.asarray(values)
    if v.dtype.kind in "iu":
        return v.astype("i8")
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

    This is how EC-Lab computes ``<I>/mA`` in its export; the first record gets 0.
    """
    dq = np.asarray(dq_mah, dtype="f8")
    dt = np.diff(np.asarray(time_s, dtype="f8"))
    out = np.zeros(len(dq))
    if len(dq) > 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            i = dq[1:] * 3.6 / dt
        out[1:] = np.where(dt > 0, i, 0.0)
    return out


def _split_spectra(freq: np.ndarray, keys: list[np.ndarray]) -> list[np.ndarray]:
    """Row-index groups of impedance points: contiguous runs with f > 0, split where a key
    (cycle, z cycle, Ns) changes or the frequency sweep restarts (direction reverses)."""
    idx = np.flatnonzero(freq > 0)
    if not len(idx):
        return []
    cut = np.zeros(len(idx), dtype=bool)
    cut[0] = True
    cut[1:] |= np.diff(idx) != 1
    for k in keys:
        kv = k[idx]
        cut[1:] |= kv[1:] != kv[:-1]
    f = freq[idx]
    starts = list(np.flatnonzero(cut)) + [len(idx)]
    groups = []
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        df = np.diff(f[a:b])
        if np.all(df <= 0) or np.all(df >= 0):  # one monotonic sweep (the usual case)
            groups.append(idx[a:b])
            continue
        # sweep restart: direction of the first step is the sweep's direction
        s = a
        direction = 0.0
        for i in range(a + 1, b):
            step = np.sign(f[i] - f[i - 1])
            if step == 0 or not np.isfinite(step):
                continue
            if direction == 0:
                direction = step
            elif step != direction:
                groups.append(idx[s:i])
                s, direction = i, 0.0
        groups.append(idx[s:b])
    return groups


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
    """
    path = Path(path)
    n = len(next(iter(table.values()))) if table else 0
    t = np.asarray(table["time/s"], dtype="f8") if "time/s" in table else None
    if t is None:
        raise InputError("no 'time/s' column", path=path)

    # --- columns common to all rows -----------------------------------------------
    cyc: dict[str, np.ndarray] = {"test_time_second": t}
    if start_unix is not None:
        cyc["unix_time_second"] = start_unix + t
    for name in ("Ewe/V", "<Ewe>/V"):
        if name in table:
            cyc["voltage_volt"] = np.asarray(table[name], dtype="f8")
            break
    column_attrs: dict[str, dict[str, str]] = {}
    for name in ("I/mA", "<I>/mA"):
        if name in table:
            cyc["current_ampere"] = np.asarray(table[name], dtype="f8") * 1e-3
            # <I> is the mean over the interval ending at the record (docs/cycling.md)
            sampling = "interval_mean" if name == "<I>/mA" else "instantaneous"
            column_attrs["current_ampere"] = {"sampling": sampling}
            break
    else:
        if "dq/mA.h" in table:
            cyc["current_ampere"] = current_from_dq(table["dq/mA.h"], t)
    if "cycle number" in table:
        vcyc = _as_int(path, "cycle number", table["cycle number"], row_word, first_row)
    elif "half cycle" in table:
        vcyc = _as_int(path, "half cycle", table["half cycle"], row_word, first_row) // 2
    else:
        vcyc = None
    if vcyc is not None:
        first_cycle = int(vcyc.min()) if len(vcyc) else 0
        cyc["cycle_count"] = vcyc - first_cycle + 1
        cyc["vendor_cycle_index"] = vcyc
    if "Ns" in table:
        ns = _as_int(path, "Ns", table["Ns"], row_word, first_row)
        cyc["vendor_step_index"] = ns
        cyc["step_index"] = ns
        change = np.zeros(n, dtype="i8")
        change[1:] = ns[1:] != ns[:-1]
        cyc["step_count"] = 1 + np.cumsum(change)
    else:
        ns = None
    if "Q charge/mA.h" in table and "Q discharge/mA.h" in table:
        cyc["charge_capacity_ampere_hour"] = np.asarray(table["Q charge/mA.h"], dtype="f8") * 1e-3
        cyc["discharge_capacity_ampere_hour"] = (
            np.asarray(table["Q discharge/mA.h"], dtype="f8") * 1e-3
        )
    elif "Q charge/discharge/mA.h" in table:
        q = np.asarray(table["Q charge/discharge/mA.h"], dtype="f8") * 1e-3
        cyc["charge_capacity_ampere_hour"] = np.where(q > 0, q, 0.0)
        cyc["discharge_capacity_ampere_hour"] = np.where(q < 0, -q, 0.0)
    if "Energy charge/W.h" in table and "Energy discharge/W.h" in table:
        cyc["charge_energy_watt_hour"] = np.asarray(table["Energy charge/W.h"], dtype="f8")
        cyc["discharge_energy_watt_hour"] = np.asarray(table["Energy discharge/W.h"], dtype="f8")
    if "Temperature/°C" in table:
        cyc["temperature_kelvin"] = np.asarray(table["Temperature/°C"], dtype="f8") + 273.15
    units: dict[str, str] = {}
    for name, (ours, scale, unit) in EXTRA_COLUMNS.items():
        if name in table:
            v = np.asarray(table[name])
            cyc[ours] = v.astype("i8") if unit == "1" else v.astype("f8") * scale
            units[ours] = unit

    # --- impedance rows -> spectra ---------------------------------------------------
    spectra: list[dict[str, Any]] = []
    eis_rows = np.zeros(n, dtype=bool)
    if "freq/Hz" in table:
        freq = np.asarray(table["freq/Hz"], dtype="f8")
        if "Re(Z)/Ohm" in table and "-Im(Z)/Ohm" in table:
            re = np.asarray(table["Re(Z)/Ohm"], dtype="f8")
            im = -np.asarray(table["-Im(Z)/Ohm"], dtype="f8")
        elif "|Z|/Ohm" in table and "Phase(Z)/deg" in table:
            mag = np.asarray(table["|Z|/Ohm"], dtype="f8")
            ph = np.deg2rad(np.asarray(table["Phase(Z)/deg"], dtype="f8"))
            re, im = mag * np.cos(ph), mag * np.sin(ph)
        else:
            raise InputError("impedance rows without Re(Z)/-Im(Z) or |Z|/Phase(Z)", path=path)
        keys = [k for k in (vcyc, ns) if k is not None]
        if "z cycle" in table:
            keys.append(np.asarray(table["z cycle"]))
        for rows in _split_spectra(freq, keys):
            eis_rows[rows] = True
            sp: dict[str, Any] = {
                "spectrum_id": len(spectra) + 1,
                "frequency_hertz": freq[rows],
                "real_impedance_ohm": re[rows],
                "imaginary_impedance_ohm": im[rows],
                "technique": technique,
                "test_time_second": float(t[rows[0]]),
            }
            if start_unix is not None:
                sp["unix_time_second"] = float(start_unix + t[rows[0]])
            if vcyc is not None:
                sp["cycle_count"] = int(cyc["cycle_count"][rows[0]])
            if ns is not None:
                sp["vendor_step_index"] = int(ns[rows[0]])
                if step_techniques and int(ns[rows[0]]) in step_techniques:
                    sp["technique"] = step_techniques[int(ns[rows[0]])]
            v = cyc.get("voltage_volt")
            if v is not None:
                sp["dc_level"] = float(np.mean(v[rows]))
            spectra.append(sp)
    keep = ~eis_rows
    if not keep.any():
        cycling: dict[str, np.ndarray] = {}
        units = {}
    else:
        cycling = {k: v[keep] for k, v in cyc.items()} if eis_rows.any() else cyc
        missing = [c for c in ("voltage_volt", "current_ampere") if c not in cycling]
        if missing:
            raise InputError(
                f"no column for {', '.join(missing)} (columns: {', '.join(table)})", path=path
            )
    return {
        "cycling": cycling,
        "spectra": spectra,
        "units": units,
        "header": header,
        "column_attrs": column_attrs if cycling else {},
    }
