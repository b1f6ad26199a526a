"""Dates out of range, integers beyond int64/float64, mixed time zones, NaN where a
counter is expected, time going back or negative: each bad file (built here) is one
InputError naming the file, the line (or row) and the column, exit 2 from the CLI and
no output file; the good variants import to the known values.

Regressions of the vendor-file fuzz campaign (docs/reliability.md): Maccor year 216
(pandas OutOfBoundsDatetime), Arbin 17-digit integer (pyarrow ArrowInvalid), Neware
mixed time zones (pandas ValueError)."""

from __future__ import annotations

import calendar
from pathlib import Path

import numpy as np
import pytest

from cyclerflow.cli import main
from cyclerflow.errors import InputError
from cyclerflow.importers import guarded, read_any

# --- builders --------------------------------------------------------------------------

MACCOR_HEAD = (
    "Today's Date 04/04/2016  Date of Test:\t03/31/2016\t Filename:\tC:\\Data\\x.001\t"
    "Procedure:\tp.000\tComment/Barcode: built in a test\r\n"
    "Rec#\tCyc#\tStep\tTest (Min)\tStep (Min)\tAmp-hr\tWatt-hr\tAmps\tVolts\tState\tES\t"
    "DPt Time\r\n"
)


def maccor(n: int = 12, **cells: str) -> bytes:
    """A Maccor text export (tab separated, minutes, ``DPt Time`` dates), one row every
    10 s from 03/31/2016 16:05:31; ``cells`` replaces a field: ``date_4="..."`` puts
    that text in the DPt Time of data row 4 (line 6)."""
    rows = []
    for k in range(n):
        t = 10 * k
        state, amps = ("R", 0.0) if k < n // 2 else ("D", 0.001)
        stamp = cells.get(
            f"date_{k}", f"03/31/2016 16:{5 + (31 + t) // 60:02d}:{(31 + t) % 60:02d}"
        )
        cyc = cells.get(f"cycle_{k}", "0")
        rows.append(
            f"{k + 1}\t{cyc}\t{1 if state == 'R' else 2}\t{t / 60:.4f}\t{t / 60:.4f}\t"
            f"{amps * t / 3600:.10f}\t0.0000000000\t{amps:.10f}\t{3.3 - 0.001 * k:.8f}\t"
            f"{state}\t0\t{stamp}\r\n"
        )
    return (MACCOR_HEAD + "".join(rows)).encode()


ARBIN_HEAD = (
    "Data_Point,Test_Time,DateTime,Step_Time,Step_Index,Cycle_Index,Current,Voltage,"
    "Charge_Capacity,Discharge_Capacity\n"
)


def arbin(n: int = 12, **cells: str) -> bytes:
    """An Arbin CSV (DateTime as Unix s from 1499006353, one row per 5 s); ``cells``
    as ``<column>_<row>="text"`` replaces a field (row from 0, on line row + 2)."""
    rows = []
    for k in range(n):
        f = {
            "Data_Point": str(k + 1),
            "Test_Time": f"{5.0 * k:g}",
            "DateTime": str(1499006353 + 5 * k),
            "Step_Time": f"{5.0 * k:g}",
            "Step_Index": "1" if k < n // 2 else "2",
            "Cycle_Index": "1",
            "Current": "0" if k < n // 2 else "1.1",
            "Voltage": f"{3.3 + 0.01 * k:.4f}",
            "Charge_Capacity": "0",
            "Discharge_Capacity": "0",
        }
        for key, text in cells.items():
            col, row = key.rsplit("_", 1)
            if int(row) == k:
                f[col] = text
        rows.append(",".join(f.values()) + "\n")
    return (ARBIN_HEAD + "".join(rows)).encode()


NEWARE_HEAD = (
    "DataPoint,Cycle Index,Step Index,Step Type,Time,Cumulative Time,Current(A),Voltage(V),"
    "Capacity(Ah),Energy(Wh),Date\n"
)


