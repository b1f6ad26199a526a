"""A host that dies mid-step (fake channel, virtual clocks): true time across the restart,
the gap event with its charge estimate, the per-step guard, and the resume policy."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fake_channel import FakeChannel, GuardedFakeChannel, HostKilled

from cyclerflow.acquire.clock import VirtualClock
from cyclerflow.acquire.engine import ChannelResult, ChannelRunner
from cyclerflow.acquire.guards import describe_limits
from cyclerflow.acquire.progress import file_state, parse_fields
from cyclerflow.acquire.recipe import CURRENT_KINDS, loads_recipe
from cyclerflow.schema import parse_metadata
from cyclerflow.store import create_cell, read_cycling, read_events, resume_cell

W0 = 1.7e9  # Unix time of the first run's start (virtual clocks report wall time)

RECIPE = """
name: kill
limits: {voltage_max: 4.3 V, voltage_min: 3.0 V, current_max: 100 uA}
sample_interval: 10 s
record: {every: 10 s}
{policy}
steps:
  - cc_charge: {current: 1C, until: {voltage: 4.1 V}}
  - cv_hold: {voltage: 4.1 V, until: {current: 1 uA, time: 30 min}}
  - rest: {duration: 20 min}
  - cc_discharge: {current: 1C, until: {voltage: 3.4 V}}
  - rest: {duration: 10 min}
"""
# the fake cell (OCV 3.3 + 0.9 soc, 2 kOhm, 15 uAh) starts at soc 0.05: the charge
# reaches 4.1 V at ~2,900 s, the CV current falls to 1 uA by ~3,225 s, rest to ~4,425 s,
# the discharge reaches 3.4 V at ~7,100 s


@dataclass
class Killed:
    path: Path
    channel: FakeChannel
    t_dead: float  # instrument (= first run's clock) time of the kill, s
    first: ChannelResult | None


def _recipe(policy: str = ""):
    return loads_recipe(RECIPE.replace("{policy}", policy), nominal_capacity_ah=15e-6)


def _run_until_killed(tmp_path: Path, kill_at: float, cls=FakeChannel, policy="", **kw) -> Killed:
    recipe = _recipe(policy)
    clock = VirtualClock(wall0=W0)
    ch = cls(now=clock.now, **kw)
    ch.kill_at = kill_at
    ch.connect()
    path = tmp_path / "cell.h5"
    meta = parse_metadata({"cell_id": "KILL-1", "nominal_capacity_uah": 15})
    w = create_cell(path, meta, protocol=recipe.text)
    try:
        with pytest.raises(HostKilled):
            ChannelRunner(ch, w, recipe, clock=clock).run()
    finally:
        w.close()
    assert ch.output_on or ch.mode == "ocv"  # the dead host's "output off" never arrived
    return Killed(path, ch, clock.now(), None)


def _restart(k: Killed, gap_s: float, policy: str = "", on_resume=None) -> ChannelResult:
    """A new host starts ``gap_s`` (wall = simulated seconds here) after the kill."""
    clock = VirtualClock(wall0=W0 + k.t_dead + gap_s)
    base = k.t_dead + gap_s
    k.channel.revive(now=lambda: base + clock.now())
    rp = file_state(k.path, CURRENT_KINDS).resume
    w = resume_cell(k.path)
    try:
        return ChannelRunner(
            k.channel, w, _recipe(policy), clock=clock, resume=rp, on_resume=on_resume
        ).run()
    finally:
        w.close()


def _gap_events(path: Path) -> list[dict]:
    return [json.loads(e["message"]) for e in read_events(path) if e["kind"] == "gap"]


def _time_gap(path: Path, at: float) -> float:
    """The largest step of the time axis around test time ``at`` (s)."""
    t = read_cycling(path)["test_time_second"].values
    k = int(np.searchsorted(t, at))
    return float(np.max(np.diff(t[max(0, k - 2) : k + 3])))


@pytest.mark.parametrize(
    ("kill_at", "mode", "setpoint"),
    [(1000.0, "cc", 15e-6), (3050.0, "cv", 4.1), (4000.0, "ocv", 0.0), (6000.0, "cc", -15e-6)],
    ids=["charge", "cv_hold", "rest", "discharge"],
)
def test_time_axis_continues_across_the_gap_and_the_gap_is_an_event(
    tmp_path, kill_at, mode, setpoint
):
    gap_s = 300.0
    k = _run_until_killed(tmp_path, kill_at, policy="on_resume: continue")
    n_before = len(k.channel.read_times)
    res = _restart(k, gap_s, policy="on_resume: continue")
    assert res.status == "complete", res.message
    # truth: the instrument's own clock between its last reading before the kill and
    # its first one after the restart
    true_gap = k.channel.read_times[n_before] - k.channel.read_times[n_before - 1]
    assert true_gap == pytest.approx(gap_s + 10.0, abs=10.0)
    (g,) = _gap_events(k.path)
    assert g["end_s"] - g["start_s"] == pytest.approx(true_gap, abs=10.0)  # one sample interval
    assert _time_gap(k.path, g["start_s"]) == pytest.approx(true_gap, abs=10.0)
    assert g["mode"] == mode and g["output_on"] is (mode != "ocv") and g["estimated"] is True
    assert set(g) >= {"start_s", "end_s", "output_on", "mode", "setpoint", "reading_v"}
    if mode == "cc":  # set point x duration, the same as the fake cell's exact charge
        assert g["setpoint"] == pytest.approx(setpoint)
        assert g["estimated_charge_ah"] == pytest.approx(
            setpoint * (g["end_s"] - g["start_s"]) / 3600
        )
        assert g["estimate_method"] == "setpoint_x_duration_no_readback"
    elif mode == "cv":  # the current at reconnect x duration (a CV current decays: rough)
        assert g["estimate_method"] == "reading_current_x_duration"
        assert g["estimated_charge_ah"] > 0
    else:
        assert g["estimated_charge_ah"] == 0.0 and g["estimate_method"] == "output_off"
    ends = [parse_fields(e["message"]) for e in read_events(k.path) if e["kind"] == "step_end"]
    marked = [e for e in ends if "gap_q_ah" in e]
    if mode == "ocv":
        assert marked == []
    else:  # the interrupted step carries the estimate, marked
        (e,) = marked
        assert e["q_estimated"] == "1"
        assert float(e["gap_q_ah"]) == pytest.approx(g["estimated_charge_ah"], rel=1e-6)


def test_discharge_step_keeps_its_charge_across_the_gap(tmp_path):
    """A capacity-free CC discharge ends at its voltage: the file's step charge plus the
    gap estimate equals the fake cell's exact charge of that half-cycle."""
    k = _run_until_killed(tmp_path, 6000.0, policy="on_resume: continue")
    assert _restart(k, 600.0, policy="on_resume: continue").ok
    ends = [parse_fields(e["message"]) for e in read_events(k.path) if e["kind"] == "step_end"]
    q_file = -float(next(e for e in ends if e["kind"] == "cc_discharge")["q_ah"])
    sign, q_true = k.channel.cell.halves[-1]
    assert sign < 0
    assert q_file == pytest.approx(q_true, rel=0.02)  # within about one sample of charge


