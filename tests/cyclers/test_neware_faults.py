"""Fault injection on the simulated BTS server, seen through the cycler acquisition path."""

from __future__ import annotations

import numpy as np

from cyclerflow.drivers.neware_bts import NewareChannel
from cyclerflow.store import read_cycling, read_events

from .cycler_helpers import RECIPE, cell_recipe, run_channel


def run(tmp_path, sim, text, channel=1, **options):
    recipe = cell_recipe(text)
    ch = NewareChannel(sim.resource, unit=1, channel=channel, stepdir=str(tmp_path), **options)
    ch.connect()
    out = tmp_path / f"ch{channel}.h5"
    return run_channel(ch, out, recipe, poll_interval_s=0.2), out


def _seq_complete(out, sim, channel=1):
    seq = read_cycling(out)["vendor_record_id"].values
    return np.array_equal(seq, np.arange(1, len(sim.channel(1, channel).records) + 1))


def test_link_drops_are_survived_without_gap(tmp_path, neware_sim):
    sim = neware_sim(channels=1, speedup=1000, faults=("drop:after=7",))
    res, out = run(tmp_path, sim, RECIPE.format(cycles=1))
    assert res.status == "complete", res.message
    assert _seq_complete(out, sim)
    kinds = [e["kind"] for e in read_events(out)]
    assert kinds.count("disconnect") >= 1 and "resume" in kinds


def test_stalled_replies_time_out_and_recover(tmp_path, neware_sim):
    sim = neware_sim(channels=1, speedup=1000, faults=("stall:delay=1.0,every=9",))
    res, out = run(tmp_path, sim, RECIPE.format(cycles=1), timeout=0.3)
    assert res.status == "complete", res.message
    assert _seq_complete(out, sim)
    assert any("no reply within" in e["message"] for e in read_events(out))


def test_alarm_on_a_channel_is_an_event_and_ends_the_run(tmp_path, neware_sim):
    sim = neware_sim(channels=2, speedup=1000, faults=("alarm:channel=2,at=1500",))
    res, out = run(tmp_path, sim, RECIPE.format(cycles=2), channel=2)
    assert res.status == "alarm"
    assert sim.channel(1, 2).state == "protect"
    assert "alarm" in [e["kind"] for e in read_events(out)]
    t = read_cycling(out)["test_time_second"].values
    assert 1500 <= t[-1] < 1510 and _seq_complete(out, sim, 2)


def test_channel_that_refuses_to_start(tmp_path, neware_sim):
    sim = neware_sim(channels=2, speedup=1000, faults=("refuse:channel=1",))
    res, out = run(tmp_path, sim, RECIPE.format(cycles=1))
    assert res.status == "error" and "refused to start" in res.message
    assert len(read_cycling(out)["vendor_record_id"]) == 0


def test_host_side_limit_stops_the_channel(tmp_path, neware_sim):
    """step_time_max is not in the step file: the host holds it, stops the channel."""
    sim = neware_sim(channels=1, speedup=1000)
    text = RECIPE.format(cycles=2).replace(
        "current_max: 100 uA", "current_max: 100 uA, step_time_max: 15 min"
    )
    res, out = run(tmp_path, sim, text)
    assert res.status == "safety_stop" and "step_time_max" in res.message
    assert sim.channel(1, 1).state == "stop"
    st = read_cycling(out)["vendor_step_time_second"].values
    assert st[-1] > 900 and np.all(st[:-1] <= 900)
    assert [e for e in read_events(out) if e["kind"] == "safety_stop"]


def test_garbled_reply_stops_following_with_an_error(tmp_path, neware_sim):
    """A reply corrupted in its middle (framing intact): the host stops following with
    an instrument error naming the reply, the records stored so far are the simulator's."""
    sim = neware_sim(channels=1, speedup=1000, faults=("garble:after=12",))
    res, out = run(tmp_path, sim, RECIPE.format(cycles=1))
    assert res.status == "error" and "neware" in res.message, res.message
    seq = read_cycling(out)["vendor_record_id"].values
    assert np.array_equal(seq, np.arange(1, len(seq) + 1))


def test_garble_fault_keeps_length_and_ends():
    from cyclerflow.drivers.sim.cycler_channel import CyclerFaults

    f = CyclerFaults.parse(["garble:after=2"])
    reply = b"<bts>" + b"x" * 40 + b"</bts>\n\n#\r\n"
    assert f.deliver(1, reply) == reply
    bad = f.deliver(2, reply)
    assert bad != reply and len(bad) == len(reply)
    assert bad[:20] == reply[:20] and bad.endswith(b"</bts>\n\n#\r\n")
    assert f.deliver(3, reply) == reply