def neware(dates: list[str], **cells: str) -> bytes:
    """A Neware BTSDA CSV (A / V / Ah variant), one CC charge row per date (10 s apart);
    ``cells`` as ``<counter>_<row>`` (``cycle``/``step``) replaces that counter."""
    rows = []
    for k, date in enumerate(dates):
        t = 10 * k
        hms = f"00:{t // 60:02d}:{t % 60:02d}"
        cyc, step = cells.get(f"cycle_{k}", "1"), cells.get(f"step_{k}", "1")
        rows.append(
            f"{k + 1},{cyc},{step},CC Chg,{hms},{hms},0.00100000,{3.6 + 0.001 * k:.4f},"
            f"{0.001 * t / 3600:.9f},{0.0036 * t / 3600:.9f},{date}\n"
        )
    return (NEWARE_HEAD + "".join(rows)).encode()


def _dates(n: int, start: str = "2024-03-01 10:00:") -> list[str]:
    return [f"{start}{10 * k:02d}" for k in range(n)]


def _refused(tmp_path: Path, name: str, raw: bytes, *words: str) -> InputError:
    """``raw`` as file ``name``: read_any raises one InputError holding the file name
    and every word; the CLI exits 2 and leaves no output (nor a temporary) file."""
    p = tmp_path / name
    p.write_bytes(raw)
    with pytest.raises(InputError) as e:
        read_any(p)
    msg = str(e.value)
    assert str(p) in msg
    for w in words:
        assert w in msg, msg
    out = tmp_path / "out.h5"
    assert main(["import", str(p), "-o", str(out), "-q"]) == 2
    assert not out.exists()
    assert not [x for x in tmp_path.iterdir() if x.name.startswith(".out.h5")]
    return e.value


# --- Maccor: dates out of range ----------------------------------------------------------


def test_maccor_good_file_gives_the_known_times(tmp_path):
    p = tmp_path / "m.001"
    p.write_bytes(maccor())
    c = read_any(p)["cycling"]
    t0 = calendar.timegm((2016, 3, 31, 16, 5, 31))
    assert np.array_equal(c["unix_time_second"], t0 + 10.0 * np.arange(12))
    assert np.allclose(c["test_time_second"], 10.0 * np.arange(12), atol=0.003)


@pytest.mark.parametrize("year", ["216", "0016", "1216", "9999", "1899"])
def test_maccor_date_out_of_range_names_line_and_column(tmp_path, year):
    raw = maccor(date_4=f"03/31/{year} 16:06:11")
    _refused(tmp_path, "m.001", raw, "(line 7)", "DPt Time", f"{int(year):04d}-03-31")


def test_maccor_date_stepping_back_a_day_is_refused(tmp_path):
    _refused(tmp_path, "m.001", maccor(date_5="03/30/2016 16:06:21"), "(line 8)", "steps back")


def test_maccor_impossible_header_date_is_one_error(tmp_path):
    """Time-of-day rows take their day from the header; month 13 there is an error,
    not a ValueError from datetime."""
    raw = maccor().replace(b"Date of Test:\t03/31/2016", b"Date of Test:\t13/31/2016")
    raw = raw.replace(b"03/31/2016 ", b"")  # rows hold times of day only
    _refused(tmp_path, "m.001", raw, "(line 3)", "Date of Test")


# --- Arbin: integers beyond float64/int64, epoch dates out of range --------------------------


