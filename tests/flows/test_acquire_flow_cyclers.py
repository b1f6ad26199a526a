"""acquire_station with commercial cycler channels mixed with an SMU channel: the cycler
runs the recipe as its own schedule, the flow downloads its records into the cell file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.flows

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "recipes"
SPEEDUP = 2000


def _station(tmp: Path, smu: str, neware: str) -> Path:
    from cyclerflow.flows.demo import CYCLING_RECIPE  # six 2C cycles: ~11 s at 2000x

    shutil.copy(FIXTURES / "cell-lipon.yaml", tmp / "cell.yaml")
    (tmp / "recipe.yaml").write_text(CYCLING_RECIPE)
    dead = "TCPIP0::127.0.0.1::9::SOCKET"  # the discard port: nothing listens
    lines = [f"speedup: {SPEEDUP}", "flush_interval: 0.2 s", "channels:"]
    common = "cell: cell.yaml, recipe: recipe.yaml"
    lines.append(
        f'  - {{name: smu, driver: keithley2450, resource: "{smu}", {common}, out: smu.h5}}'
    )
    for c in (1, 2):
        lines.append(
            f'  - {{name: nw{c}, driver: neware-bts, resource: "{neware}", {common}, '
            f"out: nw{c}.h5, options: {{unit: 1, channel: {c}, stepdir: {tmp}}}}}"
        )
    lines.append(
        f'  - {{name: nwdead, driver: neware-bts, resource: "{dead}", {common}, out: dead.h5}}'
    )
    path = tmp / "station.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_station_flow_runs_cycler_channels_with_an_smu(prefect_harness, tmp_path):
    from cyclerflow.drivers.sim import start_simulator
    from cyclerflow.drivers.sim.neware_bts import NewareSim
    from cyclerflow.flows.acquire import acquire_station_flow
    from cyclerflow.store import read_cycling, read_events, read_metadata

    smu, _ = start_simulator("keithley2450", port=0, speedup=SPEEDUP)
    sim = NewareSim(channels=2, speedup=SPEEDUP).start()
    try:
        station = _station(tmp_path, smu.resource, sim.resource)
        data = acquire_station_flow(str(station), reanalyze_every_s=None)
        sim_records = {c: list(sim.channel(1, c).records) for c in (1, 2)}
    finally:
        sim.stop()
        smu.stop()
    assert data["smu"]["status"] == "complete" and data["smu"]["cycles"] >= 6
    assert data["nwdead"]["status"] == "disconnected"
    assert "instrument check failed" in data["nwdead"]["message"]
    assert not (tmp_path / "dead.h5").exists()
    for c in (1, 2):
        out = tmp_path / f"nw{c}.h5"
        assert data[f"nw{c}"]["status"] == "complete", data[f"nw{c}"]
        assert data["_analyses"][str(out)] == "ok"
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
