"""Real public BioLogic / EIS text files from other labs (fixtures/vendor), against
independent truth: values parsed here from the file's own text (Python's datetime,
pandas), the vendor's own columns (``step time/s``), row counts."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from refusal import assert_refused

from cyclerflow.cli import main
from cyclerflow.errors import InputError
from cyclerflow.importers import detect, read_any

STAMPED = "biologic/Sample_data_biologic_timestamped.txt"
NO_HEADER = "biologic/Sample_data_biologic_no_header.mpt"


def _table(path: Path, skip: int) -> pd.DataFrame:
    """The tab-separated rows after ``skip`` header lines, read by pandas (strings)."""
    text = path.read_bytes().decode("latin-1")
    body = "\n".join(text.split("\n")[skip:])
    return pd.read_csv(io.StringIO(body), sep="\t", dtype=str, index_col=False)


def test_bt_lab_export_with_dates_in_time_column(vendor_data):
    """PyProBE's BT-Lab .txt export: ``time/s`` holds ``MM/DD/YYYY hh:mm:ss.fff``."""
    path = vendor_data / STAMPED
    assert detect(path).FORMAT == "biologic-mpt"
    c = read_any(path)["cycling"]
    ref = _table(path, 97)
    assert len(ref) == 8 == len(c["test_time_second"])
    stamps = [
        datetime.strptime(s, "%m/%d/%Y %H:%M:%S.%f").replace(tzinfo=UTC).timestamp()
        for s in ref["time/s"]
    ]
    start = datetime(2024, 11, 20, 11, 38, 41, 707000, tzinfo=UTC).timestamp()  # header
    np.testing.assert_allclose(c["unix_time_second"], stamps, rtol=0, atol=1e-6)
    np.testing.assert_allclose(c["test_time_second"], np.array(stamps) - start, atol=1e-6)
    assert c["test_time_second"][0] == 0.0 and c["test_time_second"][1] == 6.464
    # the vendor's own step time (printed to 1e-9 s) runs with the date in step 1
    step = ref["step time/s"].astype(float).to_numpy()
    np.testing.assert_allclose(c["test_time_second"][1:], step[1:], rtol=0, atol=1e-3)
    np.testing.assert_array_equal(c["voltage_volt"], ref["Ecell/V"].astype(float))
    np.testing.assert_array_equal(c["current_ampere"], ref["I/mA"].astype(float) * 1e-3)
    assert c["vendor_step_index"].tolist() == [0, 1, 1, 1, 1, 1, 1, 1]


@pytest.mark.parametrize(
    ("old", "new", "line", "what"),
    [
        ("11/20/2024 11:38:49.171", "20/11/2024 11:38:49.171", 101, "not a date"),
        ("11/20/2024 11:38:49.171", "11/20/2024 11:38:49.x71", 101, "not a date"),
        ("11/20/2024 11:38:41.707", "11/20/2024 11:38:40.707", 99, "before the header"),
        ("11/20/2024 11:38:50.171", "11/20/2024 09:38:50.171", 102, "steps back"),
    ],
)
def test_bad_dates_in_time_column_are_refused(vendor_data, tmp_path, old, new, line, what):
    raw = (vendor_data / STAMPED).read_bytes()
    old, new = f"\t{old}\t".encode(), f"\t{new}\t".encode()
    assert raw.count(old) == 1
    path = tmp_path / "m.txt"
    path.write_bytes(raw.replace(old, new))
    assert_refused(path, rf"line {line}\).*{what}", tmp_path)


def test_dates_without_header_start_count_from_the_first_row(vendor_data, tmp_path):
    """The same rows without the header (a header-less export): time from the first date."""
    lines = (vendor_data / STAMPED).read_bytes().split(b"\n")
    path = tmp_path / "m.mpt"
    path.write_bytes(b"\n".join(lines[97:]))
    c = read_any(path)["cycling"]
    assert c["test_time_second"][0] == 0.0 and c["test_time_second"][-1] == 12.464
    start = datetime(2024, 11, 20, 11, 38, 41, 707000, tzinfo=UTC).timestamp()
    assert c["unix_time_second"][0] == pytest.approx(start, abs=1e-6)


