"""EIS fitter benchmark: speed and accuracy against impedance.py's CustomCircuit.fit.

Run by hand:  .venv/bin/python benchmarks/eis.py [--n 2000] [--n-ref 40] [--big 10000] [--jobs 2]

It also times a global fit of a 10-temperature bulk + grain-boundary pellet series
(target: under 1 s).

All figures come from one run on the same synthetic set: 60-point spectra (1 MHz ..
0.1 Hz) of the two-arc circuit R0-p(R1,CPE1)-p(R2,CPE2)-CPE3 with random parameters
and 0.5 % noise. impedance.py gets modulus weighting (``weight_by_modulus=True``) and
the same data-derived starting vector our fitter starts from. Accuracy = median over
spectra of the median relative error of R1, R2, CPE1_0, CPE2_0 (the quantities a user
reads), plus the same for every parameter.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

CIRCUIT = "R0-p(R1,CPE1)-p(R2,CPE2)-CPE3"
KEY = ["R1", "CPE1_0", "R2", "CPE2_0"]


def make_set(n: int, seed: int = 0):
    from cyclerflow.eis import parse_circuit

    rng = np.random.default_rng(seed)
    c = parse_circuit(CIRCUIT)
    f = np.logspace(6, -1, 60)
    out = []
    for _ in range(n):
        rb = 10 ** rng.uniform(1.5, 3.5)
        ri = rb * 10 ** rng.uniform(-0.3, 0.7)
        tb = 10 ** rng.uniform(-6.5, -5.5)  # bulk arc 50-500 kHz
        ti = tb * 10 ** rng.uniform(2.5, 3.5)  # interface arc 2.5-3.5 decades lower
        n1, n2 = rng.uniform(0.85, 0.97), rng.uniform(0.7, 0.9)
        p = np.array(
            [
                rb * 0.01,
                rb,
                tb**n1 / rb,
                n1,
                ri,
                ti**n2 / ri,
                n2,
                1.0 / (ri * 0.1),
                rng.uniform(0.5, 0.8),
            ]
        )
        z = c.impedance(p, f)
        z = z + 0.005 * np.abs(z) * (rng.normal(size=f.size) + 1j * rng.normal(size=f.size))
        out.append((f, z, p))
    return out


def rel_err(names, est: dict, truth: np.ndarray, which) -> float:
    idx = [names.index(k) for k in which]
    return float(np.median([abs(est[names[i]] / truth[i] - 1) for i in idx]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000, help="spectra for our single-core rate")
    ap.add_argument("--n-ref", type=int, default=40, help="spectra for impedance.py (slow)")
    ap.add_argument(
        "--big", type=int, default=10000, help="spectra for the multi-process run (0: skip)"
    )
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--only-big", action="store_true", help="only the multi-process run")
    args = ap.parse_args()
    if args.only_big:
        big_run(args.big, args.jobs)
        return

    from cyclerflow.eis import parse_circuit

    names = list(parse_circuit(CIRCUIT).param_names)
    data = make_set(max(args.n, args.n_ref))
    print(f"set: {len(data)} spectra x 60 points, circuit {CIRCUIT}, 0.5 % noise")
    ours, t_ours = ours_run(data, args.n)
    reference_run(data[: args.n_ref], ours, t_ours, names)

    drt_start_run()
    global_run()
    if args.big:
        big_run(args.big, args.jobs)


def ours_run(data, n: int):
    """Our single-process rates (circuit given, with KK; automatic choice); (fits, s each)."""
    from cyclerflow.eis import fit_spectrum

    # ours, single process, circuit given (includes the KK test of every spectrum)
    cpu0 = time.process_time()
    fit_spectrum(data[0][0], data[0][1], CIRCUIT)  # warm up imports/caches
    t0 = time.perf_counter()
    ours = [fit_spectrum(f, z, CIRCUIT) for f, z, _ in data[:n]]
    t_ours = (time.perf_counter() - t0) / n
    cpu_ours = (time.process_time() - cpu0) / n
    t0 = time.perf_counter()
    n_auto = min(n, 300)
    auto = [fit_spectrum(f, z) for f, z, _ in data[:n_auto]]
    t_auto = (time.perf_counter() - t0) / n_auto
    ok = sum(r.fit_ok for r in ours)
    print(
        f"machine load average at start: {os.getloadavg()[0]:.2f} (2 cores shared: wall-clock rates drop under load)"
    )
    print(
        f"cyclerflow, circuit given, CPU time:  {1 / cpu_ours:8.1f} spectra/s per core ({cpu_ours * 1e3:.2f} ms CPU each)"
    )
    print(
        f"cyclerflow, circuit given, with KK:   {1 / t_ours:8.1f} spectra/s per core ({t_ours * 1e3:.2f} ms each), fit_ok {ok}/{n}"
    )
    print(
        f"cyclerflow, automatic model choice:   {1 / t_auto:8.1f} spectra/s per core ({t_auto * 1e3:.2f} ms each), "
        f"chose cell for {sum(r.model == 'cell' for r in auto)}/{n_auto}"
    )

    return ours, t_ours


def reference_run(sub, ours, t_ours: float, names: list[str]) -> None:
    """impedance.py on the same spectra, same starting vector as ours: speed and accuracy."""
    from impedance.models.circuits import CustomCircuit

    from cyclerflow.eis import parse_circuit
    from cyclerflow.eis.guess import initial_guesses

    t_ref = 0.0
    ref_res = []
    fails = 0
    for f, z, _ in sub:
        p0 = initial_guesses(parse_circuit(CIRCUIT), f, z)[0]
        cc = CustomCircuit(CIRCUIT, initial_guess=list(map(float, p0)))
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cc.fit(f, z, weight_by_modulus=True)
            ref_res.append(dict(zip(names, cc.parameters_, strict=True)))
        except Exception:  # noqa: BLE001 - count any failure
            fails += 1
            ref_res.append(dict(zip(names, p0, strict=True)))
        t_ref += time.perf_counter() - t0
    t_ref /= len(sub)
    acc_ours = np.median(
        [rel_err(names, r.params, p, KEY) for r, (_, _, p) in zip(ours, sub, strict=False)]
    )
    acc_ref = np.median(
        [rel_err(names, r, p, KEY) for r, (_, _, p) in zip(ref_res, sub, strict=True)]
    )
    all_ours = np.median(
        [rel_err(names, r.params, p, names) for r, (_, _, p) in zip(ours, sub, strict=False)]
    )
    all_ref = np.median(
        [rel_err(names, r, p, names) for r, (_, _, p) in zip(ref_res, sub, strict=True)]
    )
    bad_ours = sum(
        rel_err(names, r.params, p, KEY) > 0.1 for r, (_, _, p) in zip(ours, sub, strict=False)
    )
    bad_ref = sum(
        rel_err(names, r, p, KEY) > 0.1 for r, (_, _, p) in zip(ref_res, sub, strict=True)
    )
    print(
        f"impedance.py CustomCircuit.fit (modulus weighting): {1 / t_ref:8.1f} spectra/s ({t_ref * 1e3:.1f} ms each), {fails} exceptions"
    )
    print(f"speed ratio (cyclerflow incl. KK test / impedance.py): {t_ref / t_ours:.1f}x")
    print(
        f"accuracy on the same {len(sub)} spectra, median relative error of R1,Q1,R2,Q2: "
        f"cyclerflow {acc_ours:.4f}, impedance.py {acc_ref:.4f}; all 9 parameters: {all_ours:.4f} vs {all_ref:.4f}; "
        f"spectra with >10 % error: {bad_ours} vs {bad_ref}"
    )


def hard_set(n: int, seed: int = 5):
    """Two depressed arcs only 1.2-2 decades apart (n 0.75-0.9): the apex heuristic's
    first start sometimes misses them."""
    from cyclerflow.eis import parse_circuit

    rng = np.random.default_rng(seed)
    c = parse_circuit(CIRCUIT)
    f = np.logspace(6, -1, 60)
    out = []
    for _ in range(n):
        rb = 10 ** rng.uniform(1.5, 3.5)
        ri = rb * 10 ** rng.uniform(-0.5, 0.5)
        tb = 10 ** rng.uniform(-6.0, -4.5)
        ti = tb * 10 ** rng.uniform(1.2, 2.0)
        n1, n2 = rng.uniform(0.75, 0.9), rng.uniform(0.7, 0.85)
        p = np.array(
            [
                rb * 0.01,
                rb,
                tb**n1 / rb,
                n1,
                ri,
                ti**n2 / ri,
                n2,
                1 / (ri * 0.1),
                rng.uniform(0.5, 0.8),
            ]
        )
        z = c.impedance(p, f)
        z = z + 0.005 * np.abs(z) * (rng.normal(size=f.size) + 1j * rng.normal(size=f.size))
        out.append((f, z, p))
    return out


def drt_start_run(n: int = 150) -> None:
    """Single fits with and without the quick-DRT restart, same spectra, CPU time."""
    import cyclerflow.eis.fit as fit_module
    from cyclerflow.eis import fit_spectrum, parse_circuit

    names = list(parse_circuit(CIRCUIT).param_names)
    with_drt = fit_module.drt_start
    for label, data in (("benchmark set", make_set(n)), ("close arcs", hard_set(n))):
        for mode in ("with", "without"):
            fit_module.drt_start = with_drt if mode == "with" else (lambda *a: None)
            cpu0 = time.process_time()
            rs = [fit_spectrum(f, z, CIRCUIT) for f, z, _ in data]
            cpu = (time.process_time() - cpu0) / n
            off = sum(
                rel_err(names, r.params, p, ["R1", "R2"]) > 0.05
                for r, (_, _, p) in zip(rs, data, strict=True)
            )
            print(
                f"{label}, {mode} the DRT restart: {1 / cpu:6.1f} spectra/s per core (CPU), "
                f"fit_ok {sum(r.fit_ok for r in rs)}/{n}, R1/R2 median error > 5 %: {off}"
            )
    fit_module.drt_start = with_drt


def global_run(n_temps: int = 10) -> None:
    """Global fit of a 10-temperature pellet series (bulk + grain boundary, 81 points
    each), started from the single fits, as analyze_spectra(global_fit=True) does."""
    from cyclerflow.eis import fit_spectrum
    from cyclerflow.eis.global_fit import global_fit

    rng = np.random.default_rng(3)
    c = parse_pellet()
    temps_c = np.linspace(20, 200, n_temps)
    series = pellet(temps_c, rng)
    f = np.logspace(6, -2, 81)
    t0 = time.perf_counter()
    singles = [fit_spectrum(f, z, "bulk_gb") for _, _, z in series]
    t_single = time.perf_counter() - t0
    starts = [r.warm["bulk_gb"] for r in singles]  # the full fits (before any fallback)
    g = global_fit([t for t, _, _ in series], [(f, z) for _, _, z in series], c.string, starts)
    err = max(abs(p["R1"] / tr["R1"] - 1) for p, (_, tr, _) in zip(g.params, series, strict=True))
    print(
        f"global fit, {n_temps}-temperature series ({len(starts) * 9 - 2 * (len(starts) - 1)} "
        f"parameters, 3 shared exponents): {g.seconds:.3f} s ({g.nfev} iterations, converged "
        f"{g.success}, chi2 {g.chi2:.3g}, largest R1 error {err:.3%}); the {n_temps} single "
        f"fits before it: {t_single:.3f} s"
    )


def parse_pellet():
    from cyclerflow.eis import parse_circuit

    return parse_circuit("R0-p(R1,CPE1)-p(R2,CPE2)-CPE3")


def pellet(temps_c, rng):
    """(T, truth, Z) of a bulk + grain-boundary pellet (bulk Ea 0.55, gb 0.85 eV)."""
    c = parse_pellet()
    f = np.logspace(6, -2, 81)
    out = []
    for tc in temps_c:
        t = tc + 273.15
        k_b = (t / 473.15) * np.exp(0.55 / 8.617e-5 * (1 / t - 1 / 473.15))
        k_g = (t / 473.15) * np.exp(0.85 / 8.617e-5 * (1 / t - 1 / 473.15))
        rb, rg, cb, cg = 9400 * k_b, 8000 * k_g, 8.5e-12, 1e-9
        tr = {
            "R0": 2.0,
            "R1": rb,
            "CPE1_0": cb**0.95 * rb**-0.05,
            "CPE1_1": 0.95,
            "R2": rg,
            "CPE2_0": cg**0.85 * rg**-0.15,
            "CPE2_1": 0.85,
            "CPE3_0": 1e-6,
            "CPE3_1": 0.85,
        }
        z = c.impedance([tr[n] for n in c.param_names], f)
        z = z + 0.005 * np.abs(z) * (rng.normal(size=f.size) + 1j * rng.normal(size=f.size))
        out.append((t, tr, z))
    return out


def big_run(n: int, jobs: int) -> None:
    import resource

    from cyclerflow.eis import fit_many

    big = make_set(n, seed=1)
    print(f"load average before the {n}-spectra run: {os.getloadavg()[0]:.2f}")
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    s0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    res = fit_many([(f, z) for f, z, _ in big], CIRCUIT, n_jobs=jobs, chunk=250)
    dt = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    s1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = sum(
        getattr(b, k) - getattr(a, k)
        for a, b in ((c0, c1), (s0, s1))
        for k in ("ru_utime", "ru_stime")
    )
    okb = sum(getattr(r, "fit_ok", False) for r in res)
    print(
        f"{n} spectra with {jobs} processes: {dt:.1f} s wall ({n / dt:.0f} spectra/s), fit_ok {okb}/{n}; "
        f"CPU {cpu:.1f} s in total = {cpu / jobs:.1f} s on {jobs} otherwise idle cores"
    )


if __name__ == "__main__":
    main()
