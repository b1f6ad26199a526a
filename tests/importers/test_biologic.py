"""BioLogic .mpr / .mpt importers against EC-Lab's own text exports of the same data."""

from __future__ import annotations

import os
import re
import struct
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from biologic_mpr_writer import make_mpr
from biologic_standins import BUILDERS, Truth
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cyclerflow.errors import InputError
from cyclerflow.importers import biologic_mpr, biologic_mpt, detect
from cyclerflow.importers.biologic_common import INTEGER_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
#: GPL pairs (yadg): used when ../shared is present, never copied into the repository
SHARED_BIO = ROOT.parent / "shared" / "data" / "biologic"
#: MIT (impedance.py), in the repository: fixtures/vendor/manifest.csv
OTHER_MPT = ROOT / "fixtures" / "vendor" / "biologic" / "exampleDataBioLogic.mpt"
PAIRS = ["gcpl.issue_149", "peis", "mb"]
#: facts of the vendor pairs, read from EC-Lab's own export of each
VENDOR_TRUTH = {
    "gcpl.issue_149": Truth(
        132,
        16,
        datetime(2024, 1, 10, 11, 2, 29, 886000, tzinfo=UTC),
        82,
        {
            "i_charge": 30e-6,
            "cycles": [1, 2, 3, 4],
            "vendor_cycles": [0, 1, 2, 3],
            "qmax": 30e-6 * 10 / 3600,
            "time0": 30.15299923827115,
        },
    ),
    "peis": Truth(
        32,
        25,
        datetime(2021, 3, 2, 16, 17, 59, tzinfo=UTC),
        0,
        {"f0": 1.9999814e5, "re0": 10.512296, "im0": -0.73047662, "amplitude": 0.010},
    ),
    "mb": Truth(
        1588,
        25,
        datetime(1970, 1, 1, tzinfo=UTC),
        0,
        {"spectra": 8, "points": 70, "steps": {1, 6}, "amplitude": 0.010},
    ),
}


@pytest.fixture(scope="module")
def bio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, Truth]]:
    """stem -> (.mpr, .mpt, truth): the vendor pairs in ../shared when present, else
    pairs built byte by byte with known values (tests/importers/biologic_standins.py)."""
    if SHARED_BIO.is_dir() and not os.environ.get("CYCLERFLOW_TEST_WITHOUT_SHARED"):
        return {
            s: (SHARED_BIO / f"{s}.mpr", SHARED_BIO / f"{s}.mpt", VENDOR_TRUTH[s]) for s in PAIRS
        }
    folder = tmp_path_factory.mktemp("biologic_standins")
    return {s: BUILDERS[s](folder) for s in PAIRS}


def _printed_decimals(mpt: Path) -> dict[str, int]:
    """Mantissa decimals EC-Lab printed for each column (from the first data line)."""
    lines = mpt.read_bytes().decode("latin-1").splitlines()
    n = int(re.search(r"Nb header lines\s*:\s*(\d+)", lines[1]).group(1))
    names = [c for c in lines[n - 1].split("\t") if c]
    fields = lines[n].split("\t")
    out = {}
    for name, f in zip(names, fields, strict=False):
        m = re.match(r"-?\d[.,](\d+)E", f)
        out[name] = len(m.group(1)) if m else 0
    return out


@pytest.mark.parametrize("stem", PAIRS)
def test_mpr_columns_equal_vendor_export(bio: dict, stem: str) -> None:
    mpr_path, mpt_path, truth = bio[stem]
    mpr = biologic_mpr.parse_mpr(mpr_path)
    mpt, _, _ = biologic_mpt.parse_mpt(mpt_path)
    decimals = _printed_decimals(mpt_path)
    common = [c for c in mpr.columns if c in mpt]
    # every column the .mpr stores is in the export (the export adds computed ones)
    assert common == list(mpr.columns)
    assert len(common) == truth.n_mpr_columns
    for name in common:
        a, b = mpr.columns[name], mpt[name]
        assert len(a) == len(b) == truth.rows, name
        if name in INTEGER_COLUMNS or decimals[name] == 0:
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            # printed as d.ddd...E+xxx with `d` decimals: half a unit in the last place
            tol = (
                0.5
                * 10.0 ** -decimals[name]
                * 10.0 ** np.floor(np.log10(np.where(b == 0, 1, np.abs(b))))
            )
            # (+ 2 ulp: the printed decimal and the parsed double each round once)
            assert np.all(np.abs(a - b) <= tol + 2 * np.spacing(np.abs(b))), name
            assert np.all((a == 0) == (b == 0)), name


