"""EIS text exports (ZView/Autolab, Parstat, VersaStudio, CH Instruments, headerless CSV)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cyclerflow.errors import InputError
from cyclerflow.importers import detect, eis_text


def _utc(*args) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


def test_headerless_csv(shared_data):
    path = shared_data / "eis/exampleData.csv"
    assert detect(path) is eis_text
    (sp,) = eis_text.read(path)["spectra"]
    assert len(sp["frequency_hertz"]) == 66
    assert sp["frequency_hertz"][0] == 3.162299999999999833e-03
    assert sp["real_impedance_ohm"][0] == 4.949989776405060160e-02
    assert sp["imaginary_impedance_ohm"][0] == -2.043869854441892481e-02
    assert sp["imaginary_impedance_ohm"][-1] == 1.015747456493823649e-02
    assert np.sum(sp["imaginary_impedance_ohm"] > 0) == 9  # the inductive points


def test_autolab_zview(shared_data):
    path = shared_data / "eis/exampleDataAutolab.txt"
    assert detect(path) is eis_text
    (sp,) = eis_text.read(path)["spectra"]
    assert len(sp["frequency_hertz"]) == 41
    # 7498.9,0,0,0,0.0134723009655836,0.00523693489331553,0,0,0
    assert sp["frequency_hertz"][1] == 7498.9
    assert sp["real_impedance_ohm"][1] == 0.0134723009655836
    assert sp["imaginary_impedance_ohm"][1] == 0.00523693489331553
    assert sp["frequency_hertz"][-1] == 0.1
    assert sp["imaginary_impedance_ohm"][-1] == -0.00390292888845954
    assert sp["source_layout"] == "Z60W"


def test_parstat_dc_and_ac_rows(shared_data):
    path = shared_data / "eis/exampleDataParstat.txt"
    assert detect(path) is eis_text
    data = eis_text.read(path)
    c = data["cycling"]
    assert len(c["test_time_second"]) == 812 - 31
    # row 1: 3.49322700500488 -0.149962306022644 10 0 0 0 0 0
    assert c["voltage_volt"][0] == 3.49322700500488
    assert c["current_ampere"][0] == -0.149962306022644
    assert c["test_time_second"][0] == 10
    (sp,) = data["spectra"]
    assert len(sp["frequency_hertz"]) == 31
    assert sp["frequency_hertz"][0] == 10000
    assert sp["real_impedance_ohm"][0] == -0.00049816280376104
    assert sp["imaginary_impedance_ohm"][0] == 0.0175143479976367
    assert sp["frequency_hertz"][-1] == 10
    assert sp["imaginary_impedance_ohm"][-1] == -0.00399791080333837


def test_versastudio(shared_data):
    path = shared_data / "eis/exampleDataVersaStudio.par"
    assert detect(path) is eis_text
    data = eis_text.read(path)
    (sp,) = data["spectra"]
    assert len(sp["frequency_hertz"]) == 61
    assert sp["frequency_hertz"][0] == 100000
    assert sp["real_impedance_ohm"][0] == 55.31571
    assert sp["imaginary_impedance_ohm"][0] == 4.575431
    assert sp["frequency_hertz"][-1] == 0.02154435
    assert sp["real_impedance_ohm"][-1] == 1516.313
    assert sp["imaginary_impedance_ohm"][-1] == -122.8279
    assert sp["amplitude"] == pytest.approx(0.020)  # Amplitude (mV RMS)=20
    assert sp["unix_time_second"] == pytest.approx(_utc(2018, 7, 19, 9, 40, 30) + 1.812)
    assert "VersaSTAT4" in data["header"] and "DockWindow" not in data["header"]


def test_ch_instruments(shared_data):
    path = shared_data / "eis/exampleDataCHInstruments.txt"
    assert detect(path) is eis_text
    (sp,) = eis_text.read(path)["spectra"]
    assert len(sp["frequency_hertz"]) == 73
    # 9.961e+4, 9.891e+1, -2.748e+0, 9.894e+1, -1.6
    assert sp["frequency_hertz"][0] == 9.961e4
    assert sp["real_impedance_ohm"][0] == 98.91
    assert sp["imaginary_impedance_ohm"][0] == -2.748
    assert sp["imaginary_impedance_ohm"][-1] == -1.586e4
    assert sp["amplitude"] == 0.025 and sp["dc_level"] == 0
    assert sp["unix_time_second"] == _utc(2020, 2, 20, 15, 55, 8)


def test_minus_im_and_kohm_labels(tmp_path):
    p = tmp_path / "k.txt"
    p.write_text("Freq/Hz\tRe(Z)/kOhm\t-Im(Z)/kOhm\n1000\t1.5\t0.25\n100\t2.0\t1.0\n")
    (sp,) = eis_text.read(p)["spectra"]
    np.testing.assert_allclose(sp["real_impedance_ohm"], [1500, 2000])
    np.testing.assert_allclose(sp["imaginary_impedance_ohm"], [-250, -1000])


def test_bad_inputs(tmp_path, shared_data):
    p = tmp_path / "e.txt"
    p.write_text("")
    with pytest.raises(InputError, match=r"e\.txt.*eis-text: file is empty"):
        eis_text.read(p)
    p.write_text("hello world\nthis is not impedance\n")
    with pytest.raises(InputError, match=r"line 1\).*not a recognised impedance"):
        eis_text.read(p)
    src = (shared_data / "eis/exampleDataCHInstruments.txt").read_text()
    lines = src.splitlines()
    p.write_text("\n".join(lines[:-1] + [lines[-1][:12]]))
    with pytest.raises(InputError, match=rf"line {len(lines)}\).*last row has 2 fields.*truncated"):
        eis_text.read(p)
    par = (shared_data / "eis/exampleDataVersaStudio.par").read_text()
    p.write_text(par[: par.index("</Segment1>")])
    with pytest.raises(InputError, match="truncated"):
        eis_text.read(p)
    p.write_text("1,2,3\n0,2,3\n")
    with pytest.raises(InputError, match="frequency <= 0"):
        eis_text.read(p)


@pytest.mark.parametrize(
    "name",
    [
        "exampleDataAutolab.txt",
        "exampleDataParstat.txt",
        "exampleDataCHInstruments.txt",
        "exampleDataVersaStudio.par",
    ],
)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frac=st.floats(0, 1), junk=st.binary(max_size=6))
def test_fuzz_truncation(tmp_path, shared_data, name, frac, junk):
    raw = (shared_data / "eis" / name).read_bytes()
    p = tmp_path / ("fz" + name[-4:])
    p.write_bytes(raw[: int(frac * len(raw))] + junk)
    try:
        data = eis_text.read(p)
    except InputError as err:
        assert p.name in str(err)
        return
    for sp in data["spectra"]:
        assert np.all(sp["frequency_hertz"] > 0)
