"""Gamry .DTA importer against the vendor files (values read by hand from the files)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cyclerflow.errors import InputError
from cyclerflow.importers import detect, gamry_dta


def test_eispot_hand_edited_rows(shared_data):
    data = gamry_dta.read(shared_data / "gamry/eispot_data.dta")
    assert data["cycling"] == {}
    (sp,) = data["spectra"]
    assert len(sp["frequency_hertz"]) == 10
    # row 0: "0 1 10000 224.6075 -3.767681 ..."; rows 6-9 are space-separated in the file
    assert sp["frequency_hertz"][0] == 10000
    assert sp["real_impedance_ohm"][0] == 224.6075
    assert sp["imaginary_impedance_ohm"][0] == -3.767681  # Gamry prints Zimag signed
    np.testing.assert_array_equal(sp["frequency_hertz"][6:], [10, 5, 1, 0.5])
    np.testing.assert_array_equal(sp["real_impedance_ohm"][5:], [226.885] * 5)
    assert sp["technique"] == "PEIS"
    assert sp["dc_level"] == 1.3  # VDC 1.30000E+000 V
    assert sp["amplitude"] == pytest.approx(0.010)  # VAC 10 mV rms
    start = dt.datetime(2016, 5, 11, 17, 47, 3, tzinfo=dt.UTC).timestamp()
    assert sp["unix_time_second"] == start + 1  # Time column of the first point: 1 s
    assert "VDC\tPOTEN" in data["header"]


def test_chronoa_declared_count_not_trusted(shared_data):
    c = gamry_dta.read(shared_data / "gamry/chronoa_data.dta")["cycling"]
    assert len(c["test_time_second"]) == 10  # header declares 5258
    assert c["test_time_second"][3] == 90.0001
    assert c["voltage_volt"][0] == -5.4e-4
    assert c["current_ampere"][0] == -2.34197e-8
    assert c["current_ampere"][-1] == 3.0e-9
    assert c["voltage_volt"][-1] == 0.4


def test_cv_five_curves(shared_data):
    c = gamry_dta.read(shared_data / "gamry/cv_data.dta")["cycling"]
    assert len(c["test_time_second"]) == 50
    np.testing.assert_array_equal(np.unique(c["cycle_count"]), [1, 2, 3, 4, 5])
    assert np.all(np.bincount(c["cycle_count"])[1:] == 10)
    i = int(np.flatnonzero(c["test_time_second"] == 280.2)[0])  # first row of CURVE3
    assert c["cycle_count"][i] == 3
    assert c["voltage_volt"][i] == 8.97846e-1
    assert c["current_ampere"][i] == 4.74862e-7


def test_ocvcurve_then_curve_two_schemas(shared_data):
    c = gamry_dta.read(shared_data / "gamry/ocvcurve_data.dta")["cycling"]
    assert len(c["test_time_second"]) == 40 + 11
    ocv = c["cycle_count"] == 0
    assert ocv.sum() == 40 and np.all(c["current_ampere"][ocv] == 0)
    assert c["voltage_volt"][0] == 2.8347e-1
    # CURVE1 row 0: T 0.3 s after the OCV (ends 10.3333 s); Vf 3.98788E-001, Im 6.55358E-007
    t_ocv_end = c["test_time_second"][39]
    assert c["test_time_second"][40] == pytest.approx(t_ocv_end + 0.3)
    assert c["voltage_volt"][40] == 3.98788e-1
    assert c["current_ampere"][40] == 6.55358e-7
    assert c["current_ampere"][-1] == -4.2422e-5
    assert np.all(np.diff(c["test_time_second"]) > 0)


def test_full_gamry_eis_file(shared_data):
    data = gamry_dta.read(shared_data / "eis/exampleDataGamry.DTA")
    (sp,) = data["spectra"]
    assert len(sp["frequency_hertz"]) == 72
    assert sp["frequency_hertz"][0] > sp["frequency_hertz"][-1]
    assert np.all(sp["imaginary_impedance_ohm"] < 0)
    assert sp["dc_level"] == -0.05 and sp["dc_level_vs_open_circuit"] == 1
    assert len(data["cycling"]["voltage_volt"]) == 387  # the OCVCURVE before the sweep
    assert detect(shared_data / "eis/exampleDataGamry.DTA") is gamry_dta


def _write(tmp_path, text: str | bytes, name: str = "x.DTA"):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


def test_bad_inputs_name_file_and_line(tmp_path, shared_data):
    src = (shared_data / "gamry/cv_data.dta").read_text("latin-1")
    with pytest.raises(InputError, match=r"x\.DTA.*gamry-dta: file is empty"):
        gamry_dta.read(_write(tmp_path, ""))
    with pytest.raises(InputError, match=r"line 1\).*not a Gamry EXPLAIN"):
        gamry_dta.read(_write(tmp_path, "a,b,c\n1,2,3\n"))
    lines = src.splitlines()
    assert lines[39].startswith("\t14\t120.6\t8.93996E-001")
    bad = src.replace("8.93996E-001", "8.9x96E-001")
    with pytest.raises(InputError, match=r"line 40\).*non-numeric"):
        gamry_dta.read(_write(tmp_path, bad))
    # truncated inside the last row: Vf of that row is missing
    cut = src[: src.rindex("\t600.") + 3]
    last = cut.count("\n") + 1
    with pytest.raises(InputError, match=rf"line {last}\).*last row has 2 fields.*truncated"):
        gamry_dta.read(_write(tmp_path, cut))
    # header only
    head = "\n".join(lines[:20])
    with pytest.raises(InputError, match="cut off|no data table"):
        gamry_dta.read(_write(tmp_path, head))
    with pytest.raises(InputError, match="binary"):
        gamry_dta.read(_write(tmp_path, b"EXPLAIN\nTAG\tCV\n\x00\x01\x02"))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(min_value=0, max_value=5631), junk=st.binary(max_size=8))
def test_fuzz_truncation_gives_input_error_or_data(tmp_path, shared_data, cut, junk):
    raw = (shared_data / "gamry/cv_data.dta").read_bytes()
    p = tmp_path / "fz.DTA"
    p.write_bytes(raw[:cut] + junk)
    try:
        data = gamry_dta.read(p)
    except InputError as err:
        assert "fz.DTA" in str(err)
        return
    c = data["cycling"]
    n = len(c["test_time_second"])
    assert all(len(v) == n for v in c.values())
    assert np.all(np.isfinite(c["voltage_volt"]))


def _comma_locale(raw: bytes) -> bytes:
    """The same file as Gamry writes it on a decimal-comma locale (5,00000E-001)."""
    import re

    return re.sub(rb"(\d)\.(\d)", rb"\1,\2", raw)


def test_decimal_comma_locale_reads_the_same(shared_data, tmp_path):
    src = shared_data / "eis/exampleDataGamry.DTA"
    p = tmp_path / "comma.DTA"
    p.write_bytes(_comma_locale(src.read_bytes()))
    assert b"E-001" in p.read_bytes() and b",0000" in p.read_bytes()
    a, b = gamry_dta.read(src), gamry_dta.read(p)
    assert len(a["spectra"]) == len(b["spectra"]) == 1
    for k in ("frequency_hertz", "real_impedance_ohm", "imaginary_impedance_ohm"):
        np.testing.assert_array_equal(a["spectra"][0][k], b["spectra"][0][k])
    assert b["spectra"][0]["amplitude"] == a["spectra"][0]["amplitude"] == pytest.approx(0.01)
    assert b["spectra"][0]["dc_level"] == a["spectra"][0]["dc_level"]
    for k, v in a["cycling"].items():
        np.testing.assert_array_equal(v, b["cycling"][k])


def test_mixed_separators_and_unknown_technique_are_refused(shared_data, tmp_path):
    raw = (shared_data / "gamry/cv_data.dta").read_bytes()
    lines = raw.split(b"\n")
    i = next(k for k, ln in enumerate(lines) if ln.startswith(b"\t0\t"))
    lines[i] = _comma_locale(lines[i])
    p = tmp_path / "mixed.dta"
    p.write_bytes(b"\n".join(lines))
    with pytest.raises(InputError, match="mixes decimal commas and decimal points"):
        gamry_dta.read(p)
    p.write_bytes(raw.replace(b"TAG\tCV", b"TAG\tMYSTERY", 1))
    with pytest.raises(InputError, match=r"line 2\).*unknown technique TAG 'MYSTERY'"):
        gamry_dta.read(p)


def test_crlf_line_ends_read_the_same(shared_data, tmp_path):
    for rel in ("gamry/ocvcurve_data.dta", "eis/exampleDataGamry.DTA"):
        src = shared_data / rel
        p = tmp_path / "crlf.dta"
        p.write_bytes(src.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        a, b = gamry_dta.read(src), gamry_dta.read(p)
        for k, v in a["cycling"].items():
            np.testing.assert_array_equal(v, b["cycling"][k])
        assert len(a["spectra"]) == len(b["spectra"])
        for sa, sb in zip(a["spectra"], b["spectra"], strict=True):
            np.testing.assert_array_equal(sa["real_impedance_ohm"], sb["real_impedance_ohm"])
