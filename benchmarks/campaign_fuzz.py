"""Vendor-file fuzzing: seeded mutations of real vendor files through every importer
(format detected from the content, as ``cyclerflow import`` does), in this process.

Mutations: flipped bytes, a deleted span, a duplicated span, inserted random bytes, a
truncation, a digit replaced by a letter. Outcomes per mutated file:
- ``imported``: a cell file written (the mutation hit bytes the format tolerates, or
  values that are still plausible: not a misread the importer could have noticed);
- ``exit 2``: an InputError naming the file and what is wrong, no output file;
- ``traceback``: any other exception; ``hang``: longer than the timeout;
- ``partial output``: an output or temporary file left after an error.

Source files: ``../shared/data`` (files up to --max-bytes). Printed figures, not
pass/fail (tests/reliability runs a short one).

    .venv/bin/python benchmarks/campaign_fuzz.py [--n 3000] [--seed 1] [--max-bytes 400000]
"""

from __future__ import annotations

import argparse
import logging
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cyclerflow.errors import InputError
from cyclerflow.importers import import_files

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUTCOMES = ("imported", "exit 2", "traceback", "hang", "partial output")


class _Hang(Exception):
    """Raised by the alarm when an import runs past the timeout."""


def sources(max_bytes: int, root: Path = SHARED) -> list[Path]:
    """Vendor files under ``root`` up to ``max_bytes`` that import as they are."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() != ".md")
    return [p for p in files if p.stat().st_size <= max_bytes]


def mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One seeded mutation of ``data``; returns (mutated bytes, mutation name)."""
    b = bytearray(data)
    n = len(b)
    kind = str(rng.choice(["flip", "delete", "duplicate", "insert", "truncate", "digit"]))
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
          timeout_s: float) -> None:  # fmt: skip
    mutated, kind = mutate(data, rng)
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
        t.errors[f"{src.parent.name}/{src.name}: {msg}"] += 1
    t.trials += 1


def _imports_as_is(src: Path, work: Path, timeout_s: float) -> bool:
    """Only files that import unmutated are fuzzed (the rest are not vendor data
    an importer claims: e.g. a file of a format no importer reads)."""
    out = work / "as_is.h5"
    ok = _import_once(src, out, timeout_s)[0] == "imported"
    out.unlink(missing_ok=True)
    return ok


def run_campaign(n: int, *, seed: int = 1, max_bytes: int = 400_000, timeout_s: float = 20.0,
                 root: Path = SHARED, progress: bool = False) -> FuzzTally:  # fmt: skip
    """``n`` mutated files, spread evenly over the source files."""
    logging.disable(logging.WARNING)
    files = sources(max_bytes, root)
    if not files:
        raise SystemExit(f"no vendor files under {root}")
    t_files = len(files)
    t = FuzzTally()
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        files = [p for p in files if _imports_as_is(p, work, timeout_s)]
        blobs = {p: p.read_bytes() for p in files}
        for i in range(n):
            src = files[i % len(files)]
            trial(src, blobs[src], work, np.random.default_rng([seed, i]), t, timeout_s)
            if progress and i % 50 == 0 and t_files:
                print(f"\rfuzz {i}/{n}", end="", flush=True)
    return t


def print_tally(t: FuzzTally, seconds: float) -> None:
    print(f"\nvendor-file fuzzing: {t.trials:,} mutated files in {seconds:.0f} s "
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
    args = ap.parse_args()
    t0 = time.perf_counter()
    t = run_campaign(args.n, seed=args.seed, max_bytes=args.max_bytes, timeout_s=args.timeout,
                     progress=True)  # fmt: skip
    print_tally(t, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