def test_arbin_good_file_gives_the_known_values(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes(arbin())
    c = read_any(p)["cycling"]
    assert np.array_equal(c["unix_time_second"], 1499006353.0 + 5.0 * np.arange(12))
    assert np.array_equal(c["vendor_step_index"], [1] * 6 + [2] * 6)


@pytest.mark.parametrize(
    ("column", "value", "words"),
    [
        ("DateTime", "12345678901234567", ("DateTime", "outside 1900-01-01")),
        ("DateTime", "149900635388", ("DateTime", "outside 1900-01-01")),  # a digit inserted
        ("Step_Index", "12345678901234567", ("step", "not a whole number")),
        ("Cycle_Index", "123456789012345678901", ("cycle", "not a whole number")),
        ("Cycle_Index", "-92233720368547758070", ("cycle", "not a whole number")),
        ("Step_Index", "nan", ("Step_Index",)),
        ("Test_Time", "-5", ("Test_Time", "backwards")),
    ],
)
def test_arbin_huge_or_bad_numbers_name_line_and_column(tmp_path, column, value, words):
    _refused(tmp_path, "a.csv", arbin(**{f"{column}_4": value}), "(line 6)", *words)


def test_arbin_negative_first_time_is_refused(tmp_path):
    _refused(tmp_path, "a.csv", arbin(Test_Time_0="-10"), "(row 1)", "negative")


def test_arbin_text_dates_with_utc_offsets_convert_to_utc(tmp_path):
    """Every row with an offset (a DST change inside the file): a correct import in UTC."""
    n = 6
    stamps = {f"DateTime_{k}": f"2024-03-31 0{k}:00:00+0{1 if k < 3 else 2}:00" for k in range(n)}
    p = tmp_path / "a.csv"
    p.write_bytes(arbin(n, **stamps))
    u = read_any(p)["cycling"]["unix_time_second"]
    base = calendar.timegm((2024, 3, 31, 0, 0, 0))
    want = [base + 3600 * (k - (1 if k < 3 else 2)) for k in range(n)]
    assert np.array_equal(u, want)


def test_arbin_text_dates_mixing_offsets_and_none_are_refused(tmp_path):
    stamps = {f"DateTime_{k}": f"2024-03-01 10:00:{k:02d}" for k in range(12)}
    stamps["DateTime_3"] = "2024-03-01 10:00:03+01:00"
    _refused(tmp_path, "a.csv", arbin(**stamps), "(line 5)", "DateTime", "UTC offset")


# --- Neware: mixed time zones, dates out of range, huge counters --------------------------


def test_neware_good_file_gives_the_known_dates(tmp_path):
    p = tmp_path / "n.csv"
    p.write_bytes(neware(_dates(6)))
    u = read_any(p)["cycling"]["unix_time_second"]
    assert np.array_equal(u, calendar.timegm((2024, 3, 1, 10, 0, 0)) + 10.0 * np.arange(6))


@pytest.mark.parametrize("stamp", ["2024-03-01 10:00:30Z", "2024-03-01 10:00:30+05:00",
                                   "2024-03-01 10:00-01"])  # fmt: skip
def test_neware_one_zoned_date_among_naive_ones_is_refused(tmp_path, stamp):
    dates = _dates(6)
    dates[3] = stamp
    _refused(tmp_path, "n.csv", neware(dates), "(line 5)", "'Date'", "UTC offset")


def test_neware_all_zoned_dates_convert_to_utc(tmp_path):
    dates = [f"2024-10-27 02:{k:02d}:00{'+02:00' if k < 3 else '+01:00'}" for k in range(6)]
    p = tmp_path / "n.csv"
    p.write_bytes(neware(dates))
    u = read_any(p)["cycling"]["unix_time_second"]
    base = calendar.timegm((2024, 10, 27, 2, 0, 0))
    assert np.array_equal(u, [base + 60 * k - (7200 if k < 3 else 3600) for k in range(6)])


@pytest.mark.parametrize(("stamp", "words"), [
    ("0216-03-01 10:00:30", ("0216-03-01", "outside")),
    ("1999-03-01 10:00:30", ("steps back", "1999-03-01")),
])  # fmt: skip
def test_neware_date_out_of_range_or_back_names_its_line(tmp_path, stamp, words):
    dates = _dates(6)
    dates[3] = stamp
    _refused(tmp_path, "n.csv", neware(dates), "(line 5)", "'Date'", *words)


def test_neware_huge_counter_names_its_line(tmp_path):
    raw = neware(_dates(6), cycle_2="123456789012345678901")
    _refused(tmp_path, "n.csv", raw, "(line 4)", "'Cycle Index'", "not a whole number")


# --- the shared guards ---------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, 2.0**53 + 2, 0.5, -1e300])
def test_whole_numbers_refuses_what_int64_would_garble(bad):
    v = np.array([1.0, 2.0, bad, 4.0])
    with pytest.raises(InputError, match=r"\(line 12\).*'c'"):
        guarded.whole_numbers("f.txt", "fmt", "c", v, 10)


def test_whole_numbers_keeps_exact_values_and_refuses_huge_unsigned():
    v = np.array([0.0, -(2.0**53), 2.0**53, 7.0])
    assert guarded.whole_numbers("f", "", "c", v, 1).tolist() == [0, -(2**53), 2**53, 7]
    with pytest.raises(InputError, match=r"\(row 2\)"):
        guarded.whole_numbers("f", "", "c", np.array([1, 2**63], dtype="u8"), 1, "row")


def test_parse_dates_formats_and_range():
    texts = ["2024-03-01 10:00:00", "2024-03-01 10:00:01.25"]
    u = guarded.parse_dates("f", "", "d", texts, 2)
    assert u.tolist() == [calendar.timegm((2024, 3, 1, 10, 0, 0)) + x for x in (0.0, 1.25)]
    with pytest.raises(InputError, match=r"\(line 3\).*2200-01-01 00:00:00 is outside"):
        guarded.parse_dates("f", "", "d", ["2199-12-31 23:59:59", "2200-01-01 00:00:00"], 2)
    with pytest.raises(InputError, match=r"\(line 2\).*'31/31/2024' is not a date"):
        guarded.parse_dates("f", "", "d", ["31/31/2024"], 2)


def test_float64_casts_integers_beyond_2_53_without_error():
    import pyarrow as pa

    col = pa.chunked_array([pa.array([1, 12345678901234567], type=pa.int64())])
    assert guarded.float64(col).tolist() == [1.0, 12345678901234567.0]


# --- the last check on every import ----------------------------------------------------


def test_bdf_csv_negative_test_time_is_refused(tmp_path):
    raw = b"test_time_second,voltage_volt,current_ampere\n-1,3.5,0\n0,3.5,0\n1,3.6,0.1\n"
    _refused(tmp_path, "t.csv", raw, "(row 1)", "negative")


def test_bdf_csv_date_out_of_range_is_refused(tmp_path):
    raw = (
        b"test_time_second,voltage_volt,current_ampere,unix_time_second\n"
        b"0,3.5,0,1.7e9\n1,3.5,0,1.7e9\n2,3.6,0.1,1e12\n"
    )
    _refused(tmp_path, "t.csv", raw, "unix_time_second", "outside 1900-01-01")


def test_bdf_parquet_spectrum_id_nan_is_one_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "spectrum_id": [1.0, 1.0, float("nan")],
            "frequency_hertz": [1e3, 1e2, 1e1],
            "real_impedance_ohm": [1.0, 2.0, 3.0],
            "imaginary_impedance_ohm": [-0.1, -0.2, -0.3],
        }
    )
    p = tmp_path / "s.bdf.parquet"
    pq.write_table(table, p)
    with pytest.raises(InputError, match=r"\(row 3\).*spectrum_id"):
        read_any(p, "bdf-parquet")


