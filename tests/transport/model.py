"""Independent truth for the transport tests: a thin-film cathode with Fickian diffusion.

The film (thickness L, diffusion coefficient D) is fed by a uniform flux at its surface
and blocked at its back. For a unit current switched on at t = 0 the surface state of
charge rises by G(t) / Q (Q the film's charge capacity in A s), with (Crank, The
Mathematics of Diffusion, slab with constant surface flux)

    G(t) = L^2/D [ D t / L^2 + 1/3 - 2/pi^2 sum_n exp(-n^2 pi^2 D t / L^2) / n^2 ]

and, at short times, the equivalent image series
    G(t) = 2 L sqrt(t/D) [ 1/sqrt(pi) + 2 sum_n ierfc(n L / sqrt(D t)) ].

Any current history is a superposition of steps. The cell voltage is
U(surface SOC) + I R_ohm with a smooth OCV U.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.special import erfc


def ierfc(x: np.ndarray) -> np.ndarray:
    return np.exp(-x * x) / np.sqrt(np.pi) - x * erfc(x)


def g_unit(t: np.ndarray, d_cm2_s: float, l_cm: float) -> np.ndarray:
    """G(t) in s (0 for t <= 0)."""
    t = np.asarray(t, "f8")
    out = np.zeros_like(t)
    tau = d_cm2_s * np.clip(t, 0, None) / l_cm**2
    short = (t > 0) & (tau < 0.5)
    if short.any():
        x = 1.0 / np.sqrt(tau[short])
        ser = sum(ierfc(n * x) for n in range(1, 8))
        out[short] = 2 * l_cm * np.sqrt(t[short] / d_cm2_s) * (1 / np.sqrt(np.pi) + 2 * ser)
    long_ = tau >= 0.5
    if long_.any():
        n = np.arange(1, 40)[:, None]
        ser = (np.exp(-(n**2) * np.pi**2 * tau[long_]) / n**2).sum(axis=0)
        out[long_] = l_cm**2 / d_cm2_s * (tau[long_] + 1 / 3 - 2 / np.pi**2 * ser)
    return out


def ocv(soc: np.ndarray) -> np.ndarray:
    """A smooth, rising OCV (V) of the cell's state of charge."""
    soc = np.asarray(soc, "f8")
    return 3.7 + 0.5 * soc + 0.03 * np.sin(2 * np.pi * soc)


def schedule(steps: list[tuple[float, float, float]]) -> tuple[np.ndarray, np.ndarray, list]:
    """(duration s, current A, sample interval s) per step -> sample times, currents,
    switch list [(time, current after)]. Samples at step start + k dt, the last one at the
    step end; the current is switched right after the last sample of the previous step."""
    times, cur, switches, t0 = [], [], [], 0.0
    for dur, amp, dt in steps:
        n = max(1, int(round(dur / dt)))
        tt = t0 + np.linspace(dur / n, dur, n)
        times.append(tt)
        cur.append(np.full(n, amp))
        switches.append((t0, amp))
        t0 += dur
    return np.concatenate(times), np.concatenate(cur), switches


def film_voltage(t, switches, *, d, l_cm, q_as, soc0, r_ohm) -> np.ndarray:
    """Cell voltage (V) at times t for a piecewise-constant current (switch list)."""
    soc_s = np.full(len(t), soc0, "f8")
    prev = 0.0
    for ts, amp in switches:
        di = amp - prev
        prev = amp
        if di:
            soc_s += di / q_as * g_unit(t - ts, d, l_cm)
    amps = np.zeros(len(t))
    for ts, amp in switches:
        amps[t > ts] = amp
    return ocv(soc_s) + amps * r_ohm


def dataset(t, i, v) -> xr.Dataset:
    return xr.Dataset(
        {
            "test_time_second": ("sample", t),
            "current_ampere": ("sample", i),
            "voltage_volt": ("sample", v),
        }
    )
