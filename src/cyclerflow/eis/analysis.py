"""Many spectra of one cell -> per-spectrum results, conductivity, interface, Arrhenius.

:func:`analyze_spectra` fits every spectrum (warm-started from its neighbour in a
temperature / cycle series), turns resistances into conductivity and area-specific
resistance with the cell metadata, fits the Arrhenius law and the interfacial-resistance
growth per cycle, and returns the DESIGN.md ``eis`` JSON object plus an xarray Dataset.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import xarray as xr

from cyclerflow.eis.arrhenius import arrhenius_fit
from cyclerflow.eis.fit import fit_spectrum
from cyclerflow.eis.kk import KK_THRESHOLD
from cyclerflow.eis.models import resolve_model
from cyclerflow.errors import InputError


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


def _geometry(meta) -> tuple[float | None, float | None, str | None]:
    """(thickness m, area m², reason when conductivity cannot be computed)."""
    if meta is None:
        return None, None, "no cell metadata: conductivity and area-specific resistance are null"
    L = getattr(meta, "electrolyte_thickness_m", None)
    A = getattr(meta, "active_area_m2", None)
    missing = []
    if not A:
        missing.append("active_area_cm2")
    if not L:
        missing.append("an electrolyte layer with thickness_um")
    reason = None
    if missing:
        reason = "cell metadata lacks " + " and ".join(missing) + ": conductivity is null"
    return L, A, reason


def _spectrum_inputs(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray, dict]:
    f = np.asarray(ds["frequency_hertz"].values, dtype="f8")
    z = np.asarray(ds["real_impedance_ohm"].values, dtype="f8") + 1j * np.asarray(
        ds["imaginary_impedance_ohm"].values, dtype="f8"
    )
    a = ds.attrs
    t = a.get("temperature_kelvin", np.nan)
    t = float(t) if t is not None else np.nan
    c = a.get("cycle_count", -1)
    c = int(c) if c is not None and np.isfinite(c) else -1
    info = {
        "spectrum_id": int(a.get("spectrum_id", -1)),
        "temperature_kelvin": t,
        "cycle": c,
        "unix_time_second": float(a.get("unix_time_second", np.nan) or np.nan),
    }
    return f, z, info


def _fit_chain(args) -> list[dict]:
    """Fit spectra in the given order, each warm-started from the previous result."""
    items, kw = args
    out = []
    warm: dict = {}
    for sid, f, z in items:
        try:
            r = fit_spectrum(f, z, warm=warm, where=f"spectrum {sid}", **kw)
            warm = r["warm"] or warm
        except InputError as err:
            r = {"error": err.bare_message if hasattr(err, "bare_message") else str(err)}
        out.append(r)
    return out


def fit_many(
    spectra: list[tuple[np.ndarray, np.ndarray]],
    circuit: str | None = None,
    *,
    n_jobs: int = 1,
    chunk: int = 64,
    **kwargs,
) -> list[dict]:
    """Fit many (frequency_hertz, z) spectra in the given order with warm starts.

    Spectra that cannot be fitted come back as ``{"error": reason}``. ``n_jobs > 1``
    fits chunks of ``chunk`` spectra in worker processes (each chunk warm-starts
    internally).
    """
    items = [(i, f, z) for i, (f, z) in enumerate(spectra)]
    kw = {"circuit": circuit, **kwargs}
    if n_jobs <= 1 or len(items) <= chunk:
        return _fit_chain((items, kw))
    chunks = [(items[i : i + chunk], kw) for i in range(0, len(items), chunk)]
    out: list[dict] = []
    with ProcessPoolExecutor(max_workers=n_jobs) as ex:
        for part in ex.map(_fit_chain, chunks):
            out.extend(part)
    return out


def _clean(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (np.floating, np.integer)):
        return _clean(v.item())
    return v


def _linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float | None, float]:
    a = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    se = None
    if x.size > 2:
        res = y - a @ coef
        cov = np.linalg.inv(a.T @ a) * float(res @ res) / (x.size - 2)
        se = float(np.sqrt(cov[1, 1]))
    return float(coef[1]), se, float(coef[0])


def analyze_spectra(
    spectra: list[xr.Dataset],
    meta=None,
    *,
    circuit: str | None = None,
    arrhenius_convention: str = "sigma_T",
    weighting: str = "modulus",
    roles: dict | None = None,
    arrhenius_methods: tuple[str, ...] = ("fit",),
    kk_threshold: float = KK_THRESHOLD,
    n_jobs: int = 1,
) -> tuple[dict, xr.Dataset]:
    """Fit all spectra of a cell and derive conductivity, interface and Arrhenius results.

    ``spectra``: datasets as :func:`cyclerflow.store.read_spectra` returns them;
    ``meta``: :class:`cyclerflow.schema.CellMetadata` (thickness and area) or None.
    ``arrhenius_methods``: which bulk-resistance methods enter the Arrhenius fit (by
    default only resolved fits; add ``"hf_intercept"``/``"phase_min"`` to include
    fallback estimates). Returns (JSON-ready ``eis`` dict, per-spectrum Dataset).
    """
    from cyclerflow.eis.fitter import WEIGHTINGS

    if weighting not in WEIGHTINGS:
        raise InputError(f"unknown weighting {weighting!r} (use one of {', '.join(WEIGHTINGS)})")
    if circuit is not None:
        resolve_model(circuit, roles)  # bad circuit string: fail before any fitting
    L, A, geo_reason = _geometry(meta)
    inputs = [_spectrum_inputs(ds) for ds in spectra]
    # warm-start order: temperature, then cycle, then time
    order = sorted(
        range(len(inputs)),
        key=lambda i: (
            np.nan_to_num(inputs[i][2]["temperature_kelvin"], nan=np.inf),
            inputs[i][2]["cycle"],
            np.nan_to_num(inputs[i][2]["unix_time_second"], nan=np.inf),
            inputs[i][2]["spectrum_id"],
        ),
    )
    fits_sorted = fit_many(
        [(inputs[i][0], inputs[i][1]) for i in order],
        circuit,
        n_jobs=n_jobs,
        weighting=weighting,
        roles=roles,
        kk_threshold=kk_threshold,
    )
    fits: list[dict] = [None] * len(inputs)  # type: ignore[list-item]
    for i, r in zip(order, fits_sorted, strict=True):
        fits[i] = r

    # lead resistance from resolved fits, subtracted from fallback estimates
    leads = [
        r["r_lead_ohm"]
        for r in fits
        if "error" not in r
        and r["fit_ok"]
        and r["method"] == "fit"
        and r["r_lead_ohm"] is not None
        and r["stderr"].get(r["roles"].get("lead", ""), np.inf) < 0.3 * r["r_lead_ohm"]
    ]
    lead_est = float(np.median(leads)) if leads else None
    for r in fits:
        if (
            "error" in r
            or r["method"] not in ("hf_intercept", "phase_min")
            or r["r_bulk_ohm"] is None
        ):
            continue
        if r["bulk_resolved"]:
            continue  # series-resistance models (cell_ohmic): nothing to subtract
        if lead_est is not None and r["r_bulk_ohm"] - lead_est > 0:
            r["r_bulk_ohm"] -= lead_est
            r["message"] += (
                f"; lead resistance {lead_est:.4g} Ohm (median of resolved fits) subtracted"
            )

    has_gb = any("error" not in r and r.get("roles", {}).get("grain_boundary") for r in fits)
    rows = []
    for (_, _, info), r in zip(inputs, fits, strict=True):
        row: dict[str, Any] = {
            "spectrum_id": info["spectrum_id"],
            "cycle": info["cycle"] if info["cycle"] >= 0 else None,
            "temperature_kelvin": _clean(info["temperature_kelvin"]),
        }
        if "error" in r:
            row.update(
                circuit=None,
                model=None,
                model_selection=None,
                method=None,
                r_bulk_ohm=None,
                r_interface_ohm=None,
                r_interface_ohm_cm2=None,
                conductivity_s_per_cm=None,
                fit_ok=False,
                chi2=None,
                kk_residual_max=None,
                r_bulk_stderr_ohm=None,
                f_bulk_hertz=None,
                message=r["error"],
                flags=["input_error"],
            )
            if has_gb:
                row.update(r_grain_boundary_ohm=None, conductivity_total_s_per_cm=None)
            rows.append(row)
            continue
        rb = r["r_bulk_ohm"]
        sigma = None
        if rb is not None and L and A:
            sigma = conductivity_s_per_cm(rb, L, A)
        ri = r["r_interface_ohm"]
        row.update(
            circuit=r["circuit"],
            model=r["model"],
            model_selection=r["model_selection"],
            method=r["method"],
            r_bulk_ohm=_clean(rb),
            r_interface_ohm=_clean(ri),
            r_interface_ohm_cm2=_clean(ri * A * 1e4) if ri is not None and A else None,
            conductivity_s_per_cm=_clean(sigma),
            fit_ok=bool(r["fit_ok"]),
            chi2=_clean(r["chi2"]),
            kk_residual_max=_clean(r["kk_residual_max"]),
            r_bulk_stderr_ohm=_clean(r["r_bulk_stderr_ohm"]),
            f_bulk_hertz=_clean(r["f_bulk_hertz"]),
            message=r["message"],
            flags=list(r["flags"]),
        )
        if has_gb:
            rg = r["r_grain_boundary_ohm"]
            row["r_grain_boundary_ohm"] = _clean(rg)
            row["conductivity_total_s_per_cm"] = (
                _clean(conductivity_s_per_cm(rb + rg, L, A))
                if rb is not None and rg is not None and L and A
                else None
            )
        rows.append(row)

    summary: dict[str, Any] = {"spectra": rows}
    summary["lead_resistance_ohm"] = _clean(lead_est)
    if geo_reason:
        summary["conductivity_note"] = geo_reason

    # Arrhenius (bulk, and total when there is a grain boundary)
    def arr(key_r: str, extra_r: str | None = None):
        pts = []
        for row, r in zip(rows, fits, strict=True):
            if "error" in r or not row["fit_ok"] or row["method"] not in arrhenius_methods:
                continue
            t = row["temperature_kelvin"]
            rr = (
                row[key_r]
                if extra_r is None
                else (
                    None
                    if row.get(extra_r) is None or row[key_r] is None
                    else row[key_r] + row[extra_r]
                )
            )
            if t is None or rr is None:
                continue
            se = r["r_bulk_stderr_ohm"] if extra_r is None else None
            pts.append((t, rr, (se / rr) if se else np.nan))
        temps = {round(p[0], 3) for p in pts}
        if len(temps) < 2:
            return (
                None,
                f"needs resolved fits at two or more known temperatures (have {len(temps)})",
            )
        t, rr, rel = (np.array(v) for v in zip(*pts, strict=True))
        if L and A:
            s = L / (rr * A) / 100.0
            note = None
        else:
            s = 1.0 / rr
            note = "no geometry: fitted to conductance 1/R (Ea is valid, conductivity_25c_s_per_cm is null)"
        res = arrhenius_fit(
            t,
            s,
            convention=arrhenius_convention,
            rel_stderr=rel if np.all(np.isfinite(rel)) else None,
        )
        res["methods"] = list(arrhenius_methods)
        if note:
            res["conductivity_25c_s_per_cm"] = None
            res["note"] = note
        return {k: (_clean(v) if not isinstance(v, list) else v) for k, v in res.items()}, None

    summary["arrhenius"], why = arr("r_bulk_ohm")
    if why:
        summary["arrhenius_note"] = why
    if has_gb:
        summary["arrhenius_total"], _ = arr("r_bulk_ohm", "r_grain_boundary_ohm")

    # interfacial resistance vs cycle
    pts = [
        (row["cycle"], row["r_interface_ohm"], row["temperature_kelvin"])
        for row in rows
        if row["fit_ok"] and row["cycle"] is not None and row["r_interface_ohm"] is not None
    ]
    growth = None
    if len({p[0] for p in pts}) >= 3:
        temps = np.array([np.nan if p[2] is None else round(p[2]) for p in pts])
        if np.any(np.isfinite(temps)):
            vals, counts = np.unique(temps[np.isfinite(temps)], return_counts=True)
            t0 = vals[np.argmax(counts)]
            sel = [p for p, tt in zip(pts, temps, strict=True) if tt == t0]
        else:
            t0, sel = None, pts
        if len({p[0] for p in sel}) >= 3:
            x = np.array([p[0] for p in sel], dtype="f8")
            y = np.array([p[1] for p in sel], dtype="f8")
            slope, se, icpt = _linear_fit(x, y)
            growth = {
                "interface_growth_ohm_per_cycle": slope,
                "interface_growth_stderr_ohm_per_cycle": se,
                "interface_growth_ohm_cm2_per_cycle": slope * A * 1e4 if A else None,
                "interface_ohm_at_cycle_0": icpt,
                "n_points": len(sel),
                "temperature_kelvin": None if t0 is None else float(t0),
            }
            growth = {k: _clean(v) for k, v in growth.items()}
    summary["interface_growth"] = growth
    summary["interface_growth_ohm_per_cycle"] = (
        None if growth is None else growth["interface_growth_ohm_per_cycle"]
    )

    ds = _results_dataset(
        rows,
        fits,
        inputs,
        weighting=weighting,
        circuit=circuit,
        summary=summary,
        kk_threshold=kk_threshold,
    )
    return summary, ds


def _results_dataset(
    rows, fits, inputs, *, weighting, circuit, summary, kk_threshold
) -> xr.Dataset:
    import json

    import impedance

    from cyclerflow import __version__

    n = len(rows)
    npts = max((inp[0].size for inp in inputs), default=0)

    def col(key, dtype="f8"):
        return np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=dtype)

    data = {
        "temperature_kelvin": ("spectrum", col("temperature_kelvin"), {"units": "K"}),
        "cycle_count": (
            "spectrum",
            np.array([-1 if r["cycle"] is None else r["cycle"] for r in rows], "i8"),
            {"units": "1"},
        ),
        "r_bulk_ohm": ("spectrum", col("r_bulk_ohm"), {"units": "ohm"}),
        "r_bulk_stderr_ohm": ("spectrum", col("r_bulk_stderr_ohm"), {"units": "ohm"}),
        "r_interface_ohm": ("spectrum", col("r_interface_ohm"), {"units": "ohm"}),
        "r_interface_ohm_cm2": ("spectrum", col("r_interface_ohm_cm2"), {"units": "ohm cm2"}),
        "conductivity_s_per_cm": ("spectrum", col("conductivity_s_per_cm"), {"units": "S cm-1"}),
        "f_bulk_hertz": ("spectrum", col("f_bulk_hertz"), {"units": "Hz"}),
        "chi2": (
            "spectrum",
            col("chi2"),
            {"units": "1", "long_name": "modulus-weighted reduced chi-square"},
        ),
        "kk_residual_max": ("spectrum", col("kk_residual_max"), {"units": "1"}),
        "fit_ok": (
            "spectrum",
            np.array([1 if r["fit_ok"] else 0 for r in rows], "i1"),
            {"units": "1"},
        ),
        "method": ("spectrum", np.array([r["method"] or "" for r in rows], dtype=object)),
        "circuit": ("spectrum", np.array([r["circuit"] or "" for r in rows], dtype=object)),
        "message": ("spectrum", np.array([r["message"] or "" for r in rows], dtype=object)),
    }
    if "r_grain_boundary_ohm" in (rows[0] if rows else {}):
        data["r_grain_boundary_ohm"] = ("spectrum", col("r_grain_boundary_ohm"), {"units": "ohm"})
        data["conductivity_total_s_per_cm"] = (
            "spectrum",
            col("conductivity_total_s_per_cm"),
            {"units": "S cm-1"},
        )
    fr = np.full((n, npts), np.nan)
    zr = np.full((n, npts), np.nan)
    zi = np.full((n, npts), np.nan)
    fr_fit = np.full((n, npts), np.nan)
    fi_fit = np.full((n, npts), np.nan)
    for k, ((f, z, _), r) in enumerate(zip(inputs, fits, strict=True)):
        m = f.size
        fr[k, :m], zr[k, :m], zi[k, :m] = f, z.real, z.imag
        if "error" not in r:
            fr_fit[k, :m], fi_fit[k, :m] = r["z_fit"].real, r["z_fit"].imag
    data.update(
        frequency_hertz=(("spectrum", "point"), fr, {"units": "Hz"}),
        real_impedance_ohm=(("spectrum", "point"), zr, {"units": "ohm"}),
        imaginary_impedance_ohm=(("spectrum", "point"), zi, {"units": "ohm"}),
        fit_real_impedance_ohm=(("spectrum", "point"), fr_fit, {"units": "ohm"}),
        fit_imaginary_impedance_ohm=(("spectrum", "point"), fi_fit, {"units": "ohm"}),
    )
    ds = xr.Dataset(
        data,
        coords={"spectrum": ("spectrum", np.array([r["spectrum_id"] for r in rows], "i8"))},
        attrs={
            "software": "cyclerflow",
            "software_version": __version__,
            "impedance_py_version": getattr(impedance, "__version__", "unknown"),
            "circuit": circuit or "auto (arc | blocking | cell)",
            "weighting": weighting,
            "fitter": "scipy.optimize.least_squares trf, log-space parameters, analytic Jacobian, data-derived starts + restarts",
            "kk_method": f"linear Kramers-Kronig (Schoenleber 2014), mu criterion c=0.85, threshold {kk_threshold:g}",
            "bulk_fallback": "hf_intercept: series R of the circuit without the bulk arc; phase_min: Z' at the phase-angle minimum",
            "arrhenius_json": json.dumps(summary.get("arrhenius")),
            "interface_growth_json": json.dumps(summary.get("interface_growth")),
        },
    )
    return ds
