"""Short runs of the campaigns in benchmarks/ (the long ones print figures there)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # the damage campaign's worker process imports it by name
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_damage_campaign_short(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    campaign = _load("campaign_damage")
    t = campaign.run_campaign(45, seed=3, lab_every=20, timeout_s=120)
    assert t.trials == 45 and t.lab_runs == 3
    assert t.total("traceback") == 0, t.errors
    assert t.total("silent wrong") == 0, t.by_op
    assert t.hangs == 0 and t.others_affected == 0
    assert t.total("exit 2") > 0  # the damage was real: some of it was caught
    assert t.lab_damaged_listed == t.lab_runs


@pytest.mark.slow
def test_every_chunk_zeroed_with_its_checksum_is_caught(monkeypatch):
    """The damage Fletcher-32 cannot see, at every chunk of the three target files (the
    code before the chunk CRC tables read 136 of these operations silently wrong)."""
    monkeypatch.syspath_prepend(str(BENCH))
    t = _load("campaign_damage").run_chunk_sweep()
    assert t.trials > 100
    assert t.total("silent wrong") == 0, t.errors
    assert t.total("traceback") == 0, t.errors
    assert t.by_op["cell file (plain) / verify"]["exit 2"] == t.damages["zeroed chunk (plain)"]


@pytest.mark.slow
def test_kill_campaign_short():
    campaign = _load("campaign_kill")
    t = campaign.run_campaign(4, 3, seed=2)
    assert t.kills == 4 and t.unreadable == 0 and t.unrecoverable == 0
    assert set(t.states) <= {"unclosed", "no file yet", "intact", "recovered-from-kill"}
    assert t.numbering_breaks == 0
    assert "partial file" not in t.import_outcomes and t.parts_after_next_write == 0


def test_vendor_fuzzing_short(shared_data):
    campaign = _load("campaign_fuzz")
    t = campaign.run_campaign(80, seed=5, root=Path(str(shared_data)))
    assert t.trials == 80
    assert t.total("traceback") == 0, t.errors
    assert t.total("partial output") == 0 and t.total("hang") == 0
    assert t.total("exit 2") > 0 and t.total("imported") > 0


def test_vendor_fuzzing_short_extreme_numbers(shared_data):
    """Only the 'number' mutation (a 20-digit integer, -1, 0, 1e400, nan ... in place of
    a number): overflow, dates out of range and time going back all end as exit 2 or
    an import."""
    campaign = _load("campaign_fuzz")
    t = campaign.run_campaign(80, seed=6, root=Path(str(shared_data)), kinds=("number",))
    assert t.mutations["number"] == 80
    assert t.total("traceback") == 0, t.errors
    assert t.total("partial output") == 0 and t.total("hang") == 0
    assert t.total("exit 2") > 0 and t.total("imported") > 0


def test_ndax_member_fuzzing_short(tmp_path):
    """A .ndax written again with one member's bytes mutated (its zip CRC then agrees):
    exit 2 or a correct import, never a traceback or a partial file."""
    campaign = _load("campaign_fuzz")
    t = campaign.run_campaign(12, seed=9, root=tmp_path, max_bytes=3_000_000,
                              kinds=("member",), suffixes=(".ndax",))  # fmt: skip
    assert t.mutations["member"] == 12 and set(t.by_format) == {
        "neware/20260302_IFE_BTS85_2_9_8_1.ndax"
    }
    assert t.total("traceback") == 0, t.errors
    assert t.total("partial output") == 0 and t.total("hang") == 0
    assert t.total("exit 2") > 0


@pytest.mark.slow
def test_instrument_fault_campaign_short():
    """20 faults over 16 channels at once (SMU simulators on linked clocks, PalmSens and
    Lake Shore in real time): every channel ends with its source off or held inside
    the safety window, nothing escapes the engine, the SMUs end as their fault calls
    for, and the clean SMU channels (linked clocks) complete with the simulator's charge
    (the real-time PalmSens depends on the host's load: counted, not asserted)."""
    campaign = _load("campaign_faults")
    t = campaign.run_campaign(20, seed=4)
    assert t.faults == 20 and t.clean >= 4
    assert t.total("traceback") == 0 and t.total("failed") == 0, t.errors
    assert sum(t.output_on.values()) == 0
    assert t.unexpected() == 0, t.surprises
    assert t.others_affected == 0, t.errors
    assert t.total("safety_stop") + t.total("error") + t.total("disconnected") > 0
