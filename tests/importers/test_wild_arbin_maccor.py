"""Real public Arbin and Maccor exports of layouts the readers used to refuse or misread
(fixtures/vendor, see manifest.csv), checked against truth that does not come from our
readers: the rows parsed here with the csv module or pandas, and the vendor's own
capacity/energy counters against the integral of our imported current.

- ``maccor/sample_data_maccor.csv`` (PyProBE, BSD-3): Maccor's comma-separated export,
  ``DPT Time`` as ``23-Nov-23 3:56:11 PM``, no state column (was taken for a BDF CSV).
- ``arbin/sample_data_arbin.csv`` and ``..._unquoted.csv`` (PyProBE): MITS Pro 8 CSV with
  the date quoted and led by a tab (was refused: not a date), empty ACR/IR/dQdV fields.
- ``arbin/2017-05-09_test-TC-contact_CH33.csv`` (beep, Apache-2.0): Cycle_Index,
  Step_Index and Step_Time present but empty on every row.
- ``maccor/maccor_test_file_4267-66-6519.041`` + ``.EDA0001.041`` (beep): a Maccor text
  export with ``  0d 00:00:00.0000`` durations and an FRA (impedance) step, and the Maccor
  AC impedance export of the same test.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

import numpy as np
import pandas as pd
import pytest

from cyclerflow.cli import main
from cyclerflow.errors import InputError
from cyclerflow.importers import detect, import_files, read_any

MACCOR_CSV = "maccor/sample_data_maccor.csv"
ARBIN_Q = "arbin/sample_data_arbin.csv"
ARBIN_U = "arbin/sample_data_arbin_unquoted.csv"
ARBIN_EMPTY = "arbin/2017-05-09_test-TC-contact_CH33.csv"
MACCOR_041 = "maccor/maccor_test_file_4267-66-6519.041"
MACCOR_EIS = "maccor/maccor_test_file_4267-66-6519.EDA0001.041"


def _utc(text: str, fmt: str) -> float:
    return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC).timestamp()


def _csv_rows(path, skip: int) -> tuple[list[str], list[list[str]]]:
    """Column names and rows of a comma-separated file, by the csv module."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    return rows[skip], rows[skip + 1 :]


def _step_integral(t, y, t_step_start, rows) -> np.ndarray:
    """Trapezoid integral of y over time within one step, from the step's start (test
    time minus step time: the vendor counts from there) to each row (Ah or Wh)."""
    t, y = t[rows], y[rows]
    first = y[0] * (t[0] - t_step_start)  # before the first logged row: its value held
    inner = np.concatenate([[0.0], np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(t))])
    return (first + inner) / 3600.0


# --- Maccor CSV export (PyProBE) ---------------------------------------------------------


def test_maccor_csv_is_detected_and_imported(vendor_data, tmp_path):
    path = vendor_data / MACCOR_CSV
    assert detect(path).FORMAT == "maccor"  # was taken for a BDF CSV (exit 2)
    out = tmp_path / "m.h5"
    assert main(["import", str(path), "-o", str(out), "-q"]) == 0 and out.exists()


def test_maccor_csv_values_against_the_file(vendor_data):
    path = vendor_data / MACCOR_CSV
    names, rows = _csv_rows(path, 2)
    assert names[:4] == ["Rec", "Cycle C", "Step", "Test Time (sec)"] and len(rows) == 17
    col = {n: np.array([r[i] for r in rows]) for i, n in enumerate(names)}
    c = read_any(path)["cycling"]
    assert len(c["test_time_second"]) == 17
    np.testing.assert_array_equal(c["test_time_second"], col["Test Time (sec)"].astype(float))
    np.testing.assert_array_equal(c["voltage_volt"], col["Voltage"].astype(float))
    # no state column and no negative current: signed, every current step charge-like
    np.testing.assert_array_equal(c["current_ampere"], col["Current"].astype(float))
    np.testing.assert_array_equal(c["vendor_cycle_index"], col["Cycle C"].astype(int))
    np.testing.assert_array_equal(c["vendor_step_index"], col["Step"].astype(int))
    np.testing.assert_allclose(c["temperature_kelvin"], col["Temp 1"].astype(float) + 273.15)
    unix = [_utc(x, "%d-%b-%y %I:%M:%S %p") for x in col["DPT Time"]]
    np.testing.assert_array_equal(c["unix_time_second"], unix)
    assert c["unix_time_second"][0] == _utc("2023-11-23 15:56:11", "%Y-%m-%d %H:%M:%S")
    charge = col["Step"] == "2"
    np.testing.assert_array_equal(
        c["charge_capacity_ampere_hour"], np.where(charge, col["Capacity"].astype(float), 0)
    )
    np.testing.assert_array_equal(
        c["charge_energy_watt_hour"], np.where(charge, col["Energy"].astype(float), 0)
    )
    assert not c["discharge_capacity_ampere_hour"].any()
    assert c["step_count"].max() == 2 and c["cycle_count"].max() == 1


