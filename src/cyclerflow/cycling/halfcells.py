"""Half-cell reference curves: each electrode's open-circuit potential vs its lithiation.

Format (cell metadata key ``half_cell_curves``, or a CSV file read by
:func:`load_half_cells`): for ``positive`` and ``negative``, the potential vs Li/Li+
(V) at lithiation fractions 0..1 of that electrode's own capacity (1 = fully
lithiated: a discharged positive, a charged negative)::

    half_cell_curves:
      positive: {lithiation: [0.05, 0.1, ...], potential_v: [4.35, 4.2, ...]}
      negative: {lithiation: [0.0, 0.02, ...], potential_v: [1.2, 0.6, ...]}

CSV: columns ``electrode`` (positive | negative), ``lithiation``, ``potential_v``.
At least 5 points per electrode, lithiation strictly increasing after sorting, within
0..1. Outside the tabulated range the potential is extrapolated linearly from the end
points (the fit keeps to the range where the curve carries information).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cyclerflow.errors import InputError

METADATA_KEY = "half_cell_curves"
ELECTRODES = ("positive", "negative")


@dataclass(frozen=True)
class HalfCell:
    """Potential (V vs Li/Li+) of one electrode vs its lithiation fraction (sorted)."""

    lithiation: np.ndarray
    potential_v: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Potential (V) at lithiation ``x``; linear extrapolation beyond the table."""
        xs, us = self.lithiation, self.potential_v
        out = np.interp(x, xs, us)
        lo_slope = (us[1] - us[0]) / (xs[1] - xs[0])
        hi_slope = (us[-1] - us[-2]) / (xs[-1] - xs[-2])
        out = np.where(x < xs[0], us[0] + (x - xs[0]) * lo_slope, out)
        return np.where(x > xs[-1], us[-1] + (x - xs[-1]) * hi_slope, out)


@dataclass(frozen=True)
class HalfCells:
    """The two reference curves and where they came from."""

    positive: HalfCell
    negative: HalfCell
    source: str


def half_cell(x: Any, u: Any, where: str) -> HalfCell:
    """A validated :class:`HalfCell` (``where`` names the input in errors)."""
    try:
        xs = np.asarray(x, dtype="f8").ravel()
        us = np.asarray(u, dtype="f8").ravel()
    except (TypeError, ValueError):
        raise InputError(f"{where}: lithiation and potential_v must be lists of numbers") from None
    if xs.shape != us.shape:
        raise InputError(f"{where}: {len(xs)} lithiation values but {len(us)} potentials")
    if len(xs) < 5:
        raise InputError(f"{where}: needs at least 5 points, got {len(xs)}")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(us))):
        raise InputError(f"{where}: values must be finite numbers")
    order = np.argsort(xs, kind="stable")
    xs, us = xs[order], us[order]
    if np.any(np.diff(xs) <= 0):
        raise InputError(f"{where}: lithiation values repeat ({xs[np.argmin(np.diff(xs))]:g})")
    if xs[0] < 0 or xs[-1] > 1:
        raise InputError(f"{where}: lithiation must lie within 0..1 (got {xs[0]:g}..{xs[-1]:g})")
    return HalfCell(xs, us)


def parse_half_cells(obj: Any, source: str) -> HalfCells:
    """Half cells from ``{"positive": {lithiation, potential_v}, "negative": {...}}``."""
    if not isinstance(obj, Mapping):
        raise InputError(f"{source}: expected a mapping with 'positive' and 'negative'")
    curves = {}
    for name in ELECTRODES:
        body = obj.get(name)
        if not isinstance(body, Mapping) or not {"lithiation", "potential_v"} <= set(body):
            raise InputError(f"{source}.{name}: expected lithiation and potential_v lists")
        curves[name] = half_cell(body["lithiation"], body["potential_v"], f"{source}.{name}")
    return HalfCells(curves["positive"], curves["negative"], source)


def half_cells_from_metadata(meta: Any) -> HalfCells | None:
    """The curves of the metadata key ``half_cell_curves``, or None without it."""
    extra = getattr(meta, "extra", None) or {}
    if METADATA_KEY not in extra:
        return None
    return parse_half_cells(extra[METADATA_KEY], f"metadata {METADATA_KEY}")


def load_half_cells(path: str | Path) -> HalfCells:
    """Read the CSV form (``electrode,lithiation,potential_v``)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise InputError("half-cell curve file not found", path=path) from None
    if not rows or not {"electrode", "lithiation", "potential_v"} <= set(rows[0]):
        raise InputError("expected columns electrode, lithiation, potential_v", path=path)
    data: dict[str, dict[str, list]] = {
        n: {"lithiation": [], "potential_v": []} for n in ELECTRODES
    }
    for n, row in enumerate(rows, start=2):
        name = (row["electrode"] or "").strip().lower()
        if name not in data:
            raise InputError(f"line {n}: electrode {name!r} is not positive or negative", path=path)
        try:
            data[name]["lithiation"].append(float(row["lithiation"]))
            data[name]["potential_v"].append(float(row["potential_v"]))
        except (TypeError, ValueError):
            raise InputError(
                f"line {n}: lithiation and potential_v must be numbers", path=path
            ) from None
    try:
        return parse_half_cells(data, path.name)
    except InputError as err:
        raise InputError(err.bare_message, path=path) from None
