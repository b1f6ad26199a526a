"""Import -> cell file -> BDF CSV / long EIS CSV export -> import gives identical data."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from cyclerflow.cli import main
from cyclerflow.export import export_cycling_csv, export_eis_csv
from cyclerflow.importers import bdf_csv, eis_csv, import_files, maccor, read_any
from cyclerflow.store import read_cycling, read_spectra, write_cell

CYCLING_FILES = [
    "arbin/arbin_example.csv",
    "arbin/bs542_004_gr_li_50ua_50mv_1v_191020_Channel_11.xlsx",
    "cellpy/maccor_002.txt",
    "maccor/maccor_example.001",
    "gamry/cv_data.dta",
    "gamry/ocvcurve_data.dta",
    "gamry/chronoa_data.dta",
    "eis/exampleDataParstat.txt",
]
if shutil.which("mdb-export"):  # Arbin .res needs mdbtools (test_arbin checks the error without it)
    CYCLING_FILES.append("cellpy/20160805_test001_45_cc_01.res")
EIS_FILES = [
    "gamry/eispot_data.dta",
    "eis/exampleDataGamry.DTA",
    "eis/exampleDataZPlot.z",
    "eis/Circuit1_EIS_1.z",
    "eis/exampleData.csv",
    "eis/exampleDataAutolab.txt",
    "eis/exampleDataParstat.txt",
    "eis/exampleDataVersaStudio.par",
    "eis/exampleDataCHInstruments.txt",
]


def _same_cycling(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)
        if np.asarray(a[k]).dtype.kind == "i":
            assert np.asarray(b[k]).dtype.kind == "i", k


@pytest.mark.parametrize("name", CYCLING_FILES)
def test_cycling_roundtrip(tmp_path, shared_data, name):
    src = shared_data / name
    first = read_any(src)["cycling"]
    cell = import_files([src], tmp_path / "c.h5")
    stored = {k: v.values for k, v in read_cycling(cell).data_vars.items()}
    _same_cycling(first, stored)
    csv = export_cycling_csv(cell, tmp_path / "c.csv")
    again = bdf_csv.read(csv)["cycling"]
    _same_cycling(first, again)


@pytest.mark.parametrize("name", EIS_FILES)
def test_eis_roundtrip(tmp_path, shared_data, name):
    src = shared_data / name
    spectra = read_any(src)["spectra"]
    cell = import_files([src], tmp_path / "e.h5")
    stored = read_spectra(cell)
    assert len(stored) == len(spectra)
    csv = export_eis_csv(cell, tmp_path / "e.csv")
    again = eis_csv.read(csv)["spectra"]
    assert len(again) == len(spectra)
    for sp, st, ag in zip(spectra, stored, again, strict=True):
        for k in ("frequency_hertz", "real_impedance_ohm", "imaginary_impedance_ohm"):
            np.testing.assert_array_equal(sp[k], st[k].values)
            np.testing.assert_array_equal(sp[k], ag[k])
        for k in ("technique", "amplitude", "dc_level", "unix_time_second"):
            if k in sp:
                assert st.attrs[k] == sp[k], k
        if "unix_time_second" in sp:
            assert ag["unix_time_second"] == sp["unix_time_second"]


def test_split_maccor_roundtrip(tmp_path, shared_data):
    merged = maccor.read_many(
        [shared_data / "maccor/maccor_example.001", shared_data / "maccor/maccor_example.002"]
    )
    cell = write_cell(
        tmp_path / "m.h5", None, cycling=merged["cycling"], source_header=merged["header"]
    )
    csv = export_cycling_csv(cell, tmp_path / "m.csv")
    _same_cycling(merged["cycling"], bdf_csv.read(csv)["cycling"])


@pytest.mark.parametrize(
    "name",
    [
        "arbin/arbin_example.csv",
        "maccor/maccor_example.001",
        "eis/exampleDataZPlot.z",
        "gamry/cv_data.dta",
        "eis/exampleDataCHInstruments.txt",
    ],
)
def test_cli_import(tmp_path, shared_data, name):
    out = tmp_path / "out.h5"
    assert main(["import", str(shared_data / name), "-o", str(out), "-q"]) == 0
    assert out.exists()


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("arbin/arbin_example.csv", ".csv"),
        ("arbin/bs542_004_gr_li_50ua_50mv_1v_191020_Channel_11.xlsx", ".xlsx"),
        ("maccor/maccor_example.001", ".001"),
        ("gamry/cv_data.dta", ".dta"),
        ("eis/exampleDataZPlot.z", ".z"),
        ("eis/exampleDataVersaStudio.par", ".par"),
    ],
)
def test_cli_truncated_file_exit_2_no_output(tmp_path, shared_data, capsys, name, suffix):
    raw = (shared_data / name).read_bytes()
    bad = tmp_path / f"cut{suffix}"
    if suffix == ".xlsx":
        bad.write_bytes(raw[: len(raw) // 2])
    elif suffix == ".par":  # the file ends with GUI layout XML: cut inside the data segment
        bad.write_bytes(raw[: raw.index(b"</Segment1>") - 30])
    else:
        text = raw.decode("latin-1")
        last = text.rstrip().rfind("\n")
        bad.write_bytes(raw[: last + 1 + 6])  # last row cut after a few characters
    out = tmp_path / "out.h5"
    assert main(["import", str(bad), "-o", str(out), "-q"]) == 2
    assert not out.exists()
    assert not list(tmp_path.glob(".out.h5*"))
    err = capsys.readouterr().err
    assert bad.name in err
