"""Assemble the ``transport`` block of ``analyze --json`` from one record."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from cyclerflow.schema import CellMetadata
from cyclerflow.transport import dcir as dcir_mod
from cyclerflow.transport import gitt as gitt_mod
from cyclerflow.transport import ici as ici_mod
from cyclerflow.transport import pitt as pitt_mod
from cyclerflow.transport.geometry import diffusion_length
from cyclerflow.transport.selfdischarge import self_discharge
from cyclerflow.transport.steps import KIND_NAME, StepOptions, detect_steps


def _cycle_lookup(cycle_starts: tuple[np.ndarray, np.ndarray] | None):
    """times -> cycle number of the last cycle started at or before them (-1 before any)."""

    def lookup(times: np.ndarray) -> np.ndarray:
        if cycle_starts is None or len(cycle_starts[0]) == 0:
            return np.full(len(times), -1, "i8")
        cyc, t0 = cycle_starts
        order = np.argsort(t0)
        pos = np.searchsorted(t0[order], times, side="right") - 1
        return np.where(pos >= 0, cyc[order][np.maximum(pos, 0)], -1)

    return lookup


def dcir_by_cycle(rows: list[dict], times: tuple[float, ...]) -> list[dict]:
    """Median DCIR (Ω) per cycle, direction of the new current and delay."""
    groups: dict[tuple[int, str], list[dict]] = {}
    for r in rows:
        if r["cycle"] is None:
            continue
        key = (r["cycle"], "charge" if r["delta_current_a"] > 0 else "discharge")
        groups.setdefault(key, []).append(r)
    out = []
    for (cyc, direction), rs in sorted(groups.items()):
        entry: dict[str, Any] = {"cycle": cyc, "current_step": direction, "n": len(rs)}
        for dt in times:
            key = dcir_mod._key(dt)
            vals = [r[key] for r in rs if r[key] is not None]
            entry[key] = float(np.median(vals)) if vals else None
        out.append(entry)
    return out


def analyze_transport(
    ds: xr.Dataset,
    meta: CellMetadata | None = None,
    *,
    cycle_starts: tuple[np.ndarray, np.ndarray] | None = None,
    steps: StepOptions = StepOptions(),
    dcir_options: dcir_mod.DcirOptions = dcir_mod.DcirOptions(),
) -> dict[str, Any]:
    """The ``transport`` block for one cycling record (see the package docstring).

    ``cycle_starts``: (cycle numbers, start times in s) from the cycling analysis, to
    assign DCIR entries to cycles."""
    from cyclerflow.cycling.segment import prepare_samples

    rec = detect_steps(prepare_samples(ds), steps)
    length = diffusion_length(meta)
    dc = dcir_mod.dcir(rec, _cycle_lookup(cycle_starts), dcir_options)
    sd, basis = self_discharge(rec, meta)
    kinds = {name: int(np.count_nonzero(rec.steps.kind == k)) for k, name in KIND_NAME.items()}
    return {
        "gitt": gitt_mod.gitt(rec, length),
        "ici": ici_mod.ici(rec, length),
        "pitt": pitt_mod.pitt(rec, length),
        "dcir": dc,
        "dcir_by_cycle": dcir_by_cycle(dc, dcir_options.times_s),
        "self_discharge": sd,
        "soft_short": {
            "flagged": any(e["flagged"] for e in sd),
            "events": [e for e in sd if e["flagged"]],
            "leakage_bound_a": basis.bound_a,
            "capacity_basis_ah": basis.capacity_ah,
            "capacity_basis": basis.source,
        },
        "diffusion_length_cm": length.length_cm,
        "diffusion_length_route": length.route,
        "diffusion_length_note": length.note,
        "soc_basis": "cumulative charge relative to its range over the record",
        "steps": kinds,
        "methods": {
            "gitt": gitt_mod.METHOD,
            "ici": ici_mod.METHOD,
            "pitt": pitt_mod.METHOD,
            "dcir": dcir_mod.METHOD,
        },
    }
