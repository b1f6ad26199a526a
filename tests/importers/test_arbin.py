"""Arbin CSV / XLSX / .res importer against the vendor files (values read by hand)."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cyclerflow.errors import InputError
from cyclerflow.importers import arbin, detect

XLSX = "arbin/bs542_004_gr_li_50ua_50mv_1v_191020_Channel_11.xlsx"


def test_csv_first_last_rows(shared_data):
    c = arbin.read(shared_data / "arbin/arbin_example.csv")["cycling"]
    assert len(c["test_time_second"]) == 2142
    # 1,0,1499006353,0.723,10,1,-9.63E-05,3.2796359,0.8800053,2.54E-11,3.0910666,6.15E-11,...,29.18314
    assert c["test_time_second"][0] == 0
    assert c["unix_time_second"][0] == 1499006353
    assert c["vendor_step_index"][0] == 10 and c["step_index"][0] == 10
    assert c["vendor_cycle_index"][0] == 1 and c["cycle_count"][0] == 1
    assert c["current_ampere"][0] == -9.63e-5
    assert c["voltage_volt"][0] == 3.2796359
    assert c["charge_capacity_ampere_hour"][0] == 0.8800053  # starts mid-test
    assert c["discharge_capacity_ampere_hour"][0] == 2.54e-11
    assert c["charge_energy_watt_hour"][0] == 3.0910666
    assert c["temperature_kelvin"][0] == pytest.approx(29.18314 + 273.15, abs=1e-9)
    # 2142,6308.4823,1499012661,300.0106,13,2,0,2.4080653,1.0725317,1.0729095,3.7558255,3.2606606,...
    assert c["test_time_second"][-1] == 6308.4823
    assert c["vendor_cycle_index"][-1] == 2 and c["cycle_count"][-1] == 2
    assert c["voltage_volt"][-1] == 2.4080653
    assert c["discharge_capacity_ampere_hour"][-1] == 1.0729095
    assert c["discharge_energy_watt_hour"][-1] == 3.2606606
    for v in c.values():
        assert len(v) == 2142
    assert c["cycle_count"].dtype == np.int64


def test_csv_sign_and_capacity_restart(shared_data):
    c = arbin.read(shared_data / "arbin/arbin_example.csv")["cycling"]
    charging = c["current_ampere"] > 0.01
    # Arbin: positive current charges -> charge capacity grows while current > 0
    dq = np.diff(c["charge_capacity_ampere_hour"])
    assert np.all(dq[charging[1:]] >= 0) and dq[charging[1:]].sum() > 0
    new_cycle = np.flatnonzero(np.diff(c["vendor_cycle_index"]) > 0)[0] + 1
    assert (
        c["charge_capacity_ampere_hour"][new_cycle]
        < c["charge_capacity_ampere_hour"][new_cycle - 1]
    )
    assert np.all(np.diff(c["step_count"]) >= 0)


def test_xlsx(shared_data):
    data = arbin.read(shared_data / XLSX)
    c = data["cycling"]
    assert len(c["test_time_second"]) == 4526
    t0 = dt.datetime(2020, 10, 19, 11, 31, 46, 582000, tzinfo=dt.UTC).timestamp()
    assert c["unix_time_second"][0] == pytest.approx(t0, abs=1e-6)
    assert c["test_time_second"][0] == 1.001
    assert c["voltage_volt"][0] == 2.637298583984375
    assert c["current_ampere"][0] == 0
    assert c["test_time_second"][-1] == 1204815.8106799999
    assert c["voltage_volt"][-1] == 0.07228660583496094
    assert c["current_ampere"][-1] == 5.0827860832214355e-05
    assert c["charge_capacity_ampere_hour"][-1] == 0.005702702794224024
    assert c["discharge_capacity_ampere_hour"][-1] == 0.0110548976808786
    assert np.median(np.abs(c["current_ampere"][c["current_ampere"] != 0])) == pytest.approx(
        50e-6, rel=0.1
    )
    # sign: voltage rises while the current is positive (charging), falls while negative
    dv = np.diff(c["voltage_volt"])
    i = c["current_ampere"][1:]
    assert np.mean(dv[i > 0]) > 0 > np.mean(dv[i < 0])
    assert "bs542_graphite_slow_rate.sdu" in data["header"]
    assert detect(shared_data / XLSX) is arbin


def _res_backend_available(backend: str) -> bool:
    if backend == "mdb-export":
        return shutil.which("mdb-export") is not None
    try:
        import access_parser  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


@pytest.mark.parametrize("backend", arbin.RES_BACKENDS)
def test_res_backends_or_clear_error(shared_data, backend):
    path = shared_data / "cellpy/20160805_test001_45_cc_01.res"
    assert detect(path) is arbin
    if not _res_backend_available(backend):
        with pytest.raises(InputError, match="mdb-export|access-parser"):
            arbin.read_res(path, backend)
        return
    data = arbin.read_res(path, backend)
    c = data["cycling"]
    # cellpy goldens: 10261 rows, 18 cycles, 103 steps, cycle 1 ends at data point 1457
    assert len(c["test_time_second"]) == 10261
    assert len(np.unique(c["vendor_cycle_index"])) == 18
    assert c["step_count"][-1] == 103
    assert np.flatnonzero(c["vendor_cycle_index"] == 1)[-1] + 1 == 1457
    # first row: Test_Time 300.0104819316021, DateTime 42587.6815162037 (OLE days), Voltage 3.0976174
    assert c["test_time_second"][0] == pytest.approx(300.0104819316021, rel=1e-15)
    assert c["voltage_volt"][0] == pytest.approx(3.0976174, rel=1e-7)  # single precision in the DB
    start = dt.datetime(2016, 8, 5, 16, 21, 23, tzinfo=dt.UTC).timestamp()
    assert c["unix_time_second"][0] == pytest.approx(start, abs=0.01)
    assert "hfa" in data["header"]
    assert backend in data["header"]


def test_units_in_labels_and_date_strings(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text(
        "Date_Time,Test_Time(s),Step_Index,Cycle_Index,Current(mA),Voltage(V),Charge_Capacity(mAh),Aux_Temperature_1(C)\n"
        "10/20/2019 16:31:58,0,1,1,1.5,3.0,0.0,25\n"
        "10/20/2019 16:32:08,10,1,1,1.5,3.1,0.00416667,25.5\n"
        "10/20/2019 16:32:18,20,2,1,-2.0,3.0,0.00416667,26\n"
    )
    c = arbin.read(p)["cycling"]
    np.testing.assert_allclose(c["current_ampere"], [1.5e-3, 1.5e-3, -2e-3])
    np.testing.assert_allclose(c["charge_capacity_ampere_hour"], [0, 4.16667e-6, 4.16667e-6])
    np.testing.assert_allclose(c["temperature_kelvin"], [298.15, 298.65, 299.15])
    t0 = dt.datetime(2019, 10, 20, 16, 31, 58, tzinfo=dt.UTC).timestamp()
    np.testing.assert_allclose(c["unix_time_second"], [t0, t0 + 10, t0 + 20])
    np.testing.assert_array_equal(c["step_count"], [1, 1, 2])


def test_bad_csv_inputs(tmp_path, shared_data):
    src = (shared_data / "arbin/arbin_example.csv").read_text()
    p = tmp_path / "bad.csv"
    p.write_text("")
    with pytest.raises(InputError, match=r"bad\.csv.*arbin: file is empty"):
        arbin.read(p)
    p.write_text("test_time_second,voltage_volt,current_ampere\n0,3,1\n")
    with pytest.raises(InputError, match=r"line 1\).*not an Arbin CSV"):
        arbin.read(p)
    lines = src.splitlines()
    p.write_text("\n".join(lines[:100] + [lines[100].replace("3.", "3x.", 1)] + lines[101:]))
    with pytest.raises(InputError, match=r"line 101\).*non-numeric"):
        arbin.read(p)
    p.write_text("\n".join(lines[:50] + [lines[50][:20]]))  # truncated in row 50
    with pytest.raises(InputError, match=r"line 51\)"):
        arbin.read(p)
    p.write_text("\n".join(lines[:1] + lines[20:30] + lines[5:10]))  # time goes backwards
    with pytest.raises(InputError, match=r"line 12\).*backwards"):
        arbin.read(p)


def _small_xlsx(path, n=20):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Channel_1_1"
    ws.append(
        ["Date_Time", "Test_Time(s)", "Step_Index", "Cycle_Index", "Voltage(V)", "Current(A)"]
    )
    for i in range(n):
        ws.append(
            [
                dt.datetime(2024, 1, 1, 0, 0, i),
                float(i),
                1 + i // 10,
                1,
                3.0 + 0.01 * i,
                1e-3 if i < 10 else -1e-3,
            ]
        )
    wb.save(path)


def test_xlsx_synthetic_and_bad(tmp_path):
    p = tmp_path / "s.xlsx"
    _small_xlsx(p)
    c = arbin.read(p)["cycling"]
    np.testing.assert_array_equal(c["test_time_second"], np.arange(20.0))
    np.testing.assert_allclose(c["voltage_volt"], 3.0 + 0.01 * np.arange(20))
    np.testing.assert_array_equal(c["step_index"], [1] * 10 + [2] * 10)
    raw = p.read_bytes()
    q = tmp_path / "cut.xlsx"
    q.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match=r"cut\.xlsx.*arbin: not a readable \.xlsx"):
        arbin.read(q)
    q.write_bytes(b"Data_Point,Test_Time\n")
    with pytest.raises(InputError, match=r"arbin: not an \.xlsx workbook"):
        arbin.read(q)
    # a workbook without Arbin columns
    buf = io.BytesIO()
    with zipfile.ZipFile(p) as z, zipfile.ZipFile(buf, "w") as out:
        for item in z.infolist():
            data = z.read(item.filename)
            if item.filename.startswith("xl/sharedStrings") or item.filename.startswith(
                "xl/worksheets"
            ):
                data = data.replace(b"Test_Time(s)", b"Zeit(s)")
            out.writestr(item, data)
    q.write_bytes(buf.getvalue())
    with pytest.raises(InputError, match="no sheet with Arbin data"):
        arbin.read(q)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_fuzz_xlsx_bytes(tmp_path, data):
    p = tmp_path / "f.xlsx"
    if not p.exists():
        _small_xlsx(p)
    raw = bytearray(p.read_bytes())
    cut = data.draw(st.integers(0, len(raw)))
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=4)
    )
    for i, b in flips:
        raw[i] = b
    q = tmp_path / "g.xlsx"
    q.write_bytes(bytes(raw[:cut]))
    try:
        c = arbin.read(q)["cycling"]
    except InputError as err:
        assert "g.xlsx" in str(err)
        return
    assert len(c["test_time_second"]) == len(c["voltage_volt"])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(min_value=0, max_value=20000), junk=st.binary(max_size=6))
def test_fuzz_csv_truncation(tmp_path, shared_data, cut, junk):
    raw = (shared_data / "arbin/arbin_example.csv").read_bytes()[:20000]
    p = tmp_path / "t.csv"
    p.write_bytes(raw[:cut] + junk)
    try:
        c = arbin.read(p)["cycling"]
    except InputError as err:
        assert "t.csv" in str(err)
        return
    assert np.all(np.isfinite(c["current_ampere"]))


def test_res_truncated_or_not_jet(tmp_path, shared_data):
    raw = (shared_data / "cellpy/20160805_test001_45_cc_01.res").read_bytes()
    p = tmp_path / "t.res"
    p.write_bytes(raw[:800000])
    with pytest.raises(InputError, match=r"t\.res \(byte 798720\): arbin: truncated Jet database"):
        arbin.read(p)
    p.write_bytes(b"Data_Point,Test_Time\n1,2\n")
    with pytest.raises(InputError, match=r"byte 4\).*no 'Standard Jet DB' signature"):
        arbin.read(p)


def test_csv_every_value_matches_an_independent_parse(shared_data):
    import csv

    path = shared_data / "arbin/arbin_example.csv"
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    c = arbin.read(path)["cycling"]
    assert len(rows) == len(c["test_time_second"])
    pairs = {
        "Test_Time": "test_time_second",
        "DateTime": "unix_time_second",
        "Current": "current_ampere",
        "Voltage": "voltage_volt",
        "Charge_Capacity": "charge_capacity_ampere_hour",
        "Discharge_Capacity": "discharge_capacity_ampere_hour",
        "Charge_Energy": "charge_energy_watt_hour",
        "Discharge_Energy": "discharge_energy_watt_hour",
    }
    for label, name in pairs.items():
        np.testing.assert_array_equal(c[name], [float(r[label]) for r in rows], err_msg=label)
    np.testing.assert_array_equal(c["vendor_step_index"], [int(r["Step_Index"]) for r in rows])
    np.testing.assert_array_equal(c["vendor_cycle_index"], [int(r["Cycle_Index"]) for r in rows])


def test_xlsx_openpyxl_reader_gives_the_same(shared_data, monkeypatch):
    fast = arbin.read(shared_data / XLSX)["cycling"]
    monkeypatch.setattr(arbin, "XLSX_READERS", ("openpyxl",))
    slow = arbin.read(shared_data / XLSX)["cycling"]
    assert set(fast) == set(slow)
    for k in fast:
        if k == "unix_time_second":  # the readers round Excel's float days differently (1 ms)
            np.testing.assert_allclose(fast[k], slow[k], rtol=0, atol=1.5e-3)
        else:
            np.testing.assert_array_equal(fast[k], slow[k], err_msg=k)


def test_fuzz_res_corrupted_pages(tmp_path, shared_data):
    """Flipped bytes in the Jet database: a clear InputError or a consistent table."""
    raw = (shared_data / "cellpy/20160805_test001_45_cc_01.res").read_bytes()
    q = tmp_path / "f.res"

    def check(flips):
        b = bytearray(raw)
        for pos, val in flips:
            b[pos] = val
        q.write_bytes(bytes(b))
        try:
            c = arbin.read(q)["cycling"]
        except InputError as err:
            assert "f.res" in str(err)
            return
        n = len(c["test_time_second"])
        assert all(len(v) == n for v in c.values())

    if shutil.which("mdb-export") is None:  # access-parser is slow: one fixed example
        check([(i * 4099 % 40000, 0xFF) for i in range(30)])
        return
    flips = st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=40)
    settings(max_examples=10, deadline=None)(given(flips)(check))()
