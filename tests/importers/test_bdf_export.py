"""export --format bdf-csv|bdf-parquet: BDF labels, default names, and a round trip
that gives the same columns to the last bit (CSV and Parquet, both detected on import)."""

from __future__ import annotations

import csv

import numpy as np
import pyarrow.parquet as pq
import pytest

from cyclerflow.cli import main
from cyclerflow.importers import detect, import_files
from cyclerflow.store import read_cycling, read_spectra

SOURCES = ["arbin/arbin_example.csv", "cellpy/maccor_002.txt"]


def _same(a, b):
    assert sorted(a.data_vars) == sorted(b.data_vars)
    for name in a.data_vars:
        x, y = a[name].values, b[name].values
        assert x.dtype == y.dtype, name
        assert np.array_equal(
            x.view("u8") if x.dtype.kind == "f" else x, y.view("u8") if y.dtype.kind == "f" else y
        ), name
        assert a[name].attrs.get("units") == b[name].attrs.get("units"), name


@pytest.mark.parametrize("src", SOURCES)
@pytest.mark.parametrize("fmt", ["bdf-csv", "bdf-parquet"])
def test_round_trip_to_the_last_bit(vendor_data, tmp_path, src, fmt):
    cell = import_files([vendor_data / src], tmp_path / "cell.h5")
    out = tmp_path / ("x.bdf.csv" if fmt == "bdf-csv" else "x.bdf.parquet")
    assert main(["export", str(cell), "--format", fmt, "-o", str(out)]) == 0
    assert detect(out).FORMAT == fmt
    back = import_files([out], tmp_path / "back.h5")
    _same(read_cycling(cell), read_cycling(back))


def test_labels_and_default_name(vendor_data, tmp_path):
    cell = import_files([vendor_data / "arbin/arbin_example.csv"], tmp_path / "c.h5")
    assert main(["export", str(cell), "--format", "bdf-csv"]) == 0
    (out,) = tmp_path.glob("*.bdf.csv")  # no cell_id in the file: the file's stem
    assert out.name == "c.bdf.csv"
    with open(out) as fh:
        labels = next(csv.reader(fh))
    assert labels[:5] == [
        "Test Time / s",
        "Voltage / V",
        "Current / A",
        "Cycle Count / 1",
        "Step Count / 1",
    ]
    assert "Charging Capacity / Ah" in labels and "vendor_cycle_index / 1" in labels
    assert main(["export", str(cell), "--format", "bdf-parquet"]) == 0
    t = pq.read_table(tmp_path / "c.bdf.parquet")
    assert t.column_names == labels
    assert main(["export", str(cell), "--format", "bdf-parquet"]) == 2  # exists, no --force


def test_eis_round_trip(vendor_data, tmp_path):
    cell = import_files([vendor_data / "eis/exampleDataZPlot.z"], tmp_path / "z.h5")
    for fmt in ("bdf-csv", "bdf-parquet"):
        out = tmp_path / f"z.{fmt}"
        assert main(["export", str(cell), "--format", fmt, "--eis", "-o", str(out)]) == 0
        back = import_files([out], tmp_path / f"z-{fmt}.h5")
        (a,), (b,) = read_spectra(cell), read_spectra(back)
        for k in ("frequency_hertz", "real_impedance_ohm", "imaginary_impedance_ohm"):
            assert np.array_equal(a[k].values, b[k].values)
