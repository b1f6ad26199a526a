"""GITT, ICI and PITT recover the diffusion coefficient of a film model with known D."""

from __future__ import annotations

import numpy as np
import pytest

from cyclerflow.cycling.segment import prepare_samples
from cyclerflow.schema import parse_metadata
from cyclerflow.transport import analyze_transport
from cyclerflow.transport.geometry import DiffusionLength, diffusion_length
from cyclerflow.transport.gitt import gitt
from cyclerflow.transport.ici import ici
from cyclerflow.transport.pitt import pitt
from cyclerflow.transport.steps import detect_steps

from .model import dataset, film_voltage, schedule

D_TRUE = 1e-11  # cm2/s
L_CM = 1e-4  # 1 um film
Q_AS = 0.216  # 60 uAh film, A s
R_OHM = 50.0
LENGTH = DiffusionLength(L_CM, "film_thickness")


def _record(steps, soc0, scale=1.0):
    """Model record; ``scale`` multiplies currents and capacity (same voltages)."""
    t, i, sw = schedule([(d, a * scale, dt) for d, a, dt in steps])
    sw_unscaled = [(ts, a / scale) for ts, a in sw]
    v = film_voltage(t, sw_unscaled, d=D_TRUE, l_cm=L_CM, q_as=Q_AS, soc0=soc0, r_ohm=R_OHM)
    return detect_steps(prepare_samples(dataset(t, i, v)))


def gitt_steps(n=12, amp=10e-6, pulse=40.0):
    steps = [(600.0, 0.0, 10.0)]
    for _ in range(n):
        steps += [(pulse, amp, 0.5), (3000.0, 0.0, 10.0)]
    return steps


def ici_steps(n=12, amp=10e-6):
    steps = [(600.0, 0.0, 10.0)]
    for _ in range(n):
        steps += [(300.0, amp, 5.0), (5.0, 0.0, 0.5)]
    return steps


@pytest.mark.parametrize("scale", [1.0, 1e-3, 1e4])
@pytest.mark.parametrize("soc0", [0.1, 0.45, 0.8])
def test_gitt_recovers_d_within_10_percent(soc0, scale):
    rows = gitt(_record(gitt_steps(), soc0, scale), LENGTH)
    assert len(rows) == 12
    valid = [r for r in rows if r["weppner_huggins_valid"]]
    assert len(valid) == 12
    d = np.array([r["diffusion_coefficient_cm2_per_s"] for r in valid])
    assert np.all(np.abs(d / D_TRUE - 1) < 0.10), d / D_TRUE
    # the pulse resistance from the sqrt(t) intercept is the model's ohmic one (+ curvature)
    r = np.array([r["pulse_resistance_ohm"] for r in valid]) * scale
    assert np.all(np.abs(r / R_OHM - 1) < 0.15)


def test_gitt_flags_pulses_too_long_for_weppner_huggins():
    rows = gitt(_record(gitt_steps(n=6, amp=1e-6, pulse=900.0), 0.3), LENGTH)
    assert len(rows) == 6
    assert not any(r["weppner_huggins_valid"] for r in rows)


@pytest.mark.parametrize("soc0", [0.1, 0.45])
def test_ici_agrees_with_gitt_within_20_percent(soc0):
    g = gitt(_record(gitt_steps(), soc0), LENGTH)
    d_gitt = np.median([r["diffusion_coefficient_cm2_per_s"] for r in g])
    rows = ici(_record(ici_steps(), soc0), LENGTH)
    assert len(rows) == 11  # the last step ends the record
    steady = [r for r in rows if r["quasi_steady"]]
    assert len(steady) >= 9
    d = np.array([r["diffusion_coefficient_cm2_per_s"] for r in steady])
    assert np.all(np.abs(d / d_gitt - 1) < 0.20), d / d_gitt
    r = np.array([r["resistance_ohm"] for r in steady])
    assert np.all(np.abs(r / R_OHM - 1) < 0.05)


