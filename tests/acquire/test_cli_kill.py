"""`cyclerflow acquire` as a process against a simulator: SIGKILL then restart resumes,
SIGTERM stops safely, a live reader sees the file grow, bad input exits 2 with no file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cyclerflow.acquire.progress import parse_fields
from cyclerflow.store import needs_recovery, read_cycling, read_events

sim = pytest.importorskip(
    "cyclerflow.drivers.sim", reason="the simulators are part of this project"
)

SPEED = 200.0
RECIPE = """
name: kill-test
limits: {voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA}
sample_interval: 10 s
record: {every: 10 s}
steps:
  - cc_charge: {current: 4C, until: {time: 6 min}}
  - loop:
      repeat: 5
      steps:
        - cc_charge: {current: 1C, until: {time: 1 min}}
        - rest: {duration: 30 s}
        - cc_discharge: {current: 1C, until: {time: 1 min}}
        - rest: {duration: 30 s}
"""
CELL = "cell_id: KILL-1\nactive_area_cm2: 0.25\nnominal_capacity_uah: 15\n"


def _cmd(tmp_path: Path, resource: str, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "cyclerflow.cli", "acquire",
        "--driver", "keithley2450", "--resource", resource,
        "--protocol", str(tmp_path / "recipe.yaml"), "--cell", str(tmp_path / "cell.yaml"),
        "-o", str(out), "--speedup", str(SPEED), "--quiet",
    ]  # fmt: skip


def _wait_rows(out: Path, proc: subprocess.Popen, cond, timeout: float = 30.0):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else proc.returncode
        if out.exists():
            try:
                ds = read_cycling(out)  # a live (SWMR) read while the writer appends
            except Exception:
                ds = None
            if ds is not None and cond(ds):
                return ds
        time.sleep(0.1)
    raise AssertionError("the acquisition did not get that far in time")


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    (tmp_path / "cell.yaml").write_text(CELL)
    server, _ = sim.start_simulator("keithley2450", speedup=SPEED)
    yield tmp_path, server
    server.stop()


@pytest.mark.slow
def test_sigkill_then_restart_resumes(setup):
    tmp_path, server = setup
    out = tmp_path / "cell.h5"
    proc = subprocess.Popen(_cmd(tmp_path, server.resource, out), stderr=subprocess.PIPE, text=True)
    seen = []
    _wait_rows(
        out,
        proc,
        lambda ds: (
            (seen.append(ds.sizes["sample"]) or True)
            and ds.sizes["sample"] > 0
            and ds["cycle_count"].values.max() >= 3
        ),
    )
    assert len(set(seen)) >= 2 or seen[-1] > 0  # the live reader saw data arrive
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    killed_at = time.time()
    proc.wait(10)
    assert needs_recovery(out)  # a killed writer leaves the file marked open...
    before = read_cycling(out)  # ...and it still reads
    n0 = before.sizes["sample"]
    t_last = float(before["test_time_second"].values[-1])
    unix0 = float(before["unix_time_second"].values[0] - before["test_time_second"].values[0])
    wall_of_last = unix0 + t_last / SPEED  # speed-up: test time runs SPEED x faster than wall time
    lost_s = killed_at - wall_of_last
    assert lost_s <= 1.0 + 10.0 / SPEED + 0.3, lost_s  # flush interval 1 s (+ one sample, + slack)

    # the simulator holds no limits today: the default policy would refuse to go on
    # with a current step, so the user says continue
    done = subprocess.run(
        [*_cmd(tmp_path, server.resource, out), "--on-resume", "continue"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert not needs_recovery(out)
    after = read_cycling(out)
    for col in ("test_time_second", "voltage_volt", "current_ampere", "cycle_count", "step_count"):
        np.testing.assert_array_equal(
            after[col].values[:n0], before[col].values
        )  # nothing overwritten
    cyc = after["cycle_count"].values
    # cycle 1 is the first charge, each loop iteration is a new cycle
    assert np.all(np.diff(cyc) >= 0) and cyc.max() == 6 and cyc[n0] >= cyc[n0 - 1]
    assert np.all(np.diff(after["step_count"].values) >= 0)
    assert np.all(np.diff(after["test_time_second"].values) > 0)
    ev = read_events(out)
    assert [e["kind"] for e in ev].count("resume") == 1
    ends = [parse_fields(e["message"])["pos"] for e in ev if e["kind"] == "step_end"]
    assert len(ends) == len(set(ends)) == 21  # every step of the recipe ended exactly once
    assert ev[-1]["message"] == "recipe complete"
    # the simulated cell saw the recipe once: 1 + 2 x 5 charge/discharge runs, the first
    # two merge (same sign, the rest between them does not end a half-cycle)
    with server.lock:
        assert len(server.model.half_cycles()) == 10


def test_sigterm_stops_safely(setup):
    tmp_path, server = setup
    out = tmp_path / "term.h5"
    proc = subprocess.Popen(_cmd(tmp_path, server.resource, out), stderr=subprocess.PIPE, text=True)
    _wait_rows(
        out, proc, lambda ds: ds.sizes["sample"] > 5 and (ds["current_ampere"].values[-1] != 0)
    )
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 130
    assert not needs_recovery(out)  # closed properly
    with server.lock:
        assert server.model.mode == "ocv"  # output off
    notes = [e["message"] for e in read_events(out) if e["kind"] == "note"]
    assert notes[-1] == "stopped by signal (output off)"


def test_bad_input_exits_2_before_anything(setup, tmp_path):
    tmp_path, server = setup
    (tmp_path / "bad.yaml").write_text(RECIPE.replace("current: 4C", "current: 4 V"))
    out = tmp_path / "never.h5"
    cmd = _cmd(tmp_path, server.resource, out)
    cmd[cmd.index(str(tmp_path / "recipe.yaml"))] = str(tmp_path / "bad.yaml")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert (
        "bad.yaml: steps[0].cc_charge.current: '4 V' is a voltage, expected a current"
        in done.stderr
    )
    assert "Traceback" not in done.stderr
    assert not out.exists()
    with server.lock:
        assert server.model.segments == [] or all(s.mode == "ocv" for s in server.model.segments)
    assert os.listdir(tmp_path).count("never.h5") == 0


PHASES = """
name: phases
limits: {voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA}
sample_interval: 10 s
record: {every: 10 s}
on_resume: continue
steps:
  - rest: {duration: 1 min}
  - cc_charge: {current: 1C, until: {time: 10 min}}
  - cv_hold: {voltage: 4.0 V, until: {time: 10 min}}
  - rest: {duration: 10 min}
  - cc_discharge: {current: 1C, until: {time: 10 min}}
  - cc_charge: {current: C/2, until: {time: 2 min}}