def test_maccor_csv_counters_match_our_integral(vendor_data):
    """Maccor counts Capacity/Energy from the step's start (Test Time - Step Time): our
    trapezoid of the imported current (and current x voltage) from there matches the
    printed counters to their last digit (3 decimals) on rows 12-15. Rows 16-17 repeat
    row 15's DPT Time and counters while the test time goes on (absent from the file's
    earlier 15-row version): there the counters stand still, as printed."""
    path = vendor_data / MACCOR_CSV
    names, rows = _csv_rows(path, 2)
    col = {n: np.array([r[i] for r in rows], dtype=object) for i, n in enumerate(names)}
    c = read_any(path)["cycling"]
    t, i, v = c["test_time_second"], c["current_ampere"], c["voltage_volt"]
    step = np.flatnonzero(col["Step"] == "2")[:4]  # rows 12-15
    t0 = t[step[0]] - float(col["Step Time (sec)"][step[0]])
    q = _step_integral(t, i, t0, step)
    e = _step_integral(t, i * v, t0, step)
    np.testing.assert_allclose(q, col["Capacity"][step].astype(float), atol=5e-4)
    np.testing.assert_allclose(e, col["Energy"][step].astype(float), atol=5e-4)
    last = np.flatnonzero(col["Step"] == "2")[3:]
    assert len(set(col["DPT Time"][last])) == 1 and len(set(col["Capacity"][last])) == 1


def _maccor_csv(vendor_data, edit) -> bytes:
    """The real Maccor CSV with its rows changed by ``edit(fields) -> fields``."""
    lines = (vendor_data / MACCOR_CSV).read_text(encoding="utf-8").split("\n")
    return "\n".join(lines[:3] + [",".join(edit(ln.split(","))) for ln in lines[3:]]).encode()


def test_maccor_csv_negative_current_is_discharge(vendor_data, tmp_path):
    """Sign rule: a negative current anywhere means the export is signed; the step with
    I < 0 is a discharge (its counters go to discharge_*), whatever its voltage does."""

    def negate(f):
        if f[2] == "2":
            f[7] = "-" + f[7]
        return f

    p = tmp_path / "neg.csv"
    p.write_bytes(_maccor_csv(vendor_data, negate))
    c = read_any(p)["cycling"]
    assert (c["current_ampere"][11:] < 0).all()
    np.testing.assert_array_equal(
        c["discharge_capacity_ampere_hour"][11:], [0, 0.008, 0.016] + [0.024] * 3
    )
    assert not c["charge_capacity_ampere_hour"].any()


def test_maccor_csv_unsigned_currents_are_refused(vendor_data, tmp_path):
    """Sign rule: every current >= 0 but the voltage falls under current in a step (a
    discharge printed as a magnitude): refused naming the file, the missing state column
    and the step; exit 2, no output file."""

    def falling(f):
        if f[2] == "2":
            f[8] = f"{7.4 - float(f[8]):.3f}"  # 3.709 -> 3.691 ... falling
        return f

    p = tmp_path / "unsigned.csv"
    p.write_bytes(_maccor_csv(vendor_data, falling))
    with pytest.raises(InputError, match=r"no state column.*unsigned.*step 2 of cycle 1") as err:
        read_any(p)
    assert "unsigned.csv" in str(err.value) and "line 15" in str(err.value)
    out = tmp_path / "u.h5"
    assert main(["import", str(p), "-o", str(out), "-q"]) == 2
    assert not out.exists()


