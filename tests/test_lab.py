"""cyclerflow.lab: discovery, cache keys, summary rows, flags, the lab table. No Prefect."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from cyclerflow.errors import InputError
from cyclerflow.lab import (
    SUMMARY_COLUMNS,
    CellEntry,
    LabCache,
    LabSettings,
    analyze_one,
    cache_key,
    discover_cells,
    is_transient_io_error,
    plan_lab,
    summary_row,
    write_lab_summary,
)
from cyclerflow.schema import parse_metadata
from cyclerflow.store import create_cell, write_cell
from cyclerflow.synthetic import galvanostatic_cycles


def _meta(cell_id: str, wafer: str, die: str, area: float = 0.25) -> dict:
    return {
        "cell_id": cell_id,
        "wafer": wafer,
        "die": die,
        "active_area_cm2": area,
        "nominal_capacity_uah": 15.0,
        "layers": [
            {"role": "cathode", "material": "LiCoO2", "thickness_um": 1.0, "density_g_cm3": 4.8},
            {"role": "electrolyte", "material": "LiPON", "thickness_um": 1.0},
        ],
    }


def make_cell(
    path: Path, cell_id: str, wafer: str = "W01", die: str = "D01", n_cycles: int = 3
) -> Path:
    cyc = galvanostatic_cycles(
        n_cycles=n_cycles, capacity_ah=15e-6, current_a=7.5e-6, points_per_half=20
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_cell(path, parse_metadata(_meta(cell_id, wafer, die)), cycling=cyc)


def _result(
    cycles: list[tuple[int, float, float]],
    *,
    ref: int = 1,
    fade: float = 1e-4,
    spectra=None,
    arrhenius=None,
) -> dict:
    """A hand-made analyze JSON object: cycles as (n, charge Ah, discharge Ah)."""
    q_ref = next(d for n, _, d in cycles if n == ref)
    rows = [
        {
            "cycle": n,
            "charge_capacity_ah": c,
            "discharge_capacity_ah": d,
            "coulombic_efficiency": d / c,
            "capacity_retention": d / q_ref,
            "discharge_capacity_uah_per_cm2": d * 1e6 / 0.25,
        }
        for n, c, d in cycles
    ]
    return {
        "cell_id": "X1",
        "software_version": "0",
        "cycling": {
            "reference_cycle": ref,
            "fade_rate_per_cycle": fade,
            "first_cycle_irreversible_ah": 0.0,
            "cycles": rows,
        },
        "eis": None if spectra is None else {"spectra": spectra, "arrhenius": arrhenius or {}},
    }


ENTRY = CellEntry(path="/lab/X1.h5", cell_id="X1", wafer="W9", die="D9")


# -- summary rows -------------------------------------------------------------------


def test_summary_row_capacity_retention_ce():
    cycles = [(1, 10e-6, 9.0e-6)] + [
        (n, 10e-6, 10e-6 * 0.999 * (1 - 1e-3) ** (n - 2)) for n in range(2, 11)
    ]
    row = summary_row(_result(cycles, fade=1e-3), ENTRY, LabSettings(retention_cycle=5))
    assert row["status"] == "ok" and row["wafer"] == "W9" and row["die"] == "D9"
    assert row["n_cycles"] == 10
    assert row["discharge_capacity_ah"] == pytest.approx(9.0e-6)
    assert row["discharge_capacity_uah_per_cm2"] == pytest.approx(36.0)
    assert row["capacity_retention_at_n"] == pytest.approx(10e-6 * 0.999 * 0.999**3 / 9.0e-6)
    assert row["last_capacity_retention"] == pytest.approx(10e-6 * 0.999 * 0.999**8 / 9.0e-6)
    # mean CE leaves out the first (formation) cycle: cycles 2..10
    expected = np.mean([0.999 * (1 - 1e-3) ** (n - 2) for n in range(2, 11)])
    assert row["mean_coulombic_efficiency"] == pytest.approx(expected, rel=1e-12)
    assert row["fade_rate_per_cycle"] == pytest.approx(1e-3)
    assert "low_ce" not in row["flags"] and "soft_short" not in row["flags"]
    assert "no_eis" in row["flags"]
    # retention cycle beyond the data -> None, never invented
    assert (
        summary_row(_result(cycles), ENTRY, LabSettings(retention_cycle=100))[
            "capacity_retention_at_n"
        ]
        is None
    )


def test_flags_low_ce_soft_short_fast_fade():
    # charge keeps going in at the reference level, discharge collapses: a soft short
    cycles = [(1, 10e-6, 9.9e-6), (2, 10e-6, 9.9e-6), (3, 10.2e-6, 8.0e-6), (4, 10.5e-6, 7.0e-6)]
    row = summary_row(_result(cycles, fade=5e-2), ENTRY, LabSettings())
    flags = row["flags"].split(";")
    assert {"low_ce", "soft_short", "fast_fade"} <= set(flags)
    # plain fade (charge and discharge fall together) is not a soft short
    fading = [(n, 10e-6 * 0.9 ** (n - 1), 10e-6 * 0.9 ** (n - 1) * 0.999) for n in range(1, 6)]
    row = summary_row(_result(fading, fade=0.1), ENTRY, LabSettings())
    assert (
        "soft_short" not in row["flags"]
        and "low_ce" not in row["flags"]
        and "fast_fade" in row["flags"]
    )


def test_interface_track_growth_at_one_temperature():
    # interfacial resistance at 298 K grows linearly by 2 Ohm cm^2 per cycle; the hot
    # spectra (one cycle only) must not be mixed in
    spectra = [
        {
            "spectrum_id": k,
            "cycle": c,
            "temperature_kelvin": 298.15,
            "r_interface_ohm": (100 + 2 * c) / 0.25,
            "r_interface_ohm_cm2": 100 + 2 * c,
            "fit_ok": True,
        }
        for k, c in enumerate((1, 11, 21, 31), start=1)
    ] + [
        {
            "spectrum_id": 9,
            "cycle": 1,
            "temperature_kelvin": 348.15,
            "r_interface_ohm": 10.0,
            "r_interface_ohm_cm2": 2.5,
            "fit_ok": True,
        }
    ]
    arr = {
        "activation_energy_ev": 0.53,
        "activation_energy_stderr_ev": 0.01,
        "conductivity_25c_s_per_cm": 2.4e-6,
    }
    row = summary_row(
        _result([(1, 1e-6, 1e-6)], spectra=spectra, arrhenius=arr), ENTRY, LabSettings()
    )
    assert row["r_interface_temperature_kelvin"] == pytest.approx(298.15)
    assert row["r_interface_first_ohm_cm2"] == pytest.approx(102)
    assert row["r_interface_ohm_cm2"] == pytest.approx(162)
    assert row["r_interface_growth_fraction"] == pytest.approx(162 / 102 - 1)
    assert row["r_interface_growth_ohm_cm2_per_cycle"] == pytest.approx(2.0)
    assert row["activation_energy_ev"] == 0.53 and row["conductivity_25c_s_per_cm"] == 2.4e-6
    assert "interface_growth" in row["flags"]  # 59 % > 50 %
    # a failed fit is flagged and left out of the track
    spectra[-2]["fit_ok"] = False
    row = summary_row(
        _result([(1, 1e-6, 1e-6)], spectra=spectra, arrhenius=arr), ENTRY, LabSettings()
    )
    assert "eis_fit_failed" in row["flags"] and row["r_interface_ohm_cm2"] == pytest.approx(142)


def test_no_cycling_no_eis_fields_are_none():
    row = summary_row({"cell_id": "E", "cycling": None, "eis": None}, ENTRY, LabSettings())
    assert row["flags"] == "no_cycling;no_eis"
    for k in (
        "discharge_capacity_ah",
        "mean_coulombic_efficiency",
        "activation_energy_ev",
        "r_interface_ohm_cm2",
    ):
        assert row[k] is None


def test_settings_unknown_key_is_a_clear_error():
    with pytest.raises(InputError, match="unknown lab settings.*retention_cycles"):
        LabSettings.from_dict({"retention_cycles": 5})


# -- discovery, cache ------------------------------------------------------------------


def test_discover_hierarchy_from_metadata_and_corrupt_files(tmp_path):
    # folder names deliberately disagree with the metadata: the metadata wins
    make_cell(tmp_path / "a" / "c1.h5", "W02-D01-C1", "W02", "D01")
    make_cell(tmp_path / "a" / "b" / "c2.h5", "W01-D03-C2", "W01", "D03")
    good = make_cell(tmp_path / "c3.h5", "W01-D01-C1", "W01", "D01")
    data = good.read_bytes()
    (tmp_path / "broken.h5").write_bytes(data[: len(data) // 3])  # truncated copy
    with h5py.File(tmp_path / "other.h5", "w") as f:  # an HDF5 file that is not a cell
        f.attrs["format"] = "something-else"
    (tmp_path / ".hidden").mkdir()
    make_cell(tmp_path / ".hidden" / "c9.h5", "HIDDEN", "W0", "D0")
    found = discover_cells(tmp_path)
    names = [Path(e.path).name for e in found]
    assert "other.h5" not in names and "c9.h5" not in names
    by = {Path(e.path).name: e for e in found}
    assert set(by) == {"c1.h5", "c2.h5", "c3.h5", "broken.h5"}
    assert (by["c2.h5"].wafer, by["c2.h5"].die, by["c2.h5"].cell_id) == ("W01", "D03", "W01-D03-C2")
    assert by["broken.h5"].error and "cut short" in by["broken.h5"].error
    assert by["c1.h5"].error is None and not by["c1.h5"].live
    # sorted by wafer / die / cell: the broken file (no metadata) sorts first
    assert names == ["broken.h5", "c3.h5", "c2.h5", "c1.h5"]


def test_discover_missing_root(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        discover_cells(tmp_path / "nope")


def test_discover_marks_live_cell(tmp_path, lipon_metadata):
    w = create_cell(tmp_path / "live.h5", parse_metadata(lipon_metadata))
    try:
        w.append_cycling(galvanostatic_cycles(n_cycles=1, points_per_half=10))
        w.flush()
        (e,) = discover_cells(tmp_path)
        assert e.live and e.cell_id == "W07-D12-C3" and e.error is None
    finally:
        w.close()
    (e,) = discover_cells(tmp_path)
    assert not e.live


def test_cache_key_inputs(tmp_path):
    p = make_cell(tmp_path / "c.h5", "C1")
    e = discover_cells(tmp_path)[0]
    k = cache_key(e, LabSettings())
    assert k == cache_key(discover_cells(tmp_path)[0], LabSettings())  # stable
    assert k != cache_key(e, LabSettings(retention_cycle=50))  # settings
    assert k != cache_key(e, LabSettings(), software_version="9.9")  # software version
    os.utime(p, ns=(e.mtime_ns + 10**9, e.mtime_ns + 10**9))
    assert k != cache_key(discover_cells(tmp_path)[0], LabSettings())  # mtime
    moved = CellEntry(**{**e.to_dict(), "path": str(tmp_path / "other.h5")})
    assert k != cache_key(moved, LabSettings())  # path
    bigger = CellEntry(**{**e.to_dict(), "size_bytes": e.size_bytes + 1})
    assert k != cache_key(bigger, LabSettings())  # size


def test_lab_cache_roundtrip_and_rules(tmp_path):
    res = tmp_path / "c.results.nc"
    res.write_text("x")
    e = CellEntry(path=str(tmp_path / "c.h5"), cell_id="C")
    s = LabSettings()
    key = cache_key(e, s)
    cache = LabCache.for_output(tmp_path)
    cache.store(e, key, {"status": "ok", "path": e.path, "results_path": str(res), "live": False})
    cache.store(
        CellEntry(path="/x/bad.h5"), "k", {"status": "failed", "path": "/x/bad.h5"}
    )  # failures not cached
    cache.save()
    again = LabCache.for_output(tmp_path)
    assert list(again.entries) == [str(Path(e.path).resolve())]
    assert again.lookup(e, key)["status"] == "cached"
    assert again.lookup(e, "other-key") is None
    todo, cached, keys = plan_lab([e], s, again)
    assert todo == [] and len(cached) == 1 and keys[e.path] == key
    live = CellEntry(**{**e.to_dict(), "live": True})
    assert again.lookup(live, key) is None  # live cells are always re-analysed
    res.unlink()
    assert again.lookup(e, key) is None  # results file gone -> analyse again
    (tmp_path / ".cyclerflow-lab-cache.json").write_text("{not json")
    assert LabCache.for_output(tmp_path).entries == {}  # unreadable cache -> start afresh


# -- failures, table -------------------------------------------------------------------


def test_analyze_one_corrupt_file_gives_failed_row(tmp_path):
    good = make_cell(tmp_path / "c.h5", "C1")
    data = good.read_bytes()
    good.unlink()
    (tmp_path / "bad.h5").write_bytes(data[:2000])
    (e,) = discover_cells(tmp_path)
    row = analyze_one(e, LabSettings())
    assert row["status"] == "failed" and "cannot open" in row["reason"] and row["flags"] == "failed"
    assert not list(tmp_path.glob("*.results.nc*")) and not list(tmp_path.glob(".*part*"))


def test_transient_io_errors_are_retried(tmp_path):
    import errno

    calls = []

    def flaky(path, **kw):  # a share that is busy twice, then answers
        calls.append(path)
        if len(calls) < 3:
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        return _result([(1, 1e-6, 1e-6)])

    row = analyze_one(
        CellEntry(path=str(tmp_path / "c.h5")),
        LabSettings(),
        retries=2,
        backoff_s=0.001,
        analyze=flaky,
    )
    assert row["status"] == "ok" and len(calls) == 3
    calls.clear()
    row = analyze_one(
        CellEntry(path=str(tmp_path / "c.h5")),
        LabSettings(),
        retries=1,
        backoff_s=0.001,
        analyze=flaky,
    )
    assert (
        row["status"] == "failed" and "temporarily unavailable" in row["reason"] and len(calls) == 2
    )
    assert not is_transient_io_error(InputError("bad row", path="x"))
    assert not is_transient_io_error(OSError(errno.ENOENT, "No such file"))


def test_write_lab_summary_csv_and_json(tmp_path):
    rows = [
        summary_row(
            {**_result([(1, 1e-6, 0.9e-6), (2, 1e-6, 0.95e-6)]), "cell_id": "B"},
            CellEntry(path="/l/b.h5", cell_id="B", wafer="W2"),
            LabSettings(),
        ),
        summary_row(
            {**_result([(1, 1e-6, 0.9e-6)]), "cell_id": "A"},
            CellEntry(path="/l/a.h5", cell_id="A", wafer="W1"),
            LabSettings(),
        ),
    ]
    rows.append(
        {
            "path": "/l/z.h5",
            "cell_id": "Z",
            "status": "failed",
            "reason": "cannot open as HDF5 (truncated)",
        }
    )
    csv_path, json_path = write_lab_summary(rows, tmp_path, settings=LabSettings())
    with open(csv_path) as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == list(SUMMARY_COLUMNS)
    assert [r["cell_id"] for r in table] == ["Z", "A", "B"]
    assert float(table[2]["mean_coulombic_efficiency"]) == pytest.approx(0.95)
    assert table[0]["status"] == "failed" and table[0]["reason"].startswith("cannot open")
    doc = json.loads(json_path.read_text())
    assert doc["counts"] == {"ok": 2, "cached": 0, "failed": 1}
    assert doc["cells"][1]["discharge_capacity_ah"] == pytest.approx(0.9e-6)
    assert not list(tmp_path.glob(".*part*"))


def test_write_lab_summary_missing_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        write_lab_summary([], tmp_path / "missing")


def test_core_lab_does_not_import_prefect():
    import subprocess

    code = "import sys, cyclerflow.lab, cyclerflow.analysis; print('prefect' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
