"""Report figures as matplotlib ``Figure`` objects, from plain data (also for notebooks).

Every function takes numpy arrays / lists / dicts in SI units (capacity in Ah,
resistance in Ohm, temperature in K, area in cm² where the name says so) and returns
a :class:`matplotlib.figure.Figure` drawn with the Agg backend (no pyplot state, so
it is safe in threads and worker processes). Lab units appear only on the axes
(µAh, µAh/cm², Ω·cm², °C). In a notebook, display a figure by evaluating it, or
``fig.savefig(...)``.

:func:`figure_to_data_uri` turns a figure into a self-contained ``data:`` URI
(palette PNG by default: small, no external resources).
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import (
    EngFormatter,
    FormatStrFormatter,
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullLocator,
)

BOLTZMANN_EV = 8.617333262e-5  # eV/K
WIDTH_IN = 7.0
DPI = 100
CMAP = "viridis"

_STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.frameon": False,
}


def _figure(height_in: float, *, width_in: float = WIDTH_IN) -> Figure:
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _axes(fig: Figure, *args: Any, **kw: Any):
    with matplotlib.rc_context(_STYLE):
        return fig.add_subplot(*args, **kw)


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _pow10(value: float, _pos: int | None = None) -> str:
    """10ⁿ with Unicode superscripts (no mathtext: several times cheaper to draw)."""
    if value <= 0 or not np.isfinite(value):
        return ""
    e = np.log10(value)
    if abs(e - round(e)) > 1e-6:
        return ""
    return "10" + str(int(round(e))).translate(_SUPERSCRIPT)


def _light_log(axis) -> None:
    """Decade ticks only on a log axis (no minor ticks, no mathtext: much faster to draw)."""
    axis.set_major_locator(LogLocator(base=10, numticks=8))
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(FuncFormatter(_pow10))


def _finite(*arrays: Any) -> list[np.ndarray]:
    arrs = [np.asarray(a, dtype="f8") for a in arrays]
    ok = np.ones(len(arrs[0]), dtype=bool)
    for a in arrs:
        ok &= np.isfinite(a)
    return [a[ok] for a in arrs]


def decimate(x: Any, y: Any, max_points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most ``max_points`` points of a curve, keeping each bucket's min and max of y.

    Extremes survive (a spike stays visible), order is kept. Arrays shorter than
    ``max_points`` are returned unchanged.
    """
    x = np.asarray(x, dtype="f8")
    y = np.asarray(y, dtype="f8")
    n = len(x)
    if n <= max_points or max_points < 4:
        return x, y
    buckets = max_points // 2
    edges = np.linspace(0, n, buckets + 1).astype(int)
    keep = np.empty(2 * buckets, dtype=int)
    for k in range(buckets):
        lo, hi = edges[k], edges[k + 1]
        seg = y[lo:hi]
        if not len(seg) or not np.isfinite(seg).any():
            keep[2 * k] = keep[2 * k + 1] = lo
            continue
        a, b = lo + int(np.nanargmin(seg)), lo + int(np.nanargmax(seg))
        keep[2 * k], keep[2 * k + 1] = min(a, b), max(a, b)
    keep = np.unique(np.concatenate([[0], keep, [n - 1]]))
    return x[keep], y[keep]


def message_figure(text: str, *, height_in: float = 1.2) -> Figure:
    """A figure that only says what is missing (for notebooks; the HTML uses text)."""
    fig = _figure(height_in)
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, color="0.35", wrap=True)
    return fig


# --- cycling ------------------------------------------------------------------------


