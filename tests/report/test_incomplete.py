"""The report shows incomplete cycles as such (marked, with their reasons, left out of
fade) and shades gaps in the record on the time plot."""

from __future__ import annotations

import json

import numpy as np

from cyclerflow.report import build_report
from cyclerflow.report.figures import capacity_figure, timeline_figure
from cyclerflow.schema import parse_metadata
from cyclerflow.store import write_cell
from cyclerflow.synthetic import galvanostatic_cycles

from .synth import metadata


def _cell_with_gap_and_cut_end(path):
    cyc = galvanostatic_cycles(n_cycles=6, points_per_half=80)
    n = len(cyc["test_time_second"])
    dis6 = np.flatnonzero((cyc["cycle_count"] == 6) & (cyc["current_ampere"] < 0))
    keep = slice(0, int(dis6[40]))  # the record ends mid-discharge of cycle 6
    cyc = {k: np.asarray(v)[keep] for k, v in cyc.items()}
    assert len(cyc["test_time_second"]) < n
    t = cyc["test_time_second"]
    chg3 = np.flatnonzero((cyc["cycle_count"] == 3) & (cyc["current_ampere"] > 0))
    a, b = int(chg3[10]), int(chg3[30])
    keep = np.r_[0 : a + 1, b : len(t)]
    msg = {"start_s": float(t[a]), "end_s": float(t[b]), "output_on": True,
           "estimated_charge_ah": 1e-6, "estimate_method": "setpoint x duration"}  # fmt: skip
    cyc = {k: v[keep] for k, v in cyc.items()}
    events = [
        {"test_time_second": float(t[a]), "kind": "gap", "step": 2, "message": json.dumps(msg)}
    ]
    return write_cell(path, parse_metadata(metadata()), cycling=cyc, events=events)


def test_report_marks_incomplete_cycles_and_gaps(tmp_path):
    cell = _cell_with_gap_and_cut_end(tmp_path / "c.h5")
    html = build_report([cell], tmp_path / "r.html").read_text()
    assert "Incomplete cycles (×, left out of fade, end of life and CE)" in html
    assert "gap: cycle 3" in html and "end of record: cycle 6" in html
    assert "Shaded: 1 gap(s) with no data" in html


def test_capacity_figure_draws_incomplete_cycles_apart():
    fig = capacity_figure([1, 2, 3], [1e-6, 0.99e-6, 0.5e-6], incomplete=[False, False, True])
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    crosses = lines["incomplete cycle (discharge)"]
    assert list(crosses.get_xdata()) == [3.0]
    assert np.isnan(lines["discharge"].get_ydata()[-1])


def test_timeline_figure_shades_gaps():
    t = np.linspace(0, 7200, 50)
    fig = timeline_figure(t, np.full(50, 3.9), t, np.full(50, 1e-6), [(1800.0, 3600.0)])
    (span,) = fig.axes[0].patches  # hours on the axis
    assert np.isclose(span.get_x(), 0.5) and np.isclose(span.get_x() + span.get_width(), 1.0)
    assert len(fig.axes[1].patches) == 1


def test_cell_card_draws_incomplete_cycles_apart():
    from cyclerflow.report.figures import cell_card_figure

    cycles = {
        "cycle": np.array([1, 2, 3, 4]),
        "discharge_capacity_ah": np.array([10e-6, 9.9e-6, 9.8e-6, 4e-6]),
        "capacity_retention": np.array([1.0, 0.99, 0.98, np.nan]),
        "coulombic_efficiency": np.array([0.99, 0.999, 0.999, np.nan]),
        "complete": np.array([True, True, True, False]),
    }
    fig = cell_card_figure(cycles, [], None)
    line, crosses = fig.axes[0].get_lines()[:2]
    assert np.isnan(line.get_ydata()[-1]) and list(crosses.get_xdata()) == [4]
    assert crosses.get_ydata()[0] == 4.0  # µAh
