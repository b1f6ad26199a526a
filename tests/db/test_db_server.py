"""`flows serve --db-server URL`: the local Prefect server keeps its runs in PostgreSQL.
(The server itself on PostgreSQL, end to end, is test_prefect_postgres.py.)"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("prefect")

from cyclerflow.cli import main  # noqa: E402

_KEY = "PREFECT_API_DATABASE_CONNECTION_URL"


def test_db_server_points_the_local_prefect_server_at_postgres(monkeypatch):
    from cyclerflow.flows.cli import use_db_server

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv(_KEY, raising=False)
    got = use_db_server("postgresql+psycopg://cf:secret@dbhost:5433/prefect")
    assert got == "postgresql+asyncpg://cf:secret@dbhost:5433/prefect" == os.environ[_KEY]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///prefect.db", "expected a PostgreSQL URL"),
        ("not a url", "not a database URL"),
    ],
)
def test_db_server_bad_input_is_one_clear_error(tmp_path, capsys, monkeypatch, url, message):
    monkeypatch.delenv(_KEY, raising=False)
    assert main(["flows", "serve", "--root", str(tmp_path), "--db-server", url]) == 2
    assert message in capsys.readouterr().err
    assert _KEY not in os.environ  # nothing configured half-way
