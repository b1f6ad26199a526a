"""`cyclerflow simulate arbin-cti` as a process, `acquire --driver arbin-cti` against it, and
the driver's choice of which polled readings become records."""

from __future__ import annotations

import functools
import os
import subprocess

import numpy as np
import pytest

from cyclerflow.drivers.arbin_cti import ArbinChannel, Reading
from cyclerflow.store import read_cycling

from .cycler_helpers import BIN, CELL, RECIPE


@pytest.fixture
def sim_process(sim_processes):
    return functools.partial(sim_processes.start, "arbin-cti")


def test_acquire_against_the_simulator_process(tmp_path, sim_process):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.format(cycles=1))
    resource, line = sim_process(
        "--channels", "4", "--speedup", "1000", "--schedule", f"cc.sdx={recipe}"
    )
    assert "channels=4 schedules=cc.sdx" in line
    out = tmp_path / "c3.h5"
    cmd = [str(BIN), "acquire", "--driver", "arbin-cti", "--resource", resource]
    cmd += ["--option", "channel=3", "--option", "schedule=cc.sdx", "--protocol", str(recipe)]
    cmd += ["--cell", str(CELL), "-o", str(out), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=os.environ)
    assert done.returncode == 0, done.stderr
    assert '"status": "complete"' in done.stdout
    cyc = read_cycling(out)
    seq = cyc["vendor_record_id"].values
    assert len(seq) >= 5 and np.array_equal(seq, np.arange(1, len(seq) + 1))
    assert cyc["vendor_cycle_index"].values.max() == 1


def test_unknown_schedule_is_refused_by_the_server(tmp_path, sim_process):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.format(cycles=1))
    resource, _ = sim_process("--channels", "1")
    cmd = [str(BIN), "acquire", "--driver", "arbin-cti", "--resource", resource]
    cmd += ["--option", "schedule=missing.sdx", "--protocol", str(recipe)]
    cmd += ["--cell", str(CELL), "-o", str(tmp_path / "x.h5")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "assign schedule failed (schedule name not found)" in done.stdout + done.stderr


def test_missing_schedule_option_is_refused_before_a_file_exists(tmp_path, sim_process):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.format(cycles=1))
    resource, _ = sim_process("--channels", "1")
    cmd = [str(BIN), "acquire", "--driver", "arbin-cti", "--resource", resource]
    cmd += ["--protocol", str(recipe), "--cell", str(CELL), "-o", str(tmp_path / "x.h5")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "option 'schedule'" in done.stdout + done.stderr
    assert not (tmp_path / "x.h5").exists()


def _r(step, cycle, t, status=2):
    return Reading(0, status, "S", "T", f"Step {step} Cycle {cycle}", "", 0.0, t, 4.0, 1e-5,
                   1e-6 * t, 0.0, 0.0, 0.0)  # fmt: skip


def test_readings_become_records_once_per_interval_and_at_step_ends():
    ch = ArbinChannel("TCPIP0::h::1::SOCKET", schedule="S")
    ch._record_s = 10.0
    ch.resume_at(0, None, 0.0)
    assert [x.step_time_s for x in ch._select(_r(1, 1, 0.0), "working")] == [0.0]
    ch._last_key = (1, 1, 0.0)
    assert ch._select(_r(1, 1, 4.0), "working") == []  # held back: < 10 s since the last
    assert ch._select(_r(1, 1, 7.0), "working") == []
    # the step changes: the newest held reading (step 1 at 7 s) is stored before the new one
    got = ch._select(_r(2, 1, 1.0, status=4), "working")
    assert [(x.step_and_cycle, x.step_time_s) for x in got] == [
        ("Step 1 Cycle 1", 7.0), ("Step 2 Cycle 1", 1.0),
    ]  # fmt: skip
    ch._last_key = (2, 1, 1.0)
    assert [x.step_time_s for x in ch._select(_r(2, 1, 11.0), "working")] == [11.0]
    ch._last_key = (2, 1, 11.0)
    assert [x.step_time_s for x in ch._select(_r(2, 1, 12.0), "finish")] == [12.0]
    # a restarted host: the file's last record is not stored again
    ch.resume_at(40, (2, 1), 12.0)
    assert ch._select(_r(2, 1, 12.0), "finish") == []
