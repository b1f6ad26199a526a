"""Reliability commands: ``verify`` (read everything, say intact / damaged where) and
``recover`` (close a killed writer's file in place, or salvage a damaged one with -o)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cyclerflow.errors import InputError

_STYLE = {"damaged": "bold red", "no checksums": "yellow", "unclosed": "yellow"}


def _verdict_line(v) -> str:
    style = _STYLE.get(v.state, "green")
    head = f"[{style}]{v.state}[/]  {v.path}"
    if v.state == "no checksums":
        head += f"  ({len(v.unchecked)} datasets without Fletcher-32: bit rot would go unseen)"
    elif v.checks == "Fletcher-32":
        head += "  (Fletcher-32 only, no chunk CRC-32: a chunk zeroed with its checksum would go unseen)"
    if v.state == "unclosed":
        head += "  (writer killed; everything flushed reads: `cyclerflow recover` closes it)"
    return "\n".join([head, *(f"    {d.describe()}" for d in v.damage)])


def _verify_all(paths: list[Path], console: Console, *, bar: bool) -> list:
    from cyclerflow.store.verify import Damage, Verdict, verify_file

    out = []
    columns = (TextColumn("verify"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=not bar, transient=True) as progress:
        task = progress.add_task("verify", total=len(paths))
        for p in paths:
            try:
                out.append(verify_file(p))
            except InputError as err:  # no HDF5 at all, or not a cell file
                out.append(
                    Verdict(str(p), "damaged", (Damage("not_hdf5", "file", err.bare_message),))
                )
            progress.advance(task)
    return out


def verify_cmd(
    cells: list[Path] = typer.Argument(None, help="Cell files (.h5)."),
    lab: Path | None = typer.Option(None, "--lab", help="Verify every .h5 file under ROOT."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per file."),
) -> None:
    """Read every byte of cell files: intact / damaged (where) / recovered-from-kill /
    unclosed / no checksums. Exit 2 when any file is damaged."""
    from cyclerflow.store.verify import cell_files

    paths = list(cells or [])
    if lab is not None:
        paths += cell_files(lab)
    if not paths:
        raise InputError("nothing to verify: give cell files or --lab ROOT")
    for p in paths:
        if not p.exists():
            raise InputError("cell file not found", path=p)
    console = Console(stderr=as_json)
    verdicts = _verify_all(paths, console, bar=lab is not None and not as_json)
    for v in verdicts:
        if as_json:
            typer.echo(json.dumps(v.to_dict()))
        else:
            console.print(_verdict_line(v), highlight=False, soft_wrap=True)
    damaged = sum(not v.ok for v in verdicts)
    if not as_json and len(verdicts) > 1:
        console.print(f"{len(verdicts)} files, {damaged} damaged")
    if damaged:
        raise typer.Exit(2)


def recover_cmd(
    cell: Path = typer.Argument(...),
    out: Path | None = typer.Option(
        None, "-o", "--out", help="Salvage into this NEW file (the original is only read)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Without -o: close a file left open by a killed writer, in place (keeps every
    flushed row). With -o: copy every intact chunk, event and spectrum of a damaged
    file into a new file and list what was lost."""
    if not cell.exists():
        raise InputError("cell file not found", path=cell)
    if out is None:
        _recover_in_place(cell)
        return
    from cyclerflow.store.salvage import salvage

    res = salvage(cell, out, force=force)
    if as_json:
        typer.echo(json.dumps(res.to_dict()))
        return
    typer.echo(
        f"{out}: {res.rows_kept:,} rows, {res.events_kept} events, {res.spectra_kept} "
        f"spectra copied from {cell} ({res.rows_lost:,} rows lost)"
    )
    for loss in res.losses:
        typer.echo(f"  lost {loss.describe()}")
    for kept in res.unchecked:
        typer.echo(f"  kept on Fletcher-32 alone {kept.describe()}")


def _recover_in_place(cell: Path) -> None:
    from cyclerflow.store import recover

    res = recover(cell)
    if res["rows"] is None:
        typer.echo(f"{cell}: closed cleanly, nothing to recover")
    else:
        typer.echo(f"{cell}: recovered {res['rows']:,} rows and {res['spectra']} streamed spectra")


def register(app: typer.Typer) -> None:
    app.command("verify")(verify_cmd)
    app.command("recover")(recover_cmd)
