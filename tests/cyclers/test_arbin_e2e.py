"""End to end: `acquire --station` against the simulated Arbin CTI server at 1000x."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from cyclerflow.acquire.cli import acquire
from cyclerflow.acquire.recipe import loads_recipe
from cyclerflow.errors import InputError
from cyclerflow.store import read_events

from .cycler_helpers import CELL, RECIPE, with_eis_step

SCHEDULE = "cyclerflow-e2e.sdx"
NOMINAL_AH = 15e-6  # the default simulated cell (cell-lipon.yaml's nominal capacity)


@pytest.fixture
def arbin_sim():
    from cyclerflow.drivers.sim.arbin_cti import ArbinSim

    sims = []

    def make(recipe_text: str, **kw):
        from cyclerflow.drivers.sim.arbin_cti import schedule_from_recipe

        recipe = loads_recipe(recipe_text, nominal_capacity_ah=NOMINAL_AH)
        s = ArbinSim(schedules={SCHEDULE: schedule_from_recipe(recipe)}, **kw).start()
        sims.append(s)
        return s

    yield make
    for s in sims:
        s.stop()


def write_station(tmp, resource: str, n: int, recipe_text: str, poll: str = "0.01 s"):
    (tmp / "recipe.yaml").write_text(recipe_text)
    (tmp / "cell.yaml").write_text(CELL.read_text())
    lines = ["speedup: 1000", f"flush_interval: {poll}", "channels:"]
    for c in range(1, n + 1):
        lines.append(
            f'  - {{name: ch{c}, driver: arbin-cti, resource: "{resource}", cell: cell.yaml, '
            f"recipe: recipe.yaml, out: ch{c}.h5, "
            f"options: {{channel: {c}, schedule: {SCHEDULE}}}}}"
        )
    path = tmp / "station.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _steps(path):
    with h5py.File(path, "r") as f:
        c = {k: f["cycling"][k][:] for k in f["cycling"]}
    ends = np.append(np.flatnonzero(np.diff(c["step_count"]) != 0), len(c["step_count"]) - 1)
    return c, ends


def test_four_channels_match_the_simulator_within_one_poll(tmp_path, arbin_sim):
    text = RECIPE.format(cycles=3)
    sim = arbin_sim(text, channels=4, speedup=1000)
    assert acquire(station=write_station(tmp_path, sim.resource, 4, text), quiet=True) == 0
    for c in range(1, 5):
        path = tmp_path / f"ch{c}.h5"
        cols, ends = _steps(path)
        q = cols["charge_capacity_ampere_hour"] - cols["discharge_capacity_ampere_hour"]
        halves = [k for k in ends if abs(q[k]) > 1e-9]
        truth = np.array([h.sign * h.charge_ah for h in sim.channel(c).model.half_cycles()])
        assert len(truth) == 6 and len(halves) == 6
        # polling sees each step up to its last reading: short by at most I x (time from
        # that reading to the step's end), here bounded by the largest gap between readings
        t = cols["vendor_step_time_second"]
        end_t = np.array([r[3] for r in sim.channel(c).records if abs(r[7]) > 0])
        got = q[halves]
        assert np.all(np.abs(got) <= np.abs(truth) * (1 + 1e-9))
        tail_s = [_step_end(sim, c, k, cols) - t[k] for k in halves]
        i = np.abs(cols["current_ampere"][halves])
        missed = i * np.array(tail_s) / 3600.0
        np.testing.assert_allclose(np.abs(truth) - np.abs(got), missed, rtol=0.05, atol=1e-12)
        # the channel's own test time is kept: the file ends where the simulator's test did
        tt = cols["test_time_second"]
        assert np.all(np.diff(tt) >= 0)
        np.testing.assert_allclose(tt[-1], sim.channel(c).records[-1][4], rtol=1e-9)
        seq = cols["vendor_record_id"]
        assert np.array_equal(seq, np.arange(1, len(seq) + 1))
        assert cols["vendor_cycle_index"].max() == 3
        assert "recipe complete" in [e["message"] for e in read_events(path)]
        assert len(end_t) >= 6


def _step_end(sim, c, k, cols) -> float:
    """The simulator's own step time at the end of the file row ``k``'s step."""
    step, cyc = int(cols["vendor_step_index"][k]), int(cols["vendor_cycle_index"][k])
    return max(r[3] for r in sim.channel(c).records if r[1] == step and r[2] == cyc)


def test_eis_step_is_refused_before_anything_starts(tmp_path, arbin_sim):
    text = RECIPE.format(cycles=2)
    sim = arbin_sim(text, channels=1, speedup=1000)
    bad = with_eis_step(text)
    station = write_station(tmp_path, sim.resource, 1, bad)
    with pytest.raises(InputError, match=r"steps\[1\]\.loop\.steps\[2\]\.eis.*Arbin schedule"):
        acquire(station=station, quiet=True)
    assert not (tmp_path / "ch1.h5").exists()
    assert sim.channel(1).test_id == 0 and sim.assigned == {}
