"""One self-contained HTML report (inline CSS, inline JS, figures as data: URIs).

:func:`cell_context` turns a :class:`CellData` into what the template shows (headline
numbers, encoded figures, tables, what is missing and why); :func:`render_html`
renders one or many cells; :func:`build_report` runs the whole thing for cell files,
in worker processes when there are many cells.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape

from cyclerflow import __version__
from cyclerflow.cycling.incomplete import gap_events
from cyclerflow.errors import InputError
from cyclerflow.numfmt import fmt_number
from cyclerflow.report import figures as F
from cyclerflow.report.curves import dqdv
from cyclerflow.report.data import CellData, load_cell, load_indexed_cell, select_spectra
from cyclerflow.report.fromdb import LabIndex
from cyclerflow.report.transport_figures import (
    degradation_figure,
    has_transport_curves,
    transport_figure,
)
from cyclerflow.store.atomic import atomic_output, check_output_path

#: overview columns: key, header, format, outlier check on this column
OVERVIEW_COLUMNS: list[tuple[str, str, str, bool]] = [
    ("cycles", "cycles", "d", False),
    ("q_first_uah", "Q<sub>dis</sub> ref / µAh", ".4g", False),
    ("q_first_uah_cm2", "Q<sub>dis</sub> ref / µAh cm⁻²", ".4g", True),
    ("retention_last", "retention last / %", ".2f", True),
    ("fade_pct_per_cycle", "fade / % cycle⁻¹", ".4f", True),
    ("ce_median", "CE median", ".5f", True),
    ("sigma25", "σ 25 °C / S cm⁻¹", ".3e", True),
    ("ea_ev", "Ea / eV", ".3f", True),
    ("r_int_last_ohm_cm2", "R<sub>int</sub> last / Ω cm²", ".4g", True),
    ("safety_stops", "safety stops", "d", False),
]
OUTLIER_Z = 3.5  # robust z-score (median / 1.4826 MAD, MAD >= 1e-4 x |median|) beyond which a value is flagged
OUTLIER_MIN_CELLS = 5


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("cyclerflow.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt_number
    return env


def _anchor(cell_id: str, k: int) -> str:
    return f"cell-{k}-" + re.sub(r"[^A-Za-z0-9_-]+", "_", cell_id)


def _fig(fig_id: str, title: str, make: Callable[[], Any], caption: str = "") -> dict[str, Any]:
    """A figure spec; drawn by :func:`_draw` only when the report shows it."""
    return {"id": fig_id, "title": title, "make": make, "caption": caption}


def _draw(spec: dict[str, Any]) -> dict[str, str]:
    fig = spec["make"]()
    uri = F.figure_to_data_uri(fig)
    fig.clear()
    return {k: v for k, v in spec.items() if k != "make"} | {"uri": uri}


def _cycles_arrays(cyc: dict) -> dict[str, np.ndarray]:
    """Per-cycle float arrays of the JSON rows (None -> NaN); ``complete`` as bool."""
    rows = cyc.get("cycles") or []
    keys = (
        "cycle",
        "charge_capacity_ah",
        "discharge_capacity_ah",
        "coulombic_efficiency",
        "capacity_retention",
        "discharge_capacity_uah_per_cm2",
    )
    out = {
        k: np.array([np.nan if r.get(k) is None else r[k] for r in rows], dtype="f8") for k in keys
    }
    out["complete"] = np.array([bool(r.get("complete", True)) for r in rows], bool)
    return out


def _report_gaps(cell: CellData, cyc: dict | None) -> list[tuple[float, float]]:
    """Unrecorded intervals (s): the analysis' gaps, else the file's gap events."""
    if cyc and cyc.get("gaps"):
        return [(g["start_s"], g["end_s"]) for g in cyc["gaps"]]
    try:
        return [(g.start_s, g.end_s) for g in gap_events(cell.events)]
    except InputError:
        return []  # a malformed event: the analysis section says so


def _timeline_fig(cell: CellData, cyc: dict | None) -> dict | None:
    tl = cell.timeline
    if tl is None or len(tl["t_v"]) <= 1:
        return None
    gaps = _report_gaps(cell, cyc)
    caption = "Whole record, min/max-decimated."
    if gaps:
        caption += f" Shaded: {len(gaps)} gap(s) with no data (the host was away)."
    return _fig(
        "timeline",
        "Voltage and current vs time",
        lambda: F.timeline_figure(
            tl["t_v"], tl["voltage_volt"], tl["t_i"], tl["current_ampere"], gaps
        ),
        caption,
    )


def _incomplete_caption(cyc: dict) -> str:
    """One sentence on the incomplete cycles and why, or ''."""
    inc = cyc.get("incomplete_cycles") or []
    if not inc:
        return ""
    reasons: dict[str, list[int]] = {}
    for c in inc:
        reasons.setdefault(c.get("reason") or "incomplete", []).append(c["cycle"])
    parts = [
        f"{r.replace('_', ' ')}: cycle{'s' if len(cs) > 1 else ''} "
        + ", ".join(str(c) for c in cs[:8])
        + (" ..." if len(cs) > 8 else "")
        for r, cs in reasons.items()
    ]
    return f" Incomplete cycles (×, left out of fade, end of life and CE): {'; '.join(parts)}."


def _capacity_fig(cyc: dict, a: dict, area: float | None) -> dict:
    ref = cyc.get("reference_cycle")
    incomplete = ~a["complete"]
    estimated = [c["cycle"] for c in cyc["cycles"] if c.get("estimated_charge_ah")]
    caption = (
        f"Retention relative to cycle {ref}."
        + ("" if area else " No active area in the metadata: µAh/cm² not shown.")
        + _incomplete_caption(cyc)
    )
    if estimated:
        caption += f" Counted with a gap's estimated charge: cycles {estimated[:8]}."
    return _fig(
        "capacity",
        "Discharge capacity and retention",
        lambda: F.capacity_figure(
            a["cycle"],
            a["discharge_capacity_ah"],
            a["capacity_retention"],
            area_cm2=area,
            reference_cycle=ref,
            charge_capacity_ah=a["charge_capacity_ah"],
            incomplete=incomplete,
        ),
        caption,
    )


def _profile_figs(cell: CellData, figs: list, missing: list[str]) -> None:
    if not cell.curves:
        missing.append("No per-cycle rows (cycle_count) to draw voltage profiles and dQ/dV.")
        return
    figs.append(
        _fig(
            "voltage",
            "Voltage profiles of selected cycles",
            lambda: F.voltage_profiles_figure(cell.curves),
        )
    )
    dq = (
        cell.dqdv
        if cell.dqdv is not None
        else [d for d in (dqdv(c) for c in cell.curves) if len(d["voltage_v"])]
    )
    if dq:
        figs.append(_fig("dqdv", "Differential capacity dQ/dV", lambda: F.dqdv_figure(dq)))


def _cycling_row(cyc: dict, a: dict, area: float | None, row: dict) -> None:
    """Headline numbers of the cell's row in the lab table."""
    ref = cyc.get("reference_cycle")
    q = a["discharge_capacity_ah"]
    cyc_arr = a["cycle"]
    ref_idx = np.flatnonzero(cyc_arr == ref) if ref is not None else np.array([], dtype=int)
    i0 = (
        int(ref_idx[0])
        if len(ref_idx)
        else (int(np.flatnonzero(np.isfinite(q))[0]) if np.isfinite(q).any() else None)
    )
    ret = a["capacity_retention"][np.isfinite(a["capacity_retention"])]
    ce = a["coulombic_efficiency"][np.isfinite(a["coulombic_efficiency"])]
    row.update(
        cycles=int(len(cyc["cycles"])),
        q_first_uah=None if i0 is None else q[i0] * 1e6,
        q_first_uah_cm2=None if i0 is None or not area else q[i0] * 1e6 / area,
        retention_last=float(ret[-1] * 100) if len(ret) else None,
        fade_pct_per_cycle=None
        if cyc.get("fade_rate_per_cycle") is None
        else cyc["fade_rate_per_cycle"] * 100,
        ce_median=float(np.median(ce)) if len(ce) else None,
        retention_curve={"cycle": cyc_arr, "capacity_retention": a["capacity_retention"]},
    )


