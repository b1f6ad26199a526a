"""Neware .ndax importer. No vendor export exists for the shared file, so the checks are
physical: capacity and energy from integrating the current (and power) over each step
against the file's own capacity/energy columns, monotonic time, step/cycle numbering."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cyclerflow.errors import InputError
from cyclerflow.importers import detect, neware_ndax

ROOT = Path(__file__).resolve().parents[2]
#: MIT (cellpy), kept in the repository: fixtures/vendor/manifest.csv
NDAX_PATH = ROOT / "fixtures" / "vendor" / "neware" / "20260302_IFE_BTS85_2_9_8_1.ndax"


@pytest.fixture(scope="module")
def ndax() -> dict:
    return neware_ndax.read(NDAX_PATH)


def test_rows_time_and_numbering(ndax: dict) -> None:
    c = ndax["cycling"]
    n = len(c["test_time_second"])
    assert n == 252951
    assert all(len(v) == n for v in c.values())
    np.testing.assert_array_equal(c["vendor_record_index"], np.arange(1, n + 1))
    # time never goes back; it repeats only where one step ends and the next begins
    dt = np.diff(c["test_time_second"])
    assert np.all(dt >= 0)
    assert np.all(np.diff(c["step_count"])[dt == 0] == 1)
    # steps: rest(control) -> CC charge -> CV -> CC charge -> CC charge (a formation start)
    starts = np.flatnonzero(np.r_[True, np.diff(c["step_count"]) != 0])
    assert list(c["step_count"][starts]) == [1, 2, 3, 4, 5]
    assert list(c["vendor_step_type"][starts]) == [21, 1, 3, 1, 1]
    # no discharge yet: one cycle, ours and Neware's agree
    assert set(c["cycle_count"]) == {1} and set(c["vendor_cycle_index"]) == {1}
    # unix time spans the test time (the file has a few clock jumps back, reported in the header)
    span = c["unix_time_second"][-1] - c["unix_time_second"][0]
    assert span == pytest.approx(c["test_time_second"][-1], rel=1e-3)
    assert "negative jumps" in ndax["header"]


def test_current_sign_and_units(ndax: dict) -> None:
    c = ndax["cycling"]
    i, st_ = c["current_ampere"], c["vendor_step_type"]
    assert np.all(i[st_ == 1] > 0)  # CC_Chg: charging is positive
    assert np.all(i[st_ == 21] == 0)
    sc, v = c["step_count"], c["voltage_volt"]

    def first(step: int, col: np.ndarray) -> float:
        return float(col[sc == step][0])

    # protocol (Step.xml): CC steps at "63", "63", "126" -> the third twice the first two;
    # a "1Ah" cell charged at tens of mA (not A, not µA)
    assert first(4, i) == pytest.approx(first(2, i), rel=1e-3)
    assert first(5, i) == pytest.approx(2 * first(2, i), rel=1e-3)
    assert 0.01 < first(2, i) < 0.2
    # stop voltages 1.5 V (step 2) and 3.0 V (step 4); step 1 lasts 3600 s
    assert v[sc == 2][-1] == pytest.approx(1.5, abs=0.01)
    assert v[sc == 4][-1] == pytest.approx(3.0, abs=0.01)
    assert c["step_time_second"][sc == 1][-1] == 3600


def test_capacity_and_energy_from_integration(ndax: dict) -> None:
    c = ndax["cycling"]
    t, i, v, sc = c["test_time_second"], c["current_ampere"], c["voltage_volt"], c["step_count"]
    q = c["charge_capacity_ampere_hour"] - c["discharge_capacity_ampere_hour"]
    e = c["charge_energy_watt_hour"] - c["discharge_energy_watt_hour"]
    checked = 0
    for s in np.unique(sc):
        m = sc == s
        if m.sum() < 10 or np.all(i[m] == 0):
            continue
        dq = np.trapezoid(i[m], t[m]) / 3600.0
        de = np.trapezoid(i[m] * v[m], t[m]) / 3600.0
        assert q[m][-1] - q[m][0] == pytest.approx(dq, rel=1e-4)
        # the cycler integrates V*I faster than it records (1 s): short steps with a
        # steep voltage rise (step 2: 0.4 -> 1.5 V in 20 s) only agree to a few %
        assert e[m][-1] - e[m][0] == pytest.approx(de, rel=1e-3 if m.sum() > 1000 else 0.05)
        checked += 1
    assert checked == 3


def test_detect() -> None:
    assert detect(NDAX_PATH) is neware_ndax


def test_bad_inputs(tmp_path: Path) -> None:
    good = (NDAX_PATH).read_bytes()
    p = tmp_path / "x.ndax"
    for data, words in [
        (b"", "empty"),
        (good[: len(good) // 2], "not a valid zip"),
        (b"BIO-LOGIC MODULAR FILE\x1a" + bytes(100), "not a valid zip"),
    ]:
        p.write_bytes(data)
        with pytest.raises(InputError) as e:
            neware_ndax.read(p)
        assert str(p) in str(e.value) and words in str(e.value) and "Neware" in str(e.value)
    # a zip without data.ndc
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("TestInfo.xml", "<a/>")
    with pytest.raises(InputError, match="no 'data.ndc'"):
        neware_ndax.read(p)
    # a damaged member (CRC) is named with its offset
    with zipfile.ZipFile(NDAX_PATH) as z:
        info = z.getinfo("data.ndc")
    bad = bytearray(good)
    bad[info.header_offset + 30 + len(info.filename) + 1000] ^= 0xFF
    p.write_bytes(bytes(bad))
    with pytest.raises(InputError, match=r"damaged zip member 'data.ndc'") as e:
        neware_ndax.read(p)
    assert "byte" in str(e.value)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=3)
)
def test_ndax_fuzz(tmp_path: Path, cut: float, flips: list) -> None:
    data = bytearray((NDAX_PATH).read_bytes())
    for pos, x in flips:
        data[int(pos * (len(data) - 1))] ^= x
    if cut < 0.5:
        data = data[: int(cut * 2 * len(data))]
    p = tmp_path / "fuzz.ndax"
    p.write_bytes(bytes(data))
    try:
        neware_ndax.read(p)
    except InputError as e:
        assert str(p) in str(e)


def test_cli_import_corrupt_leaves_no_file(tmp_path: Path) -> None:
    from cyclerflow.cli import main

    good = (NDAX_PATH).read_bytes()
    src = tmp_path / "cut.ndax"
    src.write_bytes(good[:-100])
    out = tmp_path / "out.h5"
    assert main(["import", str(src), "-o", str(out), "-q"]) == 2
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [src]


def test_ndax_inside_a_zip(ndax: dict, tmp_path: Path) -> None:
    z = tmp_path / "export.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(NDAX_PATH, arcname="cell 7/" + NDAX_PATH.name)
    assert detect(z) is neware_ndax
    imp = neware_ndax.read(z)
    assert set(imp["cycling"]) == set(ndax["cycling"])
    for k, v in ndax["cycling"].items():
        np.testing.assert_array_equal(imp["cycling"][k], v, err_msg=k)
    assert NDAX_PATH.name in imp["header"]
    # a zip without any Neware file, and one whose member is damaged
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("notes.txt", "x")
    with pytest.raises(InputError, match="no .nda/.ndax"):
        neware_ndax.read(z)
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.ndax", NDAX_PATH.read_bytes()[:5000])
    with pytest.raises(InputError, match=r"zip member 'a.ndax'") as e:
        neware_ndax.read(z)
    assert str(z) in str(e.value)


def test_a_counter_with_a_null_is_refused_not_cast(monkeypatch, tmp_path: Path) -> None:
    """fastnda hands a counter over as floats when a damaged record decodes to null:
    a NaN cast to int64 would become -2**63 without a word."""
    import polars as pl

    real = neware_ndax._decode

    def with_null(path):
        df, meta, warnings, what = real(path)
        v = df.get_column("cycle_count").to_numpy().astype("f8")
        v[7] = np.nan
        return df.with_columns(pl.Series("cycle_count", v)), meta, warnings, what

    monkeypatch.setattr(neware_ndax, "_decode", with_null)
    with pytest.raises(InputError, match="'cycle_count': record 7 is not a whole number"):
        neware_ndax.read(NDAX_PATH)
