"""Synthetic spectra with known answers for the EIS tests (generated, not fitted)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from cyclerflow.eis import parse_circuit
from cyclerflow.synthetic import rc_spectrum

K_B = 8.617333262e-5
EPS0_F_PER_CM = 8.854e-14


def noisy(z: np.ndarray, rel: float, rng: np.random.Generator) -> np.ndarray:
    """Add complex Gaussian noise of ``rel`` x |Z| to each component."""
    return z + rel * np.abs(z) * (rng.normal(size=z.size) + 1j * rng.normal(size=z.size))


def lipon_sigma(t_kelvin: float, s25: float = 2.3e-6, ea: float = 0.55) -> float:
    """sigma (S/cm) with sigma*T Arrhenius through s25 at 298.15 K."""
    st = s25 * 298.15 * np.exp(-ea / K_B * (1 / t_kelvin - 1 / 298.15))
    return st / t_kelvin


def lipon_spectrum(f, t_kelvin, area_cm2, rng, *, thickness_cm=1e-4, lead=1.0, noise=0.005):
    """Blocking-electrode LiPON film: returns (true R_bulk, noisy Z)."""
    rb = thickness_cm / (lipon_sigma(t_kelvin) * area_cm2)
    cb = EPS0_F_PER_CM * 20 * area_cm2 / thickness_cm
    z = rc_spectrum(
        f,
        r_lead_ohm=lead,
        r_bulk_ohm=rb,
        q_bulk=(rb * cb) ** 0.92 / rb,
        n_bulk=0.92,
        q_electrode=5e-6 * area_cm2,
        n_electrode=0.88,
    )
    return rb, noisy(z, noise, rng)


CELL = "R0-p(R1,CPE1)-p(R2,CPE2)-CPE3"


def cell_spectrum(f, r_int, rng, *, noise=0.005, r_bulk=174.0):
    """Full thin-film cell (0.25 cm²): electrolyte arc + interface arc + diffusion tail."""
    cb, cdl = 3.3e-9, 2.5e-6
    p = [
        2.0,
        r_bulk,
        (r_bulk * cb) ** 0.93 / r_bulk,
        0.93,
        r_int,
        (r_int * cdl) ** 0.8 / r_int,
        0.8,
        1e-4,
        0.6,
    ]
    return np.array(p), noisy(parse_circuit(CELL).impedance(p, f), noise, rng)


def as_dataset(f, z, **attrs) -> xr.Dataset:
    base = {
        "spectrum_id": 1,
        "temperature_kelvin": np.nan,
        "cycle_count": -1,
        "unix_time_second": 0.0,
    }
    base.update(attrs)
    return xr.Dataset(
        {
            "real_impedance_ohm": ("frequency_hertz", z.real),
            "imaginary_impedance_ohm": ("frequency_hertz", z.imag),
        },
        coords={"frequency_hertz": f},
        attrs=base,
    )


# --- a polycrystalline pellet between blocking electrodes (bulk + grain boundary) ---------

PELLET_AREA_CM2 = np.pi * 0.4**2  # 0.8 cm diameter
PELLET_THICKNESS_CM = 0.21  # 2.1 mm
PELLET = "R0-p(R1,CPE1)-p(R2,CPE2)-CPE3"
F_PELLET = np.logspace(6, -2, 81)  # 1 MHz .. 10 mHz, 10 points/decade


def pellet_truth(t_kelvin: float, *, ea_bulk=0.55, ea_gb=0.85, n_gb_per_kelvin=0.0) -> dict:
    """True element values of the pellet at ``t_kelvin``.

    sigma*T Arrhenius for bulk and grain boundary (R proportional to T exp(Ea/kT));
    bulk eps_r = 40 (C = 8.5 pF for l/A = 0.418 cm^-1), bulk peak at 2 MHz at 200 °C
    (leaves the 1 MHz window above ~170 °C), grain boundary C = 1 nF with its peak 100x
    below the bulk's at 200 °C. ``n_gb_per_kelvin``: the grain-boundary exponent's
    drift (0.85 at 140 °C; the published pellet's rises ~0.0018 per K), capped at 0.99.
    """
    t_ref = 473.15
    c_b = 40 * EPS0_F_PER_CM * PELLET_AREA_CM2 / PELLET_THICKNESS_CM
    r_b_ref = 1.0 / (2 * np.pi * 2e6 * c_b)
    c_gb = 1e-9
    r_gb_ref = 1.0 / (2 * np.pi * 2e4 * c_gb)

    def scale(ea):
        return (t_kelvin / t_ref) * np.exp(ea / K_B * (1 / t_kelvin - 1 / t_ref))

    r_b, r_gb = r_b_ref * scale(ea_bulk), r_gb_ref * scale(ea_gb)
    n_b, n_gb = 0.95, min(0.85 + n_gb_per_kelvin * (t_kelvin - 413.15), 0.99)
    return {
        "R0": 2.0,
        "R1": r_b,
        "CPE1_0": c_b**n_b * r_b ** (n_b - 1),
        "CPE1_1": n_b,
        "R2": r_gb,
        "CPE2_0": c_gb**n_gb * r_gb ** (n_gb - 1),
        "CPE2_1": n_gb,
        "CPE3_0": 2e-6 * PELLET_AREA_CM2,
        "CPE3_1": 0.85,
        "c_bulk": c_b,
        "c_gb": c_gb,
    }


def pellet_series(temps_c, rng, noise=0.005, f=F_PELLET, **truth_kw):
    """[(T kelvin, truth dict, noisy Z)] of the pellet over ``temps_c`` (°C); ``truth_kw``
    go to :func:`pellet_truth`."""
    c = parse_circuit(PELLET)
    out = []
    for tc in temps_c:
        t = tc + 273.15
        truth = pellet_truth(t, **truth_kw)
        z = c.impedance([truth[n] for n in c.param_names], f)
        out.append((t, truth, noisy(z, noise, rng)))
    return out


def pellet_metadata(**extra) -> dict:
    """Metadata of the pellet: electrolyte between gold current collectors, nothing else."""
    return {
        "cell_id": "pellet",
        "active_area_cm2": PELLET_AREA_CM2,
        "layers": [
            {"role": "current_collector", "material": "Au", "thickness_um": 0.1},
            {"role": "electrolyte", "material": "LATP", "thickness_um": PELLET_THICKNESS_CM * 1e4},
            {"role": "current_collector", "material": "Au", "thickness_um": 0.1},
        ],
        **extra,
    }
