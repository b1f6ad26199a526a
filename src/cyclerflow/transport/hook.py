"""The transport block inside ``analyze``: run it beside the cycling analysis."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from cyclerflow.errors import InputError
from cyclerflow.schema import CellMetadata

LISTS = ("gitt", "ici", "pitt", "dcir", "self_discharge")


def cycle_starts(per_cycle: xr.Dataset | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(cycle numbers, start times s) from the cycling per-cycle dataset, if any."""
    if per_cycle is None or "start_time_second" not in per_cycle:
        return None
    return (
        np.asarray(per_cycle["cycle"].values, "i8"),
        np.asarray(per_cycle["start_time_second"].values, "f8"),
    )


def transport_block(
    cycling: xr.Dataset,
    meta: CellMetadata | None,
    per_cycle: xr.Dataset | None,
    shared: dict | None = None,
) -> dict[str, Any]:
    """The ``transport`` block of one record (raises InputError on unreadable columns).

    ``shared``: samples and segmentation kept by ``analyze_cycling`` (reused)."""
    from cyclerflow.transport import analyze_transport

    return analyze_transport(
        cycling, meta, cycle_starts=cycle_starts(per_cycle), shared=shared, per_cycle=per_cycle
    )


def results_dataset(block: dict[str, Any] | None) -> xr.Dataset | None:
    """The ``transport`` group of the results file (D and R vs SOC), or None."""
    from cyclerflow.transport.results import transport_dataset

    return transport_dataset(block)


def found_anything(block: dict[str, Any] | None) -> bool:
    """True when any transport list has an entry."""
    return bool(block) and any(block.get(k) for k in LISTS)


def no_cycles(reason: str) -> dict[str, Any]:
    """The ``cycling`` object of a record without complete cycles: says why."""
    return {"cycles": [], "n_cycles": 0, "n_complete_cycles": 0, "no_cycles_reason": reason}


def without_cycles(
    err: InputError, cycling: xr.Dataset, meta: CellMetadata | None, *, has_spectra: bool
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(cycling object, transport block) when the cycling analysis found no complete cycle.

    The record still analyses when the transport analyses find something (the cycling
    object then says why there are no cycles) or the file has spectra; otherwise the
    cycling error ``err`` is raised."""
    try:
        block = transport_block(cycling, meta, None)
    except InputError:
        if has_spectra:
            return None, None
        raise err from None
    if found_anything(block):
        return no_cycles(err.bare_message), block
    if has_spectra:
        return None, block
    raise err


def add_cycle_views(
    summary: dict[str, Any],
    per_cycle: xr.Dataset,
    shared: dict,
    meta: CellMetadata | None = None,
) -> None:
    """Cycle types, dQ/dV peak tracking and, with half-cell reference curves in the
    metadata, degradation modes (LLI / LAM) added to the cycling summary (in place)."""
    from cyclerflow.cycling.cycle_types import add_cycle_types
    from cyclerflow.cycling.halfcells import half_cells_from_metadata
    from cyclerflow.transport.fromruns import record_from_runs

    if "segmentation" not in shared:
        return
    from cyclerflow.cycling.dqdv_modes import track_peaks

    rec = record_from_runs(shared["samples"], shared["segmentation"])
    add_cycle_types(summary, per_cycle, rec)
    args = (
        rec,
        np.asarray(per_cycle["cycle"].values, "i8"),
        np.asarray(per_cycle["start_time_second"].values, "f8"),
        np.asarray(per_cycle["complete"].values).astype(bool),
    )
    summary["dqdv_peaks"] = track_peaks(*args)
    half_cells = half_cells_from_metadata(meta)
    if half_cells is not None:
        from cyclerflow.cycling.degradation import degradation_modes

        summary["degradation_modes"] = degradation_modes(*args, half_cells)
