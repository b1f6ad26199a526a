"""Vendor-file fuzzing: seeded mutations of real vendor files through every importer
(format detected from the content, as ``cyclerflow import`` does), in this process.

Mutations: flipped bytes, a deleted span, a duplicated span, inserted random bytes, a
truncation, a digit replaced by a letter; with ``--kinds ...,number`` also a number of
the file replaced by an extreme one (a 20-digit integer, a 17-digit one, -1, 0, 1e400,
nan, inf: integer overflow, dates out of range, time going back). Outcomes per mutated
file:
- ``imported``: a cell file written (the mutation hit bytes the format tolerates, or
  values that are still plausible: not a misread the importer could have noticed);
- ``exit 2``: an InputError naming the file and what is wrong, no output file;
- ``traceback``: any other exception; ``hang``: longer than the timeout;
- ``partial output``: an output or temporary file left after an error.

Source files: ``../shared/data`` (files up to --max-bytes). Printed figures, not
pass/fail (tests/reliability runs a short one).

    .venv/bin/python benchmarks/campaign_fuzz.py [--n 3000] [--seed 1] [--max-bytes 400000]
        [--kinds flip,delete,duplicate,insert,truncate,digit,number]
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import signal
import tempfile
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cyclerflow.errors import InputError
from cyclerflow.importers import import_files

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CYCLERFLOW_SHARED_DATA", ROOT.parent / "shared" / "data"))
OUTCOMES = ("imported", "exit 2", "traceback", "hang", "partial output")
#: the mutations drawn by default (the seeded campaign of docs/reliability.md)
KINDS = ("flip", "delete", "duplicate", "insert", "truncate", "digit")
#: what the ``number`` mutation puts in place of a number of the file
EXTREME = (b"99999999999999999999", b"12345678901234567", b"-1", b"0", b"1e400", b"nan",
           b"inf", b"-92233720368547758080")  # fmt: skip
_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


class _Hang(Exception):
    """Raised by the alarm when an import runs past the timeout."""


FIXTURES = ROOT / "fixtures" / "vendor"


def sources(max_bytes: int, root: Path = SHARED) -> list[Path]:
    """Vendor files under ``root`` and ``fixtures/vendor`` up to ``max_bytes`` (one file
    per name: the shared copy first)."""
    found: dict[tuple[str, str], Path] = {}
    for base in (root, FIXTURES):
        if not base.is_dir():
            continue
        for p in sorted(base.rglob("*")):
            if _vendor_file(p) and p.stat().st_size <= max_bytes:
                found.setdefault((p.parent.name, p.name), p)
    return list(found.values())


def _vendor_file(p: Path) -> bool:
    skip_names = {"manifest.csv", ".gitattributes"}
    return (
        p.is_file()
        and p.suffix.lower() != ".md"
        and p.parent.name != "LICENSES"
        and (p.name not in skip_names)
    )


def generated_sources(folder: Path) -> list[Path]:
    """Files of the importers no vendor sample covers, written here from a synthetic
    cell: BDF CSV and Parquet (our own export), a plain CSV table, a Neware BTSDA CSV."""
    from cyclerflow.export import export_bdf
    from cyclerflow.schema import parse_metadata
    from cyclerflow.store import create_cell
    from cyclerflow.synthetic import galvanostatic_cycles

    folder.mkdir(parents=True, exist_ok=True)
    cyc = galvanostatic_cycles(n_cycles=3, capacity_ah=15e-6, current_a=7.5e-6, points_per_half=60)
    cell = folder / "synthetic.h5"
    with create_cell(cell, parse_metadata({"cell_id": "FUZZ"}), columns=list(cyc), swmr=False) as w:
        w.append_cycling(cyc)
    out = [export_bdf(cell, folder / "synthetic.bdf.csv", fmt="bdf-csv"),
           export_bdf(cell, folder / "synthetic.bdf.parquet", fmt="bdf-parquet")]  # fmt: skip
    t, v, i = cyc["test_time_second"], cyc["voltage_volt"], cyc["current_ampere"]
    plain = folder / "table.csv"
    plain.write_text("test_time_second,voltage_volt,current_ampere\n"
                     + "".join(f"{a:.3f},{b:.6f},{c:.9g}\n" for a, b, c in zip(t, v, i, strict=True)))  # fmt: skip
    out.append(plain)
    out.append(_neware_csv(folder / "neware_export.csv", t, v, i))
    return out


def _neware_csv(path: Path, t: np.ndarray, v: np.ndarray, i: np.ndarray) -> Path:
    """A Neware BTSDA CSV (A / V / A h header variant): one step per current sign run."""
    head = ("DataPoint,Cycle Index,Step Index,Step Type,Time,Cumulative Time,Current(A),"
            "Voltage(V),Capacity(Ah),Energy(Wh),Date\n")  # fmt: skip
    names = {1: "CC Chg", -1: "CC DChg", 0: "Rest"}

    def hms(x: float) -> str:
        h, rem = divmod(int(x), 3600)
        return f"{h:02d}:{rem // 60:02d}:{rem % 60:02d}"

    rows, step, t0, q, cycle, last = [], 0, 0.0, 0.0, 1, None
    for k, (a, b, c) in enumerate(zip(t, v, i, strict=True)):
        sign = int(np.sign(c))
        if sign != last:
            step, t0, q, last = step + 1, a, 0.0, sign
            cycle += int(sign == 1 and step > 1)
        q += abs(c) * (a - t[k - 1]) / 3600 if k and a > t0 else 0.0
        rows.append(f"{k + 1},{cycle},{step},{names[sign]},{hms(a - t0)},{hms(a)},{c:.8f},"
                    f"{b:.4f},{q:.9f},{q * b:.9f},2024-03-01 10:00:00\n")  # fmt: skip
    path.write_text(head + "".join(rows))
    return path


def _mutate_member(data: bytes, rng: np.random.Generator) -> bytes:
    """A zip (``.ndax``, a zipped ``.nda``) written again with one member's bytes mutated
    by one of the plain kinds: the damage a zip's own CRC does not see at the reader."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zin:
            members = [(i, zin.read(i)) for i in zin.infolist()]
    except (zipfile.BadZipFile, OSError):
        return mutate(data, rng, ("flip",))[0]
    k = int(rng.integers(0, len(members)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for j, (info, body) in enumerate(members):
            zout.writestr(info.filename, mutate(body, rng)[0] if j == k else body)
    return out.getvalue()


def mutate(
    data: bytes, rng: np.random.Generator, kinds: tuple[str, ...] = KINDS
) -> tuple[bytes, str]:
    """One seeded mutation of ``data``; returns (mutated bytes, mutation name)."""
    kind = str(rng.choice(list(kinds)))
    if kind == "member":
        return _mutate_member(data, rng), kind
    b = bytearray(data)
    n = len(b)
    a = int(rng.integers(0, max(1, n)))
    span = int(rng.integers(1, max(2, min(4096, n // 4 + 2))))
    if kind == "flip":
        for off in rng.integers(0, n, int(rng.integers(1, 9))):
            b[off] ^= int(rng.integers(1, 256))
    elif kind == "delete":
        del b[a : a + span]
    elif kind == "duplicate":
        b[a:a] = b[a : a + span]
    elif kind == "insert":
        b[a:a] = rng.bytes(int(rng.integers(1, 64)))
    elif kind == "truncate":
        del b[a:]
    elif kind == "number":
        m = _NUMBER.search(b, a) or _NUMBER.search(b)
        if m:
            b[m.start() : m.end()] = EXTREME[int(rng.integers(0, len(EXTREME)))]
    else:
        digits = [i for i in range(a, min(n, a + 20000)) if 48 <= b[i] <= 57]
        if digits:
            b[digits[int(rng.integers(0, len(digits)))]] = ord("x")
    return bytes(b), kind


@dataclass
class FuzzTally:
    by_format: dict[str, Counter] = field(default_factory=dict)
    mutations: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    trials: int = 0

    def add(self, source: str, outcome: str) -> None:
        self.by_format.setdefault(source, Counter())[outcome] += 1

    def total(self, outcome: str) -> int:
        return sum(c[outcome] for c in self.by_format.values())


def _import_once(src: Path, out: Path, timeout_s: float) -> tuple[str, str]:
    def alarm(*_: object) -> None:
        raise _Hang

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        import_files([src], out, force=True)
        return "imported", ""
    except InputError:
        return "exit 2", ""
    except _Hang:
        return "hang", ""
    except Exception as err:  # noqa: BLE001 - counting what escapes is the point here
        return "traceback", f"{type(err).__name__}: {str(err)[:90]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def trial(src: Path, data: bytes, work: Path, rng: np.random.Generator, t: FuzzTally,
          timeout_s: float, number: int = -1, kinds: tuple[str, ...] = KINDS) -> None:  # fmt: skip
    mutated, kind = mutate(data, rng, kinds)
    t.mutations[kind] += 1
    case = work / src.name  # same name and suffix: detection sees what a user has
    case.write_bytes(mutated)
    out = work / "out.h5"
    outcome, msg = _import_once(case, out, timeout_s)
    left = [p for p in work.iterdir() if p.name.startswith(".out.h5")]
    if outcome != "imported" and (out.exists() or left):
        outcome = "partial output"
    for p in [out, *left]:
        p.unlink(missing_ok=True)
    t.add(f"{src.parent.name}/{src.name}", outcome)
    if msg:
        t.errors[f"{src.parent.name}/{src.name} (mutation {number}): {msg}"] += 1
    t.trials += 1


def _imports_as_is(src: Path, work: Path, timeout_s: float) -> bool:
    """Only files that import unmutated are fuzzed (the rest are not vendor data
    an importer claims: e.g. a file of a format no importer reads)."""
    out = work / "as_is.h5"
    ok = _import_once(src, out, timeout_s)[0] == "imported"
    out.unlink(missing_ok=True)
    return ok


def run_campaign(n: int, *, seed: int = 1, max_bytes: int = 400_000, timeout_s: float = 20.0,
                 root: Path = SHARED, progress: bool = False, start: int = 0,
                 checkpoint: int = 0, kinds: tuple[str, ...] = KINDS,
                 suffixes: tuple[str, ...] = ()) -> FuzzTally:  # fmt: skip
    """Mutated files ``start`` .. ``n - 1`` (each seeded by its number, so a campaign can
    be run in parts), spread evenly over the source files; ``checkpoint``: print the
    tally every that many files."""
    logging.disable(logging.WARNING)
    files = sources(max_bytes, root)
    if not files:
        raise SystemExit(f"no vendor files under {root}")
    t_files = len(files)
    t = FuzzTally()
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        files += generated_sources(work / "generated")
        if suffixes:
            files = [p for p in files if p.suffix.lower() in suffixes]
        files = [p for p in files if _imports_as_is(p, work, timeout_s)]
        blobs = {p: p.read_bytes() for p in files}
        t0 = time.perf_counter()
        for i in range(start, n):
            src = files[i % len(files)]
            rng = np.random.default_rng([seed, i])
            trial(src, blobs[src], work, rng, t, timeout_s, i, kinds)
            if progress and i % 50 == 0 and t_files:
                print(f"\rfuzz {i}/{n}", end="", flush=True)
            if checkpoint and (i + 1 - start) % checkpoint == 0:
                print_tally(t, time.perf_counter() - t0)
    return t


def print_tally(t: FuzzTally, seconds: float) -> None:
    cpu = time.process_time()  # this process's CPU time (the machine is shared)
    print(f"\nvendor-file fuzzing: {t.trials:,} mutated files in {seconds:.0f} s wall, "
          f"{cpu:.0f} s CPU since start "
          f"({', '.join(f'{k} {v}' for k, v in sorted(t.mutations.items()))})")  # fmt: skip
    print(f"{'source file':48s}" + "".join(f"{o:>15s}" for o in OUTCOMES))
    for key in sorted(t.by_format):
        print(f"{key[:48]:48s}" + "".join(f"{t.by_format[key][o]:15,d}" for o in OUTCOMES))
    print(f"{'total':48s}" + "".join(f"{t.total(o):15,d}" for o in OUTCOMES))
    for msg, k in t.errors.most_common(12):
        print(f"  traceback x{k}: {msg}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-bytes", type=int, default=400_000)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--start", type=int, default=0, help="first mutation number (run in parts)")
    ap.add_argument("--checkpoint", type=int, default=0, help="print the tally every N files")
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help=f"mutations drawn from (default {','.join(KINDS)}; also: number, member)")  # fmt: skip
    ap.add_argument("--suffixes", default="",
                    help="only source files with these suffixes (e.g. .ndax,.zip)")  # fmt: skip
    args = ap.parse_args()
    unknown = set(args.kinds.split(",")) - {*KINDS, "number", "member"}
    if unknown:
        ap.error(f"unknown mutation kind(s) {sorted(unknown)}")
    t0 = time.perf_counter()
    t = run_campaign(args.n, seed=args.seed, max_bytes=args.max_bytes, timeout_s=args.timeout,
                     progress=True, start=args.start, checkpoint=args.checkpoint,
                     kinds=tuple(args.kinds.split(",")),
                     suffixes=tuple(x.lower() for x in args.suffixes.split(",") if x))  # fmt: skip
    print_tally(t, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