def test_maccor_csv_with_a_state_column(vendor_data, tmp_path):
    """A comma-separated export that keeps Maccor's MD column: the state gives the sign
    (the text export's rule), currents printed unsigned."""
    text = (vendor_data / MACCOR_CSV).read_text(encoding="utf-8").split("\n")
    out = text[:2] + [text[2] + ",MD"]
    for ln in text[3:]:
        f = ln.split(",")
        out.append(ln + ("," + ("D" if f[2] == "2" else "R")))
    p = tmp_path / "md.csv"
    p.write_text("\n".join(out) + "\n")
    assert detect(p).FORMAT == "maccor"
    c = read_any(p)["cycling"]
    assert (c["current_ampere"][11:] < 0).all() and (c["current_ampere"][:11] == 0).all()
    assert c["discharge_capacity_ampere_hour"][-1] == 0.024


# --- Arbin MITS Pro 8 CSV (PyProBE) --------------------------------------------------------


@pytest.mark.parametrize("rel", [ARBIN_Q, ARBIN_U])
def test_arbin_mits8_values_against_the_file(vendor_data, rel, tmp_path):
    path = vendor_data / rel
    assert detect(path).FORMAT == "arbin"
    out = tmp_path / "a.h5"
    assert main(["import", str(path), "-o", str(out), "-q"]) == 0  # was exit 2 (quoted)
    names, rows = _csv_rows(path, 0)
    col = {n: np.array([r[i].strip() for r in rows]) for i, n in enumerate(names)}
    assert len(rows) == 13 and rows[0][1].startswith("\t")
    c = read_any(path)["cycling"]
    np.testing.assert_array_equal(c["test_time_second"], col["Test Time (s)"].astype(float))
    np.testing.assert_array_equal(c["current_ampere"], col["Current (A)"].astype(float))
    np.testing.assert_array_equal(c["voltage_volt"], col["Voltage (V)"].astype(float))
    np.testing.assert_array_equal(c["vendor_step_index"], col["Step Index"].astype(int))
    np.testing.assert_array_equal(c["vendor_cycle_index"], col["Cycle Index"].astype(int))
    for ours, theirs in (
        ("charge_capacity_ampere_hour", "Charge Capacity (Ah)"),
        ("discharge_capacity_ampere_hour", "Discharge Capacity (Ah)"),
        ("charge_energy_watt_hour", "Charge Energy (Wh)"),
        ("discharge_energy_watt_hour", "Discharge Energy (Wh)"),
    ):
        np.testing.assert_array_equal(c[ours], col[theirs].astype(float), err_msg=ours)
    np.testing.assert_allclose(
        c["temperature_kelvin"], col["Aux_Temperature_1 (C)"].astype(float) + 273.15
    )
    unix = [_utc(x, "%m/%d/%Y %H:%M:%S.%f") for x in col["Date Time"]]
    np.testing.assert_allclose(c["unix_time_second"], unix, rtol=0, atol=1e-6)
    assert c["step_count"].tolist() == [1] * 10 + [2, 3, 3]


def test_arbin_quoted_and_unquoted_versions_agree(vendor_data):
    a = read_any(vendor_data / ARBIN_Q)["cycling"]
    b = read_any(vendor_data / ARBIN_U)["cycling"]
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_arbin_mits8_counters_against_our_integral(vendor_data):
    """The vendor's Charge Capacity/Energy rise across the two logged rows of the 2.65 A
    step by what our trapezoid of current (x voltage) gives, to 0.3 %: Arbin integrates
    at its internal rate (the step's first row already carries 2.0e-5 Ah after 1.2 ms of
    step time, i.e. it counts from before the logged start)."""
    c = read_any(vendor_data / ARBIN_Q)["cycling"]
    t, i, v = c["test_time_second"], c["current_ampere"], c["voltage_volt"]
    q = np.trapezoid(i[11:13], t[11:13]) / 3600
    e = np.trapezoid(i[11:13] * v[11:13], t[11:13]) / 3600
    dq = np.diff(c["charge_capacity_ampere_hour"][11:13])[0]
    de = np.diff(c["charge_energy_watt_hour"][11:13])[0]
    assert q == pytest.approx(dq, rel=3e-3) and e == pytest.approx(de, rel=3e-3)


