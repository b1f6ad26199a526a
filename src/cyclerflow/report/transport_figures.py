"""Report figures of the ``transport`` block: D vs SOC and R vs SOC (GITT, ICI, PITT).

Inputs are the rows of ``analyze --json``'s ``transport`` block (D in cm²/s,
resistance in Ohm, SOC as a fraction); the axes show SOC in %.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter

from cyclerflow.report.figures import _axes, _figure

#: (block key, label, marker, key of the validity flag or None, resistance key or None)
SERIES = (
    ("gitt", "GITT", "o", "weppner_huggins_valid", "pulse_resistance_ohm"),
    ("ici", "ICI", "s", "quasi_steady", "resistance_ohm"),
    ("pitt", "PITT", "^", None, None),
)


def _xy(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(r.get("soc"), r.get(key)) for r in rows]
    ok = [(s, v) for s, v in pairs if s is not None and v is not None and np.isfinite(v)]
    if not ok:
        return np.zeros(0), np.zeros(0)
    soc, val = np.array(ok, "f8").T
    return soc * 100.0, val


def has_transport_curves(block: Mapping[str, Any] | None) -> bool:
    """True when any method gave a diffusion coefficient or a resistance with a SOC."""
    if not block:
        return False
    for key, _, _, _, r_key in SERIES:
        rows = block.get(key) or []
        if len(_xy(rows, "diffusion_coefficient_cm2_per_s")[0]):
            return True
        if r_key and len(_xy(rows, r_key)[0]):
            return True
    return False


def _plot_d(ax, rows: Sequence[Mapping[str, Any]], label: str, marker: str, flag: str | None):
    good = [r for r in rows if flag is None or r.get(flag)]
    bad = [r for r in rows if flag is not None and not r.get(flag)]
    x, y = _xy(good, "diffusion_coefficient_cm2_per_s")
    pos = y > 0
    if pos.any():
        ax.plot(x[pos], y[pos], marker, ms=4, label=label)
    x, y = _xy(bad, "diffusion_coefficient_cm2_per_s")
    pos = y > 0
    if pos.any():
        ax.plot(x[pos], y[pos], marker, ms=4, mfc="none", color="0.5", label=f"{label} ({flag})")


def _decades(ax) -> None:
    """Log axis over whole decades (at least one), labelled at the decades only."""
    ys = [y for line in ax.get_lines() for y in np.asarray(line.get_ydata(), "f8") if y > 0]
    ax.set_yscale("log")
    if not ys:
        return
    lo, hi = np.floor(np.log10(min(ys)) - 0.2), np.ceil(np.log10(max(ys)) + 0.2)
    ax.set_ylim(10**lo, 10 ** max(hi, lo + 1))
    ax.yaxis.set_major_locator(LogLocator(base=10))
    ax.yaxis.set_minor_formatter(NullFormatter())


def transport_figure(block: Mapping[str, Any]) -> Figure:
    """Two panels: diffusion coefficient (cm²/s, log) and resistance (Ohm) vs SOC (%).

    Filled markers: results whose method's assumptions hold (GITT: Weppner–Huggins
    valid; ICI: quasi-steady); hollow grey: the others."""
    fig = _figure(3.2)
    ax_d = _axes(fig, 1, 2, 1)
    ax_r = _axes(fig, 1, 2, 2)
    for key, label, marker, flag, r_key in SERIES:
        rows = block.get(key) or []
        _plot_d(ax_d, rows, label, marker, flag)
        if r_key:
            x, y = _xy(rows, r_key)
            if len(x):
                ax_r.plot(x, y, marker, ms=4, label=label)
    _decades(ax_d)
    ax_d.set_xlabel("state of charge / %")
    ax_d.set_ylabel("D / cm² s⁻¹")
    ax_r.set_xlabel("state of charge / %")
    ax_r.set_ylabel("R / Ω")
    for ax in (ax_d, ax_r):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best")
    fig.subplots_adjust(left=0.12, right=0.98, top=0.95, bottom=0.16, wspace=0.32)
    return fig


#: (row key, label) of the degradation-mode lines
MODES = (
    ("lli_fraction", "LLI"),
    ("lam_positive_fraction", "LAM positive"),
    ("lam_negative_fraction", "LAM negative"),
)


def degradation_figure(modes: Mapping[str, Any]) -> Figure:
    """Loss of lithium inventory and of active material (%, relative to the reference
    cycle) vs cycle, from the ``degradation_modes`` object of the cycling summary."""
    rows = modes.get("cycles") or []
    fig = _figure(2.8)
    ax = _axes(fig, 1, 1, 1)
    cyc = np.array([r["cycle"] for r in rows], "f8")
    for key, label in MODES:
        ax.plot(cyc, [100.0 * r[key] for r in rows], "o-", ms=3, lw=1.0, label=label)
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set_xlabel("cycle")
    ax.set_ylabel(f"loss vs cycle {modes.get('reference_cycle')} / %")
    ax.legend(loc="best")
    fig.subplots_adjust(left=0.1, right=0.98, top=0.95, bottom=0.17)
    return fig