def capacity_figure(
    cycle: Any,
    discharge_capacity_ah: Any,
    capacity_retention: Any | None = None,
    *,
    area_cm2: float | None = None,
    reference_cycle: int | None = None,
    charge_capacity_ah: Any | None = None,
    incomplete: Any | None = None,
) -> Figure:
    """Discharge capacity (µAh, and µAh/cm² on the right axis when the area is known)
    and capacity retention (%) vs cycle. ``incomplete``: bool per cycle; those cycles
    are drawn as red crosses off the line (they are left out of fade and CE)."""
    cyc = np.asarray(cycle, dtype="f8")
    q = np.asarray(discharge_capacity_ah, dtype="f8") * 1e6
    bad = np.zeros(len(cyc), bool) if incomplete is None else np.asarray(incomplete, bool)
    q_bad = q[bad]
    q = np.where(bad, np.nan, q)
    has_ret = (
        capacity_retention is not None
        and np.isfinite(np.asarray(capacity_retention, dtype="f8")).any()
    )
    fig = _figure(4.6 if has_ret else 2.8)
    ax = _axes(fig, 2 if has_ret else 1, 1, 1)
    style = {"ms": 2.5, "lw": 0.8} if len(cyc) < 400 else {"ms": 1.2, "lw": 0.6}
    if charge_capacity_ah is not None:
        qc = np.asarray(charge_capacity_ah, dtype="f8") * 1e6
        ax.plot(*decimate(cyc, qc, 1500), ".-", color="0.6", label="charge", **style)
    ax.plot(*decimate(cyc, q, 1500), ".-", color="C0", label="discharge", **style)
    if bad.any():
        ax.plot(cyc[bad], q_bad, "x", ms=5, color="C3", label="incomplete cycle (discharge)")
        ax.legend(loc="best")
    ax.set_ylabel("capacity / µAh")
    ax.yaxis.set_major_formatter(EngFormatter(unit="", places=None, sep=""))
    if charge_capacity_ah is not None:
        ax.legend(loc="best")
    if area_cm2:
        sec = ax.secondary_yaxis(
            "right", functions=(lambda v: v / area_cm2, lambda v: v * area_cm2)
        )
        sec.set_ylabel("µAh/cm²")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if has_ret:
        ax2 = _axes(fig, 2, 1, 2, sharex=ax)
        ax.tick_params(labelbottom=False)
        r = np.asarray(capacity_retention, dtype="f8") * 100
        ax2.plot(*decimate(cyc, r, 1500), ".-", color="C2", **style)
        ax2.axhline(100, color="0.5", lw=0.6, ls=":")
        ax2.set_ylabel("retention / %")
        if reference_cycle is not None:
            ax2.set_title(
                f"relative to cycle {reference_cycle}", fontsize=8, loc="right", color="0.35"
            )
        ax2.set_xlabel("cycle")
    else:
        ax.set_xlabel("cycle")
    fig.subplots_adjust(
        left=0.11, right=0.89, top=0.96, bottom=0.1 if has_ret else 0.16, hspace=0.25
    )
    return fig


def timeline_figure(
    t_v: Any,
    voltage_volt: Any,
    t_i: Any,
    current_ampere: Any,
    gaps: Sequence[tuple[float, float]] = (),
) -> Figure:
    """Voltage (V) and current (A) vs test time (h) of the whole record (pass decimated
    arrays); ``gaps``: (start, end) test times (s) of unrecorded intervals, shaded."""
    fig = _figure(3.4)
    ax_v = _axes(fig, 2, 1, 1)
    ax_i = _axes(fig, 2, 1, 2, sharex=ax_v)
    for k, (a, b) in enumerate(gaps):
        for ax in (ax_v, ax_i):
            ax.axvspan(a / 3600, b / 3600, color="C1", alpha=0.25, lw=0)
        if k == 0:
            ax_v.plot([], [], "s", color="C1", alpha=0.4, label="gap: no data recorded")
            ax_v.legend(loc="best", fontsize=7)
    ax_v.plot(np.asarray(t_v, dtype="f8") / 3600, voltage_volt, "-", lw=0.6, color="C0")
    ax_i.plot(np.asarray(t_i, dtype="f8") / 3600, current_ampere, "-", lw=0.6, color="C3")
    ax_v.set_ylabel("voltage / V")
    ax_v.tick_params(labelbottom=False)
    ax_i.set_ylabel("current")
    ax_i.yaxis.set_major_formatter(EngFormatter(unit="A", places=None, sep=""))
    ax_i.set_xlabel("test time / h")
    fig.subplots_adjust(left=0.11, right=0.97, top=0.96, bottom=0.14, hspace=0.12)
    return fig


def _ce_axis(ax, lo: float, hi: float, *, nbins: int = 6) -> None:
    """Limits and ticks of a CE axis: at least 4 decimals, more when the ticks need them."""
    ax.set_ylim(lo, hi)
    loc = MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10])
    ax.yaxis.set_major_locator(loc)
    ticks = loc.tick_values(lo, hi)
    step = float(np.min(np.diff(ticks))) if len(ticks) > 1 else (hi - lo)
    decimals = 4
    while decimals < 7 and len({f"{t:.{decimals}f}" for t in ticks}) < len(ticks):
        decimals += 1
    if step > 0:
        decimals = max(decimals, min(7, int(np.ceil(-np.log10(step) - 1e-9))))
    ax.yaxis.set_major_formatter(FormatStrFormatter(f"%.{decimals}f"))


