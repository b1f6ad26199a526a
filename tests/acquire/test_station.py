"""Station files: validation before anything is switched on, isolated channel failures,
resume through the station, and the `acquire` command's exit codes."""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from cyclerflow.acquire.cli import acquire
from cyclerflow.acquire.engine import ChannelRunner
from cyclerflow.acquire.station import freeze_heap, load_station, run_station, unfreeze_heap
from cyclerflow.errors import InputError
from cyclerflow.store import read_cycling, read_events

SPEED = 20000.0

RECIPE = """
name: station-test
limits: {voltage_max: 4.3 V, voltage_min: 3.2 V, current_max: 100 uA}
sample_interval: 20 s
record: {every: 60 s}
steps:
  - rest: {duration: 2 min}
  - loop:
      repeat: 2
      steps:
        - cc_charge: {current: 2C, until: {voltage: 4.1 V}}
        - rest: {duration: 1 min}
        - cc_discharge: {current: 2C, until: {voltage: 3.5 V}}
        - rest: {duration: 1 min}
"""


def _setup(tmp_path: Path, channels: list[dict], **top) -> Path:
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    (tmp_path / "cell.yaml").write_text(
        "cell_id: C1\nactive_area_cm2: 0.25\nnominal_capacity_uah: 15\n"
    )
    (tmp_path / "data").mkdir(exist_ok=True)
    rows = []
    for k, ch in enumerate(channels):
        row = {
            "name": f"ch{k + 1}",
            "driver": "fake_channel",
            "resource": f"fake{k + 1}",
            "cell": "cell.yaml",
            "recipe": "recipe.yaml",
            "out": f"data/ch{k + 1}.h5",
            "options": {"speedup": SPEED},
        }
        opts = ch.pop("options", {})
        row.update(ch)
        row["options"].update(opts)
        rows.append(row)
    path = tmp_path / "station.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "speedup": SPEED,
                "reconnect": {"attempts": 2, "backoff": "0.01 s"},
                **top,
                "channels": rows,
            }
        )
    )
    return path


def test_one_failing_channel_does_not_stop_the_others(tmp_path):
    station = _setup(
        tmp_path,
        [
            {},
            {"options": {"garble_at": 1500.0}},
            {"options": {"refuse_connect": True}},
            {"options": {"drop_at": 1500.0, "refuse_reconnect": True}},
        ],
    )
    plan = load_station(station)
    results = run_station(plan)
    status = {r.name: r.status for r in results}
    assert status == {
        "ch1": "complete",
        "ch2": "error",
        "ch3": "disconnected",
        "ch4": "disconnected",
    }
    assert "garbled reply" in results[1].message
    assert "cannot connect" in results[2].message
    assert not (tmp_path / "data" / "ch3.h5").exists()  # never connected: no file
    ch1 = read_cycling(tmp_path / "data" / "ch1.h5")
    assert sorted(np.unique(ch1["cycle_count"].values)) == [1, 2]
    assert any(e["message"] == "recipe complete" for e in read_events(tmp_path / "data" / "ch1.h5"))
    ev4 = read_events(tmp_path / "data" / "ch4.h5")
    assert [e["kind"] for e in ev4 if e["kind"] == "disconnect"] == ["disconnect", "disconnect"]


def test_heap_is_frozen_while_channels_sample_and_released_after(tmp_path, monkeypatch):
    """No full garbage collection walks the whole heap while channels sample (it stops
    every channel at once); the station gives the objects back to the collector after."""
    assert gc.get_freeze_count() == 0
    freeze_heap()
    freeze_heap()  # nested (two stations at once)
    assert gc.get_freeze_count() > 0
    unfreeze_heap()
    assert gc.get_freeze_count() > 0  # the other station still runs
    unfreeze_heap()
    assert gc.get_freeze_count() == 0
    unfreeze_heap()  # an extra release is harmless
    assert gc.get_freeze_count() == 0

    seen = []
    original = ChannelRunner.run

    def run(self):
        seen.append(gc.get_freeze_count())
        return original(self)

    monkeypatch.setattr(ChannelRunner, "run", run)
    results = run_station(load_station(_setup(tmp_path, [{}, {}])))
    assert [r.status for r in results] == ["complete", "complete"]
    assert len(seen) == 2 and min(seen) > 0
    assert gc.get_freeze_count() == 0


