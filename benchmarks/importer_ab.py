"""Time one importer's ``read`` on one file: best wall and CPU ms of N reads (run by hand).

For A/B comparisons of two versions of the code under the same machine load: run it
alternately with ``PYTHONPATH`` pointing at each tree's ``src`` (e.g. a ``git archive``
of main unpacked in /tmp), each in its own process::

    PYTHONPATH=/tmp/main/src python benchmarks/importer_ab.py biologic_mpt big.mpt 5
    PYTHONPATH=src           python benchmarks/importer_ab.py biologic_mpt big.mpt 5

Prints ``<wall ms> <cpu ms>`` (CPU: ``time.process_time``, all threads).
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
import warnings


def main() -> None:
    """Parse ``MODULE FILE N`` from the command line and print the two figures."""
    warnings.simplefilter("ignore")
    logging.getLogger("fastnda").setLevel(logging.ERROR)
    module, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    read = importlib.import_module(f"cyclerflow.importers.{module}").read
    read(path)  # warm up: imports, caches
    wall = cpu = float("inf")
    for _ in range(n):
        w0, c0 = time.perf_counter(), time.process_time()
        read(path)
        c1, w1 = time.process_time(), time.perf_counter()
        wall, cpu = min(wall, w1 - w0), min(cpu, c1 - c0)
    print(f"{wall * 1e3:.3f} {cpu * 1e3:.3f}")


if __name__ == "__main__":
    main()
