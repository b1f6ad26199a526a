"""Read one cell's files into a :class:`~cyclerflow.db.records.CellRecord`.

Sources: the cell file (``/cell`` metadata JSON, events, format version, live/closed
state, last sample time, SHA-256) and ``<cell>.results.nc`` (the analyze JSON object and
its provenance). A results file whose input SHA-256 is not the cell file's is indexed with
status ``stale``; a cell without results is ``not_analysed``; a lab run's failure is
``failed`` with its reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cyclerflow.db import records as R
from cyclerflow.errors import InputError
from cyclerflow.lab import CellEntry, LabSettings, failed_row, summary_row


def _raw_metadata(path: str) -> dict[str, Any]:
    from cyclerflow.store.reader import read_cell_attrs

    text = read_cell_attrs(path).get("metadata_json")
    meta = json.loads(text) if text else {}
    return meta if isinstance(meta, dict) else {}


def _cell_file_row(entry: CellEntry, cell_id: str) -> dict[str, Any]:
    from cyclerflow.analysis import file_sha256
    from cyclerflow.store.reader import summary

    extra: dict[str, Any] = {"live": entry.live, "error": entry.error}
    extra["sha256"] = file_sha256(entry.path)
    if not entry.error:
        try:
            info = summary(entry.path)
            fv = info.get("format_version")
            extra.update(
                format_version=None if fv is None else str(fv),
                closed=info.get("state") == "closed",
                last_sample_time_second=info.get("last_unix_time_second"),
            )
        except InputError as err:
            extra["error"] = err.bare_message
    return R.file_row(entry.path, "cell", cell_id, **extra)


def _events(entry: CellEntry, cell_id: str) -> list[dict[str, Any]]:
    from cyclerflow.store.reader import read_events

    if entry.error:
        return []
    try:
        evs = read_events(entry.path)
    except InputError:
        return []
    return [
        {
            "cell_id": cell_id,
            "seq": i,
            "time_second": ev.get("unix_time_second"),
            "kind": ev.get("kind"),
            "event_json": ev,
        }
        for i, ev in enumerate(evs)
    ]


def _analysis(
    entry: CellEntry, settings: LabSettings, sha: str, lab_row: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]:
    """(lab summary row, analyze JSON or None, run row or None)."""
    from cyclerflow.analysis import load_results, results_path

    if lab_row is not None and lab_row.get("status") == "failed":
        row = failed_row(entry, lab_row.get("reason") or "failed")
        return row, None, _run(entry, settings, "failed", row["reason"], None, None)
    rp = results_path(entry.path)
    if entry.error or not rp.exists():
        reason = entry.error or "no results file (not analysed yet)"
        status = "failed" if entry.error else "not_analysed"
        row = failed_row(entry, reason)
        row["status"] = status
        return row, None, None
    try:
        result, _ = load_results(rp)
        prov = R.results_provenance(rp)
    except InputError as err:
        row = failed_row(entry, f"results file: {err.bare_message}")
        return row, None, None
    row = summary_row(result, entry, settings, results_path=str(rp.resolve()))
    row["analysed_unix_time_second"] = rp.stat().st_mtime
    status = "ok" if prov["input_sha256"] == sha else "stale"
    row["status"] = status
    return row, result, _run(entry, settings, status, None, rp, prov)


def _run(entry, settings, status, reason, rp: Path | None, prov) -> dict[str, Any]:
    prov = prov or {}
    return {
        "software_version": prov.get("software_version"),
        "settings_json": {"analysis": prov.get("settings"), "lab": settings.as_dict()},
        "input_sha256": prov.get("input_sha256"),
        "results_path": None if rp is None else str(rp.resolve()),
        "started_unix_time_second": None,
        "finished_unix_time_second": None if rp is None else rp.stat().st_mtime,
        "status": status,
        "reason": reason,
    }


def cell_record(
    entry: CellEntry, settings: LabSettings, *, lab_row: dict[str, Any] | None = None
) -> R.CellRecord:
    """Every row of one cell, from its files (``lab_row`` only passes a lab run's failure)."""
    from cyclerflow.analysis import results_path

    meta: dict[str, Any] = {}
    if not entry.error:
        try:
            meta = _raw_metadata(entry.path)
        except (InputError, ValueError) as err:
            entry = CellEntry(**{**entry.to_dict(), "error": f"metadata: {err}"})
    cell_id = str(meta.get("cell_id") or entry.cell_id or Path(entry.path).stem)
    cell, layers, keys = R.metadata_rows(cell_id, meta, str(Path(entry.path).resolve()))
    files = [_cell_file_row(entry, cell_id)]
    row, result, run = _analysis(entry, settings, files[0]["sha256"], lab_row)
    rp = results_path(entry.path)
    if result is not None:
        files.append(R.file_row(rp, "results", cell_id, closed=True))
    if run is not None:
        run["cell_id"] = cell_id
    result = result or {}
    return R.CellRecord(
        cell_id=cell_id,
        cell=cell,
        layers=layers,
        files=files,
        run=run,
        cycles=R.cycle_rows(cell_id, result.get("cycling")),
        spectra=R.spectrum_rows(cell_id, result.get("eis")),
        summary=R.summary_values(cell_id, row, result),
        events=_events(entry, cell_id),
        keys=tuple(sorted(keys)),
    )