def _cycling_section(cell: CellData, area: float | None, row: dict) -> tuple[list, list[str]]:
    cyc = (cell.summary or {}).get("cycling")
    timeline = _timeline_fig(cell, cyc)
    figs: list[dict] = [] if timeline is None else [timeline]
    missing: list[str] = []
    if cell.summary is None:
        return figs, [
            "No analysis results: the analysis could not run for this file (see warnings); per-cycle figures are not shown."
        ]
    if not cyc or not cyc.get("cycles"):
        return figs, [
            "No cycling analysis (no cycling rows, or no complete cycle): capacity, retention, coulombic efficiency, voltage profiles and dQ/dV are not shown."
        ]
    a = _cycles_arrays(cyc)
    figs.append(_capacity_fig(cyc, a, area))
    if np.isfinite(a["coulombic_efficiency"]).any():
        figs.append(
            _fig(
                "ce",
                "Coulombic efficiency",
                lambda: F.coulombic_efficiency_figure(a["cycle"], a["coulombic_efficiency"]),
                "Discharge / charge capacity of the same cycle (complete cycles only).",
            )
        )
    else:
        missing.append("No complete cycle: coulombic efficiency not shown.")
    _profile_figs(cell, figs, missing)
    _cycling_row(cyc, a, area, row)
    return figs, missing


