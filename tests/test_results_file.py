"""The results file (<cell>.results.nc): our fast reader gives exactly xarray's Datasets."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from cyclerflow.analysis import analyze_cell, load_results
from cyclerflow.errors import InputError
from cyclerflow.schema import parse_metadata
from cyclerflow.store import write_cell
from cyclerflow.synthetic import galvanostatic_cycles, rc_spectrum


@pytest.fixture
def results(tmp_path, lipon_metadata):
    f = np.logspace(6, -1, 50)
    rng = np.random.default_rng(3)
    spectra = []
    for t in (253.15, 273.15, 298.15):
        rb = 2e4 * np.exp(0.55 / 8.617e-5 * (1 / t - 1 / 298.15))
        z = rc_spectrum(f, r_lead_ohm=5, r_bulk_ohm=rb, q_bulk=2e-11, q_electrode=5e-8)
        z *= 1 + 0.002 * rng.standard_normal(len(f))
        spectra.append(
            {
                "frequency_hertz": f,
                "real_impedance_ohm": z.real,
                "imaginary_impedance_ohm": z.imag,
                "temperature_kelvin": t,
            }
        )
    cell = write_cell(
        tmp_path / "c.h5",
        parse_metadata(lipon_metadata),
        cycling=galvanostatic_cycles(n_cycles=30, capacity_ah=3.5e-7, current_a=1.75e-7),
        spectra=spectra,
    )
    res = analyze_cell(cell)
    return cell.with_suffix(".results.nc"), res


def test_load_results_matches_xarray(results):
    path, res = results
    summary, groups = load_results(path)
    assert summary["cell_id"] == res["cell_id"] and set(groups) == {"cycling", "eis"}
    for name, ds in groups.items():
        xr.testing.assert_identical(ds, xr.load_dataset(path, engine="h5netcdf", group=name))
    assert groups["cycling"].sizes["cycle"] == 30
    assert groups["eis"]["method"].dtype == object


def test_a_damaged_results_file_is_a_clear_error(results):
    path, _ = results
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(InputError, match="results file"):
        load_results(path)
