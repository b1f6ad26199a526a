"""Degradation modes (LLI, LAM per electrode) from half-cell reference curves, on
full-cell curves built from known electrode capacities and lithium inventory."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

from cyclerflow.analysis import analyze_cell
from cyclerflow.cycling.degradation import fit_cycles
from cyclerflow.cycling.halfcells import HalfCells, half_cell, load_half_cells
from cyclerflow.errors import InputError
from cyclerflow.report import build_report
from cyclerflow.schema import parse_metadata
from cyclerflow.store import write_cell

X = np.linspace(0.0, 1.0, 201)


def u_pos(x):
    """Layered-oxide-like positive (V vs Li): falls as it lithiates, two features."""
    return (
        4.35
        - 0.9 * x
        - 0.06 * np.tanh((x - 0.45) / 0.04)
        - 0.04 * np.tanh((x - 0.75) / 0.03)
        - 0.3 * np.exp(-(1 - x) / 0.03)
    )


def u_neg(y):
    """Graphite-like negative (V vs Li) with two staging steps."""
    return (
        0.09
        + 0.6 * np.exp(-y / 0.04)
        + 0.05 * np.tanh((0.25 - y) / 0.03)
        + 0.03 * np.tanh((0.55 - y) / 0.02)
    )


HC = HalfCells(half_cell(X, u_pos(X), "p"), half_cell(X, u_neg(X), "n"), "test")
CP0, CN0, LI0 = 1.0, 1.15, 1.05  # Ah
RATES = {"lli": 0.01, "lam_pos": 0.005, "lam_neg": 0.008}  # per cycle


def truth(k: int) -> tuple[float, float, float]:
    """(C_pos, C_neg, Li) in Ah at cycle k (1-based)."""
    n = k - 1
    return (
        CP0 * (1 - RATES["lam_pos"] * n),
        CN0 * (1 - RATES["lam_neg"] * n),
        LI0 * (1 - RATES["lli"] * n),
    )


def discharge(cp, cn, li, vmax=4.2, vmin=3.0):
    """Open-circuit discharge (q Ah, V) from the top of charge (vmax) to vmin."""
    xt = brentq(lambda x: u_pos(x) - u_neg((li - x * cp) / cn) - vmax, 1e-6, li / cp - 1e-6)
    yt = (li - xt * cp) / cn
    q = np.linspace(0, min((1 - xt) * cp, yt * cn) * 0.9999, 3000)
    v = u_pos(xt + q / cp) - u_neg(yt - q / cn)
    end = int(np.argmax(v < vmin)) if np.any(v < vmin) else len(v)
    return q[:end], v[:end]


@pytest.mark.parametrize("noise_v", [0.0, 1e-3])
def test_fit_recovers_known_lli_and_lam(noise_v):
    rng = np.random.default_rng(3)
    curves = []
    for k in range(1, 11):
        q, v = discharge(*truth(k))
        v = v - 0.02 + rng.normal(0, noise_v, len(v))  # 20 mV overpotential
        curves.append((k, q, v))
    res = fit_cycles(curves, HC)
    assert res["reference_cycle"] == 1
    for row in res["cycles"]:
        cp, cn, li = truth(row["cycle"])
        assert row["lli_fraction"] == pytest.approx(1 - li / LI0, abs=5e-3)
        assert row["lam_positive_fraction"] == pytest.approx(1 - cp / CP0, abs=5e-3)
        assert row["lam_negative_fraction"] == pytest.approx(1 - cn / CN0, abs=5e-3)
        assert row["overpotential_v"] == pytest.approx(0.02, abs=3e-3)
    # the absolute alignment too: the electrodes' capacities and the lithium inventory
    first = res["cycles"][0]
    assert first["capacity_positive_ah"] == pytest.approx(CP0, rel=0.03)
    assert first["lithium_ah"] == pytest.approx(LI0, rel=0.03)


def _cycling_columns(n_cycles: int, amp: float = 0.1, dt: float = 60.0) -> dict:
    """CC charge / rest / CC discharge / rest at ``amp`` A with a 10 mV overpotential."""
    t, i, v, t0 = [], [], [], 0.0
    for k in range(1, n_cycles + 1):
        q, u = discharge(*truth(k))
        qs = np.arange(0, q[-1], amp * dt / 3600)
        us = np.interp(qs, q, u)
        for cur, volts in ((amp, us[::-1] + 0.01), (0.0, [us[0]] * 3), (-amp, us - 0.01)):
            tt = t0 + dt * np.arange(1, len(volts) + 1)
            t.append(tt)
            i.append(np.full(len(volts), cur))
            v.append(np.asarray(volts))
            t0 = tt[-1]
        t.append(t0 + dt * np.arange(1, 4))
        i.append(np.zeros(3))
        v.append(np.full(3, us[-1]))
        t0 += 3 * dt
    return {
        "test_time_second": np.concatenate(t),
        "current_ampere": np.concatenate(i),
        "voltage_volt": np.concatenate(v),
    }


def test_analyze_reads_half_cells_from_metadata(tmp_path):
    curves = {
        "positive": {"lithiation": X.tolist(), "potential_v": u_pos(X).tolist()},
        "negative": {"lithiation": X.tolist(), "potential_v": u_neg(X).tolist()},
    }
    meta = parse_metadata({"cell_id": "DM-1", "half_cell_curves": curves})
    path = tmp_path / "dm.h5"
    write_cell(path, meta, cycling=_cycling_columns(6))
    res = analyze_cell(path, write_results=False)
    dm = res["cycling"]["degradation_modes"]
    assert dm["half_cells"] == "metadata half_cell_curves"
    rows = dm["cycles"]
    assert len(rows) >= 5
    for row in rows:
        cp, cn, li = truth(row["cycle"])
        assert row["lli_fraction"] == pytest.approx(1 - li / LI0, abs=5e-3)
        assert row["lam_positive_fraction"] == pytest.approx(1 - cp / CP0, abs=5e-3)
        assert row["lam_negative_fraction"] == pytest.approx(1 - cn / CN0, abs=5e-3)
    html = build_report([path], tmp_path / "r.html", workers=1).read_text()
    assert "Degradation modes: loss of lithium inventory and of active material" in html


def test_without_half_cells_there_is_no_fit(tmp_path):
    path = tmp_path / "plain.h5"
    write_cell(path, parse_metadata({"cell_id": "P"}), cycling=_cycling_columns(3))
    assert "degradation_modes" not in analyze_cell(path, write_results=False)["cycling"]


def test_half_cell_csv_and_bad_input(tmp_path):
    good = tmp_path / "hc.csv"
    lines = ["electrode,lithiation,potential_v"]
    lines += [f"positive,{x:.4f},{u:.5f}" for x, u in zip(X, u_pos(X), strict=True)]
    lines += [f"negative,{x:.4f},{u:.5f}" for x, u in zip(X, u_neg(X), strict=True)]
    good.write_text("\n".join(lines) + "\n")
    hc = load_half_cells(good)
    assert np.allclose(hc.positive(np.array([0.3])), u_pos(0.3), atol=1e-4)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([*lines[:4], "anode,0.5,0.1"]) + "\n")
    with pytest.raises(InputError, match=r"bad\.csv.*line 5: electrode 'anode'"):
        load_half_cells(bad)
    short = tmp_path / "short.csv"
    short.write_text("\n".join([*lines[:4], *lines[-6:]]) + "\n")
    with pytest.raises(InputError, match=r"short\.csv.*positive: needs at least 5 points"):
        load_half_cells(short)
    with pytest.raises(InputError, match=r"lithiation must lie within 0\.\.1"):
        half_cell([0, 0.2, 0.4, 0.6, 1.2], [1, 2, 3, 4, 5], "x")
