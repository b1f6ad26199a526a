"""Fixtures of the database tests: a synthetic lab, and a real PostgreSQL server.

PostgreSQL comes from Debian's packages (``apt-get install -y postgresql`` is tried when
it is missing and we are root). The server runs from a temporary data directory as an
unprivileged user when the tests run as root, on a free loopback port, and is stopped at
the end of the session. Tests marked ``postgres`` skip, saying why, only where PostgreSQL
cannot be installed or started.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")

PG_USER = "nobody"


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _install_postgres() -> str | None:
    """Install Debian's postgresql when missing; None on success, else why not."""
    if _pg_bin() is not None:
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "PostgreSQL is not installed and cannot be (not root or no apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if r.returncode != 0 and cmd[1] == "install":
            return f"apt-get install postgresql failed: {r.stderr.strip()[-300:]}"
    return None if _pg_bin() else "postgresql installed but no initdb found"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A throw-away PostgreSQL cluster; :meth:`new_database` gives each test its own DB."""

    def __init__(self, bindir: Path, settings: Sequence[str] = ()):
        self.bindir = bindir
        self.settings = tuple(settings)  # NAME=VALUE server settings
        self.tmp = Path(tempfile.mkdtemp(prefix="cfpg-"))
        self.data = self.tmp / "data"
        self.port = _free_port()
        self.as_user = PG_USER if os.geteuid() == 0 else None
        if self.as_user:
            shutil.chown(self.tmp, user=self.as_user)

    def _run(self, *args: str) -> None:
        r = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            user=self.as_user,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.tmp,
        )
        if r.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {r.stderr or r.stdout}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        opts = f"-p {self.port} -k {self.tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
        opts += "".join(f" -c {s}" for s in self.settings)
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.tmp / "log"), "-w", "start"
        )

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_server():
    why = _install_postgres()
    if why:
        pytest.skip(why)
    pytest.importorskip("psycopg")
    server = PostgresServer(_pg_bin())
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        shutil.rmtree(server.tmp, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {err}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    """A fresh, empty database URL on each back-end."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'lab.db'}"
    return request.getfixturevalue("postgres_server").new_database()


@pytest.fixture(scope="session")
def lab_template(tmp_path_factory) -> Path:
    """A lab of 4 synthetic cells, analysed once (copied per test)."""
    from labmaker import make_lab

    from cyclerflow.lab import run_lab

    root = make_lab(tmp_path_factory.mktemp("labtpl") / "lab")
    run_lab(root, report=False, database=False)
    return root


@pytest.fixture
def lab(lab_template, tmp_path) -> Path:
    dst = tmp_path / "lab"
    shutil.copytree(lab_template, dst)
    for p in dst.rglob(".cyclerflow*"):
        if p.is_file():
            p.unlink()
    return dst
