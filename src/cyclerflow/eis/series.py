"""Series-level consistency of a temperature series (placeholder, filled in below)."""

from __future__ import annotations


def refine_series(items, fits, kw):
    """Return the fits unchanged (series step not built yet)."""
    return fits
