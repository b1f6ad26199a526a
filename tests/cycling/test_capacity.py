"""Capacities, energies, CE and retention against synthetic cells with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cyclerflow.cycling import analyze_cycling
from cyclerflow.schema import parse_metadata

from .synth import make_cell

SCALES = [(7e-9, "7 nA microcell"), (5.0, "5 A cell")]


def _rel(a, b):
    return np.max(np.abs(np.asarray(a) / np.asarray(b) - 1.0))


@pytest.mark.parametrize(("current", "label"), SCALES)
@pytest.mark.parametrize("with_steps", [False, True])
@pytest.mark.parametrize("with_cycle_count", [False, True])
def test_noise_free_exact(current, label, with_steps, with_cycle_count):
    ds, tr, _ = make_cell(
        current_a=current,
        n_cycles=6,
        jitter=0.4,
        drop_fraction=0.05,
        with_steps=with_steps,
        with_cycle_count=with_cycle_count,
        seed=3,
    )
    s, pc = analyze_cycling(ds)
    assert s["first_half"] == "charge"
    assert pc["cycle"].values.tolist() == tr.cycle.tolist()
    assert _rel(pc["charge_capacity_ah"], tr.charge_ah) < 1e-6, label
    assert _rel(pc["discharge_capacity_ah"], tr.discharge_ah) < 1e-6, label
    assert _rel(pc["charge_energy_wh"], tr.charge_wh) < 1e-6, label
    assert _rel(pc["discharge_energy_wh"], tr.discharge_wh) < 1e-6, label
    assert _rel(pc["coulombic_efficiency"], tr.discharge_ah / tr.charge_ah) < 1e-6
    assert _rel(pc["capacity_retention"], tr.discharge_ah / tr.discharge_ah[0]) < 1e-6
    assert s["reference_cycle"] == 1
    assert s["first_cycle_irreversible_ah"] == pytest.approx(
        tr.charge_ah[0] - tr.discharge_ah[0], rel=1e-5
    )
    assert s["dropped_samples"] > 0
    json.dumps(s, allow_nan=False)


def test_same_answer_at_both_scales():
    """Identical protocol at 7 nA and 5 A: identical relative results."""
    a, _, _ = make_cell(current_a=7e-9, n_cycles=4, jitter=0.3, seed=1)
    b, _, _ = make_cell(current_a=5.0, n_cycles=4, jitter=0.3, seed=1)
    sa, pa = analyze_cycling(a)
    sb, pb = analyze_cycling(b)
    np.testing.assert_allclose(
        pa["discharge_capacity_ah"] / 7e-9, pb["discharge_capacity_ah"] / 5.0, rtol=1e-9
    )
    np.testing.assert_allclose(pa["coulombic_efficiency"], pb["coulombic_efficiency"], rtol=1e-9)
    assert sa["rest_threshold_a"] / 7e-9 == pytest.approx(sb["rest_threshold_a"] / 5.0)


@pytest.mark.parametrize(("current", "label"), SCALES)
def test_noisy_within_noise_bound(current, label):
    noise = 2e-4
    ds, tr, info = make_cell(
        current_a=current, n_cycles=5, jitter=0.3, noise_rel=noise, drop_fraction=0.03, seed=7
    )
    s, pc = analyze_cycling(ds)
    # trapezoid error of iid noise sigma: std <= sigma * sqrt(sum dt^2); one half-cycle has
    # at most ~200 intervals of at most 1.4x the nominal step -> generous 6-sigma bound
    t = info["t"]
    dt_max = np.max(np.diff(t[np.isfinite(t)]))
    bound_as = 6 * info["sigma_a"] * dt_max * np.sqrt(400)
    bound_rel = bound_as / 3600.0 / tr.discharge_ah.min()
    assert bound_rel < 1e-2  # the bound itself is meaningful
    assert _rel(pc["charge_capacity_ah"], tr.charge_ah) < bound_rel, label
    assert _rel(pc["discharge_capacity_ah"], tr.discharge_ah) < bound_rel, label
    assert _rel(pc["coulombic_efficiency"], tr.discharge_ah / tr.charge_ah) < 2 * bound_rel


def test_discharge_first_detected_and_ce_convention():
    ds, tr, _ = make_cell(current_a=1e-6, n_cycles=4, start="discharge", with_cycle_count=False)
    s, pc = analyze_cycling(ds)
    assert s["first_half"] == "discharge" and s["first_half_detected"] == "discharge"
    assert "charge / discharge" in s["ce_convention"]
    np.testing.assert_allclose(
        pc["coulombic_efficiency"], tr.charge_ah / tr.discharge_ah, rtol=1e-9
    )
    np.testing.assert_allclose(
        s["first_cycle_irreversible_ah"], tr.discharge_ah[0] - tr.charge_ah[0], rtol=1e-6
    )


def test_first_half_override_repairs_cycles():
    """Cells that start with discharge, analysed as charge-first: D | C D | C D ..."""
    ds, tr, _ = make_cell(current_a=1e-6, n_cycles=4, start="discharge")
    s, pc = analyze_cycling(ds, first_half="charge")
    assert s["first_half"] == "charge" and s["first_half_detected"] == "discharge"
    assert s["cycle_source"].startswith("current")
    assert any("cycle_count ignored" in n for n in s["notes"])
    cyc = s["cycles"]
    assert cyc[0]["cycle"] == 0 and cyc[0]["complete"] is False
    assert cyc[0]["coulombic_efficiency"] is None
    # cycle 1 = charge of input cycle 1 + discharge of input cycle 2
    assert pc["charge_capacity_ah"].sel(cycle=1) == pytest.approx(tr.charge_ah[0], rel=1e-9)
    assert pc["discharge_capacity_ah"].sel(cycle=1) == pytest.approx(tr.discharge_ah[1], rel=1e-9)
    assert cyc[-1]["complete"] is False  # last charge has no discharge after it


def test_reference_cycle_and_retention():
    ds, tr, _ = make_cell(current_a=2e-3, n_cycles=8, fade_per_cycle=0.01)
    s, pc = analyze_cycling(ds, reference_cycle=3)
    assert s["reference_cycle"] == 3
    np.testing.assert_allclose(
        pc["capacity_retention"], tr.discharge_ah / tr.discharge_ah[2], rtol=1e-9
    )
    assert s["fade_rate_per_cycle"] == pytest.approx(0.01 / (1 - 0.02), rel=1e-6)
    assert pc.attrs["reference_cycle"] == 3


def test_normalised_capacities(lipon_metadata):
    meta = parse_metadata(lipon_metadata)
    ds, tr, _ = make_cell(current_a=7e-9, n_cycles=3)
    s, _ = analyze_cycling(ds, meta)
    c = s["cycles"][0]
    uah = tr.discharge_ah[0] * 1e6
    assert c["discharge_capacity_uah_per_cm2"] == pytest.approx(uah / 0.0035, rel=1e-9)
    assert c["discharge_capacity_uah_per_cm2_um"] == pytest.approx(uah / 0.0035 / 1.0, rel=1e-9)
    grams = 4.8 * 1e-4 * 0.0035  # density x 1 µm x area
    assert c["discharge_capacity_mah_per_g"] == pytest.approx(
        tr.discharge_ah[0] * 1e3 / grams, rel=1e-9
    )


def test_missing_area_gives_nulls_with_a_note(lipon_metadata):
    md = dict(lipon_metadata)
    md.pop("active_area_cm2")
    meta = parse_metadata(md)
    ds, _, _ = make_cell(current_a=7e-9, n_cycles=3)
    s, pc = analyze_cycling(ds, meta)
    c = s["cycles"][0]
    assert c["discharge_capacity_uah_per_cm2"] is None
    assert c["discharge_capacity_uah_per_cm2_um"] is None
    assert c["discharge_capacity_mah_per_g"] is None  # density needs the area
    assert any("active_area_cm2" in n for n in s["notes"])
    assert np.isnan(pc["discharge_capacity_uah_per_cm2"]).all()
    s2, _ = analyze_cycling(ds, None)
    assert s2["cycles"][0]["discharge_capacity_uah_per_cm2"] is None
