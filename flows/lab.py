"""Analysis flows: one cell, a whole lab folder, and the live cells of a lab.

The work is done by the Prefect-free core (:mod:`cyclerflow.analysis`,
:mod:`cyclerflow.lab`); these flows only orchestrate it. Tasks receive and return file
paths and small dicts (summary rows), never arrays, and cells are grouped in batches
so the per-task overhead stays small.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from prefect.tasks import exponential_backoff

from cyclerflow.flows.runtime import api_shared_with_workers, batches, make_task_runner
from cyclerflow.lab import (
    CellEntry,
    LabCache,
    LabSettings,
    analyze_batch,
    build_lab_report,
    discover_cells,
    failed_row,
    is_transient_io_error,
    order_rows,
    plan_lab,
    write_lab_summary,
)


def _retry_on_transient_io(task: Any, task_run: Any, state: Any) -> bool:
    """Retry condition: only transient I/O errors (a bad file is not retried)."""
    try:
        state.result()
    except Exception as err:
        return is_transient_io_error(err)
    return False


IO_RETRY = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=1),
    "retry_condition_fn": _retry_on_transient_io,
}


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except Exception:  # outside a run context
        return logging.getLogger(__name__)


def _worker_count() -> int:
    """Workers of the current flow run's task runner (Dask threads or pool size)."""
    import os

    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    runner = getattr(ctx, "task_runner", None)
    client = getattr(runner, "_client", None)
    try:
        if client is not None:
            return max(1, sum(client.nthreads().values()))
    except Exception:
        pass
    cpus = os.cpu_count() or 2
    return max(1, min(int(getattr(runner, "_max_workers", None) or cpus), cpus))


def _fmt(v: Any, spec: str = ".4g", scale: float = 1.0) -> str:
    return "–" if v is None else format(v * scale, spec)


# -- one cell ------------------------------------------------------------------------


