"""The engine against the in-process fake cell (exact model): capacities, recording,
safety, faults, resume, EIS, temperature series, GITT."""

from __future__ import annotations

import numpy as np
import pytest
from acquire_support import half_cycles_from_file, run_fake, step_charges

from cyclerflow.acquire.instrument import Sample
from cyclerflow.acquire.progress import parse_fields
from cyclerflow.acquire.recipe import loads_recipe
from cyclerflow.acquire.safety import check_charge_voltage_drop, check_sample, check_step_time
from cyclerflow.store import read_cycling, read_events, read_protocol, read_spectra

CYCLES = """
name: cycles
limits: {voltage_max: 4.3 V, voltage_min: 3.2 V, current_max: 100 uA}
sample_interval: 10 s
record: {every: 30 s}
steps:
  - rest: {duration: 2 min}
  - loop:
      repeat: 3
      steps:
        - cc_charge: {current: 2C, until: {voltage: 4.1 V}}
        - rest: {duration: 1 min}
        - cc_discharge: {current: 2C, until: {voltage: 3.5 V}}
        - rest: {duration: 1 min}
"""


def _events(path, kind=None):
    ev = read_events(path)
    return [e for e in ev if kind is None or e["kind"] == kind]


def test_cycles_capacities_match_the_model(tmp_path):
    out = tmp_path / "c.h5"
    run = run_fake(out, CYCLES)
    assert run.result.status == "complete", run.result.message
    assert not run.channel.output_on
    ds = read_cycling(out)
    assert sorted(np.unique(ds["cycle_count"].values)) == [1, 2, 3]
    assert np.all(np.diff(ds["test_time_second"].values) >= 0)
    assert np.all(np.diff(ds["step_count"].values) >= 0)
    truth = run.channel.cell.halves
    got = half_cycles_from_file(ds)
    assert len(got) == len(truth) == 6
    for (s_file, q_file), (s_true, q_true) in zip(got, truth, strict=True):
        assert s_file == s_true
        assert q_file == pytest.approx(q_true, rel=1e-6)
    # each charge stops at the voltage end condition
    starts = _events(out, "step_start")
    ends = _events(out, "step_end")
    assert len(starts) == len(ends) == 1 + 3 * 4
    assert {parse_fields(e["message"])["reason"] for e in ends if "cc_" in e["message"]} == {
        "voltage"
    }
    assert read_protocol(out) == CYCLES
    assert _events(out, "note")[-1]["message"] == "recipe complete"


def test_recording_rules_every_and_dv(tmp_path):
    text = """
name: rec
limits: {voltage_max: 4.3 V, voltage_min: 3.2 V, current_max: 100 uA}
sample_interval: 1 s
steps:
  - rest: {duration: 100 s, record: {every: 10 s}}
  - cc_charge: {current: 1C, until: {time: 600 s}, record: {every: 100 s, dv: 2 mV}}
"""
    out = tmp_path / "r.h5"
    run = run_fake(out, text)
    assert run.result.status == "complete"
    ds = read_cycling(out)
    t, v, sc = ds["test_time_second"].values, ds["voltage_volt"].values, ds["step_count"].values
    rest_t = t[sc == 1]
    assert 10 <= len(rest_t) <= 12  # first + every 10 s + last
    assert np.all(np.diff(rest_t)[:-1] > 9.0)
    cc_t, cc_v = t[sc == 2], v[sc == 2]
    # 1C on 15 µAh with 0.9 V per full soc: 0.9 V / 3600 s -> 2 mV every 8 s
    d_v, d_t = np.abs(np.diff(cc_v)), np.diff(cc_t)
    assert np.all((d_v >= 2e-3 - 1e-9) | (d_t >= 99) | (np.arange(len(d_t)) == len(d_t) - 1))
    assert 60 <= len(cc_t) <= 90  # far fewer than the 600 polls
    assert run.result.samples_read > 2 * ds.sizes["sample"]  # polled more often than recorded


def test_cccv_tapers_to_the_current_limit(tmp_path):
    text = """
name: cccv
limits: {voltage_max: 4.3 V, voltage_min: 3.2 V, current_max: 100 uA}
sample_interval: 5 s
steps:
  - cccv: {current: 1C, voltage: 4.0 V, until: {current: C/20}}
"""
    out = tmp_path / "cv.h5"
    run = run_fake(out, text)
    assert run.result.status == "complete"
    ds = read_cycling(out)
    i, v = ds["current_ampere"].values, ds["voltage_volt"].values
    assert i[0] == pytest.approx(15e-6)
    assert abs(i[-1]) <= 15e-6 / 20 * 1.0001
    assert v[-1] == pytest.approx(4.0, abs=1e-9)
    assert parse_fields(_events(out, "step_end")[-1]["message"])["reason"] == "current"
    assert step_charges(ds)[1] == pytest.approx(run.channel.cell.true_charge_ah, rel=2e-3)


