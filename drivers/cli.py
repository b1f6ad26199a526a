"""`cyclerflow simulate DRIVER ...` (and, when installed, the acquisition commands)."""

from __future__ import annotations

from pathlib import Path

import typer

from cyclerflow.errors import InputError


def simulate(
    driver: str = typer.Argument(
        ...,
        help="Driver name: keithley2450, b2900, palmsens, lakeshore335, neware-bts, "
        "maccor-macnet, arbin-cti.",
    ),
    port: int = typer.Option(0, "--port", help="TCP port (0 = a free port, printed on start)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    speedup: float = typer.Option(
        1.0, "--speedup", help="Simulated seconds per wall-clock second."
    ),
    cell: Path | None = typer.Option(
        None, "--cell", help="Cell metadata (YAML/JSON) for the cell model."
    ),
    fault: list[str] = typer.Option(
        [],
        "--fault",
        help="Fault spec, e.g. garble:every=50, slow:delay=3, drop:after=100, short:r=1e5.",
    ),
    seed: int = typer.Option(0, "--seed", help="Noise seed."),
    channels: int = typer.Option(8, "--channels", help="Channels per unit (cycler simulators)."),
    units: int = typer.Option(1, "--units", help="Units (sub-devices) (cycler simulators)."),
    schedule: list[str] = typer.Option(
        [], "--schedule", help="arbin-cti: a stored schedule, NAME=recipe.yaml (repeatable)."
    ),
) -> None:
    """Run an instrument simulator that serves the driver's real protocol (until Ctrl-C)."""
    from cyclerflow.acquire.instrument import load_driver

    from .sim import parse_fault, serve

    module = load_driver(driver)
    if hasattr(module, "serve_cycler_simulator"):  # multi-channel cyclers: own server
        return module.serve_cycler_simulator(
            host=host, port=port, channels=channels, units=units, speedup=speedup, cell=cell,
            faults=tuple(fault), seed=seed, **({"schedules": tuple(schedule)} if schedule else {}),
        )  # fmt: skip
    if not hasattr(module, "simulator_protocol"):
        raise InputError(f"driver {driver!r} has no simulator")
    if speedup < 0:
        raise InputError(f"--speedup must be >= 0, got {speedup:g}")
    for spec in fault:
        parse_fault(spec)  # clear error before anything listens
    serve(driver, host=host, port=port, cell=cell, speedup=speedup, faults=tuple(fault), seed=seed)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    try:
        from cyclerflow.acquire.cli import register as r
    except ModuleNotFoundError as err:
        if err.name != "cyclerflow.acquire.cli":
            raise
    else:
        r(app)
