"""Export the lab database to the BatteryArchive layout, as CSV tables.

Tables and columns follow BatteryArchive's PostgreSQL schema (battery-archive-sandbox,
``init.sql``): ``cell_metadata`` (cell_id, cathode, anode, source, ah, form_factor),
``cycle_data`` (cell_id, cycle_index, test_time, v_max, v_min, ah_c, ah_d, e_c, e_d,
i_max, i_min, v_c_mean, v_d_mean, e_eff, ah_eff) and ``timeseries_data`` (cell_id,
date_time, test_time, cycle_index, cycle_time, i, v, ah_c, ah_d, e_c, e_d, temp_1, temp_2).
Units: A, V, Ah, Wh, s, °C; efficiencies as fractions (cyclerflow's convention). Per-cycle
capacities and energies come from the database (cyclerflow's integration); voltage and
current extremes, test time and the time series from the cell files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from cyclerflow.store.atomic import atomic_output

CELL_METADATA = ("cell_id", "cathode", "anode", "source", "ah", "form_factor")
CYCLE_DATA = (
    "cell_id", "cycle_index", "test_time", "v_max", "v_min", "ah_c", "ah_d", "e_c", "e_d",
    "i_max", "i_min", "v_c_mean", "v_d_mean", "e_eff", "ah_eff",
)  # fmt: skip
TIMESERIES_DATA = (
    "cell_id", "date_time", "test_time", "cycle_index", "cycle_time", "i", "v",
    "ah_c", "ah_d", "e_c", "e_d", "temp_1", "temp_2",
)  # fmt: skip


def cell_metadata(cells: pd.DataFrame, layers: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: cathode/anode materials from the layer stack, ``ah`` nominal."""

    def material(role: str) -> pd.Series:
        lay = layers[layers.role == role].sort_values("position").drop_duplicates("cell_id")
        return cells.cell_id.map(dict(zip(lay.cell_id, lay.material, strict=True)))

    return pd.DataFrame(
        {
            "cell_id": cells.cell_id,
            "cathode": material("cathode"),
            "anode": material("anode"),
            "source": "cyclerflow",
            "ah": cells.nominal_capacity_uah * 1e-6,
            "form_factor": "thin_film",
        }
    )


def timeseries(cell_id: str, path: str) -> pd.DataFrame:
    """The BatteryArchive time series of one cell file (capacities/energies per cycle)."""
    from cyclerflow.store import read_cycling

    ds = read_cycling(path)
    t = ds["test_time_second"].values.astype("f8")
    i = ds["current_ampere"].values.astype("f8")
    v = ds["voltage_volt"].values.astype("f8")
    cyc = ds["cycle_count"].values if "cycle_count" in ds else np.zeros(len(t), "i8")
    same = np.r_[False, cyc[1:] == cyc[:-1]]
    dt = np.where(same, np.diff(t, prepend=t[:1]), 0.0) / 3600.0
    i_mid = 0.5 * (i + np.r_[i[:1], i[:-1]])
    p_mid = 0.5 * (i * v + np.r_[i[:1] * v[:1], (i * v)[:-1]])
    frame = pd.DataFrame({"cycle_index": cyc, "test_time": t, "i": i, "v": v})
    grp = frame.groupby("cycle_index", sort=False)
    for col, inc in (
        ("ah_c", np.clip(i_mid, 0, None) * dt),
        ("ah_d", np.clip(-i_mid, 0, None) * dt),
        ("e_c", np.clip(p_mid, 0, None) * dt),
        ("e_d", np.clip(-p_mid, 0, None) * dt),
    ):
        frame[col] = pd.Series(inc).groupby(frame.cycle_index).cumsum()
    frame["cycle_time"] = t - grp.test_time.transform("min")
    frame["cell_id"] = cell_id
    unix = ds["unix_time_second"].values if "unix_time_second" in ds else None
    frame["date_time"] = None if unix is None else pd.to_datetime(unix, unit="s")
    temp = ds["temperature_kelvin"].values - 273.15 if "temperature_kelvin" in ds else None
    frame["temp_1"] = temp
    frame["temp_2"] = None
    return frame[list(TIMESERIES_DATA)]


def cycle_data(cell_id: str, cycles: pd.DataFrame, ts: pd.DataFrame) -> pd.DataFrame:
    """Per-cycle statistics: the database's capacities/energies + extremes from ``ts``."""
    ext = ts.groupby("cycle_index").agg(
        test_time=("test_time", "max"),
        v_max=("v", "max"),
        v_min=("v", "min"),
        i_max=("i", "max"),
        i_min=("i", "min"),
    )
    c = cycles.rename(
        columns={
            "cycle": "cycle_index",
            "charge_capacity_ah": "ah_c",
            "discharge_capacity_ah": "ah_d",
            "charge_energy_wh": "e_c",
            "discharge_energy_wh": "e_d",
            "mean_charge_voltage_v": "v_c_mean",
            "mean_discharge_voltage_v": "v_d_mean",
            "energy_efficiency": "e_eff",
            "coulombic_efficiency": "ah_eff",
        }
    )
    out = c.merge(ext, left_on="cycle_index", right_index=True, how="left")
    out["cell_id"] = cell_id
    return out[list(CYCLE_DATA)]


def _write(frame: pd.DataFrame, path: Path, force: bool) -> Path:
    with atomic_output(path, force=force) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")
    return path


def archive_frames(
    root: str | Path | None, *, db: str | None = None, with_timeseries: bool = True
) -> Iterator[tuple[str, pd.DataFrame]]:
    """(table name, frame) of each BatteryArchive table, from the lab database and files."""
    from cyclerflow.db.query import table

    cells = table("cells", root, db=db)
    yield "cell_metadata", cell_metadata(cells, table("layers", root, db=db))
    all_cycles = table("cycles", root, db=db)
    stats, series = [], []
    for cell_id, path in zip(cells.cell_id, cells.path, strict=True):
        ts = timeseries(cell_id, path)
        stats.append(cycle_data(cell_id, all_cycles[all_cycles.cell_id == cell_id], ts))
        if with_timeseries:
            series.append(ts)
    yield "cycle_data", _concat(stats, CYCLE_DATA)
    if with_timeseries:
        yield "timeseries_data", _concat(series, TIMESERIES_DATA)


def _concat(frames: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def export_archive(
    root: str | Path | None,
    out: str | Path,
    *,
    db: str | None = None,
    with_timeseries: bool = True,
    force: bool = False,
) -> Iterator[Path]:
    """Write ``cell_metadata.csv``, ``cycle_data.csv`` and (optionally)
    ``timeseries_data.csv`` into ``out``; yields each path written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in archive_frames(root, db=db, with_timeseries=with_timeseries):
        yield _write(frame, out / f"{name}.csv", force)


def export_archive_to_db(
    root: str | Path | None,
    url: str,
    *,
    schema: str = "battery_archive",
    db: str | None = None,
    with_timeseries: bool = True,
) -> dict[str, int]:
    """Write the tables into the database at ``url`` (PostgreSQL: into ``schema``, created
    when missing; SQLite has no schemas, the tables go into the file). Rows per table."""
    from cyclerflow.db.archive_db import check_schema_name, write_archive_tables
    from cyclerflow.db.engine import make_engine, resolve

    target = resolve(None, url)
    engine = make_engine(target)
    if target.sqlite_path is not None:
        target.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    pg_schema = None if target.sqlite_path is not None else check_schema_name(schema)
    try:
        frames = archive_frames(root, db=db, with_timeseries=with_timeseries)
        return write_archive_tables(engine, frames, pg_schema)
    finally:
        engine.dispose()
