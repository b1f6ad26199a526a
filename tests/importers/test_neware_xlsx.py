"""Neware BTSDA's Excel export: the record sheet(s) read through the CSV reader's checks,
compared with the same records written as a BTSDA CSV export."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from fuzz_helpers import CUT, FLIPS, damage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from refusal import assert_refused
from test_neware_csv import _hms, _truth

from cyclerflow.cli import main
from cyclerflow.importers import detect, neware_csv, neware_xlsx, read_any

HEAD = ["DataPoint", "Step Type", "Time", "Total Time", "Current(A)", "Voltage(V)",
        "Capacity(Ah)", "Energy(Wh)", "Date", "Power(W)"]  # fmt: skip
T0 = dt.datetime(2024, 3, 1, 10, 0, 0)


def _record_rows(rows, cells: str) -> list[list[object]]:
    """BTSDA 8 record rows (no Cycle/Step Index); times as text or as typed cells."""
    out = []
    for n, r in enumerate(rows, 1):
        if cells == "text":
            times = [
                _hms(r["ts"], True),
                _hms(r["t"], True),
                f"{T0 + dt.timedelta(seconds=r['t'])}",
            ]
        else:
            times = [
                dt.timedelta(seconds=r["ts"]),
                dt.timedelta(seconds=r["t"]),
                T0 + dt.timedelta(seconds=r["t"]),
            ]
        q = r["q"]
        out.append(
            [
                n,
                r["name"],
                times[0],
                times[1],
                r["i"],
                r["v"],
                q,
                q * 3.5,
                times[2],
                r["i"] * r["v"],
            ]
        )
    return out


def _workbook(path: Path, rows, cells: str = "text", split: int | None = None) -> Path:
    wb = openpyxl.Workbook()
    unit = wb.active
    unit.title = "unit"
    unit.append(["BTS 8.0 export", None, "Channel 5-1-3"])
    wb.create_sheet("test").append(["Start step ID", 1, "Voltage upper", 4.2])
    wb.create_sheet("cycle").append(["Cycle Index", "Chg. Cap.(Ah)"])
    wb.create_sheet("step").append(["Cycle Index", "Step Index", "Step Type"])
    recs = _record_rows(rows, cells)
    parts = [recs] if split is None else [recs[:split], recs[split:]]
    for k, part in enumerate(parts):
        ws = wb.create_sheet("record" if k == 0 else f"record{k}")
        ws.append(HEAD)
        for r in part:
            ws.append(r)
    wb.save(path)
    return path


def _csv_twin(path: Path, rows) -> Path:
    """The same records as a BTSDA CSV export without Cycle/Step Index, each number as
    the workbook stores it (read back by openpyxl: a writer may round the last digit)."""
    book = _workbook(path.with_suffix(".twin.xlsx"), rows, "text")
    ws = openpyxl.load_workbook(book, read_only=True)["record"]
    lines = [
        ",".join(repr(v) if isinstance(v, float) else str(v) for v in r)
        for r in ws.iter_rows(values_only=True)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")
    return path


@pytest.mark.parametrize("cells", ["text", "typed"])
@pytest.mark.parametrize("split", [None, 20])
def test_workbook_reads_as_its_csv_twin(tmp_path: Path, cells: str, split: int | None) -> None:
    rows = _truth(3)
    book = _workbook(tmp_path / "ch5.xlsx", rows, cells, split)
    assert detect(book) is neware_xlsx
    got = read_any(book)
    want = neware_csv.read(_csv_twin(tmp_path / "ch5.csv", rows))["cycling"]
    assert got["cycling"].keys() == want.keys()
    for name, v in want.items():
        np.testing.assert_array_equal(got["cycling"][name], v, err_msg=name)
    # and the known values: test time, our steps and cycles, the date
    c = got["cycling"]
    np.testing.assert_allclose(c["test_time_second"], [r["t"] for r in rows])
    np.testing.assert_array_equal(c["step_count"], [r["s"] for r in rows])
    assert c["unix_time_second"][0] == (T0 - dt.datetime(1970, 1, 1)).total_seconds()
    assert "[unit]" in got["header"] and "Channel 5-1-3" in got["header"]


def test_an_arbin_workbook_is_still_arbins(tmp_path: Path) -> None:
    arbin = Path(__file__).resolve().parents[2] / "fixtures/vendor/arbin"
    book = next(arbin.glob("*.xlsx"))
    assert detect(book).FORMAT == "arbin"


def test_errors_name_the_sheet_and_row(tmp_path: Path) -> None:
    rows = _truth(2)
    book = _workbook(tmp_path / "bad.xlsx", rows, split=10)
    wb = openpyxl.load_workbook(book)
    ws = wb["record1"]
    k = next(j for j in range(2, ws.max_row + 1) if ws.cell(j, 2).value == "CC Chg")
    ws.cell(k, 5).value = -0.5  # a charge step discharging
    wb.save(book)
    assert_refused(book, rf"sheet 'record1' row {k}\).*wrong sign", tmp_path)


def test_a_number_in_a_duration_column_is_refused(tmp_path: Path) -> None:
    book = _workbook(tmp_path / "num.xlsx", _truth(1))
    wb = openpyxl.load_workbook(book)
    wb["record"].cell(4, 4).value = 0.25  # days? seconds?
    wb.save(book)
    assert_refused(book, r"sheet 'record' row 4\).*'Total Time' holds the number 0.25", tmp_path)


def test_a_workbook_without_record_rows_is_refused(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active.title = "record"
    wb.active.append(HEAD)
    wb.save(tmp_path / "empty.xlsx")
    assert_refused(tmp_path / "empty.xlsx", "no record rows", tmp_path)


CELL_VALUES = st.one_of(
    st.none(),
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=8),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**12), 10**12),
    st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=400)),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(edits=st.lists(st.tuples(st.integers(1, 20), st.integers(1, 11), CELL_VALUES), max_size=4))
def test_fuzz_cells(tmp_path: Path, edits) -> None:
    # any cell replaced by any value: a correct import or exit 2 with no output, never a
    # traceback (the CLI turns anything else into one)
    book = tmp_path / "fz.xlsx"
    _workbook(book, _truth(1))
    wb = openpyxl.load_workbook(book)
    for row, col, value in edits:
        wb["record"].cell(row, col).value = value
    wb.save(book)
    out = tmp_path / "fz.h5"
    out.unlink(missing_ok=True)
    rc = main(["import", str(book), "-o", str(out), "-q"])
    assert rc in (0, 2)
    assert out.exists() == (rc == 0)
    if rc == 0:
        t = read_any(book)["cycling"]["test_time_second"]
        assert np.all(np.diff(t) >= 0)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=CUT, flips=FLIPS)
def test_fuzz_bytes(tmp_path: Path, cut: float, flips: list) -> None:
    book = tmp_path / "fb.xlsx"
    _workbook(book, _truth(1))
    book.write_bytes(damage(book.read_bytes(), cut, flips))
    out = tmp_path / "fb.h5"
    out.unlink(missing_ok=True)
    rc = main(["import", str(book), "-o", str(out), "-q"])
    assert rc in (0, 2) and out.exists() == (rc == 0)


def test_a_long_duration_under_a_time_of_day_format_is_refused(tmp_path: Path) -> None:
    # hh:mm:ss (not [h]:mm:ss) on 26 h: the reader gets 1900-01-01 02:00:02, a date
    book = _workbook(tmp_path / "tod.xlsx", _truth(1), "typed")
    wb = openpyxl.load_workbook(book)
    cell = wb["record"].cell(5, 4)
    cell.value = dt.timedelta(hours=26, seconds=2.5)
    cell.number_format = "hh:mm:ss"
    wb.save(book)
    assert_refused(book, r"sheet 'record' row 5\).*'Total Time' holds the date-time", tmp_path)
