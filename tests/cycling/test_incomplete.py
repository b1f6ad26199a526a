"""Incomplete cycles: a cycle cut by the end of the record, a stop, a safety stop or an
unrecorded gap is flagged with its reason and kept out of fade, end of life and CE
statistics; with --count-gap-estimates a gap cycle counts with the engine's estimate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cyclerflow.cycling import analyze_cycling
from cyclerflow.errors import InputError

from .synth import make_cell

FADE = 0.02  # linear: retention of cycle k = 1 - 0.02 (k - 1), 80 % at cycle 11


def _cut_in_discharge(ds, cycle: int, fraction: float):
    """The record up to ``fraction`` of the way through ``cycle``'s discharge samples."""
    cc = ds["cycle_count"].values
    i = ds["current_ampere"].values
    idx = np.flatnonzero((cc == cycle) & (i < 0))
    return ds.isel(sample=slice(0, int(idx[0] + fraction * len(idx))))


def _end_of(ds, cycle: int):
    """The record up to the last sample of ``cycle`` (its closing rest included)."""
    cc = ds["cycle_count"].values
    return ds.isel(sample=slice(0, int(np.flatnonzero(cc == cycle)[-1]) + 1))


def _by_cycle(s):
    return {c["cycle"]: c for c in s["cycles"]}


@pytest.mark.parametrize("cycles_before", [2, 5])
def test_split_record_ending_mid_discharge_is_end_of_record(cycles_before):
    ds, tr, _ = make_cell(current_a=1e-6, n_cycles=14, fade_per_cycle=FADE, points=60)
    part = _cut_in_discharge(ds, cycles_before + 1, 0.5)
    s, pc = analyze_cycling(part)
    last = s["cycles"][-1]
    assert last["cycle"] == cycles_before + 1 and last["complete"] is False
    assert last["incomplete_reason"] == "end_of_record"
    assert last["capacity_retention"] is None and last["coulombic_efficiency"] is None
    assert s["incomplete_cycles"] == [
        {"cycle": cycles_before + 1, "reason": "end_of_record", "detail": last["incomplete_detail"]}
    ]
    assert s["n_complete_cycles"] == cycles_before
    # the same analysis as the record that stops after the last whole cycle
    whole, _ = analyze_cycling(_end_of(ds, cycles_before))
    assert s["cycles_to_80_percent"] is None and whole["cycles_to_80_percent"] is None
    assert s["fade_rate_per_cycle"] == whole["fade_rate_per_cycle"]
    assert s["ce_mean"] == whole["ce_mean"] and s["ce_cycles"] == whole["ce_cycles"]
    if cycles_before >= 3:
        assert s["fade_rate_per_cycle"] == pytest.approx(FADE, rel=1e-6)
    assert pc["complete"].values[-1] == 0
    assert str(pc["incomplete_reason"].values[-1]) == "end_of_record"


def test_record_ending_after_a_whole_discharge_is_complete():
    ds, _, _ = make_cell(current_a=1e-6, n_cycles=3, points=60)
    i = ds["current_ampere"].values
    end = int(np.flatnonzero(i < 0)[-1]) + 1  # stops right at the last discharge sample
    s, _ = analyze_cycling(ds.isel(sample=slice(0, end)))
    assert s["n_complete_cycles"] == 3 and s["incomplete_cycles"] == []


def test_stop_event_mid_discharge_is_stopped_and_leaves_fade_alone():
    """The Maccor case: a joined record whose first file stopped at 58 % of a discharge."""
    ds, tr, _ = make_cell(
        current_a=1e-6,
        n_cycles=10,
        fade_per_cycle=FADE,
        points=60,
        cut_short={"cycle": 6, "fraction": 0.58},
    )
    t = ds["test_time_second"].values
    cc, i = ds["cycle_count"].values, ds["current_ampere"].values
    t_stop = float(t[np.flatnonzero((cc == 6) & (i < 0))[-1]])
    s, _ = analyze_cycling(ds, events=[{"kind": "stop", "test_time_second": t_stop}])
    c6 = _by_cycle(s)[6]
    assert c6["complete"] is False and c6["incomplete_reason"] == "stopped"
    assert c6["discharge_capacity_ah"] == pytest.approx(tr.discharge_ah[5], rel=1e-9)
    assert s["fade_rate_per_cycle"] == pytest.approx(FADE, rel=1e-6)
    assert s["cycles_to_80_percent"] is None  # retention 0.82 at cycle 10; not cycle 6
    assert s["ce_min"] > 0.99 and s["ce_n"] == 8  # cycles 2-10 without 6
    assert s["n_complete_cycles"] == 9


def test_stop_event_at_the_end_of_a_whole_cycle_changes_nothing():
    ds, _, _ = make_cell(current_a=1e-6, n_cycles=6, points=60)
    t = ds["test_time_second"].values
    cc, i = ds["cycle_count"].values, ds["current_ampere"].values
    at_end = float(t[np.flatnonzero((cc == 6) & (i < 0))[-1]])
    in_rest = float(t[np.flatnonzero(cc == 3)[-1]])
    events = [{"kind": "stop", "test_time_second": x} for x in (at_end, in_rest)]
    s, _ = analyze_cycling(ds, events=events)
    assert s["n_complete_cycles"] == 6


