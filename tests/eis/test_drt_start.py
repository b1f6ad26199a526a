"""The quick DRT run before every circuit fit: arc count, start values, cached grids."""

import numpy as np
import pytest

from cyclerflow.eis import fit_spectrum, parse_circuit
from cyclerflow.eis.drt_start import _grid, drt_start, quick_arc_count, quick_drt
from cyclerflow.eis.fitter import fit_circuit
from cyclerflow.eis.guess import features, initial_guesses

CIRCUIT = "R0-p(R1,CPE1)-p(R2,CPE2)-CPE3"
F = np.logspace(6, -1, 60)


def spectrum(p, seed, noise=0.005):
    return spectrum_of(parse_circuit(CIRCUIT), p, seed, noise)


def spectrum_of(circuit, p, seed, noise=0.005):
    z = circuit.impedance(np.asarray(p, dtype="f8"), F)
    rng = np.random.default_rng(seed)
    return z + noise * np.abs(z) * (rng.normal(size=F.size) + 1j * rng.normal(size=F.size))


def two_arcs(rb, tb, ri, ti, n1=0.9, n2=0.8):
    return [rb * 0.01, rb, tb**n1 / rb, n1, ri, ti**n2 / ri, n2, 1 / (ri * 0.1), 0.7]


def test_quick_drt_counts_and_places_two_arcs():
    p = two_arcs(300.0, 1e-6, 600.0, 1e-3)
    res = quick_drt(F, spectrum(p, 1))
    assert res.method == "quick" and quick_arc_count(res) == 2
    peaks = sorted((q for q in res.peaks if q.significant), key=lambda q: q.tau_second)
    # ZARC peaks sit at tau = (R Q)^(1/n); the quick basis is 0.375 decade wide
    assert abs(np.log10(peaks[0].tau_second / 1e-6)) < 0.2
    assert abs(np.log10(peaks[1].tau_second / 1e-3)) < 0.2
    assert abs(peaks[0].r_ohm / 300 - 1) < 0.1 and abs(peaks[1].r_ohm / 600 - 1) < 0.1


@pytest.mark.parametrize(
    "arcs_",
    [
        [(300.0, 1e-5)],
        [(300.0, 1e-6), (600.0, 1e-3)],
        [(200.0, 1e-6), (500.0, 1e-4), (300.0, 1e-2)],
    ],
)
def test_drt_start_has_the_arc_count_and_time_constants(arcs_):
    """1, 2 and 3 ZARC arcs two decades apart (n 0.9, 0.5 % noise): the quick DRT counts
    them, and the DRT start puts every block's time constant within 0.2 decade and its
    R within 10 % of the truth."""
    circuit = parse_circuit("R0-" + "-".join(f"p(R{i},CPE{i})" for i in range(1, len(arcs_) + 1)))
    p = [5.0]
    for r, tau in arcs_:
        p += [r, tau**0.9 / r, 0.9]
    z = spectrum_of(circuit, np.array(p), 11)
    res = quick_drt(F, z)
    assert quick_arc_count(res) == len(arcs_)
    start = drt_start(res, circuit, initial_guesses(circuit, F, z, features(F, z))[0])
    for i, (r, tau) in enumerate(arcs_):
        r_s, q_s, n_s = start[1 + 3 * i : 4 + 3 * i]
        assert abs(np.log10((r_s * q_s) ** (1 / n_s) / tau)) < 0.2
        assert r_s == pytest.approx(r, rel=0.1)


def test_quick_drt_reuses_the_kernels_of_a_frequency_grid():
    _grid.cache_clear()
    quick_drt(F, spectrum(two_arcs(100.0, 1e-6, 100.0, 1e-3), 2))
    quick_drt(F, spectrum(two_arcs(500.0, 1e-5, 50.0, 1e-2), 3))
    info = _grid.cache_info()
    assert info.misses == 1 and info.hits == 1


def test_one_arc_counts_one():
    p = two_arcs(300.0, 1e-5, 1e-6, 1e-5)  # second arc negligible (3e-9 of the first)
    assert quick_arc_count(quick_drt(F, spectrum(p, 4))) == 1


def hard_set(n, seed=5):
    """Two depressed arcs only 1.2-2 decades apart (n 0.75-0.9), R ratio 0.3-3."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        rb = 10 ** rng.uniform(1.5, 3.5)
        ri = rb * 10 ** rng.uniform(-0.5, 0.5)
        tb = 10 ** rng.uniform(-6.0, -4.5)
        ti = tb * 10 ** rng.uniform(1.2, 2.0)
        p = two_arcs(rb, tb, ri, ti, rng.uniform(0.75, 0.9), rng.uniform(0.7, 0.85))
        p[-1] = rng.uniform(0.5, 0.8)
        z = parse_circuit(CIRCUIT).impedance(np.asarray(p), F)
        z = z + 0.005 * np.abs(z) * (rng.normal(size=F.size) + 1j * rng.normal(size=F.size))
        out.append((np.asarray(p), z))
    return out


def test_drt_start_rescues_fits_the_data_guess_misses():
    """On close, depressed arcs the apex heuristic's first start sometimes ends in a
    local minimum (chi2 ~1e-3, R off by 100 %); the DRT's R and tau start such a fit at
    the noise floor (0.5 % noise: chi2 ~2.5e-5)."""
    c = parse_circuit(CIRCUIT)
    rescued = 0
    for p, z in hard_set(40):
        base = initial_guesses(c, F, z, features(F, z))[0]
        start = drt_start(quick_drt(F, z), c, base)
        if start is None:
            continue
        from_guess, from_drt = fit_circuit(c, F, z, base), fit_circuit(c, F, z, start)
        if from_drt.chi2 < 4e-5 < from_guess.chi2:
            rescued += 1
            assert abs(from_drt.params[1] / p[1] - 1) < 0.05
            assert abs(from_drt.params[4] / p[4] - 1) < 0.05
    assert rescued >= 1


def test_fit_spectrum_reports_the_drt_arc_count():
    p = two_arcs(300.0, 1e-6, 600.0, 1e-3)
    r = fit_spectrum(F, spectrum(p, 6), CIRCUIT)
    assert r.role_evidence.drt_arcs == 2
    assert r.to_dict()["role_evidence"]["drt_arcs"] == 2


def test_drt_start_needs_as_many_peaks_as_blocks():
    p = two_arcs(300.0, 1e-5, 1e-6, 1e-5)
    z = spectrum(p, 5)
    c = parse_circuit("R0-p(R1,CPE1)-p(R2,CPE2)-p(R3,CPE3)-CPE4")
    base = np.ones(c.n_params)
    assert drt_start(quick_drt(F, z), c, base) is None
