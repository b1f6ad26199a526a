"""End to end: `acquire --station` against the simulated MacNet server at 1000x.

MacNet returns a channel's latest reading only, so the file holds the readings the host
polled (every recording interval), not the cycler's own records. The capacity of a step
in the file is its last polled reading: it can fall short of the simulator's own by the
charge passed between that reading and the step's end, at most |I| x (longest interval
between two stored readings) - the bound these tests assert, computed from the file.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from cyclerflow.acquire.cli import acquire
from cyclerflow.acquire.recipe import loads_recipe
from cyclerflow.acquire.station import load_station, run_station
from cyclerflow.errors import InputError
from cyclerflow.schema import load_metadata
from cyclerflow.store import read_cycling, read_events

from .cycler_helpers import CELL, RECIPE

PROC = "FORM2C"


@pytest.fixture
def macnet_sim():
    from cyclerflow.drivers.sim.maccor_macnet import MacNetSim

    sims = []

    def make(text: str, **kw):
        meta, _ = load_metadata(CELL)
        recipe = loads_recipe(text, nominal_capacity_ah=meta.nominal_capacity_ah)
        s = MacNetSim(procedures={PROC: recipe}, **kw).start()
        sims.append(s)
        return s

    yield make
    for s in sims:
        s.stop()


def write_station(tmp, resource: str, n: int, text: str, **extra):
    (tmp / "recipe.yaml").write_text(text)
    (tmp / "cell.yaml").write_text(CELL.read_text())
    lines = [f"{k}: {v}" for k, v in extra.items()] + ["channels:"]
    for c in range(1, n + 1):
        lines.append(
            f'  - {{name: ch{c}, driver: maccor-macnet, resource: "{resource}", cell: cell.yaml, '
            f"recipe: recipe.yaml, out: ch{c}.h5, options: {{channel: {c}, procedure: {PROC}}}}}"
        )
    path = tmp / "station.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def step_caps(cols) -> tuple[np.ndarray, np.ndarray]:
    """Signed capacity of each step with current (its last row) and the polling bound of
    each (Ah): |I| x the time from the step's last reading to the next step's first."""
    sc, t = cols["step_count"].values, cols["test_time_second"].values
    ends = np.append(np.flatnonzero(np.diff(sc) != 0), len(sc) - 1)
    q = (cols["charge_capacity_ampere_hour"] - cols["discharge_capacity_ampere_hour"]).values[ends]
    unseen = np.append(t[ends[:-1] + 1] - t[ends[:-1]], 0.0)  # the last row is the test's end
    i_max = np.abs(cols["current_ampere"].values).max()
    keep = q != 0
    return q[keep], (i_max * unseen / 3600.0)[keep]


def test_three_channels_three_cycles_match_the_simulator(tmp_path, macnet_sim):
    text = RECIPE.format(cycles=3)
    sim = macnet_sim(text, channels=3, speedup=1000)
    station = write_station(tmp_path, sim.resource, 3, text, speedup=1000)
    assert acquire(station=station, quiet=True) == 0
    for c in range(1, 4):
        path = tmp_path / f"ch{c}.h5"
        cols = read_cycling(path)
        q, bound = step_caps(cols)
        truth = np.array([h.sign * h.charge_ah for h in sim.channel(c).model.half_cycles()])
        assert len(truth) == 6 and len(q) == 6
        # never more than the truth; short of it by at most what passed unseen
        assert np.all(np.abs(q) <= np.abs(truth) * (1 + 1e-9))
        assert np.all(np.abs(truth) - np.abs(q) <= bound * (1 + 1e-6) + 1e-15), (q, truth, bound)
        # polled at the recording interval (10 s): typical spacing near it
        assert np.median(np.diff(cols["test_time_second"].values)) < 20.0
        seq = cols["vendor_record_id"].values
        assert np.array_equal(seq, np.arange(1, len(seq) + 1))
        # test time is the cycler's own TestTime: the last row is the test's end
        t = cols["test_time_second"].values
        assert np.all(np.diff(t) > 0)
        np.testing.assert_allclose(t[-1], sim.channel(c).records[-1][4], rtol=1e-9)
        assert cols["vendor_cycle_index"].max() == 3
        events = read_events(path)
        assert [e["kind"] for e in events].count("step_start") == 1 + 3 * 4
        assert "recipe complete" in [e["message"] for e in events]


def test_host_restart_resumes_numbering_and_notes_the_gap(tmp_path, macnet_sim):
    text = RECIPE.format(cycles=2)
    sim = macnet_sim(text, channels=2, speedup=1000)
    station = write_station(tmp_path, sim.resource, 2, text, speedup=1000)
    stop = threading.Event()
    th = threading.Thread(target=lambda: run_station(load_station(station), stop=stop))
    th.start()
    time.sleep(3.0)
    stop.set()
    th.join(30)
    first = {c: len(read_cycling(tmp_path / f"ch{c}.h5")) for c in (1, 2)}
    assert all(n > 0 for n in first.values())
    time.sleep(0.5)  # the host is away: ~500 simulated s of readings are never seen
    results = run_station(load_station(station))
    assert [r.status for r in results] == ["complete", "complete"], [r.message for r in results]
    for c in (1, 2):
        path = tmp_path / f"ch{c}.h5"
        cols = read_cycling(path)
        seq = cols["vendor_record_id"].values
        assert np.array_equal(seq, np.arange(1, len(seq) + 1)) and len(seq) > first[c]
        t = cols["test_time_second"].values
        assert np.all(np.diff(t) > 0)
        np.testing.assert_allclose(t[-1], sim.channel(c).records[-1][4], rtol=1e-9)
        gaps = [e for e in read_events(path) if e["kind"] == "gap"]
        # one gap names the restart; a loaded host may also miss readings while polling
        # (gaps of their own, named as such)
        restart = [g for g in gaps if "host restart" in g["message"]]
        assert len(restart) == 1
        assert all("not recoverable" in g["message"] for g in gaps)


def test_unmappable_recipe_is_refused_before_start(tmp_path, macnet_sim):
    text = RECIPE.format(cycles=2)
    sim = macnet_sim(text, channels=1, speedup=1000)
    bad = text.replace(
        "        - rest: {duration: 2 min}\n",
        "        - rest: {duration: 2 min}\n"
        "        - eis: {f_start: 1 MHz, f_stop: 1 Hz, amplitude: 10 mV}\n",
        1,
    )
    station = write_station(tmp_path, sim.resource, 1, bad)
    with pytest.raises(InputError, match=r"steps\[1\]\.loop\.steps\[2\]\.eis"):
        acquire(station=station, quiet=True)
    assert not (tmp_path / "ch1.h5").exists()
    assert sim.channel(1).test_id == 0


def test_alarm_and_refusal_end_the_channel(tmp_path, macnet_sim):
    text = RECIPE.format(cycles=2)
    sim = macnet_sim(text, channels=2, speedup=1000, faults=("alarm:channel=1,at=2000",
                                                              "refuse:channel=2"))  # fmt: skip
    station = write_station(tmp_path, sim.resource, 2, text, speedup=1000)
    results = run_station(load_station(station))
    assert results[0].status == "alarm" and "Problem" in results[0].message
    assert results[1].status in ("error", "failed") and "refused" in results[1].message
    kinds = [e["kind"] for e in read_events(tmp_path / "ch1.h5")]
    assert "alarm" in kinds
    t = read_cycling(tmp_path / "ch1.h5")["test_time_second"].values
    assert t[-1] == pytest.approx(2000, abs=15)


def test_dropped_links_are_rejoined_and_the_outages_noted(tmp_path, macnet_sim):
    text = RECIPE.format(cycles=1)
    sim = macnet_sim(text, channels=1, speedup=1000, faults=("drop:after=60",))
    station = write_station(tmp_path, sim.resource, 1, text, speedup=1000)
    (result,) = run_station(load_station(station))
    assert result.status == "complete", result.message
    path = tmp_path / "ch1.h5"
    kinds = [e["kind"] for e in read_events(path)]
    assert kinds.count("disconnect") >= 2 and kinds.count("resume") >= 2
    seq = read_cycling(path)["vendor_record_id"].values
    assert np.array_equal(seq, np.arange(1, len(seq) + 1))
    # every outage longer than three poll intervals is in the file as a gap
    t = read_cycling(path)["test_time_second"].values
    gaps = [e for e in read_events(path) if e["kind"] == "gap"]
    assert len(gaps) == int(np.sum(np.diff(t) > 30.0))


def test_link_lost_for_good_ends_disconnected_not_polling_a_stale_reading(tmp_path, macnet_sim):
    """Every reply dropped from some moment on: the poller thread dies with the link and
    every reconnect fails at its first request. The runner once went on reading the last
    reading (``working``) from memory forever; it must end ``disconnected``."""
    from cyclerflow.drivers.maccor_macnet import MaccorChannel

    from .cycler_helpers import cell_recipe, run_channel

    text = RECIPE.format(cycles=1)
    sim = macnet_sim(text, channels=1, speedup=1000)
    ch = MaccorChannel(sim.resource, channel=1, procedure=PROC, timeout=1.0)
    ch.connect()
    got = {}
    th = threading.Thread(
        target=lambda: got.update(
            res=run_channel(ch, tmp_path / "ch1.h5", cell_recipe(text), 0.05)
        ),
        daemon=True,
    )
    th.start()
    time.sleep(1.0)  # ~1000 simulated s into the ~1 h test
    sim.faults.drop_after = 1  # every connection closes at its first reply from now on
    th.join(30)
    assert not th.is_alive(), "the runner still follows a channel it cannot reach"
    assert got["res"].status == "disconnected", got["res"].message
    assert sim.channel(1).state == "working"  # the cycler goes on by itself
