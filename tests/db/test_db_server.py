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
    # setenv first, so that monkeypatch removes the key again after the test (delenv of
    # an absent key records nothing: the URL leaked into every later test's environment
    # and Prefect's ephemeral server of the README tour tried to reach "dbhost")
    monkeypatch.setenv(_KEY, "unset-after-test")
    monkeypatch.delenv(_KEY)
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
    monkeypatch.setenv(_KEY, "unset-after-test")
    monkeypatch.delenv(_KEY)
    assert main(["flows", "serve", "--root", str(tmp_path), "--db-server", url]) == 2
    assert message in capsys.readouterr().err
    assert _KEY not in os.environ  # nothing configured half-way


def test_ephemeral_server_that_never_starts_names_its_database(monkeypatch):
    from cyclerflow.flows.cli import _ephemeral_failure

    monkeypatch.setenv(_KEY, "postgresql+asyncpg://cf:secret@dbhost:5433/prefect")
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "7")
    message = str(_ephemeral_failure())
    assert "dbhost:5433" in message and "within 7 s" in message
    assert "secret" not in message
