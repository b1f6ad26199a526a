"""A byte-built stand-in for ../shared/data/biologic/gcpl.issue_149.mpt (GPL, not shipped).

An EC-Lab GCPL text export (Latin-1, CRLF, decimal comma, ``d,dddddddE+xxx``) of four
cycles of a +3.6 mA charge (Ns 1) then a -3.6 mA discharge (Ns 2), sampled every 10 s.
As in the real file, the first record of each step comes a fraction of a millisecond
after the switch, so its ``<I>`` (EC-Lab's mean current over the interval ending at the
record) is only half the set current: read as instantaneous samples, a trapezoid misses
that interval, read as interval means the rectangle sum is exact.

The vendor columns (``Q charge/mA.h``, ``Q discharge/mA.h``, ``Energy charge/W.h``,
``Energy discharge/W.h``, ``Efficiency/%``) are written the way EC-Lab defines them:
running sums of ``<I> dt`` and ``Ewe <I> dt`` over each half cycle, efficiency =
Q discharge / Q charge of the cycle. Values are chosen so that 8 significant digits
print them exactly (3.6 mA x 10 s = 0.01 mA h per record).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: records per half cycle after the switch-on record: (charge, discharge) per cycle
RECORDS = [(12, 11), (12, 10), (12, 10), (12, 11)]
I_MA = 3.6
DT = 10.0
SWITCH = 0.0001  # s between the end of a step and the first record of the next
T0 = 100.0


def _half(i_ma: float, n: int, v0: float, slope: float) -> dict[str, np.ndarray]:
    """One half cycle: the switch-on record then ``n`` full intervals."""
    dt = np.r_[SWITCH, np.full(n, DT)]
    i = np.r_[i_ma / 2, np.full(n, i_ma)]
    v = np.round(v0 + slope * np.arange(n + 1), 6)
    return {"dt": dt, "i": i, "v": v}


def table() -> dict[str, np.ndarray]:
    """The export's columns (EC-Lab names), as floats/ints."""
    parts = []
    for cyc, (n_ch, n_dis) in enumerate(RECORDS):
        for h, (sign, n, v0, slope) in enumerate(
            [(1, n_ch, 3.5, 0.05), (-1, n_dis, 3.45 + 0.05 * n_dis, -0.05)]
        ):
            p = _half(sign * I_MA, n, v0, slope)
            p.update(cycle=np.full(n + 1, cyc + 1), half=np.full(n + 1, 2 * cyc + h))
            p["ns"] = np.full(n + 1, 1 + h)
            parts.append(p)
    col = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    col["t"] = T0 + np.cumsum(col["dt"])
    col["i"][0] = 0.0  # no interval before the first record: EC-Lab writes <I> = 0 there
    return _vendor_counters(col)


def _vendor_counters(col: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    dq = col["i"] * col["dt"] / 3600.0  # mA h
    de = col["i"] * col["v"] * col["dt"] / 3600.0 / 1000.0  # W h
    q = np.zeros_like(dq)
    e = np.zeros_like(de)
    for h in np.unique(col["half"]):
        m = col["half"] == h
        q[m], e[m] = np.cumsum(np.abs(dq[m])), np.cumsum(np.abs(de[m]))
    charging = col["i"] > 0
    col.update(
        dq=dq,
        q_ch=np.where(charging, q, 0.0),
        q_dis=np.where(charging, 0.0, q),
        e_ch=np.where(charging, e, 0.0),
        e_dis=np.where(charging, 0.0, e),
    )
    eff = np.zeros_like(q)
    for c in np.unique(col["cycle"]):
        m = (col["cycle"] == c) & ~charging
        eff[m] = q[m] / q[(col["cycle"] == c) & charging][-1] * 100.0
    col["eff"] = eff
    return col


def _fmt(x: float) -> str:
    mant, exp = f"{x:.7E}".split("E")
    return f"{mant}E{int(exp):+04d}".replace(".", ",")


def write(path: Path) -> Path:
    """Write the export to ``path`` and return it."""
    c = table()
    n = len(c["t"])
    mode = np.ones(n, int)
    cols = {
        "mode": mode,
        "ox/red": (c["i"] > 0).astype(int),
        "error": np.zeros(n, int),
        "control changes": np.zeros(n, int),
        "Ns changes": np.r_[0, np.diff(c["ns"]) != 0].astype(int),
        "counter inc.": np.zeros(n, int),
        "Ns": c["ns"],
        "time/s": c["t"],
        "control/V/mA": np.sign(c["i"]) * I_MA,
        "Ewe/V": c["v"],
        "<I>/mA": c["i"],
        "dq/mA.h": c["dq"],
        "half cycle": c["half"],
        "Q charge/mA.h": c["q_ch"],
        "Q discharge/mA.h": c["q_dis"],
        "Energy charge/W.h": c["e_ch"],
        "Energy discharge/W.h": c["e_dis"],
        "Efficiency/%": c["eff"],
        "cycle number": c["cycle"].astype(float),
    }
    head = [
        "EC-Lab ASCII FILE",
        "",
        "",
        "Galvanostatic Cycling with Potential Limitation",
        "",
        "Run on channel : 1 (SN 0421)",
        "Acquisition started on : 01/10/2024 11:02:29.886",
        "Electrode surface area : 0.001 cm²",
        "\t".join(cols) + "\t",
    ]
    head[1] = f"Nb header lines : {len(head)}"
    kinds = {k: np.asarray(v).dtype.kind for k, v in cols.items()}
    rows = [
        "\t".join(
            str(int(v[j])) if kinds[k] in "iub" else _fmt(float(v[j])) for k, v in cols.items()
        )
        + "\t"
        for j in range(n)
    ]
    path.write_bytes(("\r\n".join(head + rows) + "\r\n").encode("latin-1"))
    return path
