"""Kill campaign: SIGKILL at random moments of ``cyclerflow acquire`` (a Keithley 2450
simulator at 1000x) and of ``cyclerflow import``; after each kill the file must open,
``verify`` must pass (or ``recover`` restore it), at most one flush interval (1 s) may be
lost, and the next ``acquire`` must resume the same file with its numbering continuing.

Lost data is measured as the wall time between the file's last write (its mtime) and the
kill, and as rows (that time x the run's rows per wall second). Printed figures, not
pass/fail (tests/reliability runs a short one).

Per gap (each restart that got as far as reading the instrument back writes one ``gap``
event; a kill before that merges into the next gap), against the simulator's own cell
(the simulator runs in this process, so its model is the truth):

- limit held by the instrument: the cell passed at most one guard interval's charge
  outside the recipe's window while no host ran;
- time-gap error: simulator time minus test time at the first current step started after
  the gap, minus the same at the last one before it (0 when the file's time is true);
- unrecorded charge flagged: the gap event is there and, when charge moved, carries a
  non-zero estimate (which the interrupted step's ``step_end`` includes, marked).

    .venv/bin/python benchmarks/campaign_kill.py [--kills 100] [--imports 30] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cyclerflow.errors import InputError
from cyclerflow.store import read_cycling, recover
from cyclerflow.store.atomic import remove_stale_parts
from cyclerflow.store.verify import verify_file

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "import sys; from cyclerflow.cli import main; sys.exit(main())"]
FLUSH_INTERVAL_S = 1.0

V_MIN, V_MAX = 2.9, 4.3
CURRENT_A = 30e-6  # 2C of the 15 uAh cell: a gap of a second or two (x 1000) often
GUARD_S = 1.0  # reaches a limit; the 2450 tests its guard every guard_interval_s (1 s)
RECIPE = f"""name: kill-campaign
limits: {{voltage_max: {V_MAX} V, voltage_min: {V_MIN} V, current_max: 100 uA}}
sample_interval: 2 s
max_gap: 5 h
steps:
  - rest: {{duration: 1 min, record: {{every: 2 s}}}}
  - loop:
      repeat: 1000
      steps:
        - cc_charge: {{current: 2C, until: {{voltage: 4.1 V}}, record: {{every: 2 s}}}}
        - rest: {{duration: 2 min}}
        - cc_discharge: {{current: 2C, until: {{voltage: 3.6 V}}, record: {{every: 2 s}}}}
        - rest: {{duration: 2 min}}
"""


@dataclass
class KillTally:
    """What the kills did."""

    kills: int = 0
    unreadable: int = 0
    states: dict[str, int] = field(default_factory=dict)
    recovered: int = 0
    unrecoverable: int = 0
    gaps_s: list[float] = field(default_factory=list)
    rows_lost: list[float] = field(default_factory=list)
    numbering_breaks: int = 0
    final_rows: int = 0
    import_kills: int = 0
    import_outcomes: dict[str, int] = field(default_factory=dict)
    leftover_parts: int = 0
    parts_after_next_write: int = 0
    gaps: list[GapCheck] = field(default_factory=list)


@dataclass(frozen=True)
class GapCheck:
    """One restart's gap against the simulator: simulated s, Ah."""

    start_s: float
    duration_s: float
    limit_held: bool
    time_error_s: float  # NaN: no current step started on one side of it
    shared_by: int  # gaps between the same two step starts (the error is theirs together)
    true_charge_ah: float
    estimate_ah: float
    method: str
    flagged: bool


def start_simulator(cell: Path):
    """The Keithley 2450 simulator at 1000x in this process (its cell model is read after
    the campaign); its resource string."""
    from cyclerflow.drivers.sim import start_simulator as start

    server, _ = start("keithley2450", speedup=1000, cell=str(cell))
    return server, server.resource


def _acquire_argv(resource: str, work: Path, out: Path) -> list[str]:
    return [*CLI, "acquire", "--driver", "keithley2450", "--resource", resource,
            "--protocol", str(work / "recipe.yaml"), "--cell", str(work / "cell.yaml"),
            "-o", str(out), "--speedup", "1000", "--option", "timeout_s=10"]  # fmt: skip


def _rows(path: Path) -> int:
    try:
        return read_cycling(path, columns=["test_time_second"]).sizes["sample"]
    except InputError:
        return 0


def check_after_kill(path: Path, t: KillTally) -> None:
    """The file opens; verify passes, else recover (in place) must restore it."""
    if not path.exists():
        t.states["no file yet"] = t.states.get("no file yet", 0) + 1
        return
    try:
        state = verify_file(path).state
    except InputError:
        state = "unreadable"
    t.states[state] = t.states.get(state, 0) + 1
    if state == "unreadable":
        t.unreadable += 1
    if state in ("damaged", "unreadable"):
        try:
            recover(path)
            t.recovered += int(verify_file(path).ok)
        except InputError:
            t.unrecoverable += 1