def test_spectrum_with_zero_frequency_is_refused_after_any_reader(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "frequency_hertz": [1e3, 0.0],
            "real_impedance_ohm": [1.0, 2.0],
            "imaginary_impedance_ohm": [-0.1, -0.2],
        }
    )
    p = tmp_path / "s.bdf.parquet"
    pq.write_table(table, p)
    with pytest.raises(InputError, match=r"\(spectrum 1\).*point 2: frequency 0.0 Hz"):
        read_any(p, "bdf-parquet")


# --- found by the campaign's 'number' mutation ------------------------------------------


def test_gamry_curve_number_beyond_int64_names_its_line(vendor_data, tmp_path):
    raw = (vendor_data / "gamry/cv_data.dta").read_bytes()
    lines = raw.split(b"\n")
    k = next(i for i, ln in enumerate(lines) if ln.startswith(b"CURVE") and b"\tTABLE" in ln)
    lines[k] = b"CURVE99999999999999999999\tTABLE" + lines[k].split(b"\tTABLE", 1)[1]
    _refused(tmp_path, "cv.dta", b"\n".join(lines), f"(line {k + 1})", "curve number")


@pytest.mark.parametrize("year", ["99999999999999999999", "12345678901234567"])
def test_mpt_start_date_beyond_c_long_is_no_traceback(vendor_data, tmp_path, year):
    """A start date that no calendar holds is dropped as EC-Lab's day-first dates are
    (the rows still import: their times are relative to the start)."""
    raw = (vendor_data / "biologic/exampleDataBioLogic.mpt").read_bytes()
    start = raw.index(b"Acquisition started on : ") + len(b"Acquisition started on : ")
    slash = raw.index(b"/", start)
    p = tmp_path / "x.mpt"
    p.write_bytes(raw[:start] + year.encode() + raw[slash:])
    line = raw[:start].count(b"\n") + 1
    with pytest.warns(UserWarning, match=f"line {line}: cannot read the acquisition start"):
        data = read_any(p)
    assert data["spectra"] and all("unix_time_second" not in sp for sp in data["spectra"])


