"""Writer process for the watch tests: a live SWMR cell file with known rows.

Rows t = 0..999 s (1 per second): charge at +10 µA until t = 599, then discharge at
-5 µA; voltage 3.5 V + t x 0.1 mV; cycle 1; step 1 (charge) / 2 (discharge); one
safety_stop event. Prints "flushed" once everything is on disk, then waits for a line
on stdin before closing the file.
"""

from __future__ import annotations

import sys

import numpy as np

from cyclerflow.schema import parse_metadata
from cyclerflow.store import create_cell


def main(path: str) -> None:
    meta = parse_metadata({"cell_id": "LIVE-1", "active_area_cm2": 0.25})
    w = create_cell(path, meta)
    t = np.arange(1000, dtype="f8")
    i = np.where(t < 600, 10e-6, -5e-6)
    w.append_cycling(
        {
            "test_time_second": t,
            "unix_time_second": 1.7e9 + t,
            "voltage_volt": 3.5 + t * 1e-4,
            "current_ampere": i,
            "cycle_count": np.ones(1000, dtype="i8"),
            "step_count": np.where(t < 600, 1, 2),
        }
    )
    w.add_event("safety_stop", "voltage 4.31 V > 4.30 V", step=2)
    w.flush()
    print("flushed", flush=True)
    sys.stdin.readline()
    w.close()
    print("closed", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
