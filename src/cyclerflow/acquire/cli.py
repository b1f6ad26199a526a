"""`cyclerflow acquire`: run a station file, or one channel given on the command line.

``register(app)`` adds the command (the drivers package's CLI module calls it).
Exit codes: 0 every channel completed, 1 a channel stopped early (safety stop,
instrument error, lost link), 2 bad input (nothing was switched on), 130 stopped
by Ctrl-C/SIGTERM (outputs off, files closed; run again to resume).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from pathlib import Path

import typer
import yaml

from cyclerflow.errors import InputError


def _options(items: list[str] | None, flag: str) -> dict:
    out = {}
    for item in (p for i in items or [] for p in re.split(r",(?=\s*\w+=)", i)):  # k=v,k2=v2
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def acquire(
    station: Path | None = None,
    driver: str | None = None,
    resource: str | None = None,
    protocol: Path | None = None,
    cell: Path | None = None,
    out: Path | None = None,
    *,
    name: str = "ch1",
    option: list[str] | None = None,
    temperature_driver: str | None = None,
    temperature_resource: str | None = None,
    speedup: float | None = None,
    resume_after_safety_stop: bool = False,
    as_json: bool = False,
    quiet: bool = False,
) -> int:
    """Validate everything, run, print one line per channel; returns the exit code."""
    from cyclerflow.acquire.station import (
        ENGINE_SWITCH_INTERVAL_S,
        StationPlan,
        load_station,
        plan_channel,
        run_station,
        stop_on_signals,
    )

    single = [driver, resource, protocol, cell, out]
    if station is not None:
        if any(v is not None for v in single):
            raise InputError(
                "give either --station or --driver/--resource/--protocol/--cell/-o, not both"
            )
        plan = load_station(station, resume_after_safety_stop=resume_after_safety_stop)
    else:
        missing = [
            flag
            for flag, v in zip(
                ("--driver", "--resource", "--protocol", "--cell", "-o"), single, strict=True
            )
            if v is None
        ]
        if missing:
            raise InputError(f"missing {', '.join(missing)} (or give --station STATION.yaml)")
        temperature = None
        if temperature_driver or temperature_resource:
            if not (temperature_driver and temperature_resource):
                raise InputError("--temperature-driver and --temperature-resource go together")
            temperature = {"driver": temperature_driver, "resource": temperature_resource}
        ch = plan_channel(
            name=name,
            driver=driver,
            resource=resource,
            cell=cell,
            recipe=protocol,
            out=out,
            options=_options(option, "--option"),
            temperature=temperature,
            resume_after_safety_stop=resume_after_safety_stop,
        )
        plan = StationPlan([ch])
    if speedup is not None:
        if not speedup > 0:
            raise InputError(f"--speedup must be > 0, got {speedup!r}")
        plan.speedup = speedup
    if not quiet:
        for ch in plan.channels:
            how = (
                "new file"
                if ch.state is None
                else ("already complete" if ch.state.complete else "resuming")
            )
            typer.echo(
                f"{ch.name}: {ch.device.driver} {ch.device.resource} -> {ch.out} ({how})", err=True
            )
    stop = threading.Event()
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(old_interval, ENGINE_SWITCH_INTERVAL_S))
    try:
        with stop_on_signals(stop):
            results = run_station(plan, stop=stop)
    finally:
        sys.setswitchinterval(old_interval)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "name": r.name,
                        "out": str(r.out),
                        "status": r.status,
                        "message": r.message,
                        "rows": r.rows_written,
                        "cycles": r.cycles,
                        "spectra": r.spectra,
                        "samples_read": r.samples_read,
                        "missed_polls": r.missed_polls,
                    }
                    for r in results
                ]
            )
        )
    elif not quiet:
        for r in results:
            typer.echo(
                f"{r.name}: {r.status}: {r.message} ({r.rows_written} rows, cycle {r.cycles}, {r.spectra} spectra) -> {r.out}"
            )
    if stop.is_set():
        return 130
    return 0 if all(r.ok for r in results) else 1


def register(app: typer.Typer) -> None:
    """Add ``cyclerflow acquire`` to the CLI."""

    @app.command("acquire")
    def acquire_cmd(
        station: Path = typer.Option(
            None, "--station", help="Station file (YAML): many channels at once."
        ),
        driver: str = typer.Option(None, "--driver", help="Driver name (e.g. keithley2450)."),
        resource: str = typer.Option(
            None, "--resource", help="VISA resource or serial URL of the instrument."
        ),
        protocol: Path = typer.Option(None, "--protocol", help="Recipe (YAML)."),
        cell: Path = typer.Option(None, "--cell", help="Cell metadata (YAML/JSON)."),
        out: Path = typer.Option(
            None, "-o", "--out", help="Cell file (.h5); an existing one is resumed."
        ),
        name: str = typer.Option("ch1", "--name", help="Channel name (single-channel mode)."),
        option: list[str] = typer.Option(
            None, "--option", help="Driver option KEY=VALUE (repeatable)."
        ),
        temperature_driver: str = typer.Option(
            None, "--temperature-driver", help="Temperature controller driver."
        ),
        temperature_resource: str = typer.Option(
            None, "--temperature-resource", help="Its resource."
        ),
        speedup: float = typer.Option(
            None, "--speedup", help="Simulated clock speed-up (simulators only)."
        ),
        resume_after_safety_stop: bool = typer.Option(
            False, "--resume-after-safety-stop", help="Resume a file that ended on a safety stop."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the channel results as JSON."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
    ) -> None:
        """Run recipes on instruments, streaming into cell files (resumes existing ones)."""
        code = acquire(
            station,
            driver,
            resource,
            protocol,
            cell,
            out,
            name=name,
            option=option,
            temperature_driver=temperature_driver,
            temperature_resource=temperature_resource,
            speedup=speedup,
            resume_after_safety_stop=resume_after_safety_stop,
            as_json=as_json,
            quiet=quiet,
        )
        if code:
            raise typer.Exit(code)


def main(argv: list[str] | None = None) -> int:
    """``python -m cyclerflow.acquire.cli ...`` (same as ``cyclerflow acquire ...``)."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    try:
        app(args=argv, standalone_mode=False)
    except InputError as err:
        typer.echo(f"error: {err}", err=True)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except Exception as err:
        import click

        if isinstance(err, click.exceptions.ClickException):
            err.show()
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