def test_bt_lab_export_without_header(vendor_data, tmp_path):
    """PyProBE's header-less BT-Lab export (line 1 = 32 names ending with a tab)."""
    path = vendor_data / NO_HEADER
    assert detect(path).FORMAT == "biologic-mpt"
    c = read_any(path)["cycling"]
    ref = _table(path, 0)
    assert len(ref) == 16 and len(ref.columns.drop(ref.columns[-1])) == 32  # (last: the tab)
    np.testing.assert_array_equal(c["test_time_second"], ref["time/s"].astype(float))
    assert c["test_time_second"][0] == 281672.3801174285
    np.testing.assert_array_equal(c["voltage_volt"], ref["Ecell/V"].astype(float))
    np.testing.assert_array_equal(
        c["temperature_kelvin"], ref["Temperature/\xb0C"].astype(float) + 273.15
    )
    assert c["vendor_mode"].tolist() == [3] * 16
    assert "unix_time_second" not in c  # no header: no acquisition start
    out = tmp_path / "c.h5"
    assert main(["import", str(path), "-o", str(out), "-q"]) == 0


CP = "biologic/2022-04-06 16_17_23 full set_01_01_CP_DUSB0_C01.mpt"
CVA_COMMA = "biologic/Pt_poly_cv_CUT.mpt"


def test_ec_lab_chronopotentiometry_export(vendor_data):
    """ixdat's EC-Lab 11.27 CP export (CRLF): charge in coulomb, 'Loop 0 from point
    number 0 to 10' in the header = 11 rows."""
    path = vendor_data / CP
    assert path.read_bytes().count(b"\r\n") == 69
    assert detect(path).FORMAT == "biologic-mpt"
    data = read_any(path)
    c = data["cycling"]
    ref = _table(path, 58)
    assert len(ref) == 11 == len(c["test_time_second"])
    np.testing.assert_array_equal(c["test_time_second"], ref["time/s"].astype(float))
    np.testing.assert_array_equal(c["voltage_volt"], ref["Ewe/V"].astype(float))
    np.testing.assert_array_equal(c["current_ampere"], ref["I/mA"].astype(float) * 1e-3)
    q = ref["(Q-Qo)/C"].astype(float).to_numpy() / 3600
    np.testing.assert_allclose(c["charge_since_start_ampere_hour"], q, rtol=1e-15, atol=0)
    np.testing.assert_array_equal(c["counter_electrode_voltage_volt"], ref["Ece/V"].astype(float))
    start = datetime(2022, 4, 6, 16, 19, 1, tzinfo=UTC).timestamp()
    assert c["unix_time_second"][0] == start


def test_ec_lab_decimal_comma_cva_export(vendor_data):
    """ixdat's EC-Lab 11.33 CVA export from a decimal-comma PC: every number as written
    with a comma, read as pandas reads it with decimal=','."""
    path = vendor_data / CVA_COMMA
    assert detect(path).FORMAT == "biologic-mpt"
    c = read_any(path)["cycling"]
    text = path.read_bytes().decode("latin-1")
    body = "\n".join(text.split("\n")[72:])
    ref = pd.read_csv(io.StringIO(body), sep="\t", decimal=",", index_col=False)
    assert len(ref) == 223 == len(c["test_time_second"])  # points 0 .. 222 of the loop
    assert c["test_time_second"][0] == 3.289600104471901
    np.testing.assert_array_equal(c["test_time_second"], ref["time/s"])
    np.testing.assert_array_equal(c["voltage_volt"], ref["Ewe/V"])
    np.testing.assert_array_equal(c["current_ampere"], ref["<I>/mA"] * 1e-3)
    np.testing.assert_array_equal(c["counter_electrode_voltage_volt"], ref["<Ece>/V"])
    assert c["vendor_cycle_index"][0] == 1 and c["vendor_cycle_index"][-1] == 5
    assert sorted(set(c["cycle_count"].tolist())) == [1, 2, 3, 4, 5]
    start = datetime(2020, 7, 29, 10, 31, 1, tzinfo=UTC).timestamp()
    assert c["unix_time_second"][0] == pytest.approx(start + 3.289600104471901, abs=1e-6)


