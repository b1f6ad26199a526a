"""acquire_station under the test harness: a cancelled run leaves the output off and the file readable."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.flows

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "recipes"

RECIPE = """\
name: flow-cancel-test
limits: {voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA}
sample_interval: 5 s
steps:
  - rest: {duration: 30 s, record: {every: 5 s}}
  - loop:
      repeat: 1000
      steps:
        - cc_charge: {current: 30 uA, until: {voltage: 4.2 V}, record: {every: 5 s}}
        - cc_discharge: {current: 30 uA, until: {voltage: 3.0 V}, record: {every: 5 s}}
"""
SPEEDUP = 600


def _running_flow_run(name: str, timeout_s: float = 60):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    t0 = time.monotonic()
    with get_client(sync_client=True) as client:
        while time.monotonic() - t0 < timeout_s:
            runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[name])))
            running = [r for r in runs if r.state is not None and r.state.is_running()]
            if running:
                return running[0]
            time.sleep(0.2)
    raise AssertionError(f"no running {name} flow run after {timeout_s} s")


def test_cancelled_acquisition_output_off_file_readable(prefect_harness, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    from cyclerflow.drivers.sim import start_simulator
    from cyclerflow.flows.acquire import acquire_station_flow
    from cyclerflow.store import read_cycling, read_events
    from cyclerflow.store.recovery import needs_recovery
    from cyclerflow.store.writer import live_writer_pid

    server, port = start_simulator("keithley2450", port=0, speedup=SPEEDUP)
    try:
        shutil.copy(FIXTURES / "cell-lipon.yaml", tmp_path / "cell.yaml")
        (tmp_path / "recipe.yaml").write_text(RECIPE)
        (tmp_path / "station.yaml").write_text(
            f"speedup: {SPEEDUP}\nflush_interval: 0.2 s\nchannels:\n"
            f'  - {{name: ch1, driver: keithley2450, resource: "{server.resource}", cell: cell.yaml, recipe: recipe.yaml, out: ch1.h5}}\n'
        )
        out = tmp_path / "ch1.h5"
        box: dict = {}
        th = threading.Thread(
            target=lambda: box.update(
                state=acquire_station_flow(
                    str(tmp_path / "station.yaml"), reanalyze_every_s=2.0, return_state=True
                )
            ),
            daemon=True,
        )
        th.start()
        run = _running_flow_run("acquire-station")
        # wait until the live file has been re-analysed while it is written (a full cycle)
        results = tmp_path / "ch1.results.nc"
        t0 = time.monotonic()
        while not results.exists() and time.monotonic() - t0 < 90 and th.is_alive():
            time.sleep(0.25)
        assert results.exists(), "the live cell was not re-analysed while it ran"
        assert server.state["smu"]["output"] is True and live_writer_pid(out) is not None
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(run.id, Cancelling(message="test cancels"), force=True)
        th.join(timeout=60)
        assert not th.is_alive(), "the flow did not stop after cancellation"
        state = box["state"]
        assert state.is_cancelled(), state
        assert server.state["smu"]["output"] is False  # the instrument output is off
        assert not needs_recovery(out) and live_writer_pid(out) is None  # closed cleanly
        ds = read_cycling(out)
        assert ds.sizes["sample"] > 10
        events = read_events(out)
        assert any("output off" in e["message"] for e in events)
        data = state.result(raise_on_failure=False)
        assert data["ch1"]["status"] == "stopped"
        with get_client(sync_client=True) as client:
            assert client.read_flow_run(run.id).state.is_cancelled()
    finally:
        server.stop()


def test_station_runs_to_the_end_and_skips_a_dead_instrument(prefect_harness, tmp_path):
    """One channel completes and is analysed at the end; one whose instrument does not
    answer is reported 'disconnected' without being started."""
    from cyclerflow.drivers.sim import start_simulator
    from cyclerflow.flows.acquire import acquire_station_flow
    from cyclerflow.flows.demo import CYCLING_RECIPE  # six 2C cycles: ~11 s at 2000x

    server, _ = start_simulator("keithley2450", port=0, speedup=2000)
    try:
        shutil.copy(FIXTURES / "cell-lipon.yaml", tmp_path / "cell.yaml")
        (tmp_path / "recipe.yaml").write_text(CYCLING_RECIPE)
        dead = "TCPIP0::127.0.0.1::9::SOCKET"  # the discard port: nothing listens
        (tmp_path / "station.yaml").write_text(
            "speedup: 2000\nflush_interval: 0.2 s\nchannels:\n"
            f'  - {{name: ok, driver: keithley2450, resource: "{server.resource}", cell: cell.yaml, recipe: recipe.yaml, out: ok.h5}}\n'
            f'  - {{name: dead, driver: keithley2450, resource: "{dead}", cell: cell.yaml, recipe: recipe.yaml, out: dead.h5}}\n'
        )
        data = acquire_station_flow(str(tmp_path / "station.yaml"), reanalyze_every_s=None)
    finally:
        server.stop()
    assert data["ok"]["status"] == "complete" and data["ok"]["cycles"] >= 6
    assert data["dead"]["status"] == "disconnected"
    assert "instrument check failed" in data["dead"]["message"]
    assert not (tmp_path / "dead.h5").exists()
    assert data["_analyses"] == {str(tmp_path / "ok.h5"): "ok"}