def test_arbin_quoted_field_holding_a_comma(vendor_data, tmp_path):
    """Class: a quoted text field with a comma inside cannot split its row; a number
    written with a thousands comma inside quotes fails naming its line (never read as two
    fields)."""
    lines = (vendor_data / ARBIN_Q).read_text(encoding="utf-8").split("\n")
    head = lines[0].replace("Data Point,", "Data Point,Step Name,")
    text = [head] + [ln.replace(",", ',"CC, charge",', 1) for ln in lines[1:]]
    p = tmp_path / "named.csv"
    p.write_text("\n".join(text))
    ref = read_any(vendor_data / ARBIN_Q)["cycling"]
    got = read_any(p)["cycling"]
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
    bad = lines[:4] + [lines[4].replace(",3.534572,", ',"3,534572",', 1)] + lines[5:]
    p.write_text("\n".join(bad))
    with pytest.raises(InputError, match=r"line 5.*Voltage"):
        read_any(p)


# --- Arbin CSV with empty Cycle_Index / Step_Index / Step_Time (beep) ---------------------


def test_arbin_empty_counters_real_file(vendor_data):
    path = vendor_data / ARBIN_EMPTY
    d = pd.read_csv(path)
    assert len(d) == 287 and d[["Step_Time", "Step_Index", "Cycle_Index"]].isna().all().all()
    data = read_any(path)
    c = data["cycling"]
    assert "vendor_cycle_index" not in c and "vendor_step_index" not in c
    assert any("present but empty" in e["message"] for e in data["events"])
    np.testing.assert_array_equal(c["test_time_second"], d["Test_Time"])
    np.testing.assert_array_equal(c["unix_time_second"], d["DateTime"])
    np.testing.assert_array_equal(c["current_ampere"], d["Current"])
    np.testing.assert_array_equal(c["voltage_volt"], d["Voltage"])
    np.testing.assert_allclose(c["temperature_kelvin"], d["Temperature"] + 273.15)


def test_arbin_empty_counters_vendor_capacity_against_our_integral(vendor_data):
    """Without step numbers the two current levels (6.6 A to row 46, 1.1 A from row 48)
    are the steps: the vendor's Charge_Capacity/Charge_Energy rise over each by our
    trapezoid of the imported current (x voltage) to 1e-4."""
    path = vendor_data / ARBIN_EMPTY
    d = pd.read_csv(path)
    c = read_any(path)["cycling"]
    t, i, v = c["test_time_second"], c["current_ampere"], c["voltage_volt"]
    for a, b in ((0, 46), (48, 286)):
        q = np.trapezoid(i[a : b + 1], t[a : b + 1]) / 3600
        e = np.trapezoid(i[a : b + 1] * v[a : b + 1], t[a : b + 1]) / 3600
        assert q == pytest.approx(d.Charge_Capacity[b] - d.Charge_Capacity[a], rel=1e-4)
        assert e == pytest.approx(d.Charge_Energy[b] - d.Charge_Energy[a], rel=1e-4)


# --- Maccor durations + FRA step, and the Maccor AC impedance export (beep) ---------------