def _gamry_rows(path: Path, table_line: str) -> pd.DataFrame:
    """The rows of the Gamry table whose name line is ``table_line``, read by pandas."""
    lines = path.read_bytes().decode("latin-1").replace("\r", "").split("\n")
    at = lines.index(table_line)
    body = []
    for ln in lines[at + 3 :]:
        if not ln.startswith("\t"):
            break
        body.append(ln[1:])
    names = lines[at + 1].strip("\t").split("\t")
    return pd.read_csv(io.StringIO("\n".join(body)), sep="\t", header=None, names=names)


def test_gamry_pwr800_charge_step(vendor_data):
    """A PWR800 charge step (TAG PWR800_CHARGE): 66 rows of T, Vf, Im; 20 mA charge is
    positive (Gamry CONVENTION 1, the header's 'Charge Current (A)' 2.00000E-002)."""
    path = vendor_data / "gamry/ccd_charge_data.dta"
    assert detect(path).FORMAT == "gamry-dta"
    c = read_any(path)["cycling"]
    ref = _gamry_rows(path, "CURVE\tTABLE\t66")
    assert len(ref) == 66 == len(c["test_time_second"])
    np.testing.assert_array_equal(c["test_time_second"], ref["T"])
    np.testing.assert_array_equal(c["voltage_volt"], ref["Vf"])
    np.testing.assert_array_equal(c["current_ampere"], ref["Im"])
    assert c["current_ampere"].min() > 0.0199 and c["test_time_second"][-1] == 6.56833
    start = datetime(2015, 11, 12, 11, 16, 43, tzinfo=UTC).timestamp()
    assert c["unix_time_second"][0] == pytest.approx(start + 0.1, abs=1e-6)


def test_gamry_cycle_summary_is_refused(vendor_data, tmp_path):
    """PWR800_CYCLICCHARGEDISCHARGE holds one summary row per step (no time series):
    refused by its TAG, exit 2, no output file."""
    path = vendor_data / "gamry/ccd_data.dta"
    assert detect(path).FORMAT == "gamry-dta"
    assert_refused(path, r"line 2\).*PWR800_CYCLICCHARGEDISCHARGE", tmp_path)


def test_gamry_ocp_with_a_date_whose_order_is_unknown(vendor_data):
    """CORPOT with DATE '10-2-2020' (CRLF, no final newline): 21 rows read; no Unix time
    (October 2 or 10 February?) and a warning saying so."""
    path = vendor_data / "gamry/ocp_data.dta"
    data = read_any(path)
    c = data["cycling"]
    ref = _gamry_rows(path, "CURVE\tTABLE\t99999")
    assert len(ref) == 21 == len(c["test_time_second"])
    np.testing.assert_array_equal(c["test_time_second"], ref["T"])
    np.testing.assert_array_equal(c["voltage_volt"], ref["Vf"])
    assert not c["current_ampere"].any()  # open circuit
    assert "unix_time_second" not in c
    assert any("10-2-2020" in w for w in data["warnings"])