"""
MARKER_A = 7.5e-6  # the last step's set point (C/2 of 15 uAh): one segment in the simulator
# the switches into steps 2 (the 1C charge) and 6 (the marker) are both read around by
# the 2450 (one exchange with the source change): their times in the file are the
# instrument's, so simulator time minus test time there is the offset of the time axis


def _offset(server, step_starts: list[dict], step_count: int, setpoint_a: float) -> float:
    """Simulator time minus file test time at the switch into step ``step_count`` (s)."""
    t_file = next(
        float(e["test_time_second"])
        for e in step_starts
        if parse_fields(e["message"])["step_count"] == str(step_count)
    )
    with server.lock:
        seg = next(
            s
            for s in server.model.segments
            if s.mode == "cc" and abs(abs(s.setpoint) - setpoint_a) < 1e-9
        )
    return seg.start_s - t_file


@pytest.mark.slow
@pytest.mark.parametrize(
    ("step_count", "mode"),
    [(2, "cc"), (3, "cv"), (4, "ocv"), (5, "cc")],
    ids=["charge", "cv_hold", "rest", "discharge"],
)
def test_sigkill_in_each_phase_keeps_true_time_and_records_the_gap(setup, step_count, mode):
    tmp_path, server = setup
    (tmp_path / "phases.yaml").write_text(PHASES)
    out = tmp_path / f"phase{step_count}.h5"
    cmd = _cmd(tmp_path, server.resource, out)
    cmd[cmd.index(str(tmp_path / "recipe.yaml"))] = str(tmp_path / "phases.yaml")
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    _wait_rows(out, proc, lambda ds: int(np.sum(ds["step_count"].values == step_count)) >= 3, 60.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    time.sleep(1.0)  # the host is away: 1 s wall = 200 s simulated
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    ev = read_events(out)
    (gap,) = [json.loads(e["message"]) for e in ev if e["kind"] == "gap"]
    # read back from the 2450: a rest is a 0 A current source with its output on
    assert gap["mode"] == mode and gap["output_on"] is True
    assert gap["end_s"] - gap["start_s"] > 200.0  # at least the 1 s away x 200
    # true time: simulator time minus test time is the same before and after the gap
    # (first step's switch vs the last step's), within a sample interval
    starts = [e for e in ev if e["kind"] == "step_start"]
    before = _offset(server, starts, 2, 15e-6)
    after = _offset(server, starts, 6, MARKER_A)
    assert abs(after - before) <= 10.0, (before, after)
    t = read_cycling(out)["test_time_second"].values
    k = int(np.searchsorted(t, gap["start_s"] + 1e-3))  # JSON keeps 10 digits
    # the gap runs from the last stored sample to the host's return; the next sample
    # follows once the source is set again (the offsets above check its time)
    assert t[k - 1] == pytest.approx(gap["start_s"], abs=1e-3) and t[k] >= gap["end_s"]
    ends = [parse_fields(e["message"]) for e in ev if e["kind"] == "step_end"]
    (hit,) = [e for e in ends if e["step_count"] == str(step_count)]
    if mode == "ocv":
        assert "gap_q_ah" not in hit and gap["estimated_charge_ah"] == 0.0
    else:  # the interrupted step carries the estimate, marked
        assert hit["q_estimated"] == "1"
        assert float(hit["gap_q_ah"]) == pytest.approx(gap["estimated_charge_ah"], rel=1e-6)
    if step_count in (2, 5):  # set point x duration: the simulator's own charge of the step
        sp = 15e-6 if step_count == 2 else -15e-6
        assert gap["estimated_charge_ah"] == pytest.approx(
            sp * (gap["end_s"] - gap["start_s"]) / 3600.0, rel=1e-6
        )
        with server.lock:
            q_sim = sum(
                s.charge_ah
                for s in server.model.segments
                if s.mode == "cc" and abs(s.setpoint - sp) < 1e-12
            )
        assert abs(float(hit["q_ah"])) == pytest.approx(abs(q_sim), rel=0.03)


def _without_speedup(cmd: list[str]) -> list[str]:
    k = cmd.index("--speedup")
    return cmd[:k] + cmd[k + 2 :]


def test_without_speedup_the_simulator_sets_the_clock(setup):
    """The simulator runs 200x and says so in *IDN?: acquire without --speedup runs at
    that rate and writes the true (simulated) time axis."""
    tmp_path, server = setup
    out = tmp_path / "noclock.h5"
    cmd = _without_speedup(_cmd(tmp_path, server.resource, out))
    cmd.remove("--quiet")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ch1: clock 200x real time (reported by the instrument)" in done.stderr
    assert "limits held by the instrument: cc, ocv steps" in done.stderr
    with server.lock:
        assert server.model.mode == "ocv"
        all_segs = list(server.model.segments)
    # a step's current can span several simulator segments (each source command is
    # one): a current step starts where the set point changes
    segs = [
        s
        for prev, s in zip(all_segs, all_segs[1:], strict=False)
        if s.mode == "cc" and s.setpoint != 0 and (prev.mode, prev.setpoint) != ("cc", s.setpoint)
    ]
    # the recipe is 6 min + 5 x 3 min of simulated time: the file's time axis spans it
    t = read_cycling(out)["test_time_second"].values
    assert t[-1] - t[0] == pytest.approx(21 * 60.0, abs=30.0)  # 200x shorter if wrong
    # step by step: each current step starts where the simulator started it (a constant
    # offset, the time before the first reading), within two sample intervals (at 200x a
    # 50 ms host stall is 10 simulated s; a wrong clock rate puts them minutes apart)
    ev = read_events(out)
    starts = [float(e["test_time_second"]) for e in ev if e["kind"] == "step_start"]
    fields = [parse_fields(e["message"])["kind"] for e in ev if e["kind"] == "step_start"]
    t_cc = [t0 for t0, kind in zip(starts, fields, strict=True) if kind.startswith("cc_")]
    assert len(t_cc) == len(segs) == 11
    offsets = np.array([s.start_s for s in segs]) - np.array(t_cc)
    assert np.ptp(offsets) <= 20.0, offsets


def test_a_wrong_speedup_stops_the_run_naming_both_rates(setup):
    """--speedup 10 against a simulator that reports 200x: an error naming both rates
    before anything is switched on; exit 1."""
    tmp_path, server = setup
    out = tmp_path / "wrong.h5"
    cmd = _cmd(tmp_path, server.resource, out)
    cmd[cmd.index("--speedup") + 1] = "10"
    cmd.remove("--quiet")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    text = done.stdout + done.stderr
    assert "--speedup 10 disagrees with the instrument's clock" in text
    assert "which runs at 200x real time" in text
    with server.lock:
        assert server.model.mode == "ocv"
        assert not [s for s in server.model.segments if s.mode == "cc" and s.setpoint != 0]
    assert not out.exists() or read_cycling(out).sizes["sample"] == 0


@pytest.mark.slow
def test_watchdog_restarts_a_killed_engine_at_once(setup):
    tmp_path, server = setup
    out = tmp_path / "wd.h5"
    cmd = [*_cmd(tmp_path, server.resource, out), "--watchdog", "--on-resume", "continue"]
    cmd.remove("--quiet")  # the watchdog says what it does
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    _wait_rows(out, proc, lambda ds: ds.sizes["sample"] > 0 and ds["cycle_count"].values.max() >= 2)
    from cyclerflow.store.writer import live_writer_pid

    engine = live_writer_pid(out)
    assert engine is not None and engine != proc.pid  # the engine is the watchdog's child
    os.kill(engine, signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "watchdog: engine died (killed by SIGKILL)" in err
    ev = read_events(out)
    assert [e["kind"] for e in ev].count("gap") == 1
    assert ev[-1]["message"] == "recipe complete"
    (gap,) = [json.loads(e["message"]) for e in ev if e["kind"] == "gap"]
    # restarted at once: the gap is the restart time (interpreter start-up), not minutes
    assert gap["end_s"] - gap["start_s"] < 30.0 * SPEED


@pytest.mark.slow
def test_watchdog_switches_the_output_off_when_the_gap_is_too_long(setup):
    tmp_path, server = setup
    out = tmp_path / "wd0.h5"
    cmd = [*_cmd(tmp_path, server.resource, out), "--watchdog", "--watchdog-max-gap", "0"]
    cmd += ["--on-resume", "continue"]
    cmd.remove("--quiet")
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    _wait_rows(out, proc, lambda ds: int(np.sum(ds["step_count"].values == 1)) >= 3)
    from cyclerflow.store.writer import live_writer_pid

    os.kill(live_writer_pid(out), signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "watchdog: outputs switched off before the restart" in err
    (gap,) = [json.loads(e["message"]) for e in read_events(out) if e["kind"] == "gap"]
    # on (the first charge) until the watchdog switched it off: estimated up to then
    assert gap["output_on"] and gap["mode"] == "cc"
    assert gap["estimate_method"].endswith("_until_watchdog_off")
    full = gap["setpoint"] * (gap["end_s"] - gap["start_s"]) / 3600.0
    assert 0 < gap["estimated_charge_ah"] < full
