"""The command line: `cyclerflow simulate maccor-macnet` and `acquire --driver maccor-macnet`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cyclerflow.store import read_cycling

from .cycler_helpers import CELL, RECIPE

BIN = Path(sys.executable).parent / "cyclerflow"


@pytest.fixture
def macnet_process(tmp_path):
    procs = []
    procdir = tmp_path / "Procedur"
    procdir.mkdir()
    (procdir / "FORM.yaml").write_text(RECIPE.format(cycles=1))

    def start(*args):
        env = os.environ | {"CYCLERFLOW_MACCOR_PROCDIR": str(procdir)}
        cmd = [str(BIN), "simulate", "maccor-macnet", "--port", "0", *args]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        procs.append(p)
        line = p.stdout.readline()
        m = re.search(r"resource=(\S+)", line)
        assert m, line
        return m.group(1)

    yield start
    for p in procs:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def _acquire(tmp_path, resource: str, options: str, out: Path):
    (tmp_path / "r.yaml").write_text(RECIPE.format(cycles=1))
    cmd = [str(BIN), "acquire", "--driver", "maccor-macnet", "--resource", resource]
    cmd += ["--option", options, "--protocol", str(tmp_path / "r.yaml")]
    cmd += ["--cell", str(CELL), "-o", str(out), "--json"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_single_channel_acquire_against_the_simulator_process(tmp_path, macnet_process):
    resource = macnet_process("--channels", "4", "--speedup", "1000")
    out = tmp_path / "c3.h5"
    done = _acquire(tmp_path, resource, "channel=3,procedure=FORM", out)
    assert done.returncode == 0, done.stderr
    assert '"status": "complete"' in done.stdout
    cyc = read_cycling(out)
    seq = cyc["vendor_record_id"].values
    assert len(seq) > 100 and np.array_equal(seq, np.arange(1, len(seq) + 1))
    assert cyc["current_ampere"].values.max() > 0 > cyc["current_ampere"].values.min()


def test_unknown_procedure_is_refused_by_the_cycler(tmp_path, macnet_process):
    resource = macnet_process("--channels", "2", "--speedup", "1000")
    done = _acquire(tmp_path, resource, "channel=1,procedure=NOPE", tmp_path / "x.h5")
    assert done.returncode != 0
    assert "refused" in done.stdout + done.stderr and "procedure not found" in done.stdout


def test_missing_procedure_option_is_an_input_error(tmp_path, macnet_process):
    resource = macnet_process("--channels", "1")
    done = _acquire(tmp_path, resource, "channel=1", tmp_path / "y.h5")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "procedure=NAME" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
