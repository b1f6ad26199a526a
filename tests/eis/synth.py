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