def _arrhenius_line(
    t: np.ndarray, y: np.ndarray, arr: Mapping[str, Any], sigma_t: bool
) -> tuple[np.ndarray, np.ndarray]:
    """x = 1000/T and y of the fitted line (slope -Ea/k through σ(25 °C), or the points' centroid)."""
    ea = arr["activation_energy_ev"]
    xs = np.linspace(1 / t.max(), 1 / t.min(), 50)
    slope = -ea / BOLTZMANN_EV
    icpt = np.mean(y) - slope * np.mean(1 / t)
    s25 = arr.get("conductivity_25c_s_per_cm")
    if s25:
        icpt = (np.log(s25 * 298.15) if sigma_t else np.log(s25)) - slope / 298.15
    return 1000 * xs, icpt + slope * xs


def coulombic_efficiency_figure(cycle: Any, coulombic_efficiency: Any) -> Figure:
    """Coulombic efficiency vs cycle on an axis that shows the 4th decimal (0.9995).

    The y range follows the bulk of the points (2nd-98th percentile, padded); points
    outside it are drawn as triangles on the edge and counted in the title.
    """
    cyc, ce = _finite(cycle, coulombic_efficiency)
    fig = _figure(2.8)
    ax = _axes(fig, 1, 1, 1)
    if not len(ce):
        ax.text(0.5, 0.5, "no complete cycles", transform=ax.transAxes, ha="center")
        return fig
    lo, hi = np.percentile(ce, [2, 98]) if len(ce) >= 10 else (ce.min(), ce.max())
    span = max(hi - lo, 4e-4)
    lo, hi = lo - 0.15 * span, hi + 0.15 * span
    inside = (ce >= lo) & (ce <= hi)
    style = {"ms": 2.5} if len(ce) < 400 else {"ms": 1.2}
    x, y = decimate(cyc[inside], ce[inside], 2000)
    ax.plot(x, y, ".", color="C3", **style)
    below, above = ce < lo, ce > hi
    if below.any():
        ax.plot(cyc[below], np.full(below.sum(), lo), "v", color="C3", ms=4, clip_on=False)
    if above.any():
        ax.plot(cyc[above], np.full(above.sum(), hi), "^", color="C3", ms=4, clip_on=False)
    if below.any() or above.any():
        ax.set_title(
            f"{int(below.sum() + above.sum())} point(s) outside the range, drawn on the edge",
            fontsize=8,
            loc="right",
            color="0.35",
        )
    ax.axhline(1.0, color="0.5", lw=0.6, ls=":") if lo < 1.0 < hi else None
    _ce_axis(ax, lo, hi, nbins=6)
    ax.set_ylabel("coulombic efficiency")
    ax.set_xlabel("cycle")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.subplots_adjust(left=0.13, right=0.97, top=0.9, bottom=0.16)
    return fig


def _cycle_colors(cycles: Sequence[int]) -> tuple[Any, Normalize]:
    cyc = np.asarray(cycles, dtype="f8")
    lo, hi = float(np.min(cyc)), float(np.max(cyc))
    if hi <= lo:
        hi = lo + 1
    norm = (
        LogNorm(vmin=max(lo, 1), vmax=max(hi, 2))
        if lo >= 1 and hi / max(lo, 1) > 30
        else Normalize(lo, hi)
    )
    return matplotlib.colormaps[CMAP], norm


def voltage_profiles_figure(
    curves: Sequence[Mapping[str, Any]], *, max_points: int = 300
) -> Figure:
    """Voltage vs capacity (µAh) of selected cycles, coloured by cycle number.

    ``curves``: dicts with ``cycle``, ``half`` ("charge"/"discharge"),
    ``capacity_ah`` (charge passed since the start of the half-cycle) and ``voltage_v``.
    """
    fig = _figure(3.4)
    ax = _axes(fig, 1, 1, 1)
    cmap, norm = _cycle_colors([c["cycle"] for c in curves])
    for c in curves:
        x, y = decimate(np.asarray(c["capacity_ah"]) * 1e6, c["voltage_v"], max_points)
        ax.plot(
            x, y, "-" if c.get("half") == "charge" else "--", lw=1.0, color=cmap(norm(c["cycle"]))
        )
    ax.set_xlabel("capacity / µAh")
    ax.set_ylabel("voltage / V")
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, label="cycle", pad=0.02)
    ax.set_title("solid: charge, dashed: discharge", fontsize=8, loc="right", color="0.35")
    fig.subplots_adjust(left=0.1, right=0.98, top=0.92, bottom=0.14)
    return fig


