"""Where the transport results go: the results file's ``transport`` group, the report's
D/R vs SOC figure and the lab summary (flagged cells first)."""

from __future__ import annotations

import json

import numpy as np

from cyclerflow.analysis import analyze_cell, load_results
from cyclerflow.lab import order_rows, run_lab, transport_flags
from cyclerflow.report import build_report
from cyclerflow.schema import parse_metadata
from cyclerflow.store import write_cell

from .cellmodel import Cell, run
from .model import film_voltage, schedule
from .test_diffusion import D_TRUE, L_CM, Q_AS, R_OHM, gitt_steps

GITT_META = {
    "cell_id": "GITT-1",
    "active_area_cm2": 1.0,
    "layers": [{"role": "cathode", "material": "LiCoO2", "thickness_um": 1.0}],
}


def _columns(ds) -> dict:
    return {k: np.asarray(ds[k].values) for k in ds.data_vars}


def _write(path, meta: dict, ds) -> None:
    write_cell(path, parse_metadata(meta), cycling=_columns(ds))


def _gitt_file(tmp_path):
    t, i, sw = schedule(gitt_steps(n=6))
    v = film_voltage(t, sw, d=D_TRUE, l_cm=L_CM, q_as=Q_AS, soc0=0.3, r_ohm=R_OHM)
    cols = {"test_time_second": t, "current_ampere": i, "voltage_volt": v}
    path = tmp_path / "gitt.h5"
    write_cell(path, parse_metadata(GITT_META), cycling=cols)
    return path


def test_results_file_has_d_and_r_vs_soc(tmp_path):
    path = _gitt_file(tmp_path)
    res = analyze_cell(path)
    summary, groups = load_results(tmp_path / "gitt.results.nc")
    g = groups["transport"]
    rows = summary["transport"]["gitt"]
    assert len(rows) == 6 and g.sizes["gitt_pulse"] == 6
    d = g["gitt_diffusion_coefficient_cm2_per_s"].values
    assert np.allclose(d, [r["diffusion_coefficient_cm2_per_s"] for r in rows])
    assert np.all(np.abs(d / D_TRUE - 1) < 0.1)
    assert np.allclose(g["gitt_soc"].values, [r["soc"] for r in rows])
    assert g["gitt_weppner_huggins_valid"].values.all()
    assert np.all(np.diff(g["gitt_soc"].values) > 0)
    assert g.attrs["diffusion_length_route"] == "film_thickness"
    assert "ici_soc" not in g  # no interruptions in this record
    assert res["transport"]["gitt"] == rows


def test_report_shows_the_transport_figure(tmp_path):
    path = _gitt_file(tmp_path)
    html = build_report([path], tmp_path / "r.html", workers=1).read_text()
    assert "Diffusion coefficient and resistance vs state of charge" in html
    assert "diffusion length from film_thickness" in html


def _cell_ds(r_short: float):
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


def test_lab_summary_lists_flagged_cells_first(tmp_path):
    lab = tmp_path / "lab"
    lab.mkdir()
    base = {"active_area_cm2": 2.0, "nominal_capacity_uah": 1e6, "wafer": "W1"}
    _write(lab / "a.h5", {**base, "cell_id": "A-good", "die": "D1"}, _cell_ds(1e6))
    _write(lab / "z.h5", {**base, "cell_id": "Z-short", "die": "D9"}, _cell_ds(1e3))
    done = run_lab(lab, report=False, database=False)
    ids = [r["cell_id"] for r in done.rows]
    assert ids == ["Z-short", "A-good"]  # flagged first, though it sorts last
    flags = {r["cell_id"]: r["flags"].split(";") for r in done.rows}
    assert "soft_short" in flags["Z-short"] and "soft_short" not in flags["A-good"]
    table = json.loads(done.summary_json.read_text())["cells"]
    assert [c["cell_id"] for c in table] == ids


def test_transport_flags_and_order_rules():
    rest_fast = {
        "method": "ocv_rest",
        "evidence": "voltage falls 4.0x faster than the cell's earlier rests",
    }
    over = {"method": "float", "evidence": "float current 2e-3 A above the bound 4e-4 A"}
    assert transport_flags({"soft_short": {"events": [rest_fast]}}) == ["self_discharge"]
    assert transport_flags({"soft_short": {"events": [over]}}) == ["soft_short"]
    assert transport_flags(None) == []
    rows = [
        {"cell_id": "a", "wafer": "W", "flags": "no_eis"},
        {"cell_id": "b", "wafer": "W", "flags": "no_eis;self_discharge"},
    ]
    assert [r["cell_id"] for r in order_rows(rows)] == ["b", "a"]