def one_kill(resource: str, work: Path, out: Path, rng: np.random.Generator, t: KillTally):
    """Start acquire (new file or resume), SIGKILL it after a random 0.5..6 s."""
    rows_before = _rows(out) if out.exists() else 0
    log = (work / "acquire.log").open("a")
    t0 = time.time()
    proc = subprocess.Popen(_acquire_argv(resource, work, out), stdout=log, stderr=log)
    time.sleep(float(rng.uniform(0.5, 6.0)))
    os.kill(proc.pid, signal.SIGKILL)
    t_kill = time.time()
    proc.wait()
    t.kills += 1
    if out.exists():
        gap = t_kill - out.stat().st_mtime
        rows_now = _rows(out)
        wrote = max(0.0, out.stat().st_mtime - t0)
        if rows_now > rows_before and wrote > 0:
            t.gaps_s.append(gap)
            t.rows_lost.append(gap * (rows_now - rows_before) / wrote)
    check_after_kill(out, t)


def numbering_ok(path: Path) -> tuple[bool, int]:
    """Test time strictly rising, cycle and step counters never falling, over all resumes."""
    ds = read_cycling(path)
    tt = ds["test_time_second"].values
    ok = bool(np.all(np.diff(tt) > 0))
    for c in ("cycle_count", "step_count"):
        if c in ds:
            ok &= bool(np.all(np.diff(ds[c].values) >= 0))
    return ok, len(tt)


def sim_switches(model) -> list[tuple[float, float]]:
    """(simulated start s, set point A) of each change into a non-zero constant current."""
    segs = model.segments
    return [
        (b.start_s, b.setpoint)
        for a, b in zip(segs, segs[1:], strict=False)
        if b.mode == "cc" and b.setpoint != 0 and (a.mode, a.setpoint) != ("cc", b.setpoint)
    ]


def step_offsets(events: list[dict], model) -> list[tuple[float, float]]:
    """(test s, simulator s - test s) at every current step's start in the file: each
    matched to the simulator's switch of that sign nearest to where the previous offset
    puts it (a resumed step's own re-sourcing is a switch without a step start)."""
    from cyclerflow.acquire.progress import parse_fields

    switches = sim_switches(model)
    out: list[tuple[float, float]] = []
    off = None
    for e in events:
        kind = parse_fields(e["message"]).get("kind", "") if e["kind"] == "step_start" else ""
        if not kind.startswith("cc_"):
            continue
        t = float(e["test_time_second"])
        sign = 1.0 if kind == "cc_charge" else -1.0
        cands = np.array([s for s, sp in switches if sp * sign > 0])
        if cands.size == 0:
            continue
        guess = cands[0] if off is None else t + off
        off = float(cands[np.argmin(np.abs(cands - guess))]) - t
        out.append((t, off))
    return out


def check_gaps(path: Path, model) -> list[GapCheck]:
    """Each gap event of ``path`` against the simulator's cell ``model`` (see the module
    docstring)."""
    import json

    from cyclerflow.store import read_events

    events = read_events(path)
    offs = step_offsets(events, model)
    ts = np.array([t for t, _ in offs])
    gaps = [json.loads(e["message"]) for e in events if e["kind"] == "gap"]
    out = []
    for g in gaps:
        i0 = int(np.searchsorted(ts, g["start_s"])) - 1  # last start before the gap
        i1 = int(np.searchsorted(ts, g["end_s"]))  # first start after it
        if i0 < 0:
            continue  # killed before the first current step: nothing to map it with
        off0 = offs[i0][1]
        err = offs[i1][1] - off0 if i1 < len(offs) else float("nan")
        between = [
            h for h in gaps if ts[i0] < h["start_s"] and (i1 >= len(ts) or h["end_s"] < ts[i1])
        ]
        t0, t1 = g["start_s"] + off0, g["end_s"] + off0
        _, _, q_out = model.excursion(V_MIN, V_MAX, t0, t1)
        q_true = model.charge_between(t0, t1)
        est = g["estimated_charge_ah"]
        moved = abs(q_true) > 1e-3 * CURRENT_A * GUARD_S / 3600.0
        flagged = (not moved) or (est is not None and est != 0.0)
        held = q_out <= 1.05 * CURRENT_A * GUARD_S / 3600.0
        out.append(
            GapCheck(
                g["start_s"],
                g["end_s"] - g["start_s"],
                held,
                err,
                len(between),
                q_true,
                float("nan") if est is None else est,
                g["estimate_method"],
                flagged,
            )  # fmt: skip
        )
    return out