def dqdv_figure(curves: Sequence[Mapping[str, Any]]) -> Figure:
    """Differential capacity dQ/dV (µAh/V) vs voltage of selected cycles, coloured by cycle.

    ``curves``: dicts with ``cycle``, ``half``, ``voltage_v`` and ``dqdv_ah_per_v``
    (positive for both halves).
    """
    fig = _figure(3.4)
    ax = _axes(fig, 1, 1, 1)
    cmap, norm = _cycle_colors([c["cycle"] for c in curves])
    for c in curves:
        sign = 1.0 if c.get("half") == "charge" else -1.0
        v, d = decimate(*_finite(c["voltage_v"], c["dqdv_ah_per_v"]), 400)
        ax.plot(v, sign * d * 1e6, "-", lw=1.0, color=cmap(norm(c["cycle"])))
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set_xlabel("voltage / V")
    ax.set_ylabel("dQ/dV / µAh V⁻¹")
    ax.set_title("charge > 0, discharge < 0", fontsize=8, loc="right", color="0.35")
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, label="cycle", pad=0.02)
    fig.subplots_adjust(left=0.11, right=0.98, top=0.92, bottom=0.14)
    return fig


# --- impedance ----------------------------------------------------------------------


def _spectrum_label(s: Mapping[str, Any]) -> str:
    parts = [f"#{s.get('spectrum_id', '?')}"]
    t = s.get("temperature_kelvin")
    if t is not None and np.isfinite(t):
        parts.append(f"{t - 273.15:.0f} °C")
    c = s.get("cycle")
    if c is not None and c >= 0:
        parts.append(f"cycle {c}")
    return ", ".join(parts)


def nyquist_window(
    frequency_hertz: np.ndarray, z: np.ndarray
) -> tuple[float, float, tuple[float, float] | None]:
    """Square axis range (lo, hi) of a Nyquist plot, zoomed on the high-frequency arc(s).

    When a low-frequency tail (blocking electrode, diffusion) is much larger than the
    arcs, the window ends at 2.5x Re Z of the point where the phase is closest to zero
    (the arc/tail junction) and the full range is returned as the third item, for an inset.
    """
    ok = np.isfinite(z.real) & np.isfinite(z.imag) & np.isfinite(frequency_hertz)
    z, f = z[ok], frequency_hertz[ok]
    if not len(z):
        return 0.0, 1.0, None
    pts = np.concatenate([z.real, -z.imag])
    lo = min(0.0, float(pts.min()))
    hi_full = float(pts.max()) * 1.05 if pts.max() > 0 else 1.0
    order = np.argsort(f)[::-1]  # high -> low frequency
    phase = np.angle(z[order])
    if len(z) >= 8:
        core = slice(1, max(2, int(0.85 * len(z))))  # not the very ends
        k = int(np.argmax(phase[core])) + 1  # phase closest to 0 (least capacitive)
        hi = 2.5 * float(z[order][k].real)
        if hi > 0 and hi * 3 < hi_full:
            return lo, hi, (lo, hi_full)
    return lo, hi_full, None


