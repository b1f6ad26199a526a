"""Figure functions: from plain data, known answers, non-blank output."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cyclerflow.report import figures as F
from cyclerflow.report.curves import half_cycles
from cyclerflow.synthetic import galvanostatic_cycles, rc_spectrum


def _ink(fig) -> float:
    """Fraction of non-white pixels of the rendered figure."""
    img = np.asarray(
        Image.open(io.BytesIO(F.figure_to_png(fig, palette=False))).convert("L"), dtype=float
    )
    return float((img < 200).mean())


def test_decimate_keeps_extremes_and_limit():
    x = np.arange(100_000, dtype=float)
    y = np.sin(x / 1000)
    y[54_321] = 50.0
    xd, yd = F.decimate(x, y, 400)
    assert len(xd) <= 402
    assert yd.max() == 50.0 and 54_321 in xd
    assert xd[0] == 0 and xd[-1] == 99_999
    assert np.all(np.diff(xd) > 0)
    xs, ys = F.decimate(x[:10], y[:10], 400)
    assert len(xs) == 10


def test_capacity_figure_has_area_axis_and_retention():
    cyc = np.arange(1, 101)
    q = 15e-6 * (1 - 1e-4) ** (cyc - 1)
    fig = F.capacity_figure(cyc, q, q / q[0], area_cm2=0.25, reference_cycle=1)
    ax = fig.axes[0]
    line = ax.get_lines()[-1]
    assert np.allclose(line.get_ydata()[0], 15.0)  # µAh on the axis
    labels = [a.get_ylabel() for a in fig.axes] + [a.get_ylabel() for a in ax.child_axes]
    assert "µAh/cm²" in labels and "retention / %" in labels
    assert _ink(fig) > 0.01


def test_ce_axis_shows_fourth_decimal_and_clips_outliers():
    cyc = np.arange(1, 201)
    ce = np.full(200, 0.9995) + 1e-5 * np.sin(cyc)
    ce[0] = 0.80  # formation cycle
    fig = F.coulombic_efficiency_figure(cyc, ce)
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    assert lo > 0.99 and hi < 1.001  # the formation cycle does not squash the axis
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and all(len(s.split(".")[1]) >= 4 for s in labels)
    assert len({s for s in labels}) == len(labels) >= 3  # distinct ticks: 4th decimal resolved
    assert "1 point(s) outside" in ax.get_title(loc="right")


def test_voltage_and_dqdv_figures_from_curves():
    from cyclerflow.report.curves import dqdv

    cyc = galvanostatic_cycles(n_cycles=3, points_per_half=80)
    curves = []
    for c in (1, 3):
        m = cyc["cycle_count"] == c
        curves += half_cycles(
            cyc["test_time_second"][m], cyc["voltage_volt"][m], cyc["current_ampere"][m], c
        )
    fig = F.voltage_profiles_figure(curves)
    assert len(fig.axes[0].get_lines()) == 4
    assert _ink(fig) > 0.01
    fig2 = F.dqdv_figure([dqdv(c) for c in curves])
    assert len(fig2.axes[0].get_lines()) == 5  # 4 curves + zero line


def _spectrum(sid, tk):
    f = np.logspace(6, -1, 40)
    z = rc_spectrum(f, r_lead_ohm=5, r_bulk_ohm=1e4, q_bulk=1e-10, q_electrode=1e-6)
    return {
        "spectrum_id": sid,
        "frequency_hertz": f,
        "z": z,
        "z_fit": z * 1.01,
        "temperature_kelvin": tk,
        "cycle": sid,
    }


def test_impedance_figures():
    specs = [_spectrum(k, 273.15 + 25 * k) for k in range(1, 5)]
    fig = F.nyquist_figure(specs)
    assert len(fig.axes) == 4
    ax = fig.axes[0]
    data = ax.get_lines()[0]
    assert np.allclose(data.get_ydata(), -specs[0]["z"].imag)  # -Im Z plotted
    assert ax.get_xlim() == ax.get_ylim()  # equal scales
    res = F.residuals_figure(specs)
    r = res.axes[0].get_lines()[0].get_ydata()
    expected = 100 * (specs[0]["z"].real - specs[0]["z_fit"].real) / np.abs(specs[0]["z"])
    assert np.allclose(r, expected)
    bode = F.bode_figure(specs)
    assert bode.axes[0].get_yscale() == "log"
    for f in (fig, res, bode):
        assert _ink(f) > 0.01


def test_arrhenius_line_has_the_fit_slope():
    kb = F.BOLTZMANN_EV
    t = np.array([273.15, 298.15, 323.15, 348.15])
    ea, s25 = 0.55, 2.3e-6
    sigma = s25 * (298.15 / t) * np.exp(-ea / kb * (1 / t - 1 / 298.15))
    fig = F.arrhenius_figure(
        t,
        sigma,
        {
            "activation_energy_ev": ea,
            "activation_energy_stderr_ev": 0.01,
            "conductivity_25c_s_per_cm": s25,
            "convention": "sigma_T",
        },
    )
    ax = fig.axes[0]
    pts, line = ax.get_lines()[:2]
    assert np.allclose(pts.get_ydata(), np.log(sigma * t))
    x, y = line.get_xdata(), line.get_ydata()
    slope = np.polyfit(x / 1000, y, 1)[0]
    assert slope == pytest.approx(-ea / kb, rel=1e-9)
    # the line passes through the exact points
    assert np.interp(1000 / t[1], x, y) == pytest.approx(np.log(sigma[1] * t[1]), abs=1e-6)
    assert "0.550 ± 0.010 eV" in line.get_label()


def test_interface_and_lab_figures_and_svg():
    fig = F.interface_figure([1, 10, 100], [50.0, 55.0, 70.0])
    assert np.allclose(fig.axes[0].get_lines()[0].get_ydata(), [50, 55, 70])
    lab = F.lab_retention_figure(
        [
            {
                "cell_id": f"c{k}",
                "cycle": np.arange(1, 11),
                "capacity_retention": np.linspace(1, 0.9 - k / 100, 10),
            }
            for k in range(3)
        ]
    )
    assert len(lab.axes[0].get_lines()) == 3
    svg = F.figure_to_svg(fig)
    assert svg.startswith("<svg") and "<metadata" not in svg and 'href="http' not in svg
    uri = F.figure_to_data_uri(fig)
    assert uri.startswith("data:image/png;base64,")


def test_interface_figure_keeps_wild_values_from_squashing_the_axis():
    cyc = np.arange(1, 41)
    r = 50.0 + 0.5 * cyc
    r[20] = 7e7  # a failed fit
    fig = F.interface_figure(cyc, r, temperature_kelvin=np.full(40, 298.15))
    ax = fig.axes[0]
    assert ax.get_ylim()[1] < 200
    assert "1 value(s) above the range" in ax.get_title(loc="right")
    assert len(fig.axes) == 1  # constant temperature: no colour bar


def test_nyquist_window_zooms_on_the_arc():
    f = np.logspace(6, -1, 60)
    z = rc_spectrum(f, r_lead_ohm=5, r_bulk_ohm=2e3, q_bulk=2e-9, q_electrode=5e-6)
    lo, hi, full = F.nyquist_window(f, z)
    assert full is not None and full[1] > 20 * hi
    assert 2e3 < hi < 2e4  # the arc (R_bulk 2 kOhm) fills the panel
    z2 = rc_spectrum(f, r_lead_ohm=5, r_bulk_ohm=2e3, q_bulk=2e-9, q_electrode=1e-2)
    assert F.nyquist_window(f, z2)[2] is None  # no dominating tail: whole spectrum
