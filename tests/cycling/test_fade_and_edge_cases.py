"""Fade fit, cut-short cycles, EIS interruptions and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from cyclerflow.cycling import analyze_cycling
from cyclerflow.errors import InputError

from .synth import make_cell


def test_fade_10000_cycles_within_2_percent():
    f = 5e-5  # 0.005 %/cycle
    ds, tr, _ = make_cell(
        current_a=7e-9, n_cycles=10_000, fade_per_cycle=f, points=8, noise_rel=2e-3, seed=11
    )
    s, pc = analyze_cycling(ds)
    assert s["n_complete_cycles"] == 10_000
    assert s["fade_rate_per_cycle"] == pytest.approx(f, rel=0.02)
    assert s["fade_window"] == [1, 10_000]
    # retention reaches 0.8 after (1 - 0.8) / f = 4000 cycles
    assert abs(s["cycles_to_80_percent"] - 4001) <= 40  # noise: ~1e-3 in retention = 20 cycles
    assert s["cycles_to_80_percent_extrapolated"] == pytest.approx(4001, rel=0.02)


def test_fade_fit_is_robust_to_outlier_cycles():
    f = 1e-3
    ds, tr, _ = make_cell(current_a=1e-6, n_cycles=60, fade_per_cycle=f, points=20)
    s0, _ = analyze_cycling(ds)
    assert s0["fade_rate_per_cycle"] == pytest.approx(f / 0.999 * 0.999, rel=1e-6)
    # three cycles with 5 % too much current on discharge (e.g. temperature excursion)
    cc = ds["cycle_count"].values
    i = ds["current_ampere"].values.copy()
    bad = np.isin(cc, [10, 30, 50]) & (i < 0)
    i[bad] *= 1.05
    s1, _ = analyze_cycling(ds.assign(current_ampere=("sample", i)))
    assert s1["fade_rate_per_cycle"] == pytest.approx(f, rel=0.02)


def test_fade_window_is_applied_and_stated():
    ds, _, _ = make_cell(current_a=1e-3, n_cycles=20, fade_per_cycle=2e-3, points=20)
    s, _ = analyze_cycling(ds, fade_window=(5, 15))
    assert s["fade_window"] == [5, 15] and s["fade_n_cycles"] == 11
    assert s["fade_rate_per_cycle"] == pytest.approx(2e-3 / 1.0, rel=1e-6)


@pytest.mark.parametrize("with_cycle_count", [True, False])
def test_cycle_cut_short_is_incomplete_not_a_capacity_drop(with_cycle_count):
    ds, tr, _ = make_cell(
        current_a=5.0,
        n_cycles=12,
        fade_per_cycle=1e-3,
        cut_short={"cycle": 6, "fraction": 0.4},
        with_cycle_count=with_cycle_count,
    )
    s, pc = analyze_cycling(ds)
    c6 = next(c for c in s["cycles"] if c["cycle"] == 6)
    assert c6["complete"] is False
    assert c6["incomplete_reason"] == "cut_short"
    assert "short of the usual end voltage" in c6["incomplete_detail"]
    assert c6["capacity_retention"] is None and c6["coulombic_efficiency"] is None
    assert c6["discharge_capacity_ah"] == pytest.approx(tr.discharge_ah[5], rel=1e-9)
    assert tr.discharge_ah[5] == pytest.approx(0.4 * tr.discharge_ah[4], rel=0.01)
    assert [c["cycle"] for c in s["incomplete_cycles"]] == [6]
    assert s["fade_rate_per_cycle"] == pytest.approx(1e-3, rel=1e-6)
    assert s["fade_n_cycles"] == 11


def test_record_ending_mid_discharge_is_incomplete():
    ds, tr, _ = make_cell(current_a=1e-6, n_cycles=6, cut_short={"cycle": 6, "fraction": 0.5})
    s, _ = analyze_cycling(ds)
    assert s["cycles"][-1]["complete"] is False
    assert s["cycles"][-1]["incomplete_reason"] == "end_of_record"
    assert s["n_complete_cycles"] == 5


def test_safety_stop_event_marks_the_cycle():
    # stopped at 97 %: the end voltage alone is within tolerance, the event tells
    ds, tr, info = make_cell(current_a=1e-6, n_cycles=8, cut_short={"cycle": 4, "fraction": 0.97})
    s0, _ = analyze_cycling(ds)
    assert s0["n_complete_cycles"] == 8
    t = ds["test_time_second"].values
    cc = ds["cycle_count"].values
    i = ds["current_ampere"].values
    t_stop = t[np.flatnonzero((cc == 4) & (i < 0))[-1]]
    events = [{"kind": "safety_stop", "test_time_second": t_stop, "message": "V<min"}]
    s, _ = analyze_cycling(ds, events=events)
    c4 = next(c for c in s["cycles"] if c["cycle"] == 4)
    assert c4["complete"] is False and c4["incomplete_reason"] == "safety_stop"


@pytest.mark.parametrize("with_steps", [False, True])
def test_eis_interruption_in_rest_changes_nothing(with_steps):
    ds, tr, _ = make_cell(current_a=1e-6, n_cycles=4, with_steps=with_steps, with_cycle_count=False)
    t = ds["test_time_second"].values
    i = ds["current_ampere"].values.copy()
    # the 30-sample rests: put a galvanostatic EIS burst (±20 % of I) into each rest
    rest = np.flatnonzero(i == 0)
    burst = rest[(np.arange(len(rest)) % 30 >= 5) & (np.arange(len(rest)) % 30 <= 24)]
    i[burst] = 0.2e-6 * np.sin(np.arange(len(burst)) * 2.1)
    s, pc = analyze_cycling(ds.assign(current_ampere=("sample", i)))
    assert s["n_cycles"] == 4 and s["n_complete_cycles"] == 4
    np.testing.assert_allclose(pc["charge_capacity_ah"], tr.charge_ah, rtol=1e-3)
    np.testing.assert_allclose(pc["discharge_capacity_ah"], tr.discharge_ah, rtol=1e-3)
    assert t.size == i.size


def _ds(t, i, v=None):
    v = np.full(len(t), 3.7) if v is None else v
    return xr.Dataset(
        {
            "test_time_second": ("sample", np.asarray(t, "f8")),
            "current_ampere": ("sample", np.asarray(i, "f8")),
            "voltage_volt": ("sample", np.asarray(v, "f8")),
        },
        attrs={"source": "cell.h5"},
    )


def test_constant_zero_current_is_a_clear_error():
    with pytest.raises(InputError, match=r"cell.h5: no complete cycle found \(the current is zero"):
        analyze_cycling(_ds(np.arange(100.0), np.zeros(100)))


def test_no_complete_cycle_is_a_clear_error():
    t = np.arange(200.0)
    with pytest.raises(InputError, match="no complete cycle found.*no discharge half-cycle"):
        analyze_cycling(_ds(t, np.full(200, 1e-6)))


def test_empty_and_missing_columns():
    with pytest.raises(InputError, match="no complete cycle found"):
        analyze_cycling(_ds([], []))
    with pytest.raises(InputError, match="lacks column"):
        analyze_cycling(_ds([0.0, 1.0], [1.0, 1.0]).drop_vars("voltage_volt"))


def test_time_going_backwards_is_named():
    with pytest.raises(InputError, match="goes backwards at usable sample 2"):
        analyze_cycling(_ds([0.0, 1.0, 0.5, 2.0], [1.0, 1.0, -1.0, -1.0]))


def test_reference_cycle_must_be_complete():
    ds, _, _ = make_cell(current_a=1e-6, n_cycles=3)
    with pytest.raises(
        InputError, match=r"reference cycle 7 is not a complete cycle \(complete cycles: 1-3\)"
    ):
        analyze_cycling(ds, reference_cycle=7)
    with pytest.raises(InputError, match="first_half must be"):
        analyze_cycling(ds, first_half="up")


def test_pure_noise_record_is_not_cycling():
    """An OCV record (current = instrument noise around zero) has no cycles, at any scale."""
    rng = np.random.default_rng(0)
    for sigma in (1e-12, 1e-3):
        t = np.arange(5000.0)
        with pytest.raises(InputError, match="no complete cycle found.*current noise"):
            analyze_cycling(_ds(t, rng.normal(0.0, sigma, len(t))))


def test_single_complete_cycle_has_no_fade():
    t = np.arange(200.0)
    i = np.r_[np.full(100, 1e-3), np.full(100, -1e-3)]
    v = np.r_[np.linspace(3.5, 4.2, 100), np.linspace(4.1, 3.0, 100)]
    s, _ = analyze_cycling(_ds(t, i, v))
    assert s["n_complete_cycles"] == 1
    assert s["fade_rate_per_cycle"] is None and s["cycles_to_80_percent"] is None
    assert s["ce_n"] == 1 and s["ce_std"] is None
    assert s["cycles"][0]["charge_capacity_ah"] == pytest.approx(99e-3 / 3600, rel=1e-12)
