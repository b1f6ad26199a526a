"""BTSDA's three-level ("regular") export: cycle, step and record rows interleaved.

Layout facts from cellpy's (MIT) testdata/data/nw_regular_export_ife_example.csv (1.48 MB,
too large for fixtures/vendor): three header lines; a cycle row before its steps, a step
row before its records; as stored there, the first step row of each cycle follows the
cycle's fields on the cycle's own line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_neware_csv import _hms, _truth, write_A

from cyclerflow.errors import InputError
from cyclerflow.importers import detect, neware_csv

CYCLE_HEAD = "Cycle Index,Chg. Cap.(Ah),DChg. Cap.(Ah),Chg.-DChg. Eff(%)"
STEP_HEAD = ",Step Index,Step Number,Step Type,Step Time,Capacity(Ah),Energy(Wh)"
RECORD_HEAD = (
    ",,DataPoint,Time,Cumulative Time,Current(A),Voltage(V),Capacity(Ah),Chg. Cap.(Ah),"
    "DChg. Cap.(Ah),Energy(Wh),Date,Power(W),dQ/dV(mAh/V)"
)


def _record(n: int, r: dict) -> str:
    chg = r["q"] if r["i"] > 0 else 0.0
    dchg = r["q"] if r["i"] < 0 else 0.0
    return (
        f",,{n},{_hms(r['ts'], False)},{_hms(r['t'], False)},{r['i']:.8f},{r['v']:.4f},"
        f"{r['q']:.9f},{chg:.9f},{dchg:.9f},{r['q'] * 3.5:.8f},2022-05-18 16:27:52,"
        f"{r['i'] * r['v']:.8f},0.0000"
    )


def write_levels(path: Path, rows: list[dict], same_line: bool = True, end: str = "\n") -> None:
    """The three-level export of ``rows`` (the step rows carry each step's end capacity)."""
    lines = [CYCLE_HEAD, STEP_HEAD, RECORD_HEAD]
    cycle = step = None
    for n, r in enumerate(rows, 1):
        if r["s"] != step:
            last = max(x["q"] for x in rows if x["s"] == r["s"])
            step_row = f",{r['s']},{r['s']},{r['name']},00:01:00,{last:.5f},{last * 3.5:.5f}"
            if r["c"] != cycle:
                cycle_row = f"{r['c']},0.1,0.1,100.0"
                lines += [cycle_row + step_row] if same_line else [cycle_row, step_row]
            else:
                lines.append(step_row)
            cycle, step = r["c"], r["s"]
        lines.append(_record(n, r))
    path.write_bytes((end.join(lines) + end).encode("latin-1"))


@pytest.mark.parametrize(
    ("same_line", "end"),
    [(True, "\n"), (False, "\n"), (False, "\r\n"), (True, "\r\n"), (True, "\r")],
)
def test_reads_as_the_flat_export_of_the_same_records(
    tmp_path: Path, same_line: bool, end: str
) -> None:
    rows = _truth(3)
    flat, levels = tmp_path / "flat.csv", tmp_path / "levels.csv"
    write_A(flat, rows)
    write_levels(levels, rows, same_line, end)
    assert detect(levels) is neware_csv
    want = neware_csv.read(flat)["cycling"]
    got = neware_csv.read(levels)["cycling"]
    assert list(got) == list(want)
    for name, v in want.items():
        np.testing.assert_array_equal(got[name], v, err_msg=name)
    # the known values (the flat reader's own tests check these too)
    np.testing.assert_allclose(got["current_ampere"], [r["i"] for r in rows], atol=1e-8)
    np.testing.assert_array_equal(got["vendor_step_index"], [r["s"] for r in rows])


def test_each_step_ends_at_the_capacity_its_step_row_gives(tmp_path: Path) -> None:
    rows = _truth(2)
    p = tmp_path / "levels.csv"
    write_levels(p, rows)
    c = neware_csv.read(p)["cycling"]
    q = c["charge_capacity_ampere_hour"] + c["discharge_capacity_ampere_hour"]
    steps = c["vendor_step_index"]
    for s in np.unique(steps):
        summary = max(r["q"] for r in rows if r["s"] == s)  # what the step row says
        assert q[steps == s][-1] == pytest.approx(round(summary, 5), abs=1e-5)


#: the first lines of cellpy's nw_regular_export_ife_example.csv as stored (some columns
#: and records left out: a layout check, not a fixture)
REAL_HEAD = (
    "Cycle Index,Chg. Cap.(Ah),DChg. Cap.(Ah),Chg.-DChg. Eff(%),Chg. Energy(Wh),"
    "DChg. Energy(Wh),Chg. Time,DChg. Time\n"
    ",Step Index,Step Number,Step Type,Step Time,Capacity(Ah),Energy(Wh),Oneset Volt.(V),"
    "End Voltage(V)\n"
    ",,DataPoint,Time,Total Time,Current(A),Voltage(V),Capacity(Ah),Energy(Wh),Date,Power(W)\n"
    "1,0.02256,0.33067,1465.46,0.10243,1.34319,00:02:51,00:41:50,1,1,Rest,00:00:20,0.00000,"
    "0.00000,4.3185,4.3186\n"
    ",,1,00:00:00,00:00:00,0.00000,4.3185,0.000000000,0.00000,2026-03-06 12:37:25,0.00000\n"
    ",,11,00:00:20,00:00:20,0.00000,4.3186,0.000000000,0.00000,2026-03-06 12:37:45,0.00000\n"
    ",2,2,CC Chg,00:02:51,0.02256,0.10243,4.3734,4.7000\n"
    ",,12,00:00:00,00:00:20,0.50000,4.3734,0.000000000,0.00000,2026-03-06 12:37:45,2.18670\n"
    ",,21,00:02:51,00:03:11,0.47417,4.7000,0.022564143,0.10243,2026-03-06 12:40:36,2.22859\n"
    ",3,3,Rest,00:05:00,0.00000,0.00000,4.6375,4.3907\n"
    ",,22,00:00:00,00:03:11,0.00000,4.6375,0.000000000,0.00000,2026-03-06 12:40:36,0.00000\n"
)


def test_real_layout_values_as_the_file_states_them(tmp_path: Path) -> None:
    p = tmp_path / "regular.csv"
    p.write_text(REAL_HEAD)
    c = neware_csv.read(p)["cycling"]
    np.testing.assert_array_equal(c["vendor_record_index"], [1, 11, 12, 21, 22])
    np.testing.assert_array_equal(c["vendor_step_index"], [1, 1, 2, 2, 3])
    np.testing.assert_array_equal(c["test_time_second"], [0, 20, 20, 191, 191])
    np.testing.assert_array_equal(c["current_ampere"], [0, 0, 0.5, 0.47417, 0])
    # the step row's capacity and energy (0.02256 Ah, 0.10243 Wh) at the end of step 2
    assert c["charge_capacity_ampere_hour"][3] == pytest.approx(0.02256, abs=5e-6)
    assert c["charge_energy_watt_hour"][3] == pytest.approx(0.10243, abs=5e-6)
    # 2026-03-06 12:37:25 as if UTC
    assert c["unix_time_second"][0] == (20518 * 86400 + 12 * 3600 + 37 * 60 + 25)


@pytest.mark.parametrize(
    ("edit", "line", "what"),
    [
        (lambda x: x.replace(",,12,00:00:00", ",,12,00;00:00"), 8, "'Time'"),
        (lambda x: x.replace(",2,2,CC Chg", ",x,2,CC Chg"), 7, "step number 'x'"),
        (lambda x: x.replace(",00:00:00,0.00000,4.3185", ",00:00:00,x,4.3185"), 5, "'Current'"),
        (lambda x: x.replace(",,22,00:00:00,00:03:11", ",,22,00:00:00,00:02:11"), 11, "backwards"),
        (lambda x: x.replace(",1,1,Rest,00:00:20,0.00000,", ",,,,,,"), 5, "before the step row"),
        (lambda x: x.replace("00:41:50,1,1,Rest", "00:41:50"), 4, "step number '00:00:20'"),
    ],
)
def test_errors_name_the_line_of_the_file(tmp_path: Path, edit, line: int, what: str) -> None:
    p = tmp_path / "regular.csv"
    p.write_text(edit(REAL_HEAD))
    with pytest.raises(InputError, match=rf"\(line {line}\).*{what}"):
        neware_csv.read(p)


@pytest.mark.parametrize(("same_line", "end"), [(True, "\n"), (False, "\r\n"), (True, "\r")])
def test_pyarrow_path_and_careful_path_agree(tmp_path: Path, same_line: bool, end: str) -> None:
    from cyclerflow.importers import neware_fast, neware_levels

    p = tmp_path / "levels.csv"
    write_levels(p, _truth(3), same_line, end)
    with neware_csv._opened(p) as raw:
        text = bytes(raw).decode("latin-1")
        flat, _ = neware_levels.flatten(p, text, neware_csv._err)
        slow = neware_csv._assemble(p, neware_csv._PandasSource(p, memoryview(flat)))
        if end == "\r":  # a lone CR: only the careful path reads it
            with pytest.raises(neware_fast.Doubt):
                neware_csv._level_source(p, raw)
            return
        fast = neware_csv._assemble(p, neware_csv._level_source(p, raw))
    assert list(fast["cycling"]) == list(slow["cycling"])
    for name, v in slow["cycling"].items():
        assert fast["cycling"][name].dtype == v.dtype, name
        np.testing.assert_array_equal(fast["cycling"][name], v, err_msg=name)
