"""Damage campaign: random byte flips, zeroed blocks and truncations of cell files and
results files, run through analyze, inspect, verify, the report's reading path and a lab
run, in this process (the CLI maps InputError to exit 2; a test checks that mapping).

Outcome of each operation on a damaged copy:
- ``correct``: the same output as on the intact file (the damage hit unused bytes);
- ``exit 2``: an InputError naming the file and what is damaged (the report: a cell
  shown with "analysis failed: <reason>");
- ``silent wrong``: a different output without a word;
- ``traceback``: any other exception.
Lab runs: the damaged file beside intact cells; ``others affected`` counts intact cells
whose row changed. Printed figures, not pass/fail (tests/reliability runs a short one).

    .venv/bin/python benchmarks/campaign_damage.py [--n 2000] [--seed 1] [--lab-every 100]
    # in parts: --start 0 --n 2500 --save part0.json, ..., then --merge part*.json
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from cyclerflow.analysis import analyze_cell, load_results, results_path
from cyclerflow.errors import InputError
from cyclerflow.lab import run_lab
from cyclerflow.report.data import load_analysis, load_cell
from cyclerflow.schema import parse_metadata
from cyclerflow.store import create_cell, read_spectra, summary
from cyclerflow.store.verify import verify_file
from cyclerflow.synthetic import galvanostatic_cycles, rc_spectrum

OUTCOMES = ("correct", "exit 2", "silent wrong", "traceback")
CELL_OPS = ("analyze", "inspect", "verify", "report")
RESULTS_OPS = ("load_results", "report")


def make_cell(path: Path, cell_id: str, *, spectrum: bool = False) -> Path:
    """A closed, checksummed cell file: 8 cycles (256-row chunks), events, a spectrum."""
    cyc = galvanostatic_cycles(n_cycles=8, capacity_ah=15e-6, current_a=7.5e-6, points_per_half=100)
    meta = {"cell_id": cell_id, "wafer": "W01", "die": "D01", "active_area_cm2": 0.25,
            "nominal_capacity_uah": 15.0}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    with create_cell(path, parse_metadata(meta), columns=list(cyc), swmr=False,
                     chunk_rows=256) as w:  # fmt: skip
        w.append_cycling(cyc)
        if spectrum:
            f = np.logspace(5, -1, 25)
            z = rc_spectrum(f)
            w.append_spectrum(f, z.real, z.imag, temperature_kelvin=298.15)
        for i in range(20):
            w.add_event("note", f"event {i}", step=i, flush=False)
    return path


def mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One random damage: a few flipped bytes, a zeroed block, or a truncation."""
    kind = str(rng.choice(["flip", "zero", "truncate"], p=[0.45, 0.35, 0.2]))
    b = bytearray(data)
    if kind == "flip":
        for off in rng.integers(0, len(b), int(rng.integers(1, 9))):
            b[off] ^= int(rng.integers(1, 256))
    elif kind == "zero":
        n = int(2 ** rng.integers(4, 13))
        off = int(rng.integers(0, max(1, len(b) - n)))
        b[off : off + n] = bytes(len(b[off : off + n]))
    else:
        del b[int(rng.integers(0, len(b))) :]
    return bytes(b), kind


