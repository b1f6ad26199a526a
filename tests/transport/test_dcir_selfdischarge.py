"""DCIR and soft-short detection on an exactly solved equivalent circuit."""

from __future__ import annotations

import numpy as np
import pytest

from cyclerflow.cycling.segment import prepare_samples
from cyclerflow.schema import parse_metadata
from cyclerflow.transport import analyze_transport
from cyclerflow.transport.dcir import DcirOptions, dcir_table
from cyclerflow.transport.steps import detect_steps

from .cellmodel import Cell, run


@pytest.mark.parametrize("scale", [1.0, 1e-7])
def test_dcir_recovers_ohmic_resistance(scale):
    r0, r1, tau1 = 0.05 / scale, 0.02 / scale, 5.0
    cell = Cell(capacity_as=3600.0 * scale, r0=r0, r1=r1, tau1=tau1, soc=0.5)
    amp = 1.0 * scale
    prog = [("rest", 60, 1.0)]
    for _ in range(3):
        prog += [
            ("cc", -amp, 40, 0.1),
            ("rest", 120, 0.1),
            ("cc", amp / 2, 40, 1.0),
            ("rest", 120, 1.0),
        ]
    rec = detect_steps(prepare_samples(run(cell, prog)))
    tab = dcir_table(rec, DcirOptions())
    assert len(tab.step) == 12
    fast = np.isfinite(tab.r_ohm[0.1])
    assert fast.sum() == 6  # 0.1 s is resolved only in the 0.1-s-sampled steps
    assert np.allclose(tab.r_ohm[0.1][fast], r0, rtol=0.02)
    # into a pulse the OCV moves too (slope x dt / capacity per ampere); into a rest not
    into_pulse = rec.i[rec.steps.start[tab.step]] != 0
    ocv = np.where(into_pulse, cell.slope / cell.capacity_as, 0.0)
    expect_10 = r0 + r1 * (1 - np.exp(-10 / tau1)) + ocv * 10
    assert np.allclose(tab.r_ohm[10.0], expect_10, rtol=0.02)
    expect_1 = r0 + r1 * (1 - np.exp(-1 / tau1)) + ocv * 1
    assert np.allclose(tab.r_ohm[1.0], expect_1, rtol=0.02)
    expect_30 = r0 + r1 * (1 - np.exp(-30 / tau1)) + ocv * 30
    assert np.allclose(tab.r_ohm[30.0], expect_30, rtol=0.02)


def _cell_record(r_short: float):
    cell = Cell(r_short=r_short, soc=0.0)
    prog = []
    for _ in range(2):
        prog += [
            ("cc", 1.0, 7200, 10.0, 4.1),
            ("cv", 4.1, 7200, 10.0),
            ("rest", 6 * 3600, 30.0),
            ("cc", -1.0, 7200, 10.0, 3.65),
            ("rest", 3600, 30.0),
        ]
    return run(cell, prog)


META = parse_metadata({"cell_id": "x", "active_area_cm2": 2.0, "nominal_capacity_uah": 1e6})


def test_soft_short_leakage_and_flag():
    r_s = 1000.0
    block = analyze_transport(_cell_record(r_s), META)
    floats = [e for e in block["self_discharge"] if e["method"] == "float"]
    assert len(floats) == 2
    for e in floats:
        assert e["settled"]
        assert e["leakage_a"] == pytest.approx(4.1 / r_s, rel=0.05)
        assert e["leakage_a_per_cm2"] == pytest.approx(4.1 / r_s / 2.0, rel=0.05)
        assert e["flagged"]
    rests = [e for e in block["self_discharge"] if e["method"] == "ocv_rest"]
    assert len(rests) == 2
    for e in rests:
        assert e["leakage_a"] == pytest.approx(e["voltage_v"] / r_s, rel=0.05)
        assert e["flagged"]
    assert block["soft_short"]["flagged"]


def test_good_cell_not_flagged():
    block = analyze_transport(_cell_record(1e6), META)
    assert not block["soft_short"]["flagged"]
    rests = [e for e in block["self_discharge"] if e["method"] == "ocv_rest"]
    assert rests and all(e["rate_percent_per_year"] < 5 for e in rests)
    assert rests[0]["leakage_a"] == pytest.approx(rests[0]["voltage_v"] / 1e6, rel=0.05)


