"""One cell's database rows, built from its files (no database here).

:func:`cell_record` reads the cell file (metadata, events, state) and its
``.results.nc`` (the ``analyze`` JSON object, settings, input SHA-256) and returns a
:class:`CellRecord`: the rows of every table for that cell. The lab writer and
``db rebuild`` both use it, so the incremental index and a rebuild agree.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cyclerflow.db import schema as S
from cyclerflow.errors import InputError

_META_COLUMNS = ("wafer", "die", "cell", "active_area_cm2", "nominal_capacity_uah", "notes")
_LAYER_COLUMNS = ("role", "material", "thickness_um", "density_g_cm3", "mass_mg", "deposition")
_LAYER_COLUMNS_ALL = (*_LAYER_COLUMNS, "anneal_c")


@dataclass(frozen=True)
class CellRecord:
    """Rows of one cell: dicts keyed by column (cycles as tuples in ``cycle_columns`` order)."""

    cell_id: str
    cell: dict[str, Any]
    layers: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    run: dict[str, Any] | None = None
    cycles: list[tuple] = field(default_factory=list)
    spectra: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    keys: tuple[tuple[str, str], ...] = ()


def cycle_columns() -> list[str]:
    """Column order of :attr:`CellRecord.cycles` tuples."""
    return ["cell_id", "cycle", *S.CYCLE_FIELDS, "extra_json"]


def _dumps(obj: Any) -> str | None:
    return None if obj is None else json.dumps(obj, allow_nan=False, default=str)


def metadata_rows(cell_id: str, meta: dict[str, Any], path: str) -> tuple[dict, list[dict], set]:
    """(cells row, layer rows, known keys) from a metadata mapping (lab units)."""
    cell = {"cell_id": cell_id, "path": path, "metadata_json": meta}
    cell.update({k: meta.get(k) for k in _META_COLUMNS})
    cell["updated_unix_time_second"] = time.time()
    keys = {("metadata", k) for k in meta if k != "layers"}
    layers = []
    for i, lay in enumerate(meta.get("layers") or []):
        row = {"cell_id": cell_id, "position": i}
        row.update({k: lay.get(k) for k in _LAYER_COLUMNS_ALL})
        extra = {k: v for k, v in lay.items() if k not in _LAYER_COLUMNS_ALL and v is not None}
        row["parameters_json"] = extra or None
        layers.append(row)
        role = lay.get("role") or "other"
        keys |= {(role, k) for k, v in lay.items() if k != "role" and v is not None}
    return cell, layers, keys


def _as_column(value: Any, kind: Any) -> Any:
    """``value`` as the Python type of its column (COPY's binary format checks types: a
    numpy bool or a label that is not a ``str`` would be refused)."""
    if value is None:
        return None
    if kind is sa.Boolean:
        return bool(value)
    if kind is sa.Text:
        return str(value)
    return float(value)


def cycle_rows(cell_id: str, cycling: dict[str, Any] | None) -> list[tuple]:
    """Per-cycle rows (tuples); fields the schema does not model go to ``extra_json``."""
    out: dict[int, tuple] = {}
    modelled = set(S.CYCLE_FIELDS) | {"cycle"}
    for c in (cycling or {}).get("cycles") or []:
        n = c.get("cycle")
        if n is None:
            continue
        extra = {k: v for k, v in c.items() if k not in modelled}
        out[int(n)] = (
            cell_id,
            int(n),
            *(_as_column(c.get(k), t) for k, t in S.CYCLE_FIELDS.items()),
            _dumps(extra) if extra else None,
        )
    return [out[n] for n in sorted(out)]


def _roles(spec: dict[str, Any]) -> str | None:
    arcs = (spec.get("role_evidence") or {}).get("arcs") or []
    roles = [str(a.get("role")) for a in arcs if a.get("role")]
    return ";".join(roles) or None


def spectrum_rows(cell_id: str, eis: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per-spectrum rows; the whole spectrum object is kept in ``spectrum_json``."""
    rows = []
    for i, spec in enumerate((eis or {}).get("spectra") or []):
        row = {"cell_id": cell_id, "spectrum": i, "spectrum_json": spec}
        for k in S.SPECTRUM_FIELDS:
            row[k] = spec.get(k)
        row["roles"] = _roles(spec)
        flags = spec.get("flags")
        row["flags"] = ";".join(map(str, flags)) if isinstance(flags, list) else flags
        rows.append(row)
    return rows


def summary_values(
    cell_id: str, lab_row: dict[str, Any], result: dict[str, Any] | None
) -> dict[str, Any]:
    """The summaries row: the lab table's values plus CE statistics, cycles to 80 %, etc."""
    cols = S.summary_columns()
    row = {k: lab_row.get(k) for k in cols}
    cyc = (result or {}).get("cycling") or {}
    eis = (result or {}).get("eis") or {}
    for k in S.SUMMARY_EXTRA:
        v = cyc.get(k, eis.get(k))
        row[k] = v if isinstance(v, (int, float, str, type(None))) else None
    row["live"] = bool(row.get("live"))
    row["cell_id"] = cell_id
    blocks = {k: v for k, v in (result or {}).items() if k not in ("cycling", "eis")}
    blocks["cycling"] = {k: v for k, v in cyc.items() if k != "cycles"} or None
    blocks["eis"] = {k: v for k, v in eis.items() if k not in ("spectra", "drt")} or None
    row["summary_json"] = blocks
    return row


def file_row(path: str | Path, kind: str, cell_id: str, **extra: Any) -> dict[str, Any]:
    """A files-table row: size and mtime from ``stat``, the rest from ``extra``."""
    st = os.stat(path)
    row = dict.fromkeys(c.name for c in S.files.columns)
    row.update(
        path=str(Path(path).resolve()),
        cell_id=cell_id,
        kind=kind,
        size_bytes=st.st_size,
        mtime_ns=st.st_mtime_ns,
        indexed_unix_time_second=time.time(),
    )
    row.update(extra)
    return row


def results_provenance(path: Path) -> dict[str, Any]:
    """Root attributes of a results file: input SHA-256, settings, software version."""
    import h5py

    from cyclerflow.analysis import _attr_value

    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _attr_value(v) for k, v in f.attrs.items()}
    except OSError as err:
        raise InputError(f"results file does not open ({err})", path=path) from None
    try:
        settings = json.loads(attrs.get("settings_json") or "null")
    except ValueError:
        settings = None
    return {
        "input_sha256": attrs.get("input_sha256"),
        "software_version": attrs.get("software_version"),
        "settings": settings,
    }