def test_stop_flag_then_resume_through_the_station(tmp_path):
    station = _setup(tmp_path, [{}, {}])
    stop = threading.Event()
    files = [tmp_path / "data" / f"ch{k}.h5" for k in (1, 2)]

    def stop_once_both_started() -> None:
        # stop after a step is on disk in both files (not after a fixed time: start-up
        # takes longer on a loaded machine)
        while not stop.is_set():
            try:
                if all(any(e["kind"] == "step_end" for e in read_events(f)) for f in files):
                    stop.set()
            except Exception:
                pass  # not created yet
            time.sleep(0.01)

    watcher = threading.Thread(target=stop_once_both_started, daemon=True)
    watcher.start()
    first = run_station(load_station(station), stop=stop)
    stop.set()
    watcher.join()
    assert {r.status for r in first} == {"stopped"}
    n0 = {k: read_cycling(tmp_path / "data" / f"ch{k}.h5").sizes["sample"] for k in (1, 2)}
    plan = load_station(station)
    assert all(ch.state is not None and ch.state.resume is not None for ch in plan.channels)
    second = run_station(plan)
    assert {r.status for r in second} == {"complete"}
    for k in (1, 2):
        path = tmp_path / "data" / f"ch{k}.h5"
        ds = read_cycling(path)
        assert ds.sizes["sample"] > n0[k]
        cyc = ds["cycle_count"].values
        assert np.all(np.diff(cyc) >= 0) and cyc.max() == 2
        kinds = [e["kind"] for e in read_events(path)]
        assert kinds.count("resume") == 1
    # a third run has nothing to do
    third = run_station(load_station(station))
    assert [r.message for r in third] == ["already complete (nothing to do)"] * 2


def _files(tmp_path: Path) -> list[Path]:
    return sorted(p for p in tmp_path.rglob("*.h5*"))


@pytest.mark.parametrize(
    ("channels", "top", "message"),
    [
        ([{}, {"recipe": "missing.yaml"}], {}, "recipe file not found"),
        ([{}, {"cell": "missing.yaml"}], {}, "cell metadata file not found"),
        (
            [{}, {"driver": "no_such_driver"}],
            {},
            "channels[1].driver: unknown driver 'no_such_driver'",
        ),
        (
            [{}, {"out": "data/ch1.h5"}],
            {},
            "channels[1].out: 'data/ch1.h5' is also the output of channel 'ch1'",
        ),
        ([{}, {"name": "ch1"}], {}, "channels[1].name: 'ch1' is used by two channels"),
        ([{}, {"out": "nowhere/ch2.h5"}], {}, "channels[1].out: folder"),
        ([{}, {"out": "data/ch2.csv"}], {}, "channels[1].out: expected a .h5 file name"),
        ([{}, {"colour": "red"}], {}, "channels[1].colour: unknown key"),
        ([{}, {"resource": ""}], {}, "channels[1].resource: is required"),
        ([{}], {"speedup": -3}, "speedup: expected a number > 0"),
        ([{}], {"channel": []}, "channel: unknown key"),
        ([{}], {"reconnect": {"attempts": "many"}}, "reconnect.attempts: expected a whole number"),
    ],
)
def test_bad_station_files_fail_before_anything_runs(tmp_path, channels, top, message):
    station = _setup(tmp_path, channels, **top)
    with pytest.raises(InputError) as exc:
        load_station(station)
    assert message in str(exc.value), str(exc.value)
    assert _files(tmp_path) == []


def test_bad_recipe_in_a_station_names_file_and_step(tmp_path):
    station = _setup(tmp_path, [{}, {"recipe": "bad.yaml"}])
    (tmp_path / "bad.yaml").write_text(
        RECIPE.replace(
            "current: 2C, until: {voltage: 4.1 V}", "current: 2C, until: {voltage: 4.1 A}"
        )
    )
    with pytest.raises(InputError) as exc:
        load_station(station)
    text = str(exc.value)
    assert (
        "bad.yaml" in text
        and "steps[1].loop.steps[0].cc_charge.until.voltage: '4.1 A' is a current" in text
    )
    assert _files(tmp_path) == []


def test_station_needs_a_temperature_controller_for_a_temperature_series(tmp_path):
    station = _setup(tmp_path, [{"recipe": "ts.yaml"}])
    (tmp_path / "ts.yaml").write_text(
        "name: ts\nlimits: {voltage_max: 4.3 V, voltage_min: 3 V, current_max: 1 uA}\n"
        "steps: [{temperature_series: {setpoints: [25 degC], steps: [{eis: {f_start: 1 kHz, f_stop: 1 Hz}}]}}]\n"
    )
    with pytest.raises(
        InputError, match=r"channels\[0\]\.temperature: recipe .* sets temperatures"
    ):
        load_station(station)