def nyquist_figure(spectra: Sequence[Mapping[str, Any]], *, columns: int = 3) -> Figure:
    """Nyquist plots (-Im Z vs Re Z, equal scales), one panel per spectrum, fit overlaid.

    ``spectra``: dicts with ``frequency_hertz``, ``z`` (complex Ohm, signed imaginary
    part), optional ``z_fit`` (complex, at the same frequencies), ``spectrum_id``,
    ``temperature_kelvin``, ``cycle``, ``circuit``. Circles: data; line: fit. When a
    low-frequency tail dwarfs the arcs the panel zooms on them (see :func:`nyquist_window`)
    and a small inset shows the whole spectrum.
    """
    n = len(spectra)
    cols = min(columns, max(n, 1))
    rows = int(np.ceil(n / cols)) if n else 1
    fig = _figure(2.5 * rows + 0.3)
    eng = EngFormatter(unit="Ω", places=None, sep="")
    for k, s in enumerate(spectra):
        ax = _axes(fig, rows, cols, k + 1)
        z = np.asarray(s["z"], dtype=complex)
        ax.plot(z.real, -z.imag, "o", ms=2.5, mfc="none", color="C0", label="data")
        zf = s.get("z_fit")
        if zf is not None:
            zf = np.asarray(zf, dtype=complex)
            ax.plot(zf.real, -zf.imag, "-", lw=1.0, color="C1", label="fit")
        else:
            zf = None
        lo, hi, full = nyquist_window(np.asarray(s["frequency_hertz"], dtype="f8"), z)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal", adjustable="box")
        if full is not None:
            ins = ax.inset_axes((0.03, 0.58, 0.38, 0.38))
            ins.plot(z.real, -z.imag, ".", ms=1, color="C0")
            if zf is not None:
                ins.plot(zf.real, -zf.imag, "-", lw=0.6, color="C1")
            ins.set_xlim(full[0], full[1])
            ins.set_ylim(full[0], full[1])
            ins.set_aspect("equal", adjustable="box")
            ins.set_xticks([])
            ins.set_yticks([])
            ins.set_title("full", fontsize=6, pad=1)
            ins.patch.set_alpha(0.9)
        ax.xaxis.set_major_formatter(eng)
        ax.yaxis.set_major_formatter(eng)
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.yaxis.set_major_locator(MaxNLocator(4))
        ax.set_title(_spectrum_label(s), fontsize=8)
        if k % cols == 0:
            ax.set_ylabel("−Im Z")
        if k >= n - cols:
            ax.set_xlabel("Re Z")
    fig.subplots_adjust(
        left=0.1,
        right=0.98,
        top=1 - 0.35 / fig.get_figheight(),
        bottom=0.55 / fig.get_figheight(),
        wspace=0.35,
        hspace=0.55,
    )
    return fig


def residuals_figure(spectra: Sequence[Mapping[str, Any]]) -> Figure:
    """Fit residuals relative to |Z| (%) vs frequency, real and imaginary parts."""
    fig = _figure(3.0)
    ax_r = _axes(fig, 1, 2, 1)
    ax_i = _axes(fig, 1, 2, 2, sharey=ax_r)
    cmap = matplotlib.colormaps["tab10"]
    for k, s in enumerate(spectra):
        if s.get("z_fit") is None:
            continue
        f = np.asarray(s["frequency_hertz"], dtype="f8")
        z = np.asarray(s["z"], dtype=complex)
        zf = np.asarray(s["z_fit"], dtype=complex)
        mag = np.abs(z)
        ax_r.plot(
            f,
            100 * (z.real - zf.real) / mag,
            ".-",
            ms=2.5,
            lw=0.6,
            color=cmap(k % 10),
            label=_spectrum_label(s),
        )
        ax_i.plot(f, 100 * (z.imag - zf.imag) / mag, ".-", ms=2.5, lw=0.6, color=cmap(k % 10))
    for ax, name in ((ax_r, "Re"), (ax_i, "Im")):
        ax.set_xscale("log")
        _light_log(ax.xaxis)
        ax.axhline(0, color="0.5", lw=0.6)
        ax.set_xlabel("frequency / Hz")
        ax.set_title(f"{name} residual", fontsize=9)
    ax_r.set_ylabel("(data − fit) / |Z| / %")
    ax_r.legend(loc="best", fontsize=7)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.9, bottom=0.16, wspace=0.12)
    return fig


def bode_figure(spectra: Sequence[Mapping[str, Any]]) -> Figure:
    """Bode plots: |Z| (Ω, log) and phase (degrees) vs frequency, data and fit."""
    fig = _figure(4.2)
    ax_m = _axes(fig, 2, 1, 1)
    ax_p = _axes(fig, 2, 1, 2, sharex=ax_m)
    cmap = matplotlib.colormaps["tab10"]
    for k, s in enumerate(spectra):
        f = np.asarray(s["frequency_hertz"], dtype="f8")
        z = np.asarray(s["z"], dtype=complex)
        col = cmap(k % 10)
        ax_m.plot(f, np.abs(z), "o", ms=2, mfc="none", color=col, label=_spectrum_label(s))
        ax_p.plot(f, np.degrees(np.angle(z)), "o", ms=2, mfc="none", color=col)
        zf = s.get("z_fit")
        if zf is not None:
            zf = np.asarray(zf, dtype=complex)
            ax_m.plot(f, np.abs(zf), "-", lw=0.8, color=col)
            ax_p.plot(f, np.degrees(np.angle(zf)), "-", lw=0.8, color=col)
    ax_m.set_xscale("log")
    ax_m.set_yscale("log")
    _light_log(ax_m.xaxis)
    _light_log(ax_m.yaxis)
    ax_m.set_ylabel("|Z| / Ω")
    ax_m.tick_params(labelbottom=False)
    ax_p.set_ylabel("phase / °")
    ax_p.set_xlabel("frequency / Hz")
    ax_m.legend(loc="best", fontsize=7, ncols=2)
    fig.subplots_adjust(left=0.11, right=0.98, top=0.97, bottom=0.11, hspace=0.12)
    return fig


