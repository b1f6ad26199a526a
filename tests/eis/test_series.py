"""Temperature series: roles by capacitance, model from the stack, series consistency,
fallbacks that estimate what they claim (synthetic data with known answers)."""

import numpy as np
import pytest

from cyclerflow.eis import analyze_spectra, arrhenius_fit, fit_spectrum, parse_circuit
from cyclerflow.eis.roles import CellContext, context_from_metadata
from cyclerflow.errors import InputError
from cyclerflow.schema import parse_metadata

from .synth import (
    F_PELLET,
    PELLET_AREA_CM2,
    PELLET_THICKNESS_CM,
    as_dataset,
    cell_spectrum,
    pellet_metadata,
    pellet_series,
)

TEMPS_C = list(range(-20, 201, 20))
F = np.logspace(6, -1, 71)


@pytest.fixture(scope="module")
def pellet():
    series = pellet_series(TEMPS_C, np.random.default_rng(1))
    spectra = [
        as_dataset(F_PELLET, z, spectrum_id=i + 1, temperature_kelvin=t)
        for i, (t, _, z) in enumerate(series)
    ]
    summary, ds = analyze_spectra(spectra, parse_metadata(pellet_metadata()))
    return series, summary, ds


def test_pellet_model_from_the_stack(pellet):
    _, summary, _ = pellet
    assert (
        summary["sample_type"] == "pellet" and "current collectors" in summary["sample_type_source"]
    )
    for row in summary["spectra"]:
        assert row["model"] == "bulk_gb" and row["r_interface_ohm"] is None
        assert "r_grain_boundary_ohm" in row and "conductivity_total_s_per_cm" in row
    assert summary["arrhenius_total"] is not None


def test_pellet_bulk_and_total_activation_energies(pellet):
    series, summary, _ = pellet
    arr = summary["arrhenius"]
    assert arr["n_points"] >= 11
    assert abs(arr["activation_energy_ev"] - 0.55) < 0.01
    # the total (bulk + grain boundary) has no single Ea: compare with the true totals
    # at the temperatures the fit used
    rows = [r for r in summary["spectra"] if r["fit_ok"] and r["r_grain_boundary_ohm"]]
    truth = {round(t, 2): tr for t, tr, _ in series}
    t = np.array([r["temperature_kelvin"] for r in rows])
    r_true = np.array([truth[round(x, 2)]["R1"] + truth[round(x, 2)]["R2"] for x in t])
    sigma = PELLET_THICKNESS_CM / (r_true * PELLET_AREA_CM2)
    expect = arrhenius_fit(t, sigma)["activation_energy_ev"]
    tot = summary["arrhenius_total"]
    assert tot["n_points"] == len(rows) >= 10
    assert abs(tot["activation_energy_ev"] - expect) < 0.005
    assert 0.55 < expect < 0.85


def test_pellet_every_role_right_and_no_swapped_point(pellet):
    series, summary, _ = pellet
    for (_, truth, _), row in zip(series, summary["spectra"], strict=True):
        assert row["fit_ok"], row["message"]
        arcs = {a["role"]: a for a in row["role_evidence"]["arcs"]}
        assert set(arcs) == {"bulk", "grain_boundary"}
        assert arcs["bulk"]["capacitance_farad"] == pytest.approx(truth["c_bulk"], rel=0.1)
        assert arcs["grain_boundary"]["capacitance_farad"] == pytest.approx(truth["c_gb"], rel=0.1)
        assert (
            arcs["bulk"]["range"] == "bulk" and arcs["grain_boundary"]["range"] == "grain_boundary"
        )
        # the bulk is the bulk: within 1 % (resolved) or 3 standard errors + 1 % (fallback)
        tol = 0.01 * truth["R1"] + (0 if row["method"] == "fit" else 3 * row["r_bulk_stderr_ohm"])
        assert abs(row["r_bulk_ohm"] - truth["R1"]) < tol, row
        if row["r_grain_boundary_ohm"] is not None:
            assert row["r_grain_boundary_ohm"] == pytest.approx(truth["R2"], rel=0.03)


