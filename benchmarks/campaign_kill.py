"""Kill campaign: SIGKILL at random moments of ``cyclerflow acquire`` (a Keithley 2450
simulator at 1000x) and of ``cyclerflow import``; after each kill the file must open,
``verify`` must pass (or ``recover`` restore it), at most one flush interval (1 s) may be
lost, and the next ``acquire`` must resume the same file with its numbering continuing.

Lost data is measured as the wall time between the file's last write (its mtime) and the
kill, and as rows (that time x the run's rows per wall second). Printed figures, not
pass/fail (tests/reliability runs a short one).

    .venv/bin/python benchmarks/campaign_kill.py [--kills 100] [--imports 30] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import re
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

RECIPE = """name: kill-campaign
limits: {voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA}
sample_interval: 1 s
steps:
  - rest: {duration: 1 min, record: {every: 1 s}}
  - loop:
      repeat: 1000
      steps:
        - cc_charge: {current: C/2, until: {voltage: 4.2 V}, record: {every: 1 s}}
        - rest: {duration: 2 min}
        - cc_discharge: {current: C/2, until: {voltage: 3.0 V}, record: {every: 1 s}}
        - rest: {duration: 2 min}
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


def start_simulator(work: Path, cell: Path) -> tuple[subprocess.Popen, str]:
    out = (work / "sim.out").open("w")
    argv = [*CLI, "simulate", "keithley2450", "--port", "0", "--speedup", "1000",
            "--cell", str(cell)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(r"resource=(\S+)", (work / "sim.out").read_text())
        if m:
            return proc, m.group(1)
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the simulator did not start")


def _acquire_argv(resource: str, work: Path, out: Path) -> list[str]:
    return [*CLI, "acquire", "--driver", "keithley2450", "--resource", resource,
            "--protocol", str(work / "recipe.yaml"), "--cell", str(work / "cell.yaml"),
            "-o", str(out), "--speedup", "1000"]  # fmt: skip


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
        sim, resource = start_simulator(w, w / "cell.yaml")
        try:
            out = w / "cell.h5"
            for k in range(kills):
                one_kill(resource, w, out, rng, t)
                if progress:
                    print(f"\rkill {k + 1}/{kills}", end="", flush=True)
            if out.exists():
                ok, t.final_rows = numbering_ok(out)
                t.numbering_breaks = int(not ok)
        finally:
            sim.kill()
            sim.wait()
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--imports", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t0 = time.perf_counter()
    t = run_campaign(args.kills, args.imports, seed=args.seed, progress=True)
    print_tally(t, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
