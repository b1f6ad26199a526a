"""The command line: `cyclerflow simulate neware-bts` and single-channel `acquire --driver neware-bts`."""

from __future__ import annotations

import functools
import os
import subprocess
import time

import numpy as np
import pytest

from cyclerflow.store import read_cycling

from .cycler_helpers import BIN, CELL, RECIPE


@pytest.fixture
def sim_process(sim_processes):
    return functools.partial(sim_processes.start, "neware-bts")


def test_single_channel_acquire_against_the_simulator_process(tmp_path, sim_process):
    resource, _ = sim_process("--channels", "4", "--units", "2", "--speedup", "1000")
    (tmp_path / "r.yaml").write_text(RECIPE.format(cycles=1))
    out = tmp_path / "u2c3.h5"
    cmd = [str(BIN), "acquire", "--driver", "neware-bts", "--resource", resource]
    cmd += ["--option", "unit=2,channel=3", "--protocol", str(tmp_path / "r.yaml")]
    cmd += ["--cell", str(CELL), "-o", str(out), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=os.environ)
    assert done.returncode == 0, done.stderr
    assert '"status": "complete"' in done.stdout
    seq = read_cycling(out)["vendor_record_id"].values
    assert len(seq) > 100 and np.array_equal(seq, np.arange(1, len(seq) + 1))


def test_unknown_channel_is_an_error(tmp_path, sim_process):
    resource, _ = sim_process("--channels", "2")
    (tmp_path / "r.yaml").write_text(RECIPE.format(cycles=1))
    cmd = [str(BIN), "acquire", "--driver", "neware-bts", "--resource", resource]
    cmd += ["--option", "unit=1,channel=9", "--protocol", str(tmp_path / "r.yaml")]
    cmd += ["--cell", str(CELL), "-o", str(tmp_path / "x.h5")]
    t0 = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "no channel unit=1 channel=9" in done.stdout
    assert time.monotonic() - t0 < 30
    assert not (tmp_path / "x.h5").exists()


def test_killed_host_restarts_without_gap_or_duplicate(tmp_path, sim_process):
    """SIGKILL of `cyclerflow acquire` mid-run, then the same command again."""
    resource, _ = sim_process("--channels", "1", "--speedup", "1000")
    (tmp_path / "r.yaml").write_text(RECIPE.format(cycles=2))
    out = tmp_path / "c.h5"
    cmd = [str(BIN), "acquire", "--driver", "neware-bts", "--resource", resource]
    cmd += ["--protocol", str(tmp_path / "r.yaml"), "--cell", str(CELL), "-o", str(out), "-q"]
    p = subprocess.Popen(cmd)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not out.exists():
        time.sleep(0.2)
    time.sleep(3.0)
    p.kill()
    p.wait(10)
    before = len(read_cycling(out)["vendor_record_id"])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    cyc = read_cycling(out)
    seq = cyc["vendor_record_id"].values
    assert 0 < before < len(seq)  # killed part way, resumed to the end
    assert np.array_equal(seq, np.arange(1, len(seq) + 1))
    assert np.all(np.diff(cyc["test_time_second"].values) >= 0)
    assert cyc["vendor_cycle_index"].values.max() == 2
