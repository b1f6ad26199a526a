"""The ``transport`` group of the results file: D and R vs state of charge, per method.

One dimension per method (``gitt_pulse``, ``ici_interruption``, ``pitt_step``); the
variables are the rows of the ``transport`` block of ``analyze --json`` as arrays
(missing values NaN; validity flags as booleans). Units are in the names.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

#: (block key, dimension, columns) of the group; columns are row keys of the block
TABLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "gitt",
        "gitt_pulse",
        (
            "start_time_s",
            "soc",
            "voltage_relaxed_v",
            "current_a",
            "diffusion_coefficient_cm2_per_s",
            "weppner_huggins_valid",
            "resistance_ohm",
            "pulse_resistance_ohm",
        ),
    ),
    (
        "ici",
        "ici_interruption",
        (
            "time_s",
            "soc",
            "voltage_v",
            "current_a",
            "diffusion_coefficient_cm2_per_s",
            "quasi_steady",
            "resistance_ohm",
        ),
    ),
    (
        "pitt",
        "pitt_step",
        ("start_time_s", "soc", "voltage_v", "diffusion_coefficient_cm2_per_s"),
    ),
)

_FLAGS = ("weppner_huggins_valid", "quasi_steady")


def _column(rows: list[dict], key: str) -> np.ndarray:
    if key in _FLAGS:
        return np.array([bool(r.get(key)) for r in rows], dtype=bool)
    return np.array([np.nan if r.get(key) is None else float(r[key]) for r in rows], "f8")


def transport_dataset(block: dict[str, Any] | None) -> xr.Dataset | None:
    """The results-file group of a ``transport`` block; None when no method found rows."""
    if not block:
        return None
    data: dict[str, tuple[str, np.ndarray]] = {}
    for key, dim, columns in TABLES:
        rows = block.get(key) or []
        if not rows:
            continue
        for col in columns:
            data[f"{key}_{col}"] = (dim, _column(rows, col))
    if not data:
        return None
    attrs = {
        "diffusion_length_route": str(block.get("diffusion_length_route")),
        "soc_basis": str(block.get("soc_basis")),
    }
    return xr.Dataset(data, attrs=attrs)
