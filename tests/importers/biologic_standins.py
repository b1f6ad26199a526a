"""Byte-built stand-ins for the GPL .mpr/.mpt pairs of ../shared/data/biologic.

When ../shared is absent, the tests that compare an .mpr with EC-Lab's export run on
these: an .mpr written in the documented layout with the same column ids as the vendor
file, and an .mpt written from the same values the way EC-Lab prints them (8 significant
digits, ``d.dddddddE+xxx``, the export's extra ``<I>/mA``). Each pair comes with a
:class:`Truth` holding the values the tests check (known by construction).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from biologic_mpr_writer import MAGIC, data_content, module

OLE_EPOCH = datetime(1899, 12, 30, tzinfo=UTC)
LOG_AT = {"Host": 849, "Address": 900, "ver": 951, "server": 958, "interp": 965, "sn": 975}


@dataclass(frozen=True)
class Truth:
    """What a test may assert about a pair (vendor facts or construction values)."""

    rows: int
    n_mpr_columns: int
    start: datetime
    first_data_line: int = 0
    facts: dict = field(default_factory=dict)


def flag_columns(flags: np.ndarray) -> dict[str, np.ndarray]:
    """The text-export columns EC-Lab derives from the ``flags`` byte (its bit fields)."""
    return {
        "mode": flags & 3,
        "ox/red": (flags >> 2) & 1,
        "error": (flags >> 3) & 1,
        "control changes": (flags >> 4) & 1,
        "Ns changes": (flags >> 5) & 1,
        "counter inc.": (flags >> 7) & 1,
    }


def _log(start: datetime, info: dict[str, str]) -> bytes:
    log = bytearray(1100)
    struct.pack_into("<d", log, 585, (start - OLE_EPOCH).total_seconds() / 86400.0)
    for key, off in LOG_AT.items():
        raw = info[key].encode("latin-1")
        log[off] = len(raw)
        log[off + 1 : off + 1 + len(raw)] = raw
    return bytes(log)


def _mpr(ids, rec, *, new: bool, technique: int, start: datetime, info: dict) -> bytes:
    version = 11 if new else 3
    data = data_content(ids, rec, version)
    out = MAGIC.ljust(48) + bytes(4)
    out += module(b"VMP Set", b"VMP settings", bytes([technique]) + bytes(100), 0, new)
    out += module(b"VMP data", b"VMP data", data, version, new)
    out += module(b"VMP LOG", b"VMP LOG", _log(start, info), 0, new)
    return out


def _fmt(v, kind: str, comma: bool) -> str:
    if kind in "iu":
        return str(int(v))
    mant, exp = f"{float(v):.7E}".split("E")
    s = f"{mant}E{int(exp):+04d}"  # EC-Lab prints three exponent digits: 1.0000000E+001
    return s.replace(".", ",") if comma else s


def _mpt(
    title: str, cols: dict, start: datetime, info: dict, settings: list[str], comma: bool
) -> bytes:
    head = [
        "EC-Lab ASCII FILE",
        "",  # Nb header lines, filled below
        "",
        title,
        "",
        f"Run on channel : 1 (SN {info['sn']})",
        f"Acquisition started on : {start:%m/%d/%Y %H:%M:%S}.{start.microsecond // 1000:03d}",
        "Saved on :",
        f"\tHost : {info['Host']}",
        f"Device : SP-150 (SN {info['sn']})",
        f"Address : {info['Address']}",
        f"EC-Lab for windows v{info['ver']} (software)",
        f"Internet server v{info['server']} (firmware)",
        f"Command interpretor v{info['interp']} (firmware)",
        "Electrode surface area : 0.001 cm²",
        *settings,
    ]
    names = list(cols)
    head.append("\t".join(names) + "\t")
    head[1] = f"Nb header lines : {len(head)}"
    kinds = [np.asarray(cols[c]).dtype.kind for c in names]
    n = len(np.asarray(cols[names[0]]))
    rows = [
        "\t".join(_fmt(cols[c][i], k, comma) for c, k in zip(names, kinds, strict=True)) + "\t"
        for i in range(n)
    ]
    return ("\r\n".join(head + rows) + "\r\n").encode("latin-1")


def _flags(mode: np.ndarray) -> np.ndarray:
    return mode.astype("u1")


INFO = {
    "Host": "192.0.2.7",
    "Address": "USB",
    "ver": "11.50",
    "server": "11.50",
    "interp": "11.50",
    "sn": "0421",
}


def gcpl(folder: Path) -> tuple[Path, Path, Truth]:
    """4 loops of rest (Ns 0) / +30 µA charge (Ns 1) / -30 µA discharge (Ns 2), 1 s records;
    no current column (dq only), EC-Lab >= 11.50 layout, decimal-comma export."""
    ids = [1, 2, 3, 21, 31, 65, 131, 4, 7, 13, 5, 6, 39, 467, 468, 70]
    per = [(0, 0.0, 3), (1, 30e-6, 10), (2, -30e-6, 10)]
    ns, cur = [], []
    for _ in range(4):
        for s, i, k in per:
            ns += [s] * k
            cur += [i] * k
    n = len(ns)
    dt = np.dtype(
        [
            ("flags", "u1"),
            ("Ns", "<u2"),
            ("t", "<f8"),
            ("dq", "<f8"),
            ("qq0", "<f8"),
            ("ctl", "<f4"),
            ("E", "<f4"),
            ("rng", "<u2"),
            ("q", "<f8"),
            ("half", "<u4"),
            ("P", "<f4"),
        ]
    )
    rec = np.zeros(n, dtype=dt)
    rec["Ns"] = ns
    i_a = np.array(cur)
    rec["t"] = 100.0 + np.arange(n) * 1.0
    rec["dq"] = np.r_[0.0, i_a[1:] * 1.0 / 3.6]  # mA.h over the 1 s before each record (A s / 3.6)
    rec["qq0"] = np.cumsum(rec["dq"])
    rec["ctl"] = i_a * 1e3
    rec["E"] = 3.0 + 0.02 * np.cumsum(np.sign(i_a))
    rec["rng"] = 41
    loop = np.arange(n) // sum(k for _, _, k in per)
    rec["half"] = 2 * loop + (np.array(ns) == 2)
    q = np.zeros(n)
    for h in np.unique(rec["half"]):
        m = rec["half"] == h
        q[m] = np.cumsum(rec["dq"][m])
    rec["q"] = q
    rec["flags"] = np.where(i_a == 0, 3, 1)
    rec["P"] = rec["E"] * i_a
    start = datetime(2024, 1, 10, 11, 2, 29, 886000, tzinfo=UTC)
    cols = {
        **flag_columns(rec["flags"]),
        "Ns": rec["Ns"],
        "time/s": rec["t"],
        "dq/mA.h": rec["dq"],
        "(Q-Qo)/mA.h": rec["qq0"],
        "control/V/mA": rec["ctl"],
        "Ewe/V": rec["E"],
        "I Range": rec["rng"],
        "Q charge/discharge/mA.h": rec["q"],
        "half cycle": rec["half"],
        "P/W": rec["P"],
    }
    mean_i = np.r_[0.0, rec["dq"][1:] * 3.6 / np.diff(rec["t"])] * 1e3
    cols["<I>/mA"] = mean_i  # EC-Lab's export adds it (computed from the stored dq)
    cols["Capacitance charge/µF"] = np.zeros(n)
    mpr, mpt = folder / "gcpl.issue_149.mpr", folder / "gcpl.issue_149.mpt"
    mpr.write_bytes(_mpr(ids, rec, new=True, technique=0x04, start=start, info=INFO))
    mpt.write_bytes(
        _mpt("Galvanostatic Cycling with Potential Limitation", cols, start, INFO, [], comma=True)
    )
    nhead = 16  # 15 header lines + the column line
    facts = {
        "i_charge": 30e-6,
        "cycles": [1, 2, 3, 4],
        "vendor_cycles": [0, 1, 2, 3],
        "qmax": 30e-6 * 10 / 3600,
        "time0": 100.0,
    }
    return mpr, mpt, Truth(n, len(ids), start, nhead + 1, facts)


def peis(
    folder: Path, temperature_c: np.ndarray | None = None, name: str = "peis"
) -> tuple[Path, Path, Truth]:
    """One 32-point sweep 200 kHz -> 0.3 Hz of R0 + (R1 || C) (10 Ω, 5 Ω, 1 mF);
    ``temperature_c``: a ``Temperature/°C`` column (EC-Lab id 462) with these values."""
    ids = [
        32,
        37,
        38,
        36,
        35,
        4,
        77,
        76,
        169,
        172,
        24,
        39,
        33,
        34,
        13,
        471,
        96,
        98,
        99,
        100,
        101,
        430,
        431,
        432,
        433,
    ]
    n = 32
    f = np.logspace(np.log10(2e5), np.log10(0.3), n)
    z = 10.0 + 5.0 / (1 + 1j * 2 * np.pi * f * 5.0 * 1e-3)
    names = [
        "freq/Hz",
        "Re(Z)/Ohm",
        "-Im(Z)/Ohm",
        "|Z|/Ohm",
        "Phase(Z)/deg",
        "time/s",
        "<Ewe>/V",
        "<I>/mA",
        "Cs/µF",
        "Cp/µF",
        "cycle number",
        "I Range",
        "|Ewe|/V",
        "|I|/A",
        "(Q-Qo)/mA.h",
        "<Ece>/V",
        "|Ece|/V",
        "Phase(Zce)/deg",
        "|Zce|/Ohm",
        "Re(Zce)/Ohm",
        "-Im(Zce)/Ohm",
        "Phase(Zwe-ce)/deg",
        "|Zwe-ce|/Ohm",
        "Re(Zwe-ce)/Ohm",
        "-Im(Zwe-ce)/Ohm",
    ]
    if temperature_c is not None:
        ids, names = [*ids, 462], [*names, "Temperature/°C"]
    from cyclerflow.importers.biologic_columns import DATA_COLUMNS

    dt = np.dtype([(nm, DATA_COLUMNS[c][1]) for nm, c in zip(names, ids, strict=True)])
    rec = np.zeros(n, dtype=dt)
    vals = {
        "freq/Hz": f,
        "Re(Z)/Ohm": z.real,
        "-Im(Z)/Ohm": -z.imag,
        "|Z|/Ohm": abs(z),
        "Phase(Z)/deg": np.degrees(np.angle(z)),
        "time/s": 5.0 + np.arange(n) * 0.7,
        "<Ewe>/V": np.full(n, 3.1),
        "cycle number": np.ones(n),
        "I Range": np.full(n, 41),
    }
    if temperature_c is not None:
        vals["Temperature/°C"] = temperature_c
    for k, v in vals.items():
        rec[k] = v
    start = datetime(2021, 3, 2, 16, 17, 59, tzinfo=UTC)
    cols = {k: rec[k] for k in names}
    mpr, mpt = folder / f"{name}.mpr", folder / f"{name}.mpt"
    mpr.write_bytes(_mpr(ids, rec, new=False, technique=0x1D, start=start, info=INFO))
    settings = [
        "Mode                Single sine         ",
        "Va (mV)             10.0                ",
    ]
    mpt.write_bytes(
        _mpt(
            "Potentio Electrochemical Impedance Spectroscopy",
            cols,
            start,
            INFO,
            settings,
            comma=False,
        )
    )
    facts = {
        "f0": float(rec["freq/Hz"][0]),
        "re0": float(rec["Re(Z)/Ohm"][0]),
        "im0": -float(rec["-Im(Z)/Ohm"][0]),
        "amplitude": 0.010,
    }
    return mpr, mpt, Truth(n, len(ids), start, 0, facts)


def mb(folder: Path) -> tuple[Path, Path, Truth]:
    """Modulo Bat: PEIS (Ns 1, |Z|/phase only) then CC charge (Ns 3) and discharge (Ns 4)
    then PEIS again (Ns 6); 4 loops -> 8 spectra of 70 points, 40 cycling rows per loop."""
    ids = [
        1,
        2,
        3,
        21,
        31,
        65,
        131,
        39,
        4,
        5,
        6,
        8,
        7,
        13,
        74,
        32,
        36,
        35,
        467,
        468,
        469,
        123,
        124,
        125,
        126,
    ]
    from cyclerflow.importers.biologic_columns import DATA_COLUMNS

    names = [
        "flags",
        "Ns",
        "I Range",
        "time/s",
        "control/V/mA",
        "Ewe/V",
        "I/mA",
        "dq/mA.h",
        "(Q-Qo)/mA.h",
        "|Energy|/W.h",
        "freq/Hz",
        "|Z|/Ohm",
        "Phase(Z)/deg",
        "Q charge/discharge/mA.h",
        "half cycle",
        "z cycle",
        "Energy charge/W.h",
        "Energy discharge/W.h",
        "Capacitance charge/µF",
        "Capacitance discharge/µF",
    ]
    dt = np.dtype(
        [("flags", "u1")]
        + [(nm, DATA_COLUMNS[c][1]) for nm, c in zip(names[1:], ids[6:], strict=True)]
    )
    f = np.logspace(6, -1, 70)
    zz = 0.05 + 0.02 / (1 + 1j * 2 * np.pi * f * 0.02 * 0.5)
    parts = []
    for loop in range(4):
        for ns, k in [(1, 70), (3, 20), (4, 20), (6, 70)]:
            p = np.zeros(k, dtype=dt)
            p["Ns"] = ns
            p["half cycle"] = 2 * loop + (ns >= 4)
            p["z cycle"] = loop + 1
            if ns in (1, 6):
                p["freq/Hz"] = f
                p["|Z|/Ohm"] = abs(zz)
                p["Phase(Z)/deg"] = np.degrees(np.angle(zz))
                p["flags"] = 3
            else:
                p["I/mA"] = 2.8 if ns == 3 else -2.8
                p["flags"] = 1
            p["Ewe/V"] = 3.7
            parts.append(p)
    rec = np.concatenate(parts)
    rec["time/s"] = np.arange(len(rec)) * 2.0
    start = datetime(2022, 6, 1, 9, 0, 0, tzinfo=UTC)
    cols = {
        **flag_columns(rec["flags"]),
    }
    cols.update({k: rec[k] for k in names[1:]})
    mpr, mpt = folder / "mb.mpr", folder / "mb.mpt"
    mpr.write_bytes(_mpr(ids, rec, new=False, technique=0x7F, start=start, info=INFO))
    w = 20
    settings = [
        "Ns".ljust(w) + "".join(str(i).ljust(w) for i in range(7)),
        "ctrl_type".ljust(w)
        + "".join(t.ljust(w) for t in ["Rest", "PEIS", "Rest", "CC", "CC", "Rest", "PEIS"]),
        "ctrl1_val".ljust(w)
        + "".join(v.ljust(w) for v in ["", "10.000", "", "2.800", "2.800", "", "10.000"]),
        "ctrl1_val_unit".ljust(w)
        + "".join(v.ljust(w) for v in ["", "mV", "", "mA", "mA", "", "mV"]),
    ]
    mpt.write_bytes(_mpt("Modulo Bat", cols, start, INFO, settings, comma=False))
    facts = {"spectra": 8, "points": 70, "steps": {1, 6}, "amplitude": 0.010}
    return mpr, mpt, Truth(len(rec), len(ids), start, 0, facts)


BUILDERS = {"gcpl.issue_149": gcpl, "peis": peis, "mb": mb}