def test_soft_short_is_a_safety_stop_within_one_sample(tmp_path):
    text = CYCLES.replace(
        "current_max: 100 uA}", "current_max: 100 uA, charge_voltage_drop: 20 mV}"
    )
    out = tmp_path / "s.h5"
    short_at = 400.0  # simulated s: during the first charge

    def setup(ch, clock):
        ch.short_at = short_at
        ch.short_ohm = 20000.0

    run = run_fake(out, text, setup=setup)
    assert run.result.status == "safety_stop"
    assert "soft short" in run.result.message or "voltage_min" in run.result.message
    assert not run.channel.output_on
    ev = _events(out, "safety_stop")
    assert len(ev) == 1 and ev[0]["message"] == run.result.message
    reads = np.asarray(run.channel.read_times)
    assert (reads >= short_at).sum() == 1  # stopped at the first sample after the short
    ds = read_cycling(out)
    v = ds["voltage_volt"].values
    assert v[-2] - v[-1] > 0.02  # the breaching sample is the last row
    notes = [e["message"] for e in _events(out, "note")]
    assert "recipe complete" not in notes


def test_safety_checks_are_pure_functions():
    lim = loads_recipe(CYCLES, nominal_capacity_ah=15e-6).limits
    assert check_sample(lim, Sample(0, 4.0, 10e-6)) is None
    assert "voltage_max" in check_sample(lim, Sample(0, 4.31, 10e-6))
    assert "voltage_min" in check_sample(lim, Sample(0, 3.1, 0.0))
    assert "current_max" in check_sample(lim, Sample(0, 4.0, -150e-6))
    assert "invalid reading" in check_sample(lim, Sample(0, float("nan"), 0.0))
    assert check_step_time(lim, 1e9) is None  # no step_time_max set
    lim2 = lim.model_copy(
        update={"temperature_max": 330.0, "step_time_max": 60.0, "charge_voltage_drop": 0.01}
    )
    assert "temperature_max" in check_sample(lim2, Sample(0, 4.0, 0.0, 340.0))
    assert "step_time_max" in check_step_time(lim2, 61.0)
    assert check_charge_voltage_drop(lim2, 4.0, 4.005) is None
    assert "soft short" in check_charge_voltage_drop(lim2, 3.98, 4.0)


def test_lost_link_is_restored_and_the_step_goes_on(tmp_path):
    out = tmp_path / "d.h5"

    def setup(ch, clock):
        ch.drop_at = 1000.0  # simulated s, inside the first charge

    run = run_fake(out, CYCLES, setup=setup)
    assert run.result.status == "complete", run.result.message
    kinds = [e["kind"] for e in _events(out)]
    assert "disconnect" in kinds
    assert any(e["message"].startswith("reconnected after") for e in _events(out, "note"))
    assert run.channel.connects == 2
    got = half_cycles_from_file(read_cycling(out))
    for (_, q_file), (_, q_true) in zip(got, run.channel.cell.halves, strict=True):
        assert q_file == pytest.approx(q_true, rel=2e-3)


def test_lost_link_not_restored_stops_safely(tmp_path):
    out = tmp_path / "g.h5"

    def setup(ch, clock):
        ch.drop_at = 1000.0
        ch.refuse_reconnect = True

    run = run_fake(out, CYCLES, setup=setup)
    assert run.result.status == "disconnected"
    assert "not restored after 3 attempts" in run.result.message
    ev = _events(out, "disconnect")
    assert ev[0]["message"].startswith("link lost") and ev[-1]["message"].startswith("gave up")
    assert read_cycling(out).sizes["sample"] > 0  # the data so far is kept


def test_garbled_reply_is_a_clear_error_with_output_off(tmp_path):
    out = tmp_path / "x.h5"

    def setup(ch, clock):
        ch.garble_at = 800.0

    run = run_fake(out, CYCLES, setup=setup)
    assert run.result.status == "error"
    assert "garbled reply" in run.result.message
    assert not run.channel.output_on and run.channel.mode == "off"
    assert any("garbled reply" in e["message"] for e in _events(out, "note"))


def test_instrument_error_queue_is_surfaced(tmp_path):
    out = tmp_path / "e.h5"

    def setup(ch, clock):
        ch.error_at = 1000.0  # the next source command after this puts an error in the queue

    run = run_fake(out, CYCLES, setup=setup)
    assert run.result.status == "error"
    assert '-222,"Data out of range"' in run.result.message
    assert not run.channel.output_on
    assert any("-222" in e["message"] for e in _events(out, "note"))


