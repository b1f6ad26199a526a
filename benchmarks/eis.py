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
import resource
import time
import warnings
from dataclasses import dataclass

import numpy as np

CIRCUIT = "R0-p(R1,CPE1)-p(R2,CPE2)-CPE3"
KEY = ["R1", "CPE1_0", "R2", "CPE2_0"]


@dataclass(frozen=True)
class Timed:
    """A call's result, wall time and CPU time (s; this process and its children)."""

    value: object
    wall_s: float
    cpu_s: float


def _cpu() -> float:
    return sum(
        getattr(resource.getrusage(who), k)
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        for k in ("ru_utime", "ru_stime")
    )


def timed(fn, *args, **kw) -> Timed:
    """Run ``fn(*args, **kw)`` once and time it (wall and CPU)."""
    c0, t0 = _cpu(), time.perf_counter()
    value = fn(*args, **kw)
    return Timed(value, time.perf_counter() - t0, _cpu() - c0)


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


def _arcs_in_tau_order(p: np.ndarray) -> np.ndarray:
    """CIRCUIT's parameters with its two R||CPE arcs ordered by time constant: the
    circuit is symmetric in them, so a fit that labels them the other way round is the
    same fit (roles are then set by capacitance; compare like with like)."""
    p = np.array(p, dtype="f8")
    tau1, tau2 = ((p[1] * p[2]) ** (1 / p[3]), (p[4] * p[5]) ** (1 / p[6]))
    if tau1 > tau2:
        p[1:4], p[4:7] = p[4:7].copy(), p[1:4].copy()
    return p


def rel_err(names, est: dict, truth: np.ndarray, which) -> float:
    """Median relative error of the parameters ``which`` (arcs matched by tau)."""
    e = _arcs_in_tau_order(np.array([est[n] for n in names]))
    t = _arcs_in_tau_order(truth)
    idx = [names.index(k) for k in which]
    return float(np.median([abs(e[i] / t[i] - 1) for i in idx]))


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

    fit_spectrum(data[0][0], data[0][1], CIRCUIT)  # warm up imports/caches
    given = timed(lambda: [fit_spectrum(f, z, CIRCUIT) for f, z, _ in data[:n]])
    n_auto = min(n, 300)
    auto = timed(lambda: [fit_spectrum(f, z) for f, z, _ in data[:n_auto]])
    ours = given.value
    t_ours, cpu_ours, t_auto = given.wall_s / n, given.cpu_s / n, auto.wall_s / n_auto
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
        f"cyclerflow, automatic model choice:   {1 / t_auto:8.1f} spectra/s per core ({t_auto * 1e3:.2f} ms each, "
        f"CPU {auto.cpu_s / n_auto * 1e3:.2f} ms), chose cell for {sum(r.model == 'cell' for r in auto.value)}/{n_auto}"
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
        run = timed(_reference_fit, cc, f, z)
        t_ref += run.wall_s
        if run.value:
            ref_res.append(dict(zip(names, cc.parameters_, strict=True)))
        else:
            fails += 1
            ref_res.append(dict(zip(names, p0, strict=True)))
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


def _reference_fit(cc, f, z) -> bool:
    """impedance.py's fit; False when it raised."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cc.fit(f, z, weight_by_modulus=True)
        return True
    except Exception:  # noqa: BLE001 - count any failure
        return False


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


def drt_start_run(n: int = 150, repeat: int = 2) -> None:
    """Single fits with the quick-DRT start placed each way (cyclerflow.eis.fit.DRT_START),
    same spectra, CPU time (best of ``repeat``, modes interleaved)."""
    import cyclerflow.eis.fit as fit_module
    from cyclerflow.eis import fit_spectrum, parse_circuit

    names = list(parse_circuit(CIRCUIT).param_names)
    default = fit_module.DRT_START
    for label, data in (("benchmark set", make_set(n)), ("close arcs", hard_set(n))):
        best: dict = {}
        for _ in range(repeat):
            for mode in ("auto", "first", "restart", "off"):
                fit_module.DRT_START = mode
                run = timed(lambda d=data: [fit_spectrum(f, z, CIRCUIT) for f, z, _ in d])
                if mode not in best or run.cpu_s < best[mode].cpu_s:
                    best[mode] = run
        for mode, run in best.items():
            off = sum(
                rel_err(names, r.params, p, ["R1", "R2"]) > 0.05
                for r, (_, _, p) in zip(run.value, data, strict=True)
            )
            print(
                f"{label}, DRT start {mode:8s}: {n / run.cpu_s:6.1f} spectra/s per core (CPU), "
                f"{n / run.wall_s:6.1f} wall; fit_ok {sum(r.fit_ok for r in run.value)}/{n}, "
                f"R1/R2 median error > 5 %: {off}"
            )
    fit_module.DRT_START = default


def global_run(n_temps: int = 10) -> None:
    """Global fit of a 10-temperature pellet series (bulk + grain boundary, 81 points
    each), started from the single fits: the plain fit with every exponent shared, and
    what analyze_spectra(global_fit=True) runs (free fit, one F-test per arc, final)."""
    from cyclerflow.eis import fit_spectrum
    from cyclerflow.eis.global_fit import global_fit
    from cyclerflow.eis.global_series import choose_shared

    rng = np.random.default_rng(3)
    c = parse_pellet()
    series = pellet(np.linspace(20, 200, n_temps), rng)
    temps = [t for t, _, _ in series]
    f = np.logspace(6, -2, 81)
    singles = timed(lambda: [fit_spectrum(f, z, "bulk_gb") for _, _, z in series])
    starts = [r.warm["bulk_gb"] for r in singles.value]  # the full fits (before any fallback)
    spectra = [(f, z) for _, _, z in series]
    plain = timed(global_fit, temps, spectra, c.string, starts)
    auto = timed(choose_shared, temps, spectra, c.string, starts, "modulus")
    for label, run, g in (
        ("exponents shared", plain, plain.value),
        ("shared by F-test", auto, auto.value[0]),
    ):
        err = max(
            abs(p["R1"] / tr["R1"] - 1) for p, (_, tr, _) in zip(g.params, series, strict=True)
        )
        print(
            f"global fit, {n_temps}-temperature series, {label} ({', '.join(g.shared)}): "
            f"{run.wall_s:.3f} s wall, {run.cpu_s:.3f} s CPU (converged {g.success}, chi2 "
            f"{g.chi2:.3g}, largest R1 error {err:.3%})"
        )
    print(
        f"the {n_temps} single fits before it: {singles.wall_s:.3f} s wall, {singles.cpu_s:.3f} s CPU"
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
    from cyclerflow.eis import fit_many

    big = make_set(n, seed=1)
    print(f"load average before the {n}-spectra run: {os.getloadavg()[0]:.2f}")
    run = timed(fit_many, [(f, z) for f, z, _ in big], CIRCUIT, n_jobs=jobs, chunk=250)
    okb = sum(getattr(r, "fit_ok", False) for r in run.value)
    print(
        f"{n} spectra with {jobs} processes: {run.wall_s:.1f} s wall ({n / run.wall_s:.0f} spectra/s), "
        f"fit_ok {okb}/{n}; CPU {run.cpu_s:.1f} s in total = {run.cpu_s / jobs:.1f} s on {jobs} "
        "otherwise idle cores"
    )


if __name__ == "__main__":
    main()
