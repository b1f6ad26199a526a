"""Subprocess writer used by the reliability tests.

Appends rows at full speed in chunks; after each flush prints the number of rows
on disk, so the parent knows what was flushed before it kills us. Row k has
test_time_second = k, voltage_volt = 3 + k*1e-6, current_ampere = -k, so a reader
can check every row is whole.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from cyclerflow.store import create_cell


def main(path: str, chunk: int, seconds: float, flush_interval: float) -> None:
    w = create_cell(path, None, flush_interval=flush_interval)
    k = 0
    reported = 0
    t_end = time.monotonic() + seconds
    print("ready", flush=True)
    while time.monotonic() < t_end:
        t = np.arange(k, k + chunk, dtype="f8")
        w.append_cycling(
            {"test_time_second": t, "voltage_volt": 3 + t * 1e-6, "current_ampere": -t}
        )
        k += chunk
        w.maybe_flush()
        if w.rows_flushed != reported:
            reported = w.rows_flushed
            print(reported, flush=True)
        if len(sys.argv) > 5:
            time.sleep(float(sys.argv[5]))
    w.close()
    print("closed", w.rows_flushed, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