@pytest.mark.parametrize("stem", PAIRS)
def test_mpr_and_mpt_import_the_same(bio: dict, stem: str) -> None:
    a = biologic_mpr.read(bio[stem][0])
    b = biologic_mpt.read(bio[stem][1])
    assert set(a["cycling"]) <= set(b["cycling"])
    for k, v in a["cycling"].items():
        w = b["cycling"][k]
        assert len(v) == len(w)
        if v.dtype.kind == "i":
            np.testing.assert_array_equal(v, w, err_msg=k)
        else:
            np.testing.assert_allclose(v, w, rtol=2e-7, atol=1e-15, err_msg=k)
    assert len(a["spectra"]) == len(b["spectra"])
    for s, t in zip(a["spectra"], b["spectra"], strict=True):
        for k in ("frequency_hertz", "real_impedance_ohm", "imaginary_impedance_ohm"):
            np.testing.assert_allclose(s[k], t[k], rtol=3e-7, err_msg=k)
        for k in ("cycle_count", "vendor_step_index", "unix_time_second"):
            assert s.get(k) == pytest.approx(t.get(k), abs=1e-6), k


def test_gcpl_current_sign_units_and_cycles(bio: dict) -> None:
    mpr, _, truth = bio["gcpl.issue_149"]
    facts = truth.facts
    imp = biologic_mpr.read(mpr)
    c = imp["cycling"]
    assert len(c["test_time_second"]) == truth.rows
    ns, i = c["vendor_step_index"], c["current_ampere"]
    # settings: Ns 1 charges at +30 µA, Ns 2 discharges at -30 µA, Ns 0 rests
    steady = np.r_[False, np.diff(c["test_time_second"]) > 0.5]
    assert np.allclose(i[(ns == 1) & steady], facts["i_charge"], rtol=0.01)
    assert np.allclose(i[(ns == 2) & steady], -facts["i_charge"], rtol=0.01)
    assert np.all(i[ns == 0] == 0)
    # 4 loops of rest/charge/discharge: 8 half cycles -> cycles 1..4, vendor 0..3
    assert sorted(set(c["cycle_count"])) == facts["cycles"]
    assert sorted(set(c["vendor_cycle_index"])) == facts["vendor_cycles"]
    # charge counted during charge steps: 10 s at 30 µA = 8.33e-8 Ah per half cycle
    qc = c["charge_capacity_ampere_hour"]
    assert qc.max() == pytest.approx(facts["qmax"], rel=0.01)
    # start time from the LOG module, as the export's header says (01/10/2024 11:02:29.886)
    t0 = truth.start.timestamp()
    assert c["unix_time_second"][0] - c["test_time_second"][0] == pytest.approx(t0, abs=1e-3)
    assert imp["spectra"] == []


def test_peis_spectrum_sign_and_attrs(bio: dict) -> None:
    mpr, _, truth = bio["peis"]
    imp = biologic_mpr.read(mpr)
    assert imp["cycling"] == {}
    (sp,) = imp["spectra"]
    f = sp["frequency_hertz"]
    assert len(f) == truth.rows and f[0] == pytest.approx(truth.facts["f0"], rel=1e-7)
    # first row of the export: Re 1.0512296E+001, -Im 7.3047662E-001
    assert sp["real_impedance_ohm"][0] == pytest.approx(truth.facts["re0"], rel=1e-7)
    assert sp["imaginary_impedance_ohm"][0] == pytest.approx(truth.facts["im0"], rel=1e-7)
    assert sp["technique"] == "PEIS" and sp["cycle_count"] == 1


