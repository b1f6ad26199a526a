"""End to end: `acquire --station` against the simulated BTS server at 1000x."""

from __future__ import annotations

import threading
import time

import h5py
import numpy as np
import pytest

from cyclerflow.acquire.cli import acquire
from cyclerflow.acquire.station import load_station, run_station
from cyclerflow.errors import InputError
from cyclerflow.store import read_cycling, read_events

from .cycler_helpers import RECIPE, with_eis_step, write_station


def _half_caps(path):
    """Per half-cycle charge from the file's vendor capacity columns (last value per step)."""
    with h5py.File(path, "r") as f:
        c = {k: f["cycling"][k][:] for k in f["cycling"]}
    ends = np.flatnonzero(np.diff(c["step_count"]) != 0)
    ends = np.append(ends, len(c["step_count"]) - 1)
    out = []
    for k in ends:
        q = c["charge_capacity_ampere_hour"][k] - c["discharge_capacity_ampere_hour"][k]
        if q:
            out.append(q)
    return np.array(out), c


def test_four_channels_five_cycles_match_the_simulator(tmp_path, neware_sim):
    sim = neware_sim(channels=4, speedup=1000)
    station = write_station(tmp_path, sim.resource, 4, RECIPE.format(cycles=5), speedup=1000)
    assert acquire(station=station, quiet=True) == 0
    for c in range(1, 5):
        path = tmp_path / f"ch{c}.h5"
        q, cols = _half_caps(path)
        truth = np.array([h.sign * h.charge_ah for h in sim.channel(1, c).model.half_cycles()])
        assert len(truth) == 10 and len(q) == 10
        np.testing.assert_allclose(q, truth, rtol=1e-6)
        # the file's own integral of current over time agrees with the simulator too
        t, i = cols["test_time_second"], cols["current_ampere"]
        sc = cols["step_count"]
        integ = [
            np.trapezoid(i[sc == s], t[sc == s]) / 3600 for s in np.unique(sc) if i[sc == s].any()
        ]
        np.testing.assert_allclose(integ, truth, rtol=1e-6)
        seq = cols["vendor_record_id"]
        assert np.array_equal(seq, np.arange(1, len(seq) + 1))
        assert len(seq) == len(sim.channel(1, c).records)
        assert cols["vendor_cycle_index"].max() == 5
        kinds = [e["kind"] for e in read_events(path)]
        assert kinds.count("step_start") == 1 + 5 * 4
        assert "recipe complete" in [e["message"] for e in read_events(path)]


def test_host_killed_mid_run_resumes_without_gap_or_duplicate(tmp_path, neware_sim):
    sim = neware_sim(channels=2, speedup=1000)
    station = write_station(tmp_path, sim.resource, 2, RECIPE.format(cycles=3), speedup=1000)
    stop = threading.Event()
    plan = load_station(station)
    th = threading.Thread(target=lambda: run_station(plan, stop=stop))
    th.start()
    time.sleep(4.0)  # part way (~4000 simulated s of ~11,000)
    stop.set()
    th.join(30)
    first = {c: len(read_cycling(tmp_path / f"ch{c}.h5")["vendor_record_id"]) for c in (1, 2)}
    assert all(0 < n for n in first.values())
    assert all(n < len(sim.channel(1, c).records) + 2000 for c, n in first.items())
    results = run_station(load_station(station))
    assert [r.status for r in results] == ["complete", "complete"]
    for c in (1, 2):
        path = tmp_path / f"ch{c}.h5"
        seq = read_cycling(path)["vendor_record_id"].values
        assert np.array_equal(seq, np.arange(1, len(sim.channel(1, c).records) + 1))
        t = read_cycling(path)["test_time_second"].values
        assert np.all(np.diff(t) >= 0)
        np.testing.assert_allclose(t[-1], sim.channel(1, c).records[-1][4], rtol=1e-9)
        kinds = [e["kind"] for e in read_events(path)]
        assert "resume" in kinds


def test_eis_step_is_refused_before_anything_starts(tmp_path, neware_sim):
    sim = neware_sim(channels=1, speedup=1000)
    text = with_eis_step(RECIPE.format(cycles=2))
    station = write_station(tmp_path, sim.resource, 1, text)
    with pytest.raises(InputError, match=r"steps\[1\]\.loop\.steps\[2\]\.eis"):
        acquire(station=station, quiet=True)
    assert not (tmp_path / "ch1.h5").exists()
    assert sim.channel(1, 1).state == "finish" and sim.channel(1, 1).test_id == 0


def test_station_mixes_a_cycler_channel_and_an_smu_channel(tmp_path, neware_sim):
    from cyclerflow.drivers.sim import start_simulator

    nw = neware_sim(channels=1, speedup=1000)
    smu, _ = start_simulator("keithley2450", speedup=1000)
    try:
        station = write_station(tmp_path, nw.resource, 1, RECIPE.format(cycles=1), speedup=1000)
        text = station.read_text() + (
            f'  - {{name: smu, driver: keithley2450, resource: "{smu.resource}", '
            "cell: cell.yaml, recipe: recipe.yaml, out: smu.h5}\n"
        )
        station.write_text(text)
        said: list[str] = []
        results = run_station(load_station(station), announce=said.append)
    finally:
        smu.stop()
    assert [r.status for r in results] == ["complete", "complete"], [r.message for r in results]
    # at start, per channel: which limits the instrument holds and which only the host
    assert sorted(s.split(":")[0] for s in said) == ["ch1", "smu"]
    (cycler,) = [s for s in said if s.startswith("ch1: ")]
    assert "limits held by the instrument: every step's end conditions" in cycler
    assert "the safety window (voltage" in cycler and "written into the schedule" in cycler
    nw_cols = read_cycling(tmp_path / "ch1.h5")
    smu_cols = read_cycling(tmp_path / "smu.h5")
    assert "vendor_record_id" in nw_cols and "vendor_record_id" not in smu_cols
    for cols in (nw_cols, smu_cols):  # same columns and units where they overlap
        assert cols["current_ampere"].values.max() > 0 > cols["current_ampere"].values.min()
