"""Core commands: import, inspect, export (recover: commands/reliability.py; demo: flows)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from cyclerflow.console import print_summary


def import_cmd(
    sources: list[Path] = typer.Argument(
        ..., help="Vendor or neutral files, joined in the order given."
    ),
    cell: Path = typer.Option(None, "--cell", help="Cell metadata (YAML or JSON)."),
    out: Path = typer.Option(..., "-o", "--out", help="Cell file to write (.h5)."),
    fmt: str = typer.Option(None, "--format", help="Force a format instead of detecting it."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Import vendor files into one HDF5 cell file (format auto-detected)."""
    from rich.progress import Progress

    from cyclerflow.importers import import_files

    with Progress(disable=quiet or len(sources) < 2, transient=True) as prog:
        task = prog.add_task("importing", total=len(sources))
        import_files(
            sources,
            out,
            metadata_path=cell,
            fmt=fmt,
            force=force,
            progress=lambda: prog.advance(task),
            warn=lambda w: typer.echo(f"warning: {w}", err=True),
        )
    if not quiet:
        Console().print(f"wrote {out}")


def inspect_cmd(
    cell: Path = typer.Argument(..., help="Cell file (.h5), live or closed."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show what is in a cell file: cell, layers, rows, cycles, spectra, time span, state."""
    from cyclerflow.store import summary

    info = summary(cell)
    if as_json:
        typer.echo(json.dumps(info, default=str))
    else:
        print_summary(info, Console())


def export_cmd(
    cell: Path = typer.Argument(...),
    out: Path | None = typer.Option(None, "-o", "--out"),
    fmt: str = typer.Option(
        "csv",
        "--format",
        help="csv (machine names), bdf-csv or bdf-parquet (BDF labels; default name "
        "<cell_id>.bdf.csv / .bdf.parquet beside the cell file).",
    ),
    eis: bool = typer.Option(False, "--eis", help="Export the spectra (long format)."),
    force: bool = typer.Option(False, "--force"),
) -> None:
    """Export /cycling as CSV / BDF CSV / BDF Parquet, or the spectra (--eis)."""
    from cyclerflow.export import export_any

    export_any(cell, out, fmt=fmt, eis=eis, force=force)


def register(app: typer.Typer) -> None:
    """Add import, inspect and export to the CLI (recover: commands/reliability.py)."""
    app.command("import")(import_cmd)
    app.command("inspect")(inspect_cmd)
    app.command("export")(export_cmd)
