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
from cyclerflow.transport.ce import ce_anomalies
from cyclerflow.transport.fromruns import record_from_runs
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


def analyze_transport(
    ds: xr.Dataset,
    meta: CellMetadata | None = None,
    *,
    cycle_starts: tuple[np.ndarray, np.ndarray] | None = None,
    shared: dict | None = None,
    per_cycle: xr.Dataset | None = None,
    steps: StepOptions = StepOptions(),
    dcir_options: dcir_mod.DcirOptions = dcir_mod.DcirOptions(),
) -> dict[str, Any]:
    """The ``transport`` block for one cycling record (see the package docstring).

    ``cycle_starts``: (cycle numbers, start times in s) from the cycling analysis, to
    assign DCIR entries to cycles. ``shared``: ``{"samples", "segmentation"}`` kept by
    ``analyze_cycling(..., keep=shared)``; its runs are reused (fast path), else the
    record is split into steps here. ``per_cycle``: the cycling per-cycle dataset, for
    charge-CE anomalies."""
    from cyclerflow.cycling.segment import prepare_samples

    if shared and "segmentation" in shared:
        rec = record_from_runs(shared["samples"], shared["segmentation"], steps)
    else:
        rec = detect_steps(prepare_samples(ds), steps)
    length = diffusion_length(meta)
    lookup = _cycle_lookup(cycle_starts)
    dc, table = dcir_mod.dcir(rec, lookup, dcir_options)
    sd, basis = self_discharge(rec, meta)
    sd = sorted(sd + ce_anomalies(per_cycle, basis), key=lambda e: e["time_s"])
    kinds = {name: int(np.count_nonzero(rec.steps.kind == k)) for k, name in KIND_NAME.items()}
    return {
        "gitt": gitt_mod.gitt(rec, length),
        "ici": ici_mod.ici(rec, length),
        "pitt": pitt_mod.pitt(rec, length),
        "dcir": dc,
        "dcir_by_cycle": dcir_mod.by_cycle(table, lookup(table.time_s), dcir_options),
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
