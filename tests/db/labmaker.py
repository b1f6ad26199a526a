"""Synthetic labs with known answers for the database tests (real HDF5 cell files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

K_B_EV = 8.617333262e-5


def metadata(cell_id: str, wafer: str, die: str, *, power_w: float, n2_sccm: float) -> dict:
    return {
        "cell_id": cell_id,
        "wafer": wafer,
        "die": die,
        "active_area_cm2": 0.0035,
        "nominal_capacity_uah": 15.0,
        "operator": "ab",  # an unknown metadata key, kept as JSON
        "layers": [
            {"role": "cathode", "material": "LiCoO2", "thickness_um": 1.0, "density_g_cm3": 4.8},
            {
                "role": "electrolyte",
                "material": "LiPON",
                "thickness_um": 1.0,
                "deposition": "RF sputtering in N2",
                "power_w": power_w,
                "n2_flow_sccm": n2_sccm,
            },
            {"role": "anode", "material": "Li", "thickness_um": 3.0},
        ],
    }


def cell_data(n_cycles: int, fade: float, sigma_25c: float, temps_c=(0, 25, 50)):
    from cyclerflow.synthetic import galvanostatic_cycles, rc_spectrum

    cyc = galvanostatic_cycles(
        n_cycles=n_cycles,
        capacity_ah=15e-6,
        current_a=7.5e-6,
        fade_per_cycle=fade,
        points_per_half=25,
    )
    f = np.logspace(6, -1, 40)
    spectra = []
    for temp_c in temps_c:
        t_k = temp_c + 273.15
        factor = (298.15 / t_k) * np.exp(-0.55 / K_B_EV * (1 / t_k - 1 / 298.15))
        r_b = 1e-4 / (sigma_25c * factor * 0.0035)
        z = rc_spectrum(f, r_lead_ohm=5.0, r_bulk_ohm=r_b, q_bulk=5e-10, q_electrode=7e-8)
        spectra.append(
            {
                "frequency_hertz": f,
                "real_impedance_ohm": z.real,
                "imaginary_impedance_ohm": z.imag,
                "temperature_kelvin": t_k,
            }
        )
    return cyc, spectra


#: (cell_id, wafer, die, fade per cycle, sigma25 S/cm, power W, N2 sccm)
CELLS = (
    ("W07-D01-C1", "W07", "D01", 2e-3, 2.0e-6, 120.0, 20.0),
    ("W07-D02-C1", "W07", "D02", 5e-4, 2.4e-6, 160.0, 25.0),
    ("W07-D03-C1", "W07", "D03", 1e-4, 2.8e-6, 180.0, 30.0),
    ("W08-D01-C1", "W08", "D01", 1e-3, 3.0e-6, 200.0, 35.0),
)


def make_cell(root: Path, spec, n_cycles: int = 6) -> Path:
    from cyclerflow.schema import parse_metadata
    from cyclerflow.store import write_cell

    cell_id, wafer, die, fade, sigma, power, n2 = spec
    cyc, spectra = cell_data(n_cycles, fade, sigma)
    path = root / wafer / f"{cell_id}.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = parse_metadata(metadata(cell_id, wafer, die, power_w=power, n2_sccm=n2))
    return write_cell(path, meta, cycling=cyc, spectra=spectra, force=True)


def make_lab(root: Path, cells=CELLS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for spec in cells:
        make_cell(root, spec)
    return root