def test_ec_lab_three_column_eis_text_with_signed_im(vendor_data, tmp_path):
    """impedance.py's exampleDataBioLogic.txt: 'freq/Hz Re(Z)/Ohm Im(Z)/Ohm' without the
    EC-Lab header; Im(Z) is signed as written (not -Im(Z)) and is stored as written.
    The same spectrum as exampleDataBioLogic.mpt, whose -Im(Z) column is its negative."""
    path = vendor_data / "eis/exampleDataBioLogic.txt"
    assert detect(path).FORMAT == "eis-text"
    (sp,) = read_any(path)["spectra"]
    ref = _table(path, 0)
    assert len(ref) == 43 == len(sp["frequency_hertz"])
    np.testing.assert_array_equal(sp["frequency_hertz"], ref["freq/Hz"].astype(float))
    np.testing.assert_array_equal(sp["real_impedance_ohm"], ref["Re(Z)/Ohm"].astype(float))
    np.testing.assert_array_equal(sp["imaginary_impedance_ohm"], ref["Im(Z)/Ohm"].astype(float))
    assert sp["imaginary_impedance_ohm"][-1] == -2.3458567  # capacitive, as printed
    (mpt,) = read_any(vendor_data / "eis/exampleDataBioLogic.mpt")["spectra"]
    np.testing.assert_array_equal(mpt["frequency_hertz"], sp["frequency_hertz"])
    np.testing.assert_array_equal(mpt["imaginary_impedance_ohm"], sp["imaginary_impedance_ohm"])
    out = tmp_path / "c.h5"
    assert main(["import", str(path), "-o", str(out), "-q"]) == 0


def test_gamry_galvanostatic_eis_written_by_pygamry(vendor_data):
    """hybrid-drt's GALVEIS file (pygamry): a ZCURVE with no settings lines; GEIS; the
    TIME has microseconds (21:09:58.727375); Zimag as written."""
    path = vendor_data / "gamry/EISGALV_EISTest3.DTA"
    assert detect(path).FORMAT == "gamry-dta"
    data = read_any(path)
    (sp,) = data["spectra"]
    ref = _gamry_rows(path, "ZCURVE\tTABLE")
    assert len(ref) == 71 == len(sp["frequency_hertz"])
    for ours, theirs in (("frequency_hertz", "Freq"), ("real_impedance_ohm", "Zreal")):
        np.testing.assert_array_equal(sp[ours], ref[theirs])
    np.testing.assert_array_equal(sp["imaginary_impedance_ohm"], ref["Zimag"])
    assert sp["technique"] == "GEIS" and sp["imaginary_impedance_ohm"][0] == 0.1695821
    start = datetime(2024, 10, 25, 21, 9, 58, 727375, tzinfo=UTC).timestamp()
    assert sp["unix_time_second"] == pytest.approx(start + 1.541807, abs=1e-6)
    assert not data.get("warnings")


def test_gamry_eis_with_temperature_in_the_file_name(vendor_data):
    """bayes-drt's '550C.0.5V.DTA': 550 degC from the name (with a warning), VAC 10 mV
    rms, VDC -0.5 V vs Eoc, 61 points as pandas reads them."""
    path = vendor_data / "gamry/550C.0.5V.DTA"
    data = read_any(path)
    (sp,) = data["spectra"]
    ref = _gamry_rows(path, "ZCURVE\tTABLE")
    assert len(ref) == 61 == len(sp["frequency_hertz"])
    np.testing.assert_array_equal(sp["frequency_hertz"], ref["Freq"])
    np.testing.assert_array_equal(sp["real_impedance_ohm"], ref["Zreal"])
    np.testing.assert_array_equal(sp["imaginary_impedance_ohm"], ref["Zimag"])
    assert sp["temperature_kelvin"] == pytest.approx(823.15)
    assert any("550C" in w for w in data["warnings"])
    assert sp["amplitude"] == 0.01 and sp["dc_level"] == -0.5
    assert sp["dc_level_vs_open_circuit"] == 1 and sp["technique"] == "PEIS"
    start = datetime(2020, 8, 31, 16, 39, 19, tzinfo=UTC).timestamp()
    assert sp["unix_time_second"] == start + 3