def _transport_figs(cell: CellData) -> list[dict]:
    """D vs SOC and R vs SOC from the transport block (GITT / ICI / PITT), and the
    degradation modes (LLI / LAM) from half-cell curves, when there are any."""
    figs = []
    modes = ((cell.summary or {}).get("cycling") or {}).get("degradation_modes") or {}
    if modes.get("cycles"):
        figs.append(
            _fig(
                "degradation-modes",
                "Degradation modes: loss of lithium inventory and of active material",
                lambda: degradation_figure(modes),
                f"Half-cell curves ({modes.get('half_cells')}) aligned to each discharge; "
                "losses relative to the reference cycle (docs/transport.md).",
            )
        )
    block = (cell.summary or {}).get("transport")
    if not has_transport_curves(block):
        return figs
    length = block.get("diffusion_length_route")
    return figs + [
        _fig(
            "transport",
            "Diffusion coefficient and resistance vs state of charge",
            lambda: transport_figure(block),
            "GITT (Weppner–Huggins), ICI and PITT per pulse / interruption / step; "
            f"diffusion length from {length}; hollow grey: assumptions not met. "
            "R: GITT pulse resistance, ICI resistance. SOC: "
            f"{block.get('soc_basis')}.",
        )
    ]


def _arrhenius_fig(per: dict, arr: dict, figs: list, missing: list[str]) -> None:
    """The Arrhenius plot when spectra at two or more temperatures have a conductivity."""
    pts = [
        s for s in per.values() if s.get("temperature_kelvin") and s.get("conductivity_s_per_cm")
    ]
    temps = {round(s["temperature_kelvin"], 1) for s in pts}
    if len(temps) >= 2:
        figs.append(
            _fig(
                "arrhenius",
                "Arrhenius plot",
                lambda: F.arrhenius_figure(
                    [s["temperature_kelvin"] for s in pts],
                    [s["conductivity_s_per_cm"] for s in pts],
                    arr,
                ),
                f"Convention: {arr.get('convention', 'sigma_T')}; {arr.get('n_points', len(pts))} points."
                if arr.get("activation_energy_ev") is not None
                else "The analysis gave no Arrhenius fit for these points (see the per-spectrum fit status).",
            )
        )
    elif not pts:
        missing.append(
            "No conductivity (needs electrolyte thickness and active area in the metadata, and a bulk resistance): no Arrhenius plot."
        )
    else:
        missing.append("Spectra at a single temperature: no Arrhenius plot.")


