"""Quoted fields in comma-separated exports (importers/quoted.py): thousands separators
are dropped only on clear evidence, other commas inside quotes never split a row, and
line numbers stay right. Then a Maccor CSV in the layout of a spreadsheet-saved export
(maccorcyclingdata's testdata18.csv: quoted ``"5,577,644.47"`` test times, durations
with leading spaces, DPt Time printed as ``1``), built row by row with known values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cyclerflow.importers import detect, read_any
from cyclerflow.importers.common import InputError
from cyclerflow.importers.quoted import thousands_style, unquote


@pytest.mark.parametrize(
    ("raw", "style"),
    [
        (b'1,"1,499.8856",3\n', True),  # grouped with a point: certain
        (b'1,"2,082","1,499.5"\n', True),  # the ambiguous one follows the certain one
        (b'1,"2,082",3\n', False),  # 2082 or 2.082: no evidence
        (b'1,"1,499.5","3,5345"\n', False),  # a decimal comma beside it: refuse the style
        (b'1,"CC, charge",3\n', False),  # text
        (b"1,2,3\n", False),
    ],
)
def test_thousands_style_needs_clear_evidence(raw: bytes, style: bool) -> None:
    assert thousands_style(raw) is style


def test_unquote_drops_grouping_and_blanks_other_commas() -> None:
    raw = b'1,"5,577,644.47","CC, charge","\t09/20/2024 08:32:34.558"\n2,"2,082","x",y\n'
    out = unquote(raw)
    assert out.count(b"\n") == raw.count(b"\n")
    rows = [r.split(b",") for r in out.splitlines()]
    assert [float(rows[0][1]), float(rows[1][1])] == [5577644.47, 2082.0]
    assert rows[0][2].strip() == b"CC  charge" and rows[0][3].strip() == b"09/20/2024 08:32:34.558"
    assert unquote(b"1,2,3\n") == b"1,2,3\n"


HEADER = "Cyc#,Step,TestTime(s),StepTime(s),Capacity(Ah),Watt-hr,Current(A),Voltage(V),DPt Time,Temp 1,EV Temp"


def _grouped(x: float, digits: int) -> str:
    return f'"{x:,.{digits}f}"' if abs(x) >= 1000 else f"{x:.{digits}f}"


def _maccor_rows(n: int = 40) -> tuple[list[str], dict[str, np.ndarray]]:
    """Rows of a 1.5 kA charge step of a large pack, test time from 5,577,644.47 s."""
    t = 5_577_644.47 + 5.0 * np.arange(n)
    step_t = 1325.05 + 5.0 * np.arange(n)
    i = 1499.8856 + 0.0763 * (np.arange(n) % 3)
    q = 552.0699 + 2.0832 * np.arange(n)
    e = 2082.06 + 8.17 * np.arange(n)
    v = 3.92 + 0.0009 * np.arange(n)
    rows = []
    for k in range(n):
        mm, ss = divmod(step_t[k], 60)
        dur = f"  0d 00:{int(mm):02d}:{ss:05.2f}"
        rows.append(
            f"869,11,{_grouped(t[k], 2)},{dur},{q[k]:.4f},{_grouped(e[k], 2)},"
            f"{_grouped(i[k], 4)},{v[k]:.4f},1,30.08,0.0"
        )
    return rows, {"t": t, "i": i, "q": q, "e": e, "v": v}


def test_spreadsheet_saved_maccor_csv(tmp_path: Path) -> None:
    rows, truth = _maccor_rows()
    path = tmp_path / "testdata.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    assert detect(path).FORMAT == "maccor"
    data = read_any(path)
    c = data["cycling"]
    np.testing.assert_allclose(c["test_time_second"], np.round(truth["t"], 2), rtol=0, atol=1e-6)
    np.testing.assert_allclose(c["current_ampere"], np.round(truth["i"], 4), rtol=0, atol=1e-9)
    np.testing.assert_allclose(c["voltage_volt"], np.round(truth["v"], 4), rtol=0, atol=1e-9)
    np.testing.assert_allclose(c["charge_energy_watt_hour"], np.round(truth["e"], 2), atol=1e-9)
    assert set(c["vendor_cycle_index"]) == {869} and set(c["vendor_step_index"]) == {11}
    assert "unix_time_second" not in c
    assert any("DPt Time holds plain numbers" in w for w in data["warnings"])


def test_grouped_number_without_evidence_is_refused_naming_its_line(tmp_path: Path) -> None:
    rows, _ = _maccor_rows()
    # Watt-hr and Current without decimals: "2,082" alone could be 2082 or 2.082
    rows = [r.replace('.06"', '"').replace(".8856", "") for r in rows[:1]]
    rows = [rows[0].replace('"5,577,644.47"', "5577644.47")]
    path = tmp_path / "ambiguous.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    with pytest.raises(InputError, match="line 2"):
        read_any(path)
