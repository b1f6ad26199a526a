"""Maccor exports of the newer layout: ``Nd hh:mm:ss`` durations, the header on separate
lines, ``Aux #n`` + ``Units`` pairs, continuation files ``<name>con.<ext>``, stop state.

The public examples of this layout (cellpy's ``testdata/data/maccor_001.txt``, MIT,
3.5 MB; TRI beep's ``PreDiag_000229_000229_truncated.034``, Apache-2.0, 1 MB) could not
be copied byte for byte from this environment, so the files here are built by the test
in the same layout (column names, spacing, shortened durations, trailing tab), with
known values to compare against.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cyclerflow.cli import main
from cyclerflow.errors import InputError
from cyclerflow.importers import detect, import_files, maccor, read_any

HEADER = (
    "Today's Date:\t14 December 2020\tDate of Test:\t11 December 2020, 12:22:12 PM\n"
    "Filename:\tM50_Validation_0deg_01\tTester Channel:\t1\n"
    "Procedure:\tM50_Validation.000\tDescription:\t\n"
)
COLS = (
    ["Rec#", "Cyc#", "Step", "TestTime", "StepTime", "Amp-hr", "Watt-hr", "Amps", "Volts"]
    + ["State", "ES", "DPt Time", "ACImp/Ohms", "DCIR/Ohms"]
    + [x for n in range(1, 4) for x in (f"Aux #{n}", " Units")]
    + [f"VAR{n}" for n in range(1, 4)]
)


def _duration(t: float, short: bool) -> str:
    d, rem = divmod(t, 86400.0)
    h, rem = divmod(rem, 3600.0)
    m, s = divmod(rem, 60.0)
    sec = f"{s:g}" if short else f"{s:07.4f}"
    return f"  {int(d)}d {int(h):02d}:{int(m):02d}:{sec}"


def _rows(n: int, t0: float = 0.0, rec0: int = 1, stop_at: int | None = None):
    """Rows of a rest, a 0.5 A discharge and a 0.5 A charge (times in s, known)."""
    rows, truth = [], []
    for k in range(n):
        t = t0 + 5.0 * k + (0.05 if k % 3 == 1 else 0.0)
        step = 1 if k < n // 3 else (2 if k < 2 * n // 3 else 3)
        state = {1: "R", 2: "D", 3: "C"}[step]
        if stop_at is not None and k >= stop_at:
            state = "S"
        amps = 0.0 if state in "RS" else 0.5
        v = float(f"{3.4 + 0.001 * k:.5f}")
        cap = amps * 5.0 * k / 3600.0
        clock = f"12/11/2020 12:{22 + int(t // 60) % 38:02d}:{int(t) % 60:02d}"
        aux = "\t".join(f"{-2501.7 + n:.5f}\t C  " for n in range(3))
        rows.append(
            f"{rec0 + k}\t0\t{step}\t{_duration(t, k % 2 == 0)}\t{_duration(t, True)}\t"
            f"{cap:.5f}\t{cap * v:.5f}\t{amps:.5f}\t{v:.5f}\t{state}\t{1 if k else 0}\t{clock}\t"
            f"0.00000\t0.00000\t{aux}\t0.00000\t0.00000\t0.00000\t"
        )
        sign = {"D": -1.0, "C": 1.0}.get(state, 0.0)
        truth.append((t, v, sign * amps, step))
    return rows, np.array(truth)


def _write(path: Path, rows: list[str], cols: list[str] = COLS) -> Path:
    path.write_bytes((HEADER + "\t".join(cols) + "\t\n" + "\n".join(rows) + "\n").encode("latin-1"))
    return path


def test_duration_times_aux_pairs_and_header_lines(tmp_path):
    rows, truth = _rows(30)
    fields = rows[-1].split("\t")
    fields[3] = "  1d 02:03:04.5"  # a day rolls over
    rows[-1] = "\t".join(fields)
    truth[-1, 0] = 86400 + 2 * 3600 + 3 * 60 + 4.5
    p = _write(tmp_path / "m50.txt", rows)
    assert detect(p) is maccor
    imp = maccor.read(p)
    c = imp["cycling"]
    np.testing.assert_array_equal(c["test_time_second"], truth[:, 0])
    np.testing.assert_array_equal(c["voltage_volt"], truth[:, 1])
    np.testing.assert_array_equal(c["current_ampere"], truth[:, 2])
    np.testing.assert_array_equal(c["step_index"], truth[:, 3].astype(int))
    np.testing.assert_allclose(c["vendor_aux_2"], -2500.7)
    assert imp["units"]["vendor_aux_1"] == "degC"
    assert "Procedure:\tM50_Validation.000" in imp["header"]
    assert imp["events"] == []


def test_a_bad_duration_names_its_line(tmp_path):
    rows, _ = _rows(12)
    fields = rows[7].split("\t")
    fields[3] = "  0d 00:xx:35"
    rows[7] = "\t".join(fields)
    p = _write(tmp_path / "bad.txt", rows)
    with pytest.raises(InputError, match=r"line 12\).*not a duration"):
        maccor.read(p)


def test_header_with_a_name_missing_is_refused(tmp_path):
    rows, _ = _rows(12)
    cols = [c for c in COLS if c != "DCIR/Ohms"]
    p = _write(tmp_path / "short_header.txt", rows, cols)
    with pytest.raises(
        InputError, match=r"line 5\).*row has 23 fields but the column line names 22"
    ):
        maccor.read(p)
    assert main(["import", str(p), "-o", str(tmp_path / "x.h5"), "-q"]) == 2
    assert not (tmp_path / "x.h5").exists()


def test_continuation_file_joins_after_its_first_part(tmp_path):
    rows_a, truth_a = _rows(30)
    rows_b, truth_b = _rows(12, t0=200.0, rec0=31)
    a = _write(tmp_path / "a.078", rows_a)
    b = _write(tmp_path / "acon.078", rows_b)
    out = import_files([a, b], tmp_path / "a.h5")
    assert out.exists()
    joined = maccor.read_many([a, b])["cycling"]
    np.testing.assert_array_equal(
        joined["test_time_second"], np.concatenate([truth_a[:, 0], truth_b[:, 0]])
    )
    with pytest.raises(InputError, match="acon.078.*out of order|a.078.*out of order"):
        maccor.read_many([b, a])
    with pytest.raises(InputError, match="without its first part"):
        maccor.read_many([b])
    assert main(["import", str(b), str(a), "-o", str(tmp_path / "r.h5"), "-q"]) == 2
    assert not (tmp_path / "r.h5").exists()


def test_stop_state_becomes_a_stop_event(tmp_path):
    rows, truth = _rows(30, stop_at=25)
    p = _write(tmp_path / "stopped.txt", rows)
    imp = read_any(p)
    (ev,) = imp["events"]
    assert ev["kind"] == "stop"
    assert ev["test_time_second"] == truth[25, 0]
    assert ev["step"] == imp["cycling"]["step_count"][25]


def _milli_export(volts: list[float]) -> bytes:
    """cellpy's Maccor model THREE layout: ``Today''s Date`` / blank / ``Date of Test:`` /
    blank, ``mAmp-hr mWatt-hr mAmps Volts``, 2-decimal durations, a trailing tab."""
    head = (
        "Today''s Date\t03/28/2022 12:50:27 PM\n\nDate of Test:\t08/23/2021 6:04:18 PM\n\n"
        "Rec#\tCyc#\tStep\tTestTime\tStepTime\tmAmp-hr\tmWatt-hr\tmAmps\tVolts\tState\tES\t"
        "DPt Time\t\n"
    )
    rows = [
        f"{k + 1}\t0\t{1 + (k >= 2)}\t  0d 00:0{k}:00.00\t  0d 00:00:00.00\t{0.5 * (k >= 2)}\t"
        f"{1.25 * (k >= 2)}\t{1.5 * (k >= 2)}\t{v}\t{'C' if k >= 2 else 'R'}\t{int(k > 0)}\t"
        f"08/23/2021 6:0{4 + k}:18 PM\t"
        for k, v in enumerate(volts)
    ]
    return (head + "\n".join(rows) + "\n").encode("latin-1")


def test_milli_unit_export(tmp_path):
    """mAmps/mAmp-hr/mWatt-hr are mA/mAh/mWh; 'Volts' above 100 in such an export is mV
    (warned), and a plausible 'Volts' stays V."""
    p = tmp_path / "maccor_three.txt"
    p.write_bytes(_milli_export([1853.8186, 1853.0556, 1853.2082, 1900.5]))
    assert detect(p) is maccor
    data = read_any(p)
    c = data["cycling"]
    np.testing.assert_array_equal(
        c["voltage_volt"], np.array([1853.8186, 1853.0556, 1853.2082, 1900.5]) * 1e-3
    )
    np.testing.assert_array_equal(c["current_ampere"], [0.0, 0.0, 1.5e-3, 1.5e-3])
    np.testing.assert_array_equal(c["charge_capacity_ampere_hour"], [0.0, 0.0, 0.5e-3, 0.5e-3])
    np.testing.assert_array_equal(c["charge_energy_watt_hour"], [0.0, 0.0, 1.25e-3, 1.25e-3])
    np.testing.assert_array_equal(c["test_time_second"], [0.0, 60.0, 120.0, 180.0])
    assert any("read as mV" in w for w in data["warnings"])
    p.write_bytes(_milli_export([3.7, 3.71, 3.8, 3.9]))
    data = read_any(p)
    np.testing.assert_array_equal(data["cycling"]["voltage_volt"], [3.7, 3.71, 3.8, 3.9])
    assert not data["warnings"]


def _commas(raw: bytes, skip_lines: int) -> bytes:
    """The same export as written on a decimal-comma locale: points between digits in the
    rows (not the header) become commas."""
    import re

    lines = raw.split(b"\n")
    body = [re.sub(rb"(\d)\.(\d)", rb"\1,\2", ln) for ln in lines[skip_lines:]]
    return b"\n".join(lines[:skip_lines] + body)


@pytest.mark.parametrize("which", ["durations", "cellpy key/value"])
def test_decimal_comma_rows_read_as_the_point_export(vendor_data, tmp_path, which):
    """cellpy's Maccor loader declares decimal ',' for such exports: the rows give the same
    bits as the point-locale file."""
    if which == "durations":
        point = _write(tmp_path / "p.txt", _rows(30)[0])
        skip = 4
    else:
        point = vendor_data / "cellpy/maccor_002.txt"
        skip = 15
    comma = tmp_path / "c.txt"
    comma.write_bytes(_commas(point.read_bytes(), skip))
    assert comma.read_bytes() != point.read_bytes()
    a, b = read_any(point)["cycling"], read_any(comma)["cycling"]
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
