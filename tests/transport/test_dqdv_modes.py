"""dQ/dV from CC steps only: no CV spike; peak positions, heights and drift recovered."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from cyclerflow.analysis import analyze_datasets

CAP_AS = 3600.0  # 1 Ah
R0 = 0.05
A_V, B_V, W = 0.5, -0.08, 0.2  # V = 3.6 + A q + B tanh((q - q0)/W), q in Ah: a plateau


def ocv(q_ah, q0):
    return 3.6 + A_V * q_ah + B_V * np.tanh((q_ah - q0) / W)


def peak_height(q0_unused=None):
    """max dQ/dV (Ah/V) of the OCV curve, at q0: 1 / (A + B/W)."""
    return 1.0 / (A_V + B_V / W)


def _cycle(t0, q0, amp=0.5, dt=5.0, cv_s=3600.0):
    """CC charge to 0.9 Ah, CV hold (current decays, voltage fixed), rest, CC discharge."""
    q_top = 0.9
    n = int(q_top * 3600 / amp / dt)
    tc = t0 + dt * np.arange(1, n + 1)
    qc = amp * (tc - t0) / 3600
    vc = ocv(qc, q0) + amp * R0
    tcv = tc[-1] + dt * np.arange(1, int(cv_s / dt) + 1)
    icv = amp * np.exp(-(tcv - tc[-1]) / 300.0)
    vcv = np.full(len(tcv), vc[-1])
    tr = tcv[-1] + 60.0 * np.arange(1, 11)
    q_dis = q_top + (icv.sum() * dt) / 3600
    td = tr[-1] + dt * np.arange(1, int(q_dis * 3600 / amp / dt) + 1)
    qd = q_dis - amp * (td - tr[-1]) / 3600
    vd = ocv(qd, q0) - amp * R0
    t = np.concatenate([tc, tcv, tr, td])
    i = np.concatenate([np.full(n, amp), icv, np.zeros(10), np.full(len(td), -amp)])
    v = np.concatenate([vc, vcv, np.full(10, vc[-1] - amp * R0), vd])
    return t, i, v


def _record(n=12, q0_start=0.4, q0_shift=0.005):
    parts, t0 = [], 0.0
    for k in range(n):
        t, i, v = _cycle(t0, q0_start + q0_shift * k)
        parts.append((t, i, v))
        t0 = t[-1] + 60.0
    t, i, v = (np.concatenate(x) for x in zip(*parts, strict=True))
    return xr.Dataset(
        {
            "test_time_second": ("sample", t),
            "current_ampere": ("sample", i),
            "voltage_volt": ("sample", v),
        }
    )


def test_dqdv_peaks_from_cc_only_and_their_drift():
    parts, _, _ = analyze_datasets(_record(), [])
    dq = parts["cycling"]["dqdv_peaks"]
    assert "constant-current" in dq["source"] and "Savitzky-Golay" in dq["smoothing"]
    first = dq["cycles"][0]["peaks"]
    assert len(first) == 1  # one stage; the CV hold adds no spike
    p = first[0]
    # discharge peak at V(q0) - I R0 = 3.6 + A q0 - I R0
    assert p["voltage_v"] == pytest.approx(3.6 + A_V * 0.4 - 0.5 * R0, abs=3e-3)
    assert p["height_ah_per_v"] == pytest.approx(peak_height(), rel=0.1)
    for row in dq["cycles"]:
        for pk in row["peaks"]:
            assert pk["height_ah_per_v"] < 1.2 * peak_height()
    (track,) = dq["tracks"]
    # the peak moves by A x 0.005 Ah = 2.5 mV per cycle
    assert track["voltage_drift_v_per_cycle"] == pytest.approx(A_V * 0.005, rel=0.15)
    assert track["cycles_found"] == len(dq["cycles"])
