"""ZPlot .z importer against the vendor files (values read by hand)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cyclerflow.errors import InputError
from cyclerflow.importers import detect, zplot


def test_example_zplot(shared_data):
    path = shared_data / "eis/exampleDataZPlot.z"
    assert detect(path) is zplot
    data = zplot.read(path)
    assert data["cycling"] == {}
    (sp,) = data["spectra"]
    assert len(sp["frequency_hertz"]) == 21  # header says 'Data Points: 56'
    # 3.000000E+05 1.0000E-02 0.0000E+00 2.670000E+00 1.4777E+02 -1.1335E+01 ...
    assert sp["frequency_hertz"][0] == 3.0e5
    assert sp["real_impedance_ohm"][0] == 147.77
    assert sp["imaginary_impedance_ohm"][0] == -11.335  # signed, capacitive
    assert sp["frequency_hertz"][-1] == 3.0e3
    assert sp["real_impedance_ohm"][-1] == 613.68
    assert sp["imaginary_impedance_ohm"][-1] == -137.13
    assert sp["amplitude"] == 0.01 and sp["dc_level"] == 0 and sp["technique"] == "PEIS"
    t0 = dt.datetime(2018, 10, 12, 11, 4, 34, tzinfo=dt.UTC).timestamp()
    assert sp["unix_time_second"] == pytest.approx(t0 + 2.67)
    assert "Sweep Frequency, Control Voltage" in data["header"]


def test_circuit_file_with_inductive_points(shared_data):
    (sp,) = zplot.read(shared_data / "eis/Circuit1_EIS_1.z")["spectra"]
    assert len(sp["frequency_hertz"]) == 48
    assert sp["imaginary_impedance_ohm"][0] == 0.63662  # > 0 kept (inductive)
    assert sp["frequency_hertz"][-1] == 1.0
    assert sp["real_impedance_ohm"][-1] == 75.803
    assert sp["imaginary_impedance_ohm"][-1] == -0.16244


def test_bad_inputs(tmp_path, shared_data):
    src = (shared_data / "eis/exampleDataZPlot.z").read_text()
    p = tmp_path / "b.z"
    p.write_text("")
    with pytest.raises(InputError, match=r"b\.z.*zplot: file is empty"):
        zplot.read(p)
    p.write_text("freq,re,im\n1,2,3\n")
    with pytest.raises(InputError, match=r"line 1\).*not a ZPlot file"):
        zplot.read(p)
    p.write_text(src[: src.index("End Comments")])
    with pytest.raises(InputError, match="End Comments"):
        zplot.read(p)
    lines = src.splitlines()
    p.write_text("\n".join(lines[:-1] + [lines[-1][:40]]))  # last row cut after Time
    with pytest.raises(InputError, match=rf"line {len(lines)}\).*last row has 4 fields.*truncated"):
        zplot.read(p)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(min_value=0, max_value=5878), junk=st.binary(max_size=6))
def test_fuzz_truncation(tmp_path, shared_data, cut, junk):
    raw = (shared_data / "eis/exampleDataZPlot.z").read_bytes()
    p = tmp_path / "f.z"
    p.write_bytes(raw[:cut] + junk)
    try:
        (sp,) = zplot.read(p)["spectra"]
    except InputError as err:
        assert "f.z" in str(err)
        return
    assert np.all(np.isfinite(sp["real_impedance_ohm"]))