@pytest.mark.parametrize("date", [b"31/12/2024 10:00:00", b"yesterday", b"12/31/2024"])
def test_mpt_unreadable_start_date_warns_naming_its_line(vendor_data, tmp_path, date):
    """A day-first, missing or partial start date is not dropped silently: one warning
    names the line, and the rows import without a Unix time."""
    raw = (vendor_data / "biologic/exampleDataBioLogic.mpt").read_bytes()
    start = raw.index(b"Acquisition started on : ") + len(b"Acquisition started on : ")
    end = raw.index(b"\n", start)
    p = tmp_path / "x.mpt"
    p.write_bytes(raw[:start] + date + raw[end - (raw[end - 1 : end] == b"\r") :])
    line = raw[:start].count(b"\n") + 1
    with pytest.warns(UserWarning, match=f"x.mpt line {line}: cannot read") as got:
        data = read_any(p)
    assert len([w for w in got if "acquisition start" in str(w.message)]) == 1
    assert all("unix_time_second" not in sp for sp in data["spectra"])


def test_maccor_header_date_beyond_c_long_is_one_error(tmp_path):
    raw = maccor().replace(
        b"Date of Test:\t03/31/2016", b"Date of Test:\t99999999999999999999/31/2016"
    )
    raw = raw.replace(b"03/31/2016 ", b"")  # rows hold times of day only
    _refused(tmp_path, "m.001", raw, "(line 3)", "Date of Test")


def test_gamry_header_date_out_of_range_is_refused_by_the_last_check(vendor_data, tmp_path):
    raw = (vendor_data / "gamry/cv_data.dta").read_bytes()
    raw = raw.replace(b"DATE\tLABEL\t3/6/2019", b"DATE\tLABEL\t3/6/0216")
    _refused(tmp_path, "cv.dta", raw, "(row 1)", "unix_time_second", "0216-03-06 16:35:22")


@pytest.mark.parametrize("value", [b"nan", b"inf", b"1e400"])
def test_gamry_header_amplitude_not_a_number_is_refused(vendor_data, tmp_path, value):
    """Found by the number mutation: a header value 'nan' was stored as the spectrum's
    amplitude."""
    raw = (vendor_data / "gamry/eispot_data.dta").read_bytes()
    lines = raw.split(b"\n")
    k = next(i for i, ln in enumerate(lines) if ln.startswith(b"VAC\t"))
    fields = lines[k].split(b"\t")
    fields[2] = value
    lines[k] = b"\t".join(fields)
    _refused(tmp_path, "eis.dta", b"\n".join(lines), "(spectrum 1)", "amplitude")
