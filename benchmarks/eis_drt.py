"""DRT benchmark: cyclerflow.eis.drt against pyDRTtools (MIT) on the same spectra, same run.

Run by hand:  .venv-bench/bin/python benchmarks/eis_drt.py [--n 30] [--n-peer 10]

Data: 60-point spectra (1 MHz .. 1 mHz) of R_inf - RC - ZARC with random resistances,
relaxation times 2.5-3.5 decades apart, ZARC exponent 0.85-0.95, 0.5 % noise. Both sides
run with one BLAS thread and are timed in process CPU time (the target is per core, and
CPU time does not count the waits of a machine shared with other jobs). pyDRTtools runs its `simple_run` with
its defaults (Gaussian RBF, FWHM coefficient 0.5, 1st-order derivative, combined Re/Im,
inductance fitted, lambda by its GCV); its gamma(tau) goes through *our* peak finder so
both are scored with the same peak definition. Accuracy: share of spectra whose two
resolved peaks are within 0.1 decade and 5 % of the true tau and R. Target: ours under
20 ms per 60-point spectrum. pyDRTtools is imported without its GUI package initialiser
(that one forces a Qt display); nothing of it is copied.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402

import numpy as np  # noqa: E402

from cyclerflow.eis.drt import compute_drt, find_drt_peaks  # noqa: E402

F = np.logspace(6, -3, 60)


def make_set(n: int, seed: int = 0) -> list[tuple[np.ndarray, list[tuple[float, float]]]]:
    """[(Z, [(R, tau) of the RC, (R, tau) of the ZARC])] with 0.5 % noise."""
    rng = np.random.default_rng(seed)
    out = []
    w = 2 * np.pi * F
    for _ in range(n):
        r1 = 10 ** rng.uniform(1, 3)
        r2 = r1 * 10 ** rng.uniform(-0.5, 0.5)
        t1 = 10 ** rng.uniform(-6, -4.5)
        t2 = t1 * 10 ** rng.uniform(2.5, 3.5)
        n2 = rng.uniform(0.85, 0.95)
        z = 0.05 * r1 + r1 / (1 + 1j * w * t1) + r2 / (1 + (1j * w * t2) ** n2)
        z = z + 0.005 * np.abs(z) * (rng.normal(size=F.size) + 1j * rng.normal(size=F.size))
        out.append((z, [(r1, t1), (r2, t2)]))
    return out


def make_blocking(n: int, seed: int = 1) -> list[np.ndarray]:
    """60-point R_inf - ZARC - CPE spectra (a film between blocking electrodes)."""
    rng = np.random.default_rng(seed)
    w = 2 * np.pi * F
    out = []
    for _ in range(n):
        r, tau, n_el = 10 ** rng.uniform(2, 5), 10 ** rng.uniform(-6, -4), rng.uniform(0.8, 0.95)
        q_el = tau / r * 10 ** rng.uniform(2, 3)
        z = 0.01 * r + r / (1 + (1j * w * tau) ** 0.9) + 1 / (q_el * (1j * w) ** n_el)
        out.append(z + 0.005 * np.abs(z) * (rng.normal(size=F.size) + 1j * rng.normal(size=F.size)))
    return out


def score(peaks, truth) -> bool:
    arcs = [p for p in peaks if p.significant and p.in_window]
    if len(arcs) != len(truth):
        return False
    return all(
        abs(math.log10(p.tau_second / t)) < 0.1 and abs(p.r_ohm / r - 1) < 0.05
        for p, (r, t) in zip(arcs, truth, strict=True)
    )


def run_ours(data) -> tuple[list[float], list[bool], list[float]]:
    compute_drt(F, data[0][0])  # warm-up (imports, first BLAS call)
    times, ok, lams = [], [], []
    for z, truth in data:
        t0 = time.process_time()
        res = compute_drt(F, z)
        times.append(time.process_time() - t0)
        ok.append(score(res.peaks, truth))
        lams.append(res.lambda_)
    return times, ok, lams


def print_quick(data) -> float:
    """The quick DRT every circuit fit runs (cyclerflow.eis.drt_start): time, arc count."""
    from cyclerflow.eis.drt_start import quick_arc_count, quick_drt

    quick_drt(F, data[0][0])
    times, counts, ok = [], [], []
    for z, truth in data:
        t0 = time.process_time()
        res = quick_drt(F, z)
        times.append(time.process_time() - t0)
        counts.append(quick_arc_count(res) == len(truth))
        ok.append(score(res.peaks, truth))
    print(
        f"  cyclerflow quick DRT (fit starts; 4 basis/decade, fixed lambda, cached kernels): "
        f"median {np.median(times) * 1e3:.2f} ms; arc count right {sum(counts)}/{len(counts)}; "
        f"peaks within 0.1 dec / 5 %: {sum(ok)}/{len(ok)}"
    )
    return float(np.median(times))


def load_pydrttools():
    """pyDRTtools.runs without running the package __init__ (which imports its Qt GUI)."""
    spec = importlib.util.find_spec("pyDRTtools")
    if spec is None:
        return None
    pkg = types.ModuleType("pyDRTtools")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["pyDRTtools"] = pkg
    import matplotlib

    matplotlib.use("Agg")
    from cvxopt import solvers

    solvers.options["show_progress"] = False
    with contextlib.redirect_stdout(io.StringIO()):
        import pyDRTtools.runs as runs
    return runs


def run_peer(runs, data) -> tuple[list[float], list[bool]]:
    times, ok = [], []
    window = (1 / (2 * math.pi * F.max()), 1 / (2 * math.pi * F.min()))
    for z, truth in data:
        entry = runs.EIS_object(F.copy(), z.real.copy(), z.imag.copy())
        t0 = time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):
            runs.simple_run(entry, rbf_type="Gaussian", cv_type="GCV")
        times.append(time.process_time() - t0)
        tau = np.asarray(entry.out_tau_vec, float)
        order = np.argsort(tau)
        y, g = np.log(tau[order]), np.asarray(entry.gamma, float)[order]
        peaks, _ = find_drt_peaks(y, g, window)
        ok.append(score(peaks, truth))
    return times, ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30, help="spectra for cyclerflow")
    ap.add_argument("--n-peer", type=int, default=10, help="spectra for pyDRTtools")
    args = ap.parse_args()
    data = make_set(max(args.n, args.n_peer))
    times, ok, lams = run_ours(data[: args.n])
    med = float(np.median(times))
    print(
        f"DRT of a 60-point spectrum (1 MHz..1 mHz, RC + ZARC, 0.5 % noise), {args.n} spectra, "
        "process CPU time, 1 BLAS thread"
    )
    print(
        f"  cyclerflow: median {med * 1e3:.2f} ms (max {max(times) * 1e3:.2f} ms), "
        f"target < 20 ms: {'met' if med < 0.020 else 'NOT met'}; "
        f"peaks within 0.1 dec / 5 %: {sum(ok)}/{len(ok)}; "
        f"lambda (GCV) {min(lams):.2g}..{max(lams):.2g}"
    )
    qmed = print_quick(data[: args.n])
    blocking = make_blocking(10)
    btimes = []
    for z in blocking:
        t0 = time.process_time()
        compute_drt(F, z)
        btimes.append(time.process_time() - t0)
    print(
        f"  cyclerflow, blocking-electrode spectra (series CPE, exponent refined by GCV): "
        f"median {np.median(btimes) * 1e3:.2f} ms on {len(btimes)} spectra"
    )
    runs = load_pydrttools()
    if runs is None:
        print("  pyDRTtools not installed (make bench installs it): ratio not measured")
        return
    sub = data[: args.n_peer]
    ptimes, pok = run_peer(runs, sub)
    pmed = float(np.median(ptimes))
    ours_same = run_ours(sub)[0]
    omed = float(np.median(ours_same))
    print(
        f"  pyDRTtools 0.2 (simple_run, GCV): median {pmed * 1e3:.2f} ms on {len(sub)} spectra; "
        f"peaks within 0.1 dec / 5 % (our peak finder on its gamma): {sum(pok)}/{len(pok)}"
    )
    print(
        f"  speed ratio pyDRTtools / cyclerflow on the same {len(sub)} spectra: {pmed / omed:.1f}x "
        f"(quick DRT: {pmed / qmed:.0f}x)"
    )


if __name__ == "__main__":
    main()
