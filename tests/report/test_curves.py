"""Voltage profiles and dQ/dV from cell files: known charges from the synthetic record."""

from __future__ import annotations

import numpy as np
import pytest

from cyclerflow.report.curves import cycle_curves, dqdv, half_cycles, read_cycle_rows, select_cycles
from cyclerflow.store import write_cell
from cyclerflow.synthetic import galvanostatic_cycles


def test_half_cycles_capacity_is_exact():
    cap, fade, ce = 15e-6, 1e-3, 0.999
    cyc = galvanostatic_cycles(
        n_cycles=5, capacity_ah=cap, fade_per_cycle=fade, coulombic_efficiency=ce
    )
    m = cyc["cycle_count"] == 3
    curves = half_cycles(
        cyc["test_time_second"][m], cyc["voltage_volt"][m], cyc["current_ampere"][m], 3
    )
    by = {c["half"]: c for c in curves}
    q_chg = cap * (1 - fade) ** 2
    assert by["charge"]["capacity_ah"][-1] == pytest.approx(q_chg, rel=1e-9)
    assert by["discharge"]["capacity_ah"][-1] == pytest.approx(q_chg * ce, rel=1e-9)
    assert by["charge"]["voltage_v"][-1] > by["charge"]["voltage_v"][0]


def test_dqdv_integrates_to_capacity():
    cyc = galvanostatic_cycles(n_cycles=1, points_per_half=400)
    curves = half_cycles(cyc["test_time_second"], cyc["voltage_volt"], cyc["current_ampere"], 1)
    for c in curves:
        d = dqdv(c, smooth=1)
        area = np.trapezoid(d["dqdv_ah_per_v"], d["voltage_v"])
        assert area == pytest.approx(c["capacity_ah"][-1], rel=0.02)
        assert np.all(d["dqdv_ah_per_v"] >= 0)


def test_select_cycles():
    assert select_cycles([1, 2, 3]) == [1, 2, 3]
    sel = select_cycles(list(range(1, 10001)), 8)
    assert len(sel) == 8 and sel[0] == 1 and sel[-1] == 10000
    assert sel == sorted(sel)
    assert sum(c < 100 for c in sel) >= 3  # log-spaced: early cycles are represented
    assert 7 in select_cycles(list(range(1, 40)), 5, reference=7)


def test_read_selected_cycles_from_file(tmp_path):
    cyc = galvanostatic_cycles(n_cycles=6, points_per_half=30)
    p = write_cell(tmp_path / "c.h5", None, cycling=cyc)
    rows = read_cycle_rows(p, [2, 5, 99])
    assert sorted(rows) == [2, 5]
    m = cyc["cycle_count"] == 5
    assert np.array_equal(rows[5]["voltage_volt"], cyc["voltage_volt"][m])
    curves = cycle_curves(p, [2, 5])
    assert [(c["cycle"], c["half"]) for c in curves] == [
        (2, "charge"),
        (2, "discharge"),
        (5, "charge"),
        (5, "discharge"),
    ]
