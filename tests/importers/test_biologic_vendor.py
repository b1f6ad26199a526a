"""BioLogic readers on the MIT .mpr files kept in the repository and on files built byte
by byte (EC-Lab 11.50+ column ids, unknown ids, .mpt column-count guard). Nothing here
needs ../shared."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from biologic_mpr_writer import make_mpr, make_mpt
from fuzz_helpers import CUT, FLIPS, damage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cyclerflow.errors import InputError
from cyclerflow.importers import biologic_mpr, biologic_mpt, detect

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "fixtures" / "vendor" / "biologic"
SQUID = VENDOR / "jdb11-1_e1_s3_squidTest_data_C15.mpr"
NO_CURRENT = VENDOR / "yj277_NP52_LiFTSI_LiNO3_1st_C_100_2nd_C_10_C11.mpr"


def test_vendor_files_detected_and_read() -> None:
    for p in (SQUID, NO_CURRENT):
        assert detect(p) is biologic_mpr
    imp = biologic_mpr.read(SQUID)
    c = imp["cycling"]
    assert len(c["test_time_second"]) == 32917
    assert np.all(np.diff(c["test_time_second"]) >= 0)
    assert c["current_ampere"].dtype == np.float64


def test_capacity_equals_integrated_current_per_half_cycle() -> None:
    """EC-Lab's Q charge/discharge (id 467) against the integral of I (id 8 is absent:
    the file stores dq, id 7): both are the cycler's own numbers, one integrated by us."""
    c = biologic_mpr.read(SQUID)["cycling"]
    half = c["vendor_half_cycle_index"]
    q_file = c["charge_capacity_ampere_hour"] - c["discharge_capacity_ampere_hour"]
    raw = biologic_mpr.parse_mpr(SQUID).columns
    dq_ah = np.asarray(raw["dq/mA.h"], dtype="f8") * 1e-3
    ends = np.flatnonzero(np.r_[half[1:] != half[:-1], True])
    starts = np.r_[0, ends[:-1] + 1]
    for a, b in zip(starts, ends, strict=True):
        integral = dq_ah[a + 1 : b + 1].sum() if a else dq_ah[: b + 1].sum()
        assert integral == pytest.approx(q_file[b], abs=2e-9 + 1e-4 * abs(q_file[b]))


def test_current_derived_from_charge_counter() -> None:
    """yj277 stores no current: it is (Q-Qo)/dt, checked against the control current in
    the galvanostatic mode and against |P/Ewe| (both stored by the cycler)."""
    imp = biologic_mpr.read(NO_CURRENT)
    assert imp["column_attrs"]["current_ampere"]["derived_from"] == "(Q-Qo)/mA.h"
    raw = biologic_mpr.parse_mpr(NO_CURRENT).columns
    cur = imp["cycling"]["current_ampere"]
    cc = np.asarray(raw["mode"]) == 1
    cc[0] = False
    ctl = np.asarray(raw["control/V/mA"], dtype="f8") * 1e-3
    rel = np.abs(cur[cc] - ctl[cc]) / np.abs(ctl[cc])
    assert np.median(rel) < 2e-3
    p_over_e = np.abs(np.asarray(raw["P/W"], "f8") / np.asarray(raw["Ewe/V"], "f8"))
    big = np.abs(cur) > 1e-6
    assert np.median(np.abs(np.abs(cur[big]) - p_over_e[big]) / p_over_e[big]) < 2e-3


def test_time_going_back_refuses_derived_current(tmp_path: Path) -> None:
    rec = np.zeros(5, dtype=[("t", "<f8"), ("E", "<f4"), ("q", "<f8")])
    rec["t"] = [0, 1, 2, 1.5, 3]
    p = tmp_path / "back.mpr"
    p.write_bytes(make_mpr([4, 6, 13], rec, new=True))
    with pytest.raises(InputError, match=r"record 4.*time does not increase"):
        biologic_mpr.read(p)


def _eis_records(n: int) -> tuple[list[int], np.ndarray]:
    """A GEIS-like v11 table with 400s ids: freq, Re, -Im, time, <Ewe>, THD Ewe/I,
    |Ewe h2|, |I h2|, half cycle, Rac."""
    ids = [32, 37, 38, 4, 77, 473, 474, 486, 492, 468, 504]
    dt = np.dtype(
        [("f", "<f4"), ("re", "<f4"), ("im", "<f4"), ("t", "<f8"), ("E", "<f4")]
        + [(k, "<f4") for k in ("thd_e", "thd_i", "e2", "i2")]
        + [("half", "<u4"), ("rac", "<f4")]
    )
    rec = np.zeros(n, dtype=dt)
    rec["f"] = np.logspace(5, -1, n)
    rec["re"] = 0.1 + np.arange(n) * 1e-3
    rec["im"] = np.linspace(0.0, 0.05, n)
    rec["t"] = np.arange(n) * 2.0
    rec["E"] = 3.7
    rec["thd_e"] = 0.5
    rec["thd_i"] = 1.5
    rec["e2"] = 1e-4
    rec["i2"] = 2e-6
    rec["rac"] = 0.12
    return ids, rec