def _pitt_record(n_terms=60):
    """Potential steps on the film: I(t) = dQ 2D/L^2 sum exp(-(2n+1)^2 pi^2 D t/(4L^2))."""
    t_step = np.linspace(1.0, 2000.0, 400)
    m = np.arange(n_terms)[:, None]
    decay = np.exp(-((2 * m + 1) ** 2) * np.pi**2 * D_TRUE * t_step / (4 * L_CM**2)).sum(0)
    ts, vs, cs, t0 = [np.arange(10.0, 601.0, 10.0)], [np.full(60, 3.90)], [np.zeros(60)], 600.0
    for k in range(1, 4):
        dq = Q_AS * 0.01
        ts.append(t0 + t_step)
        vs.append(np.full(len(t_step), 3.90 + 0.005 * k))
        cs.append(dq * 2 * D_TRUE / L_CM**2 * decay)
        t0 += 2000.0
    return dataset(np.concatenate(ts), np.concatenate(cs), np.concatenate(vs))


def test_pitt_recovers_d():
    rec = detect_steps(prepare_samples(_pitt_record()))
    rows = pitt(rec, LENGTH)
    assert len(rows) == 3
    d = np.array([r["diffusion_coefficient_cm2_per_s"] for r in rows])
    assert np.all(np.abs(d / D_TRUE - 1) < 0.05), d / D_TRUE


def test_diffusion_length_routes():
    base = {"cell_id": "c", "active_area_cm2": 2.0}
    film = parse_metadata(
        {**base, "layers": [{"role": "cathode", "material": "LCO", "thickness_um": 1.5}]}
    )
    assert diffusion_length(film).route == "film_thickness"
    assert diffusion_length(film).length_cm == pytest.approx(1.5e-4)
    molar = parse_metadata(
        {
            **base,
            "layers": [
                {
                    "role": "cathode",
                    "material": "LCO",
                    "thickness_um": 1.5,
                    "mass_mg": 1.0,
                    "molar_volume_cm3_mol": 19.6,
                    "molar_mass_g_mol": 97.9,
                }
            ],
        }
    )
    got = diffusion_length(molar)
    assert got.route == "molar_volume"
    assert got.length_cm == pytest.approx(1e-3 * 19.6 / (97.9 * 2.0))
    assert diffusion_length(None).length_cm is None


def test_transport_block_of_a_gitt_only_record():
    t, i, sw = schedule(gitt_steps(n=4))
    v = film_voltage(t, sw, d=D_TRUE, l_cm=L_CM, q_as=Q_AS, soc0=0.3, r_ohm=R_OHM)
    meta = parse_metadata(
        {"cell_id": "g", "layers": [{"role": "cathode", "material": "LCO", "thickness_um": 1.0}]}
    )
    block = analyze_transport(dataset(t, i, v), meta)
    assert {"gitt", "ici", "pitt", "dcir", "self_discharge"} <= set(block)
    assert len(block["gitt"]) == 4 and block["ici"] == [] and block["pitt"] == []
    assert block["diffusion_length_route"] == "film_thickness"
    d = block["gitt"][0]["diffusion_coefficient_cm2_per_s"]
    assert d == pytest.approx(D_TRUE, rel=0.1)


def test_analyze_cell_of_a_gitt_only_file(tmp_path):
    """A GITT-only cell file: cycling says why it has no cycles, transport is filled."""
    from cyclerflow.analysis import analyze_cell, load_results
    from cyclerflow.store import write_cell

    t, i, sw = schedule(gitt_steps(n=6))
    v = film_voltage(t, sw, d=D_TRUE, l_cm=L_CM, q_as=Q_AS, soc0=0.3, r_ohm=R_OHM)
    meta = parse_metadata(
        {"cell_id": "g1", "layers": [{"role": "cathode", "material": "LCO", "thickness_um": 1.0}]}
    )
    path = tmp_path / "g1.h5"
    write_cell(path, meta, cycling={"test_time_second": t, "current_ampere": i, "voltage_volt": v})
    res = analyze_cell(path)
    assert res["cycling"]["n_cycles"] == 0
    assert "no complete cycle" in res["cycling"]["no_cycles_reason"]
    d = [r["diffusion_coefficient_cm2_per_s"] for r in res["transport"]["gitt"]]
    assert len(d) == 6 and np.allclose(d, D_TRUE, rtol=0.1)
    summary, _ = load_results(tmp_path / "g1.results.nc")
    assert summary["transport"]["gitt"][0]["diffusion_coefficient_cm2_per_s"] == d[0]