@pytest.mark.parametrize("r_short", [1000.0, 1e6])
def test_shared_segmentation_gives_the_same_block(r_short):
    """The fast path (runs of analyze_cycling) and the standalone step detection agree."""
    from cyclerflow.cycling import analyze_cycling
    from cyclerflow.transport.hook import cycle_starts

    ds = _cell_record(r_short)
    shared: dict = {}
    _, per_cycle = analyze_cycling(ds, META, keep=shared)
    starts = cycle_starts(per_cycle)
    fast = analyze_transport(ds, META, cycle_starts=starts, shared=shared)
    full = analyze_transport(ds, META, cycle_starts=starts)
    assert fast["steps"] == full["steps"]
    assert len(fast["dcir"]) == len(full["dcir"]) > 0
    for a, b in zip(fast["dcir"], full["dcir"], strict=True):
        assert a["cycle"] == b["cycle"] and a["cycle"] is not None
        assert a["r_10s_ohm"] == pytest.approx(b["r_10s_ohm"])
    for a, b in zip(fast["self_discharge"], full["self_discharge"], strict=True):
        assert a["method"] == b["method"] and a["flagged"] == b["flagged"]
        assert a["leakage_a"] == pytest.approx(b["leakage_a"], rel=1e-6)
    assert fast["dcir_by_cycle"] == full["dcir_by_cycle"]


def _developing_short():
    """Six good cycles, then the same cell with a 300-Ohm soft short for two cycles."""
    import xarray as xr

    cell = Cell(r_short=1e6, soc=0.0)
    prog = [
        ("cc", 1.0, 7200, 10.0, 4.1),
        ("rest", 4 * 3600, 30.0),
        ("cc", -1.0, 7200, 10.0, 3.65),
        ("rest", 600, 30.0),
    ]
    parts, t0 = [], 0.0
    for n in range(8):
        cell.r_short = 1e6 if n < 6 else 300.0
        ds = run(cell, prog)
        parts.append(ds.assign(test_time_second=ds.test_time_second + t0))
        t0 = float(parts[-1].test_time_second[-1])
    return xr.concat(parts, dim="sample")


def test_developing_short_flags_faster_rests_and_ce():
    from cyclerflow.analysis import analyze_datasets

    meta = parse_metadata({"cell_id": "s", "active_area_cm2": 1.0})  # capacity from the record
    parts, _, _ = analyze_datasets(_developing_short(), [], meta)
    sd = parts["transport"]["self_discharge"]
    rests = [e for e in sd if e["method"] == "ocv_rest"]
    assert len(rests) == 8
    assert not any(e["flagged"] for e in rests[:6])
    assert all(e["flagged"] for e in rests[6:])
    ce = [e for e in sd if e["method"] == "coulombic_efficiency"]
    assert [e["cycle"] for e in ce] == [7, 8]
    assert all(e["flagged"] for e in ce)
    assert parts["transport"]["soft_short"]["flagged"]
    for e in ce:  # the lost charge over the cycle is the short's current, V / 300 Ohm
        assert e["leakage_a"] == pytest.approx(4.0 / 300.0, rel=0.05)


def test_storage_record_without_cycles_still_analyses():
    """Charge then a long open-circuit rest: no cycles, the soft short is found."""
    from cyclerflow.analysis import analyze_datasets

    cell = Cell(r_short=1000.0, soc=0.0)
    ds = run(cell, [("cc", 1.0, 7200, 10.0, 4.1), ("rest", 24 * 3600, 60.0)])
    parts, _, _ = analyze_datasets(ds, [], META)
    assert parts["cycling"]["n_cycles"] == 0 and parts["cycling"]["no_cycles_reason"]
    (rest,) = [e for e in parts["transport"]["self_discharge"] if e["method"] == "ocv_rest"]
    assert rest["leakage_a"] == pytest.approx(rest["voltage_v"] / 1000.0, rel=0.05)
    assert parts["transport"]["soft_short"]["flagged"]


def test_stalled_charge_is_flagged_and_normal_charges_are_not():
    """A short of 3.8 Ohm appears mid-charge at 1 A: the voltage stops rising and falls."""
    import xarray as xr

    cell = Cell(r_short=1e6, soc=0.0)
    normal = [("cc", 1.0, 7200, 10.0, 4.1), ("rest", 600, 30.0), ("cc", -1.0, 7200, 10.0, 3.65)]
    parts, t0 = [], 0.0

    def add(prog):
        nonlocal t0
        ds = run(cell, prog)
        parts.append(ds.assign(test_time_second=ds.test_time_second + t0))
        t0 = float(parts[-1].test_time_second[-1])

    for _ in range(3):
        add(normal + [("rest", 600, 30.0)])
    t_normal_end = t0
    add([("cc", 1.0, 1800, 10.0)])
    cell.r_short = 3.8  # U tends to I R_s = 3.8 V: charge goes in, the voltage falls
    add([("cc", 1.0, 3600, 10.0), ("rest", 600, 30.0)])
    block = analyze_transport(xr.concat(parts, dim="sample"), META)
    stalls = [e for e in block["self_discharge"] if e["method"] == "charge_stall"]
    assert len(stalls) == 1
    assert stalls[0]["time_s"] > t_normal_end and stalls[0]["charge_after_peak_ah"] > 0.9
    assert block["soft_short"]["flagged"]
