"""`cyclerflow demo`: a small simulated lab, end to end, with no server and no hardware.

Steps (each prints what it did):
1. make synthetic raw files for a few thin-film cells (BDF CSV + EIS CSV + metadata);
2. import them into HDF5 cell files and inspect them.
Later parts (acquisition from a simulator, analysis, report) add their steps here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from rich.console import Console

from cyclerflow.synthetic import galvanostatic_cycles, rc_spectrum

DEMO_CELLS = [
    # cell id, area cm², capacity µAh, fade per cycle, sigma S/cm
    ("W01-D01-C1", 0.25, 15.0, 5e-5, 2.3e-6),
    ("W01-D01-C2", 0.25, 14.2, 2e-4, 2.1e-6),
    ("W01-D02-C1", 0.0035, 0.21, 1e-4, 2.5e-6),
]


def _metadata(cell_id: str, area_cm2: float, cap_uah: float) -> dict:
    wafer, die, _ = cell_id.split("-")
    return {
        "cell_id": cell_id,
        "wafer": wafer,
        "die": die,
        "active_area_cm2": area_cm2,
        "nominal_capacity_uah": cap_uah,
        "layers": [
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
        ],
        "notes": "synthetic demo cell",
    }


def make_raw_files(raw: Path, *, n_cycles: int = 40) -> list[dict]:
    """Write metadata YAML, BDF cycling CSV and long EIS CSV for each demo cell."""
    raw.mkdir(parents=True, exist_ok=True)
    made = []
    for k, (cell_id, area, cap_uah, fade, sigma) in enumerate(DEMO_CELLS):
        meta = _metadata(cell_id, area, cap_uah)
        (raw / f"{cell_id}.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
        cap = cap_uah * 1e-6
        cyc = galvanostatic_cycles(
            n_cycles=n_cycles,
            capacity_ah=cap,
            current_a=cap / 2,
            fade_per_cycle=fade,
            t0_unix=1.79e9 + k * 1e6,
        )
        pd.DataFrame(cyc).to_csv(raw / f"{cell_id}_cycling.csv", index=False, float_format="%.17g")
        f = np.logspace(6, -1, 71)
        rows = []
        r_b = 1e-4 / (sigma * area)  # 1 µm = 1e-4 cm
        rng = np.random.default_rng(k)
        for j, temp_c in enumerate((0, 25, 50, 75)):
            # Arrhenius on sigma*T with Ea = 0.55 eV
            t_k = temp_c + 273.15
            factor = (t_k / 298.15) * np.exp(-0.55 / 8.617333262e-5 * (1 / 298.15 - 1 / t_k))
            z = rc_spectrum(
                f,
                r_lead_ohm=5.0,
                r_bulk_ohm=r_b / factor,
                q_bulk=2e-9 * area / 0.25,
                q_electrode=5e-6 * area / 0.25,
            )
            z = z * (1 + 0.002 * rng.standard_normal(len(f)))
            rows.append(
                pd.DataFrame(
                    {
                        "spectrum_id": j + 1,
                        "frequency_hertz": f,
                        "real_impedance_ohm": z.real,
                        "imaginary_impedance_ohm": z.imag,
                        "temperature_kelvin": t_k,
                    }
                )
            )
        pd.concat(rows).to_csv(raw / f"{cell_id}_eis.csv", index=False, float_format="%.17g")
        made.append(
            {
                "cell_id": cell_id,
                "meta": raw / f"{cell_id}.yaml",
                "cycling": raw / f"{cell_id}_cycling.csv",
                "eis": raw / f"{cell_id}_eis.csv",
            }
        )
    return made


def run_demo(out: str | Path, *, console: Console | None = None) -> dict:
    """Run the demo lab into ``out``; returns the paths it made."""
    from cyclerflow.commands.core import print_summary
    from cyclerflow.importers import import_files
    from cyclerflow.store import summary

    console = console or Console()
    out = Path(out)
    cells_dir = out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    console.rule("[bold]cyclerflow demo")
    console.print(f"1. synthetic raw files for {len(DEMO_CELLS)} thin-film cells -> {out / 'raw'}")
    made = make_raw_files(out / "raw")
    console.print("2. import into HDF5 cell files")
    cells = []
    for m in made:
        dst = cells_dir / f"{m['cell_id']}.h5"
        import_files([m["cycling"], m["eis"]], dst, metadata_path=m["meta"], force=True)
        cells.append(dst)
        print_summary(summary(dst), console)
    console.rule("[bold green]demo done")
    return {"cells": cells}