def arrhenius_figure(
    temperature_kelvin: Any,
    conductivity_s_per_cm: Any,
    arrhenius: Mapping[str, Any] | None = None,
) -> Figure:
    """Arrhenius plot: ln(σT) (or ln σ, per ``arrhenius['convention']``) vs 1000/T, fit line, Ea ± error.

    ``arrhenius``: the ``eis.arrhenius`` object of the analysis JSON
    (activation_energy_ev, activation_energy_stderr_ev, conductivity_25c_s_per_cm, convention).
    """
    t, s = _finite(temperature_kelvin, conductivity_s_per_cm)
    ok = s > 0
    t, s = t[ok], s[ok]
    arr = dict(arrhenius or {})
    sigma_t = arr.get("convention", "sigma_T") != "sigma"
    y = np.log(s * t) if sigma_t else np.log(s)
    fig = _figure(3.2)
    ax = _axes(fig, 1, 1, 1)
    ax.plot(1000 / t, y, "o", color="C0", ms=5, label="measured")
    ea = arr.get("activation_energy_ev")
    if ea is not None and len(t) >= 2:
        s25 = arr.get("conductivity_25c_s_per_cm")
        err = arr.get("activation_energy_stderr_ev")
        lab = f"fit: Ea = {ea:.3f}" + (f" ± {err:.3f}" if err is not None else "") + " eV"
        ax.plot(*_arrhenius_line(t, y, arr, sigma_t), "-", color="C1", lw=1.2, label=lab)
        if s25:
            ax.set_title(f"σ(25 °C) = {s25:.3g} S/cm", fontsize=8, loc="right", color="0.35")
    ax.set_xlabel("1000 / T / K⁻¹")
    ax.set_ylabel("ln(σT / S cm⁻¹ K)" if sigma_t else "ln(σ / S cm⁻¹)")
    top = ax.secondary_xaxis(
        "top",
        functions=(lambda x: 1000 / np.maximum(x, 1e-9) - 273.15, lambda c: 1000 / (c + 273.15)),
    )
    top.set_xlabel("T / °C")
    ax.legend(loc="best")
    fig.subplots_adjust(left=0.11, right=0.97, top=0.8, bottom=0.15)
    return fig


def interface_figure(
    cycle: Any, r_interface_ohm_cm2: Any, *, temperature_kelvin: Any | None = None
) -> Figure:
    """Interfacial resistance (Ω·cm²) vs cycle (or vs spectrum order when no cycle is known).

    Coloured by temperature when it varies by more than 1 K. A few wild values (failed
    fits) do not squash the axis: above 3x the 95th percentile they are drawn on the edge.
    """
    x = np.asarray(cycle, dtype="f8")
    y = np.asarray(r_interface_ohm_cm2, dtype="f8")
    fig = _figure(2.8)
    ax = _axes(fig, 1, 1, 1)
    tk = None if temperature_kelvin is None else np.asarray(temperature_kelvin, dtype="f8")
    fin = y[np.isfinite(y)]
    top = None
    if len(fin) >= 10:
        p95 = float(np.percentile(fin, 95))
        if p95 > 0 and fin.max() > 3 * p95:
            top = 1.3 * p95
    shown = y if top is None else np.minimum(y, top)
    if tk is not None and np.isfinite(tk).any() and np.nanmax(tk) - np.nanmin(tk) > 1.0:
        sc = ax.scatter(x, shown, c=tk - 273.15, cmap="coolwarm", s=14)
        fig.colorbar(sc, ax=ax, label="T / °C", pad=0.02)
    else:
        ax.plot(x, shown, "o-" if len(x) < 60 else ".-", ms=3, lw=0.8, color="C4")
    if top is not None:
        over = y > top
        ax.plot(x[over], np.full(over.sum(), top), "^", color="C3", ms=5, clip_on=False)
        ax.set_ylim(top=top)
        ax.set_title(
            f"{int(over.sum())} value(s) above the range, drawn on the edge",
            fontsize=8,
            loc="right",
            color="0.35",
        )
    ax.set_xlabel("cycle")
    ax.set_ylabel("R interface / Ω·cm²")
    ax.yaxis.set_major_formatter(EngFormatter(unit="", places=None, sep=""))
    fig.subplots_adjust(left=0.12, right=0.97, top=0.9, bottom=0.16)
    return fig


