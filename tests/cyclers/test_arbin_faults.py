"""Arbin CTI: fault injection on the simulator and a host restart, through the cycler path."""

from __future__ import annotations

import threading
import time

import numpy as np

from cyclerflow.acquire.station import load_station, run_station
from cyclerflow.drivers.arbin_cti import ArbinChannel
from cyclerflow.store import read_cycling, read_events

from . import test_arbin_e2e as e2e
from .cycler_helpers import RECIPE, cell_recipe, run_channel

SCHEDULE, write_station = e2e.SCHEDULE, e2e.write_station
arbin_sim = e2e.arbin_sim  # the simulator fixture


def run(tmp_path, sim, text, channel=1):
    recipe = cell_recipe(text)
    ch = ArbinChannel(sim.resource, channel=channel, schedule=SCHEDULE)
    ch.connect()
    out = tmp_path / f"ch{channel}.h5"
    return run_channel(ch, out, recipe, poll_interval_s=0.01), out


def _no_gap_no_duplicate(out):
    c = read_cycling(out)
    seq = c["vendor_record_id"].values
    assert np.array_equal(seq, np.arange(1, len(seq) + 1))
    key = np.stack([c["vendor_step_index"], c["vendor_cycle_index"], c["vendor_step_time_second"]])
    assert not np.any(np.all(key[:, 1:] == key[:, :-1], axis=0))  # no reading stored twice
    return c


def test_link_drops_are_survived(tmp_path, arbin_sim):
    text = RECIPE.format(cycles=1)
    sim = arbin_sim(text, channels=1, speedup=1000, faults=("drop:after=40",))
    res, out = run(tmp_path, sim, text)
    assert res.status == "complete", res.message
    _no_gap_no_duplicate(out)
    assert "disconnect" in [e["kind"] for e in read_events(out)]


def test_refusing_channel_reports_why(tmp_path, arbin_sim):
    text = RECIPE.format(cycles=1)
    sim = arbin_sim(text, channels=2, speedup=1000, faults=("refuse:channel=2",))
    res, _ = run(tmp_path, sim, text, channel=2)
    assert res.status == "error"
    assert "channel 2 refused to start (channel is running or unsafe)" in res.message
    assert sim.channel(2).test_id == 0


def test_alarm_is_recorded(tmp_path, arbin_sim):
    text = RECIPE.format(cycles=2)
    sim = arbin_sim(text, channels=1, speedup=1000, faults=("alarm:channel=1,at=900",))
    res, out = run(tmp_path, sim, text)
    assert res.status == "alarm" and "Unsafe" in res.message
    c = _no_gap_no_duplicate(out)
    assert c["test_time_second"].values[-1] <= 900 + 1e-6
    assert "alarm" in [e["kind"] for e in read_events(out)]


def test_host_killed_mid_run_resumes_without_gap_or_duplicate(tmp_path, arbin_sim):
    text = RECIPE.format(cycles=2)
    sim = arbin_sim(text, channels=2, speedup=1000)
    station = write_station(tmp_path, sim.resource, 2, text)
    stop = threading.Event()
    th = threading.Thread(target=lambda: run_station(load_station(station), stop=stop))
    th.start()
    time.sleep(3.0)  # part way (~3000 simulated s of ~7,500)
    stop.set()
    th.join(30)
    first = {c: len(read_cycling(tmp_path / f"ch{c}.h5")["vendor_record_id"]) for c in (1, 2)}
    time.sleep(0.5)  # the cycler goes on while no host listens
    results = run_station(load_station(station))
    assert [r.status for r in results] == ["complete", "complete"]
    for c in (1, 2):
        path = tmp_path / f"ch{c}.h5"
        cols = _no_gap_no_duplicate(path)
        assert 0 < first[c] < len(cols["vendor_record_id"])
        assert np.all(np.diff(cols["test_time_second"].values) >= 0)
        assert "resume" in [e["kind"] for e in read_events(path)]
        assert int(cols["vendor_cycle_index"].max()) == 2
