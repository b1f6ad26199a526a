"""The instrument's clock: a reported rate sets the engine's clock, --speedup is checked
against it, and timestamps running at another rate than the host's stop the run."""

from __future__ import annotations

import pytest
from acquire_support import run_fake
from fake_channel import ClockedFakeChannel, FakeChannel

from cyclerflow.acquire.clock import Clock, VirtualClock
from cyclerflow.acquire.station import channel_clock
from cyclerflow.acquire.timebase import ClockMismatch, RateCheck, resolve_rate
from cyclerflow.store import read_events

RECIPE = """
name: rate
limits: {voltage_max: 4.3 V, voltage_min: 3.0 V, current_max: 100 uA}
sample_interval: 10 s
steps:
  - cc_charge: {current: 1C, until: {time: 30 min}}
  - rest: {duration: 10 min}
"""


@pytest.mark.parametrize("scale", [1.5, 0.5, 1000.0, 0.001])
def test_timestamps_at_another_rate_stop_the_run_naming_both_rates(tmp_path, scale):
    def setup(ch, clock):
        ch.time_scale = scale

    run = run_fake(tmp_path / "x.h5", RECIPE, setup=setup)
    assert run.result.status == "error"
    msg = run.result.message
    assert f"run at {scale:.4g}x real time" in msg and "host clock runs at 1x" in msg
    assert not run.channel.output_on
    # stopped early: well before the 30 min charge ended
    assert run.clock.now() < 1800.0


@pytest.mark.parametrize("scale", [1.0, 1.005, 0.995])
def test_timestamps_within_one_percent_run_to_the_end(tmp_path, scale):
    def setup(ch, clock):
        ch.time_scale = scale

    run = run_fake(tmp_path / "ok.h5", RECIPE, setup=setup)
    assert run.result.ok, run.result.message


def test_rate_check_tolerates_request_windows_and_reading_age():
    """A reading anywhere in its request window (plus the slack) is no evidence."""
    rc = RateCheck(Clock(1.0), slack_s=5.0)
    rc.check(0.0, 0.0, 0.0)
    rc.check(100.0, 96.0, 103.0)  # taken inside a slow request
    rc.check(196.0, 200.0, 200.0)  # 4 s old: within the slack
    with pytest.raises(ClockMismatch):
        rc.check(400.0, 300.0, 300.0)
    rc2 = RateCheck(Clock(1.0), slack_s=5.0)
    rc2.check(50.0, 0.0, 0.0)
    rc2.check(10.0, 100.0, 100.0)  # timestamps went backwards (new buffer): re-anchored
    rc2.check(110.0, 200.0, 200.0)


def test_resolve_rate():
    assert resolve_rate(None, None) == 1.0
    assert resolve_rate(None, 200.0) == 200.0
    assert resolve_rate(1000.0, None) == 1000.0
    assert resolve_rate(1000.0, 1005.0) == 1005.0  # within 1 %: the override stands
    with pytest.raises(ClockMismatch, match=r"--speedup 200 .* 1000x real time"):
        resolve_rate(1000.0, 200.0)
    with pytest.raises(ClockMismatch):
        resolve_rate(0.0, None)


def test_channel_clock_uses_the_reported_rate():
    stop_clock = Clock(1.0)
    ch = ClockedFakeChannel(rate=250.0)
    clock, text = channel_clock(ch, stop_clock, speedup_given=False)
    assert clock.speedup == 250.0 and clock.stop is stop_clock.stop
    assert text == "250x real time (reported by the instrument)"
    with pytest.raises(ClockMismatch, match="--speedup 1 "):
        channel_clock(ch, stop_clock, speedup_given=True)
    same, _ = channel_clock(ch, Clock(250.0), speedup_given=True)
    assert same.speedup == 250.0
    plain, text = channel_clock(FakeChannel(), Clock(3.0), speedup_given=True)
    assert plain.speedup == 3.0 and "from --speedup" in text
    virtual = VirtualClock()
    assert channel_clock(ClockedFakeChannel(rate=1.0), virtual, speedup_given=False)[0] is virtual


def test_each_run_notes_its_clock(tmp_path):
    run_fake(tmp_path / "n.h5", RECIPE)
    notes = [e["message"] for e in read_events(tmp_path / "n.h5") if e["kind"] == "note"]
    assert notes[0].startswith("clock_rate=1 wall_s=")