def test_default_policy_refuses_a_step_no_instrument_held(tmp_path):
    k = _run_until_killed(tmp_path, 1000.0)
    res = _restart(k, 60.0)
    assert res.status == "error" and "does not hold the limits of cc steps" in res.message
    assert not k.channel.output_on  # output off
    assert len(_gap_events(k.path)) == 1
    # run again as is: refused again (the gap was output-off, but the refusal stands)
    k.t_dead += 60.0
    again = _restart(k, 10.0)
    assert again.status == "error" and "refused to resume" in again.message
    k.t_dead += 10.0
    assert _restart(k, 10.0, on_resume="continue").ok  # the user decided
    assert len(_gap_events(k.path)) == 3


def test_default_policy_continues_a_guarded_step_within_max_gap(tmp_path):
    k = _run_until_killed(tmp_path, 1000.0, cls=GuardedFakeChannel, policy="max_gap: 10 min")
    res = _restart(k, 120.0, policy="max_gap: 10 min")
    assert res.ok, res.message
    (g,) = _gap_events(k.path)
    assert g["output_on"] and g["mode"] == "cc"


def test_default_policy_stops_when_the_gap_is_longer_than_max_gap(tmp_path):
    k = _run_until_killed(tmp_path, 1000.0, cls=GuardedFakeChannel, policy="max_gap: 1 min")
    res = _restart(k, 120.0, policy="max_gap: 1 min")
    assert res.status == "error" and "longer than max_gap 60 s" in res.message


def test_guarded_instrument_stops_the_discharge_at_the_safety_limit_without_a_host(tmp_path):
    """Killed early in the discharge, restarted 3 h later: the instrument holds the
    recipe's safety window, not the step's end voltage (3.4 V, host-detected): it
    tripped at voltage_min (3.0 V), the cell never went below it; the charge counter is
    the estimate; the step then ends at once on its voltage."""
    k = _run_until_killed(
        tmp_path, 5000.0, cls=GuardedFakeChannel, counter=True, policy="max_gap: 4 h"
    )
    res = _restart(k, 3 * 3600.0, policy="max_gap: 4 h")
    assert res.ok, res.message
    (g,) = _gap_events(k.path)
    assert not g["output_on"] and g["mode"] == "ocv"  # tripped: off when the host came back
    assert g["estimate_method"] == "instrument_counter"
    cell = k.channel.cell
    ocv = cell.a + cell.b * cell.soc
    assert ocv >= 3.0 + 15e-6 * 2000 - 1e-9  # tripped at 3.0 V (- I R), not below
    assert ocv < 3.4 + 15e-6 * 2000  # past the step's own end: no host to see it
    ends = [parse_fields(e["message"]) for e in read_events(k.path) if e["kind"] == "step_end"]
    dis = next(e for e in ends if e["kind"] == "cc_discharge")
    assert dis["reason"] == "voltage"
    sign, q_true = cell.halves[-1]
    assert sign < 0
    # the charge the counter saw in the gap, with the recorded part, is the whole half-cycle
    assert -float(dis["q_ah"]) == pytest.approx(q_true, rel=0.02)
    assert g["estimated_charge_ah"] < -5e-6  # most of the discharge passed unwatched