def test_pellet_hot_end_bulk_from_fixed_capacitance_not_the_lf_intercept(pellet):
    series, summary, _ = pellet
    hot = [
        (tr, row)
        for (_, tr, _), row in zip(series, summary["spectra"], strict=True)
        if row["temperature_kelvin"] > 445
    ]
    assert len(hot) == 2
    for truth, row in hot:
        assert row["method"] == "fixed_capacitance" and not row.get("bulk_resolved", False)
        assert {"bulk_arc_above_window", "bulk_capacitance_fixed"} <= set(row["flags"])
        assert row["f_bulk_hertz"] > 1e6
        assert 0 < row["r_bulk_stderr_ohm"] < 0.05 * row["r_bulk_ohm"]
        assert row["r_bulk_ohm"] < 0.7 * (truth["R1"] + truth["R2"])  # never bulk + gb
        assert "fixed from 3 colder resolved fit(s)" in row["message"]
        assert row["in_arrhenius"]  # its uncertainty is comparable to the resolved fits'


def test_pellet_roles_same_as_neighbours_or_flagged(pellet):
    _, summary, _ = pellet
    sigs = [tuple(a["role"] for a in r["role_evidence"]["arcs"]) for r in summary["spectra"]]
    for i, s in enumerate(sigs):
        for j in (i - 1, i + 1):
            if 0 <= j < len(sigs) and sorted(sigs[j]) != sorted(s):
                assert "roles_differ_from_neighbours" in summary["spectra"][i]["flags"]


def test_pellet_role_evidence_in_results_dataset(pellet):
    import json

    _, summary, ds = pellet
    ev = json.loads(ds["role_evidence_json"].values[0])
    assert ev["sample_type"] == "pellet" and set(ev["ranges_farad"]) >= {"bulk", "grain_boundary"}
    lo, hi = ev["ranges_farad"]["bulk"]
    k = PELLET_AREA_CM2 / PELLET_THICKNESS_CM  # A/l in cm
    assert lo == pytest.approx(1e-13 * k) and hi == pytest.approx(1e-11 * k)
    assert "l/A = 0.4178" in ev["scaling"]


def test_single_hot_spectrum_falls_back_to_the_high_frequency_side():
    t, truth, z = pellet_series([200], np.random.default_rng(2))[0]
    ctx = CellContext("pellet", PELLET_THICKNESS_CM, PELLET_AREA_CM2, "test")
    r = fit_spectrum(F_PELLET, z, "bulk_gb", context=ctx)
    assert not r.bulk_resolved and "bulk_arc_above_window" in r.flags
    assert r.method == "hf_intercept" and r.r_bulk_stderr_ohm > 0
    assert abs(r.r_bulk_ohm / truth["R1"] - 1) < 0.15  # a high-frequency estimate ...
    assert r.r_bulk_ohm < 0.6 * (truth["R1"] + truth["R2"])  # ... not the low-frequency intercept
    assert abs(r.r_bulk_ohm - truth["R1"]) < 3 * r.r_bulk_stderr_ohm + 0.02 * truth["R1"]


def test_bulk_above_the_window_at_every_temperature_still_gives_an_arrhenius_fit():
    """A fast conductor: no temperature has a resolved bulk arc (and so no colder
    capacitance to fix). The high-frequency estimates carry the bulk Arrhenius fit,
    weighted by their uncertainties, and the summary says so."""
    series = pellet_series([185, 190, 195, 200, 210, 220], np.random.default_rng(3))
    spectra = [
        as_dataset(F_PELLET, z, spectrum_id=i + 1, temperature_kelvin=t)
        for i, (t, _, z) in enumerate(series)
    ]
    summary, _ = analyze_spectra(spectra, parse_metadata(pellet_metadata()), global_fit=True)
    assert "above the window at every temperature" in summary["global_fit"]["note"]
    assert all(r["method"] == "hf_intercept" for r in summary["spectra"])
    assert all(r["in_arrhenius"] for r in summary["spectra"])
    assert abs(summary["arrhenius"]["activation_energy_ev"] - 0.55) < 0.03
    assert "high-frequency estimates only" in summary["arrhenius_note"]