def _say(ax, text: str) -> None:
    """An empty panel that says what is missing (no axes drawn)."""
    ax.set_axis_off()
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=9,
        color="0.35",
        wrap=True,
    )


def _card_cycling(ax, cycles: Mapping[str, np.ndarray] | None, reference_cycle) -> None:
    """Capacity with retention (ax[0]) and CE (ax[1]) of a cell card."""
    if cycles is None or not len(cycles["cycle"]):
        _say(ax[0], "no cycling analysis")
        _say(ax[1], "no cycling analysis")
        return
    c = cycles["cycle"]
    q = np.asarray(cycles["discharge_capacity_ah"], dtype="f8") * 1e6
    bad = ~np.asarray(cycles.get("complete", np.ones(len(c), bool)), bool)
    ax[0].plot(*decimate(c, np.where(bad, np.nan, q), 600), "-", lw=0.9, color="C0")
    if bad.any():  # incomplete cycles: off the line (left out of fade and CE)
        ax[0].plot(c[bad], q[bad], "x", ms=3, color="C3")
    ax[0].set_ylabel("Q dis / µAh", fontsize=8)
    r = np.asarray(cycles["capacity_retention"], dtype="f8")
    if np.isfinite(r).any():
        tw = ax[0].twinx()
        tw.plot(*decimate(c, r * 100, 600), "--", lw=0.8, color="C2")
        tw.set_ylabel(f"retention / % (vs {reference_cycle})", fontsize=7, color="C2")
        tw.tick_params(labelsize=7)
    ax[0].set_xlabel("cycle", fontsize=8)
    cyc, ce = _finite(c, cycles["coulombic_efficiency"])
    if not len(ce):
        _say(ax[1], "no complete cycle: no CE")
        return
    lo, hi = np.percentile(ce, [2, 98]) if len(ce) >= 10 else (ce.min(), ce.max())
    span = max(hi - lo, 4e-4)
    ax[1].plot(*decimate(cyc, ce, 800), ".", ms=1.5, color="C3")
    _ce_axis(ax[1], lo - 0.15 * span, hi + 0.15 * span, nbins=4)
    ax[1].set_ylabel("CE", fontsize=8)
    ax[1].set_xlabel("cycle", fontsize=8)


def _card_profiles(ax, curves: Sequence[Mapping[str, Any]]) -> None:
    if not curves:
        _say(ax, "no voltage profiles")
        return
    cmap, norm = _cycle_colors([cv["cycle"] for cv in curves])
    for cv in curves:
        ax.plot(
            *decimate(np.asarray(cv["capacity_ah"]) * 1e6, cv["voltage_v"], 150),
            "-" if cv.get("half") == "charge" else "--",
            lw=0.8,
            color=cmap(norm(cv["cycle"])),
        )
    ax.set_xlabel("capacity / µAh", fontsize=8)
    ax.set_ylabel("V", fontsize=8)
    ax.set_title(
        f"cycles {min(cv['cycle'] for cv in curves)}–{max(cv['cycle'] for cv in curves)} (light = late)",
        fontsize=7,
        loc="right",
        color="0.35",
    )


def _card_arrhenius(ax, arrhenius: tuple[Any, Any, Mapping[str, Any]]) -> None:
    t, sg, arr = arrhenius
    t, sg = _finite(t, sg)
    sigma_t = arr.get("convention", "sigma_T") != "sigma"
    y = np.log(sg * t) if sigma_t else np.log(sg)
    ax.plot(1000 / t, y, "o", ms=3, color="C0")
    if arr.get("activation_energy_ev") is not None and len(t) >= 2:
        ax.plot(*_arrhenius_line(t, y, arr, sigma_t), "-", lw=0.9, color="C1")
        ax.set_title(f"Ea = {arr['activation_energy_ev']:.3f} eV", fontsize=8, loc="right")
    ax.set_xlabel("1000/T / K⁻¹", fontsize=8)
    ax.set_ylabel("ln σT" if sigma_t else "ln σ", fontsize=8)