def _interface_fig(
    per: dict, area: float | None, row: dict, figs: list, missing: list[str]
) -> None:
    """Interfacial resistance (Ω·cm²) per cycle or spectrum, when the fits gave it."""
    ri = [s for s in per.values() if s.get("r_interface_ohm_cm2") is not None]
    if ri:
        cyc = [s.get("cycle") if s.get("cycle") is not None else s["spectrum_id"] for s in ri]
        figs.append(
            _fig(
                "interface",
                "Interfacial resistance",
                lambda: F.interface_figure(
                    cyc,
                    [s["r_interface_ohm_cm2"] for s in ri],
                    temperature_kelvin=[s.get("temperature_kelvin") or np.nan for s in ri],
                ),
            )
        )
        row["r_int_last_ohm_cm2"] = ri[-1]["r_interface_ohm_cm2"]
    elif any(s.get("r_interface_ohm") is not None for s in per.values()) and not area:
        missing.append("No active area in the metadata: interfacial resistance in Ω·cm² not shown.")
    else:
        missing.append(
            "No interfacial resistance from the fits: interfacial-resistance plot not shown."
        )


def _eis_section(cell: CellData, area: float | None, row: dict) -> tuple[list, list[str]]:
    figs: list[dict] = []
    missing: list[str] = []
    if not cell.spectra:
        return figs, [
            "No impedance spectra in this file: Nyquist, Bode, Arrhenius and interfacial-resistance plots are not shown."
        ]
    eis = (cell.summary or {}).get("eis") or {}
    per = {s["spectrum_id"]: s for s in eis.get("spectra", [])}
    shown = select_spectra(cell.spectra)
    draw = []
    for s in shown:
        info = per.get(s["spectrum_id"], {})
        draw.append({**s, "z_fit": cell.fits.get(s["spectrum_id"]), "circuit": info.get("circuit")})
    note = f"Circles: data, line: fit. {len(shown)} of {len(cell.spectra)} spectra shown; panels zoom on the arcs when a low-frequency tail dominates (inset: whole spectrum)."
    circuits = sorted({d["circuit"] for d in draw if d.get("circuit")})
    if circuits:
        note += " Fit circuit: " + ", ".join(circuits) + "."
    figs.append(_fig("nyquist", "Nyquist plots with fits", lambda: F.nyquist_figure(draw), note))
    if any(d["z_fit"] is not None for d in draw):
        figs.append(_fig("residuals", "Fit residuals", lambda: F.residuals_figure(draw)))
    else:
        missing.append("No fit curves for the shown spectra: residuals not shown.")
    figs.append(_fig("bode", "Bode plots", lambda: F.bode_figure(draw)))
    arr = eis.get("arrhenius") or {}
    _arrhenius_fig(per, arr, figs, missing)
    _interface_fig(per, area, row, figs, missing)
    row.update(sigma25=arr.get("conductivity_25c_s_per_cm"), ea_ev=arr.get("activation_energy_ev"))
    return figs, missing


def _headline(cell: CellData, row: dict) -> list[tuple[str, str]]:
    s = cell.summary or {}
    cyc = s.get("cycling") or {}
    arr = (s.get("eis") or {}).get("arrhenius") or {}
    out = []
    if row.get("cycles") is not None:
        out.append(("cycles", str(row["cycles"])))
    if row.get("q_first_uah") is not None:
        txt = f"{row['q_first_uah']:.4g} µAh"
        if row.get("q_first_uah_cm2") is not None:
            txt += f" ({row['q_first_uah_cm2']:.4g} µAh/cm²)"
        out.append((f"discharge capacity, cycle {cyc.get('reference_cycle')}", txt))
    if row.get("retention_last") is not None:
        out.append(
            (
                "retention at last cycle",
                f"{row['retention_last']:.2f} % of cycle {cyc.get('reference_cycle')}",
            )
        )
    if row.get("fade_pct_per_cycle") is not None:
        out.append(("fade rate", f"{row['fade_pct_per_cycle']:.4f} %/cycle"))
    if row.get("ce_median") is not None:
        out.append(("coulombic efficiency (median)", f"{row['ce_median']:.5f}"))
    if cyc.get("first_cycle_irreversible_ah") is not None:
        out.append(
            (
                "first-cycle irreversible capacity",
                f"{cyc['first_cycle_irreversible_ah'] * 1e6:.4g} µAh",
            )
        )
    if arr.get("conductivity_25c_s_per_cm") is not None:
        out.append(("ionic conductivity at 25 °C", f"{arr['conductivity_25c_s_per_cm']:.3e} S/cm"))
    if arr.get("activation_energy_ev") is not None:
        err = arr.get("activation_energy_stderr_ev")
        out.append(
            (
                "activation energy",
                f"{arr['activation_energy_ev']:.3f}"
                + (f" ± {err:.3f}" if err is not None else "")
                + " eV",
            )
        )
    if row.get("r_int_last_ohm_cm2") is not None:
        out.append(
            ("interfacial resistance (last spectrum)", f"{row['r_int_last_ohm_cm2']:.4g} Ω·cm²")
        )
    out.append(("safety stops", str(row.get("safety_stops", 0))))
    return out


