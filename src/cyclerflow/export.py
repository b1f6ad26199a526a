"""Cell file -> BDF CSV (cycling) or long-format EIS CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cyclerflow.store import read_cycling, read_spectra
from cyclerflow.store.atomic import atomic_output


def export_cycling_csv(cell: str | Path, out: str | Path, *, force: bool = False) -> Path:
    """Write /cycling as a BDF CSV with machine names; all-missing columns are left out."""
    ds = read_cycling(cell)
    cols = {}
    for name, var in ds.data_vars.items():
        a = var.values
        if a.dtype.kind == "f" and np.all(np.isnan(a)):
            continue
        if a.dtype.kind == "i" and np.all(a == -1):
            continue
        cols[name] = a
    order = [
        c
        for c in ("test_time_second", "unix_time_second", "voltage_volt", "current_ampere")
        if c in cols
    ]
    order += sorted(c for c in cols if c not in order)
    with atomic_output(out, force=force) as tmp:
        pd.DataFrame({c: cols[c] for c in order}).to_csv(tmp, index=False, float_format="%.17g")
    return Path(out)


def export_eis_csv(cell: str | Path, out: str | Path, *, force: bool = False) -> Path:
    """Write every spectrum to one long-format EIS CSV (spectrum_id and attributes per row)."""
    frames = []
    for sp in read_spectra(cell):
        n = sp.sizes["frequency_hertz"]
        frame = {
            "spectrum_id": np.full(n, sp.attrs["spectrum_id"]),
            "frequency_hertz": sp["frequency_hertz"].values,
            "real_impedance_ohm": sp["real_impedance_ohm"].values,
            "imaginary_impedance_ohm": sp["imaginary_impedance_ohm"].values,
        }
        for k in ("temperature_kelvin", "cycle_count", "unix_time_second"):
            v = sp.attrs.get(k)
            if v is not None and not (isinstance(v, float) and np.isnan(v)) and v != -1:
                frame[k] = np.full(n, v)
        frames.append(pd.DataFrame(frame))
    df = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(
            columns=["frequency_hertz", "real_impedance_ohm", "imaginary_impedance_ohm"]
        )
    )
    with atomic_output(out, force=force) as tmp:
        df.to_csv(tmp, index=False, float_format="%.17g")
    return Path(out)
