"""Report benchmark: a 10,000-cycle cell with 200 spectra, and a 200-cell lab report.

Targets (issue 9): one big cell reports in < 5 s, 200 cells in < 60 s, HTML < 10 MB.
The analysis itself (cyclerflow.analysis.analyze_cell: cycling + EIS fits) is timed
separately; the report reuses the up-to-date ``<cell>.results.nc`` files it wrote, as
`cyclerflow report` does on a second run.

    python benchmarks/report.py [--cells 200] [--cycles 10000] [--spectra 200] [--out DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from cyclerflow.schema import parse_metadata
from cyclerflow.store import write_cell
from cyclerflow.synthetic import galvanostatic_cycles, rc_spectrum

K_B = 8.617333262e-5


def _meta(cell_id: str, wafer: str, die: str) -> dict:
    return {
        "cell_id": cell_id,
        "wafer": wafer,
        "die": die,
        "active_area_cm2": 0.25,
        "nominal_capacity_uah": 15.0,
        "layers": [
            {"role": "cathode", "material": "LiCoO2", "thickness_um": 1.0, "density_g_cm3": 4.8},
            {"role": "electrolyte", "material": "LiPON", "thickness_um": 1.0},
            {"role": "anode", "material": "Li", "thickness_um": 3.0},
        ],
    }


def make_cell(
    path: Path,
    *,
    n_cycles: int,
    n_spectra: int,
    seed: int,
    wafer: str = "W01",
    die: str = "D01",
    points_per_half: int = 40,
) -> Path:
    rng = np.random.default_rng(seed)
    fade = 5e-5 * (1 + 0.2 * rng.standard_normal())
    cyc = galvanostatic_cycles(
        n_cycles=n_cycles, points_per_half=points_per_half, fade_per_cycle=abs(fade), rest_s=30
    )
    f = np.logspace(6, -1, 50)
    spectra = []
    for k in range(n_spectra):
        temp = 298.15 if n_spectra > 8 else 273.15 + 25 * (k % 4)
        sigma = 2.3e-6 * (298.15 / temp) * np.exp(-0.55 / K_B * (1 / temp - 1 / 298.15))
        rb = 1e-4 / (sigma * 0.25)
        cycle = 1 + (k * max(1, n_cycles // max(1, n_spectra)))
        z = rc_spectrum(f, r_lead_ohm=5, r_bulk_ohm=rb, q_bulk=2e-9, q_electrode=5e-6)
        z = z * (1 + 0.002 * rng.standard_normal(len(f)))
        spectra.append(
            {
                "frequency_hertz": f,
                "real_impedance_ohm": z.real,
                "imaginary_impedance_ohm": z.imag,
                "temperature_kelvin": temp,
                "cycle_count": cycle,
            }
        )
    meta = parse_metadata(_meta(path.stem, wafer, die))
    return write_cell(path, meta, cycling=cyc, spectra=spectra, force=True)


def _analyze(path: str) -> float:
    from cyclerflow.analysis import analyze_cell

    t = time.perf_counter()
    analyze_cell(path, write_results=True, force=True)
    return time.perf_counter() - t


def _make(args: tuple) -> str:
    path, n_cycles, n_spectra, seed, wafer, die = args
    return str(
        make_cell(
            Path(path), n_cycles=n_cycles, n_spectra=n_spectra, seed=seed, wafer=wafer, die=die
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=200)
    ap.add_argument("--cycles", type=int, default=10_000)
    ap.add_argument("--spectra", type=int, default=200)
    ap.add_argument("--lab-cycles", type=int, default=200)
    ap.add_argument("--lab-spectra", type=int, default=4)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    from cyclerflow.report import build_report

    out = args.out or Path(tempfile.mkdtemp(prefix="cyclerflow-bench-report-"))
    out.mkdir(parents=True, exist_ok=True)
    workers = min(4, os.cpu_count() or 1)
    print(f"folder {out}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")

    # 1. one long cell
    t = time.perf_counter()
    big = make_cell(out / "big.h5", n_cycles=args.cycles, n_spectra=args.spectra, seed=1)
    print(
        f"big cell: {args.cycles} cycles, {args.spectra} spectra, {big.stat().st_size / 1e6:.1f} MB, written in {time.perf_counter() - t:.1f} s"
    )
    ta = _analyze(str(big))
    print(f"  analysis (cyclerflow.analysis, not the report): {ta:.1f} s")
    t = time.perf_counter()
    c0 = time.process_time()
    html = build_report([big], out / "big.html", force=True)
    tr = time.perf_counter() - t
    print(
        f"  report CPU time {time.process_time() - c0:.2f} s (load average {os.getloadavg()[0]:.1f})"
    )
    print(
        f"  report (results reused): {tr:.2f} s  [target < 5 s: ratio {tr / 5:.2f}]; HTML {html.stat().st_size / 1e6:.2f} MB"
    )

    # 2. a 200-cell lab
    t = time.perf_counter()
    jobs = [
        (
            str(out / "lab" / f"W{k // 40 + 1:02d}-D{k // 8 % 5 + 1:02d}-C{k % 8 + 1}.h5"),
            args.lab_cycles,
            args.lab_spectra,
            100 + k,
            f"W{k // 40 + 1:02d}",
            f"D{k // 8 % 5 + 1:02d}",
        )
        for k in range(args.cells)
    ]
    (out / "lab").mkdir(exist_ok=True)
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx) as ex:
        cells = list(ex.map(_make, jobs))
    print(
        f"lab: {len(cells)} cells x {args.lab_cycles} cycles, {args.lab_spectra} spectra each, written in {time.perf_counter() - t:.1f} s"
    )
    t = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=ctx) as ex:
        per = list(ex.map(_analyze, cells))
    print(
        f"  analysis (not the report): {time.perf_counter() - t:.1f} s wall, median {np.median(per):.2f} s per cell"
    )
    t = time.perf_counter()
    ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    c0 = time.process_time()
    html = build_report(cells, out / "lab.html", force=True)
    tr = time.perf_counter() - t
    ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - c0 + (ch1.ru_utime + ch1.ru_stime) - (ch0.ru_utime + ch0.ru_stime)
    n_work = min(4, os.cpu_count() or 1, len(cells) // 4)
    print(
        f"  report CPU time {cpu:.1f} s in all processes; on an idle machine with {n_work} workers ~ {cpu / n_work:.1f} s (load average {os.getloadavg()[0]:.1f})"
    )
    size = html.stat().st_size / 1e6
    print(
        f"  report (results reused, {workers} workers, compact per-cell sections): {tr:.1f} s  [target < 60 s: ratio {tr / 60:.2f}]"
    )
    print(f"  HTML {size:.2f} MB  [target < 10 MB: ratio {size / 10:.2f}]")


if __name__ == "__main__":
    main()