def _events(cell: CellData, limit: int = 200) -> tuple[list[dict], dict[str, int], int]:
    counts: dict[str, int] = {}
    for e in cell.events:
        counts[e["kind"]] = counts.get(e["kind"], 0) + 1
    notable = [e for e in cell.events if e["kind"] not in ("step_start", "step_end")]
    rows = []
    for e in notable[:limit]:
        u = e.get("unix_time_second")
        when = (
            datetime.fromtimestamp(u, UTC).strftime("%Y-%m-%d %H:%M:%S")
            if u is not None and np.isfinite(u)
            else "–"
        )
        rows.append(
            {
                "time": when,
                "test_time": fmt_number(e.get("test_time_second"), ".1f"),
                "kind": e["kind"],
                "step": "" if e.get("step", -1) < 0 else e["step"],
                "message": e.get("message", ""),
            }
        )
    return rows, counts, max(0, len(notable) - limit)


def _cycler_method(cell: CellData) -> str | None:
    """How a commercial cycler's cell was acquired, with the vendor step types it ran
    (from the ``step_start`` events); None for other cells."""
    extra = {} if cell.metadata is None else cell.metadata.extra
    if "cycler_driver" not in extra:
        return None
    counts: dict[str, int] = {}
    for e in cell.events:
        if e["kind"] == "step_start":
            kind = dict(p.split("=", 1) for p in e["message"].split() if "=" in p)
            name = kind.get("step_type", "?")
            counts[name] = counts.get(name, 0) + 1
    steps = ", ".join(f"{k} × {n}" for k, n in counts.items()) or "none recorded"
    return (
        f"acquisition: the cycler ({extra['cycler_driver']}, {extra.get('cycler_channel', '?')}) "
        "ran the recipe as its own schedule; its records were downloaded by sequence number "
        f"(vendor_record_id); vendor steps run: {steps} (column vendor_step_type)"
    )


def _methods(cell: CellData) -> list[str]:
    s = cell.summary or {}
    out = []
    cycler = _cycler_method(cell)
    if cycler:
        out.append(cycler)
    cyc = s.get("cycling") or {}
    if cyc:
        out.append(
            f"cycling: capacity by trapezoidal integration of current per half-cycle; retention relative to cycle {cyc.get('reference_cycle')}"
            + (f"; first half {cyc['first_half']}" if cyc.get("first_half") else "")
        )
    eis = s.get("eis") or {}
    methods = sorted({str(x.get("method")) for x in eis.get("spectra", []) if x.get("method")})
    circuits = sorted({str(x.get("circuit")) for x in eis.get("spectra", []) if x.get("circuit")})
    if methods or circuits:
        out.append(
            "impedance: "
            + "; ".join(
                filter(
                    None,
                    [
                        "methods " + ", ".join(methods) if methods else "",
                        "circuits " + ", ".join(circuits) if circuits else "",
                    ],
                )
            )
        )
    arr = eis.get("arrhenius") or {}
    if arr.get("convention"):
        out.append(f"Arrhenius: {arr['convention']} convention, {arr.get('n_points')} points")
    out.append(
        cell.provenance.get("curves_method")
        or "voltage profiles and dQ/dV: report's own half-cycle split (|I| > 2 % of the cycle's max), Q(V) on a 120-point grid, 5-point smoothing"
    )
    return out


