"""The README's tour works as written: every command, in order, in a fresh folder, against
the instrument simulator, exits 0 and makes what the README says it makes.

The only change to the commands: the simulator's port 5025 becomes a free port (tests run
in parallel on one machine). Lines ending in ``&`` start in the background; ``kill %1``
stops them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README_PORT = "5025"


def tour_commands(readme: str) -> list[str]:
    """The shell commands of the README's tour block, continuation lines joined."""
    section = readme.split("## A short tour", 1)[1]
    block = section.split("```", 2)[1]
    commands, current = [], ""
    for raw in block.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
            continue
        commands.append(current + line)
        current = ""
    return commands


def test_tour_parser_joins_continuations_and_skips_comments():
    text = "## A short tour\n```\n# c\nrun a \\\n   b   # x\n\nkill %1\n```\n"
    assert tour_commands(text) == ["run a b   # x", "kill %1"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(proc: subprocess.Popen, port: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, "the simulator exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port}")


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    for key in [k for k in env if k.startswith("PREFECT_")]:
        env.pop(key)  # a newcomer's shell has none of them
    env["PREFECT_HOME"] = str(tmp / ".prefect")
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    return env


def _check_acquired(cell: Path, wall_s: float) -> None:
    """The file's time axis is the simulator's (1000x the wall clock), not the host's."""
    with h5py.File(cell, "r") as f:
        t = f["cycling/test_time_second"][:]
        i = f["cycling/current_ampere"][:]
    span = float(t[-1] - t[0])
    # the recipe: a 10 min rest, three 2C cycles (~30 min per half) with 2 min rests
    assert 3 * 3600 * 0.6 < span < wall_s * 1000 * 1.05, (span, wall_s)
    charge = np.trapezoid(np.clip(i, 0, None), t) / 3600 / 3  # Ah per cycle
    assert 8e-6 < charge < 16e-6, charge  # the simulated cell holds 15 µAh


def _check(cmd: str, tmp: Path, out: str, wall_s: float) -> None:
    """What the README says each command makes."""
    data = tmp / "data"
    if cmd.startswith("cyclerflow acquire"):
        _check_acquired(data / "SIM-LCO-01.h5", wall_s)
    elif cmd.startswith("cyclerflow inspect"):
        assert "SIM-LCO-01" in out and "closed" in out
    elif cmd.startswith("cyclerflow watch"):
        assert "SIM-LCO-01" in out or "complete" in out.lower()
    elif cmd.startswith("cyclerflow analyze"):
        res = json.loads((tmp / "SIM-LCO-01.json").read_text())
        cyc = res["cycling"]
        assert cyc["reference_cycle"] == 2 and cyc["n_complete_cycles"] == 3
        assert all(c["complete"] for c in cyc["cycles"])
        assert len(res["eis"]["spectra"]) == 1
        assert res["eis"]["spectra"][0]["conductivity_s_per_cm"] is not None
    elif cmd.startswith("cyclerflow export") and "--eis" in cmd:
        assert (tmp / "eis.csv").read_text().startswith("spectrum_id") or "frequency_hertz" in (
            tmp / "eis.csv"
        ).read_text().splitlines()[0]
    elif cmd.startswith("cyclerflow export"):
        assert "test_time_second" in (tmp / "cycling.csv").read_text().splitlines()[0]
    elif cmd.startswith("cyclerflow fit-eis"):
        assert "R1" in out
    elif cmd.startswith("cyclerflow import"):
        assert (tmp / "copy.h5").stat().st_size > 0
    elif cmd.startswith("cyclerflow report"):
        assert "SIM-LCO-01" in (tmp / "lab.html").read_text()
    elif cmd.startswith("cyclerflow flows run analyze-lab"):
        assert (data / "lab_summary.csv").is_file() and "SIM-LCO-01" in (
            data / "lab_summary.csv"
        ).read_text()


@pytest.mark.slow
def test_readme_tour_runs_as_written(tmp_path):
    commands = tour_commands((ROOT / "README.md").read_text())
    assert any(c.startswith("cyclerflow acquire") for c in commands)
    shutil.copytree(ROOT / "fixtures", tmp_path / "fixtures")
    port = str(_free_port())
    env = _env(tmp_path)
    background: list[subprocess.Popen] = []
    try:
        for cmd in commands:
            cmd = cmd.replace(README_PORT, port)
            if m := re.match(r"kill %(\d+)", cmd):
                proc = background.pop(int(m.group(1)) - 1)
                proc.terminate()
                proc.wait(timeout=10)
                continue
            if cmd.endswith("&"):
                proc = subprocess.Popen(
                    ["bash", "-c", "exec " + cmd[:-1]],
                    cwd=tmp_path,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                background.append(proc)
                _wait_listening(proc, int(port))
                continue
            t0 = time.monotonic()
            res = subprocess.run(
                ["bash", "-c", cmd], cwd=tmp_path, env=env, capture_output=True, text=True
            )
            wall = time.monotonic() - t0
            assert res.returncode == 0, f"{cmd}\n{res.stderr[-3000:]}"
            _check(cmd, tmp_path, res.stdout, wall)
        assert not background, "a background command was never stopped"
    finally:
        for proc in background:
            proc.kill()
            proc.wait()


def test_readme_points_only_at_files_in_the_repository():
    text = (ROOT / "README.md").read_text()
    assert "../shared" not in text and "DESIGN.md" not in text
    for ref in set(re.findall(r"`((?:docs|fixtures)/[\w./-]+)`", text)):
        assert (ROOT / ref).exists(), ref
