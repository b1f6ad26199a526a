"""Benchmark: per-cycle table of 10M rows / 2,000 cycles.

Prints, from one run:
- file read time (cell file -> xr.Dataset, reported separately, excluded from analysis);
- ``analyze_cycling`` wall time on one core, and peak extra memory vs the raw columns;
- the same per-cycle table by cellpy's summary step (cellpy runs in its own venv,
  .venv-cellpy, because it pins pandas<3 which the project venv must not get),
  and by a plain pandas groupby implementation (always), with the ratios.

Usage: .venv/bin/python benchmarks/cycling.py [--rows 10_000_000] [--cycles 2000]
       [--cellpy-python .venv-cellpy/bin/python] [--no-peers]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def synthetic_record(rows: int, cycles: int, seed: int = 0) -> dict[str, np.ndarray]:
    """CC charge / CV hold / rest / CC discharge / rest; fixed points per step (vectorised)."""
    rng = np.random.default_rng(seed)
    per = rows // cycles
    n_cc, n_cv, n_rest = int(per * 0.38), int(per * 0.18), int(per * 0.03)
    n_dis = per - n_cc - n_cv - 2 * n_rest
    kinds = np.concatenate(
        [
            np.full(n_cc, 0),
            np.full(n_cv, 1),
            np.full(n_rest, 2),
            np.full(n_dis, 3),
            np.full(n_rest, 4),
        ]
    )
    pos = np.concatenate(
        [np.arange(n_cc), np.arange(n_cv), np.arange(n_rest), np.arange(n_dis), np.arange(n_rest)]
    )
    lens = np.array([n_cc, n_cv, n_rest, n_dis, n_rest])
    frac = pos / np.maximum(lens[kinds] - 1, 1)
    i_unit = np.select(
        [kinds == 0, kinds == 1, kinds == 3], [1.0, 1.0 - 0.95 * frac, -1.0], default=0.0
    )
    v_unit = np.select(
        [kinds == 0, kinds == 1, kinds == 2, kinds == 3],
        [3.6 + 0.6 * frac, 4.2, 4.1, 4.1 - 1.1 * frac],
        default=3.05,
    )
    # discharge current such that CE = 0.9995 (charge = CC + CV hold)
    q_in = i_unit[i_unit > 0].sum()
    i_unit[kinds == 3] = -0.9995 * q_in / n_dis
    current = 5.0
    n = per * cycles
    i = np.tile(i_unit, cycles) * current
    i[i != 0] += rng.normal(0, 1e-4 * current, np.count_nonzero(i))
    v = np.tile(v_unit, cycles) + rng.normal(0, 1e-4, n)
    dt = np.full(n, 1.0)
    dt[0] = 0.0
    dt += rng.uniform(-0.1, 0.1, n)
    t = np.cumsum(dt)
    cyc = np.repeat(np.arange(1, cycles + 1), per)
    step = np.repeat(np.arange(cycles * 5), np.tile(lens, cycles)) + 1
    return {
        "test_time_second": t,
        "voltage_volt": v,
        "current_ampere": i,
        "cycle_count": cyc.astype("i8"),
        "step_count": step.astype("i8"),
    }


def pandas_groupby(t, v, i, cyc, step) -> dict[str, np.ndarray]:
    """The straightforward way: pandas groupby on (cycle, step) with a per-row trapezoid."""
    import pandas as pd

    df = pd.DataFrame({"t": t, "v": v, "i": i, "cycle": cyc, "step": step})
    g = df.groupby("step", sort=False)
    dtt = g["t"].diff().fillna(0.0)
    df["dq"] = 0.5 * (df["i"] + g["i"].shift().fillna(df["i"])) * dtt / 3600.0
    p = df["i"] * df["v"]
    df["de"] = 0.5 * (p + p.groupby(df["step"]).shift().fillna(p)) * dtt / 3600.0
    df["chg"] = df["i"] > 0
    df["dis"] = df["i"] < 0
    out = df.groupby("cycle").apply(
        lambda x: pd.Series(
            {
                "qc": x.loc[x.chg, "dq"].sum(),
                "qd": -x.loc[x.dis, "dq"].sum(),
                "ec": x.loc[x.chg, "de"].sum(),
                "ed": -x.loc[x.dis, "de"].sum(),
            }
        ),
        include_groups=False,
    )
    out["ce"] = out["qd"] / out["qc"]
    return {k: out[k].to_numpy() for k in ("qc", "qd", "ce")}


CELLPY_SCRIPT = textwrap.dedent(
    """
    import sys, time, json
    import numpy as np, pandas as pd
    import cellpy
    from cellpy import cellreader
    d = np.load(sys.argv[1])
    t, v, i, cyc, step = d["t"], d["v"], d["i"], d["cycle"], d["step"]
    c = cellpy.cellreader.CellpyCell(initialize=True)
    from cellpy.parameters.internal_settings import get_headers_normal, get_default_raw_units
    hn = get_headers_normal()
    # cellpy's raw table needs the cumulative charge/discharge capacity columns (its loaders
    # get them from the instrument); build them per cycle like a cycler does
    dt = np.diff(t, prepend=t[0])
    dq = i * dt / 3600.0
    newc = np.r_[True, cyc[1:] != cyc[:-1]]
    def cum_in_cycle(x):
        s = np.cumsum(x)
        start = np.maximum.accumulate(np.where(newc, np.arange(len(x)), 0))
        return s - (s[start] - x[start])
    qc = cum_in_cycle(np.where(i > 0, dq, 0.0))
    qd = cum_in_cycle(np.where(i < 0, -dq, 0.0))
    raw = pd.DataFrame({
        hn.data_point_txt: np.arange(1, len(t) + 1),
        hn.test_time_txt: t, hn.step_time_txt: t, hn.datetime_txt: pd.to_datetime(t, unit="s"),
        hn.step_index_txt: step, hn.cycle_index_txt: cyc,
        hn.current_txt: i, hn.voltage_txt: v,
        hn.charge_capacity_txt: qc, hn.discharge_capacity_txt: qd,
        hn.charge_energy_txt: np.zeros(len(t)), hn.discharge_energy_txt: np.zeros(len(t)),
        hn.internal_resistance_txt: np.zeros(len(t)), hn.is_fc_data_txt: np.zeros(len(t)),
        hn.sub_step_index_txt: np.zeros(len(t), "i8"), hn.sub_step_time_txt: t,
        hn.ref_voltage_txt: v,
    })
    raw = raw.set_index(hn.data_point_txt, drop=False)
    c.data.raw = raw
    c.data.raw_units = get_default_raw_units()
    c.data.loaded_from = "benchmark"
    c.data.start_datetime = pd.Timestamp("2026-01-01")
    t0 = time.perf_counter()
    c.make_step_table()
    t1 = time.perf_counter()
    c.make_summary(find_ir=False, find_end_voltage=False)
    t2 = time.perf_counter()
    s = c.data.summary
    qd_col = [k for k in s.columns if "discharge_capacity" in k.lower()][0]
    print(json.dumps({"steps_s": t1 - t0, "summary_s": t2 - t1, "n": int(len(s)),
                      "qd0": float(s[qd_col].iloc[0]), "cellpy": cellpy.__version__}))
    """
)


BEEP_SCRIPT = textwrap.dedent(
    """
    import sys, time, json
    import numpy as np, pandas as pd
    import beep
    from beep.structure.base import BEEPDatapath

    class Datapath(BEEPDatapath):
        @classmethod
        def from_file(cls, path):
            raise NotImplementedError

    d = np.load(sys.argv[1])
    t, v, i, cyc, step = d["t"], d["v"], d["i"], d["cycle"], d["step"]
    # BEEP takes the cycler's cumulative capacity/energy columns (it does not integrate)
    dt = np.diff(t, prepend=t[0])
    newc = np.r_[True, cyc[1:] != cyc[:-1]]
    def cum_in_cycle(x):
        s = np.cumsum(x)
        start = np.maximum.accumulate(np.where(newc, np.arange(len(x)), 0))
        return s - (s[start] - x[start])
    dq, de = i * dt / 3600.0, i * v * dt / 3600.0
    raw = pd.DataFrame({
        "test_time": t, "cycle_index": cyc, "step_index": step, "current": i, "voltage": v,
        "charge_capacity": cum_in_cycle(np.where(i > 0, dq, 0.0)),
        "discharge_capacity": cum_in_cycle(np.where(i < 0, -dq, 0.0)),
        "charge_energy": cum_in_cycle(np.where(i > 0, de, 0.0)),
        "discharge_energy": cum_in_cycle(np.where(i < 0, -de, 0.0)),
        "date_time_iso": pd.to_datetime(t, unit="s").strftime("%Y-%m-%dT%H:%M:%S"),
        "data_point": np.arange(len(t)),
    })
    dp = Datapath(raw, {})
    t0 = time.perf_counter()
    summ = dp.summarize_cycles()
    t1 = time.perf_counter()
    out = {"summary_s": t1 - t0, "n": int(len(summ)), "beep": beep.__version__}
    n_struct = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    if n_struct:
        # structure() = interpolation of every cycle + summary; on the first n_struct cycles
        sub = raw[raw["cycle_index"] <= n_struct].reset_index(drop=True)
        dps = Datapath(sub, {})
        t0 = time.perf_counter()
        dps.structure(v_range=[3.0, 4.2])
        out["structure_s"] = time.perf_counter() - t0
        out["structure_rows"] = int(len(sub))
    print(json.dumps(out))
    """
)


def _run_peer(python: str, script_text: str, rec: dict[str, np.ndarray], *args: str):
    if not Path(python).exists():
        return f"interpreter {python} not found (python3 -m venv .venv-cellpy; pip install cellpy==1.0.3 beep==2026.2.7)"
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "rec.npz"
        np.savez(
            npz,
            t=rec["test_time_second"],
            v=rec["voltage_volt"],
            i=rec["current_ampere"],
            cycle=rec["cycle_count"],
            step=rec["step_count"],
        )
        script = Path(tmp) / "peer.py"
        script.write_text(script_text)
        env = dict(os.environ, OMP_NUM_THREADS="1")
        try:
            r = subprocess.run(
                [python, str(script), str(npz), *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=3600,
            )
        except subprocess.TimeoutExpired:
            return "did not finish within 1 h"
        if r.returncode != 0:
            return "failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
        return json.loads(r.stdout.strip().splitlines()[-1])


def run_cellpy(python: str, rec: dict[str, np.ndarray]) -> dict | str:
    return _run_peer(python, CELLPY_SCRIPT, rec)


def _timed(fn, *a) -> float:
    t0 = time.perf_counter()
    fn(*a)
    return time.perf_counter() - t0


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--cycles", type=int, default=2000)
    ap.add_argument("--cellpy-python", default=".venv-cellpy/bin/python")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument(
        "--beep-structure-cycles",
        type=int,
        default=200,
        help="cycles given to BEEP's structure() (0: skip)",
    )
    return ap.parse_args()


def _time_ours(ds, analyze_cycling):
    """Best-of-3 wall time, CPU times, and the last result."""
    times, cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        summary, per_cycle = analyze_cycling(ds)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(times), times, cpu, summary, per_cycle


def _print_memory(ds, analyze_cycling, raw_bytes: int) -> None:
    tracemalloc.start()
    analyze_cycling(ds)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"peak extra memory in analyze_cycling: {peak / 1e6:.0f} MB = "
        f"{peak / raw_bytes:.2f} x the raw columns (limit 3x)"
    )


def main() -> None:
    args = _args()

    from cyclerflow.cycling import analyze_cycling
    from cyclerflow.store import read_cycling, write_cell

    rec = synthetic_record(args.rows, args.cycles)
    n = len(rec["test_time_second"])
    raw_bytes = sum(a.nbytes for a in rec.values())
    print(f"record: {n:,} rows, {args.cycles} cycles, raw columns {raw_bytes / 1e6:.0f} MB")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.h5"
        write_cell(path, None, cycling=rec)
        t0 = time.perf_counter()
        ds = read_cycling(path)
        t_read = time.perf_counter() - t0
    print(f"file read (read_cycling, excluded below): {t_read:.3f} s")

    analyze_cycling(ds.isel(sample=slice(0, 50_000)))  # warm-up (imports, caches)
    t_ours, times, cpu, summary, per_cycle = _time_ours(ds, analyze_cycling)
    print(
        f"analyze_cycling CPU time (one thread): {', '.join(f'{x:.3f}' for x in cpu)} s "
        "(wall time below is inflated when other jobs share the 2 cores)"
    )
    print(
        f"analyze_cycling: {t_ours:.3f} s (best of 3; runs {', '.join(f'{x:.3f}' for x in times)})"
    )
    print(
        f"  cycles {summary['n_cycles']}, complete {summary['n_complete_cycles']}, "
        f"CE median {summary['ce_median']:.6f}"
    )
    _print_memory(ds, analyze_cycling, raw_bytes)
    if args.no_peers:
        return

    t0 = time.perf_counter()
    pg = pandas_groupby(
        rec["test_time_second"],
        rec["voltage_volt"],
        rec["current_ampere"],
        rec["cycle_count"],
        rec["step_count"],
    )
    t_pd = time.perf_counter() - t0
    agree = np.max(np.abs(pg["qd"] / per_cycle["discharge_capacity_ah"].values - 1))
    print(
        f"pandas groupby (same trapezoid per step): {t_pd:.3f} s -> ratio {t_pd / t_ours:.1f}x "
        f"(max rel. difference in discharge capacity {agree:.1e})"
    )

    t0 = time.perf_counter()
    cp = run_cellpy(args.cellpy_python, rec)
    t_cp_total = time.perf_counter() - t0
    if isinstance(cp, str):
        print(f"cellpy: not compared: {cp}")
    else:
        t_cp = cp["steps_s"] + cp["summary_s"]
        print(
            f"cellpy {cp['cellpy']} make_step_table + make_summary: {t_cp:.3f} s "
            f"(steps {cp['steps_s']:.3f} s, summary {cp['summary_s']:.3f} s; subprocess total "
            f"{t_cp_total:.1f} s) -> ratio {t_cp / t_ours:.1f}x; summary only "
            f"{cp['summary_s'] / t_ours:.1f}x; {cp['n']} summary rows"
        )
        q0 = float(per_cycle["discharge_capacity_ah"].values[0])
        print(
            f"  cycle 1 discharge: cellpy {cp['qd0']:.6f} (from rectangle-rule cumulative "
            f"columns built for it) vs ours {q0:.6f} Ah (trapezoid)"
        )
    n_struct = args.beep_structure_cycles
    bp = _run_peer(args.cellpy_python, BEEP_SCRIPT, rec, str(n_struct))
    if isinstance(bp, str):
        print(f"BEEP: not compared: {bp}")
    else:
        print(
            f"BEEP {bp['beep']} summarize_cycles (max of the cycler's cumulative columns, no "
            f"integration): {bp['summary_s']:.3f} s -> ratio {bp['summary_s'] / t_ours:.1f}x; "
            f"{bp['n']} rows"
        )
        if "structure_s" in bp:
            n_rows = bp["structure_rows"]
            sub = ds.isel(sample=slice(0, n_rows))
            t_sub = min(_timed(analyze_cycling, sub) for _ in range(3))
            print(
                f"BEEP structure() (interpolation + summary) on the first {n_struct} cycles "
                f"({n_rows:,} rows; the full record takes ~20 min): {bp['structure_s']:.1f} s vs "
                f"ours {t_sub:.3f} s on the same rows -> ratio {bp['structure_s'] / t_sub:.0f}x"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
