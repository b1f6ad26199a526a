"""Synthetic cells with known answers, for the demo, tests and benchmarks.

``galvanostatic_cycles`` builds a CC(-CV) cycling record of a cell of given capacity
with an exact, known charge per half-cycle; ``rc_spectrum`` the impedance of an
R-(R||CPE)-CPE network. Both are pure numpy.
"""

from __future__ import annotations

import numpy as np


def ocv_licoo2(soc: np.ndarray) -> np.ndarray:
    """A smooth LiCoO2-like open-circuit voltage (V) vs state of charge (0..1)."""
    soc = np.clip(soc, 1e-6, 1 - 1e-6)
    return 3.9 + 0.25 * (soc - 0.5) + 0.05 * np.log(soc / (1 - soc)) * 0.4


def galvanostatic_cycles(
    *,
    n_cycles: int = 10,
    capacity_ah: float = 15e-6,
    current_a: float = 7.5e-6,
    fade_per_cycle: float = 5e-5,
    coulombic_efficiency: float = 0.9995,
    resistance_ohm: float = 200.0,
    points_per_half: int = 200,
    rest_s: float = 60.0,
    start_with: str = "charge",
    t0_unix: float = 1.7e9,
    with_cycle_count: bool = True,
) -> dict[str, np.ndarray]:
    """A CC charge / rest / CC discharge / rest record with exact charges.

    Charge capacity of cycle k (1-based) = capacity_ah*(1-fade)^(k-1); discharge =
    charge x coulombic_efficiency. Current is constant within a half-cycle so the
    trapezoid integral is exact. Returns BDF columns.
    """
    t_all, v_all, i_all, c_all, s_all = [], [], [], [], []
    t = 0.0
    step = 0
    halves = ("charge", "discharge") if start_with == "charge" else ("discharge", "charge")
    for k in range(1, n_cycles + 1):
        q_chg = capacity_ah * (1 - fade_per_cycle) ** (k - 1)
        for half in halves:
            q = q_chg if half == "charge" else q_chg * coulombic_efficiency
            sign = 1.0 if half == "charge" else -1.0
            dur = q * 3600.0 / current_a
            tt = t + np.linspace(0.0, dur, points_per_half)
            frac = np.linspace(0, 1, points_per_half)
            soc = frac if half == "charge" else 1 - frac
            v = ocv_licoo2(0.02 + 0.96 * soc) + sign * current_a * resistance_ohm
            step += 1
            t_all.append(tt)
            v_all.append(v)
            i_all.append(np.full(points_per_half, sign * current_a))
            c_all.append(np.full(points_per_half, k))
            s_all.append(np.full(points_per_half, step))
            t = tt[-1] + 1.0
            # rest
            tr = t + np.linspace(0.0, rest_s, 10)
            step += 1
            t_all.append(tr)
            v_all.append(np.full(10, v[-1] - sign * current_a * resistance_ohm))
            i_all.append(np.zeros(10))
            c_all.append(np.full(10, k))
            s_all.append(np.full(10, step))
            t = tr[-1] + 1.0
    out = {
        "test_time_second": np.concatenate(t_all),
        "voltage_volt": np.concatenate(v_all),
        "current_ampere": np.concatenate(i_all),
        "step_count": np.concatenate(s_all),
    }
    out["unix_time_second"] = out["test_time_second"] + t0_unix
    if with_cycle_count:
        out["cycle_count"] = np.concatenate(c_all)
    return out


def rc_spectrum(
    frequency_hertz: np.ndarray,
    *,
    r_lead_ohm: float = 0.0,
    r_bulk_ohm: float = 1e4,
    q_bulk: float = 1e-10,
    n_bulk: float = 0.9,
    q_electrode: float = 1e-6,
    n_electrode: float = 0.85,
) -> np.ndarray:
    """Complex impedance (Ohm) of R_lead - (R_bulk || CPE_bulk) - CPE_electrode."""
    w = 2 * np.pi * np.asarray(frequency_hertz, dtype="f8")
    z_cpe_b = 1.0 / (q_bulk * (1j * w) ** n_bulk)
    z_arc = 1.0 / (1.0 / r_bulk_ohm + 1.0 / z_cpe_b)
    z_el = 1.0 / (q_electrode * (1j * w) ** n_electrode)
    return r_lead_ohm + z_arc + z_el


def lipon_stack() -> list[dict]:
    """Layer stack (metadata ``layers``, lab units) of the usual thin-film test cell:
    Pt | LiCoO2 1 µm (4.8 g/cm³) | LiPON 1 µm | Li 3 µm, bottom to top."""
    return [
        {"role": "current_collector", "material": "Pt", "thickness_um": 0.2},
        {
            "role": "cathode",
            "material": "LiCoO2",
            "thickness_um": 1.0,
            "density_g_cm3": 4.8,
            "deposition": "RF sputtering",
            "anneal_c": 700,
        },
        {
            "role": "electrolyte",
            "material": "LiPON",
            "thickness_um": 1.0,
            "deposition": "RF sputtering in N2",
        },
        {
            "role": "anode",
            "material": "Li",
            "thickness_um": 3.0,
            "deposition": "thermal evaporation",
        },
    ]