def _card(cell: CellData, row: dict) -> dict[str, Any]:
    """The one compact summary figure of a cell in a many-cell report."""
    cyc = (cell.summary or {}).get("cycling") or {}
    a = _cycles_arrays(cyc) if cyc.get("cycles") else None
    eis = (cell.summary or {}).get("eis") or {}
    per = {s["spectrum_id"]: s for s in eis.get("spectra", [])}
    pts = [
        s for s in per.values() if s.get("temperature_kelvin") and s.get("conductivity_s_per_cm")
    ]
    nyq = None
    if cell.spectra:
        s0 = select_spectra(cell.spectra, 1)[0]
        nyq = {**s0, "z_fit": cell.fits.get(s0["spectrum_id"])}
    arr = None
    if len({round(s["temperature_kelvin"], 1) for s in pts}) >= 2:
        arr = (
            [s["temperature_kelvin"] for s in pts],
            [s["conductivity_s_per_cm"] for s in pts],
            eis.get("arrhenius") or {},
        )
    return _fig(
        "card",
        "Summary",
        lambda: F.cell_card_figure(
            a, cell.curves, nyq, arr, reference_cycle=cyc.get("reference_cycle")
        ),
        "Compact view for many-cell reports: capacity and retention, coulombic efficiency, voltage profiles, Nyquist (or Arrhenius for a temperature series). Run the report for this cell alone for every figure.",
    )


def _provenance(cell: CellData) -> list[tuple[str, str]]:
    """(label, value) rows: software, input file and hash, results file, settings."""
    prov = dict(cell.provenance)
    prov.pop("curves_method", None)
    cf = prov.pop("cell_file", {}) or {}
    provenance = [("report software", f"cyclerflow {__version__}")]
    if prov.get("analysis_version"):
        provenance.append(("analysis software", f"cyclerflow {prov['analysis_version']}"))
    provenance += [
        ("input file", str(prov.get("input_file", cell.path))),
        ("input SHA-256", str(prov.get("input_sha256", "–"))),
    ]
    if prov.get("results_file"):
        provenance.append(("results file", f"{prov['results_file']} ({prov.get('results', '')})"))
    if prov.get("settings"):
        provenance.append(("analysis settings", str(prov["settings"])))
    if cf:
        provenance.append(
            (
                "cell file written by",
                f"cyclerflow {cf.get('software_version', '?')} (format {cf.get('format_version', '?')}), {cf.get('created', '?')}",
            )
        )
    return provenance


def cell_context(cell: CellData, k: int = 0, *, compact: bool = False) -> dict[str, Any]:
    """Everything the template shows for one cell (figures already encoded).

    ``compact``: one summary figure instead of the full set (many-cell reports)."""
    meta = cell.metadata
    area = None if meta is None else meta.active_area_cm2
    row: dict[str, Any] = {
        "cell_id": cell.cell_id,
        "wafer": None if meta is None else meta.wafer,
        "die": None if meta is None else meta.die,
    }
    row["safety_stops"] = sum(1 for e in cell.events if e["kind"] == "safety_stop")
    cyc_figs, cyc_missing = _cycling_section(cell, area, row)
    cyc_figs += _transport_figs(cell)
    eis_figs, eis_missing = _eis_section(cell, area, row)
    if compact:
        cyc_figs, eis_figs = [_card(cell, row)], []
    events, counts, more = _events(cell)
    meta_missing = []
    if meta is None:
        meta_missing.append(
            "No cell metadata in this file: no cell id, area or layer stack; per-area figures, conductivity and interfacial resistance in Ω·cm² cannot be computed."
        )
    elif area is None:
        meta_missing.append("Metadata has no active_area_cm2: per-area numbers are not shown.")
    provenance = _provenance(cell)
    layers = [] if meta is None else [lay.model_dump(exclude_none=True) for lay in meta.layers]
    meta_rows = []
    if meta is not None:
        for key in ("cell_id", "wafer", "die", "active_area_cm2", "nominal_capacity_uah", "notes"):
            v = getattr(meta, key)
            if v is not None:
                meta_rows.append((key, v))
        for key, v in meta.extra.items():
            meta_rows.append((key, v))
    row.update(anchor=_anchor(cell.cell_id, k), warnings=len(cell.warnings))
    return {
        "anchor": row["anchor"],
        "cell_id": cell.cell_id,
        "path": cell.path,
        "meta_rows": meta_rows,
        "layers": layers,
        "meta_missing": meta_missing,
        "headline": _headline(cell, row),
        "cycling_figures": [_draw(f) for f in cyc_figs],
        "cycling_missing": cyc_missing,
        "eis_figures": [_draw(f) for f in eis_figs],
        "compact": compact,
        "eis_missing": eis_missing,
        "events": events,
        "event_counts": counts,
        "events_more": more,
        "provenance": provenance,
        "methods": _methods(cell),
        "warnings": list(cell.warnings),
        "row": row,
    }


