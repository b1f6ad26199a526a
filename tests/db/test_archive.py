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
