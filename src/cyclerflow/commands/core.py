"""Core commands: import, inspect, export, recover, demo."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cyclerflow.errors import InputError


def _fmt_time(unix: float | None) -> str:
    if unix is None:
        return "-"
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds / 86400:.2f} d"


def print_summary(info: dict, console: Console) -> None:
    meta = info.get("metadata") or {}
    title = f"{meta.get('cell_id', '(no metadata)')}  —  {info['path']}"
    t = Table(title=title, show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    for key in ("wafer", "die"):
        if key in meta:
            t.add_row(key, str(meta[key]))
    if "active_area_cm2" in meta:
        t.add_row("active area", f"{meta['active_area_cm2']:g} cm²")
    if "nominal_capacity_uah" in meta:
        t.add_row("nominal capacity", f"{meta['nominal_capacity_uah']:g} µAh")
    t.add_row("state", info["state"])
    t.add_row("rows", f"{info['rows']:,}")
    t.add_row("cycles", "-" if info["cycles"] is None else str(info["cycles"]))
    span = info["test_time_span_second"]
    if span[0] is not None:
        t.add_row(
            "test time", f"{span[0]:g} s -> {span[1]:g} s ({_fmt_duration(span[1] - span[0])})"
        )
    t.add_row("last sample", _fmt_time(info["last_unix_time_second"]))
    t.add_row("spectra", str(info["spectra"]))
    t.add_row("events", str(info["events"]))
    t.add_row("columns", escape(", ".join(f"{c} [{u}]" for c, u in info["columns"].items())))
    t.add_row(
        "written by",
        f"cyclerflow {info['software_version']} (format {info['format_version']}), {info['created']}",
    )
    console.print(t)
    layers = meta.get("layers") or []
    if layers:
        lt = Table(title="layer stack (bottom to top)")
        for c in ("role", "material", "thickness", "deposition"):
            lt.add_column(c)
        for lay in layers:
            th = f"{lay['thickness_um']:g} µm" if lay.get("thickness_um") else "-"
            lt.add_row(lay["role"], lay["material"], th, lay.get("deposition") or "-")
        console.print(lt)


def _register_export(app: typer.Typer) -> None:
    """The ``export`` command (CSV, BDF CSV, BDF Parquet)."""

    @app.command("export")
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
    _register_export(app)

    @app.command("import")
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

    @app.command("inspect")
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

    @app.command("recover")
    def recover_cmd(cell: Path = typer.Argument(...)) -> None:
        """Make a file left open by a killed writer a normal file (keeps all flushed data)."""
        from cyclerflow.store import recover

        if not cell.exists():
            raise InputError("cell file not found", path=cell)
        res = recover(cell)
        if res["rows"] is None:
            typer.echo(f"{cell}: closed cleanly, nothing to recover")
        else:
            typer.echo(
                f"{cell}: recovered {res['rows']:,} rows and {res['spectra']} streamed spectra"
            )

    @app.command("demo")
    def demo_cmd(
        out: Path = typer.Option(Path("demo-out"), "--out", help="Folder for the demo lab."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
    ) -> None:
        """Simulated lab: acquire -> HDF5 -> analyze -> report, no server, no hardware."""
        from cyclerflow.demo import run_demo

        run_demo(out, console=Console(quiet=quiet))