def _gap_cell(output_on: bool = True):
    """Eight cycles; ten samples of cycle 3's CC charge removed (an unrecorded gap) and a
    gap event written the way the engine writes it, with the charge it estimates."""
    current = 1e-6
    ds, tr, _ = make_cell(current_a=current, n_cycles=8, cccv=False, points=60)
    t = ds["test_time_second"].values
    cc, i = ds["cycle_count"].values, ds["current_ampere"].values
    chg = np.flatnonzero((cc == 3) & (i > 0))
    a, b = int(chg[20]), int(chg[31])
    lost_ah = current * (t[b] - t[a]) / 3600.0
    keep = np.r_[0 : a + 1, b : len(t)]
    msg = {
        "start_s": float(t[a]),
        "end_s": float(t[b]),
        "output_on": output_on,
        "mode": "current",
        "setpoint": current,
        "reading_v": 3.9,
        "estimated_charge_ah": lost_ah if output_on else 0.0,
        "estimate_method": "setpoint x duration",
    }
    event = {"kind": "gap", "test_time_second": float(t[a]), "message": json.dumps(msg)}
    return ds.isel(sample=keep), tr, event, lost_ah


def test_gap_event_makes_the_cycle_incomplete_with_only_recorded_charge():
    ds, tr, event, lost_ah = _gap_cell()
    s, _ = analyze_cycling(ds, events=[event])
    c3 = _by_cycle(s)[3]
    assert c3["complete"] is False and c3["incomplete_reason"] == "gap"
    # what the file holds: the charge minus the unrecorded interval (not bridged)
    assert c3["charge_capacity_ah"] == pytest.approx(tr.charge_ah[2] - lost_ah, rel=1e-9)
    assert c3["estimated_charge_ah"] is None
    others = [c for c in s["cycles"] if c["cycle"] != 3]
    assert all(c["complete"] for c in others)
    assert s["n_complete_cycles"] == 7
    (gap,) = s["gaps"]
    assert gap["cycle"] == 3 and gap["source"] == "event"
    assert gap["estimated_charge_ah"] == pytest.approx(lost_ah)


def test_gap_estimate_counts_the_cycle_when_asked_and_flags_it():
    ds, tr, event, lost_ah = _gap_cell()
    s, _ = analyze_cycling(ds, events=[event], count_gap_estimates=True)
    c3 = _by_cycle(s)[3]
    assert c3["complete"] is True and c3["incomplete_reason"] is None
    assert c3["estimated_charge_ah"] == pytest.approx(lost_ah)
    assert "estimated charge" in c3["incomplete_detail"]
    assert c3["charge_capacity_ah"] == pytest.approx(tr.charge_ah[2], rel=1e-9)
    assert s["count_gap_estimates"] is True and s["n_complete_cycles"] == 8


def test_time_gap_without_event_is_a_gap():
    ds, _, _ = make_cell(current_a=1e-6, n_cycles=6, points=60)
    t = ds["test_time_second"].values.copy()
    cc, i = ds["cycle_count"].values, ds["current_ampere"].values
    j = int(np.flatnonzero((cc == 4) & (i < 0))[30])
    t[j:] += 1e6  # eleven days with no samples in the middle of a 2 h discharge
    ds = ds.assign(test_time_second=("sample", t, {"units": "s"}))
    s, _ = analyze_cycling(ds)
    c4 = _by_cycle(s)[4]
    assert c4["incomplete_reason"] == "gap" and "no gap event" in c4["incomplete_detail"]
    assert s["n_complete_cycles"] == 5
    assert [g["source"] for g in s["gaps"]] == ["time"]


def test_safety_stop_in_a_rest_after_a_whole_cycle_changes_nothing():
    ds, _, _ = make_cell(current_a=1e-6, n_cycles=5, points=60)
    t = ds["test_time_second"].values
    cc = ds["cycle_count"].values
    in_rest = float(t[np.flatnonzero(cc == 2)[-1]])
    s, _ = analyze_cycling(ds, events=[{"kind": "safety_stop", "test_time_second": in_rest}])
    assert s["n_complete_cycles"] == 5


def test_malformed_gap_event_is_a_clear_error():
    ds, _, _ = make_cell(current_a=1e-6, n_cycles=3, points=60)
    bad = {"kind": "gap", "test_time_second": 10.0, "message": "{not json"}
    with pytest.raises(InputError, match="gap event 0: message is not JSON"):
        analyze_cycling(ds, events=[bad])
    bad = {"kind": "gap", "test_time_second": 10.0, "message": json.dumps({"start_s": 10})}
    with pytest.raises(InputError, match="end_s"):
        analyze_cycling(ds, events=[bad])


def test_cli_analyze_shows_incomplete_cycles_and_counts_estimates(tmp_path, capsys):
    from cyclerflow.cli import main
    from cyclerflow.store import write_cell

    ds, tr, event, lost_ah = _gap_cell()
    part = _cut_in_discharge(ds, 8, 0.5)
    cols = {k: part[k].values for k in part.data_vars}
    cell = write_cell(tmp_path / "c.h5", None, cycling=cols, events=[event])
    assert main(["analyze", str(cell), "-o", str(tmp_path / "a.nc")]) == 0
    out = capsys.readouterr().out
    lines = {ln.split("│")[1].strip(): ln for ln in out.splitlines() if ln.count("│") > 2}
    assert "│ gap" in lines["3"] and "end_of_record" in lines["8"]
    argv = ["analyze", str(cell), "--json", "--count-gap-estimates", "-o", str(tmp_path / "b.nc")]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    c3 = _by_cycle(res["cycling"])[3]
    assert c3["complete"] is True and c3["estimated_charge_ah"] == pytest.approx(lost_ah)
    assert res["cycling"]["cycles"][-1]["incomplete_reason"] == "end_of_record"
