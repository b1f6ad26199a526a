"""hypothesis fuzzing of every text reader (Maccor both layouts and continuation files,
Maccor CSV export with and without a state column, Maccor durations + FRA step, Maccor AC
impedance export, Arbin CSV incl. empty counters (real and built) and MITS Pro 8 quoted
dates, Gamry incl. decimal comma, aborted sweeps and PWR800 steps, ZPlot incl. ZPlotW, EIS
text incl. PowerSuite, spectrometer and |Z|/phase exports, EC-Lab text exports with dates
in time/s, without header, decimal comma, Neware CSV both variants, BDF CSV/Parquet): a
mutated file gives InputError (exit 2, no output file) or an import whose data is
consistent, never a traceback and never a partial output file.

Seeds are the real files of fixtures/vendor and, for layouts without a shippable public
file, the files the format tests build byte by byte."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_arbin_empty_counters import _blank
from test_maccor_variants import _commas, _milli_export, _rows, _write
from test_neware_csv import _truth, write_A, write_uA

from cyclerflow.cli import main
from cyclerflow.errors import InputError
from cyclerflow.importers import read_any

SEEDS = [
    "maccor/maccor_example.001",
    "gamry/eispot_data.dta",
    "gamry/ocvcurve_data.dta",
    "eis/exampleDataZPlot.z",
    "eis/exampleData.csv",
    "eis/exampleDataAutolab.txt",
    "eis/exampleDataCHInstruments.txt",
    "eis/exampleDataVersaStudio.par",
    "arbin/arbin_example.csv",
    "cellpy/maccor_002.txt",
    "gamry/chronoa_de_data.dta",
    "gamry/eispot_data_curveaborted.dta",
    "gamry/cv_data.dta",
    "eis/exampleDataPowersuite.txt",
    "eis/exampleDataZPlot_noComments.z",
    "eis/exampleDataParstat.txt",
    "eis-series/s04147-140deg.txt",
    "biologic/exampleDataBioLogic_MissingFreq.mpt",
    "maccor/sample_data_maccor.csv",
    "maccor/maccor_test_file_4267-66-6519.041",
    "maccor/maccor_test_file_4267-66-6519.EDA0001.041",
    "arbin/sample_data_arbin.csv",
    "arbin/2017-05-09_test-TC-contact_CH33.csv",
    "biologic/Sample_data_biologic_timestamped.txt",
    "biologic/Sample_data_biologic_no_header.mpt",
    "biologic/2022-04-06 16_17_23 full set_01_01_CP_DUSB0_C01.mpt",
    "biologic/Pt_poly_cv_CUT.mpt",
    "gamry/ccd_charge_data.dta",
    "gamry/ocp_data.dta",
    "eis/exampleDataBioLogic.txt",
    "gamry/EISGALV_EISTest3.DTA",
    "gamry/550C.0.5V.DTA",
    "eis/LIB_data.txt",
]
#: larger seeds are cut to their first lines (a whole number of rows) before mutating
MAX_BYTES = 12_000


def _seed(path: Path) -> bytes:
    raw = path.read_bytes()
    if len(raw) <= MAX_BYTES:
        return raw
    return raw[: raw.rfind(b"\n", 0, MAX_BYTES) + 1]


#: what the "number" mutation writes in place of a number: overflow of int64 and of
#: float64's exact integers, signs, non-finite values, a year no calendar here holds
EXTREME = (b"99999999999999999999", b"12345678901234567", b"-1", b"0", b"1e400", b"nan",
           b"inf", b"0216")  # fmt: skip
_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")

#: one mutation: (kind, position in [0, 1), payload)
MUTATION = st.tuples(
    st.sampled_from(["cut", "flip", "insert", "drop_line", "dup_line", "tab", "digit", "number"]),
    st.floats(0, 1, exclude_max=True),
    st.binary(min_size=1, max_size=4),
)


def _mutate(raw: bytes, ops) -> bytes:
    data = bytearray(raw)
    for kind, where, junk in ops:
        if not data:
            break
        i = int(where * len(data))
        if kind == "cut":
            del data[i:]
        elif kind == "flip":
            data[i] ^= junk[0] or 1
        elif kind == "insert":
            data[i:i] = junk
        elif kind in ("drop_line", "dup_line"):
            start = data.rfind(b"\n", 0, i) + 1
            end = data.find(b"\n", i)
            end = len(data) if end < 0 else end + 1
            line = bytes(data[start:end])
            data[start:end] = b"" if kind == "drop_line" else line + line
        elif kind == "tab":
            data[i:i] = b"\t"
        elif kind == "digit" and chr(data[i]).isdigit():
            data[i] = ord("x")
        elif kind == "number":  # the number at or after i -> an extreme value
            m = _NUMBER.search(data, i) or _NUMBER.search(data)
            if m:
                data[m.start() : m.end()] = EXTREME[junk[0] % len(EXTREME)]
    return bytes(data)


def _consistent(data: dict) -> None:
    """What a correct import looks like: equal lengths, finite required columns,
    increasing time, positive frequencies."""
    c = data.get("cycling") or {}
    if c:
        n = {len(v) for v in c.values()}
        assert len(n) == 1
        for k in ("test_time_second", "voltage_volt", "current_ampere"):
            assert np.all(np.isfinite(c[k])), k
        assert np.all(np.diff(c["test_time_second"]) >= 0)
    for sp in data.get("spectra", []):
        f = sp["frequency_hertz"]
        assert len(f) == len(sp["real_impedance_ohm"]) == len(sp["imaginary_impedance_ohm"])
        assert np.all(f > 0) and np.all(np.isfinite(sp["real_impedance_ohm"]))
    assert c or data.get("spectra")


@pytest.mark.parametrize("rel", SEEDS)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(MUTATION, min_size=1, max_size=3))
def test_mutated_files_fail_cleanly_or_import_consistently(vendor_data, tmp_path, rel, ops):
    src = vendor_data / rel
    p = tmp_path / Path(rel).name
    p.write_bytes(_mutate(_seed(src), ops))
    try:
        data = read_any(p)
    except InputError as err:
        assert str(err)
        return
    _consistent(data)


@pytest.mark.parametrize("rel", ["maccor/maccor_example.001", "eis/exampleDataZPlot.z"])
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(MUTATION, min_size=1, max_size=3))
def test_cli_exit_0_or_2_and_no_partial_file(vendor_data, tmp_path, rel, ops):
    src = vendor_data / rel
    p = tmp_path / Path(rel).name
    p.write_bytes(_mutate(src.read_bytes(), ops))
    out = tmp_path / "out.h5"
    out.unlink(missing_ok=True)
    rc = main(["import", str(p), "-o", str(out), "-q"])
    assert rc in (0, 2)
    assert out.exists() == (rc == 0)
    assert not [x for x in tmp_path.iterdir() if ".part" in x.name]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(MUTATION, min_size=1, max_size=3))
def test_mutated_bdf_exports(vendor_data, tmp_path_factory, ops):
    from cyclerflow.export import export_bdf
    from cyclerflow.importers import import_files

    tmp = tmp_path_factory.mktemp("bdf")
    cell = import_files([vendor_data / "maccor/maccor_example.001"], tmp / "c.h5")
    for fmt in ("bdf-csv", "bdf-parquet"):
        good = export_bdf(cell, tmp / f"c.{fmt}", fmt=fmt)
        bad = tmp / f"m.{fmt}"
        bad.write_bytes(_mutate(good.read_bytes(), ops))
        try:
            data = read_any(bad, fmt)
        except InputError:
            continue
        _consistent(data)


def _maccor_durations() -> bytes:
    """A small export in the newer Maccor layout (durations, Aux + Units pairs)."""
    head = (
        "Today's Date:\t14 December 2020\tDate of Test:\t11 December 2020, 12:22:12 PM\n"
        "Filename:\tx\tTester Channel:\t1\nProcedure:\tp.000\tDescription:\t\n"
        "Rec#\tCyc#\tStep\tTestTime\tStepTime\tAmp-hr\tWatt-hr\tAmps\tVolts\tState\tES\t"
        "DPt Time\tAux #1\t Units\t\n"
    )
    rows = [
        f"{k + 1}\t0\t{1 + k // 4}\t  0d 00:0{k // 6}:{(k * 10) % 60}\t  0d 00:00:{k}\t"
        f"{k * 0.001:.5f}\t{k * 0.003:.5f}\t{0.5 if k >= 4 else 0:.5f}\t{3.4 + k * 0.01:.5f}\t"
        f"{'D' if k >= 4 else 'R'}\t{1 if k else 0}\t12/11/2020 12:22:{10 + k:02d}\t-2501.7\t C  \t"
        for k in range(12)
    ]
    return (head + "\n".join(rows) + "\n").encode()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(MUTATION, min_size=1, max_size=3))
def test_mutated_maccor_duration_layout(tmp_path, ops):
    p = tmp_path / "m.txt"
    raw = _maccor_durations()
    p.write_bytes(raw)
    assert len(read_any(p)["cycling"]["test_time_second"]) == 12  # the seed itself imports
    p.write_bytes(_mutate(raw, ops))
    try:
        data = read_any(p)
    except InputError:
        return
    _consistent(data)


def _neware(variant: str) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "n.csv"
        (write_A if variant == "A" else write_uA)(p, _truth(1))
        return p.read_bytes()


def _arbin_empty_counters(vendor_data) -> bytes:
    return _blank(_seed(vendor_data / "arbin/arbin_example.csv"))


def _maccor_csv_with_state(vendor_data) -> bytes:
    """PyProBE's Maccor CSV export with an MD column added (C on the current step)."""
    lines = (vendor_data / "maccor/sample_data_maccor.csv").read_text().split("\n")
    rows = [ln + ("," + ("C" if ln.split(",")[2] == "2" else "R")) for ln in lines[3:]]
    return "\n".join([*lines[:2], lines[2] + ",MD", *rows]).encode()


