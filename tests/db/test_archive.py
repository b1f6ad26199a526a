"""BatteryArchive CSV export: the layout's tables and columns, and numbers that agree."""

from __future__ import annotations

import pandas as pd
import pytest
from labmaker import CELLS

from cyclerflow.cli import main
from cyclerflow.db.archive import CELL_METADATA, CYCLE_DATA, TIMESERIES_DATA
from cyclerflow.db.engine import resolve
from cyclerflow.db.rebuild import rebuild


def test_export_archive_tables(lab, tmp_path):
    rebuild(resolve(lab), lab)
    out = tmp_path / "ba"
    assert main(["db", "export-archive", "--root", str(lab), "-o", str(out)]) == 0
    meta = pd.read_csv(out / "cell_metadata.csv")
    cyc = pd.read_csv(out / "cycle_data.csv")
    ts = pd.read_csv(out / "timeseries_data.csv")
    assert tuple(meta.columns) == CELL_METADATA and len(meta) == len(CELLS)
    assert set(meta.cathode) == {"LiCoO2"} and meta.ah.iloc[0] == pytest.approx(15e-6)
    assert tuple(cyc.columns) == CYCLE_DATA and len(cyc) == 6 * len(CELLS)
    assert tuple(ts.columns) == TIMESERIES_DATA
    # the time series' own integration (trapezoid here) ends each cycle at the capacity
    # the analysis integrated independently (to 1e-3: the time series integrates across the
    # charge/discharge turn-around sample pair, the analysis splits there)
    last = ts.groupby(["cell_id", "cycle_index"]).ah_d.max().rename("ts_ah_d")
    both = cyc.set_index(["cell_id", "cycle_index"]).join(last)
    assert (both.ah_d - both.ts_ah_d).abs().max() < 1e-3 * both.ah_d.max()
    assert (cyc.v_max > cyc.v_min).all() and (cyc.i_max > 0).all() and (cyc.i_min < 0).all()
    # existing files are not overwritten without --force
    assert main(["db", "export-archive", "--root", str(lab), "-o", str(out)]) == 2


def _read_back(url: str, schema: str | None) -> dict[str, pd.DataFrame]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    prefix = f"{schema}." if schema else ""
    with engine.connect() as conn:
        out = {
            name: pd.read_sql(sa.text(f"SELECT * FROM {prefix}{name}"), conn)
            for name in ("cell_metadata", "cycle_data", "timeseries_data")
        }
    engine.dispose()
    return out


def test_export_archive_into_a_database_equals_the_csv_tables(lab, tmp_path, db_url):
    rebuild(resolve(lab), lab)
    out = tmp_path / "ba"
    assert main(["db", "export-archive", "--root", str(lab), "-o", str(out)]) == 0
    args = ["db", "export-archive", "--root", str(lab), "--to", db_url, "--schema", "ba_x"]
    assert main(args) == 0
    assert main(args) == 0  # again: the same cells' rows replaced, none duplicated
    schema = None if db_url.startswith("sqlite") else "ba_x"
    got = _read_back(db_url, schema)
    for name, frame in got.items():
        want = pd.read_csv(out / f"{name}.csv")
        assert list(frame.columns) == list(want.columns)
        key = ["cell_id", "cycle_index", "test_time"][: 1 if name == "cell_metadata" else 3]
        frame = frame.sort_values(key).reset_index(drop=True)
        want = want.sort_values(key).reset_index(drop=True)
        assert len(frame) == len(want) > 0
        for col in want.columns:
            if col == "date_time":
                # the database keeps microseconds
                diff = pd.to_datetime(frame[col]) - pd.to_datetime(want[col])
                assert diff.abs().max() <= pd.Timedelta(microseconds=1)
            elif want[col].dtype.kind == "f":
                assert (frame[col].astype(float) - want[col]).abs().max() <= 1e-12 * (
                    want[col].abs().max() or 1
                ) or (frame[col].isna() & want[col].isna()).all(), (name, col)
            else:
                assert frame[col].tolist() == want[col].tolist(), (name, col)


def test_export_archive_refuses_a_schema_that_is_not_a_plain_name(lab, tmp_path, capsys):
    rebuild(resolve(lab), lab)
    url = "postgresql+psycopg://u@localhost:1/x"
    args = ["db", "export-archive", "--root", str(lab), "--to", url, "--schema", 'a"; drop']
    assert main(args) == 2
    assert "--schema" in capsys.readouterr().err
    assert main(["db", "export-archive", "--root", str(lab)]) == 2  # neither -o nor --to
