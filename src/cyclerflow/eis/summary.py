"""From per-spectrum fits to the ``eis`` JSON: rows, Arrhenius fits, interface growth."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cyclerflow.eis.arrhenius import arrhenius_fit
from cyclerflow.eis.result import SpectrumFit
from cyclerflow.errors import InputError

#: a fallback estimate enters the Arrhenius fit when its relative uncertainty is at most
#: this many times the median relative standard error of the resolved fits
COMPARABLE = 3.0


@dataclass(frozen=True)
class FitError:
    """A spectrum that could not be fitted (bad input), with the reason."""

    message: str


@dataclass(frozen=True)
class Geometry:
    """Electrolyte thickness (m) and area (m²) when known, else the reason why not."""

    thickness_m: float | None
    area_m2: float | None
    reason: str | None


def clean(v: Any) -> Any:
    """JSON-safe scalar: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (np.floating, np.integer)):
        return clean(v.item())
    return v


def conductivity_s_per_cm(
    resistance_ohm: float | None, thickness_m: float | None, area_m2: float | None
) -> float:
    """sigma = L / (R * A), in S/cm. Raises :class:`InputError` naming what is missing."""
    missing = [
        n for n, v in (("electrolyte thickness", thickness_m), ("active area", area_m2)) if not v
    ]
    if missing:
        raise InputError(f"conductivity needs the {' and '.join(missing)} in the cell metadata")
    if resistance_ohm is None or not resistance_ohm > 0:
        raise InputError("conductivity needs a positive resistance")
    return thickness_m / (resistance_ohm * area_m2) / 100.0


ERROR_ROW = {
    "circuit": None,
    "model": None,
    "model_selection": None,
    "method": None,
    "r_bulk_ohm": None,
    "r_interface_ohm": None,
    "r_interface_ohm_cm2": None,
    "conductivity_s_per_cm": None,
    "fit_ok": False,
    "chi2": None,
    "kk_residual_max": None,
    "r_bulk_stderr_ohm": None,
    "f_bulk_hertz": None,
    "role_evidence": None,
    "params": {},
    "fixed": [],
    "in_arrhenius": False,
}


def row_of(info: dict, r: SpectrumFit | FitError, geo: Geometry, has_gb: bool) -> dict:
    """One entry of ``eis.spectra`` (DESIGN.md keys plus extras)."""
    row: dict[str, Any] = {
        "spectrum_id": info["spectrum_id"],
        "cycle": info["cycle"] if info["cycle"] >= 0 else None,
        "temperature_kelvin": clean(info["temperature_kelvin"]),
    }
    if isinstance(r, FitError):
        row.update(ERROR_ROW, message=r.message, flags=["input_error"])
        if has_gb:
            row.update(r_grain_boundary_ohm=None, conductivity_total_s_per_cm=None)
        return row
    L, A = geo.thickness_m, geo.area_m2
    rb, ri = r.r_bulk_ohm, r.r_interface_ohm
    row.update(
        circuit=r.circuit,
        model=r.model,
        model_selection=r.model_selection,
        method=r.method,
        r_bulk_ohm=clean(rb),
        r_interface_ohm=clean(ri),
        r_interface_ohm_cm2=clean(ri * A * 1e4) if ri is not None and A else None,
        conductivity_s_per_cm=clean(conductivity_s_per_cm(rb, L, A)) if rb and L and A else None,
        fit_ok=bool(r.fit_ok),
        chi2=clean(r.chi2),
        kk_residual_max=clean(r.kk_residual_max),
        r_bulk_stderr_ohm=clean(r.r_bulk_stderr_ohm),
        f_bulk_hertz=clean(r.f_bulk_hertz),
        role_evidence=None if r.role_evidence is None else r.role_evidence.to_dict(),
        params={k: clean(v) for k, v in r.params.items()},
        fixed=list(r.fixed),
        in_arrhenius=False,
        message=r.message,
        flags=list(r.flags),
    )
    if has_gb:
        rg = r.r_grain_boundary_ohm
        total = rb + rg if rb is not None and rg is not None else None
        row["r_grain_boundary_ohm"] = clean(rg)
        row["conductivity_total_s_per_cm"] = (
            clean(conductivity_s_per_cm(total, L, A)) if total and L and A else None
        )
    return row