def test_mb_spectra_split_and_cycling_rows(bio: dict) -> None:
    mpr, mpt, truth = bio["mb"]
    imp = biologic_mpr.read(mpr)
    assert len(imp["spectra"]) == truth.facts["spectra"]
    assert all(len(s["frequency_hertz"]) == truth.facts["points"] for s in imp["spectra"])
    n_eis = sum(len(s["frequency_hertz"]) for s in imp["spectra"])
    assert len(imp["cycling"]["test_time_second"]) + n_eis == truth.rows
    for s in imp["spectra"]:
        f = s["frequency_hertz"]
        assert np.all(np.diff(f) < 0)  # one sweep, 1 MHz -> 100 mHz
        # |Z|/phase -> Re/Im: the low-frequency tail is capacitive
        assert s["imaginary_impedance_ohm"][-1] < 0
    # the .mpt header names the sequence technique
    assert {s["technique"] for s in biologic_mpt.read(mpt)["spectra"]} == {"PEIS"}


def test_mpt_decimal_comma_latin1(bio: dict) -> None:
    _, mpt, truth = bio["gcpl.issue_149"]
    cols, header, first = biologic_mpt.parse_mpt(mpt)
    assert first == truth.first_data_line and "Électrode" not in header and "cm²" in header
    assert cols["time/s"][0] == pytest.approx(truth.facts["time0"], rel=1e-15)
    assert "Capacitance charge/µF" in cols


def test_detection(bio: dict) -> None:
    assert detect(bio["mb"][0]) is biologic_mpr
    assert detect(bio["mb"][1]) is biologic_mpt
    assert detect(OTHER_MPT) is biologic_mpt


def test_other_biologic_export() -> None:
    imp = biologic_mpt.read(OTHER_MPT)
    assert imp["cycling"] == {} and len(imp["spectra"]) == 1
    sp = imp["spectra"][0]
    assert np.all(sp["frequency_hertz"] > 0)


# --- bad input ----------------------------------------------------------------------


def _copy(src: Path, dst: Path, data: bytes | None = None) -> Path:
    dst.write_bytes(src.read_bytes() if data is None else data)
    return dst


def test_mpr_bad_inputs(bio: dict, tmp_path: Path) -> None:
    good = bio["peis"][0].read_bytes()
    p = tmp_path / "x.mpr"
    cases = {
        b"": "empty",
        good[:10]: "magic",
        good[:30]: "file header",
        good[:60]: "module header",
        good[: len(good) - 100]: "declares",
        b"EC-Lab ASCII FILE\nNb header lines : 3\n": "magic",
    }
    for data, words in cases.items():
        p.write_bytes(data)
        with pytest.raises(InputError) as e:
            biologic_mpr.read(p)
        assert str(p) in str(e.value) and words in str(e.value)
    # unknown data-module version
    data_at = good.index(b"MODULEVMP data") + 6 + 35
    bad = bytearray(good)
    struct.pack_into("<I", bad, data_at + 4, 99)
    p.write_bytes(bytes(bad))
    with pytest.raises(InputError, match=r"unsupported VMP data module version 99") as e:
        biologic_mpr.read(p)
    assert "byte" in str(e.value)
    # one unknown column id: kept, width from the module size; two: refused
    bad = bytearray(good)
    struct.pack_into("<H", bad, data_at + 16 + 5, 9999)
    p.write_bytes(bytes(bad))
    with pytest.warns(biologic_mpr.UnknownColumnWarning, match=r"unknown column id 9999"):
        cols = biologic_mpr.parse_mpr(p).columns
    assert cols["vendor_col_9999"].dtype == np.dtype("<f4")
    struct.pack_into("<H", bad, data_at + 16 + 7, 9998)
    p.write_bytes(bytes(bad))
    with pytest.raises(InputError, match=r"unknown column ids \[9999, 9998\]") as e:
        biologic_mpr.read(p)
    assert str(p) in str(e.value)