def _ec_lab_11_52(title: str, settings: list[str], columns: str, rows: list[str]) -> bytes:
    """An EC-Lab 11.52 text export in the layout of a public VMP-300 file (Houlbergg/
    Thesis, no licence: only its layout is used): header, settings, column line, rows."""
    head = [
        "EC-Lab ASCII FILE",
        "Nb header lines : XX                          ",
        "",
        title,
        "",
        "Run on channel : 15 (SN 19485)",
        "Acquisition started on : 02/23/2024 16:29:27.631",
        "Device : VMP-300 (SN 0826)",
        "EC-Lab for windows v11.52 (software)",
        "Electrode surface area : 0.001 cm\xb2",
        "Record EIS quality indicators",
        "Cycle Definition : Charge/Discharge alternance",
        *settings,
        "",
        columns,
    ]
    head[1] = head[1].replace("XX", str(len(head)))
    return "\r\n".join(head + rows).encode("latin-1")


def test_ec_lab_11_52_ocv_export_mean_voltage_and_no_current(tmp_path):
    """EC-Lab 11.52 writes the OCV export's voltage as '<Ewe/V>' and no current column
    (was exit 2 'no column for voltage_volt, current_ampere'): the voltage is read and
    the current is 0 (open circuit), said in the column's attributes."""
    rows = [
        "3\t0\t4.999999873689376E-001\t4.5958799E-001",
        "3\t0\t9.999999747378752E-001\t4.5958668E-001",
    ]
    settings = [
        "tR (h:m:s)          0:01:0.0000         ",
        "record              <Ewe>               ",
    ]
    p = tmp_path / "o_01_OCV_C15.mpt"
    p.write_bytes(
        _ec_lab_11_52("Open Circuit Voltage", settings, "mode\terror\ttime/s\t<Ewe/V>\t", rows)
    )
    data = read_any(p)
    c = data["cycling"]
    assert c["voltage_volt"].tolist() == [0.45958799, 0.45958668]
    assert c["current_ampere"].tolist() == [0.0, 0.0]
    assert "open circuit" in data["column_attrs"]["current_ampere"]["derived_from"]
    start = datetime(2024, 2, 23, 16, 29, 27, 631000, tzinfo=UTC).timestamp()
    assert c["unix_time_second"][0] == pytest.approx(start + 0.4999999873689376, abs=1e-6)


def test_ec_lab_export_without_current_outside_ocv_is_refused(tmp_path):
    """The same columns under a technique where current flows (CA): no current is not
    0 there; refused naming the missing column."""
    rows = ["1\t0\t0.5\t0.45958799"]
    p = tmp_path / "o_01_CA_C15.mpt"
    p.write_bytes(
        _ec_lab_11_52(
            "Chronoamperometry / Chronocoulometry", [], "mode\terror\ttime/s\t<Ewe/V>\t", rows
        )
    )
    with pytest.raises(InputError, match="current_ampere"):
        read_any(p)


def test_ec_lab_export_of_a_technique_without_rows_is_refused(tmp_path):
    """A Wait step exported with its column line and no rows (EC-Lab 11.52 writes such
    files): nothing to import, exit 2 naming the line, no output file."""
    p = tmp_path / "w_02_WAIT_C15.mpt"
    p.write_bytes(
        _ec_lab_11_52(
            "Wait",
            ["dt (s)              0.0000              "],
            "mode\terror\ttime/s\tEwe/V\tI/mA\tP/W\t",
            [],
        )
    )
    assert_refused(p, r"no data rows", tmp_path)


