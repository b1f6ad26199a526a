"""Voltage-capacity curves and dQ/dV."""

from __future__ import annotations

import numpy as np
import pytest

from cyclerflow.cycling import analyze_cycling, dqdv, voltage_curves

from .synth import make_cell


def test_voltage_curves_end_at_the_half_cycle_capacities():
    ds, tr, _ = make_cell(current_a=7e-9, n_cycles=4, jitter=0.3, drop_fraction=0.05)
    _, pc = analyze_cycling(ds)
    vc = voltage_curves(ds)
    assert vc["capacity_ah"].attrs["units"] == "A h"
    for half, col in (("charge", "charge_capacity_ah"), ("discharge", "discharge_capacity_ah")):
        sel = vc.where(vc["half"] == half, drop=True)
        last = sel["capacity_ah"].groupby(sel["cycle"]).max().values
        np.testing.assert_allclose(last, pc[col].values, rtol=1e-9)
        first = sel["capacity_ah"].groupby(sel["cycle"]).min().values
        assert np.all(first == 0.0)
    # only measured samples appear: every point is one of the input rows
    assert np.isin(vc["test_time_second"].values, ds["test_time_second"].values).all()


def test_voltage_curves_select_cycles():
    ds, _, _ = make_cell(current_a=1e-3, n_cycles=5)
    vc = voltage_curves(ds, [2, 4])
    assert sorted(set(vc["cycle"].values.tolist())) == [2, 4]


def test_dqdv_of_a_linear_profile_is_its_slope_and_skips_cv():
    ds, tr, _ = make_cell(current_a=5.0, n_cycles=2, cccv=True, ce=1.0)
    d = dqdv(ds)
    assert d["dqdv_ah_per_volt"].attrs["units"] == "A h V-1"
    ch = d.where((d["half"] == "charge") & (d["cycle"] == 1), drop=True)
    # CC charge: 80 % of the charge spread linearly over 3.6 -> 4.2 V
    expected = 0.8 * tr.charge_ah[0] / 0.6
    vals = ch["dqdv_ah_per_volt"].values
    exact = np.isclose(vals, expected, rtol=1e-6)
    # all but the points whose 5-point window straddles the CC -> CV kink
    assert exact.sum() >= len(vals) - 3 and exact[:-3].all()
    # CV hold at 4.2 V (dQ/dV undefined) is dropped, not invented
    assert ch.sizes["point"] <= 122  # 120 CC points (+ the kink), none of the 60 CV points
    dis = d.where((d["half"] == "discharge") & (d["cycle"] == 1), drop=True)
    np.testing.assert_allclose(dis["dqdv_ah_per_volt"].values, -tr.discharge_ah[0] / 1.1, rtol=1e-6)


def test_dqdv_smooths_noise():
    ds, tr, _ = make_cell(current_a=1e-6, n_cycles=1, cccv=False, points=2000, seed=2)
    v = ds["voltage_volt"].values.copy()
    v += np.random.default_rng(0).normal(0, 2e-4, len(v))
    noisy = ds.assign(voltage_volt=("sample", v))
    d = dqdv(noisy, window_fraction=0.05)
    ch = d.where(d["half"] == "charge", drop=True)
    expected = tr.charge_ah[0] / 0.6
    assert np.median(ch["dqdv_ah_per_volt"].values) == pytest.approx(expected, rel=0.02)
    assert np.percentile(np.abs(ch["dqdv_ah_per_volt"].values / expected - 1), 90) < 0.1