@task(name="analyze-cell", **IO_RETRY)
def analyze_cell_task(path: str, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run :func:`cyclerflow.analysis.analyze_cell` (writes ``<cell>.results.nc``)."""
    from cyclerflow.analysis import analyze_cell

    return analyze_cell(path, **LabSettings.from_dict(settings).analysis_kwargs())


def cell_markdown(result: dict[str, Any], path: str) -> str:
    """Headline numbers of one analysis as markdown."""
    cyc = result.get("cycling") or {}
    cycles = cyc.get("cycles") or []
    eis = result.get("eis") or {}
    arr = eis.get("arrhenius") or {}
    ref = next((c for c in cycles if c.get("cycle") == cyc.get("reference_cycle")), None)
    last = cycles[-1] if cycles else None
    lines = [
        f"# {result.get('cell_id') or Path(path).stem}",
        "",
        f"`{path}` — cyclerflow {result.get('software_version')}",
        "",
        "| quantity | value |",
        "| --- | --- |",
        f"| cycles | {len(cycles)} |",
        f"| reference cycle | {cyc.get('reference_cycle', '–')} |",
        f"| discharge capacity (reference) / µAh | {_fmt(ref and ref.get('discharge_capacity_ah'), '.5g', 1e6)} |",
        f"| capacity retention (last cycle) | {_fmt(last and last.get('capacity_retention'), '.5f')} |",
        f"| coulombic efficiency (last cycle) | {_fmt(last and last.get('coulombic_efficiency'), '.5f')} |",
        f"| fade rate / cycle | {_fmt(cyc.get('fade_rate_per_cycle'), '.3e')} |",
        f"| spectra | {len(eis.get('spectra') or [])} |",
        f"| σ(25 °C) / S cm⁻¹ | {_fmt(arr.get('conductivity_25c_s_per_cm'), '.3e')} |",
        f"| Ea / eV | {_fmt(arr.get('activation_energy_ev'), '.3f')} ± {_fmt(arr.get('activation_energy_stderr_ev'), '.3f')} ({arr.get('convention', '–')}) |",
    ]
    for w in result.get("warnings") or []:
        lines.append(f"\n> warning: {w}")
    return "\n".join(lines)


def _artifact_key(text: str) -> str:
    """Artifact keys: lowercase letters, digits and dashes only."""
    key = "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")
    return "-".join(p for p in key.split("-") if p)[:100] or "cell"


@flow(name="analyze-cell")
def analyze_cell_flow(
    path: str, settings: dict[str, Any] | None = None, artifact: bool = True
) -> dict[str, Any]:
    """Analyse one cell file: cycling metrics, EIS fits, Arrhenius, ``<cell>.results.nc``,
    and a markdown artifact with the headline numbers. Returns the analysis JSON."""
    result = analyze_cell_task(str(path), settings)
    if artifact:
        create_markdown_artifact(
            cell_markdown(result, str(path)),
            key=f"cell-{_artifact_key(result.get('cell_id') or Path(path).stem)}",
            description=f"analysis of {path}",
        )
    return result


# -- a lab ---------------------------------------------------------------------------


@task(name="discover-cells", **IO_RETRY)
def discover_task(root: str) -> list[dict[str, Any]]:
    return [e.to_dict() for e in discover_cells(root)]


@task(name="analyze-batch", **IO_RETRY)
def analyze_batch_task(
    entries: list[dict[str, Any]], settings: dict[str, Any]
) -> list[dict[str, Any]]:
    """Analyse a batch of cells (paths in, summary rows out); a bad cell gives a failed row."""
    return analyze_batch(entries, settings)


@task(name="write-lab-summary", **IO_RETRY)
def write_summary_task(
    rows: list[dict[str, Any]], out: str, settings: dict[str, Any], stem: str = "lab_summary"
) -> list[str]:
    csv_path, json_path = write_lab_summary(
        rows, out, settings=LabSettings.from_dict(settings), stem=stem
    )
    return [str(csv_path), str(json_path)]


@task(name="lab-report")
def report_task(
    rows: list[dict[str, Any]], out: str, root: str | None = None, database: str | None = None
) -> str | None:
    """The lab report; cells the lab database holds current are read from it."""
    try:
        path = build_lab_report(rows, out, root=root, database=database)
    except Exception as err:  # a report failure never fails the lab table
        _logger().warning("lab report failed: %s", err)
        return None
    if path is None:
        _logger().warning(
            "lab report skipped (cyclerflow.report.build_report not available or nothing analysed)"
        )
    return None if path is None else str(path)


def _run_batches(
    todo: list[CellEntry], settings: dict[str, Any], *, batch_size: int | None, n_workers: int
) -> list[dict[str, Any]]:
    """Submit batches; a batch that crashes as a whole is re-run one cell per task so only
    the culprit fails."""
    log = _logger()
    groups = batches([e.to_dict() for e in todo], batch_size=batch_size, n_workers=n_workers)
    futures = [analyze_batch_task.submit(g, settings) for g in groups]
    rows: list[dict[str, Any]] = []
    retry_single: list[dict[str, Any]] = []
    for g, fut in zip(groups, futures, strict=True):
        try:
            rows.extend(fut.result())
        except Exception as err:
            log.warning("batch of %d cells failed (%s): re-running them one by one", len(g), err)
            retry_single.extend(g)
    singles = [(e, analyze_batch_task.submit([e], settings)) for e in retry_single]
    for e, fut in singles:
        try:
            rows.extend(fut.result())
        except Exception as err:
            rows.append(failed_row(CellEntry(**e), f"{type(err).__name__}: {err}"))
    return rows


def lab_markdown(rows: list[dict[str, Any]], root: str, *, limit: int = 60) -> str:
    """The lab table (headline columns) as markdown, failed cells first."""
    n = {s: sum(1 for r in rows if r["status"] == s) for s in ("ok", "cached", "failed")}
    lines = [
        f"# Lab {root}",
        "",
        f"{len(rows)} cells: {n['ok']} analysed, {n['cached']} unchanged (cached), {n['failed']} failed.",
        "",
    ]
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        lines += (
            ["## Failed cells", ""] + [f"- `{r['path']}`: {r['reason']}" for r in failed] + [""]
        )
    lines += [
        "| cell | status | Q / µAh | retention@N | mean CE | fade / cycle | σ(25 °C) / S cm⁻¹ | Ea / eV | R_int / Ω cm² | flags |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in [r for r in rows if r["status"] != "failed"][:limit]:
        lines.append(
            f"| {r['cell_id']} | {r['status']} | {_fmt(r.get('discharge_capacity_ah'), '.4g', 1e6)} "
            f"| {_fmt(r.get('capacity_retention_at_n'), '.4f')} | {_fmt(r.get('mean_coulombic_efficiency'), '.5f')} "
            f"| {_fmt(r.get('fade_rate_per_cycle'), '.2e')} | {_fmt(r.get('conductivity_25c_s_per_cm'), '.2e')} "
            f"| {_fmt(r.get('activation_energy_ev'), '.3f')} | {_fmt(r.get('r_interface_ohm_cm2'), '.4g')} | {r.get('flags') or ''} |"
        )
    if len(rows) - len(failed) > limit:
        lines.append(f"\n… {len(rows) - len(failed) - limit} more rows in lab_summary.csv")
    return "\n".join(lines)


@flow(name="analyze-batches")
def analyze_batches_flow(
    entries: list[dict[str, Any]], settings: dict[str, Any], batch_size: int | None = None
) -> list[dict[str, Any]]:
    """The parallel part of the lab flow as a subflow, so it can run on its own task
    runner (a Dask cluster) while the parent flow runs wherever it was started."""
    return _run_batches(
        [CellEntry(**e) for e in entries],
        settings,
        batch_size=batch_size,
        n_workers=_worker_count(),
    )


@task(name="analyze-on-dask", **IO_RETRY)
def analyze_on_dask_task(
    entries: list[dict[str, Any]],
    settings: dict[str, Any],
    dask_address: str | None = None,
    local_dask_workers: int | None = None,
    dask_processes: bool = True,
    batch_size: int | None = None,
) -> list[dict[str, Any]]:
    """``dask_mode="direct"``: the batches go to the Dask cluster as plain functions
    (:func:`cyclerflow.lab.analyze_batch`), without a Prefect task engine around each
    one on the workers; this task (in the flow's process) waits for them. A batch that
    crashes its worker is re-run one cell at a time."""
    from distributed import Client, LocalCluster

    cluster = None
    if dask_address:
        client = Client(dask_address)
    else:
        cluster = LocalCluster(
            n_workers=int(local_dask_workers or 2),
            threads_per_worker=1,
            processes=dask_processes,
            dashboard_address=None,
        )
        client = Client(cluster)
    try:
        n_workers = max(1, sum(client.nthreads().values()))
        groups = batches(entries, batch_size=batch_size, n_workers=n_workers)
        futs = client.map(analyze_batch, groups, settings=settings, pure=False)
        rows: list[dict[str, Any]] = []
        for g, fut in zip(groups, futs, strict=True):
            try:
                rows.extend(fut.result())
            except Exception as err:
                _logger().warning(
                    "batch of %d cells failed on Dask (%s): re-running them one by one", len(g), err
                )
                for e in g:
                    try:
                        rows.extend(
                            client.submit(analyze_batch, [e], settings, pure=False).result()
                        )
                    except Exception as err1:
                        rows.append(failed_row(CellEntry(**e), f"{type(err1).__name__}: {err1}"))
        return rows
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _analyse(
    todo: list[CellEntry],
    sdict: dict[str, Any],
    *,
    batch_size: int | None,
    dask_address: str | None,
    local_dask_workers: int | None,
    dask_processes: bool,
    dask_mode: str = "tasks",
) -> list[dict[str, Any]]:
    if not todo:
        return []
    if dask_address or local_dask_workers:
        entries = [e.to_dict() for e in todo]
        if dask_mode == "direct":
            return analyze_on_dask_task(
                entries, sdict, dask_address, local_dask_workers, dask_processes, batch_size
            )
        runner = make_task_runner(
            dask_address, local_dask_workers=local_dask_workers, processes=dask_processes
        )
        sub = analyze_batches_flow.with_options(task_runner=runner)
        with api_shared_with_workers(dask_address):
            return sub(entries, sdict, batch_size=batch_size)
    return _run_batches(todo, sdict, batch_size=batch_size, n_workers=_worker_count())


@flow(name="analyze-lab")
def analyze_lab_flow(
    root: str,
    out: str | None = None,
    settings: dict[str, Any] | None = None,
    batch_size: int | None = None,
    report: bool = True,
    use_cache: bool = True,
    dask_address: str | None = None,
    local_dask_workers: int | None = None,
    dask_processes: bool = True,
    dask_mode: str = "tasks",
    database: str | None = None,
) -> dict[str, Any]:
    """Analyse every cell file under ``root`` (skipping unchanged ones), write
    ``lab_summary.csv/json`` and the lab report into ``out`` (default ``root``).

    ``dask_address`` (an existing dask.distributed scheduler) or ``local_dask_workers``
    (a temporary LocalCluster) run the cell analyses on Dask: ``dask_mode="tasks"``
    (default) as one Prefect task per batch through prefect-dask's DaskTaskRunner,
    ``"direct"`` as plain Dask functions under one Prefect task (less overhead on the
    workers, less detail in the UI).
    One failing cell is reported with its reason and never fails the others.
    ``database``: the lab database URL the run is indexed into (default
    ``$CYCLERFLOW_DB_URL``, else ``ROOT/.cyclerflow/lab.db``; needs the ``[db]`` extra).
    Returns {"counts", "failed": {path: reason}, "summary": [csv, json], "report", "rows"}.
    """
    log = _logger()
    if dask_mode not in ("tasks", "direct"):
        from cyclerflow.errors import InputError

        raise InputError(f"dask_mode must be 'tasks' or 'direct', got {dask_mode!r}")
    lab_settings = LabSettings.from_dict(settings)
    sdict = lab_settings.as_dict()
    out_dir = Path(out) if out else Path(root)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = [CellEntry(**d) for d in discover_task(str(root))]
    cache = LabCache.for_output(out_dir) if use_cache else LabCache(out_dir / ".unused-cache")
    todo, cached, keys = plan_lab(entries, lab_settings, cache)
    log.info(
        "%d cells under %s: %d to analyse, %d unchanged", len(entries), root, len(todo), len(cached)
    )
    fresh = _analyse(
        todo,
        sdict,
        batch_size=batch_size,
        dask_address=dask_address,
        local_dask_workers=local_dask_workers,
        dask_processes=dask_processes,
        dask_mode=dask_mode,
    )
    by_path = {e.path: e for e in entries}
    for r in fresh:
        cache.store(by_path[r["path"]], keys[r["path"]], r)
    rows = order_rows(cached + fresh)
    summary = write_summary_task(rows, str(out_dir), sdict)
    from cyclerflow.db.hook import index_if_installed  # the lab database (cyclerflow[db])

    index_if_installed(root, entries, rows, lab_settings, database)
    if use_cache:
        try:
            cache.save()
        except OSError as err:
            log.warning("could not save the lab cache %s: %s", cache.path, err)
    report_path = report_task(rows, str(out_dir), str(root), database) if report else None
    create_markdown_artifact(
        lab_markdown(rows, str(root)), key="lab-summary", description=f"lab summary of {root}"
    )
    failed = {r["path"]: r["reason"] for r in rows if r["status"] == "failed"}
    for path, reason in failed.items():
        log.warning("cell failed: %s: %s", path, reason)
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in ("ok", "cached", "failed")}
    return {
        "counts": counts,
        "failed": failed,
        "summary": summary,
        "report": report_path,
        "rows": len(rows),
    }


@flow(name="analyze-live-cells")
def analyze_live_cells_flow(
    root: str,
    out: str | None = None,
    settings: dict[str, Any] | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Re-analyse the cells under ``root`` that a writer has open (SWMR reads); writes
    ``live_summary.csv/json``. Meant for a short schedule (default every 15 min)."""
    lab_settings = LabSettings.from_dict(settings)
    out_dir = Path(out) if out else Path(root)
    out_dir.mkdir(parents=True, exist_ok=True)
    live = [CellEntry(**d) for d in discover_task(str(root)) if d["live"]]
    rows = order_rows(
        _run_batches(live, lab_settings.as_dict(), batch_size=batch_size, n_workers=_worker_count())
    )
    if rows:
        write_summary_task(rows, str(out_dir), lab_settings.as_dict(), stem="live_summary")
        create_markdown_artifact(
            lab_markdown(rows, str(root)), key="live-cells", description=f"live cells under {root}"
        )
    return {
        "live": len(rows),
        "failed": {r["path"]: r["reason"] for r in rows if r["status"] == "failed"},
    }


def run_analyze_lab(
    root: str | Path,
    *,
    out: str | Path | None = None,
    dask_address: str | None = None,
    local_dask_workers: int | None = None,
    processes: bool = True,
    settings: dict[str, Any] | None = None,
    batch_size: int | None = None,
    report: bool = True,
    dask_mode: str = "tasks",
    database: str | None = None,
) -> dict[str, Any]:
    """Run :func:`analyze_lab_flow` once (thread pool; or Dask at ``dask_address``; or a
    temporary LocalCluster of ``local_dask_workers``)."""
    return analyze_lab_flow(
        root=str(root),
        out=None if out is None else str(out),
        settings=settings,
        batch_size=batch_size,
        report=report,
        dask_address=dask_address,
        local_dask_workers=local_dask_workers,
        dask_processes=processes,
        dask_mode=dask_mode,
        database=database,
    )