def test_eclab_1150_ids_in_the_400s(tmp_path: Path) -> None:
    ids, rec = _eis_records(12)
    p = tmp_path / "geis.mpr"
    p.write_bytes(make_mpr(ids, rec, new=True, technique=0x1D))
    cols = biologic_mpr.parse_mpr(p).columns
    assert list(cols) == [
        "freq/Hz",
        "Re(Z)/Ohm",
        "-Im(Z)/Ohm",
        "time/s",
        "<Ewe>/V",
        "THD Ewe/%",
        "THD I/%",
        "|Ewe h2|/V",
        "|I h2|/A",
        "half cycle",
        "Rac/Ohm",
    ]
    np.testing.assert_array_equal(cols["THD I/%"], rec["thd_i"])
    (sp,) = biologic_mpr.read(p)["spectra"]
    np.testing.assert_allclose(sp["imaginary_impedance_ohm"], -rec["im"].astype("f8"))


def test_one_unknown_id_width_from_module_size(tmp_path: Path) -> None:
    ids, rec = _eis_records(12)
    for width, code in [(1, "u1"), (2, "<u2"), (4, "<f4"), (8, "<f8")]:
        dt = np.dtype(rec.dtype.descr[:4] + [("x", code)] + rec.dtype.descr[4:])
        r2 = np.zeros(len(rec), dtype=dt)
        for name in rec.dtype.names:
            r2[name] = rec[name]
        r2["x"] = np.arange(len(rec))
        p = tmp_path / f"unk{width}.mpr"
        p.write_bytes(make_mpr(ids[:4] + [877] + ids[4:], r2, new=True))
        with pytest.warns(biologic_mpr.UnknownColumnWarning, match=rf"id 877.*{width} bytes"):
            mpr = biologic_mpr.parse_mpr(p)
        np.testing.assert_array_equal(mpr.columns["vendor_col_877"], np.arange(len(rec)))
        np.testing.assert_array_equal(mpr.columns["Rac/Ohm"], rec["rac"])  # after it: aligned
        assert "vendor_col_877" in biologic_mpr.header_text(mpr)


def test_two_unknown_ids_refused(tmp_path: Path) -> None:
    rec = np.zeros(4, dtype=[("t", "<f8"), ("a", "<f4"), ("b", "<f4")])
    p = tmp_path / "unk2.mpr"
    p.write_bytes(make_mpr([4, 861, 862], rec, new=True))
    with pytest.raises(InputError, match=r"unknown column ids \[861, 862\]") as e:
        biologic_mpr.read(p)
    assert str(p) in str(e.value)


def test_ambiguous_width_resolved_by_size(tmp_path: Path) -> None:
    # id 498: |Ece h2|/V (f4) in one description, Q charge/mA.h (f8) in another
    for code, name in [("<f4", "|Ece h2|/V"), ("<f8", "Q charge/mA.h")]:
        rec = np.zeros(3, dtype=[("t", "<f8"), ("E", "<f4"), ("x", code)])
        rec["x"] = [1.0, 2.0, 3.0]
        p = tmp_path / "amb.mpr"
        p.write_bytes(make_mpr([4, 6, 498], rec, new=True))
        cols = biologic_mpr.parse_mpr(p).columns
        np.testing.assert_array_equal(cols[name], [1.0, 2.0, 3.0])


def test_mpr_and_mpt_written_alike_import_the_same(tmp_path: Path) -> None:
    """The byte-built stand-in for the vendor .mpr/.mpt pairs (GPL, not in the repo)."""
    n = 30
    rec = np.zeros(n, dtype=[("Ns", "<u2"), ("t", "<f8"), ("E", "<f4"), ("I", "<f4"), ("c", "<f8")])
    rec["Ns"] = np.repeat([0, 1, 2], 10)
    rec["t"] = np.arange(n) * 1.5
    rec["E"] = np.linspace(3.0, 4.2, n)
    rec["I"] = np.where(rec["Ns"] == 1, 0.5, -0.25)
    rec["c"] = np.repeat([0.0, 0.0, 1.0], 10)
    (tmp_path / "x.mpr").write_bytes(make_mpr([131, 4, 6, 8, 24], rec, new=False))
    cols = {
        "Ns": rec["Ns"],
        "time/s": rec["t"],
        "Ewe/V": rec["E"],
        "I/mA": rec["I"],
        "cycle number": rec["c"],
    }
    (tmp_path / "x.mpt").write_bytes(make_mpt(cols))
    a = biologic_mpr.read(tmp_path / "x.mpr")["cycling"]
    b = biologic_mpt.read(tmp_path / "x.mpt")["cycling"]
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _mpt_lines(tmp_path: Path) -> list[bytes]:
    cols = {
        "time/s": np.arange(5.0),
        "Ewe/V": np.full(5, 3.5),
        "I/mA": np.full(5, 0.1),
        "cycle number": np.zeros(5),
    }
    return make_mpt(cols).split(b"\r\n")


