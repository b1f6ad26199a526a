"""What sharing does to a global fit of the published pellet series (docs/eis.md).

Run by hand:  .venv/bin/python benchmarks/eis_global_sharing.py [--with-120]

The seven spectra of fixtures/vendor/eis-series (140-200 °C; Adediwura et al., J. Mater.
Chem. A 12 (2024) 15847; published bulk Ea 0.5869 +- 0.0163, total 0.8555 eV), with
``--with-120`` the 120 °C spectrum of fixtures/vendor/eis-pellets too. Prints the single
fits' Ea, then global fits of the series with each sharing choice (same starts: the single
fits), then what ``analyze_spectra(global_fit=True)`` shares by its F-test, with CPU time.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CIRCUIT = "R0-p(R1,CPE1)-p(R2,CPE2)-CPE3"
AREA_CM2, THICKNESS_CM = np.pi * 0.4**2, 0.21
CHOICES = {
    "nothing (the free fit)": [],
    "every exponent": ["CPE1_1", "CPE2_1", "CPE3_1"],
    "grain-boundary n": ["CPE2_1"],
    "bulk n and Q": ["CPE1_1", "CPE1_0"],
    "bulk C and n": ["CPE1_C", "CPE1_1"],
    "electrode n": ["CPE3_1"],
}


def load(with_120: bool):
    """[(T kelvin, f Hz, Z Ohm)] sorted by temperature."""
    sys.path.insert(0, str(ROOT))
    from tests.eis.test_published_series import read_series_file as read_neisys

    paths = sorted((ROOT / "fixtures/vendor/eis-series").glob("s04147-*deg.txt"))
    if with_120:
        paths.append(ROOT / "fixtures/vendor/eis-pellets/s04147-120deg.txt")
    out = []
    for p in paths:
        f, z = read_neisys(p)
        out.append((int(re.search(r"-(\d+)deg", p.name).group(1)) + 273.15, f, z))
    return sorted(out, key=lambda s: s[0])


def metadata():
    from cyclerflow.schema import parse_metadata

    cc = {"role": "current_collector", "material": "Au", "thickness_um": 0.1}
    el = {"role": "electrolyte", "material": "ceramic", "thickness_um": THICKNESS_CM * 1e4}
    return parse_metadata(
        {"cell_id": "s04147", "active_area_cm2": AREA_CM2, "layers": [cc, el, cc]}
    )


def activation_energies(g) -> tuple[float, float]:
    """(bulk Ea, total Ea) in eV of a GlobalFit; bulk points with > 20 % error left out."""
    from cyclerflow.eis import arrhenius_fit

    t = np.array(g.temperatures_kelvin)
    rb = np.array([p["R1"] for p in g.params])
    rel = np.array([s["R1"] for s in g.stderr]) / rb
    rt = rb + np.array([p["R2"] for p in g.params])
    ok = rel < 0.2
    sig = THICKNESS_CM / AREA_CM2
    bulk = arrhenius_fit(t[ok], sig / rb[ok], rel_stderr=rel[ok])["activation_energy_ev"]
    return bulk, arrhenius_fit(t, sig / rt)["activation_energy_ev"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--with-120", action="store_true")
    args = ap.parse_args()
    from cyclerflow.eis import analyze_spectra, parse_circuit
    from cyclerflow.eis.global_fit import global_fit

    sys.path.insert(0, str(ROOT))
    from tests.eis.synth import as_dataset

    series = load(args.with_120)
    spectra = [
        as_dataset(f, z, spectrum_id=i, temperature_kelvin=t) for i, (t, f, z) in enumerate(series)
    ]
    summary, _ = analyze_spectra(spectra, metadata(), global_fit=True)
    print(
        f"{len(series)} spectra; single fits: bulk Ea {summary['arrhenius']['activation_energy_ev']:.4f}, "
        f"total {summary['arrhenius_total']['activation_energy_ev']:.4f} eV"
    )
    names = parse_circuit(CIRCUIT).param_names
    starts = [np.array([r["params"][n] for n in names]) for r in summary["spectra"]]
    temps, data = [t for t, _, _ in series], [(f, z) for _, f, z in series]
    for label, shared in CHOICES.items():
        c0 = time.process_time()
        g = global_fit(temps, data, CIRCUIT, starts, shared=shared)
        bulk, total = activation_energies(g)
        print(
            f"shared {label:24s}: chi2 {g.chi2:.3g}, bulk Ea {bulk:.4f}, total Ea {total:.4f} eV "
            f"({time.process_time() - c0:.3f} s CPU)"
        )
    g = summary["global_fit"]
    tests = ", ".join(f"{'/'.join(t['names'])} p={t['p_value']:.2g}" for t in g["sharing"])
    print(
        f"analyze_spectra(global_fit=True): shared {list(g['shared']) or 'nothing'} ({tests}); "
        f"bulk Ea {g['arrhenius']['activation_energy_ev']:.4f} ({g['arrhenius']['n_points']} points), "
        f"total {g['arrhenius_total']['activation_energy_ev']:.4f} eV"
    )


if __name__ == "__main__":
    main()