def test_dates_in_time_column_with_dashes(vendor_data, tmp_path):
    """The same export with the PC's date separator '-' (an EC-Lab 11.52 header writes
    '04-05-2024'): read month first like the header, same seconds as with '/'."""
    raw = (vendor_data / STAMPED).read_bytes()
    dashed = re.sub(rb"(\t|: )11/20/2024", rb"\g<1>11-20-2024", raw)
    assert dashed.count(b"11-20-2024") == 10
    path = tmp_path / "m.txt"
    path.write_bytes(dashed)
    c = read_any(path)["cycling"]
    ref = read_any(vendor_data / STAMPED)["cycling"]
    np.testing.assert_array_equal(c["test_time_second"], ref["test_time_second"])
    np.testing.assert_array_equal(c["unix_time_second"], ref["unix_time_second"])
    mixed = dashed.replace(b"\t11-20-2024 11:38:52.171", b"\t11/20/2024 11:38:52.171")
    path.write_bytes(mixed)
    with pytest.raises(InputError, match=r"line 104\).*not a date"):
        read_any(path)


def test_headerless_eis_with_space_tab_separators(vendor_data):
    """pyDRTtools' LIB_data.txt: no header, 'value<space><tab>' separators and a space
    before each line end; read as pandas reads whitespace-separated columns; Z'' signed
    as written (inductive above ~450 Hz)."""
    path = vendor_data / "eis/LIB_data.txt"
    assert detect(path).FORMAT == "eis-text"
    (sp,) = read_any(path)["spectra"]
    ref = pd.read_csv(path, sep=r"\s+", header=None)
    assert ref.shape == (107, 3) and len(sp["frequency_hertz"]) == 107
    np.testing.assert_array_equal(sp["frequency_hertz"], ref[0])
    np.testing.assert_array_equal(sp["real_impedance_ohm"], ref[1])
    np.testing.assert_array_equal(sp["imaginary_impedance_ohm"], ref[2])
    assert sp["imaginary_impedance_ohm"][0] == 0.00318273902
    assert sp["imaginary_impedance_ohm"][-1] == -0.0137396762


_NOVA_COLUMNS = "Frequency (Hz)\tZ' (\u03a9)\t-Z'' (\u03a9)\tZ (\u03a9)\t-Phase (\u00b0)\tTime (s)"


def test_eis_table_with_decimal_commas(tmp_path):
    """A Nova-style tab-separated export written on a decimal-comma PC ('10,5'; was
    exit 2 'non-numeric value'): read like the point-locale twin; -Z'' negated."""
    rows = ["100000\t10,5\t0,5\t10,51\t2,7\t0,5", "10000\t11\t2,25\t11,18\t10,3\t1,2"]
    p = tmp_path / "nova_de.txt"
    p.write_bytes(("\r\n".join([_NOVA_COLUMNS, *rows]) + "\r\n").encode("utf-8"))
    twin = tmp_path / "nova_en.txt"
    twin.write_bytes(p.read_bytes().replace(b",", b"."))
    (sp,) = read_any(p)["spectra"]
    (ref,) = read_any(twin)["spectra"]
    for k in ("frequency_hertz", "real_impedance_ohm", "imaginary_impedance_ohm"):
        np.testing.assert_array_equal(sp[k], ref[k], err_msg=k)
    assert sp["real_impedance_ohm"].tolist() == [10.5, 11.0]
    assert sp["imaginary_impedance_ohm"].tolist() == [-0.5, -2.25]


def test_eis_table_mixing_decimal_commas_and_points_is_refused(tmp_path):
    rows = ["100000\t10,5\t0,5\t10,51\t2,7\t0,5", "10000\t11.0\t2,25\t11,18\t10,3\t1,2"]
    p = tmp_path / "nova_mixed.txt"
    p.write_bytes(("\n".join([_NOVA_COLUMNS, *rows]) + "\n").encode("utf-8"))
    with pytest.raises(InputError, match=r"line 3\).*decimal commas and decimal points"):
        read_any(p)


