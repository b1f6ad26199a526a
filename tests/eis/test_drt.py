"""DRT against synthetic spectra with known RC / ZARC elements (analytic impedances)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import integrate

from cyclerflow.cli import main
from cyclerflow.eis import drt as D
from cyclerflow.errors import InputError

from .synth import as_dataset, noisy

F = np.logspace(6, -3, 60)  # 60 points, 1 MHz .. 1 mHz
R_INF = 10.0


def zarc(f, r, tau, n=1.0):
    """R / (1 + (j w tau)^n): an RC element for n = 1. Its DRT has area r and peak at tau."""
    return r / (1 + (1j * 2 * np.pi * f * tau) ** n)


def spectrum(elements, seed, *, f=F, noise=0.005, extra=0.0):
    z = R_INF + sum(zarc(f, *e) for e in elements) + extra
    return noisy(z, noise, np.random.default_rng(seed))


CASES = {
    "one_rc": [(100.0, 1e-3, 1.0)],
    "one_zarc": [(100.0, 1e-3, 0.85)],
    "two_rc_zarc": [(100.0, 1e-5, 1.0), (300.0, 1e-2, 0.9)],
    "three_rc_zarc_zarc": [(50.0, 1e-5, 1.0), (200.0, 1e-2, 0.9), (100.0, 10.0, 0.9)],
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_peaks_match_known_elements(name, seed):
    elements = CASES[name]
    res = D.compute_drt(F, spectrum(elements, seed))
    arcs = [p for p in res.peaks if p.significant and p.in_window]
    assert len(arcs) == len(elements) == D.count_arcs(res)
    for peak, (r, tau, _) in zip(arcs, elements, strict=True):
        assert abs(math.log10(peak.tau_second / tau)) < 0.1, (peak, tau)
        assert abs(peak.r_ohm / r - 1) < 0.05, (peak, r)
    total = sum(e[0] for e in elements)
    assert abs(res.r_polarisation_ohm / total - 1) < 0.03
    # R_inf trades with the far tail of a ZARC's distribution: 1 % of the whole DC resistance
    assert abs(res.r_inf_ohm - R_INF) < 0.01 * (R_INF + total)
    assert sum(p.share for p in res.peaks) == pytest.approx(1.0, abs=1e-9)


def test_gcv_lambda_finite_positive_and_reported():
    res = D.compute_drt(F, spectrum(CASES["two_rc_zarc"], 5))
    assert res.method == "gcv" and math.isfinite(res.lambda_) and res.lambda_ > 0
    lo, hi = D.LOG10_LAMBDA_RANGE
    assert 10**lo <= res.lambda_ <= 10**hi
    d = res.to_dict()
    assert d["method"] == "gcv" and d["lambda"] == res.lambda_
    json.dumps(d, allow_nan=False)
    fixed = D.compute_drt(F, spectrum(CASES["two_rc_zarc"], 5), lam=1e-4)
    assert fixed.method == "fixed" and fixed.lambda_ == 1e-4


def test_gcv_minimum_is_a_minimum():
    """The chosen lambda is no worse than every grid point of the GCV function."""
    f, z, _ = D.check_spectrum(F, spectrum(CASES["one_zarc"], 3))
    design = D._design(f, z, D._basis(f, None), 1)
    prob = D._problem(design, inductance=True, cpe_n=None)
    lam = D.gcv_lambda(prob)
    curve = D._gcv_curve(prob)
    grid = np.linspace(*D.LOG10_LAMBDA_RANGE, 200)
    assert curve(math.log10(lam))[0] <= curve(grid).min() * (1 + 1e-6)


@pytest.mark.parametrize("bad", [[], [1.0] * 5])
def test_empty_or_short_spectrum_is_input_error(bad):
    f = np.logspace(3, 0, len(bad))
    with pytest.raises(InputError, match="at least 10"):
        D.compute_drt(f, np.asarray(bad, complex))


def test_bad_values_and_options_are_input_errors():
    z = spectrum(CASES["one_rc"], 0)
    zn = z.copy()
    zn[4] = np.nan
    with pytest.raises(InputError, match="NaN"):
        D.compute_drt(F, zn)
    with pytest.raises(InputError, match="lambda"):
        D.compute_drt(F, z, lam=-1.0)
    with pytest.raises(InputError, match="penalty order"):
        D.compute_drt(F, z, penalty_order=3)


def test_inductance_and_blocking_electrode_recovered():
    els = [(100.0, 1e-4, 0.95)]
    w = 2 * np.pi * F
    z = spectrum(els, 1, extra=1j * w * 2e-6)  # 2 µH lead inductance
    res = D.compute_drt(F, z)
    assert res.inductance_henry == pytest.approx(2e-6, rel=0.1)
    assert res.series_cpe_q is None and res.series_cpe_n is None
    for n_el, q_el in ((1.0, 5e-3), (0.85, 2e-3)):  # ideal capacitor, CPE spike
        zb = spectrum(els, 2, extra=1.0 / (q_el * (1j * w) ** n_el))
        rb = D.compute_drt(F, zb)
        assert rb.series_cpe_n == pytest.approx(n_el, abs=0.02)
        assert rb.series_cpe_q == pytest.approx(q_el, rel=0.05)
        [arc] = [p for p in rb.peaks if p.significant and p.in_window]
        assert abs(math.log10(arc.tau_second / 1e-4)) < 0.1 and abs(arc.r_ohm / 100 - 1) < 0.05
    assert D.compute_drt(F, zb, series_cpe=False).series_cpe_q is None


def test_kernel_matches_direct_quadrature():
    basis = D._basis(F, None)
    omega = 2 * np.pi * np.array([1e4, 3.0])
    a_re, a_im = D._kernels(omega, basis)
    for m, w in enumerate(omega):
        for k in (3, len(basis.centres) // 2):
            c = basis.centres[k]

            def phi(y, c=c):
                return math.exp(-((basis.eps * (y - c)) ** 2))

            lim = (c - 8 / basis.eps, c + 8 / basis.eps)
            re = integrate.quad(lambda y, w=w: phi(y) / (1 + (w * math.exp(y)) ** 2), *lim)[0]
            im = integrate.quad(
                lambda y, w=w: -phi(y) * w * math.exp(y) / (1 + (w * math.exp(y)) ** 2), *lim
            )[0]
            assert a_re[m, k] == pytest.approx(re, rel=1e-8, abs=1e-12)
            assert a_im[m, k] == pytest.approx(im, rel=1e-8, abs=1e-12)


@pytest.mark.parametrize("order", [1, 2])
def test_penalty_matrix_is_the_exact_derivative_integral(order):
    basis = D._basis(np.logspace(3, 0, 12), 5.0)
    m = D._penalty(basis, order)
    y = np.linspace(basis.centres[0] - 6, basis.centres[-1] + 6, 20001)
    phi = np.exp(-((basis.eps * (y[:, None] - basis.centres[None, :])) ** 2))
    der = phi
    for _ in range(order):
        der = np.gradient(der, y, axis=0)
    num = integrate.trapezoid(der[:, :, None] * der[:, None, :], y, axis=0)
    assert np.allclose(m, num, rtol=1e-3, atol=1e-4 * np.abs(m).max())


def test_initial_guess_from_peaks():
    els = CASES["two_rc_zarc"]
    res = D.compute_drt(F, spectrum(els, 4))
    guess = D.drt_initial_guess(res)
    assert guess.r_inf_ohm == pytest.approx(R_INF, rel=0.05)
    assert len(guess.arcs) == 2
    for arc, (r, tau, n) in zip(guess.arcs, els, strict=True):
        assert arc.r_ohm == pytest.approx(r, rel=0.05)
        assert abs(math.log10(arc.tau_second / tau)) < 0.1
        assert 0.75 <= arc.n <= 1.0 and abs(arc.n - n) < 0.15
        assert arc.q == pytest.approx(arc.tau_second**arc.n / arc.r_ohm)
    one = D.drt_initial_guess(res, n_arcs=1)
    assert len(one.arcs) == 1 and one.arcs[0].r_ohm == pytest.approx(300, rel=0.05)


def test_zarc_width_relation_is_monotonic():
    widths = [D._zarc_fwhm_decades(n) for n in (0.5, 0.7, 0.9, 0.99)]
    assert all(a > b for a, b in zip(widths, widths[1:], strict=False))
    assert D._n_from_width(D._zarc_fwhm_decades(0.8), 0.0) == pytest.approx(0.8, abs=1e-3)


def _write_csv(path, spectra):
    lines = ["frequency_hertz,real_impedance_ohm,imaginary_impedance_ohm,spectrum_id"]
    for sid, z in spectra:
        lines += [f"{a:.17g},{b.real:.17g},{b.imag:.17g},{sid}" for a, b in zip(F, z, strict=True)]
    path.write_text("\n".join(lines) + "\n")


def test_cli_json_and_table(tmp_path, capsys):
    src = tmp_path / "two.csv"
    _write_csv(src, [(1, spectrum(CASES["two_rc_zarc"], 0))])
    assert main(["drt", str(src), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "gcv" and out["lambda"] > 0 and out["n_arcs"] == 2
    arcs = [p for p in out["peaks"] if p["significant"]]
    assert [round(math.log10(p["tau_second"])) for p in arcs] == [-5, -2]
    assert {"tau_second", "r_ohm", "share"} <= set(arcs[0])
    assert main(["drt", str(src)]) == 0
    assert "lambda" in capsys.readouterr().out
    _write_csv(src, [(1, spectrum(CASES["one_rc"], 0)), (2, spectrum(CASES["one_zarc"], 1))])
    assert main(["drt", str(src), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [s["spectrum_id"] for s in out["spectra"]] == [1, 2]


def test_cli_bad_input_exit_2_one_line(tmp_path, capsys):
    assert main(["drt", str(tmp_path / "missing.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found" in err
    short = tmp_path / "short.csv"
    lines = ["frequency_hertz,real_impedance_ohm,imaginary_impedance_ohm,spectrum_id"]
    lines += [f"{10.0**-k},{10 + k},{-1 - k},1" for k in range(4)]
    short.write_text("\n".join(lines) + "\n")
    assert main(["drt", str(short), "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "short.csv" in err and "at least 10" in err


def test_analyze_json_has_eis_drt_list():
    from cyclerflow.analysis import analyze_datasets

    spectra = [
        as_dataset(F, spectrum(CASES["one_rc"], 7), spectrum_id=3),
        as_dataset(F[:6], spectrum(CASES["one_rc"], 8)[:6], spectrum_id=4),
    ]
    parts, _, _ = analyze_datasets(None, spectra)
    drt = parts["eis"]["drt"]
    assert [d["spectrum_id"] for d in drt] == [3, 4]
    assert drt[0]["method"] == "gcv" and drt[0]["n_arcs"] == 1
    assert "at least 10" in drt[1]["error"]
    json.dumps(drt, allow_nan=False)


def test_second_opinion_on_thin_film_spectra():
    """Blocking LiPON film (one arc + CPE spike) and a full cell (two arcs + diffusion CPE)."""
    from .synth import cell_spectrum, lipon_spectrum

    f = np.logspace(6, -1, 50)
    rb, z = lipon_spectrum(f, 263.15, 0.0035, np.random.default_rng(1))
    res = D.compute_drt(f, z)
    assert D.count_arcs(res) == 1 and res.series_cpe_n == pytest.approx(0.88, abs=0.02)
    [arc] = [p for p in res.peaks if p.significant]
    assert arc.r_ohm == pytest.approx(rb, rel=0.05)
    p, z = cell_spectrum(f, 500.0, np.random.default_rng(2))
    res = D.compute_drt(f, z)
    assert D.count_arcs(res) == 2 and res.series_cpe_n == pytest.approx(p[8], abs=0.02)
    guess = D.drt_initial_guess(res)
    assert [a.r_ohm for a in guess.arcs] == pytest.approx([p[1], p[4]], rel=0.1)
    assert guess.series_cpe_q == pytest.approx(p[7], rel=0.05)


def test_drt_seeds_a_circuit_fit():
    """The DRT start vector alone (no data-derived restarts needed) fits the full cell."""
    from cyclerflow.eis import fit_spectrum, parse_circuit

    from .synth import CELL, cell_spectrum

    f = np.logspace(6, -1, 50)
    p, z = cell_spectrum(f, 500.0, np.random.default_rng(2))
    res = D.compute_drt(f, z)
    start = D.drt_start_parameters(res, CELL)
    circ = parse_circuit(CELL)
    assert start is not None and list(start) == list(circ.param_names)
    z0 = circ.impedance([start[n] for n in circ.param_names], f)
    assert np.median(np.abs(z0 - z) / np.abs(z)) < 0.1  # the start is already close
    fit = fit_spectrum(f, z, CELL, initial=start, kk=False)
    assert fit.params["R1"] == pytest.approx(p[1], rel=0.02)
    assert fit.params["R2"] == pytest.approx(p[4], rel=0.02)
    # a circuit with more blocks than the DRT has arcs, or an element it cannot seed
    assert D.drt_start_parameters(res, "R0-p(R1,CPE1)-p(R2,CPE2)-p(R3,CPE3)-p(R4,C4)") is None
    assert D.drt_start_parameters(res, "R0-p(R1,CPE1)-p(R2,CPE2)-Wo1") is None


def test_notes_for_noise_free_data_and_a_spectrum_that_is_no_drt():
    clean = D.compute_drt(F, spectrum(CASES["two_rc_zarc"], 0, noise=0.0))
    assert clean.lambda_ == pytest.approx(10 ** D.LOG10_LAMBDA_RANGE[0])
    assert any("lower end" in n for n in clean.notes)
    assert D.compute_drt(F, spectrum(CASES["two_rc_zarc"], 0)).notes == ()
    z = spectrum(CASES["two_rc_zarc"], 0)
    z[20:30] *= np.array([1, 3] * 5)  # every other point tripled: not a causal spectrum
    bad = D.compute_drt(F, z)
    assert bad.residual_rms_relative > D.POOR_FIT_RESIDUAL
    assert any("not a non-negative DRT" in n for n in bad.to_dict()["notes"])


def test_cell_file_through_drt_and_analyze_cli(tmp_path, capsys, lipon_metadata):
    """A cell .h5 with a LiPON temperature series: `drt` and `analyze --json` (eis.drt)."""
    from cyclerflow.schema import parse_metadata
    from cyclerflow.store import write_cell

    from .synth import lipon_spectrum

    f = np.logspace(6, -1, 50)
    rng = np.random.default_rng(4)
    truth, spectra = [], []
    for t in (263.15, 283.15):
        rb, z = lipon_spectrum(f, t, 0.0035, rng)
        truth.append(rb)
        spectra.append(
            {
                "frequency_hertz": f,
                "real_impedance_ohm": z.real,
                "imaginary_impedance_ohm": z.imag,
                "temperature_kelvin": t,
            }
        )
    cell = tmp_path / "film.h5"
    write_cell(cell, parse_metadata(lipon_metadata), spectra=spectra)
    assert main(["drt", str(cell), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["spectra"]
    assert [s["n_arcs"] for s in out] == [1, 1]
    for s, rb in zip(out, truth, strict=True):
        [arc] = [p for p in s["peaks"] if p["significant"]]
        assert arc["r_ohm"] == pytest.approx(rb, rel=0.05)
    assert main(["analyze", str(cell), "--json", "-o", str(tmp_path / "r.nc")]) == 0
    drt = json.loads(capsys.readouterr().out)["eis"]["drt"]
    assert [d["spectrum_id"] for d in drt] == [s["spectrum_id"] for s in out]
    assert [d["n_arcs"] for d in drt] == [1, 1]
