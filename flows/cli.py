"""`cyclerflow flows ...`: run a flow once, or serve the deployments with schedules.

```
cyclerflow flows run analyze-lab --root DIR [--dask-address ADDR] [--out DIR]
cyclerflow flows run analyze-cell CELL.h5
cyclerflow flows run live-cells --root DIR
cyclerflow flows run acquire-station STATION.yaml
cyclerflow flows serve --root DIR [--lab-cron "0 2 * * *"] [--live-interval "15 min"]
    [--db-server postgresql://USER:PASSWORD@HOST/prefect]
```
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from cyclerflow.errors import InputError

flows_app = typer.Typer(
    name="flows",
    help="Prefect flows: run one once, or serve them with schedules.",
    no_args_is_help=True,
)
run_app = typer.Typer(
    name="run",
    help="Run one flow once (no server needed: Prefect's ephemeral mode).",
    no_args_is_help=True,
)
flows_app.add_typer(run_app)


def _load_settings(path: Path | None, **overrides) -> dict | None:
    """Lab settings from a YAML/JSON file plus command-line overrides (None = default)."""
    from cyclerflow.lab import LabSettings

    data: dict = {}
    if path is not None:
        import yaml

        if not path.is_file():
            raise InputError("settings file not found", path=path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise InputError(
                f"cannot parse settings: {str(err).splitlines()[0]}", path=path
            ) from None
        if not isinstance(data, dict):
            raise InputError("settings must be a mapping of keys to values", path=path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return LabSettings.from_dict(data).as_dict() if data else None
    except (InputError, TypeError) as err:
        raise InputError(str(err), path=path) from None


def _check_root(root: Path) -> Path:
    if not root.is_dir():
        raise InputError("lab root is not a folder", path=root)
    return root


def _ephemeral_timeout(err: RuntimeError) -> bool:
    text = str(err).lower()
    return "ephemeral" in text and "timed out" in text


def _ephemeral_failure() -> InputError:
    """One clear error for an ephemeral server that never answered, naming its database
    (a PREFECT_API_DATABASE_CONNECTION_URL pointing at an unreachable server is the
    usual cause) without the password."""
    url = os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL")
    if url:
        import sqlalchemy as sa

        try:
            url = sa.engine.make_url(url).render_as_string(hide_password=True)
        except sa.exc.ArgumentError:
            pass
        where = f"its database PREFECT_API_DATABASE_CONNECTION_URL={url} did not answer?"
    else:
        where = "its SQLite database is in PREFECT_HOME; a very busy machine?"
    timeout = os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "20")
    return InputError(
        f"Prefect's ephemeral server did not start within {timeout} s, twice ({where}); "
        "set PREFECT_API_URL to a running server, or fix the database setting"
    )


def _run(fn, *args, **kwargs):
    """Call a flow; if the ephemeral server timed out on its first start (a new machine,
    a busy one), say so and try once more (the database is migrated by then); a second
    time-out is one clear error."""
    from cyclerflow.flows.runtime import embedded_run_settings

    with embedded_run_settings():
        try:
            return fn(*args, **kwargs)
        except RuntimeError as err:
            if not _ephemeral_timeout(err):
                raise
            typer.echo(
                "Prefect's ephemeral server was slow to start; trying once more "
                "(to avoid this: `prefect server database upgrade -y`, or raise "
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)",
                err=True,
            )
        try:
            return fn(*args, **kwargs)
        except RuntimeError as err:
            if not _ephemeral_timeout(err):
                raise
            raise _ephemeral_failure() from None


def _starting_message() -> None:
    from cyclerflow.flows.runtime import api_mode

    mode = api_mode()
    if mode == "ephemeral":
        typer.echo(
            "Prefect: no PREFECT_API_URL, using the ephemeral local server "
            "(its first start on a new machine can take up to a minute)",
            err=True,
        )
    else:
        typer.echo(f"Prefect: {mode}", err=True)


@run_app.command("analyze-lab")
def run_analyze_lab_cmd(
    root: Path = typer.Option(
        ..., "--root", help="Folder with the cell files (searched recursively)."
    ),
    dask_address: str = typer.Option(
        None,
        "--dask-address",
        help="Run the cell analyses on this dask.distributed scheduler (tcp://host:8786).",
    ),
    out: Path = typer.Option(
        None, "--out", "-o", help="Where lab_summary.csv/json and the report go (default: --root)."
    ),
    settings_file: Path = typer.Option(
        None,
        "--settings",
        help="YAML/JSON file of lab settings (thresholds, reference cycle, ...).",
    ),
    retention_cycle: int = typer.Option(
        None, "--retention-cycle", help="Report capacity retention at this cycle (default 100)."
    ),
    reference_cycle: int = typer.Option(
        None, "--reference-cycle", help="Retention reference cycle (default: first complete cycle)."
    ),
    batch_size: int = typer.Option(
        None, "--batch-size", help="Cells per task (default: about 4 batches per worker)."
    ),
    no_report: bool = typer.Option(False, "--no-report", help="Do not build the HTML lab report."),
    as_json: bool = typer.Option(False, "--json", help="Print the flow's result as JSON."),
    dask_mode: str = typer.Option(
        "tasks",
        "--dask-mode",
        help="With --dask-address: 'tasks' (a Prefect task per batch, via prefect-dask) or 'direct' (plain Dask functions).",
    ),
) -> None:
    """Analyse every changed cell under --root; write the lab summary table and report."""
    from cyclerflow.flows.lab import run_analyze_lab

    _check_root(root)
    if out is not None and not out.parent.exists():
        raise InputError(f"output folder {str(out.parent)!r} does not exist", path=out)
    settings = _load_settings(
        settings_file, retention_cycle=retention_cycle, reference_cycle=reference_cycle
    )
    _starting_message()
    res = _run(
        run_analyze_lab,
        root,
        out=out,
        dask_address=dask_address,
        settings=settings,
        batch_size=batch_size,
        report=not no_report,
        dask_mode=dask_mode,
    )
    _print_lab_result(res, as_json)


def _print_lab_result(res: dict, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(res))
        return
    c = res["counts"]
    typer.echo(
        f"{res['rows']} cells: {c['ok']} analysed, {c['cached']} unchanged, {c['failed']} failed"
    )
    for path, reason in res["failed"].items():
        typer.echo(f"  failed: {path}: {reason}")
    typer.echo(f"summary: {', '.join(res['summary'])}")
    if res.get("report"):
        typer.echo(f"report: {res['report']}")


@run_app.command("analyze-cell")
def run_analyze_cell_cmd(
    cell: Path = typer.Argument(..., help="Cell file (.h5)."),
    settings_file: Path = typer.Option(None, "--settings", help="YAML/JSON file of lab settings."),
    reference_cycle: int = typer.Option(None, "--reference-cycle"),
    as_json: bool = typer.Option(False, "--json", help="Print the analysis JSON."),
) -> None:
    """Analyse one cell through the analyze-cell flow (results file + markdown artifact)."""
    from cyclerflow.flows.lab import analyze_cell_flow

    if not cell.is_file():
        raise InputError("cell file not found", path=cell)
    settings = _load_settings(settings_file, reference_cycle=reference_cycle)
    _starting_message()
    res = _run(analyze_cell_flow, str(cell), settings)
    if as_json:
        typer.echo(json.dumps(res))
    else:
        from cyclerflow.flows.lab import cell_markdown

        typer.echo(cell_markdown(res, str(cell)))


@run_app.command("live-cells")
def run_live_cmd(
    root: Path = typer.Option(..., "--root", help="Lab folder."),
    out: Path = typer.Option(None, "--out", "-o"),
) -> None:
    """Re-analyse the cells that are being written now (live_summary.csv/json)."""
    from cyclerflow.flows.lab import analyze_live_cells_flow

    _check_root(root)
    _starting_message()
    res = _run(analyze_live_cells_flow, str(root), None if out is None else str(out))
    typer.echo(f"{res['live']} live cells analysed, {len(res['failed'])} failed")


@run_app.command("acquire-station")
def run_acquire_cmd(
    station: Path = typer.Argument(..., help="station.yaml"),
    reanalyze_every: str = typer.Option(
        "15 min",
        "--reanalyze-every",
        help="Re-analyse the live cells this often while they run (0 = never).",
    ),
) -> None:
    """Run a station's channels as Prefect tasks (cancel the flow run to stop them safely).

    Exit code 0: every channel complete; 1: a channel stopped early; 130: cancelled."""
    from cyclerflow.flows.acquire import acquire_station_flow
    from cyclerflow.units import parse_quantity

    if not station.is_file():
        raise InputError("station file not found", path=station)
    every = parse_quantity(reanalyze_every, "time", default_unit="s", where="--reanalyze-every")
    _starting_message()
    state = _run(
        acquire_station_flow, str(station), reanalyze_every_s=every or None, return_state=True
    )
    data = state.result(raise_on_failure=False)
    if isinstance(data, BaseException):
        raise data
    typer.echo(json.dumps(data, indent=1, default=str))
    if state.is_cancelled():
        raise typer.Exit(130)
    if any(
        isinstance(r, dict) and r.get("status") not in (None, "complete")
        for k, r in data.items()
        if k != "_analyses"
    ):
        raise typer.Exit(1)


@flows_app.command("serve")
def serve_cmd(
    root: Path = typer.Option(..., "--root", help="Lab folder the scheduled flows analyse."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Where summaries and reports go (default: --root)."
    ),
    lab_cron: str = typer.Option(
        "0 2 * * *", "--lab-cron", help="Cron schedule of the lab analysis ('' disables it)."
    ),
    live_interval: str = typer.Option(
        "15 min", "--live-interval", help="Interval of the live-cell analysis ('0' disables it)."
    ),
    timezone: str = typer.Option(
        "UTC", "--timezone", help="Time zone of the cron schedule (IANA name)."
    ),
    dask_address: str = typer.Option(
        None, "--dask-address", help="Run the nightly lab analysis on this Dask scheduler."
    ),
    settings_file: Path = typer.Option(None, "--settings", help="YAML/JSON file of lab settings."),
    limit: int = typer.Option(None, "--limit", help="Maximum concurrent flow runs."),
    register_only: bool = typer.Option(
        False, "--register-only", help="Create/update the deployments and exit (no polling)."
    ),
    server_port: int = typer.Option(
        4200,
        "--server-port",
        help="With no PREFECT_API_URL: use or start a local Prefect server on this port.",
    ),
    db_server: str = typer.Option(
        None,
        "--db-server",
        help="PostgreSQL URL of the database the local Prefect server keeps its runs in.",
    ),
) -> None:
    """Serve the lab and live-cell flows with their schedules (blocks; Ctrl-C stops)."""
    if db_server:
        use_db_server(db_server)
    from cyclerflow.flows.deploy import build_deployments
    from cyclerflow.units import parse_quantity

    _check_root(root)
    interval_s = parse_quantity(live_interval, "time", default_unit="s", where="--live-interval")
    if interval_s < 0:
        raise InputError(f"--live-interval must not be negative, got {live_interval!r}")
    settings = _load_settings(settings_file)
    _check_cron(lab_cron)
    deps = build_deployments(
        root,
        out=out,
        lab_cron=lab_cron or None,
        live_interval_s=interval_s or None,
        timezone=timezone,
        settings=settings,
        dask_address=dask_address,
    )
    if not deps:
        raise InputError("both schedules are disabled: nothing to serve")
    _serve_or_register(deps, register_only=register_only, limit=limit, server_port=server_port)


def use_db_server(url: str) -> str:
    """Make the local Prefect server ``serve`` starts keep its tables in PostgreSQL at
    ``url`` (its own database, e.g. on the lab's PostgreSQL server); returns the URL as
    Prefect uses it (driver asyncpg)."""
    import sqlalchemy as sa

    from cyclerflow.flows.runtime import api_mode

    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise InputError(f"--db-server: not a database URL: {url!r}") from None
    if parsed.get_backend_name() != "postgresql":
        raise InputError(
            f"--db-server: expected a PostgreSQL URL (postgresql://USER:PASSWORD@HOST/prefect), "
            f"got {parsed.get_backend_name()!r}"
        )
    if api_mode() != "ephemeral":
        raise InputError(
            "--db-server: PREFECT_API_URL is set, and that server has its own database "
            "(unset it to let serve start a local server on PostgreSQL)"
        )
    prefect_url = parsed.set(drivername="postgresql+asyncpg").render_as_string(False)
    os.environ["PREFECT_API_DATABASE_CONNECTION_URL"] = prefect_url
    return prefect_url


def _serve_or_register(deps: list, *, register_only: bool, limit, server_port: int) -> None:
    """Register the deployments and return, or serve them (blocks); with no server
    configured, start a local one for the schedules (the ephemeral one has no scheduler)."""
    from cyclerflow.flows.deploy import register_deployments, serve_deployments
    from cyclerflow.flows.runtime import api_mode, start_local_server, stop_local_server

    if register_only:
        _starting_message()
        for d, dep_id in zip(deps, register_deployments(deps), strict=True):
            typer.echo(f"registered {d.flow_name}/{d.name} ({dep_id})")
        return
    if api_mode() != "ephemeral":
        _starting_message()
        serve_deployments(deps, limit=limit)
        return
    url, proc = start_local_server(port=server_port, log=lambda m: typer.echo(m, err=True))
    os.environ["PREFECT_API_URL"] = url  # for the flow-run processes the runner starts
    try:
        serve_deployments(deps, limit=limit, api_url=url)
    finally:
        stop_local_server(proc)


def _check_cron(expr: str) -> None:
    if not expr:
        return
    from prefect.client.schemas.schedules import CronSchedule

    try:
        CronSchedule(cron=expr)
    except ValueError:
        raise InputError(
            f"--lab-cron: not a valid cron expression: {expr!r} (e.g. '0 2 * * *')"
        ) from None


def register(app: typer.Typer) -> None:
    """Add the ``flows`` command group and ``demo`` to the cyclerflow CLI."""
    from cyclerflow.flows.demo import register as register_demo

    app.add_typer(flows_app)
    register_demo(app)