def _canon(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _run(fn: Callable[[], Any], expected: Any, errors: Counter, op: str) -> str:
    try:
        got = fn()
    except InputError:
        return "exit 2"
    except Exception as err:  # noqa: BLE001 - counting what escapes is the point here
        errors[f"{op}: {type(err).__name__}: {str(err)[:100]}"] += 1
        return "traceback"
    return "correct" if got == expected else "silent wrong"


def _report_view(path: Path) -> Any:
    """What the report reads: analysis summary (or its failure), spectra, events."""
    data = load_cell(path, timeline=False)
    if data.summary is None:
        failed = [w for w in data.warnings if w.startswith("analysis failed")]
        if failed:
            raise InputError(failed[0])
    results_path(path).unlink(missing_ok=True)
    return _canon([data.summary, len(data.spectra), len(data.events)])


def _spectra_view(path: Path) -> str:
    return _canon([ds.to_dict() for ds in read_spectra(path)])


def _results_view(path: Path) -> Any:
    summary_, datasets = load_results(path)
    return _canon(summary_), {k: v.to_dict() for k, v in datasets.items()}.__repr__()


@dataclass
class Tally:
    """Counts by target and operation; tracebacks and lab figures."""

    by_op: dict[str, Counter] = field(default_factory=dict)
    errors: Counter = field(default_factory=Counter)
    damages: Counter = field(default_factory=Counter)
    lab_runs: int = 0
    others_affected: int = 0
    lab_damaged_listed: int = 0
    trials: int = 0
    hangs: int = 0

    def merge(self, other: Tally) -> None:
        for k, c in other.by_op.items():
            self.by_op.setdefault(k, Counter()).update(c)
        self.errors.update(other.errors)
        self.damages.update(other.damages)
        for name in ("lab_runs", "others_affected", "lab_damaged_listed", "trials", "hangs"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def add(self, key: str, outcome: str) -> None:
        self.by_op.setdefault(key, Counter())[outcome] += 1

    def total(self, outcome: str) -> int:
        return sum(c[outcome] for c in self.by_op.values())


@dataclass(frozen=True)
class _Base:
    cell_bytes: dict[str, bytes]
    analyze: dict[str, str]
    inspect: dict[str, str]
    report: dict[str, str]
    results_bytes: bytes
    results: Any
    lab_rows: dict[str, Any]


def _baseline(work: Path) -> _Base:
    cells = {"plain": make_cell(work / "plain" / "C.h5", "C"),
             "eis": make_cell(work / "eis" / "C.h5", "C", spectrum=True)}  # fmt: skip
    # the cell with a spectrum goes through inspect, verify and the spectra reader (an
    # EIS fit per damaged copy would cost ~1 s)
    analyze = {"plain": _canon(analyze_cell(cells["plain"], write_results=False)),
               "eis": _spectra_view(cells["eis"])}  # fmt: skip
    inspect = {k: _canon(summary(p)) for k, p in cells.items()}
    report = {"plain": _report_view(cells["plain"])}
    analyze_cell(cells["plain"])
    rp = results_path(cells["plain"])
    results = _results_view(rp)
    lab = work / "lab"
    for i in range(2):
        make_cell(lab / f"good{i}.h5", f"G{i}")
    run = run_lab(lab, out=work / "lab_out", report=False)
    rows = {r["path"]: _lab_row(r) for r in run.rows}
    return _Base({k: p.read_bytes() for k, p in cells.items()}, analyze, inspect, report,
                 rp.read_bytes(), results, rows)  # fmt: skip


def _lab_row(r: dict) -> str:
    skip = {"analysed_unix_time_second", "status"}
    return _canon({k: v for k, v in r.items() if k not in skip})


def _cell_trial(work: Path, base: _Base, which: str, data: bytes, t: Tally) -> None:
    p = work / which / "C.h5"
    p.write_bytes(data)
    results_path(p).unlink(missing_ok=True)
    if which == "plain":
        outcomes = {
            "analyze": _run(lambda: _canon(analyze_cell(p, write_results=False)),
                            base.analyze[which], t.errors, "analyze"),
            "report": _run(lambda: _report_view(p), base.report[which], t.errors, "report"),
        }  # fmt: skip
    else:
        outcomes = {"spectra": _run(lambda: _spectra_view(p), base.analyze[which], t.errors,
                                    "spectra")}  # fmt: skip
    outcomes["inspect"] = _run(lambda: _canon(summary(p)), base.inspect[which], t.errors,
                               "inspect")  # fmt: skip
    try:
        state = verify_file(p).state
    except InputError:
        state = "damaged"
    except Exception as err:  # noqa: BLE001
        t.errors[f"verify: {type(err).__name__}: {str(err)[:100]}"] += 1
        state = "traceback"
    if state == "traceback":
        outcomes["verify"] = "traceback"
    elif state == "damaged":
        outcomes["verify"] = "exit 2"
    else:  # verify saw nothing: right only if every reader got the intact answer
        readers_same = all(o == "correct" for o in outcomes.values())
        outcomes["verify"] = "correct" if readers_same else "silent wrong"
    for op, o in outcomes.items():
        t.add(f"cell file ({which}) / {op}", o)
    results_path(p).unlink(missing_ok=True)


def _results_trial(work: Path, base: _Base, data: bytes, t: Tally) -> None:
    p = work / "plain" / "C.h5"
    p.write_bytes(base.cell_bytes["plain"])
    rp = results_path(p)
    rp.write_bytes(data)
    t.add("results file / load_results",
          _run(lambda: _results_view(rp), base.results, t.errors, "load_results"))  # fmt: skip
    rp.write_bytes(data)
    t.add("results file / report",
          _run(lambda: _canon(load_analysis(p)[0]), base.analyze["plain"], t.errors, "report"))  # fmt: skip
    rp.unlink(missing_ok=True)


def _lab_trial(work: Path, base: _Base, data: bytes, t: Tally) -> None:
    lab = work / "lab"
    bad = lab / "damaged.h5"
    bad.write_bytes(data)
    out = work / "lab_out"
    shutil.rmtree(out, ignore_errors=True)
    try:
        run = run_lab(lab, out=out, report=False)
    except Exception as err:  # noqa: BLE001
        t.errors[f"lab: {type(err).__name__}: {str(err)[:100]}"] += 1
        t.add("lab run", "traceback")
        return
    finally:
        bad.unlink()
        for r in lab.glob("damaged.results.nc*"):
            r.unlink()
    t.lab_runs += 1
    rows = {r["path"]: r for r in run.rows}
    t.others_affected += sum(1 for k, v in base.lab_rows.items() if _lab_row(rows.get(k, {})) != v)
    mine = rows.get(str(bad))
    t.lab_damaged_listed += int(mine is not None and mine["status"] in ("failed", "ok"))
    t.add("lab run", "correct" if mine is not None else "silent wrong")


def _trial(work: Path, base: _Base, i: int, seed: int, lab_every: int) -> Tally:
    """Damaged copy number ``i`` (its own seeded generator: the same damage every run)."""
    rng = np.random.default_rng([seed, i])
    t = Tally()
    target = ("plain", "eis", "results")[i % 3]
    src = base.results_bytes if target == "results" else base.cell_bytes[target]
    data, kind = mutate(src, rng)
    t.damages[kind] += 1
    if target == "results":
        _results_trial(work, base, data, t)
    else:
        _cell_trial(work, base, target, data, t)
    if lab_every and i % lab_every == 0:
        _lab_trial(work, base, mutate(base.cell_bytes["plain"], rng)[0], t)
    wrong = sorted(k for k, c in t.by_op.items() if c["silent wrong"])
    if wrong:  # named, so that it can be replayed: same seed, same trial number
        t.errors[f"silent wrong: trial {i} ({kind}): {', '.join(wrong)}"] += 1
    t.trials += 1
    return t


def _serve(conn: Connection, work: str, seed: int, lab_every: int) -> None:
    """Worker process: build the intact files once, then run the trials it is sent."""
    logging.disable(logging.WARNING)  # the lab logs each failed cell
    base = _baseline(Path(work))
    conn.send("ready")
    while (i := conn.recv()) is not None:
        conn.send(_trial(Path(work), base, i, seed, lab_every))


@dataclass
class _Worker:
    proc: mp.Process
    conn: Connection

    @classmethod
    def start(cls, work: Path, seed: int, lab_every: int) -> _Worker:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        sub = work / f"w{time.monotonic_ns()}"
        sub.mkdir()
        proc = ctx.Process(target=_serve, args=(child, str(sub), seed, lab_every), daemon=True)
        proc.start()
        assert parent.recv() == "ready"
        return cls(proc, parent)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.join()


def run_campaign(n: int, *, seed: int = 1, lab_every: int = 100, timeout_s: float = 60.0,
                 progress: bool = False, checkpoint: int = 0, start: int = 0) -> Tally:  # fmt: skip
    """``n`` damaged copies numbered from ``start`` (1/3 each: cell file, cell file with
    a spectrum, results file), each in a worker process killed after ``timeout_s``
    (counted as a hang); ``checkpoint``: print the tally every that many copies. Copy
    ``i`` is the same damage in every run, so runs of consecutive ranges add up."""
    t = Tally()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        worker = _Worker.start(work, seed, lab_every)
        try:
            for i in _maybe_track(range(start, start + n), progress and not checkpoint):
                if checkpoint and i > start and (i - start) % checkpoint == 0:
                    print_tally(t, time.perf_counter() - t0, flush=True)
                worker.conn.send(i)
                if worker.conn.poll(timeout_s):
                    t.merge(worker.conn.recv())
                    continue
                t.hangs += 1
                t.trials += 1
                t.errors[f"hang: trial {i} ({('plain', 'eis', 'results')[i % 3]})"] += 1
                worker.stop()
                worker = _Worker.start(work, seed, lab_every)
            worker.conn.send(None)
        finally:
            worker.stop()
    return t


def _chunks_of(path: Path) -> list[tuple[str, int, int]]:
    """(dataset, byte offset, stored size) of every stored chunk of every chunked dataset."""
    import h5py

    out: list[tuple[str, int, int]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.chunks is not None:
            for k in range(obj.id.get_num_chunks()):
                info = obj.id.get_chunk_info(k)
                out.append((name, info.byte_offset, info.size))

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def run_chunk_sweep() -> Tally:
    """Every stored chunk of every chunked dataset of the three target files (cell file,
    cell file with a spectrum, results file) zeroed with its Fletcher-32 checksum, one
    at a time: the damage Fletcher-32 cannot see. In this process (no hang expected)."""
    logging.disable(logging.WARNING)
    t = Tally()
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        base = _baseline(work)
        sources = {"plain": base.cell_bytes["plain"], "eis": base.cell_bytes["eis"],
                   "results": base.results_bytes}  # fmt: skip
        for target, data in sources.items():
            src = work / f"sweep-{target}.h5"
            src.write_bytes(data)
            for name, off, size in _chunks_of(src):
                b = bytearray(data)
                b[off : off + size] = bytes(size)
                one = Tally()
                if target == "results":
                    _results_trial(work, base, bytes(b), one)
                else:
                    _cell_trial(work, base, target, bytes(b), one)
                if any(c["silent wrong"] for c in one.by_op.values()):
                    one.errors[f"silent wrong: {target} {name} chunk at byte {off}"] += 1
                one.damages[f"zeroed chunk ({target})"] += 1
                one.trials += 1
                t.merge(one)
    return t


def _maybe_track(items: range, progress: bool):
    if not progress:
        return items
    from rich.progress import track

    return track(items, description="damage campaign")


def print_tally(t: Tally, seconds: float, flush: bool = False) -> None:
    print(f"damage campaign: {t.trials:,} damaged copies in {seconds:.0f} s "
          f"({', '.join(f'{k} {v}' for k, v in sorted(t.damages.items()))})")  # fmt: skip
    print(f"{'target / operation':38s}" + "".join(f"{o:>14s}" for o in OUTCOMES))
    for key in sorted(t.by_op):
        print(f"{key:38s}" + "".join(f"{t.by_op[key][o]:14,d}" for o in OUTCOMES))
    print(f"{'total':38s}" + "".join(f"{t.total(o):14,d}" for o in OUTCOMES))
    print(f"lab runs with one damaged cell: {t.lab_runs}; intact cells affected: "
          f"{t.others_affected}; damaged cell listed (failed with reason or ok): "
          f"{t.lab_damaged_listed}")  # fmt: skip
    print(f"hangs (a trial killed after the timeout): {t.hangs}")
    for msg, k in t.errors.most_common(30):
        print(f"  x{k}: {msg}")
    print(flush=flush)


def save_tally(t: Tally, seconds: float, path: Path) -> None:
    """The tally as JSON (for :func:`load_tally`: runs of parts add up)."""
    doc = {"seconds": seconds, "by_op": {k: dict(c) for k, c in t.by_op.items()},
           "errors": dict(t.errors), "damages": dict(t.damages)}  # fmt: skip
    for name in ("lab_runs", "others_affected", "lab_damaged_listed", "trials", "hangs"):
        doc[name] = getattr(t, name)
    path.write_text(json.dumps(doc, indent=1))


def load_tally(path: Path) -> tuple[Tally, float]:
    doc = json.loads(path.read_text())
    t = Tally(
        by_op={k: Counter(c) for k, c in doc["by_op"].items()},
        errors=Counter(doc["errors"]),
        damages=Counter(doc["damages"]),
    )
    for name in ("lab_runs", "others_affected", "lab_damaged_listed", "trials", "hangs"):
        setattr(t, name, doc[name])
    return t, float(doc["seconds"])


def merge_saved(paths: list[Path]) -> None:
    """Print the sum of saved tallies (a campaign run in parts)."""
    total, seconds = Tally(), 0.0
    for p in paths:
        t, s = load_tally(p)
        total.merge(t)
        seconds += s
    print_tally(total, seconds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lab-every", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds before a trial is a hang")
    ap.add_argument("--checkpoint", type=int, default=0, help="print the tally every N copies")
    ap.add_argument("--start", type=int, default=0, help="number of the first damaged copy")
    ap.add_argument("--save", type=Path, help="also write the tally as JSON here")
    ap.add_argument("--merge", type=Path, nargs="+", help="print the sum of saved tallies")
    ap.add_argument(
        "--zero-chunks",
        action="store_true",
        help="instead: zero every stored chunk (with its checksum) of the target files, one at a time",
    )
    args = ap.parse_args()
    if args.zero_chunks:
        t0 = time.perf_counter()
        print_tally(run_chunk_sweep(), time.perf_counter() - t0)
        return
    if args.merge:
        merge_saved(args.merge)
        return
    t0 = time.perf_counter()
    t = run_campaign(
        args.n,
        seed=args.seed,
        lab_every=args.lab_every,
        timeout_s=args.timeout,
        progress=True,
        checkpoint=args.checkpoint,
        start=args.start,
    )
    print_tally(t, time.perf_counter() - t0)
    if args.save:
        save_tally(t, time.perf_counter() - t0, args.save)


if __name__ == "__main__":
    main()
