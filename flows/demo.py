"""`cyclerflow demo`: a small simulated lab, end to end, with no server and no hardware.

Steps (each prints what it did):
1. make synthetic raw files for a few thin-film cells (BDF CSV + EIS CSV + metadata);
2. import them into HDF5 cell files and inspect them;
3. acquire more cells from simulated instruments over their real protocols
   (a Keithley 2450 over SCPI/TCP cycling a LiCoO2|LiPON|Li cell, a PalmSens
   over MethodSCRIPT with a Lake Shore 335 running a conductivity-vs-temperature
   series, and a four-channel Neware BTS rack over its TCP/XML API running the
   same cycling recipe as a Neware step file), through one station file, at a
   high clock speed-up;
4. analyse every cell (cycling + EIS) and print the headline table;
5. write one self-contained HTML report for the whole demo lab.

It lives with the flows because it drives the instrument simulators
(``cyclerflow.drivers.sim``): the core library never imports drivers or flows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import typer
import yaml
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from cyclerflow.console import print_summary
from cyclerflow.numfmt import fmt_number
from cyclerflow.synthetic import galvanostatic_cycles, lipon_stack, rc_spectrum

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
        "layers": lipon_stack(),
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
        for j, temp_c in enumerate((-20, 0, 25, 50)):
            # Arrhenius on sigma*T with Ea = 0.55 eV
            t_k = temp_c + 273.15
            # sigma(T)/sigma(25 °C) for sigma*T = A exp(-Ea/kT)
            factor = (298.15 / t_k) * np.exp(-0.55 / 8.617333262e-5 * (1 / t_k - 1 / 298.15))
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


#: simulated seconds per wall second for the acquisition step
DEMO_SPEEDUP = 2000.0

CYCLING_RECIPE = """\
# 2C cycling of a 15 uAh LiCoO2 | LiPON | Li film (six cycles after a rest)
name: demo-cycling
limits: {voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA}
sample_interval: 10 s
record: {every: 30 s, dv: 5 mV}
steps:
  - rest: {duration: 5 min}
  - loop:
      repeat: 6
      steps:
        - cc_charge: {current: 2C, until: {voltage: 4.15 V}}
        - rest: {duration: 2 min}
        - cc_discharge: {current: 2C, until: {voltage: 3.6 V}}
        - rest: {duration: 2 min}
"""

TEMPERATURE_RECIPE = """\
# ionic conductivity of the LiPON film from -20 to 40 degC: the warm spectra's bulk
# arc lies above 1 MHz, so the analysis flags them and falls back to the intercept
name: demo-arrhenius
limits: {voltage_max: 4.3 V, voltage_min: 2.5 V, current_max: 10 uA, temperature_max: 90 degC, temperature_min: -40 degC}
sample_interval: 30 s
steps:
  - temperature_series:
      setpoints: [-20 degC, -5 degC, 10 degC, 25 degC, 40 degC]
      tolerance: 0.5 K
      stable_for: 5 min
      timeout: 3 h
      steps:
        - eis: {f_start: 1 MHz, f_stop: 1 Hz, points_per_decade: 6, amplitude: 10 mV}
