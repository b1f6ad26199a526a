"""Many spectra of one cell -> per-spectrum results, conductivity, interface, Arrhenius.

:func:`analyze_spectra` runs named steps: sort the spectra (temperature, cycle, time),
fit them in that order with warm starts (:func:`fit_many`), make the series consistent
(:func:`cyclerflow.eis.series.refine_series`: monotonic resistances, the same roles as
the neighbours, the bulk capacitance fixed from colder temperatures where the bulk arc
leaves the window), subtract the lead resistance from fallback estimates, build the rows,
the Arrhenius fits and the interface growth, optionally a global fit
(:func:`cyclerflow.eis.global_fit.global_fit`). Returns the DESIGN.md ``eis`` JSON object
plus an xarray Dataset.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import xarray as xr

from cyclerflow.eis.fit import fit_spectrum
from cyclerflow.eis.kk import KK_THRESHOLD
from cyclerflow.eis.models import resolve_model
from cyclerflow.eis.result import SpectrumFit
from cyclerflow.eis.roles import CellContext, context_from_metadata
from cyclerflow.eis.summary import (
    FitError,
    Geometry,
    arrhenius_block,
    bulk_points,
    clean,
    conductivity_s_per_cm,
    fallback_only_note,
    interface_growth,
    row_of,
    total_points,
)
from cyclerflow.errors import InputError

__all__ = ["analyze_spectra", "conductivity_s_per_cm", "fit_many"]


def _geometry(meta) -> Geometry:
    """Thickness (m), area (m²) and the reason when conductivity cannot be computed."""
    if meta is None:
        return Geometry(
            None, None, "no cell metadata: conductivity and area-specific resistance are null"
        )
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
    return Geometry(L, A, reason)


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


def _fit_chain(args) -> list[SpectrumFit | FitError]:
    """Fit spectra in the given order, each warm-started from the previous result."""
    items, kw = args
    out: list[SpectrumFit | FitError] = []
    warm: dict = {}
    for sid, f, z in items:
        try:
            r = fit_spectrum(f, z, warm=warm, where=f"spectrum {sid}", **kw)
            warm = r.warm or warm
        except InputError as err:
            r = FitError(err.bare_message if hasattr(err, "bare_message") else str(err))
        out.append(r)
    return out


def fit_many(
    spectra: list[tuple[np.ndarray, np.ndarray]],
    circuit: str | None = None,
    *,
    n_jobs: int = 1,
    chunk: int = 64,
    **kwargs,
) -> list[SpectrumFit | FitError]:
    """Fit many (frequency_hertz, z) spectra in the given order with warm starts.

    Spectra that cannot be fitted come back as :class:`FitError` (``.message``).
    ``n_jobs > 1`` fits chunks of ``chunk`` spectra in worker processes (each chunk
    warm-starts internally). Keyword arguments go to :func:`fit_spectrum`.
    """
    items = [(i, f, z) for i, (f, z) in enumerate(spectra)]
    kw = {"circuit": circuit, **kwargs}
    if n_jobs <= 1 or len(items) <= chunk:
        return _fit_chain((items, kw))
    chunks = [(items[i : i + chunk], kw) for i in range(0, len(items), chunk)]
    out: list[SpectrumFit | FitError] = []
    with ProcessPoolExecutor(max_workers=n_jobs) as ex:
        for part in ex.map(_fit_chain, chunks):
            out.extend(part)
    return out


def _series_order(inputs) -> list[int]:
    """Warm-start order: temperature, then cycle, then time, then id."""
    return sorted(
        range(len(inputs)),
        key=lambda i: (
            np.nan_to_num(inputs[i][2]["temperature_kelvin"], nan=np.inf),
            inputs[i][2]["cycle"],
            np.nan_to_num(inputs[i][2]["unix_time_second"], nan=np.inf),
            inputs[i][2]["spectrum_id"],
        ),
    )


def _subtract_lead(fits: list) -> tuple[list, float | None]:
    """Median fitted lead of resolved fits, subtracted from high-frequency estimates."""
    leads = [
        r.r_lead_ohm
        for r in fits
        if isinstance(r, SpectrumFit)
        and r.fit_ok
        and r.method == "fit"
        and r.r_lead_ohm is not None
        and r.stderr.get(r.roles.get("lead", ""), np.inf) < 0.3 * r.r_lead_ohm
    ]
    lead = float(np.median(leads)) if leads else None
    out = []
    for r in fits:
        if (
            lead is not None
            and isinstance(r, SpectrumFit)
            and r.method in ("hf_intercept", "phase_min")
            and not r.bulk_resolved
            and r.r_bulk_ohm is not None
            and r.r_bulk_ohm - lead > 0
        ):
            r = r.with_note(
                f"lead resistance {lead:.4g} Ohm (median of resolved fits) subtracted",
                r_bulk_ohm=r.r_bulk_ohm - lead,
            )
        out.append(r)
    return out, lead


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
    fixed: dict | None = None,
    bounds: dict | None = None,
    global_fit: bool | str | list = False,
    series: bool = True,
) -> tuple[dict, xr.Dataset]:
    """Fit all spectra of a cell and derive conductivity, interface and Arrhenius results.

    ``spectra``: datasets as :func:`cyclerflow.store.read_spectra` returns them;
    ``meta``: :class:`cyclerflow.schema.CellMetadata` (thickness, area, layer stack,
    ``sample_type``) or None. ``arrhenius_methods``: bulk-resistance methods that always
    enter the Arrhenius fit (fallback estimates enter when their uncertainty is
    comparable, see docs/eis.md). ``fixed``/``bounds``: {name: value} / {name: (lo, hi)}
    for every fit. ``global_fit``: True (arc parameters shared where an F-test
    allows, docs/eis.md), ``"q"`` (CPE exponents and Q shared) or a list of names to share
    (``["CPE1_C", "CPE1_1"]``) adds a ``global_fit`` block. ``series=False`` skips the series-level
    consistency step. Returns (JSON-ready ``eis`` dict, per-spectrum Dataset).
    """
    from cyclerflow.eis.fitter import WEIGHTINGS

    if weighting not in WEIGHTINGS:
        raise InputError(f"unknown weighting {weighting!r} (use one of {', '.join(WEIGHTINGS)})")
    if circuit is not None:
        resolve_model(circuit, roles)  # bad circuit string: fail before any fitting
    share = _share_option(global_fit) if global_fit else None
    context = context_from_metadata(meta)
    geo = _geometry(meta)
    inputs = [_spectrum_inputs(ds) for ds in spectra]
    order = _series_order(inputs)
    kw = {
        "weighting": weighting,
        "roles": roles,
        "kk_threshold": kk_threshold,
        "fixed": fixed,
        "bounds": bounds,
        "context": context,
    }
    fits = _fit_all(inputs, order, circuit, kw, n_jobs=n_jobs, series=series and not roles)
    fits, lead_est = _subtract_lead(fits)
    summary = _summary(inputs, fits, geo, context, arrhenius_convention, arrhenius_methods)
    summary["lead_resistance_ohm"] = clean(lead_est)
    if share is not None:
        from cyclerflow.eis.global_series import global_block

        summary["global_fit"] = global_block(
            [inputs[i] for i in order],
            [fits[i] for i in order],
            geo,
            arrhenius_convention,
            share=share,
            weighting=weighting,
        )
    ds = _results_dataset(summary["spectra"], fits, inputs, summary=summary, circuit=circuit)
    return summary, ds


def _share_option(global_fit) -> str | list:
    """analyze_spectra's ``global_fit`` -> global_block's ``share``."""
    if global_fit is True or global_fit == "auto":
        return "auto"
    if global_fit == "q":
        return "q"
    if isinstance(global_fit, list | tuple) and all(isinstance(n, str) for n in global_fit):
        return list(global_fit)
    raise InputError(
        f"global_fit={global_fit!r}: use True, 'q' or a list of parameter names to share"
    )


def _fit_all(inputs, order, circuit, kw: dict, *, n_jobs: int, series: bool) -> list:
    """Fit in series order (warm starts), make the series consistent, back to input order."""
    fits_sorted = fit_many(
        [(inputs[i][0], inputs[i][1]) for i in order], circuit, n_jobs=n_jobs, **kw
    )
    if series:
        from cyclerflow.eis.series import refine_series

        fits_sorted = refine_series([inputs[i] for i in order], fits_sorted, kw)
    fits: list = [None] * len(inputs)
    for i, r in zip(order, fits_sorted, strict=True):
        fits[i] = r
    return fits


def _summary(inputs, fits, geo: Geometry, context: CellContext, convention, methods) -> dict:
    """Rows, Arrhenius (bulk and total) and interface growth."""
    has_gb = any(isinstance(r, SpectrumFit) and r.roles.get("grain_boundary") for r in fits)
    rows = [row_of(info, r, geo, has_gb) for (_, _, info), r in zip(inputs, fits, strict=True)]
    summary: dict[str, Any] = {
        "spectra": rows,
        "sample_type": context.sample_type,
        "sample_type_source": context.source,
    }
    if geo.reason:
        summary["conductivity_note"] = geo.reason
    summary["arrhenius"], why = arrhenius_block(
        bulk_points(rows, methods), geo, convention, methods
    )
    if why:
        summary["arrhenius_note"] = why
    elif fallback_only_note(rows, methods):
        summary["arrhenius_note"] = fallback_only_note(rows, methods)
    if has_gb:
        summary["arrhenius_total"], _ = arrhenius_block(
            total_points(rows), geo, convention, ("fit", "hf_intercept", "fixed_capacitance")
        )
    growth = interface_growth(rows, geo.area_m2)
    summary["interface_growth"] = growth
    summary["interface_growth_ohm_per_cycle"] = (
        None if growth is None else growth["interface_growth_ohm_per_cycle"]
    )
    return summary


def _results_dataset(rows, fits, inputs, *, summary, circuit) -> xr.Dataset:
    """Per-spectrum numbers, strings and curves, with provenance attributes."""
    data = _row_variables(rows)
    data.update(_curves(fits, inputs))
    return xr.Dataset(
        data,
        coords={"spectrum": ("spectrum", np.array([r["spectrum_id"] for r in rows], "i8"))},
        attrs=_provenance(summary, circuit, fits),
    )


def _row_variables(rows: list[dict]) -> dict:
    def col(key):
        return np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype="f8")

    def text(key, conv=lambda v: v or ""):
        return ("spectrum", np.array([conv(r.get(key)) for r in rows], dtype=object))

    units = {
        "temperature_kelvin": "K",
        "r_bulk_ohm": "ohm",
        "r_bulk_stderr_ohm": "ohm",
        "r_interface_ohm": "ohm",
        "r_interface_ohm_cm2": "ohm cm2",
        "conductivity_s_per_cm": "S cm-1",
        "f_bulk_hertz": "Hz",
        "kk_residual_max": "1",
    }
    if rows and "r_grain_boundary_ohm" in rows[0]:
        units.update(r_grain_boundary_ohm="ohm", conductivity_total_s_per_cm="S cm-1")
    data = {k: ("spectrum", col(k), {"units": u}) for k, u in units.items()}
    data["cycle_count"] = (
        "spectrum",
        np.array([-1 if r["cycle"] is None else r["cycle"] for r in rows], "i8"),
        {"units": "1"},
    )
    data["chi2"] = (
        "spectrum",
        col("chi2"),
        {"units": "1", "long_name": "modulus-weighted reduced chi-square"},
    )
    data["fit_ok"] = (
        "spectrum",
        np.array([1 if r["fit_ok"] else 0 for r in rows], "i1"),
        {"units": "1"},
    )
    data.update(method=text("method"), circuit=text("circuit"), message=text("message"))
    data["role_evidence_json"] = text("role_evidence", json.dumps)
    return data


def _curves(fits, inputs) -> dict:
    """Data and fitted curves over (spectrum, point), NaN-padded."""
    n, npts = len(inputs), max((inp[0].size for inp in inputs), default=0)
    arrs = {k: np.full((n, npts), np.nan) for k in ("fr", "zr", "zi", "fit_r", "fit_i")}
    for k, ((f, z, _), r) in enumerate(zip(inputs, fits, strict=True)):
        m = f.size
        arrs["fr"][k, :m], arrs["zr"][k, :m], arrs["zi"][k, :m] = f, z.real, z.imag
        if isinstance(r, SpectrumFit):
            arrs["fit_r"][k, :m], arrs["fit_i"][k, :m] = r.z_fit.real, r.z_fit.imag
    dims = ("spectrum", "point")
    return {
        "frequency_hertz": (dims, arrs["fr"], {"units": "Hz"}),
        "real_impedance_ohm": (dims, arrs["zr"], {"units": "ohm"}),
        "imaginary_impedance_ohm": (dims, arrs["zi"], {"units": "ohm"}),
        "fit_real_impedance_ohm": (dims, arrs["fit_r"], {"units": "ohm"}),
        "fit_imaginary_impedance_ohm": (dims, arrs["fit_i"], {"units": "ohm"}),
    }


def _provenance(summary: dict, circuit, fits) -> dict:
    import impedance

    from cyclerflow import __version__

    first = next((r for r in fits if isinstance(r, SpectrumFit)), None)
    return {
        "software": "cyclerflow",
        "software_version": __version__,
        "impedance_py_version": getattr(impedance, "__version__", "unknown"),
        "circuit": circuit or "auto (the sample type's ready models)",
        "weighting": first.weighting if first else "modulus",
        "sample_type": summary.get("sample_type") or "unknown",
        "fitter": "scipy.optimize.least_squares trf, log-space parameters, analytic Jacobian, data-derived starts + restarts",
        "kk_method": "linear Kramers-Kronig (Schoenleber 2014), mu criterion c=0.85, at least one RC per decade",
        "roles": "by effective capacitance against Irvine, Sinclair and West (1990) ranges scaled to the cell",
        "bulk_fallback": "fixed_capacitance: bulk C and n fixed from colder fits; hf_intercept: series R of the circuit without the bulk arc; phase_min: Z' at the phase-angle minimum",
        "arrhenius_json": json.dumps(summary.get("arrhenius")),
        "interface_growth_json": json.dumps(summary.get("interface_growth")),
    }
