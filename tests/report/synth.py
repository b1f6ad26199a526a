"""Synthetic cells with known answers for the report tests (plain data and real cell files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cyclerflow.report.curves import half_cycles
from cyclerflow.report.data import CellData
from cyclerflow.report.figures import decimate
from cyclerflow.schema import parse_metadata
from cyclerflow.store import write_cell
from cyclerflow.synthetic import galvanostatic_cycles, lipon_stack, rc_spectrum

K_B = 8.617333262e-5
TEMPS_C = (0, 25, 50, 75)


#: every figure of a full single-cell section, in page order
ALL_FIGURES = [
    "timeline",
    "capacity",
    "ce",
    "voltage",
    "dqdv",
    "nyquist",
    "residuals",
    "bode",
    "arrhenius",
    "interface",
]


def metadata(
    cell_id: str = "W07-D12-C3", *, wafer: str = "W07", die: str = "D12", area: float | None = 0.25
) -> dict:
    meta = {
        "cell_id": cell_id,
        "wafer": wafer,
        "die": die,
        "nominal_capacity_uah": 15.0,
        "layers": lipon_stack(),
    }
    if area is not None:
        meta["active_area_cm2"] = area
    return meta


def spectra(
    n: int = 4, *, area: float = 0.25, sigma25: float = 2.3e-6, ea: float = 0.55
) -> list[dict]:
    """A temperature series (0..75 °C) of R-(R||CPE)-CPE spectra with Arrhenius sigma*T."""
    f = np.logspace(6, -1, 50)
    out = []
    for k in range(n):
        tc = TEMPS_C[k % len(TEMPS_C)]
        tk = tc + 273.15
        sigma = sigma25 * (298.15 / tk) * np.exp(-ea / K_B * (1 / tk - 1 / 298.15))
        rb = 1e-4 / (sigma * area)
        z = rc_spectrum(f, r_lead_ohm=5.0, r_bulk_ohm=rb, q_bulk=2e-9, q_electrode=5e-6)
        out.append(
            {
                "frequency_hertz": f,
                "real_impedance_ohm": z.real,
                "imaginary_impedance_ohm": z.imag,
                "temperature_kelvin": tk,
                "cycle_count": k * 5 + 1,
                "spectrum_id": k + 1,
                "sigma": sigma,
                "rb": rb,
            }
        )
    return out


def summary(
    n_cycles: int = 30,
    *,
    fade: float = 5e-5,
    ce: float = 0.9995,
    cap: float = 15e-6,
    area: float | None = 0.25,
    specs: list[dict] | None = None,
    cell_id: str = "W07-D12-C3",
) -> dict:
    """The `analyze --json` object these synthetic data should give."""
    cycles = []
    for k in range(1, n_cycles + 1):
        qc = cap * (1 - fade) ** (k - 1)
        qd = qc * ce
        cycles.append(
            {
                "cycle": k,
                "charge_capacity_ah": qc,
                "discharge_capacity_ah": qd,
                "coulombic_efficiency": ce,
                "capacity_retention": qd / (cap * ce),
                "charge_energy_wh": qc * 3.9,
                "discharge_energy_wh": qd * 3.85,
                "discharge_capacity_uah_per_cm2": None if area is None else qd * 1e6 / area,
                "discharge_capacity_uah_per_cm2_um": None,
                "discharge_capacity_mah_per_g": None,
            }
        )
    out = {
        "cell_id": cell_id,
        "software_version": "test",
        "cycling": {
            "reference_cycle": 1,
            "fade_rate_per_cycle": fade,
            "first_cycle_irreversible_ah": cap * (1 - ce),
            "cycles": cycles,
        },
        "eis": None,
    }
    if specs:
        rows = []
        for s in specs:
            rows.append(
                {
                    "spectrum_id": s["spectrum_id"],
                    "cycle": s["cycle_count"],
                    "temperature_kelvin": s["temperature_kelvin"],
                    "circuit": "R0-p(R1,CPE1)-CPE2",
                    "method": "fit",
                    "r_bulk_ohm": s["rb"],
                    "r_interface_ohm": 200.0 + s["spectrum_id"],
                    "r_interface_ohm_cm2": None
                    if area is None
                    else (200.0 + s["spectrum_id"]) * area,
                    "conductivity_s_per_cm": s["sigma"],
                    "fit_ok": True,
                    "chi2": 1e-4,
                    "kk_residual_max": 1e-3,
                }
            )
        out["eis"] = {
            "spectra": rows,
            "arrhenius": {
                "activation_energy_ev": 0.55,
                "activation_energy_stderr_ev": 0.004,
                "conductivity_25c_s_per_cm": 2.3e-6,
                "convention": "sigma_T",
                "n_points": len(rows),
            },
        }
    return out


def cell_data(
    *,
    n_cycles: int = 30,
    with_eis: bool = True,
    with_meta: bool = True,
    cell_id: str = "W07-D12-C3",
    wafer: str = "W07",
    die: str = "D12",
    fade: float = 5e-5,
    events: list | None = None,
) -> CellData:
    """A CellData built in memory (no files), with fit curves equal to the data."""
    area = 0.25 if with_meta else None
    specs = spectra(area=0.25) if with_eis else []
    meta = parse_metadata(metadata(cell_id, wafer=wafer, die=die)) if with_meta else None
    cyc = galvanostatic_cycles(n_cycles=n_cycles, fade_per_cycle=fade, points_per_half=60)
    curves = []
    for c in (1, n_cycles // 2, n_cycles):
        m = cyc["cycle_count"] == c
        curves += half_cycles(
            cyc["test_time_second"][m], cyc["voltage_volt"][m], cyc["current_ampere"][m], c
        )
    sp = [
        {
            "spectrum_id": s["spectrum_id"],
            "frequency_hertz": s["frequency_hertz"],
            "z": s["real_impedance_ohm"] + 1j * s["imaginary_impedance_ohm"],
            "temperature_kelvin": s["temperature_kelvin"],
            "cycle": s["cycle_count"],
            "technique": "PEIS",
        }
        for s in specs
    ]
    fits = {s["spectrum_id"]: s["z"] * (1 + 0.01 * np.sin(np.arange(len(s["z"])))) for s in sp}
    tv, vv = decimate(cyc["test_time_second"], cyc["voltage_volt"], 2000)
    ti, ii = decimate(cyc["test_time_second"], cyc["current_ampere"], 2000)
    timeline = {"t_v": tv, "voltage_volt": vv, "t_i": ti, "current_ampere": ii}
    return CellData(
        path=f"/data/{cell_id}.h5",
        metadata=meta,
        summary=summary(n_cycles, fade=fade, area=area, specs=specs, cell_id=cell_id),
        spectra=sp,
        events=events
        if events is not None
        else [
            {
                "unix_time_second": 1.7e9 + 100,
                "test_time_second": 100.0,
                "kind": "safety_stop",
                "step": 3,
                "message": "voltage 4.31 V > 4.30 V",
            },
            {
                "unix_time_second": 1.7e9 + 200,
                "test_time_second": 200.0,
                "kind": "resume",
                "step": 3,
                "message": "resumed from file",
            },
        ],
        curves=curves,
        fits=fits,
        provenance={"input_file": f"/data/{cell_id}.h5", "input_sha256": "0" * 64},
        timeline=timeline,
    )


def write_cell_file(
    path: Path,
    *,
    n_cycles: int = 20,
    with_eis: bool = True,
    with_meta: bool = True,
    cell_id: str = "W07-D12-C3",
    points_per_half: int = 60,
    fade: float = 5e-5,
    n_spectra: int = 4,
) -> Path:
    """A real cell file with synthetic cycling, spectra and events."""
    meta = parse_metadata(metadata(cell_id)) if with_meta else None
    cyc = (
        galvanostatic_cycles(
            n_cycles=n_cycles, points_per_half=points_per_half, fade_per_cycle=fade
        )
        if n_cycles
        else None
    )
    specs = []
    if with_eis:
        for s in spectra(n_spectra):
            specs.append(
                {
                    k: s[k]
                    for k in (
                        "frequency_hertz",
                        "real_impedance_ohm",
                        "imaginary_impedance_ohm",
                        "temperature_kelvin",
                        "cycle_count",
                    )
                }
            )
    events = [
        {
            "kind": "safety_stop",
            "message": "voltage 4.31 V > 4.30 V",
            "step": 3,
            "unix_time_second": 1.7e9 + 50,
            "test_time_second": 50.0,
        },
        {
            "kind": "resume",
            "message": "resumed",
            "step": 3,
            "unix_time_second": 1.7e9 + 60,
            "test_time_second": 60.0,
        },
    ]
    return write_cell(path, meta, cycling=cyc, spectra=specs, events=events)
