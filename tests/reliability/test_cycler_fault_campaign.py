"""A short run of benchmarks/campaign_cycler_faults.py (Neware, Maccor, Arbin simulators)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_cycler_fault_campaign_short():
    """One round: 12 faults over 16 cycler channels at once; nothing escapes acquisition,
    nothing hangs, every channel ends as its fault calls for, clean channels complete
    with the simulator's records/capacities, no record lost or duplicated."""
    campaign = _load("campaign_cycler_faults")
    t = campaign.run_campaign(12, seed=4)
    assert t.faults == 12 and t.clean == 4
    assert t.total("traceback") == 0 and t.total("hang") == 0, t.errors
    assert t.unexpected() == 0, t.surprises
    assert t.others_affected == 0, t.errors
    assert not t.record_breaks and not t.unsafe, (t.record_breaks, t.unsafe)
