"""`cyclerflow ...` command line.

Command groups are modules found through the ``cyclerflow.commands`` entry points;
each has ``register(app)``. Bad input anywhere: one clear line on stderr, exit
code 2, no traceback unless ``--debug``.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points

import typer

from cyclerflow import __version__
from cyclerflow.errors import InputError, InstrumentError, SafetyStop

#: top-level module -> the extra that installs it (``pip install 'cyclerflow[EXTRA]'``)
EXTRA_FOR_MODULE = {
    "pyvisa": "instruments",
    "pyvisa_py": "instruments",
    "serial": "instruments",
    "prefect": "flows",
    "prefect_dask": "flows",
    "dask": "flows",
    "distributed": "flows",
}


@dataclass(frozen=True)
class LoadedCLI:
    """The root Typer app with every command group registered, and the groups that
    failed to load (entry-point name -> ``"ErrorType: message"``)."""

    app: typer.Typer
    errors: dict[str, str]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cyclerflow {__version__}")
        raise typer.Exit()


def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Battery-lab pipeline: instruments -> HDF5 cell files -> analysis -> reports."""


def command_modules() -> dict[str, str]:
    """Entry-point name -> module path of every registered command group."""
    return {ep.name: ep.value for ep in entry_points(group="cyclerflow.commands")}


def missing_extra(err: ImportError) -> str | None:
    """The extra that provides the module an ImportError is about, or None."""
    name = (getattr(err, "name", None) or "").split(".")[0]
    return EXTRA_FOR_MODULE.get(name)


def build_app(debug: bool = False) -> LoadedCLI:
    """A fresh root app with every command group registered; a group that fails to
    import is left out (and reported with --debug) so the rest of the CLI still works."""
    app = typer.Typer(
        name="cyclerflow",
        help="Battery-lab pipeline: instruments -> HDF5 cell files -> analysis -> reports.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_root)
    errors: dict[str, str] = {}
    for name, module in sorted(command_modules().items()):
        try:
            importlib.import_module(module).register(app)
        except Exception as err:  # noqa: BLE001 - a broken plugin must not take the CLI down
            errors[name] = f"{type(err).__name__}: {err}"
            if debug:
                typer.echo(
                    f"warning: command group {name!r} ({module}) unavailable: {err}", err=True
                )
    return LoadedCLI(app, errors)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and map bad input to exit code 2."""
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    app = build_app(debug).app
    try:
        rv = app(args=argv, standalone_mode=False)
        if isinstance(rv, int):
            return rv
    except (InputError, InstrumentError, SafetyStop) as err:
        if debug:
            raise
        typer.echo(f"error: {err}", err=True)
        return 2
    except ModuleNotFoundError as err:
        extra = missing_extra(err)
        if extra is None or debug:
            raise
        typer.echo(
            f"error: this command needs the '{extra}' extra (module {err.name!r} is missing): "
            f"pip install 'cyclerflow[{extra}]'",
            err=True,
        )
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
