"""Deployments of the flows with schedules, and serving them.

Two deployments by default:

- ``analyze-lab/nightly``: the lab flow on a cron schedule (default ``0 2 * * *``,
  02:00 every night, in ``timezone``);
- ``analyze-live-cells/live``: the live-cell flow on an interval (default 15 min).

Both schedules and all parameters are arguments of :func:`build_deployments` (and
options of ``cyclerflow flows serve``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

DEFAULT_LAB_CRON = "0 2 * * *"
DEFAULT_LIVE_INTERVAL_S = 15 * 60


def build_deployments(
    root: str | Path,
    *,
    out: str | Path | None = None,
    lab_cron: str | None = DEFAULT_LAB_CRON,
    live_interval_s: float | None = DEFAULT_LIVE_INTERVAL_S,
    timezone: str | None = None,
    settings: dict[str, Any] | None = None,
    dask_address: str | None = None,
    batch_size: int | None = None,
) -> list[Any]:
    """``RunnerDeployment`` objects for the lab and live-cell flows (None disables one)."""
    from prefect.schedules import Cron, Interval
    from prefect.types.entrypoint import EntrypointType

    from cyclerflow.flows.lab import analyze_lab_flow, analyze_live_cells_flow

    root = str(Path(root).resolve())
    out = None if out is None else str(Path(out).resolve())
    deps = []
    if lab_cron:
        deps.append(
            analyze_lab_flow.to_deployment(
                name="nightly",
                schedule=Cron(lab_cron, timezone=timezone or "UTC"),
                parameters={
                    "root": root,
                    "out": out,
                    "settings": settings,
                    "dask_address": dask_address,
                    "batch_size": batch_size,
                },
                description="Analyse every changed cell file of the lab and write the lab summary and report.",
                tags=["cyclerflow", "lab"],
                entrypoint_type=EntrypointType.MODULE_PATH,
            )
        )
    if live_interval_s:
        deps.append(
            analyze_live_cells_flow.to_deployment(
                name="live",
                schedule=Interval(
                    dt.timedelta(seconds=float(live_interval_s)), timezone=timezone or "UTC"
                ),
                parameters={
                    "root": root,
                    "out": out,
                    "settings": settings,
                    "batch_size": batch_size,
                },
                description="Re-analyse the cells being written right now (SWMR reads).",
                tags=["cyclerflow", "live"],
                entrypoint_type=EntrypointType.MODULE_PATH,
            )
        )
    return deps


def register_deployments(deployments: list[Any]) -> list[Any]:
    """Create or update the deployments (and their schedules) in the Prefect API;
    returns their ids. ``serve`` does the same before it starts polling."""
    return [d.apply() for d in deployments]


def serve_deployments(
    deployments: list[Any], *, limit: int | None = None, api_url: str | None = None
) -> None:
    """Serve the deployments (blocks; Ctrl-C stops and pauses their schedules).

    ``api_url``: the Prefect API to use for this call (and the flow runs it starts)."""
    from prefect import serve
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if api_url is None:
        serve(*deployments, limit=limit)
        return
    with temporary_settings({PREFECT_API_URL: api_url}):
        serve(*deployments, limit=limit)
