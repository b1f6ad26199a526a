"""A BioLogic spectrum takes its temperature from EC-Lab's Temperature/°C column (the
mean over the sweep), else from the file name (with a warning); a column of zeros (no
probe) is not a temperature. Both the .mpr and its .mpt export, built byte by byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from biologic_standins import peis

from cyclerflow.importers import read_any


@pytest.mark.parametrize("ext", [".mpr", ".mpt"])
def test_temperature_column_gives_the_spectrum_temperature(tmp_path: Path, ext: str) -> None:
    temp = np.linspace(59.5, 60.5, 32)  # stored as float32 in the .mpr
    mpr, mpt, _ = peis(tmp_path, temperature_c=temp, name="LLZO_25C_PEIS")
    data = read_any(mpr if ext == ".mpr" else mpt)
    (sp,) = data["spectra"]
    want = float(np.mean(temp.astype("f4").astype("f8"))) + 273.15
    assert sp["temperature_kelvin"] == pytest.approx(want, abs=1e-4)
    assert sp["temperature_source"] == "column"
    assert not any("file name" in w for w in data.get("warnings", []))


@pytest.mark.parametrize("ext", [".mpr", ".mpt"])
def test_without_a_probe_the_file_name_gives_it(tmp_path: Path, ext: str) -> None:
    mpr, mpt, _ = peis(tmp_path, temperature_c=np.zeros(32), name="LLZO_80C_PEIS_C01")
    data = read_any(mpr if ext == ".mpr" else mpt)
    (sp,) = data["spectra"]
    assert sp["temperature_kelvin"] == pytest.approx(353.15)
    assert sp["temperature_source"] == "file name"
    assert "taken from the file name ('80C')" in data["warnings"][0]


def test_no_column_and_no_name_no_temperature(tmp_path: Path) -> None:
    mpr, _, _ = peis(tmp_path)
    (sp,) = read_any(mpr)["spectra"]
    assert sp.get("temperature_kelvin") is None
