"""Cycling analysis: segmentation, capacity, energy, CE, retention, fade, curves, dQ/dV.

Public API::

    summary, per_cycle = analyze_cycling(ds, meta=None, *, reference_cycle=None, first_half=None)
    curves = voltage_curves(ds, cycles=None, *, first_half=None)
    diff = dqdv(ds, cycles=None, *, first_half=None)

Definitions (half-cycle detection, thresholds, CE convention, reference cycle, fade
fit, normalisations) are in docs/cycling.md.
"""

from cyclerflow.cycling.analysis import analyze_cycling
from cyclerflow.cycling.curves import dqdv, voltage_curves
from cyclerflow.cycling.segment import Thresholds

__all__ = ["Thresholds", "analyze_cycling", "dqdv", "voltage_curves"]
