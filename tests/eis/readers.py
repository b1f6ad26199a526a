"""Small readers for the shared real spectra (the real importers live elsewhere)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_generic_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """freq, Z', Z'' without header (impedance.py's exampleData.csv)."""
    a = np.loadtxt(path, delimiter=",")
    return a[:, 0], a[:, 1] + 1j * a[:, 2]


def read_mpt(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """EC-Lab .mpt PEIS export: freq/Hz, Re(Z)/Ohm, -Im(Z)/Ohm (sign flipped here)."""
    lines = Path(path).read_bytes().decode("latin-1").splitlines()
    n_header = int(next(ln for ln in lines if ln.startswith("Nb header lines")).split(":")[1])
    cols = lines[n_header - 1].split("\t")
    rows = [ln.split("\t") for ln in lines[n_header:] if ln.strip()]
    a = np.array([[float(v) for v in r[: len(cols)] if v.strip()] for r in rows])
    f = a[:, cols.index("freq/Hz")]
    z = a[:, cols.index("Re(Z)/Ohm")] - 1j * a[:, cols.index("-Im(Z)/Ohm")]
    return f, z