def test_mpt_bad_inputs(bio: dict, tmp_path: Path) -> None:
    mpr_path, mpt_path, _ = bio["peis"]
    lines = mpt_path.read_bytes().split(b"\n")
    _, _, first = biologic_mpt.parse_mpt(mpt_path)
    names = [c for c in lines[first - 2].rstrip(b"\r").split(b"\t") if c]
    d0 = first - 1  # index of the first data line
    p = tmp_path / "x.mpt"
    bad_number = lines.copy()
    bad_number[d0 + 5] = bad_number[d0 + 5].replace(b"E+000", b"E+0x0", 1)
    short_row = lines.copy()
    short_row[d0 + 10] = b"\t".join(short_row[d0 + 10].split(b"\t")[:5])
    frac_range = lines.copy()
    fields = frac_range[d0 + 2].split(b"\t")
    fields[names.index(b"I Range")] = b"37.5"  # I Range is an integer code
    frac_range[d0 + 2] = b"\t".join(fields)
    cases = [
        (b"\n".join(frac_range), "'I Range': 37.5 is not a whole number", f"line {first + 2}"),
        (b"", "empty", None),
        (b"EC-Lab ASCII FILE\nfoo\n", "Nb header lines", "line 2"),
        (b"\n".join(bad_number), "not a number", f"line {first + 5}"),
        (b"\n".join(short_row), f"expected {len(names)}", f"line {first + 10}"),
        (b"\n".join(lines[:d0]), "no data rows", f"line {first}"),
        (mpr_path.read_bytes(), "no 'time/s'", "line 1"),
    ]
    for data, words, where in cases:
        p.write_bytes(data)
        with pytest.raises(InputError) as e:
            biologic_mpt.read(p)
        assert str(p) in str(e.value) and words in str(e.value), str(e.value)
        if where:
            assert where in str(e.value)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.sampled_from(PAIRS),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=4),
)
def test_mpr_fuzz(bio: dict, tmp_path: Path, which: str, cut: float, flips: list) -> None:
    data = bytearray(bio[which][0].read_bytes())
    for pos, x in flips:
        data[int(pos * (len(data) - 1))] ^= x
    if cut < 0.5:  # half the examples truncated
        data = data[: int(cut * 2 * len(data))]
    p = tmp_path / "fuzz.mpr"
    p.write_bytes(bytes(data))
    try:
        biologic_mpr.read(p)
    except InputError as e:
        assert str(p) in str(e)