"""


def _require_instruments() -> None:
    """Raise ModuleNotFoundError (the CLI names the extra) if the instrument stack is
    missing, before anything is written."""
    import importlib

    for module in ("pyvisa", "pyvisa_py", "serial"):
        importlib.import_module(module)


#: the Neware rack of the demo: cell id and nominal capacity (µAh) per channel of unit 1
RACK_CELLS = [
    ("W03-D01-C1", 15.0),
    ("W03-D01-C2", 14.6),
    ("W03-D02-C1", 14.2),
    ("W03-D02-C2", 13.8),
]


def start_neware_rack(folder: Path, *, speedup: float = DEMO_SPEEDUP):
    """Write the rack's cell files and start a simulated Neware BTS server (one unit,
    one channel per :data:`RACK_CELLS` entry, each on the model of its own cell).

    Returns ``(server, station channel entries)``; stop the server when done."""
    from cyclerflow.drivers.sim.neware_bts import NewareSim

    steps = folder / "neware-steps"  # the step files cyclerflow writes for BTS to read
    steps.mkdir(exist_ok=True)
    rack: dict[int, str] = {}
    entries = []
    for c, (cell_id, cap_uah) in enumerate(RACK_CELLS, start=1):
        meta = _metadata(cell_id, 0.25, cap_uah)
        (folder / f"{cell_id}.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
        rack[c] = f"{cell_id}.yaml"
        entries.append(
            {
                "name": f"neware-{c}",
                "driver": "neware-bts",
                "options": {"unit": 1, "channel": c, "stepdir": str(steps)},
                "cell": f"{cell_id}.yaml",
                "recipe": "cycling.yaml",
                "out": f"{cell_id}.h5",
            }
        )
    (folder / "neware-rack.yaml").write_text(yaml.safe_dump({"channels": rack}))
    sim = NewareSim(
        channels=len(RACK_CELLS), speedup=speedup, cell=folder / "neware-rack.yaml", seed=4
    ).start()
    for e in entries:
        e["resource"] = sim.resource
    return sim, entries


def _station(folder: Path, speedup: float, smu, pot, tc, rack_channels: list[dict]) -> dict:
    """The demo's station file (cells and recipes written next to it)."""
    for cell_id, area in (("W02-D01-C1", 0.25), ("W02-D01-C2", 0.25)):
        meta = _metadata(cell_id, area, 15.0)
        (folder / f"{cell_id}.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    (folder / "cycling.yaml").write_text(CYCLING_RECIPE)
    (folder / "temperature.yaml").write_text(TEMPERATURE_RECIPE)
    return {
        "speedup": speedup,
        "flush_interval": "1 s",
        "channels": [
            {
                "name": "smu",
                "driver": "keithley2450",
                "resource": smu.resource,
                "cell": "W02-D01-C1.yaml",
                "recipe": "cycling.yaml",
                "out": "W02-D01-C1.h5",
            },
            {
                "name": "potentiostat",
                "driver": "palmsens",
                "resource": pot.resource,
                "temperature": {"driver": "lakeshore335", "resource": tc.resource},
                "cell": "W02-D01-C2.yaml",
                "recipe": "temperature.yaml",
                "out": "W02-D01-C2.h5",
            },
            *rack_channels,  # the same cycling recipe, run by the cycler as a step file
        ],
    }


def _run_station(plan) -> list:
    """Run a station as ``cyclerflow acquire`` does: with the interpreter's thread switch
    interval shortened, so that a sampling channel gets the interpreter promptly while
    the simulators' threads (the Neware rack's especially) compute."""
    import sys

    from cyclerflow.acquire.station import ENGINE_SWITCH_INTERVAL_S, run_station

    before = sys.getswitchinterval()
    sys.setswitchinterval(ENGINE_SWITCH_INTERVAL_S)
    try:
        return run_station(plan)
    finally:
        sys.setswitchinterval(before)


def acquire_from_simulators(folder: Path, *, speedup: float = DEMO_SPEEDUP) -> list[Path]:
    """Start the instrument simulators on loopback, write a station file and run it.

    Returns the cell files written. Raises InstrumentError if a channel fails.
    """
    from contextlib import ExitStack

    from cyclerflow.acquire.station import load_station
    from cyclerflow.drivers.sim import start_simulator
    from cyclerflow.errors import InstrumentError

    _require_instruments()

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.h5"):  # a re-run starts a fresh acquisition
        old.unlink()
    with ExitStack() as servers:
        smu, _ = start_simulator("keithley2450", speedup=speedup, seed=1)
        servers.callback(smu.stop)
        pot, _ = start_simulator("palmsens", speedup=speedup, seed=2)
        servers.callback(pot.stop)
        tc, _ = start_simulator("lakeshore335", speedup=speedup, cell=pot.model, seed=3)
        servers.callback(tc.stop)
        rack, rack_channels = start_neware_rack(folder, speedup=speedup)
        servers.callback(rack.stop)
        station = _station(folder, speedup, smu, pot, tc, rack_channels)
        (folder / "station.yaml").write_text(yaml.safe_dump(station, sort_keys=False))
        results = _run_station(load_station(folder / "station.yaml"))
    failed = [r for r in results if r.status != "complete"]
    if failed:
        raise InstrumentError(
            "; ".join(f"channel {r.name}: {r.status} ({r.message})" for r in failed)
        )
    return [r.out for r in results]


def _headline_table(results: dict[Path, dict]) -> Table:
    t = Table(title="demo lab: headline numbers", caption="— : not measured in this cell")
    t.add_column("cell", no_wrap=True)
    for col in ("cycles", "Q₁ µAh", "retention", "mean CE", "fade %/cyc", "σ25 S/cm", "Ea eV"):
        t.add_column(col, justify="right")

    def f(v, spec):
        return fmt_number(v, spec, missing="—")

    for path, res in results.items():
        cyc = res.get("cycling") or {}
        arr = (res.get("eis") or {}).get("arrhenius") or {}
        cycles = cyc.get("cycles") or []
        fade = cyc.get("fade_rate_per_cycle")
        t.add_row(
            res.get("cell_id") or path.stem,
            str(cyc.get("n_complete_cycles", "—")),
            f(cycles[0].get("discharge_capacity_ah") * 1e6 if cycles else None, ".3f"),
            f(cycles[-1].get("capacity_retention") if cycles else None, ".4f"),
            f(cyc.get("ce_mean"), ".5f"),
            f(None if fade is None else fade * 100, ".4f"),
            f(arr.get("conductivity_25c_s_per_cm"), ".3g"),
            f(arr.get("activation_energy_ev"), ".3f"),
        )
    return t


def run_demo(out: str | Path, *, console: Console | None = None) -> dict:
    """Run the demo lab into ``out``; returns the paths it made."""
    from cyclerflow.analysis import analyze_cell
    from cyclerflow.importers import import_files
    from cyclerflow.report import build_report
    from cyclerflow.store import summary

    _require_instruments()
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
    acq = out / "acquire"
    console.print(
        f"3. acquire from simulated instruments (Keithley 2450 over SCPI, PalmSens over "
        f"MethodSCRIPT + Lake Shore 335, a {len(RACK_CELLS)}-channel Neware BTS rack over "
        f"its TCP/XML API) at {DEMO_SPEEDUP:g}x -> {acq}"
    )
    with console.status("acquiring ..."):
        acquired = acquire_from_simulators(acq)
    for p in acquired:
        print_summary(summary(p), console)
    cells += acquired
    from cyclerflow.flows.demo_transport import acquire_experiments

    console.print(
        f"   + GITT on a film and a float on a soft-shorted cell -> {out / 'experiments'}"
    )
    cells += acquire_experiments(out / "experiments")
    console.print("4. analyse every cell (cycling and EIS)")
    results: dict[Path, dict] = {}
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("analysing", total=len(cells))
        for c in cells:
            results[c] = analyze_cell(c)
            bar.advance(task)
    console.print(_headline_table(results))
    report = out / "report.html"
    console.print(f"5. HTML report -> {report}")
    with console.status("building the report ..."):
        build_report(cells, report)
    console.rule(f"[bold green]demo done: open {report}")
    return {"cells": cells, "results": results, "report": report}


def register(app: typer.Typer) -> None:
    """Add ``cyclerflow demo`` to the CLI (called by :func:`cyclerflow.flows.cli.register`)."""

    @app.command("demo")
    def demo_cmd(
        out: Path = typer.Option(Path("demo-out"), "--out", help="Folder for the demo lab."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
    ) -> None:
        """Simulated lab: acquire -> HDF5 -> analyze -> report, no server, no hardware."""
        run_demo(out, console=Console(quiet=quiet))