def test_swapped_start_is_put_right_by_capacitance():
    _, truth, z = pellet_series([100], np.random.default_rng(3))[0]
    ctx = CellContext("pellet", PELLET_THICKNESS_CM, PELLET_AREA_CM2, "test")
    # start with the arcs in the "wrong" order: p(R1,CPE1) on the grain boundary
    start = {
        "R0": 2.0,
        "R1": truth["R2"],
        "CPE1_0": truth["CPE2_0"],
        "CPE1_1": 0.85,
        "R2": truth["R1"],
        "CPE2_0": truth["CPE1_0"],
        "CPE2_1": 0.95,
        "CPE3_0": truth["CPE3_0"],
        "CPE3_1": 0.85,
    }
    r = fit_spectrum(F_PELLET, z, "bulk_gb", initial=start, context=ctx)
    assert r.roles["bulk"] == "R2" and r.roles["grain_boundary"] == "R1"
    assert r.r_bulk_ohm == pytest.approx(truth["R1"], rel=0.01)
    assert r.r_grain_boundary_ohm == pytest.approx(truth["R2"], rel=0.02)
    assert "roles by capacitance" in r.message
    # without a sample type the ranges cannot be scaled, but the bulk's geometric
    # capacitance is the smallest of any sample: the model's roles go in capacitance order
    plain = fit_spectrum(F_PELLET, z, "bulk_gb", initial=start)
    assert plain.roles["bulk"] == "R2" and plain.roles["grain_boundary"] == "R1"
    assert plain.role_evidence.assigned_by == "capacitance order (sample type unknown)"
    # given roles are never reassigned
    given = fit_spectrum(F_PELLET, z, "bulk_gb", initial=start, roles={"bulk": "R1"}, context=ctx)
    assert given.roles["bulk"] == "R1" and given.role_evidence.assigned_by == "model"


def lipon_cell_meta(**extra):
    return parse_metadata(
        {
            "cell_id": "tf",
            "active_area_cm2": 0.25,
            "layers": [
                {"role": "current_collector", "material": "Pt", "thickness_um": 0.2},
                {"role": "cathode", "material": "LiCoO2", "thickness_um": 1.0},
                {"role": "electrolyte", "material": "LiPON", "thickness_um": 1.0},
                {"role": "anode", "material": "Li", "thickness_um": 3.0},
            ],
            **extra,
        }
    )


def test_thin_film_cell_second_arc_stays_interface():
    rng = np.random.default_rng(30)
    spectra, truth = [], []
    for i, (tc, rb) in enumerate(((15, 260.0), (25, 174.0), (35, 120.0))):
        p, z = cell_spectrum(F, 300.0, rng, r_bulk=rb)
        truth.append(p)
        spectra.append(as_dataset(F, z, spectrum_id=i + 1, temperature_kelvin=tc + 273.15))
    summary, _ = analyze_spectra(spectra, lipon_cell_meta())
    assert summary["sample_type"] == "thin_film_cell"
    assert "arrhenius_total" not in summary
    for row, p in zip(summary["spectra"], truth, strict=True):
        assert row["model"] == "cell" and row["fit_ok"], row["message"]
        roles = [a["role"] for a in row["role_evidence"]["arcs"]]
        assert roles == ["bulk", "interface"]
        assert row["r_interface_ohm"] == pytest.approx(300.0, rel=0.03)
        assert row["r_interface_ohm_cm2"] == pytest.approx(row["r_interface_ohm"] * 0.25)
        assert row["r_bulk_ohm"] == pytest.approx(p[1], rel=0.03)
        assert "r_grain_boundary_ohm" not in row
        assert "roles_differ_from_neighbours" not in row["flags"]


def test_sample_type_key_overrides_the_stack():
    meta = parse_metadata(pellet_metadata(sample_type="symmetric_cell"))
    assert context_from_metadata(meta).sample_type == "symmetric_cell"
    assert context_from_metadata(lipon_cell_meta(sample_type="pellet")).sample_type == "pellet"
    with pytest.raises(InputError, match="sample_type: 'disc' is not one of pellet"):
        context_from_metadata(parse_metadata(pellet_metadata(sample_type="disc")))
    # a stack with electrodes declared a pellet: never an electrode-interface model
    rng = np.random.default_rng(31)
    _, z = cell_spectrum(F, 300.0, rng)
    summary, _ = analyze_spectra(
        [as_dataset(F, z, temperature_kelvin=298.15)], lipon_cell_meta(sample_type="pellet")
    )
    row = summary["spectra"][0]
    assert row["model"] != "cell" and row["r_interface_ohm"] is None