def bulk_points(rows: list[dict], methods: tuple[str, ...]) -> list[tuple[float, float, float]]:
    """(T, R_bulk, relative stderr) for the bulk Arrhenius fit; marks ``in_arrhenius``.

    Resolved fits (``methods``) always enter; a fallback estimate enters when its
    relative uncertainty is within :data:`COMPARABLE` x the median of theirs. With no
    resolved fit at all (a fast conductor whose bulk arc is above the window at every
    temperature), every fallback with an uncertainty enters, weighted by it.
    """
    usable = [
        r
        for r in rows
        if r["fit_ok"] and r["temperature_kelvin"] is not None and r["r_bulk_ohm"] is not None
    ]
    base = [r for r in usable if r["method"] in methods]
    rels = [r["r_bulk_stderr_ohm"] / r["r_bulk_ohm"] for r in base if r["r_bulk_stderr_ohm"]]
    limit = COMPARABLE * float(np.median(rels)) if rels else None
    if not base:
        limit = np.inf
    pts = []
    for r in usable:
        se = r["r_bulk_stderr_ohm"]
        rel = se / r["r_bulk_ohm"] if se else np.nan
        take = r["method"] in methods or (limit is not None and np.isfinite(rel) and rel <= limit)
        if take:
            r["in_arrhenius"] = True
            pts.append((r["temperature_kelvin"], r["r_bulk_ohm"], rel))
    return pts


def total_points(rows: list[dict]) -> list[tuple[float, float, float]]:
    """(T, R_bulk + R_gb, nan) for the total Arrhenius fit: every fit with both, fallbacks
    included (the total, the low-frequency end of the grain-boundary arc, stays determined
    when the bulk arc leaves the window)."""
    return [
        (r["temperature_kelvin"], r["r_bulk_ohm"] + r["r_grain_boundary_ohm"], np.nan)
        for r in rows
        if r["fit_ok"]
        and r["method"] in ("fit", "hf_intercept", "fixed_capacitance")
        and r["temperature_kelvin"] is not None
        and r["r_bulk_ohm"] is not None
        and r.get("r_grain_boundary_ohm") is not None
    ]


def arrhenius_block(pts, geo: Geometry, convention: str, methods) -> tuple[dict | None, str | None]:
    """The ``arrhenius`` object from (T, R, rel stderr) points, or (None, reason)."""
    temps = {round(p[0], 3) for p in pts}
    if len(temps) < 2:
        return None, f"needs resolved fits at two or more known temperatures (have {len(temps)})"
    t, rr, rel = (np.array(v) for v in zip(*pts, strict=True))
    L, A = geo.thickness_m, geo.area_m2
    s = L / (rr * A) / 100.0 if L and A else 1.0 / rr
    res = arrhenius_fit(
        t, s, convention=convention, rel_stderr=rel if np.all(np.isfinite(rel)) else None
    )
    res["methods"] = list(methods)
    if not (L and A):
        res["conductivity_25c_s_per_cm"] = None
        res["note"] = (
            "no geometry: fitted to conductance 1/R (Ea is valid, conductivity_25c_s_per_cm is null)"
        )
    return {k: (clean(v) if not isinstance(v, list) else v) for k, v in res.items()}, None


def interface_growth(rows: list[dict], area_m2: float | None) -> dict | None:
    """Straight line of R_interface vs cycle at the most common temperature (>= 3 cycles)."""
    pts = [
        (row["cycle"], row["r_interface_ohm"], row["temperature_kelvin"])
        for row in rows
        if row["fit_ok"] and row["cycle"] is not None and row["r_interface_ohm"] is not None
    ]
    if len({p[0] for p in pts}) < 3:
        return None
    temps = np.array([np.nan if p[2] is None else round(p[2]) for p in pts])
    t0, sel = None, pts
    if np.any(np.isfinite(temps)):
        vals, counts = np.unique(temps[np.isfinite(temps)], return_counts=True)
        t0 = vals[np.argmax(counts)]
        sel = [p for p, tt in zip(pts, temps, strict=True) if tt == t0]
    if len({p[0] for p in sel}) < 3:
        return None
    x = np.array([p[0] for p in sel], dtype="f8")
    y = np.array([p[1] for p in sel], dtype="f8")
    slope, se, icpt = _linear_fit(x, y)
    growth = {
        "interface_growth_ohm_per_cycle": slope,
        "interface_growth_stderr_ohm_per_cycle": se,
        "interface_growth_ohm_cm2_per_cycle": slope * area_m2 * 1e4 if area_m2 else None,
        "interface_ohm_at_cycle_0": icpt,
        "n_points": len(sel),
        "temperature_kelvin": None if t0 is None else float(t0),
    }
    return {k: clean(v) for k, v in growth.items()}


def _linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float | None, float]:
    a = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    se = None
    if x.size > 2:
        res = y - a @ coef
        cov = np.linalg.inv(a.T @ a) * float(res @ res) / (x.size - 2)
        se = float(np.sqrt(cov[1, 1]))
    return float(coef[1]), se, float(coef[0])


def fallback_only_note(rows: list[dict], methods: tuple[str, ...]) -> str | None:
    """A note when the bulk Arrhenius fit holds high-frequency estimates only."""
    used = [r["method"] for r in rows if r.get("in_arrhenius")]
    if used and not any(m in methods for m in used):
        return (
            "no resolved bulk fit: from the high-frequency estimates only "
            f"({', '.join(sorted(set(used)))}), weighted by their uncertainties"
        )
    return None