def _flag_outliers(rows: list[dict]) -> None:
    """Mark values whose robust z-score exceeds OUTLIER_Z (needs >= OUTLIER_MIN_CELLS values)."""
    for key, header, _, check in OVERVIEW_COLUMNS:
        if not check:
            continue
        vals = np.array([np.nan if r.get(key) is None else float(r[key]) for r in rows])
        ok = np.isfinite(vals)
        if ok.sum() < OUTLIER_MIN_CELLS:
            continue
        med = np.median(vals[ok])
        # floor: differences below 1e-4 of the median are noise, not outliers (identical cells)
        mad = max(1.4826 * np.median(np.abs(vals[ok] - med)), 1e-4 * abs(med), 1e-300)
        for r, v in zip(rows, vals, strict=True):
            if np.isfinite(v) and abs(v - med) / mad > OUTLIER_Z:
                r.setdefault("outliers", {})[key] = (
                    f"{re.sub('<[^>]+>', '', header)}: {v:.4g} vs median {med:.4g}"
                )


def _groups(rows: list[dict]) -> list[dict]:
    by: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: (r.get("wafer") or "~", r.get("die") or "~", r["cell_id"])):
        by.setdefault(r.get("wafer") or "(no wafer)", []).append(r)
    return [{"wafer": w, "rows": rs} for w, rs in by.items()]


def render_html(
    contexts: Sequence[dict[str, Any]],
    *,
    title: str | None = None,
    lab_figures: Sequence[dict] = (),
) -> str:
    """The report HTML for already-built cell contexts (one cell: no overview table)."""
    rows = [c["row"] for c in contexts]
    _flag_outliers(rows)
    env = _env()
    many = len(contexts) > 1
    return env.get_template("report.html.j2").render(
        title=title
        or (
            "cyclerflow report: "
            + (contexts[0]["cell_id"] if len(contexts) == 1 else f"{len(contexts)} cells")
        ),
        cells=contexts,
        many=many,
        groups=_groups(rows) if many else [],
        columns=OVERVIEW_COLUMNS,
        lab_figures=list(lab_figures),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        version=__version__,
        n_outliers=sum(1 for r in rows if r.get("outliers")),
    )


def _lab_figures(contexts: Sequence[dict[str, Any]]) -> list[dict]:
    curves = [
        {"cell_id": c["cell_id"], **c["row"]["retention_curve"]}
        for c in contexts
        if c["row"].get("retention_curve")
    ]
    if len(curves) < 2:
        return []
    return [
        _draw(
            _fig(
                "lab-retention",
                "Retention of all cells",
                lambda: F.lab_retention_figure(curves),
                "Lines: capacity retention of every cell vs cycle.",
            )
        )
    ]


#: reports of more cells than this show one compact summary figure per cell (size and time)
COMPACT_ABOVE = 12


def _cell_job(path: str, k: int, compact: bool = False, index: LabIndex | None = None) -> dict:
    """One cell's context: from the lab database where it is current, else its files."""
    indexed = None if index is None else index.lookup(path)
    if indexed is not None:
        cell = load_indexed_cell(indexed, timeline=not compact)
    else:
        cell = load_cell(path, timeline=not compact)
    return cell_context(cell, k, compact=compact)