def test_errors_left_from_before_the_run_are_recorded_not_fatal(tmp_path):
    out = tmp_path / "stale.h5"

    def setup(ch, clock):
        ch.error_queue.append('-113,"Undefined header"')

    run = run_fake(out, CYCLES, setup=setup)
    assert run.result.status == "complete"
    notes = [e["message"] for e in _events(out, "note")]
    assert notes[0].startswith("clock_rate=1 wall_s=")  # each run notes its clock first
    assert notes[1] == 'instrument error queue at start (cleared): -113,"Undefined header"'


def test_stop_then_resume_continues_cycles_and_keeps_data(tmp_path):
    out = tmp_path / "k.h5"
    first = run_fake(out, CYCLES, stop_at=3000.0)
    assert first.result.status == "stopped"
    assert not first.channel.output_on
    before = read_cycling(out)
    n0 = before.sizes["sample"]
    c0 = int(before["cycle_count"].values[-1])
    assert 0 < n0 and c0 < 3
    second = run_fake(out, CYCLES, channel=first.channel)
    assert second.result.status == "complete", second.result.message
    after = read_cycling(out)
    for col in ("test_time_second", "voltage_volt", "current_ampere", "cycle_count"):
        np.testing.assert_array_equal(
            after[col].values[:n0], before[col].values
        )  # nothing overwritten
    cyc = after["cycle_count"].values
    assert np.all(np.diff(cyc) >= 0) and cyc[-1] == 3 and cyc[n0] == c0
    assert np.all(np.diff(after["test_time_second"].values) >= 0)
    assert len(_events(out, "resume")) == 1
    # each step of the recipe ended exactly once over both runs
    ends = [parse_fields(e["message"]) for e in _events(out, "step_end")]
    assert len(ends) == 1 + 3 * 4
    assert len({e["pos"] for e in ends}) == len(ends)
    # the charge per half-cycle still matches the model (the interrupted step was continued)
    got = half_cycles_from_file(after)
    assert len(got) == 6
    for (_, q_file), (_, q_true) in zip(got, first.channel.cell.halves, strict=True):
        assert q_file == pytest.approx(q_true, rel=1e-6)


def test_eis_every_n_iterations(tmp_path):
    text = """
name: eis
limits: {voltage_max: 4.3 V, voltage_min: 3.2 V, current_max: 100 uA}
sample_interval: 10 s
steps:
  - loop:
      repeat: 4
      steps:
        - cc_charge: {current: 2C, until: {time: 5 min}}
        - cc_discharge: {current: 2C, until: {time: 5 min}}
        - eis: {every: 2, f_start: 100 kHz, f_stop: 1 Hz, points_per_decade: 5, amplitude: 10 mV}
"""
    out = tmp_path / "eis.h5"
    run = run_fake(out, text)
    assert run.result.status == "complete"
    spectra = read_spectra(out)
    assert [s.attrs["cycle_count"] for s in spectra] == [2, 4]
    assert spectra[0].sizes["frequency_hertz"] == 26
    assert spectra[0].attrs["amplitude"] == pytest.approx(0.01)
    assert (spectra[0]["imaginary_impedance_ohm"].values < 0).all()


def test_temperature_series_puts_the_temperature_in_each_spectrum(tmp_path):
    text = """
name: ts
limits: {voltage_max: 4.3 V, voltage_min: 3.2 V, current_max: 100 uA, temperature_max: 110 degC}
sample_interval: 10 s
steps:
  - temperature_series:
      setpoints: [0 degC, 50 degC, 100 degC]
      tolerance: 0.1 K
      stable_for: 5 min
      timeout: 2 h
      steps:
        - eis: {f_start: 1 MHz, f_stop: 10 Hz, points_per_decade: 4, amplitude: 5 mV}
"""
    out = tmp_path / "ts.h5"
    run = run_fake(out, text, temperature=True)
    assert run.result.status == "complete", run.result.message
    assert run.tc.setpoints == pytest.approx([273.15, 323.15, 373.15])
    spectra = read_spectra(out)
    temps = [s.attrs["temperature_kelvin"] for s in spectra]
    assert temps == pytest.approx([273.15, 323.15, 373.15], abs=0.1)
    # hotter -> lower electrolyte resistance (the fake's Arrhenius law)
    r_hf = [float(s["real_impedance_ohm"].values[0]) for s in spectra]
    assert r_hf[0] > r_hf[1] > r_hf[2]
    ds = read_cycling(out)
    assert np.isfinite(ds["temperature_kelvin"].values).all()
    ends = [parse_fields(e["message"]) for e in _events(out, "step_end")]
    assert [e["reason"] for e in ends if e["kind"] == "set_temperature"] == ["stable"] * 3