def test_global_fit_shares_exponents_and_recovers_the_series():
    from cyclerflow.eis.global_fit import global_fit

    from .synth import PELLET

    rng = np.random.default_rng(40)
    series = pellet_series(range(20, 201, 20), rng)
    names = ["R0", "R1", "CPE1_0", "CPE1_1", "R2", "CPE2_0", "CPE2_1", "CPE3_0", "CPE3_1"]
    # starts 10 % off the truth, exponents scattered per temperature
    starts = [
        np.array([tr[n] for n in names]) * np.exp(rng.normal(0, 0.1, 9)) for _, tr, _ in series
    ]
    for s in starts:
        s[[3, 6, 8]] = np.minimum(s[[3, 6, 8]], 0.99)
    g = global_fit([t for t, _, _ in series], [(F_PELLET, z) for _, _, z in series], PELLET, starts)
    assert g.success and set(g.shared) == {"CPE1_1", "CPE2_1", "CPE3_1"}
    assert g.shared["CPE1_1"] == pytest.approx(0.95, abs=0.002)
    assert g.shared["CPE2_1"] == pytest.approx(0.85, abs=0.002)
    assert all(p["CPE1_1"] == g.shared["CPE1_1"] for p in g.params)
    assert g.chi2 < 3.5e-5  # 0.5 % noise gives ~2.5e-5
    for p, (_, tr, _) in zip(g.params, series, strict=True):
        assert p["R1"] == pytest.approx(tr["R1"], rel=0.03)
        assert p["R2"] == pytest.approx(tr["R2"], rel=0.03)
    q = global_fit(
        [t for t, _, _ in series],
        [(F_PELLET, z) for _, _, z in series],
        PELLET,
        [np.array(list(p.values())) for p in g.params],
        share_q=True,
    )
    assert {"CPE1_0", "CPE2_0", "CPE3_0"} <= set(q.shared)
    assert len({p["CPE3_0"] for p in q.params}) == 1


def _global(series):
    spectra = [
        as_dataset(F_PELLET, z, spectrum_id=i + 1, temperature_kelvin=t)
        for i, (t, _, z) in enumerate(series)
    ]
    summary, _ = analyze_spectra(spectra, parse_metadata(pellet_metadata()), global_fit=True)
    return summary


def _true_total_ea(series) -> float:
    t = np.array([t for t, _, _ in series])
    r = np.array([tr["R1"] + tr["R2"] for _, tr, _ in series])
    return arrhenius_fit(t, PELLET_THICKNESS_CM / (r * PELLET_AREA_CM2))["activation_energy_ev"]


def _bulk_group(g: dict) -> str:
    """The capacitance name of the arc the global fit calls bulk."""
    el = g["per_temperature"][0]["params"]
    rb = g["per_temperature"][0]["r_bulk_ohm"]
    r_name = next(n for n, v in el.items() if n.startswith("R") and v == rb)
    return f"CPE{r_name[1:]}_C"


def test_analysis_global_block(pellet):
    """Arcs that keep their shape: every group shared, the series recovered."""
    series, _, _ = pellet
    summary = _global(series)
    g = summary["global_fit"]
    assert g["circuit"] == "R0-p(R1,CPE1)-p(R2,CPE2)-CPE3" and len(g["per_temperature"]) == 12
    assert all(t["shared"] for t in g["sharing"]) and len(g["sharing"]) == 3
    assert g["shared"][_bulk_group(g)] == pytest.approx(series[0][1]["c_bulk"], rel=0.02)
    assert abs(g["arrhenius"]["activation_energy_ev"] - 0.55) < 0.01
    assert g["arrhenius"]["n_points"] == 12  # the hot end too: C and n shared
    assert abs(g["arrhenius_total"]["activation_energy_ev"] - _true_total_ea(series)) < 0.005
    assert g["chi2"] < 3.5e-5
    for row, (_, tr, _) in zip(g["per_temperature"], series, strict=True):
        assert row["r_bulk_ohm"] == pytest.approx(tr["R1"], rel=0.02)
    # the per-temperature results stay as they were
    assert summary["arrhenius"]["n_points"] >= 11


