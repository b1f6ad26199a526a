"""Prefect settings for the embedded default, task runners, and batching of work.

Nothing here imports Prefect at module level: :func:`configure_prefect_env` must run
before Prefect reads its settings (it does when ``cyclerflow.flows`` is imported).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

#: environment defaults for running with no server and offline (only set when absent)
EMBEDDED_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    # the first start of the ephemeral server on a new machine creates and migrates
    # its SQLite database: 15-40 s on a busy 2-core machine; Prefect's default is 20 s
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def configure_prefect_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Set the embedded-mode defaults in ``environ`` (default ``os.environ``) when absent,
    and remove an empty ``PREFECT_API_URL`` (empty breaks Prefect's event client; unset
    means "use the ephemeral server"). Returns what was changed."""
    env = os.environ if environ is None else environ
    changed = {}
    for key, value in EMBEDDED_DEFAULTS.items():
        if key not in env:
            env[key] = value
            changed[key] = value
    if "PREFECT_API_URL" in env and not env["PREFECT_API_URL"].strip():
        del env["PREFECT_API_URL"]
        changed["PREFECT_API_URL"] = "<removed empty value>"
    return changed


def api_mode() -> str:
    """``"server <url>"`` when PREFECT_API_URL is set, else ``"ephemeral"``."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    return f"server {url}" if url else "ephemeral"


@contextmanager
def embedded_run_settings():
    """Settings for a flow run started here with no server configured (ephemeral mode):
    flow-run heartbeats off.

    Heartbeats let a Prefect server mark a flow run whose process died as crashed; the
    ephemeral server dies with this process, so nobody could act on them. They cost
    up to 1 s per flow and subflow run (Prefect's heartbeat thread sleeps in 1 s
    steps and the flow joins it on exit): an empty flow with one subflow takes 2.1 s
    with them and 0.4 s without. With PREFECT_API_URL set, Prefect's default stays.
    """
    if api_mode() != "ephemeral":
        yield
        return
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def _run_api_url() -> str | None:
    """The HTTP API URL the current flow run talks to (its client's base URL), or None
    outside a flow run or with an in-process (ASGI) client that workers cannot reach."""
    from prefect.context import FlowRunContext

    client = getattr(FlowRunContext.get(), "client", None)
    url = str(getattr(client, "api_url", "") or "").rstrip("/")
    return (
        url if url.startswith(("http://", "https://")) and "ephemeral-prefect" not in url else None
    )


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def api_reachable_by_workers(api_url: str, dask_address: str | None) -> bool:
    """Whether Dask workers can reach ``api_url``: a loopback API (the ephemeral server
    listens on 127.0.0.1) only from a local cluster (``dask_address`` None, i.e. a
    LocalCluster of this run, or a scheduler on a loopback address)."""
    from urllib.parse import urlsplit

    if urlsplit(api_url).hostname not in _LOOPBACK or not dask_address:
        return True
    return urlsplit(dask_address).hostname in _LOOPBACK


@contextmanager
def api_shared_with_workers(dask_address: str | None = None) -> Iterator[str | None]:
    """Within this block, tasks submitted to other processes (Dask workers) report to the
    server this flow run uses. Yields that API URL (None: nothing to share).

    With no ``PREFECT_API_URL`` the flow runs against Prefect's ephemeral server, and a
    Dask worker process that receives a Prefect task would start an ephemeral server of
    its own (measured: about 7.5 s CPU per worker on a 2-core machine, competing with the
    analyses, and the task runs land in throw-away databases). The settings travel with
    each submitted task (Prefect serialises the settings context), so setting the URL
    here is enough; a URL already configured is left alone. Workers of a cluster at a
    non-loopback ``dask_address`` cannot reach the ephemeral server on 127.0.0.1: they
    keep Prefect's default (give them ``PREFECT_API_URL``, see docs/flows.md).
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield PREFECT_API_URL.value()
        return
    url = _run_api_url()
    if url is None or not api_reachable_by_workers(url, dask_address):
        yield None
        return
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield url


def make_task_runner(
    dask_address: str | None = None,
    *,
    local_dask_workers: int | None = None,
    processes: bool = True,
    threads: int | None = None,
) -> Any:
    """The task runner for a flow run.

    - ``dask_address`` (``tcp://host:8786``): an existing dask.distributed scheduler,
      through prefect-dask.
    - ``local_dask_workers``: a temporary LocalCluster with that many workers
      (``processes=False`` runs them as threads in this process).
    - neither: Prefect's thread pool (``threads`` workers; default = CPU count).
    """
    if dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=dask_address)
    if local_dask_workers:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": int(local_dask_workers),
                "threads_per_worker": 1,
                "processes": processes,
                "dashboard_address": None,
            }
        )
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=threads or os.cpu_count() or 2)


def batches(
    items: Sequence[T], *, batch_size: int | None = None, n_workers: int = 2, per_worker: int = 4
) -> list[list[T]]:
    """Split work into batches so each task carries enough of it to hide task overhead.

    With ``batch_size`` given, fixed-size batches; otherwise about ``per_worker``
    batches per worker (enough for load balancing, few enough for low overhead).
    """
    items = list(items)
    if not items:
        return []
    if batch_size is None:
        n_batches = max(1, min(len(items), n_workers * per_worker))
        batch_size = math.ceil(len(items) / n_batches)
    batch_size = max(1, int(batch_size))
    return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]


def _healthy(url: str, timeout_s: float = 2.0) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout_s) as r:
            return r.status == 200
    except OSError:
        return False


def start_local_server(
    *, host: str = "127.0.0.1", port: int = 4200, timeout_s: float = 180.0, log=print
):
    """A Prefect server for ``serve`` when no PREFECT_API_URL is set.

    The ephemeral server that ``flows run`` uses does not run Prefect's scheduler, so
    scheduled runs would never be created. This reuses a healthy server already on
    ``host:port``, or starts ``prefect server start`` there (database in PREFECT_HOME,
    so run history survives restarts). Returns (api url, process or None); stop the
    process with :func:`stop_local_server`.
    """
    import subprocess
    import sys
    import time

    url = f"http://{host}:{port}/api"
    if _healthy(url):
        log(f"Prefect: using the server already running at {url}")
        return url, None
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    configure_prefect_env(env)
    log(
        f"Prefect: starting a local server at {url} (first start creates its database: up to a minute)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(
                f"`prefect server start` exited with code {proc.returncode} (is port {port} in use?)"
            )
        if _healthy(url):
            return url, proc
        time.sleep(0.5)
    stop_local_server(proc)
    raise RuntimeError(f"the local Prefect server did not answer at {url} within {timeout_s:.0f} s")


def stop_local_server(proc) -> None:
    """Stop a server started by :func:`start_local_server` (its whole process group)."""
    import signal
    import subprocess

    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
