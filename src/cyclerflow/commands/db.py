"""`cyclerflow db upgrade|rebuild|export-archive`, `cyclerflow cells`, `cyclerflow query`:
the lab database (needs the ``[db]`` extra; SQLite default, PostgreSQL with --db)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from cyclerflow.errors import InputError

_ROOT = typer.Option(None, "--root", help="Lab root folder (database at ROOT/.cyclerflow/lab.db).")
_DB = typer.Option(
    None,
    "--db",
    help="Database URL (sqlite:///PATH or postgresql+psycopg://USER@HOST/DB); "
    "default $CYCLERFLOW_DB_URL, else SQLite in the lab root.",
)


def _need_db() -> None:
    """One clear line when the [db] extra is not installed."""
    try:
        import alembic  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as err:
        raise InputError(
            f"the lab database needs the 'db' extra (module {err.name!r} is missing): "
            "pip install 'cyclerflow[db]'"
        ) from None


def _print_frame(frame, as_json: bool, as_csv: bool) -> None:
    if as_json:
        rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
        typer.echo(json.dumps(rows, indent=1, default=str))
    elif as_csv:
        frame.to_csv(sys.stdout, index=False, lineterminator="\n")
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(show_lines=False)
        for c in frame.columns:
            table.add_column(str(c), overflow="fold")
        for row in frame.itertuples(index=False):
            table.add_row(
                *("" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in row)
            )
        Console().print(table)


def _db_app() -> typer.Typer:
    app = typer.Typer(help="The lab database: create/migrate, rebuild from files, export.")

    @app.command("upgrade")
    def upgrade_cmd(root: Path = _ROOT, db: str = _DB) -> None:
        """Create the lab database or migrate it to this version's schema."""
        _need_db()
        from cyclerflow.db.engine import resolve
        from cyclerflow.db.migrate import upgrade
        from cyclerflow.db.rebuild import open_writer

        target = resolve(root, db)
        engine = open_writer(target)
        before, after = upgrade(engine, target.display)
        engine.dispose()
        typer.echo(f"{target.display}: schema {before or 'none'} -> {after}")

    @app.command("rebuild")
    def rebuild_cmd(
        root: Path = typer.Option(..., "--root", help="Lab root folder."),
        db: str = _DB,
        quiet: bool = typer.Option(False, "--quiet", "-q"),
    ) -> None:
        """Rebuild the index of ROOT from the cell files and their .results.nc alone."""
        _need_db()
        from rich.progress import Progress

        from cyclerflow.db.engine import resolve
        from cyclerflow.db.rebuild import rebuild

        with Progress(disable=quiet, transient=True) as prog:
            task = prog.add_task("indexing cells", total=None)
            rep = rebuild(
                resolve(root, db),
                root,
                progress=lambda i, n: prog.update(task, completed=i, total=n),
            )
        if not quiet:
            typer.echo(f"{rep.database}: {rep.indexed} cells indexed")

    @app.command("export-archive")
    def export_cmd(
        root: Path = _ROOT,
        db: str = _DB,
        out: Path = typer.Option(None, "-o", "--out", help="Folder for the CSV tables."),
        to: str = typer.Option(
            None, "--to", help="Database URL to write the tables into instead of CSV files."
        ),
        schema: str = typer.Option(
            "battery_archive", "--schema", help="PostgreSQL schema for --to (made if missing)."
        ),
        timeseries: bool = typer.Option(
            True, "--timeseries/--no-timeseries", help="Also write the time-series table."
        ),
        force: bool = typer.Option(False, "--force", help="Overwrite existing files."),
    ) -> None:
        """Export the cells in the BatteryArchive layout (cell_metadata, cycle_data,
        timeseries_data): CSV files (-o DIR) or tables in a database (--to URL)."""
        _need_db()
        from cyclerflow.db.archive import export_archive, export_archive_to_db

        if (out is None) == (to is None):
            raise InputError("export-archive: give exactly one of -o DIR or --to URL")
        if to is not None:
            rows = export_archive_to_db(root, to, schema=schema, db=db, with_timeseries=timeseries)
            for name, n in rows.items():
                typer.echo(f"{name}: {n} rows")
            return
        for p in export_archive(root, out, db=db, with_timeseries=timeseries, force=force):
            typer.echo(str(p))

    return app


def register(app: typer.Typer) -> None:
    app.add_typer(_db_app(), name="db")

    @app.command("cells")
    def cells_cmd(
        root: Path = _ROOT,
        where: list[str] = typer.Option(
            None, "--where", help="KEY<OP>VALUE, OP one of = != < <= > >= (repeatable; all hold)."
        ),
        sort: str = typer.Option(None, "--sort", help="Key to sort by ('-KEY' descending)."),
        columns: str = typer.Option(
            None, "--columns", help="Comma-separated keys to show (default: summary fields)."
        ),
        db: str = _DB,
        as_json: bool = typer.Option(False, "--json", help="A JSON list, one object per cell."),
        as_csv: bool = typer.Option(False, "--csv", help="CSV on stdout."),
    ) -> None:
        """Cells of the lab database, filtered on summary, metadata and layer keys."""
        _need_db()
        from cyclerflow.db.query import cells

        cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
        _print_frame(
            cells(root, where=where or (), sort=sort, columns=cols, db=db), as_json, as_csv
        )

    @app.command("query")
    def query_cmd(
        sql: str = typer.Argument(..., help="One SQL statement (run read-only)."),
        root: Path = _ROOT,
        db: str = _DB,
        as_json: bool = typer.Option(False, "--json"),
        as_csv: bool = typer.Option(False, "--csv"),
    ) -> None:
        """Read-only SQL on the lab database (a read-only connection/transaction)."""
        _need_db()
        from cyclerflow.db.query import query

        _print_frame(query(sql, root, db=db), as_json, as_csv)


__all__ = ["register"]