def _default_workers(n_cells: int) -> int:
    if n_cells < 8:
        return 1
    return max(1, min(4, os.cpu_count() or 1, n_cells // 4))


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable (``CYCLERFLOW_CHROMIUM`` overrides), or None."""
    import shutil

    env = os.environ.get("CYCLERFLOW_CHROMIUM")
    if env:
        return env if Path(env).exists() else shutil.which(env)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        exe = shutil.which(name)
        if exe:
            return exe
    return None


def html_to_pdf(html: Path, pdf: Path, *, timeout: float = 300.0, force: bool = True) -> Path:
    """Print an HTML file to PDF with headless Chromium (atomically)."""
    import subprocess
    import tempfile

    exe = find_chromium()
    if exe is None:
        raise InputError(
            "--pdf needs Chromium (install Debian's 'chromium' package, or set CYCLERFLOW_CHROMIUM to a Chrome/Chromium executable)"
        )
    with (
        atomic_output(pdf, force=force) as tmp,
        tempfile.TemporaryDirectory(prefix="cyclerflow-chromium-") as prof,
    ):
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={prof}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={tmp}",
            Path(html).resolve().as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
            raise InputError(
                f"Chromium could not print the report to PDF (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:] or ''}",
                path=pdf,
            )
    return pdf


def _cell_contexts(
    paths: list[Path],
    compact: bool,
    workers: int,
    progress: Callable[[str], None] | None,
    index: LabIndex | None = None,
) -> list[dict | None]:
    """Template context of each cell, in order: in this process or in ``workers``."""
    contexts: list[dict | None] = [None] * len(paths)
    if workers == 1:
        for k, p in enumerate(paths):
            contexts[k] = _cell_job(str(p), k, compact, index)
            if progress:
                progress(str(p))
        return contexts
    import multiprocessing as mp
    import threading

    # fork is fast and needs no `if __name__ == "__main__"` guard in the caller's script;
    # a process with other threads running (e.g. inside a flow runner) spawns instead
    method = (
        "fork"
        if threading.active_count() == 1 and "fork" in mp.get_all_start_methods()
        else "spawn"
    )
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method)) as ex:
        futs = {ex.submit(_cell_job, str(p), k, compact, index): k for k, p in enumerate(paths)}
        for fut in as_completed(futs):
            contexts[futs[fut]] = fut.result()
            if progress:
                progress(str(paths[futs[fut]]))
    return contexts


def build_report(
    cells: Sequence[str | Path],
    out: str | Path,
    *,
    pdf: bool = False,
    progress: Callable[[str], None] | None = None,
    force: bool = True,
    workers: int | None = None,
    compact: bool | None = None,
    index: LabIndex | None = None,
) -> Path:
    """Analyse (or reuse results of) each cell file and write one self-contained HTML report.

    ``progress`` is called with the cell path after each cell. ``pdf`` also writes the
    same report as ``<out>.pdf`` (needs Chromium). ``compact`` (default: more than
    COMPACT_ABOVE cells) shows one summary figure per cell instead of the full set.
    ``index``: a lab database (:func:`cyclerflow.report.fromdb.lab_index`); a cell it
    holds current analysis for is not analysed, hashed or re-read for it (only its raw
    data is read).
    Returns the HTML path.
    """
    out = Path(out)
    if not cells:
        raise InputError("no cell files given")
    paths = [Path(c) for c in cells]
    for p in paths:
        if not p.exists():
            raise InputError("cell file not found", path=p)
    check_output_path(out, force=force)
    pdf_path = out.with_suffix(".pdf")
    if pdf:
        check_output_path(pdf_path, force=force)
        if find_chromium() is None:
            raise InputError(
                "--pdf needs Chromium (install Debian's 'chromium' package, or set CYCLERFLOW_CHROMIUM to a Chrome/Chromium executable)"
            )
    workers = _default_workers(len(paths)) if workers is None else max(1, workers)
    compact = len(paths) > COMPACT_ABOVE if compact is None else compact
    contexts = _cell_contexts(paths, compact, workers, progress, index)
    ctxs = [c for c in contexts if c is not None]
    html = render_html(ctxs, lab_figures=_lab_figures(ctxs) if len(ctxs) > 1 else ())
    with atomic_output(out, force=force) as tmp:
        tmp.write_text(html, encoding="utf-8")
    if pdf:
        try:
            html_to_pdf(out, pdf_path, force=force)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
    return out
