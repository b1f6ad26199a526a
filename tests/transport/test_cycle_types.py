"""Cycle types: a slow reference cycle every 16 fast ones gives two types, each with a
smooth retention curve (the mixed curve jumps)."""

from __future__ import annotations

import numpy as np
import pytest

from cyclerflow.analysis import analyze_datasets

from .cellmodel import Cell, run


def _record(n_blocks=3, fast_per_block=16, fade=0.002):
    cell = Cell(capacity_as=3600.0, r0=0.05, soc=0.0)
    prog_parts = []
    n = 0
    for _ in range(n_blocks):
        for kind in ["slow"] + ["fast"] * fast_per_block:
            amp, dt = (0.1, 120.0) if kind == "slow" else (1.0, 20.0)
            prog_parts.append(
                (
                    n,
                    [
                        ("cc", amp, 20 * 3600, dt, 4.1),
                        ("rest", 600, 60.0),
                        ("cc", -amp, 20 * 3600, dt, 3.65),
                        ("rest", 600, 60.0),
                    ],
                )
            )
            n += 1
    return cell, prog_parts, fade


def _dataset():
    cell, parts, fade = _record()
    import xarray as xr

    out = []
    t0 = 0.0
    for n, prog in parts:
        cell.capacity_as = 3600.0 * (1 - fade * n)
        ds = run(cell, prog)
        out.append(ds.assign(test_time_second=ds.test_time_second + t0))
        t0 = float(out[-1].test_time_second[-1])
    return xr.concat(out, dim="sample")


def test_slow_reference_cycles_are_their_own_type():
    parts, _, warnings = analyze_datasets(_dataset(), [])
    cyc = parts["cycling"]
    types = np.array([c["cycle_type"] for c in cyc["cycles"]])
    assert len(types) == 51
    slow = np.arange(51) % 17 == 0
    assert len(set(types[slow])) == 1 and len(set(types[~slow])) == 1
    assert types[0] != types[1]
    by = {e["cycle_type"]: e for e in cyc["by_cycle_type"]}
    assert len(by) == 2
    # the mixed retention jumps at every reference cycle; per type it is smooth
    mixed = np.array([c["capacity_retention"] for c in cyc["cycles"]])
    assert np.abs(np.diff(mixed)).max() > 0.05
    for e in by.values():
        ret = np.array([r["capacity_retention"] for r in e["retention"]])
        cyc_n = np.array([r["cycle"] for r in e["retention"]])
        per_cycle_step = np.abs(np.diff(ret)) / np.diff(cyc_n)
        assert per_cycle_step.max() < 0.003  # the model fades 0.2 % of capacity per cycle
        assert e["fade_rate_per_cycle"] == pytest.approx(-0.002, rel=0.25)
    fast = by[int(types[1])]
    assert fast["n_cycles"] == 48
    assert fast["protocol"]["discharge_current_a"] == pytest.approx(1.0, rel=1e-6)
    assert by[int(types[0])]["protocol"]["discharge_current_a"] == pytest.approx(0.1, rel=1e-6)
