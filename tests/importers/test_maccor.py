"""Maccor text importer: both header styles, units, sign from the state, split files."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cyclerflow.errors import InputError
from cyclerflow.importers import detect, maccor


def _utc(*args) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


def test_key_value_header_style(shared_data):
    path = shared_data / "cellpy/maccor_002.txt"
    assert detect(path) is maccor
    data = maccor.read(path)
    c = data["cycling"]
    assert len(c["test_time_second"]) == 7446
    assert "SIMBA-Capacity_test" in data["header"]
    # row 1: 1 0 1 1 0.000000 ... 0.1783 R 0 5/11/2021 3:40:24 PM
    assert c["test_time_second"][0] == 0
    assert c["voltage_volt"][0] == 0.1783
    assert c["current_ampere"][0] == 0
    assert c["unix_time_second"][0] == _utc(2021, 5, 11, 15, 40, 24)
    # Rec 362: 1 1 4 360.000667 0.000667 0.00000000 0.00000000 0.00016144 0.1340 C 0 5/11/2021 9:40:24 PM
    i = 361
    assert c["test_time_second"][i] == pytest.approx(360.000667 * 60, abs=1e-9)  # minutes -> s
    assert c["current_ampere"][i] == 0.00016144  # C: charging, positive
    assert c["vendor_step_index"][i] == 4 and c["vendor_cycle_index"][i] == 1
    assert c["unix_time_second"][i] == _utc(2021, 5, 11, 21, 40, 24)
    # Rec 5736 (last charge row): Amp-hr 0.00227658, Watt-hr 0.00693530
    assert c["charge_capacity_ampere_hour"][5735] == 0.00227658
    assert c["charge_energy_watt_hour"][5735] == 0.0069353
    assert c["discharge_capacity_ampere_hour"][5735] == 0
    # last row: 7446 1 2 5 3809.841833 843.026000 0.00225395 0.00664376 0.00016037 1.3000 D 133 5/14/2021 7:10:13 AM
    assert c["test_time_second"][-1] == pytest.approx(3809.841833 * 60, abs=1e-9)
    assert c["current_ampere"][-1] == -0.00016037  # D: discharging, negative
    assert c["discharge_capacity_ampere_hour"][-1] == 0.00225395
    assert c["discharge_energy_watt_hour"][-1] == 0.00664376
    assert c["charge_capacity_ampere_hour"][-1] == 0
    assert c["voltage_volt"][-1] == 1.3
    assert c["unix_time_second"][-1] == _utc(2021, 5, 14, 7, 10, 13)
    assert c["vendor_cycle_index"][-1] == 2 and c["cycle_count"][-1] == 2
    # test time (minutes) and the clock agree over the whole file
    span = c["unix_time_second"][-1] - c["unix_time_second"][0]
    assert c["test_time_second"][-1] == pytest.approx(span, abs=2)
    for v in c.values():
        assert len(v) == 7446


def test_todays_date_style_and_split_files(shared_data):
    one = maccor.read(shared_data / "maccor/maccor_example.001")["cycling"]
    assert len(one["test_time_second"]) == 8
    # 2 0 1 0.1667 0.1667 0.0000000000 0.0000000000 0.0000000000 3.30571450 R 1 03/31/2016 16:05:41
    assert one["test_time_second"][1] == pytest.approx(0.1667 * 60, abs=1e-9)
    assert one["voltage_volt"][1] == 3.3057145
    assert one["unix_time_second"][1] == _utc(2016, 3, 31, 16, 5, 41)
    assert one["vendor_cycle_index"][1] == 0 and one["cycle_count"][1] == 1
    two = maccor.read(shared_data / "maccor/maccor_example.002")["cycling"]
    # .002 has only the time of day; the date is 'Date of Test: 04/01/2016' in its header
    assert two["unix_time_second"][0] == _utc(2016, 4, 1, 16, 5, 31)
    joined = maccor.read_many(
        [shared_data / "maccor/maccor_example.001", shared_data / "maccor/maccor_example.002"]
    )
    c = joined["cycling"]
    assert len(c["test_time_second"]) == 16
    assert np.all(np.diff(c["test_time_second"]) > 0)
    assert np.all(np.diff(c["unix_time_second"]) > 0)
    # test time continued from the clock: .002 row 1 is one day after .001 row 1
    assert c["test_time_second"][8] == pytest.approx(86400.0)


def test_split_files_reversed_fail(shared_data):
    with pytest.raises(InputError, match=r"maccor_example\.001.*out of order"):
        maccor.read_many(
            [shared_data / "maccor/maccor_example.002", shared_data / "maccor/maccor_example.001"]
        )


def test_split_out_of_order_by_time(tmp_path, shared_data):
    a = tmp_path / "run_a.txt"
    b = tmp_path / "run_b.txt"
    a.write_bytes((shared_data / "maccor/maccor_example.002").read_bytes())
    b.write_bytes((shared_data / "maccor/maccor_example.001").read_bytes())
    with pytest.raises(InputError, match=r"run_b\.txt.*starts before the previous one ends"):
        maccor.read_many([a, b])


def test_unitless_time_in_seconds_detected(tmp_path):
    p = tmp_path / "s.txt"
    rows = [
        f"{i + 1}\t0\t1\t1\t{i * 60.0:.1f}\t{i * 60.0:.1f}\t0\t0\t{0.002 if i else 0}\t{3.0 + 0.01 * i}\t{'C' if i else 'R'}\t0\t5/11/2021 3:{40 + i:02d}:00 PM"
        for i in range(10)
    ]
    p.write_text(
        "Name:\tX\nStarted\t5/11/2021 3:40:00 PM\n\n"
        "Rec\tCycle P\tCycle C\tStep\tTestTime\tStepTime\tCap. [mAh]\tEner. [Wh]\tCurrent [mA]\tVoltage [V]\tMd\tES\tDPT Time\n\n"
        + "\n".join(rows)
        + "\n"
    )
    c = maccor.read(p)["cycling"]
    np.testing.assert_allclose(
        c["test_time_second"], 60.0 * np.arange(10)
    )  # the clock says seconds
    np.testing.assert_allclose(c["current_ampere"], [0] + [2e-6] * 9)  # mA -> A


def test_bad_inputs(tmp_path, shared_data):
    src = (shared_data / "maccor/maccor_example.001").read_bytes().decode("latin-1")
    p = tmp_path / "m.001"
    p.write_text("")
    with pytest.raises(InputError, match=r"m\.001.*maccor: file is empty"):
        maccor.read(p)
    p.write_text("Data_Point,Test_Time\n1,2\n")
    with pytest.raises(InputError, match=r"line 1\).*maccor: no Maccor column line"):
        maccor.read(p)
    lines = src.split("\r\n")
    p.write_text("\r\n".join(lines[:6] + [lines[6][:30]]))  # truncated inside row 5 (line 7)
    with pytest.raises(InputError, match=r"m\.001 \(line 7\).*maccor"):
        maccor.read(p)
    p.write_text(
        "\r\n".join(lines[:4] + [lines[4].replace("3.30571450", "3.3O571450")] + lines[5:])
    )
    with pytest.raises(InputError, match=r"line 5\).*non-numeric"):
        maccor.read(p)
    p.write_text("\r\n".join(lines[:2]) + "\r\n")
    with pytest.raises(InputError, match=r"line 3\).*no data rows"):
        maccor.read(p)
    two = (
        (shared_data / "maccor/maccor_example.002")
        .read_bytes()
        .decode("latin-1")
        .replace("Date of Test:", "Dated:")
    )
    p.write_text(two)
    with pytest.raises(InputError, match=r"line 3\).*only the time of day"):
        maccor.read(p)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(min_value=0, max_value=6000), junk=st.binary(max_size=6))
def test_fuzz_truncation(tmp_path, shared_data, cut, junk):
    raw = (shared_data / "cellpy/maccor_002.txt").read_bytes()[:6000]
    p = tmp_path / "z.txt"
    p.write_bytes(raw[:cut] + junk)
    try:
        c = maccor.read(p)["cycling"]
    except InputError as err:
        assert "z.txt" in str(err)
        return
    assert np.all(np.isfinite(c["voltage_volt"]))


def test_every_value_matches_an_independent_parse(shared_data):
    path = shared_data / "cellpy/maccor_002.txt"
    lines = path.read_bytes().decode("latin-1").splitlines()
    rows = [ln.split("\t") for ln in lines[15:] if ln.strip()]
    c = maccor.read(path)["cycling"]
    assert len(rows) == len(c["voltage_volt"]) == 7446
    state = np.array([r[10] for r in rows])
    amps = np.array([float(r[8]) for r in rows])
    sign = np.where(state == "D", -1.0, 1.0)
    np.testing.assert_array_equal(c["current_ampere"], sign * amps)
    np.testing.assert_array_equal(c["voltage_volt"], [float(r[9]) for r in rows])
    np.testing.assert_allclose(c["test_time_second"], [60 * float(r[4]) for r in rows], rtol=1e-15)
    cap = np.array([float(r[6]) for r in rows])
    np.testing.assert_array_equal(c["charge_capacity_ampere_hour"], np.where(state == "C", cap, 0))
    np.testing.assert_array_equal(
        c["discharge_capacity_ampere_hour"], np.where(state == "D", cap, 0)
    )
    np.testing.assert_array_equal(c["vendor_cycle_index"], [int(r[2]) for r in rows])
    np.testing.assert_array_equal(c["vendor_step_index"], [int(r[3]) for r in rows])
    assert set(state) == {"R", "C", "D"}