def _polar_eis(vendor_data) -> bytes:
    """LIB_data.txt's spectrum as an impedance-analyser table of |Z| and phase."""
    (sp,) = read_any(vendor_data / "eis/LIB_data.txt")["spectra"]
    z = sp["real_impedance_ohm"] + 1j * sp["imaginary_impedance_ohm"]
    rows = [
        f"{k}\t{float(f)!r}\t{float(abs(v))!r}\t{float(np.degrees(np.angle(v)))!r}"
        for k, (f, v) in enumerate(zip(sp["frequency_hertz"], z, strict=True))
    ]
    head = "IMPEDANCE MEASUREMENT\nIndex #\tFrequency (Hz)\tImpedance (ohm)\tPhase (degrees)\n"
    return (head + "\n".join(rows) + "\n").encode()


#: seeds built by the format tests (layouts with no shippable public file): name -> builder
BUILT = {
    "maccor_md.csv": _maccor_csv_with_state,
    "eis_polar.txt": _polar_eis,
    "neware_uA.csv": lambda vd: _neware("uA"),
    "neware_A.csv": lambda vd: _neware("A"),
    "arbin_empty_counters.csv": _arbin_empty_counters,
    "maccor_durations.txt": lambda vd: _maccor_durations(),
    "maccor_milli.txt": lambda vd: _milli_export([1853.8186, 1853.0556, 1853.2082, 1900.5]),
    "maccor_comma.txt": lambda vd: _commas(_maccor_durations(), 4),
}


