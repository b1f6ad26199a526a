"""The watchdog's supervisor loop with real child processes (no instrument needed)."""

from __future__ import annotations

import os
import sys
import time

from cyclerflow.acquire.watchdog import OFF_AT_ENV, supervise

# dies by SIGKILL on its first N runs (counted in a file), then exits 0; records the
# watchdog's off-time variable it was started with
CHILD = """
import os, signal, sys
from pathlib import Path
count = Path(sys.argv[1]); n = int(count.read_text()) if count.exists() else 0
count.write_text(str(n + 1))
Path(sys.argv[1] + f".env{n}").write_text(os.environ.get(sys.argv[3], ""))
if n < int(sys.argv[2]):
    os.kill(os.getpid(), signal.SIGKILL)
sys.exit(0)
"""


def _argv(tmp_path, deaths: int) -> list[str]:
    return [sys.executable, "-c", CHILD, str(tmp_path / "count"), str(deaths), OFF_AT_ENV]


def test_restarts_after_a_kill_without_switching_off_within_max_gap(tmp_path):
    offs, lines = [], []
    code = supervise(
        _argv(tmp_path, 2),
        outputs_off=lambda: offs.append(1),
        last_sample_wall=time.time,  # a sample just now: no gap
        max_gap_s=60.0,
        say=lines.append,
    )
    assert code == 0
    assert (tmp_path / "count").read_text() == "3"  # killed twice, restarted each time
    assert offs == []
    assert sum("killed by SIGKILL" in line for line in lines) == 2
    assert (tmp_path / "count.env2").read_text() == ""


def test_switches_off_first_when_the_gap_is_too_long_and_tells_the_next_engine(tmp_path):
    offs = []
    t_sample = time.time() - 120.0
    code = supervise(
        _argv(tmp_path, 1),
        outputs_off=lambda: offs.append(time.time()),
        last_sample_wall=lambda: t_sample,
        max_gap_s=60.0,
    )
    assert code == 0 and len(offs) == 1
    told = float((tmp_path / "count.env1").read_text())
    assert abs(told - offs[0]) < 5.0


def test_gives_up_after_quick_crashes_with_outputs_off(tmp_path):
    offs = []
    code = supervise(
        _argv(tmp_path, 100),
        outputs_off=lambda: offs.append(1),
        last_sample_wall=time.time,
        max_gap_s=60.0,
        max_restarts=2,
    )
    assert code == 1 and offs == [1]
    assert (tmp_path / "count").read_text() == "3"


def test_a_final_exit_code_is_passed_on(tmp_path):
    code = supervise(
        [sys.executable, "-c", "import sys; sys.exit(130)"],
        outputs_off=lambda: None,
        last_sample_wall=time.time,
    )
    assert code == 130
    assert os.environ.get(OFF_AT_ENV) is None