def test_global_fit_does_not_share_a_drifting_exponent():
    """The grain-boundary exponent narrows with temperature (0.0018 per K, as on the
    published pellet): sharing it would move the bulk / grain-boundary split, so the
    F-test keeps it per temperature; the bulk arc (constant shape) is still shared, and
    both activation energies come out as the truth."""
    series = pellet_series(range(-20, 201, 20), np.random.default_rng(3), n_gb_per_kelvin=0.0018)
    g = _global(series)["global_fit"]
    tests = {tuple(t["names"]): t for t in g["sharing"]}
    bulk = _bulk_group(g)
    gb = next(k for k in tests if k[0].startswith("CPE") and k[0] != bulk and len(k) == 2)
    assert not tests[gb]["shared"] and tests[gb]["p_value"] < 1e-6
    assert tests[(bulk, bulk.replace("_C", "_1"))]["shared"]
    assert bulk in g["shared"] and gb[1] not in g["shared"]
    assert abs(g["arrhenius"]["activation_energy_ev"] - 0.55) < 0.01
    assert abs(g["arrhenius_total"]["activation_energy_ev"] - _true_total_ea(series)) < 0.005
    n_gb = [row["params"][gb[1]] for row in g["per_temperature"]]
    n_true = [tr["CPE2_1"] for _, tr, _ in series]  # the truth's grain boundary
    assert np.max(np.abs(np.array(n_gb) - np.array(n_true))) < 0.03


@pytest.fixture(scope="module")
def pellet_fits():
    from cyclerflow.eis import fit_many

    series = pellet_series(range(20, 161, 20), np.random.default_rng(5))
    ctx = CellContext("pellet", PELLET_THICKNESS_CM, PELLET_AREA_CM2, "test")
    fits = fit_many([(F_PELLET, z) for _, _, z in series], context=ctx)
    items = [
        (F_PELLET, z, {"temperature_kelvin": t, "spectrum_id": i})
        for i, (t, _, z) in enumerate(series)
    ]
    return series, ctx, fits, items


def test_failed_point_is_refitted_from_its_neighbours(pellet_fits):
    from cyclerflow.eis.series import refine_series

    series, ctx, fits, items = pellet_fits
    _, truth, z = series[4]
    # a fit forced into the wrong exponents: a poor fit, far from the truth
    bad = fit_spectrum(F_PELLET, z, "bulk_gb", fixed={"CPE1_1": 0.7, "CPE2_1": 0.99}, context=ctx)
    assert not bad.fit_ok and abs(bad.r_bulk_ohm / truth["R1"] - 1) > 0.1
    out = refine_series(items, [*fits[:4], bad, *fits[5:]], {"context": ctx})
    r = out[4]
    assert r.fit_ok and "refit_from_neighbours" in r.flags and "not ok" in r.message
    assert r.r_bulk_ohm == pytest.approx(truth["R1"], rel=0.01)
    assert r.fixed == ()  # the neighbours' start, not the forced exponents


def test_non_monotonic_point_is_refitted(pellet_fits):
    import dataclasses

    from cyclerflow.eis.series import refit_inconsistent

    series, ctx, fits, items = pellet_fits
    _, truth, _ = series[3]
    # a point whose bulk resistance rises with temperature far beyond its error
    odd = dataclasses.replace(fits[3], r_bulk_ohm=3 * fits[2].r_bulk_ohm)
    out = refit_inconsistent(items, [*fits[:3], odd, *fits[4:]], {"context": ctx})
    assert "refit_from_neighbours" in out[3].flags
    assert "bulk resistance rises with temperature" in out[3].message
    assert out[3].r_bulk_ohm == pytest.approx(truth["R1"], rel=0.01)
    assert all(out[i] is fits[i] for i in (0, 1, 2, 4, 5))  # the others untouched


