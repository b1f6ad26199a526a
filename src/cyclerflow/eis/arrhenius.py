"""Arrhenius fit of conductivity against temperature.

Conventions (``convention=``):

- ``"sigma_T"`` (default): ln(sigma*T) = ln(A) - Ea/(k_B*T), the form for hopping ionic
  conduction (sigma*T = A*exp(-Ea/kT)); the usual one for solid electrolytes.
- ``"sigma"``: ln(sigma) = ln(A) - Ea/(k_B*T).

The two give Ea differing by about k_B*T (~0.03 eV near room temperature), so the
convention is always reported. The fit is linear least squares in 1/T, weighted by the
relative standard errors of sigma when given; Ea's standard error is the slope's.
"""

from __future__ import annotations

import numpy as np

from cyclerflow.errors import InputError

K_B_EV = 8.617333262e-5  # eV/K
T_25C = 298.15
CONVENTIONS = ("sigma_T", "sigma")


def arrhenius_fit(
    temperature_kelvin,
    conductivity,
    *,
    convention: str = "sigma_T",
    rel_stderr=None,
) -> dict:
    """Fit Ea (eV) and extrapolate sigma to 25 °C.

    ``conductivity`` in any unit (S/cm in cyclerflow); the 25 °C value comes back in the
    same unit. ``rel_stderr``: relative standard errors of the conductivities (weights).
    Returns ``activation_energy_ev``, ``activation_energy_stderr_ev``,
    ``conductivity_25c_s_per_cm``, ``ln_prefactor``, ``convention``, ``n_points``,
    ``temperature_range_kelvin``, ``weighted``.
    """
    if convention not in CONVENTIONS:
        raise InputError(f"unknown Arrhenius convention {convention!r} (use 'sigma_T' or 'sigma')")
    t = np.asarray(temperature_kelvin, dtype="f8").ravel()
    s = np.asarray(conductivity, dtype="f8").ravel()
    if t.shape != s.shape:
        raise InputError(f"{t.size} temperatures but {s.size} conductivities")
    good = np.isfinite(t) & np.isfinite(s) & (t > 0) & (s > 0)
    t, s = t[good], s[good]
    if np.unique(np.round(t, 3)).size < 2:
        raise InputError("an Arrhenius fit needs conductivities at two or more temperatures")
    x = 1.0 / t
    y = np.log(s * t) if convention == "sigma_T" else np.log(s)
    w = np.ones_like(x)
    weighted = False
    if rel_stderr is not None:
        rs = np.asarray(rel_stderr, dtype="f8").ravel()[good]
        if np.all(np.isfinite(rs) & (rs > 0)):
            w = 1.0 / rs**2
            weighted = True
    a = np.column_stack([np.ones_like(x), x])
    aw = a * np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(aw, y * np.sqrt(w), rcond=None)
    n = x.size
    slope_se = None
    if n > 2:
        resid = (y - a @ coef) * np.sqrt(w)
        s2 = float(resid @ resid) / (n - 2)
        cov = np.linalg.inv(aw.T @ aw) * s2
        slope_se = float(np.sqrt(cov[1, 1]))
    ea = -coef[1] * K_B_EV
    y25 = coef[0] + coef[1] / T_25C
    s25 = np.exp(y25) / T_25C if convention == "sigma_T" else np.exp(y25)
    return {
        "activation_energy_ev": float(ea),
        "activation_energy_stderr_ev": None if slope_se is None else slope_se * K_B_EV,
        "conductivity_25c_s_per_cm": float(s25),
        "ln_prefactor": float(coef[0]),
        "convention": convention,
        "n_points": int(n),
        "temperature_range_kelvin": [float(t.min()), float(t.max())],
        "weighted": weighted,
    }
