"""`cyclerflow ...` command line.

Command groups are modules found through the ``cyclerflow.commands`` entry points;
each has ``register(app)``. Bad input anywhere: one clear line on stderr, exit
code 2, no traceback unless ``--debug``.
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import entry_points

import typer

from cyclerflow import __version__
from cyclerflow.errors import InputError, InstrumentError, SafetyStop

app = typer.Typer(
    name="cyclerflow",
    help="Battery-lab pipeline: instruments -> HDF5 cell files -> analysis -> reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_STATE = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cyclerflow {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    _STATE["debug"] = debug


def command_modules() -> dict[str, str]:
    """Entry-point name -> module path of every registered command group."""
    return {ep.name: ep.value for ep in entry_points(group="cyclerflow.commands")}


PLUGIN_ERRORS: dict[str, str] = {}


def _load_plugins(debug: bool = False) -> None:
    """Register every command group; one that fails to import is left out (and
    reported with --debug) so the rest of the CLI still works."""
    if getattr(app, "_cyclerflow_loaded", False):
        return
    for name, module in sorted(command_modules().items()):
        try:
            importlib.import_module(module).register(app)
        except Exception as err:  # noqa: BLE001 - a broken plugin must not take the CLI down
            PLUGIN_ERRORS[name] = f"{type(err).__name__}: {err}"
            if debug:
                typer.echo(
                    f"warning: command group {name!r} ({module}) unavailable: {err}", err=True
                )
    app._cyclerflow_loaded = True


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and map bad input to exit code 2."""
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    _load_plugins(debug)
    try:
        rv = app(args=argv, standalone_mode=False)
        if isinstance(rv, int):
            return rv
    except (InputError, InstrumentError, SafetyStop) as err:
        if debug:
            raise
        typer.echo(f"error: {err}", err=True)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except Exception as err:  # click usage errors
        import click

        if isinstance(err, click.exceptions.ClickException):
            err.show()
            return 2
        if debug:
            raise
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