def test_symmetric_cell_gets_bulk_and_interface_by_capacitance():
    from cyclerflow.eis import parse_circuit

    from .synth import CELL, EPS0_F_PER_CM, noisy

    area, thick = 0.5, 0.1  # Li | LLZO 1 mm | Li
    c_b = 60 * EPS0_F_PER_CM * area / thick
    c_int = 10e-6 * area  # 10 µF/cm² at the Li interface
    rb, ri = 1e4, 5e3
    p = [1.0, rb, c_b**0.95 * rb**-0.05, 0.95, ri, c_int**0.8 * ri**-0.2, 0.8, 1.0, 0.7]
    z = noisy(parse_circuit(CELL).impedance(p, F_PELLET), 0.005, np.random.default_rng(50))
    meta = parse_metadata(
        {
            "cell_id": "sym",
            "active_area_cm2": area,
            "sample_type": "symmetric_cell",
            "layers": [
                {"role": "anode", "material": "Li", "thickness_um": 50},
                {"role": "electrolyte", "material": "LLZO", "thickness_um": thick * 1e4},
                {"role": "anode", "material": "Li", "thickness_um": 50},
            ],
        }
    )
    summary, _ = analyze_spectra([as_dataset(F_PELLET, z, temperature_kelvin=298.15)], meta)
    row = summary["spectra"][0]
    assert summary["sample_type"] == "symmetric_cell" and row["fit_ok"], row["message"]
    assert [a["role"] for a in row["role_evidence"]["arcs"]] == ["bulk", "interface"]
    assert row["r_bulk_ohm"] == pytest.approx(rb, rel=0.02)
    assert row["r_interface_ohm_cm2"] == pytest.approx(ri * area, rel=0.03)


def test_global_fit_shared_names_are_checked():
    from cyclerflow.eis.global_fit import global_fit

    from .synth import PELLET

    series = pellet_series([100, 150], np.random.default_rng(8))
    names = ["R0", "R1", "CPE1_0", "CPE1_1", "R2", "CPE2_0", "CPE2_1", "CPE3_0", "CPE3_1"]
    starts = [np.array([tr[n] for n in names]) for _, tr, _ in series]
    args = ([t for t, _, _ in series], [(F_PELLET, z) for _, _, z in series], PELLET, starts)
    with pytest.raises(InputError, match="shared parameter 'CPE9_C' is not in circuit"):
        global_fit(*args, shared=["CPE9_C"])
    with pytest.raises(InputError, match="cannot both be shared"):
        global_fit(*args, shared=["CPE1_0", "CPE1_C"])
    # the capacitance of an arc is reported per temperature and equals the truth's
    g = global_fit(*args, shared=["CPE1_C", "CPE1_1"])
    assert g.shared["CPE1_C"] == pytest.approx(series[0][1]["c_bulk"], rel=0.02)
    for p, (_, tr, _) in zip(g.params, series, strict=True):
        assert p["CPE1_0"] == pytest.approx(tr["CPE1_0"], rel=0.05)  # Q = C^n R^(n-1)


def test_capacitance_parametrisation_derivative():
    """dp/dx of an arc fitted as (R, C, n) against central differences."""
    from cyclerflow.eis.global_fit import _Map, capacitance_arcs

    from .synth import PELLET, pellet_truth

    c = parse_circuit(PELLET)
    tr = pellet_truth(400.0)
    p = np.array([tr[n] for n in c.param_names])
    pmap = _Map(~c.exponent_mask, tuple(capacitance_arcs(c).values()))
    x = pmap.to_x(p)
    assert pmap.params(x) == pytest.approx(p, rel=1e-9)
    m = pmap.dp_dx(x, p)
    h = 1e-6
    for j in range(x.size):
        d = np.zeros(x.size)
        d[j] = h
        num = (pmap.params(x + d) - pmap.params(x - d)) / (2 * h)
        assert np.all(np.abs(m[:, j] - num) <= 1e-5 * np.abs(num) + 1e-9 * np.abs(p)), j


def test_global_fit_with_given_shared_names_and_a_bad_option(pellet):
    series, _, _ = pellet
    spectra = [
        as_dataset(F_PELLET, z, spectrum_id=i + 1, temperature_kelvin=t)
        for i, (t, _, z) in enumerate(series[:4])
    ]
    meta = parse_metadata(pellet_metadata())
    summary, _ = analyze_spectra(spectra, meta, global_fit=["CPE3_1"])
    g = summary["global_fit"]
    assert list(g["shared"]) == ["CPE3_1"] and g["share"] == "given" and "sharing" not in g
    with pytest.raises(InputError, match="global_fit='exponents'"):
        analyze_spectra(spectra, meta, global_fit="exponents")
