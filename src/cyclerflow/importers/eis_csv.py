"""Neutral long-format EIS CSV: one row per point, spectra told apart by spectrum_id."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cyclerflow.errors import InputError
from cyclerflow.importers.common import Imported
from cyclerflow.importers.csvtable import read_header_line, read_numeric_table, split_header

FORMAT = "eis-csv"
EXTENSIONS = (".csv", ".txt")
#: what :func:`sniff` looks for (said when no reader fits)
SIGNATURE = "a header naming frequency_hertz, real_impedance_ohm and imaginary_impedance_ohm"
REQUIRED = ("frequency_hertz", "real_impedance_ohm", "imaginary_impedance_ohm")
OPTIONAL = ("spectrum_id", "temperature_kelvin", "cycle_count", "unix_time_second")
RENAME = {c: c for c in REQUIRED + OPTIONAL}


def sniff(path: Path, head: bytes) -> bool:
    _, fields = split_header(read_header_line(path, head))
    return all(r in {f.lower() for f in fields} for r in REQUIRED)


def read(path: str | Path) -> Imported:
    """Read the long EIS CSV; rows without spectrum_id form one spectrum."""
    path = Path(path)
    cols, first = read_numeric_table(
        path,
        rename=RENAME,
        required=REQUIRED,
        integer=("spectrum_id", "cycle_count"),
        what="long-format EIS CSV",
    )
    f = cols["frequency_hertz"]
    if np.any(f <= 0):
        i = int(np.flatnonzero(f <= 0)[0])
        raise InputError("frequency must be > 0 Hz", path=path, where=f"line {first + i}")
    sid = cols.get("spectrum_id", np.ones(len(f), dtype="i8"))
    spectra = []
    # keep spectra in order of first appearance, points in file order
    _, first_idx = np.unique(sid, return_index=True)
    for s in sid[np.sort(first_idx)]:
        m = sid == s
        sp = {
            "spectrum_id": int(s),
            "frequency_hertz": f[m],
            "real_impedance_ohm": cols["real_impedance_ohm"][m],
            "imaginary_impedance_ohm": cols["imaginary_impedance_ohm"][m],
        }
        for k in ("temperature_kelvin", "cycle_count", "unix_time_second"):
            if k in cols:
                vals = np.unique(cols[k][m])
                if len(vals) > 1:
                    raise InputError(
                        f"spectrum {int(s)} has more than one {k} ({vals[:3].tolist()})", path=path
                    )
                sp[k] = vals[0].item()
        spectra.append(sp)
    return {"cycling": {}, "spectra": spectra, "header": read_header_line(path)}
