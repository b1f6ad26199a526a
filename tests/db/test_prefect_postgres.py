"""Prefect's server on the lab's PostgreSQL (its own database), a deployment of analyze-lab
run through a process worker, the results in the lab database on the same PostgreSQL."""

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

_DEPLOY = """
import sys
from prefect.deployments import run_deployment
from prefect.types.entrypoint import EntrypointType
from cyclerflow.flows.lab import analyze_lab_flow
dep = analyze_lab_flow.to_deployment(
    name="e2e",
    parameters={"root": sys.argv[1], "report": False, "database": sys.argv[2]},
    entrypoint_type=EntrypointType.MODULE_PATH,
)
dep.apply(work_pool_name="cf-process")
print(run_deployment(name="analyze-lab/e2e", timeout=0).id)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _wait_state(api: str, run_id: str, timeout: float = 600) -> dict:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        run = _get(f"{api}/flow_runs/{run_id}")
        if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        time.sleep(2)
    pytest.fail(f"flow run {run_id} did not finish")


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


def _start_server(env: dict, port: int) -> subprocess.Popen:
    """``prefect server start`` on 127.0.0.1:port, in its own process group."""
    return subprocess.Popen(
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
    server = _start_server(env, port)
    worker = None
    try:
        _wait_healthy(api, server)
        env["PREFECT_API_URL"] = api
        prefect = [sys.executable, "-m", "prefect"]
        subprocess.run(
            [*prefect, "work-pool", "create", "cf-process", "--type", "process"],
            env=env, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        dep = subprocess.run(
            [sys.executable, "-c", _DEPLOY, str(lab), lab_db],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert dep.returncode == 0, dep.stderr[-2000:]
        run_id = dep.stdout.strip().splitlines()[-1]
        worker = subprocess.Popen(
            [*prefect, "worker", "start", "--pool", "cf-process", "--type", "process"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        run = _wait_state(api, run_id)
        assert run["state_type"] == "COMPLETED", run["state"]
        # the server's tables live in PostgreSQL (its own database)
        import psycopg

        with psycopg.connect(prefect_db.replace("+asyncpg", "")) as c:
            row = c.execute("SELECT state_type FROM flow_run WHERE id = %s", (run_id,)).fetchone()
        assert row is not None and row[0] == "COMPLETED"
        from cyclerflow.db.query import cells

        got = cells(db=lab_db, where=["electrolyte.material=LiPON", "status=ok"])
        assert len(got) == 4
    finally:
        if worker is not None:
            _stop(worker)
        _stop(server)