def test_temperature_series_without_controller_fails_before_output(tmp_path):
    text = """
name: ts
limits: {voltage_max: 4.3 V, voltage_min: 3.2 V, current_max: 100 uA}
steps:
  - temperature_series: {setpoints: [25 degC], steps: [{eis: {f_start: 1 kHz, f_stop: 1 Hz}}]}
"""
    run = run_fake(tmp_path / "n.h5", text)
    assert run.result.status == "error" and "temperature controller" in run.result.message
    assert not run.channel.output_on


def test_gitt_pulses_until_the_cut_off(tmp_path):
    text = """
name: gitt
limits: {voltage_max: 4.3 V, voltage_min: 3.2 V, current_max: 100 uA}
sample_interval: 10 s
steps:
  - gitt: {current: 1C, direction: charge, pulse: 5 min, rest: 10 min, until: {voltage: 4.0 V}}
"""
    out = tmp_path / "gitt.h5"
    run = run_fake(out, text)
    assert run.result.status == "complete"
    ends = [parse_fields(e["message"]) for e in _events(out, "step_end")]
    pulses = [e for e in ends if e.get("phase") == "pulse"]
    # soc 0.05 -> OCV 3.345 V; the cut-off (with I*R = 30 mV) is reached at soc ~0.69
    assert 7 <= len(pulses) <= 9
    assert pulses[-1]["reason"] == "voltage" and pulses[-1]["done"] == "1"
    for p in pulses[:-1]:
        assert 300 <= float(p["duration_s"]) <= 300 + 10
        assert float(p["q_ah"]) == pytest.approx(15e-6 * float(p["duration_s"]) / 3600, rel=1e-6)
    total = sum(float(p["q_ah"]) for p in pulses)
    assert total == pytest.approx(run.channel.cell.true_charge_ah, rel=1e-6)
    assert all(e["reason"] == "time" for e in ends if e.get("phase") == "rest")


def test_loop_until_discharge_capacity(tmp_path):
    text = CYCLES.replace("repeat: 3", "repeat: 50\n      until: {discharge_capacity: 100 uAh}")
    out = tmp_path / "u.h5"
    run = run_fake(out, text)
    assert run.result.status == "complete"
    assert sorted(np.unique(read_cycling(out)["cycle_count"].values)) == [1]
    assert any("end=discharge_capacity" in e["message"] for e in _events(out, "note"))


def test_positions_and_fields_round_trip():
    from cyclerflow.acquire.progress import format_fields, format_pos, parse_pos

    pos = ((1, 16), (0, 3), (2, 0))
    assert format_pos(pos) == "1:16/0:3/2"
    assert parse_pos(format_pos(pos)) == pos
    msg = format_fields(pos=format_pos(pos), kind="cc_charge", q_ah=1.25e-06, cycle=17)
    assert parse_fields(msg) == {
        "pos": "1:16/0:3/2",
        "kind": "cc_charge",
        "q_ah": "1.25e-06",
        "cycle": "17",
    }


def test_link_errors_are_told_apart_from_bad_replies():
    """By type, never by message text: a transport raises ConnectionLost for a lost link."""
    from cyclerflow.acquire.instrument import ConnectionLost
    from cyclerflow.acquire.link import InstrumentFault, is_connection_error
    from cyclerflow.errors import InstrumentError

    assert is_connection_error(ConnectionLost("gone"))
    assert is_connection_error(ConnectionResetError("reset by peer"))
    assert is_connection_error(TimeoutError("no reply"))
    assert is_connection_error(BrokenPipeError("broken pipe"))

    class SerialException(OSError):  # the name pyserial's I/O error has
        pass

    assert is_connection_error(SerialException("device reports readiness but no data"))
    # an InstrumentError that is not a ConnectionLost is a fault, whatever it says
    assert not is_connection_error(InstrumentError("k2450: ':READ?': connection lost"))
    assert not is_connection_error(
        InstrumentError("k2450: ':READ?': garbled reply b'\\x8f' (not ascii text)")
    )
    assert not is_connection_error(
        InstrumentError('k2450: instrument reported -222,"Data out of range"')
    )
    assert not is_connection_error(InstrumentFault("queue"))
    assert not is_connection_error(ValueError("could not convert string to float"))
    assert not is_connection_error(FileNotFoundError("no such file"))


def test_virtual_clock_stop_at():
    from cyclerflow.acquire.clock import VirtualClock

    moved = []
    c = VirtualClock(stop_at=100.0, on_advance=moved.append)
    assert c.sleep_until(40.0) and c.now() == 40.0
    assert not c.sleep_until(150.0) and c.now() == 100.0 and c.stop.is_set()
    assert moved == [40.0, 60.0]