def test_existing_file_with_another_recipe_is_not_overwritten(tmp_path):
    station = _setup(tmp_path, [{}])
    assert {r.status for r in run_station(load_station(station))} == {"complete"}
    before = (tmp_path / "data" / "ch1.h5").read_bytes()
    (tmp_path / "recipe.yaml").write_text(RECIPE.replace("repeat: 2", "repeat: 3"))
    with pytest.raises(InputError, match="different recipe"):
        load_station(station)
    assert (tmp_path / "data" / "ch1.h5").read_bytes() == before


def test_safety_stopped_file_needs_an_explicit_flag_to_resume(tmp_path):
    station = _setup(tmp_path, [{"options": {"short_at": 600.0}}])
    (tmp_path / "recipe.yaml").write_text(
        RECIPE.replace("current_max: 100 uA}", "current_max: 100 uA, charge_voltage_drop: 20 mV}")
    )
    res = run_station(load_station(station))
    assert res[0].status == "safety_stop"
    with pytest.raises(InputError, match="stopped on a safety limit"):
        load_station(station)
    plan = load_station(station, resume_after_safety_stop=True)
    assert plan.channels[0].state.resume is not None


def test_cli_exit_codes_and_single_channel_mode(tmp_path, capsys):
    _setup(tmp_path, [{}])
    out = tmp_path / "data" / "single.h5"
    code = acquire(
        None,
        "fake_channel",
        "fakeX",
        tmp_path / "recipe.yaml",
        tmp_path / "cell.yaml",
        out,
        option=[f"speedup={SPEED}"],
        speedup=SPEED,
        as_json=True,
        quiet=True,
    )
    assert code == 0 and out.exists()
    assert '"status": "complete"' in capsys.readouterr().out
    bad = _setup(tmp_path, [{"options": {"garble_at": 300.0}}])
    (tmp_path / "data" / "ch1.h5").unlink(missing_ok=True)
    assert acquire(bad, quiet=True) == 1
    with pytest.raises(InputError, match="missing --resource"):
        acquire(
            None,
            "fake_channel",
            None,
            tmp_path / "recipe.yaml",
            tmp_path / "cell.yaml",
            tmp_path / "data" / "z.h5",
        )
    with pytest.raises(InputError, match="--option 'speedup': expected KEY=VALUE"):
        acquire(
            None,
            "fake_channel",
            "r",
            tmp_path / "recipe.yaml",
            tmp_path / "cell.yaml",
            tmp_path / "data" / "z.h5",
            option=["speedup"],
        )
    assert not (tmp_path / "data" / "z.h5").exists()


def test_example_station_file_validates():
    fixtures = Path(__file__).resolve().parents[2] / "fixtures" / "recipes"
    plan = load_station(fixtures / "station.yaml")
    assert [(c.name, c.device.driver) for c in plan.channels] == [
        ("ch1", "keithley2450"),
        ("ch2", "palmsens"),
    ]
    assert plan.speedup == 100.0 and plan.reconnect.attempts == 5
    assert not list(fixtures.glob("*.h5"))  # validation writes nothing


def test_each_station_channel_checks_its_instruments_clock(tmp_path):
    """The station's speed-up is an override: a channel whose instrument reports another
    rate stops with both rates named; one reporting the same rate runs."""
    station = _setup(
        tmp_path, [{"options": {"clock_rate": SPEED}}, {"options": {"clock_rate": 50.0}}]
    )
    lines: list[str] = []
    ok, bad = run_station(load_station(station), announce=lines.append)
    assert ok.status == "complete", ok.message
    assert bad.status == "error"
    assert "--speedup 20000 disagrees" in bad.message and "50x real time" in bad.message
    assert any(
        line.startswith("ch1: clock 20000x real time (reported by the instrument)")
        for line in lines
    )


def test_a_station_without_speedup_runs_at_the_reported_rate(tmp_path):
    station = _setup(tmp_path, [{"options": {"clock_rate": SPEED}}])
    data = yaml.safe_load(station.read_text())
    del data["speedup"]
    station.write_text(yaml.safe_dump(data))
    plan = load_station(station)
    assert not plan.speedup_given
    t0 = time.monotonic()
    (res,) = run_station(plan)
    assert res.ok, res.message
    assert time.monotonic() - t0 < 30.0  # at 1x the recipe would take hours