def _card_nyquist(ax, nyquist: Mapping[str, Any]) -> None:
    z = np.asarray(nyquist["z"], dtype=complex)
    ax.plot(z.real, -z.imag, "o", ms=1.8, mfc="none", color="C0")
    if nyquist.get("z_fit") is not None:
        zf = np.asarray(nyquist["z_fit"], dtype=complex)
        ax.plot(zf.real, -zf.imag, "-", lw=0.8, color="C1")
    lo, hi, _ = nyquist_window(np.asarray(nyquist["frequency_hertz"], dtype="f8"), z)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal", adjustable="box")
    eng = EngFormatter(unit="Ω", places=None, sep="")
    ax.xaxis.set_major_formatter(eng)
    ax.yaxis.set_major_formatter(eng)
    ax.xaxis.set_major_locator(MaxNLocator(3))
    ax.yaxis.set_major_locator(MaxNLocator(3))
    ax.set_title(_spectrum_label(nyquist), fontsize=7, loc="right", color="0.35")


def cell_card_figure(
    cycles: Mapping[str, np.ndarray] | None,
    curves: Sequence[Mapping[str, Any]],
    nyquist: Mapping[str, Any] | None,
    arrhenius: tuple[Any, Any, Mapping[str, Any]] | None = None,
    *,
    reference_cycle: int | None = None,
) -> Figure:
    """Four small panels for a many-cell report: capacity (µAh) with retention (%),
    coulombic efficiency, voltage profiles, and Nyquist with fit (or, for a temperature
    series, the Arrhenius plot). Missing data are said in words in their panel.

    ``cycles``: arrays ``cycle``, ``discharge_capacity_ah``, ``capacity_retention``,
    ``coulombic_efficiency`` and optionally ``complete`` (bool; incomplete cycles are
    drawn as crosses off the line); ``nyquist``: a spectrum dict as for :func:`nyquist_figure`;
    ``arrhenius``: (temperature_kelvin, conductivity_s_per_cm, arrhenius dict).
    """
    fig = _figure(4.0, width_in=8.0)
    ax = [_axes(fig, 2, 2, k) for k in range(1, 5)]
    _card_cycling(ax, cycles, reference_cycle)
    _card_profiles(ax[2], curves)
    if arrhenius is not None:
        _card_arrhenius(ax[3], arrhenius)
    elif nyquist is not None:
        _card_nyquist(ax[3], nyquist)
    else:
        _say(ax[3], "no impedance spectra")
    for a in fig.axes:
        a.tick_params(labelsize=7)
        # small panels read well with ~4 ticks, and each tick costs draw time (a lab
        # report draws hundreds of these cards); the CE and Nyquist axes set their own
        for axis in (a.xaxis, a.yaxis):
            if type(axis.get_major_locator()).__name__ == "AutoLocator":
                axis.set_major_locator(MaxNLocator(4))
    fig.subplots_adjust(left=0.08, right=0.97, top=0.94, bottom=0.12, wspace=0.45, hspace=0.45)
    return fig


# --- lab overview -------------------------------------------------------------------


def lab_retention_figure(cells: Sequence[Mapping[str, Any]]) -> Figure:
    """Retention (%) vs cycle of many cells in one plot. ``cells``: dicts with
    ``cell_id``, ``cycle``, ``capacity_retention``."""
    fig = _figure(3.2)
    ax = _axes(fig, 1, 1, 1)
    cmap = matplotlib.colormaps["tab20"]
    for k, c in enumerate(cells):
        x, y = _finite(c["cycle"], c["capacity_retention"])
        if len(x):
            ax.plot(
                *decimate(x, y * 100, 200),
                "-",
                lw=0.8,
                color=cmap(k % 20),
                label=c["cell_id"] if len(cells) <= 12 else None,
            )
    ax.set_xlabel("cycle")
    ax.set_ylabel("retention / %")
    if len(cells) <= 12:
        ax.legend(loc="best", fontsize=7, ncols=2)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.95, bottom=0.15)
    return fig


# --- output -------------------------------------------------------------------------


def figure_to_png(fig: Figure, *, palette: bool = True) -> bytes:
    """PNG bytes of a figure; ``palette`` quantizes to 256 colours (3-4x smaller)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    if not palette:
        return buf.getvalue()
    from PIL import Image

    buf.seek(0)
    img = (
        Image.open(buf)
        .convert("RGB")
        .quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    )
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=False, compress_level=9)
    return out.getvalue()


def figure_to_data_uri(fig: Figure, *, palette: bool = True) -> str:
    """``data:image/png;base64,...`` of a figure (self-contained, for HTML)."""
    return "data:image/png;base64," + base64.b64encode(figure_to_png(fig, palette=palette)).decode(
        "ascii"
    )


def figure_to_svg(fig: Figure) -> str:
    """Inline SVG text of a figure (text as text, no embedded fonts)."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", facecolor="white")
    text = buf.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    return text[text.index("<svg") :]
