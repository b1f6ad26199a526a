"""Outputs: JSON-ready summary, netCDF per-cycle table, and a cell file round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from cyclerflow.cycling import analyze_cycling
from cyclerflow.schema import parse_metadata
from cyclerflow.store import read_cycling, read_events, read_metadata, write_cell

from .synth import make_cell

DESIGN_CYCLE_FIELDS = {
    "cycle",
    "charge_capacity_ah",
    "discharge_capacity_ah",
    "coulombic_efficiency",
    "capacity_retention",
    "charge_energy_wh",
    "discharge_energy_wh",
    "discharge_capacity_uah_per_cm2",
    "discharge_capacity_uah_per_cm2_um",
    "discharge_capacity_mah_per_g",
}


def _walk(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _walk(v)
    elif isinstance(x, list):
        for v in x:
            yield from _walk(v)
    else:
        yield x


def test_summary_is_plain_json_with_the_design_fields():
    ds, _, _ = make_cell(current_a=1e-6, n_cycles=6, cut_short={"cycle": 6, "fraction": 0.3})
    s, _ = analyze_cycling(ds)
    text = json.dumps(s, allow_nan=False)
    assert json.loads(text) == s
    for key in ("reference_cycle", "fade_rate_per_cycle", "first_cycle_irreversible_ah", "cycles"):
        assert key in s
    for row in s["cycles"]:
        assert DESIGN_CYCLE_FIELDS <= set(row)
    assert all(v is None or isinstance(v, (bool, int, float, str)) for v in _walk(s))
    assert s["cycles"][-1]["capacity_retention"] is None  # incomplete -> null, never NaN


def test_per_cycle_writes_to_netcdf(tmp_path):
    ds, tr, _ = make_cell(current_a=5.0, n_cycles=5, cut_short={"cycle": 5, "fraction": 0.5})
    _, pc = analyze_cycling(ds)
    out = tmp_path / "cell.results.nc"
    pc.to_netcdf(out, engine="h5netcdf")
    back = xr.open_dataset(out, engine="h5netcdf")
    np.testing.assert_array_equal(back["discharge_capacity_ah"], pc["discharge_capacity_ah"])
    assert back["discharge_capacity_ah"].attrs["units"] == "A h"
    assert back.attrs["first_half"] == "charge" and back.attrs["reference_cycle"] == 1
    assert back["complete"].values.tolist() == [1, 1, 1, 1, 0]
    assert str(back["incomplete_reason"].values[-1]) == "end_of_record"
    assert "short" in str(back["incomplete_detail"].values[-1])
    back.close()


def test_cell_file_round_trip(tmp_path, lipon_metadata):
    meta = parse_metadata(lipon_metadata)
    ds, tr, _ = make_cell(current_a=7e-9, n_cycles=4, jitter=0.3, with_steps=True)
    cols = {k: ds[k].values for k in ds.data_vars}
    path = tmp_path / "cell.h5"
    t_stop = float(ds["test_time_second"].values[-1])
    write_cell(
        path,
        meta,
        cycling=cols,
        events=[{"test_time_second": t_stop, "kind": "note", "message": "end"}],
    )
    s, pc = analyze_cycling(read_cycling(path), read_metadata(path), events=read_events(path))
    np.testing.assert_allclose(pc["discharge_capacity_ah"], tr.discharge_ah, rtol=1e-6)
    assert s["cycles"][0]["discharge_capacity_uah_per_cm2"] == pytest.approx(
        tr.discharge_ah[0] * 1e6 / 0.0035, rel=1e-6
    )