@pytest.mark.parametrize("sep", [";", "\t"])
def test_headerless_eis_with_decimal_commas(tmp_path, sep):
    """'f;Z';Z''' rows with decimal commas (a comma cannot separate there): read like
    the point twin; a comma-separated header-less file keeps commas as separators."""
    rows = ["100000", "10,5", "-0,5"], ["10000", "11", "-2,25"], ["1000", "15", "-6"]
    p = tmp_path / "hl_de.txt"
    p.write_text("\n".join(sep.join(r) for r in rows) + "\n")
    (sp,) = read_any(p)["spectra"]
    assert sp["real_impedance_ohm"].tolist() == [10.5, 11.0, 15.0]
    assert sp["imaginary_impedance_ohm"].tolist() == [-0.5, -2.25, -6.0]
    mixed = tmp_path / "hl_mixed.txt"
    mixed.write_text(p.read_text().replace("-6", "-6.5"))
    with pytest.raises(InputError, match=r"line 3\).*decimal commas and decimal points"):
        read_any(mixed)


def test_ec_lab_export_saved_as_utf8_keeps_its_unit_columns(vendor_data, tmp_path):
    """The timestamped export re-saved as UTF-8 ('Temperature/°C' as two bytes): the
    temperature column is still found (it was dropped as 'Temperature/Â°C')."""
    raw = (vendor_data / STAMPED).read_bytes()
    p = tmp_path / "utf8.txt"
    p.write_bytes(raw.decode("latin-1").encode("utf-8"))
    assert b"\xc2\xb0C" in p.read_bytes()
    c = read_any(p)["cycling"]
    ref = read_any(vendor_data / STAMPED)["cycling"]
    assert sorted(c) == sorted(ref)
    np.testing.assert_array_equal(c["temperature_kelvin"], ref["temperature_kelvin"])


@pytest.mark.parametrize(
    ("mod_name", "phase_name", "sign"),
    [("Impedance (ohm)", "Phase (degrees)", 1), ("Z (\u03a9)", "-Phase (\u00b0)", -1)],
)
def test_eis_table_with_modulus_and_phase_only(vendor_data, tmp_path, mod_name, phase_name, sign):
    """An impedance-analyser table with free text, then 'Index # / Frequency (Hz) /
    Impedance (ohm) / Phase (degrees)' (the layout of a public file; was exit 2): Z' and
    Z'' from |Z| and the phase. Truth: the real LIB_data.txt spectrum written in polar
    form to 17 digits comes back to 1e-12."""
    (ref,) = read_any(vendor_data / "eis/LIB_data.txt")["spectra"]
    z = ref["real_impedance_ohm"] + 1j * ref["imaginary_impedance_ohm"]
    lines = ["IMPEDANCE MEASUREMENT ", "Driving voltage (V): 1.000E-2", "# freq steps: 107"]
    lines.append(f"Index #\tFrequency (Hz)\t{mod_name}\t{phase_name}")
    for k, (f, zk) in enumerate(zip(ref["frequency_hertz"], z, strict=True)):
        ph = sign * float(np.degrees(np.angle(zk)))
        lines.append(f"{k}\t{float(f)!r}\t{float(abs(zk))!r}\t{ph!r}")
    p = tmp_path / "polar.txt"
    p.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    assert detect(p).FORMAT == "eis-text"
    (sp,) = read_any(p)["spectra"]
    np.testing.assert_array_equal(sp["frequency_hertz"], ref["frequency_hertz"])
    np.testing.assert_allclose(sp["real_impedance_ohm"], z.real, rtol=1e-12, atol=0)
    np.testing.assert_allclose(sp["imaginary_impedance_ohm"], z.imag, rtol=1e-10, atol=1e-15)
    assert sp["derived_from"] == "|Z| and phase (degrees)"


def test_eis_table_with_phase_without_unit_is_not_read(tmp_path):
    """A phase without a unit is not taken: no guess of degrees or radians (a phase in
    ``rad`` is converted: test_eis_text_layouts.py)."""
    p = tmp_path / "polar_nounit.txt"
    p.write_text("Frequency (Hz)\tImpedance (ohm)\tPhase\n1000\t10\t-0.5\n100\t12\t-0.7\n")
    with pytest.raises(InputError):
        read_any(p)