def import_kills(work: Path, n: int, rng: np.random.Generator, t: KillTally) -> None:
    """SIGKILL ``cyclerflow import`` at random moments: the output is absent or whole."""
    src = _import_source(work)
    for i in range(n):
        out = work / f"imp{i}.h5"
        proc = subprocess.Popen([*CLI, "import", str(src), "-o", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(float(rng.uniform(0.2, 4.0)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        t.import_kills += 1
        if not out.exists():
            outcome = "no output (killed before the rename)"
        else:
            outcome = "whole file" if verify_file(out).state == "intact" else "partial file"
        t.import_outcomes[outcome] = t.import_outcomes.get(outcome, 0) + 1
    parts = list(work.glob(".imp*.part-*"))
    t.leftover_parts = len(parts)
    # the next write of the same output removes a killed writer's temporary
    for part in parts:
        name = part.name.split(".part-")[0].lstrip(".")
        remove_stale_parts(work / name)
    t.parts_after_next_write = len(list(work.glob(".imp*.part-*")))


def _import_source(work: Path) -> Path:
    """A neutral BDF CSV of 200,000 rows (a second or two to import)."""
    n = 200_000
    tt = np.arange(n, dtype="f8")
    path = work / "big.csv"
    with path.open("w") as fh:
        fh.write("test_time_second,voltage_volt,current_ampere\n")
        np.savetxt(fh, np.c_[tt, 3.7 + 1e-6 * tt, np.full(n, 1e-6)], delimiter=",", fmt="%.6f")
    return path


def run_campaign(kills: int, imports: int, *, seed: int = 1, work: Path | None = None,
                 progress: bool = False) -> KillTally:  # fmt: skip
    rng = np.random.default_rng(seed)
    t = KillTally()
    with tempfile.TemporaryDirectory(dir=work) as d:
        w = Path(d)
        (w / "recipe.yaml").write_text(RECIPE)
        shutil.copy(ROOT / "fixtures" / "recipes" / "cell-lipon.yaml", w / "cell.yaml")
        sim, resource = start_simulator(w / "cell.yaml")
        try:
            out = w / "cell.h5"
            for k in range(kills):
                one_kill(resource, w, out, rng, t)
                if progress:
                    print(f"\rkill {k + 1}/{kills}", end="", flush=True)
            if out.exists():
                ok, t.final_rows = numbering_ok(out)
                t.numbering_breaks = int(not ok)
                with sim.lock:
                    sim.sync()
                    t.gaps = check_gaps(out, sim.model)
        finally:
            sim.stop()
        import_kills(w, imports, rng, t)
    return t


def print_tally(t: KillTally, seconds: float) -> None:
    gaps = np.array(t.gaps_s) if t.gaps_s else np.array([np.nan])
    rows = np.array(t.rows_lost) if t.rows_lost else np.array([np.nan])
    print(f"\nkill campaign ({seconds:.0f} s)")
    print(f"acquire kills: {t.kills}; unreadable after the kill: {t.unreadable}; "
          f"states after the kill: {t.states}")  # fmt: skip
    print(f"recover needed and restored: {t.recovered}; unrecoverable: {t.unrecoverable}")
    print(f"wall time lost (kill - last write): max {np.nanmax(gaps):.2f} s, median "
          f"{np.nanmedian(gaps):.2f} s (flush interval {FLUSH_INTERVAL_S:g} s); rows lost "
          f"max {np.nanmax(rows):.0f}, median {np.nanmedian(rows):.0f}")  # fmt: skip
    print(f"resumed {t.kills - 1} times into one file of {t.final_rows:,} rows: numbering "
          f"{'continues' if not t.numbering_breaks else 'BROKEN'} (test time rising, cycle and"
          f" step counters never falling)")  # fmt: skip
    print(f"import kills: {t.import_kills}: {t.import_outcomes}; temporary .part files left "
          f"behind: {t.leftover_parts} (after the next write of the same output: "
          f"{t.parts_after_next_write})")  # fmt: skip


def print_gaps(gaps: list[GapCheck], kills: int) -> None:
    """Per gap: limit held, time-gap error, unrecorded charge flagged; then the totals."""
    print(f"\nper restart ({len(gaps)} gap events for {kills} kills; a kill before the "
          "restart had read the instrument back merges into the next gap):")  # fmt: skip
    print("  gap start s | length s | limit held | time-gap error s | true Ah | estimate Ah "
          "(method) | flagged")  # fmt: skip
    for g in gaps:
        err = "n/a" if not np.isfinite(g.time_error_s) else f"{g.time_error_s:+.1f}"
        if g.shared_by > 1:
            err += f" (x{g.shared_by} gaps)"
        print(f"  {g.start_s:11.0f} | {g.duration_s:8.0f} | {'yes' if g.limit_held else 'NO':>10}"
              f" | {err:>16} | {g.true_charge_ah:+.3e} | {g.estimate_ah:+.3e} ({g.method}) | "
              f"{'yes' if g.flagged else 'NO'}")  # fmt: skip
    if not gaps:
        return
    errs = np.array([abs(g.time_error_s) for g in gaps if g.shared_by == 1])
    errs = errs[np.isfinite(errs)]
    print(f"limit held by the instrument: {sum(g.limit_held for g in gaps)}/{len(gaps)}; "
          f"unrecorded charge flagged: {sum(g.flagged for g in gaps)}/{len(gaps)}; |time-gap "
          f"error| (one gap between two step starts, n={errs.size}): max "
          f"{errs.max() if errs.size else float('nan'):.1f} s, median "
          f"{np.median(errs) if errs.size else float('nan'):.1f} s (sample interval 2 s)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--imports", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t0 = time.perf_counter()
    t = run_campaign(args.kills, args.imports, seed=args.seed, progress=True)
    print_tally(t, time.perf_counter() - t0)
    print_gaps(t.gaps, t.kills)


if __name__ == "__main__":
    main()
