"""Cell file -> BDF CSV (cycling) or long-format EIS CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cyclerflow.errors import InputError
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


def _spectrum_frame(sp, id_dtype: str | None = None) -> dict[str, np.ndarray]:
    """One spectrum as long-format columns: spectrum_id, frequency (Hz), Z' and Z'' (Ohm),
    and each of temperature (K), cycle count, unix time (s) that the spectrum records."""
    n = sp.sizes["frequency_hertz"]
    frame = {
        "spectrum_id": np.full(n, sp.attrs["spectrum_id"], id_dtype),
        "frequency_hertz": sp["frequency_hertz"].values,
        "real_impedance_ohm": sp["real_impedance_ohm"].values,
        "imaginary_impedance_ohm": sp["imaginary_impedance_ohm"].values,
    }
    for k in ("temperature_kelvin", "cycle_count", "unix_time_second"):
        v = sp.attrs.get(k)
        if v is not None and not (isinstance(v, float) and np.isnan(v)) and v != -1:
            frame[k] = np.full(n, v)
    return frame


def export_eis_csv(cell: str | Path, out: str | Path, *, force: bool = False) -> Path:
    """Write every spectrum to one long-format EIS CSV (spectrum_id and attributes per row)."""
    frames = []
    for sp in read_spectra(cell):
        frame = _spectrum_frame(sp)
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


# --- Battery Data Format (BDF) tables: CSV or Parquet with BDF's column labels --------

BDF_FORMATS = ("bdf-csv", "bdf-parquet")
_SUFFIX = {"bdf-csv": ".csv", "bdf-parquet": ".parquet"}
#: first columns, in this order, when present; the rest follow sorted
_FIRST = ("test_time_second", "voltage_volt", "current_ampere", "cycle_count", "step_count")


def bdf_label(name: str, units: str) -> str:
    """BDF's label of a machine name (``Voltage / V``), else ``name / units``."""
    from cyclerflow.schema import BDF_LABELS

    by_name = {v: k for k, v in BDF_LABELS.items()}
    return by_name.get(name, f"{name} / {units or '1'}")


def bdf_cycling_table(cell: str | Path):
    """/cycling as a pyarrow Table with BDF labels; all-missing columns left out."""
    import pyarrow as pa

    ds = read_cycling(cell)
    keep = {}
    for name, var in ds.data_vars.items():
        a = var.values
        if (a.dtype.kind == "f" and np.all(np.isnan(a))) or (
            a.dtype.kind == "i" and np.all(a == -1)
        ):
            continue
        keep[name] = (a, str(var.attrs.get("units", "1")))
    order = [c for c in _FIRST if c in keep] + sorted(c for c in keep if c not in _FIRST)
    return pa.table({bdf_label(c, keep[c][1]): keep[c][0] for c in order}), ds.attrs.get(
        "cell_id", ""
    )


def bdf_eis_table(cell: str | Path):
    """Every spectrum as one long table (spectrum_id + machine names, as the EIS CSV)."""
    import pyarrow as pa

    frames = []
    for sp in read_spectra(cell):
        frame = _spectrum_frame(sp, id_dtype="i8")
        frames.append(pa.table(frame))
    if not frames:
        raise InputError("the cell file has no spectra to export", path=cell)
    return pa.concat_tables(frames, promote_options="default")


def default_bdf_name(cell: str | Path, cell_id: str, fmt: str, eis: bool) -> Path:
    """``<cell_id>.bdf.csv`` / ``.bdf.parquet`` (``.eis.`` for spectra) beside the cell file."""
    cell = Path(cell)
    stem = cell_id or cell.stem
    return cell.with_name(f"{stem}.{'eis' if eis else 'bdf'}{_SUFFIX[fmt]}")


def export_bdf(
    cell: str | Path,
    out: str | Path | None = None,
    *,
    fmt: str = "bdf-csv",
    eis: bool = False,
    force: bool = False,
) -> Path:
    """Write the cell's BDF table (or its spectra with ``eis``) as CSV or Parquet.

    Floats are written so that they read back bit for bit (CSV: shortest round-trip
    digits; Parquet: binary). Atomic: a temporary file renamed at the end.
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt not in BDF_FORMATS:
        raise InputError(f"unknown export format {fmt!r} (known: {', '.join(BDF_FORMATS)})")
    if eis:
        table, cell_id = bdf_eis_table(cell), read_cycling(cell).attrs.get("cell_id", "")
    else:
        table, cell_id = bdf_cycling_table(cell)
    target = Path(out) if out is not None else default_bdf_name(cell, cell_id, fmt, eis)
    with atomic_output(target, force=force) as tmp:
        if fmt == "bdf-csv":
            pacsv.write_csv(table, tmp, write_options=pacsv.WriteOptions(quoting_style="none"))
        else:
            pq.write_table(table, tmp)
    return target


def export_any(
    cell: str | Path, out: str | Path | None, *, fmt: str, eis: bool, force: bool
) -> Path:
    """The ``export`` command: ``csv`` (machine names, needs ``out``) or a BDF format."""
    if fmt in BDF_FORMATS:
        return export_bdf(cell, out, fmt=fmt, eis=eis, force=force)
    if fmt != "csv":
        raise InputError(f"unknown export format {fmt!r} (known: csv, {', '.join(BDF_FORMATS)})")
    if out is None:
        raise InputError("--format csv needs -o OUT")
    return (export_eis_csv if eis else export_cycling_csv)(cell, out, force=force)