def test_mpt_header_with_a_name_missing_is_refused(tmp_path: Path) -> None:
    lines = _mpt_lines(tmp_path)
    lines[5] = lines[5].replace(b"Ewe/V\t", b"")
    p = tmp_path / "missing.mpt"
    p.write_bytes(b"\r\n".join(lines))
    with pytest.raises(
        InputError, match=r"line 6\).*names 3 columns.*line 7\) has 4 values.*missing"
    ):
        biologic_mpt.read(p)


def test_mpt_row_with_an_extra_value_is_refused(tmp_path: Path) -> None:
    lines = _mpt_lines(tmp_path)
    lines[8] = lines[8] + b"9.9\t"
    p = tmp_path / "extra.mpt"
    p.write_bytes(b"\r\n".join(lines))
    with pytest.raises(InputError, match=r"line 9\).*expected 4 .*found 5"):
        biologic_mpt.read(p)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cut=CUT,
    flips=FLIPS,
    new=st.booleans(),
)
def test_byte_built_mpr_fuzz(tmp_path: Path, cut: float, flips: list, new: bool) -> None:
    ids, rec = _eis_records(20)
    p = tmp_path / "fuzz.mpr"
    p.write_bytes(damage(make_mpr(ids, rec, new=new), cut, flips))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", biologic_mpr.UnknownColumnWarning)
        try:
            biologic_mpr.read(p)
        except InputError as e:
            assert str(p) in str(e)


def test_unknown_technique_refused(tmp_path: Path) -> None:
    rec = np.zeros(3, dtype=[("t", "<f8"), ("E", "<f4"), ("I", "<f4")])
    p = tmp_path / "tech.mpr"
    p.write_bytes(make_mpr([4, 6, 8], rec, new=True, technique=0x55))
    with pytest.raises(InputError, match=r"byte \d+\).*unknown technique byte 0x55"):
        biologic_mpr.read(p)
    cols = {"time/s": np.arange(3.0), "Ewe/V": np.full(3, 3.5), "I/mA": np.full(3, 0.1)}
    q = tmp_path / "tech.mpt"
    q.write_bytes(make_mpt(cols, title="Some Future Technique"))
    with pytest.raises(InputError, match=r"line 4\).*unknown technique 'Some Future Technique'"):
        biologic_mpt.read(q)
    q.write_bytes(make_mpt(cols, title="Chronopotentiometry"))
    assert len(biologic_mpt.read(q)["cycling"]["test_time_second"]) == 3


def test_btlab_export_with_ecell(tmp_path: Path) -> None:
    """BT-Lab writes a 3-line header (no title) and names the cell voltage ``Ecell/V``
    (as in beep's biologic_test_file_short.mpt, Apache-2.0)."""
    names = ["mode", "Ns", "time/s", "Ecell/V", "I/mA", "dq/mA.h", "half cycle", "cycle number"]
    rows = [
        [3, 0, 0.0, 3.1999524, 0.0, 0.0, 0, 0],
        [1, 1, 10.000000474974513, 3.25, 1.5, 1.5 * 10 / 3600, 0, 0],
        [1, 1, 20.000000949949026, 3.3, 1.5, 1.5 * 10 / 3600, 0, 0],
        [1, 2, 30.00000142492354, 3.2, -1.5, -1.5 * 10 / 3600, 1, 0],
    ]
    text = "BT-Lab ASCII FILE\r\nNb header lines : 3                           \r\n"
    text += "\t".join(names) + "\t\r\n"
    for r in rows:
        text += "\t".join(str(v) if isinstance(v, int) else f"{v:.15E}" for v in r) + "\t\r\n"
    p = tmp_path / "btlab.mpt"
    p.write_bytes(text.encode("latin-1"))
    assert detect(p) is biologic_mpt
    c = biologic_mpt.read(p)["cycling"]
    np.testing.assert_allclose(c["voltage_volt"], [r[3] for r in rows])
    np.testing.assert_allclose(c["current_ampere"], [r[4] * 1e-3 for r in rows])
    np.testing.assert_array_equal(c["step_count"], [1, 2, 2, 3])
