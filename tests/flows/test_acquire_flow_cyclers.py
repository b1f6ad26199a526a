"""acquire_station with commercial cycler channels mixed with an SMU channel: the cycler
runs the recipe as its own schedule, the flow downloads its records into the cell file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.flows

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "recipes"
#: the SMU channel runs host-driven (the host steps it): a modest speed-up keeps it on
#: time on a loaded machine; the cycler runs its schedule itself, at its own clock
SMU_SPEEDUP, CYCLER_SPEEDUP = 100, 2000

SMU_RECIPE = """\
name: flow-smu
limits: {voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA}
sample_interval: 5 s
steps:
  - rest: {duration: 1 min}
  - cc_charge: {current: 30 uA, until: {time: 4 min}}
  - rest: {duration: 1 min}
"""

#: three 2C cycles of the 15 uAh cell: ~3 h simulated, ~5 s at 2000x
CYCLER_RECIPE = """\
name: flow-cycler
limits: {voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA}
record: {every: 30 s}
steps:
  - rest: {duration: 5 min}
  - loop:
      repeat: 3
      steps:
        - cc_charge: {current: 2C, until: {voltage: 4.15 V}}
        - rest: {duration: 2 min}
        - cc_discharge: {current: 2C, until: {voltage: 3.6 V}}
        - rest: {duration: 2 min}
"""


def _station(tmp: Path, smu: str, neware: str) -> Path:
    shutil.copy(FIXTURES / "cell-lipon.yaml", tmp / "cell.yaml")
    (tmp / "smu.yaml").write_text(SMU_RECIPE)
    (tmp / "cycler.yaml").write_text(CYCLER_RECIPE)
    dead = "TCPIP0::127.0.0.1::9::SOCKET"  # the discard port: nothing listens
    lines = [f"speedup: {SMU_SPEEDUP}", "flush_interval: 0.2 s", "channels:"]
    cyc = "cell: cell.yaml, recipe: cycler.yaml"
    lines.append(
        f'  - {{name: smu, driver: keithley2450, resource: "{smu}", cell: cell.yaml, '
        "recipe: smu.yaml, out: smu.h5}"
    )
    for c in (1, 2):
        lines.append(
            f'  - {{name: nw{c}, driver: neware-bts, resource: "{neware}", {cyc}, '
            f"out: nw{c}.h5, options: {{unit: 1, channel: {c}, stepdir: {tmp}}}}}"
        )
    lines.append(
        f'  - {{name: nwdead, driver: neware-bts, resource: "{dead}", {cyc}, out: dead.h5}}'
    )
    path = tmp / "station.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_station_flow_runs_cycler_channels_with_an_smu(prefect_harness, tmp_path):
    from cyclerflow.drivers.sim import start_simulator
    from cyclerflow.drivers.sim.neware_bts import NewareSim
    from cyclerflow.flows.acquire import acquire_station_flow
    from cyclerflow.store import read_cycling, read_events, read_metadata

    smu, _ = start_simulator("keithley2450", port=0, speedup=SMU_SPEEDUP)
    sim = NewareSim(channels=2, speedup=CYCLER_SPEEDUP).start()
    try:
        station = _station(tmp_path, smu.resource, sim.resource)
        data = acquire_station_flow(str(station), reanalyze_every_s=None)
        sim_records = {c: list(sim.channel(1, c).records) for c in (1, 2)}
    finally:
        sim.stop()
        smu.stop()
    assert data["smu"]["status"] == "complete", data["smu"]
    assert data["nwdead"]["status"] == "disconnected"
    assert "instrument check failed" in data["nwdead"]["message"]
    assert not (tmp_path / "dead.h5").exists()
    for c in (1, 2):
        out = tmp_path / f"nw{c}.h5"
        assert data[f"nw{c}"]["status"] == "complete", data[f"nw{c}"]
        assert data["_analyses"][str(out)] == "ok"
        assert data[f"nw{c}"]["cycles"] == 3
        ds = read_cycling(out)
        seq = ds["vendor_record_id"].values
        # every record the cycler stored, once, in order
        assert np.array_equal(seq, np.arange(1, len(sim_records[c]) + 1))
        assert ds["voltage_volt"].values == pytest.approx([r[5] for r in sim_records[c]])
        assert set(np.unique(ds["vendor_step_type"].values)) == {0, 1, 2}  # rest, cc, dc
        meta = read_metadata(out)
        assert meta.extra["cycler_driver"] == "neware-bts"
        assert meta.extra["cycler_channel"].endswith(f"channel 27-1-1-{c}")
        assert read_events(out)[-1]["message"] == "recipe complete"


def test_a_stopped_cycler_task_is_rejoined_by_the_next_run(prefect_harness, tmp_path):
    """``channel_timeout_s`` makes a cycler task stop following (the cycler goes on);
    the next flow run rejoins the same test and completes the file: no gap, no duplicate."""
    from cyclerflow.drivers.sim.neware_bts import NewareSim
    from cyclerflow.flows.acquire import acquire_station_flow
    from cyclerflow.store import read_cycling, read_events

    sim = NewareSim(channels=1, speedup=CYCLER_SPEEDUP).start()
    try:
        shutil.copy(FIXTURES / "cell-lipon.yaml", tmp_path / "cell.yaml")
        (tmp_path / "cycler.yaml").write_text(CYCLER_RECIPE)
        station = tmp_path / "station.yaml"
        station.write_text(
            "flush_interval: 0.2 s\nchannels:\n"
            f'  - {{name: nw, driver: neware-bts, resource: "{sim.resource}", cell: cell.yaml, '
            f"recipe: cycler.yaml, out: nw.h5, options: {{channel: 1, stepdir: {tmp_path}}}}}\n"
        )
        first = acquire_station_flow(str(station), reanalyze_every_s=None, channel_timeout_s=1.0)
        assert first["nw"]["status"] == "stopped", first["nw"]
        assert sim.channel(1, 1).state == "working"  # the cycler went on
        n_first = len(read_cycling(tmp_path / "nw.h5"))
        second = acquire_station_flow(str(station), reanalyze_every_s=None)
        records = list(sim.channel(1, 1).records)
    finally:
        sim.stop()
    assert second["nw"]["status"] == "complete", second["nw"]
    seq = read_cycling(tmp_path / "nw.h5")["vendor_record_id"].values
    assert n_first < len(seq)  # the second run downloaded the rest
    assert np.array_equal(seq, np.arange(1, len(records) + 1))
    assert any(
        e["kind"] == "resume" and "rejoined" in e["message"]
        for e in read_events(tmp_path / "nw.h5")
    )
