""".mpr import against galvani in the two memory regimes a Python process can be in.

Run by hand: ``python benchmarks/importers_mpr_regimes.py [--procs N]``. Peer: galvani
0.5.0 (GPL, benchmark only: ``pip install galvani``), whose ``MPRfile`` reads the file and
wraps the records with ``np.frombuffer`` (no conversion). Ours is the whole import
(``biologic_mpr.read``: BDF columns in SI, spectra split off, every check).

Why two regimes: both sides spend most of a call on fresh memory. glibc hands blocks of
128 KiB and more out with ``mmap`` and, once such a block is freed, raises that threshold
to its size (up to 32 MiB) and keeps freed heap memory only while it is below twice that.
A call that allocates and frees a few MiB therefore pays a page fault per 4 KiB touched
(about 2 us each on this machine) in a fresh process, and nothing in a process whose heap
has grown large before. Which regime a run lands in depends on what ran before it in the
same process: this is why in-process ratios of earlier sessions moved 3x from run to run.

- **first call, fresh process** (what ``cyclerflow import FILE`` does): each side is timed
  on its first read in its own new process (modules imported, nothing read yet), median
  over ``--procs`` processes; minor page faults per call printed too.
- **warm, same process**: best of 30 reads after 5 untimed ones, with the heap kept
  (``mallopt`` trim and mmap thresholds raised to 1 GiB, as ``MALLOC_TRIM_THRESHOLD_`` and
  ``MALLOC_MMAP_THRESHOLD_`` would): no page faults, compute only.

Ratios > 1 mean we are faster.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CYCLERFLOW_SHARED_DATA", ROOT.parent / "shared" / "data"))
VENDOR = ROOT / "fixtures" / "vendor"

CHILD = r"""
import ctypes, json, resource, sys, time, warnings
from pathlib import Path
warnings.simplefilter("ignore")
side, path, warm = sys.argv[1], sys.argv[2], sys.argv[3] == "warm"
if warm:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
if side == "ours":
    from cyclerflow.importers import biologic_mpr
    fn = lambda: biologic_mpr.read(Path(path))
else:
    from galvani.BioLogic import MPRfile
    fn = lambda: MPRfile(path)
def once():
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    c1, t1 = time.process_time(), time.perf_counter()
    return t1 - t0, c1 - c0, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
if warm:
    for _ in range(5):
        fn()
    runs = [once() for _ in range(30)]
    best = min(runs)
    print(json.dumps({"wall": best[0], "cpu": min(r[1] for r in runs), "faults": best[2]}))
else:
    wall, cpu, faults = once()
    print(json.dumps({"wall": wall, "cpu": cpu, "faults": faults}))
"""


def run(side: str, path: Path, regime: str) -> dict[str, float]:
    """One child process: the timing of ``side`` ("ours" | "galvani") on ``path``."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, side, str(path), regime],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(path: Path, regime: str, procs: int) -> tuple[dict, dict]:
    """Median (over processes, alternating sides) of each side's figures."""
    res: dict[str, list[dict[str, float]]] = {"ours": [], "galvani": []}
    for _ in range(procs if regime == "first" else 3):
        for side in res:
            res[side].append(run(side, path, regime))
    med = {s: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for s, rs in res.items()}
    return med["ours"], med["galvani"]


def sources() -> list[Path]:
    files = sorted((VENDOR / "biologic").glob("*.mpr"))
    if (DATA / "biologic").is_dir():
        files += sorted((DATA / "biologic").glob("*.mpr"))
    return files


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procs", type=int, default=9, help="fresh processes per side and file")
    args = ap.parse_args()
    try:
        import galvani  # noqa: F401
    except ImportError:
        print("galvani is not installed: pip install galvani==0.5.0 (benchmark only)")
        return 1
    head = f"{'file':<32} {'regime':<14} {'ours ms':>8} {'galvani ms':>10} {'wall':>6} {'cpu':>6} {'faults ours/peer':>17}"
    print(head)
    for path in sources():
        for regime in ("first", "warm"):
            ours, peer = compare(path, regime, args.procs)
            print(
                f"{path.name[:32]:<32} {regime:<14} {ours['wall'] * 1e3:>8.3f} {peer['wall'] * 1e3:>10.3f}"
                f" {peer['wall'] / ours['wall']:>6.2f} {peer['cpu'] / ours['cpu']:>6.2f}"
                f" {int(ours['faults']):>8}/{int(peer['faults']):<8}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
