"""`cyclerflow acquire`: run a station file, or one channel given on the command line.

``register(app)`` adds the command (the drivers package's CLI module calls it).
Exit codes: 0 every channel completed, 1 a channel stopped early (safety stop,
instrument error, lost link), 2 bad input (nothing was switched on), 130 stopped
by Ctrl-C/SIGTERM (outputs off, files closed; run again to resume).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from pathlib import Path

import typer
import yaml

from cyclerflow.acquire.recipe import RESUME_POLICIES
from cyclerflow.acquire.watchdog import OFF_AT_ENV
from cyclerflow.errors import InputError


def _options(items: list[str] | None, flag: str) -> dict:
    out = {}
    for item in (p for i in items or [] for p in re.split(r",(?=\s*\w+=)", i)):  # k=v,k2=v2
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _plan(
    station: Path | None,
    single: dict[str, object],
    *,
    name: str,
    option: list[str] | None,
    temperature_driver: str | None,
    temperature_resource: str | None,
    resume_after_safety_stop: bool,
):
    """The validated station plan (a station file, or one channel from the flags)."""
    from cyclerflow.acquire.station import StationPlan, load_station, plan_channel

    if station is not None:
        if any(v is not None for v in single.values()):
            raise InputError(
                "give either --station or --driver/--resource/--protocol/--cell/-o, not both"
            )
        return load_station(station, resume_after_safety_stop=resume_after_safety_stop)
    missing = [flag for flag, v in single.items() if v is None]
    if missing:
        raise InputError(f"missing {', '.join(missing)} (or give --station STATION.yaml)")
    temperature = None
    if temperature_driver or temperature_resource:
        if not (temperature_driver and temperature_resource):
            raise InputError("--temperature-driver and --temperature-resource go together")
        temperature = {"driver": temperature_driver, "resource": temperature_resource}
    ch = plan_channel(
        name=name,
        driver=single["--driver"],
        resource=single["--resource"],
        cell=single["--cell"],
        recipe=single["--protocol"],
        out=single["-o"],
        options=_options(option, "--option"),
        temperature=temperature,
        resume_after_safety_stop=resume_after_safety_stop,
    )
    return StationPlan([ch])


def _report(results, *, as_json: bool, quiet: bool) -> None:
    if as_json:
        rows = [
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
        typer.echo(json.dumps(rows))
    elif not quiet:
        for r in results:
            typer.echo(
                f"{r.name}: {r.status}: {r.message} ({r.rows_written} rows, cycle {r.cycles}, "
                f"{r.spectra} spectra) -> {r.out}"
            )


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
    on_resume: str | None = None,
    output_off_at: float | None = None,
) -> int:
    """Validate everything, run, print one line per channel; returns the exit code.

    ``output_off_at``: Unix time at which a watchdog switched the outputs off while no
    engine ran (for the gap's charge estimate).
    """
    from cyclerflow.acquire.station import ENGINE_SWITCH_INTERVAL_S, run_station, stop_on_signals

    single = {"--driver": driver, "--resource": resource, "--protocol": protocol}
    single |= {"--cell": cell, "-o": out}
    plan = _plan(
        station,
        single,
        name=name,
        option=option,
        temperature_driver=temperature_driver,
        temperature_resource=temperature_resource,
        resume_after_safety_stop=resume_after_safety_stop,
    )
    if speedup is not None:
        if not speedup > 0:
            raise InputError(f"--speedup must be > 0, got {speedup!r}")
        plan.speedup, plan.speedup_given = speedup, True
    if on_resume is not None and on_resume not in RESUME_POLICIES:
        raise InputError(f"--on-resume: expected one of {', '.join(RESUME_POLICIES)}")
    plan.on_resume, plan.output_off_at = on_resume, output_off_at
    if not quiet:
        for ch in plan.channels:
            how = "new file" if ch.state is None else "resuming"
            how = "already complete" if ch.state is not None and ch.state.complete else how
            typer.echo(
                f"{ch.name}: {ch.device.driver} {ch.device.resource} -> {ch.out} ({how})", err=True
            )
    stop = threading.Event()
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(old_interval, ENGINE_SWITCH_INTERVAL_S))
    try:
        with stop_on_signals(stop):
            announce = None if quiet else (lambda line: typer.echo(line, err=True))
            results = run_station(plan, stop=stop, announce=announce)
    finally:
        sys.setswitchinterval(old_interval)
    _report(results, as_json=as_json, quiet=quiet)
    if stop.is_set():
        return 130
    return 0 if all(r.ok for r in results) else 1


def watch(argv: list[str], plan_args: dict, *, max_gap_s: float, quiet: bool) -> int:
    """Run ``cyclerflow acquire ARGV`` under the watchdog (see :mod:`.watchdog`)."""
    from cyclerflow.acquire.progress import file_state
    from cyclerflow.acquire.recipe import CURRENT_KINDS
    from cyclerflow.acquire.watchdog import engine_argv, supervise

    plan = _plan(**plan_args)  # bad input: exit 2 here, before any engine starts

    def outputs_off() -> None:
        for ch in plan.channels:
            dev = ch.device.module.open_channel(ch.device.resource, **ch.device.options)
            dev.connect()
            try:
                dev.output_off()
            finally:
                dev.close()

    def last_sample_wall() -> float:
        walls = []
        for ch in plan.channels:
            if ch.out.exists():
                rp = file_state(ch.out, CURRENT_KINDS).resume
                walls.append(rp.wall_at_last_s if rp is not None else float("nan"))
        return min(walls) if walls else float("nan")

    say = (lambda line: None) if quiet else (lambda line: typer.echo(line, err=True))
    return supervise(
        engine_argv(argv),
        outputs_off=outputs_off,
        last_sample_wall=last_sample_wall,
        max_gap_s=max_gap_s,
        say=say,
    )


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
            None,
            "--speedup",
            help="Override of the simulated clock speed-up; checked against the rate the "
            "instrument reports (simulators only).",
        ),
        resume_after_safety_stop: bool = typer.Option(
            False, "--resume-after-safety-stop", help="Resume a file that ended on a safety stop."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the channel results as JSON."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
        on_resume: str = typer.Option(
            None,
            "--on-resume",
            help="Override the recipe's on_resume: continue, restart_step or stop.",
        ),
        watchdog: bool = typer.Option(
            False,
            "--watchdog",
            help="Supervise the engine: restart it at once when it dies (outputs off first "
            "when the gap exceeds --watchdog-max-gap).",
        ),
        watchdog_max_gap: float = typer.Option(
            10.0,
            "--watchdog-max-gap",
            help="Wall seconds without samples before the "
            "watchdog switches the outputs off ahead of a restart.",
        ),
    ) -> None:
        """Run recipes on instruments, streaming into cell files (resumes existing ones)."""
        code = _run_command(dict(locals()))
        if code:
            raise typer.Exit(code)


def _run_command(p: dict) -> int:
    """``cyclerflow acquire`` with its parsed options ``p``: under the watchdog, or directly."""
    if not p["watchdog"]:
        off_at = os.environ.get(OFF_AT_ENV)
        return acquire(
            p["station"],
            p["driver"],
            p["resource"],
            p["protocol"],
            p["cell"],
            p["out"],
            name=p["name"],
            option=p["option"],
            temperature_driver=p["temperature_driver"],
            temperature_resource=p["temperature_resource"],
            speedup=p["speedup"],
            resume_after_safety_stop=p["resume_after_safety_stop"],
            as_json=p["as_json"],
            quiet=p["quiet"],
            on_resume=p["on_resume"],
            output_off_at=float(off_at) if off_at else None,
        )
    flags = {
        "--station": p["station"], "--driver": p["driver"], "--resource": p["resource"],
        "--protocol": p["protocol"], "--cell": p["cell"], "-o": p["out"], "--name": p["name"],
        "--temperature-driver": p["temperature_driver"],
        "--temperature-resource": p["temperature_resource"], "--speedup": p["speedup"],
        "--on-resume": p["on_resume"],
    }  # fmt: skip
    argv = [x for k, v in flags.items() if v is not None for x in (k, str(v))]
    argv += [x for o in p["option"] or [] for x in ("--option", o)]
    switches = {"--resume-after-safety-stop": "resume_after_safety_stop"}
    switches |= {"--json": "as_json", "--quiet": "quiet"}
    argv += [k for k, key in switches.items() if p[key]]
    single = {k: flags[k] for k in ("--driver", "--resource", "--protocol", "--cell", "-o")}
    plan_args = dict(
        station=p["station"], single=single, name=p["name"], option=p["option"],
        temperature_driver=p["temperature_driver"],
        temperature_resource=p["temperature_resource"],
        resume_after_safety_stop=p["resume_after_safety_stop"],
    )  # fmt: skip
    return watch(argv, plan_args, max_gap_s=p["watchdog_max_gap"], quiet=p["quiet"])


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