def test_cli_import_corrupt_leaves_no_file(bio: dict, tmp_path: Path) -> None:
    from cyclerflow.cli import main

    good = bio["mb"][0].read_bytes()
    src = _copy(bio["mb"][0], tmp_path / "cut.mpr", good[: len(good) // 2])
    out = tmp_path / "out.h5"
    assert main(["import", str(src), "-o", str(out), "-q"]) == 2
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [src]


def test_cli_import_round_trip(bio: dict, tmp_path: Path) -> None:
    from cyclerflow.cli import main
    from cyclerflow.store import read_cycling, read_spectra

    out = tmp_path / "mb.h5"
    mpr, _, truth = bio["mb"]
    assert main(["import", str(mpr), "-o", str(out), "-q"]) == 0
    ds = read_cycling(out)
    spectra = read_spectra(out)
    n_sp, pts = truth.facts["spectra"], truth.facts["points"]
    assert len(spectra) == n_sp and ds.sizes["sample"] == truth.rows - n_sp * pts
    assert ds["current_ampere"].attrs["units"] == "A"


def test_spectra_split_on_sweep_restart_and_keys() -> None:
    from cyclerflow.importers.biologic_common import _split_spectra

    down = np.logspace(5, -1, 13)
    # two sweeps back to back in one run, a cycling row (f = 0), then a third sweep
    # whose second half has another cycle number
    freq = np.r_[down, down, 0.0, down]
    cyc = np.r_[np.zeros(27), np.zeros(6), np.ones(7)]
    groups = _split_spectra(freq, [cyc])
    assert [len(g) for g in groups] == [13, 13, 6, 7]
    assert groups[2][0] == 27 and groups[3][0] == 33
    # an upward sweep is one spectrum too
    assert [len(g) for g in _split_spectra(down[::-1].copy(), [])] == [13]


@pytest.mark.parametrize("stem", PAIRS)
def test_mpr_header_agrees_with_export_header(bio: dict, stem: str) -> None:
    info = biologic_mpr.parse_mpr(bio[stem][0]).log_info
    _, header, _ = biologic_mpt.parse_mpt(bio[stem][1])
    assert f"Host : {info['Host']}" in header
    assert f"Address : {info['Address']}" in header
    assert f"EC-Lab for windows v{info['EC-Lab (software)']} (software)" in header
    assert f"Internet server v{info['Internet server (firmware)']} (firmware)" in header
    assert f"(SN {info['Device serial number']})" in header


# --- synthetic files: mapping paths the vendor files here do not exercise ----------------


@pytest.mark.parametrize("new", [False, True])
def test_synthetic_cp_with_current_and_temperature(tmp_path: Path, new: bool) -> None:
    # flags (mode), Ns, time/s, Ewe/V, I/mA, cycle number, Temperature/°C
    ids = [1, 131, 4, 6, 8, 24, 462]
    dt = np.dtype(
        [
            ("flags", "u1"),
            ("Ns", "<u2"),
            ("t", "<f8"),
            ("E", "<f4"),
            ("I", "<f4"),
            ("cyc", "<f8"),
            ("T", "<f4"),
        ]
    )
    n = 40
    rec = np.zeros(n, dtype=dt)
    rec["flags"] = np.where(np.arange(n) < 20, 1, 3)  # CC then rest
    rec["Ns"] = np.where(np.arange(n) < 20, 0, 1)
    rec["t"] = np.arange(n) * 0.5
    rec["E"] = np.linspace(3.0, 4.0, n)
    rec["I"] = np.where(np.arange(n) < 20, -0.015, 0.0)  # -15 µA, discharge
    rec["cyc"] = np.where(np.arange(n) < 30, 2.0, 3.0)
    rec["T"] = 25.0
    p = tmp_path / "cp.mpr"
    p.write_bytes(make_mpr(ids, rec, new=new))
    raw = biologic_mpr.parse_mpr(p)
    assert list(raw.columns) == [
        "mode",
        "Ns",
        "time/s",
        "Ewe/V",
        "I/mA",
        "cycle number",
        "Temperature/°C",
    ]
    c = biologic_mpr.read(p)["cycling"]
    np.testing.assert_allclose(c["current_ampere"][:20], -15e-6, rtol=1e-6)
    np.testing.assert_allclose(c["temperature_kelvin"], 298.15)
    np.testing.assert_array_equal(c["vendor_cycle_index"], rec["cyc"].astype(int))
    np.testing.assert_array_equal(c["cycle_count"], np.where(np.arange(n) < 30, 1, 2))
    np.testing.assert_array_equal(c["step_count"], np.where(np.arange(n) < 20, 1, 2))
    np.testing.assert_array_equal(c["vendor_mode"], rec["flags"])
    assert c["unix_time_second"][0] == pytest.approx(
        datetime(2025, 1, 2, 12, tzinfo=UTC).timestamp(), abs=1e-3
    )


def test_synthetic_record_size_mismatch(tmp_path: Path) -> None:
    ids = [4, 6]
    rec = np.zeros(10, dtype=[("t", "<f8"), ("E", "<f4")])
    blob = bytearray(make_mpr(ids, rec, new=False))
    # claim 11 points while 10 are stored
    at = blob.index(b"MODULEVMP data") + 6 + 35 + 16
    struct.pack_into("<I", blob, at, 11)
    p = tmp_path / "short.mpr"
    p.write_bytes(bytes(blob))
    with pytest.raises(InputError, match=r"11 points x 12 bytes need 132") as e:
        biologic_mpr.read(p)
    assert "byte" in str(e.value)


def test_mpt_spectrum_amplitude_from_settings(bio: dict) -> None:
    # "Va (mV)  10.0" (PEIS), Modulo Bat PEIS sequences "ctrl1_val 10.000 mV", v11.18 "Va (mV) 20.0"
    (sp,) = biologic_mpt.read(bio["peis"][1])["spectra"]
    assert sp["amplitude"] == pytest.approx(bio["peis"][2].facts["amplitude"])
    mb = biologic_mpt.read(bio["mb"][1])["spectra"]
    facts = bio["mb"][2].facts
    assert [s["amplitude"] for s in mb] == pytest.approx([facts["amplitude"]] * facts["spectra"])
    assert {s["vendor_step_index"] for s in mb} == facts["steps"]
    (sp,) = biologic_mpt.read(OTHER_MPT)["spectra"]
    assert sp["amplitude"] == pytest.approx(0.020)


def test_synthetic_nan_cycle_number_is_a_clear_error(tmp_path: Path) -> None:
    rec = np.zeros(5, dtype=[("t", "<f8"), ("E", "<f4"), ("I", "<f4"), ("cyc", "<f8")])
    rec["t"] = np.arange(5)
    rec["cyc"][3] = np.nan
    p = tmp_path / "nan.mpr"
    p.write_bytes(make_mpr([4, 6, 8, 24], rec, new=False))
    with pytest.raises(InputError, match=r"record 4\): column 'cycle number' holds nan"):
        biologic_mpr.read(p)
