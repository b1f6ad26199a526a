"""A killed writer leaves a readable file; a live reader never sees a torn row."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cyclerflow.cli import main as cli_main
from cyclerflow.store import needs_recovery, read_cycling, recover, summary
from cyclerflow.store.verify import verify_file

WRITER = Path(__file__).with_name("writer_proc.py")


def _start_writer(path, *, chunk=1000, seconds=30.0, flush=0.2, sleep=None):
    args = [sys.executable, str(WRITER), str(path), str(chunk), str(seconds), str(flush)]
    if sleep is not None:
        args.append(str(sleep))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _check_rows_whole(ds):
    t = ds["test_time_second"].values
    np.testing.assert_array_equal(t, np.arange(len(t), dtype="f8"))
    np.testing.assert_allclose(ds["voltage_volt"].values, 3 + t * 1e-6, rtol=0, atol=0)
    np.testing.assert_array_equal(ds["current_ampere"].values, -t)


@pytest.mark.slow
def test_sigkill_keeps_everything_flushed(tmp_path):
    path = tmp_path / "killed.h5"
    proc = _start_writer(path, chunk=1000, flush=0.2)
    flushed = []
    deadline = time.monotonic() + 20
    while len(flushed) < 5 and time.monotonic() < deadline:
        flushed.append(int(proc.stdout.readline()))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert flushed and flushed[-1] > 0
    assert needs_recovery(path)
    # a killed writer's file is readable as it is (SWMR read) ...
    assert summary(path)["state"].startswith("unclosed")
    live_rows = read_cycling(path).sizes["sample"]
    assert live_rows >= flushed[-1]
    # ... and recovery makes it a normal file with every flushed row
    assert cli_main(["recover", str(path)]) == 0
    assert not needs_recovery(path)
    ds = read_cycling(path)
    assert ds.sizes["sample"] >= flushed[-1]
    _check_rows_whole(ds)
    assert summary(path)["state"] == "closed"
    # the chunk CRC tables were checked and rebuilt for every row kept
    assert verify_file(path).state == "recovered-from-kill"
    assert recover(path)["rows"] is None  # nothing to do the second time


@pytest.mark.slow
def test_live_reader_sees_monotonic_growth_and_whole_rows(tmp_path):
    path = tmp_path / "live.h5"
    proc = _start_writer(path, chunk=200, seconds=4.0, flush=0.05, sleep=0.002)
    counts = []
    try:
        t_end = time.monotonic() + 3.5
        while time.monotonic() < t_end:
            ds = read_cycling(path)
            _check_rows_whole(ds)
            counts.append(ds.sizes["sample"])
            time.sleep(0.05)
    finally:
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "closed" in out
    assert len(counts) > 10
    assert all(b >= a for a, b in zip(counts, counts[1:], strict=False)), counts
    assert counts[-1] > counts[0]
    _check_rows_whole(read_cycling(path))
