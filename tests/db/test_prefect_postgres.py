"""Prefect's server on the lab's PostgreSQL (its own database), a real analyze-lab run
reported to it, the results in the lab database on the same PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("prefect")
pytest.importorskip("asyncpg")

pytestmark = [pytest.mark.postgres, pytest.mark.flows, pytest.mark.slow]

_RUN = """
import json, sys
from cyclerflow.flows.lab import run_analyze_lab
out = run_analyze_lab(sys.argv[1], report=False, database=sys.argv[2])
print(json.dumps(out["counts"]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> object:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _wait_healthy(api: str, proc: subprocess.Popen, timeout: float = 240) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            pytest.fail(f"prefect server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail("prefect server on PostgreSQL did not answer")


def test_prefect_server_on_postgres_runs_analyze_lab(postgres_server, lab, tmp_path):
    prefect_db = postgres_server.new_database().replace("+psycopg", "+asyncpg")
    lab_db = postgres_server.new_database()
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_DATABASE_CONNECTION_URL": prefect_db,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_healthy(api, server)
        run = subprocess.run(
            [sys.executable, "-c", _RUN, str(lab), lab_db],
            env={**env, "PREFECT_API_URL": api},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        assert json.loads(run.stdout.strip().splitlines()[-1])["ok"] == 4
        runs = _post(f"{api}/flow_runs/filter", {"limit": 20})
        states = {r["name"]: r["state_type"] for r in runs}
        assert "COMPLETED" in states.values(), states
        # the server's tables live in PostgreSQL (its own database)
        import psycopg

        with psycopg.connect(prefect_db.replace("+asyncpg", "")) as c:
            n = c.execute("SELECT count(*) FROM flow_run").fetchone()[0]
        assert n == len(runs) >= 1
        from cyclerflow.db.query import cells

        assert len(cells(db=lab_db, where=["electrolyte.material=LiPON"])) == 4
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
