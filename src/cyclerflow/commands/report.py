"""`cyclerflow report CELL.h5... -o REPORT.html [--pdf]` and `cyclerflow watch CELL.h5`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console


def _say_written(html: Path, pdf: Path | None, n_cells: int, as_json: bool, quiet: bool) -> None:
    if as_json:
        info = {
            "report": str(html),
            "pdf": None if pdf is None else str(pdf),
            "cells": n_cells,
            "bytes": html.stat().st_size,
        }
        typer.echo(json.dumps(info))
    elif not quiet:
        Console().print(
            f"wrote {html} ({html.stat().st_size / 1e6:.2f} MB)" + (f" and {pdf}" if pdf else "")
        )


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_cmd(
        cells: list[Path] = typer.Argument(
            ..., help="Cell files (.h5); one report for all of them."
        ),
        out: Path = typer.Option(..., "-o", "--out", help="HTML file to write (self-contained)."),
        pdf: bool = typer.Option(
            False, "--pdf", help="Also write the same report as PDF (needs Chromium)."
        ),
        force: bool = typer.Option(False, "--force", help="Overwrite existing output files."),
        workers: int = typer.Option(
            None, "--workers", help="Worker processes (default: 1 for < 8 cells, else up to 4)."
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar, no messages."),
        as_json: bool = typer.Option(
            False, "--json", help="Print a JSON object with the written paths."
        ),
    ) -> None:
        """One self-contained HTML report (opens offline) for one or many cells."""
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from cyclerflow.report import build_report

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            disable=quiet or as_json,
            transient=True,
        ) as prog:
            task = prog.add_task("analysing and drawing", total=len(cells))
            html = build_report(
                cells,
                out,
                pdf=pdf,
                force=force,
                workers=workers,
                progress=lambda _p: prog.advance(task),
            )
        _say_written(html, html.with_suffix(".pdf") if pdf else None, len(cells), as_json, quiet)

    @app.command("watch")
    def watch_cmd(
        cell: Path = typer.Argument(
            None, help="Cell file being written (SWMR) or a closed one (or --lab ROOT)."
        ),
        interval: float = typer.Option(1.0, "--interval", help="Seconds between refreshes."),
        once: bool = typer.Option(False, "--once", help="Render one frame and exit."),
        lab: Path = typer.Option(
            None, "--lab", help="Every cell under ROOT, from the lab database where current."
        ),
        db: str = typer.Option(None, "--db", help="Lab database URL (with --lab)."),
    ) -> None:
        """Live terminal view of a running acquisition: step, last readings, capacity, events."""
        from cyclerflow.errors import InputError

        if interval <= 0:
            raise InputError(f"--interval must be > 0, got {interval}")
        if (cell is None) == (lab is None):
            raise InputError("give one cell file or --lab ROOT")
        if lab is not None:
            from cyclerflow.report.labwatch import watch_lab

            watch_lab(lab, db=db, interval=interval, once=once)
            return
        from cyclerflow.report.watch import watch

        if not cell.exists():
            raise InputError("cell file not found", path=cell)
        watch(cell, interval=interval, once=once)
