"""Benchmark: what the transport analyses (GITT/ICI/PITT/DCIR/self-discharge detection)
add to ``analyze_cycling`` on the 10M-row record of benchmarks/cycling.py.

Prints both CPU times (best of N, one thread) and the ratio transport / analyze_cycling;
the target (issue 18) is at most 0.20.

Usage: .venv/bin/python benchmarks/transport.py [--rows 10_000_000] [--cycles 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import xarray as xr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cycling import synthetic_record  # noqa: E402


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        c0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - c0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--cycles", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from cyclerflow.cycling import analyze_cycling
    from cyclerflow.transport import analyze_transport
    from cyclerflow.transport.hook import add_cycle_views, cycle_starts

    rec = synthetic_record(args.rows, args.cycles)
    ds = xr.Dataset({k: ("sample", v) for k, v in rec.items()})
    print(f"record: {ds.sizes['sample']:,} rows, {args.cycles} cycles")
    small = ds.isel(sample=slice(0, 50_000))
    analyze_cycling(small)  # warm-up (imports)
    analyze_transport(small)
    shared: dict = {}
    t_cyc, (summary, per_cycle) = _best(lambda: analyze_cycling(ds, keep=shared), args.repeat)
    starts = cycle_starts(per_cycle)
    t_tr, block = _best(
        lambda: analyze_transport(ds, cycle_starts=starts, shared=shared), args.repeat
    )
    t_full, _ = _best(lambda: analyze_transport(ds, cycle_starts=starts), 1)
    s_small: dict = {}
    sum_small, pc_small = analyze_cycling(small, keep=s_small)
    add_cycle_views(sum_small, pc_small, s_small)  # warm-up (scipy.signal import)
    t_views, _ = _best(lambda: add_cycle_views(dict(summary), per_cycle.copy(), shared), 1)
    print(f"analyze_cycling CPU: {t_cyc:.3f} s (best of {args.repeat})")
    print(
        f"analyze_transport CPU (reusing the segmentation): {t_tr:.3f} s "
        f"(best of {args.repeat}): steps {block['steps']}, "
        f"dcir entries {len(block['dcir'])}, self-discharge events {len(block['self_discharge'])}"
    )
    print(f"ratio transport / analyze_cycling: {t_tr / t_cyc:.3f} (target <= 0.20)")
    print(f"cycle types + dQ/dV peak tracking (analyze's cycling views): {t_views:.3f} s")
    print(
        f"(without the shared segmentation, as for a record without cycles: {t_full:.3f} s, "
        f"ratio {t_full / t_cyc:.2f})"
    )


if __name__ == "__main__":
    main()