def test_restart_step_runs_the_interrupted_step_again_under_a_new_step_count(tmp_path):
    k = _run_until_killed(tmp_path, 4000.0, policy="on_resume: restart_step")
    assert _restart(k, 60.0, policy="on_resume: restart_step").ok
    starts = [parse_fields(e["message"]) for e in read_events(k.path) if e["kind"] == "step_start"]
    kinds = [s["kind"] for s in starts]
    assert kinds == ["cc_charge", "cv_hold", "rest", "rest", "cc_discharge", "rest"]
    assert [int(s["step_count"]) for s in starts] == [1, 2, 3, 4, 5, 6]


def test_on_resume_stop_refuses(tmp_path):
    k = _run_until_killed(tmp_path, 5000.0, policy="on_resume: stop")
    res = _restart(k, 60.0, policy="on_resume: stop")
    assert res.status == "error" and "on_resume: stop" in res.message


def test_every_step_gets_its_guard(tmp_path):
    recipe = _recipe()
    clock = VirtualClock()
    ch = GuardedFakeChannel(now=clock.now)
    ch.connect()
    w = create_cell(
        tmp_path / "g.h5", parse_metadata({"cell_id": "G", "nominal_capacity_uah": 15}),
        protocol=recipe.text,
    )  # fmt: skip
    try:
        assert ChannelRunner(ch, w, recipe, clock=clock).run().ok
    finally:
        w.close()
    g = [(x.voltage_min_v, x.voltage_max_v, x.current_max_a) for x in ch.guards]
    np.testing.assert_allclose(
        g,
        [
            # every step: the recipe's safety window (end voltages are the host's)
            (3.0, 4.3, 100e-6),  # cc charge (ends at 4.1 V)
            (3.0, 4.3, 100e-6),  # cv hold
            (3.0, 4.3, 100e-6),  # rest
            (3.0, 4.3, 100e-6),  # cc discharge (ends at 3.4 V)
            (3.0, 4.3, 100e-6),  # rest
        ],
        rtol=1e-12,
    )
    assert describe_limits(ch, recipe).startswith(
        "limits held by the instrument: cc, cv, ocv steps (voltage 3..4.3 V"
    )
    plain = describe_limits(FakeChannel(), recipe)
    assert plain == "limits held by the instrument: none; host-only: cc steps, cv steps, ocv steps"


def test_a_current_found_in_compliance_is_an_upper_bound():
    """A charge the SMU's voltage compliance clamped during the gap: set point x gap is
    more than passed, and the gap says so; at the set point it is the estimate."""
    from cyclerflow.acquire.instrument import Sample, SourceState
    from cyclerflow.acquire.resume import estimate_charge

    clamped = SourceState(True, "current", 3e-5, Sample(0.0, 4.286, 2e-6))
    q, how = estimate_charge(clamped, 3600.0, read_back=True)
    assert q == pytest.approx(3e-5) and how == "setpoint_x_duration_upper_bound"
    full = SourceState(True, "current", 3e-5, Sample(0.0, 3.9, 3e-5))
    assert estimate_charge(full, 3600.0, read_back=True)[1] == "setpoint_x_duration"
    tripped = SourceState(False, "off", -3e-5, Sample(0.0, 2.89, 0.0), tripped=True)
    q, how = estimate_charge(tripped, 1800.0, read_back=True)
    assert q == pytest.approx(-1.5e-5) and how == "setpoint_x_duration_upper_bound"


def test_gap_message_fits_the_event_field_with_the_longest_method() -> None:
    """The gap JSON never exceeds the event message's 240 bytes (a cut message is not JSON)."""
    import json

    from cyclerflow.acquire.resume import GAP_MESSAGE_BYTES, Gap

    method = "setpoint_x_duration_upper_bound_until_watchdog_off"
    for tripped in (False, True):
        g = Gap(
            123456.7890123,
            987654.3210987,
            True,
            "cc",
            -1.234567e-05,
            3.7867741,
            9.9091e-7,
            method,
            tripped,
        )
        text = g.to_json()
        assert len(text.encode()) <= GAP_MESSAGE_BYTES
        assert json.loads(text)["end_s"] == pytest.approx(987654.3210987, rel=1e-5)
