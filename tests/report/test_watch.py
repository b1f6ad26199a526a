"""`cyclerflow watch`: a frame of a file being written by another process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from cyclerflow.cli import main
from cyclerflow.report.watch import charge_so_far, render_frame, watch

HERE = Path(__file__).parent


def test_charge_so_far_known_answer():
    t = np.arange(11, dtype=float)
    i = np.where(t < 5, 3.6, -1.8)  # A
    qc, qd = charge_so_far(t, i)
    # 4 s at 3.6 A + 1 s at mean 0.9 A; 5 s at 1.8 A
    assert qc == pytest.approx((4 * 3.6 + 0.9) / 3600)
    assert qd == pytest.approx(5 * 1.8 / 3600)


@pytest.fixture
def live_file(tmp_path):
    path = tmp_path / "live.h5"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "live_writer.py"), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "flushed"
        yield path, proc
    finally:
        if proc.poll() is None:
            proc.stdin.write("\n")
            proc.stdin.flush()
            proc.wait(30)


def _text(renderable) -> str:
    con = Console(record=True, width=140, file=open("/dev/null", "w"))
    con.print(renderable)
    return con.export_text()


def test_frame_of_a_live_file(live_file):
    path, proc = live_file
    text = _text(render_frame(path))
    assert "LIVE-1" in text and "live" in text
    assert "cycle 1, step 2: discharging" in text
    assert "rows        1,000" in text or "1,000" in text
    # capacity so far (trapezoid of the known rows): 1.665 µAh charged, 554.2 nAh discharged
    assert "charge 1.665 µAh" in text and "discharge 554.2 nAh" in text
    assert "3.5999 V" in text  # the last reading, 3.5 V + 999 x 0.1 mV
    assert "-5 µA" in text
    assert "safety_stop" in text and "4.31 V" in text


def test_watch_loop_stops_when_writer_closes(live_file):
    path, proc = live_file
    con = Console(record=True, width=140, file=open("/dev/null", "w"))
    assert watch(path, interval=0.05, console=con, max_frames=3) == 3  # still live: ran 3 frames
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "closed"
    proc.wait(30)
    assert watch(path, interval=0.05, console=con, max_frames=100) == 1  # closed: one frame, exit
    assert "closed" in con.export_text()


def test_cli_watch_once_and_errors(live_file, tmp_path, capsys):
    path, _ = live_file
    assert main(["watch", str(path), "--once"]) == 0
    assert "LIVE-1" in capsys.readouterr().out
    assert main(["watch", str(tmp_path / "nope.h5"), "--once"]) == 2
    assert "nope.h5" in capsys.readouterr().err
    bad = tmp_path / "bad.h5"
    bad.write_text("not a cell file")
    assert main(["watch", str(bad), "--once"]) == 2
    assert "bad.h5" in capsys.readouterr().err