@pytest.mark.parametrize("name", sorted(BUILT))
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(MUTATION, min_size=1, max_size=3))
def test_mutated_built_layouts(vendor_data, tmp_path, name, ops):
    p = tmp_path / name
    raw = BUILT[name](vendor_data)
    p.write_bytes(raw)
    _consistent(read_any(p))  # the seed itself imports
    p.write_bytes(_mutate(raw, ops))
    try:
        data = read_any(p)
    except InputError as err:
        assert str(err)
        return
    _consistent(data)


#: one file per reader for the CLI check (exit code and no partial output)
CLI_SEEDS = [
    "gamry/chronoa_de_data.dta",
    "eis/exampleDataPowersuite.txt",
    "eis-series/s04147-140deg.txt",
    "arbin/arbin_example.csv",
    "eis/exampleDataZPlot_noComments.z",
    "maccor/sample_data_maccor.csv",
    "maccor/maccor_test_file_4267-66-6519.EDA0001.041",
    "arbin/sample_data_arbin.csv",
    "biologic/Sample_data_biologic_timestamped.txt",
    "gamry/ccd_charge_data.dta",
]


@pytest.mark.parametrize("rel", CLI_SEEDS + sorted(BUILT))
@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(MUTATION, min_size=1, max_size=3))
def test_cli_every_reader_exit_0_or_2_and_no_partial_file(vendor_data, tmp_path, rel, ops):
    raw = BUILT[rel](vendor_data) if rel in BUILT else _seed(vendor_data / rel)
    p = tmp_path / Path(rel).name
    p.write_bytes(_mutate(raw, ops))
    out = tmp_path / "out.h5"
    out.unlink(missing_ok=True)
    rc = main(["import", str(p), "-o", str(out), "-q"])
    assert rc in (0, 2)
    assert out.exists() == (rc == 0)
    assert not [x for x in tmp_path.iterdir() if ".part" in x.name]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(MUTATION, min_size=1, max_size=3), which=st.sampled_from([0, 1]))
def test_mutated_continuation_pair(tmp_path, ops, which):
    """`import a.078 acon.078` with either part damaged: exit 0 or 2, no partial file."""
    parts = [
        _write(tmp_path / "a.078", _rows(30)[0]),
        _write(tmp_path / "acon.078", _rows(12, t0=200.0, rec0=31)[0]),
    ]
    parts[which].write_bytes(_mutate(parts[which].read_bytes(), ops))
    out = tmp_path / "a.h5"
    out.unlink(missing_ok=True)
    rc = main(["import", *map(str, parts), "-o", str(out), "-q"])
    assert rc in (0, 2)
    assert out.exists() == (rc == 0)
    assert not [x for x in tmp_path.iterdir() if ".part" in x.name]