def test_maccor_duration_export_with_an_fra_step(vendor_data):
    path = vendor_data / MACCOR_041
    assert detect(path).FORMAT == "maccor"
    raw = path.read_bytes()
    assert raw.count(b"\r\n") == 76
    lines = raw.decode("latin-1").split("\r\n")[2:-1]
    rows = [ln.split("\t") for ln in lines]
    c = read_any(path)["cycling"]
    assert len(c["test_time_second"]) == len(rows) == 74

    def seconds(x):  # '  0d 00:00:10.0000'
        d, hms = x.split("d")
        h, m, s = hms.split(":")
        return int(d) * 86400 + int(h) * 3600 + int(m) * 60 + float(s)

    np.testing.assert_array_equal(c["test_time_second"], [seconds(r[3]) for r in rows])
    np.testing.assert_array_equal(c["voltage_volt"], [float(r[8]) for r in rows])
    np.testing.assert_array_equal(c["vendor_step_index"], [int(r[2]) for r in rows])
    unix = [_utc(r[11], "%m/%d/%Y %H:%M:%S") for r in rows]
    np.testing.assert_array_equal(c["unix_time_second"], unix)
    states = [r[9] for r in rows]
    assert states.count("FRA") == 61 and states[-2:] == ["P", "O"]
    # Maccor holds the test clock during the FRA step; the timestamps run on
    fra = np.array(states) == "FRA"
    assert set(c["test_time_second"][fra]) == {10.0}
    assert c["unix_time_second"][fra][-1] - c["unix_time_second"][fra][0] == 319.0
    assert not c["current_ampere"].any()


def _eis_rows(path) -> pd.DataFrame:
    lines = path.read_bytes().decode("latin-1").split("\r\n")
    names = lines[10].split("\t")
    body = "\n".join(ln for ln in lines[12:] if ln.strip())
    return pd.read_csv(io.StringIO(body), sep="\t", header=None, names=names[:13])


def test_maccor_ac_impedance_export(vendor_data, tmp_path):
    path = vendor_data / MACCOR_EIS
    assert detect(path).FORMAT == "maccor"  # before: refused by eis-text (13 of 24 fields)
    data = read_any(path)
    assert not data["cycling"]
    (sp,) = data["spectra"]
    ref = _eis_rows(path)
    assert len(ref) == 60 == len(sp["frequency_hertz"])
    np.testing.assert_array_equal(sp["frequency_hertz"], ref["Freq(Hz)"])
    np.testing.assert_array_equal(sp["real_impedance_ohm"], ref["Z'(a)"])
    np.testing.assert_array_equal(sp["imaginary_impedance_ohm"], ref["Z''(b)"])
    # the vendor's own |Z| and phase say Z'' is the signed imaginary part
    z = sp["real_impedance_ohm"] + 1j * sp["imaginary_impedance_ohm"]
    np.testing.assert_allclose(np.abs(z), ref["Z-Mag"], atol=1e-6)
    # (Z' and Z'' printed to 1e-6 ohm: their angle to ~3e-5 degree at |Z| = 1.1 ohm)
    np.testing.assert_allclose(np.degrees(np.angle(z)), ref["Phase_Angle"], atol=1e-4)
    assert sp["technique"] == "PEIS" and sp["dc_level"] == 3.909893
    # Start Date: Wednesday, November 2, 2016 Start Time: 15:58 + the first point's 38.2 s
    assert sp["unix_time_second"] == pytest.approx(
        _utc("2016-11-02 15:58", "%Y-%m-%d %H:%M") + 38.2
    )
    out = tmp_path / "e.h5"
    assert main(["import", str(path), "-o", str(out), "-q"]) == 0


def test_maccor_cycling_and_impedance_files_in_one_cell(vendor_data, tmp_path):
    """`import x.041 x.EDA0001.041`: the impedance export is no split part of the record
    (same .041 suffix): its spectrum joins the cycling rows of the same test."""
    cell = import_files([vendor_data / MACCOR_041, vendor_data / MACCOR_EIS], tmp_path / "c.h5")
    from cyclerflow.store import read_cycling

    ds = read_cycling(cell)
    assert ds.sizes["sample"] == 74
    out = tmp_path / "cli.h5"
    args = ["import", str(vendor_data / MACCOR_EIS), str(vendor_data / MACCOR_041)]
    assert main([*args, "-o", str(out), "-q"]) == 0
