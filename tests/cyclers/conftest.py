"""Fixtures of the cycler tests."""

from __future__ import annotations

import pytest

from .cycler_helpers import SimProcesses


@pytest.fixture
def neware_sim():
    from cyclerflow.drivers.sim.neware_bts import NewareSim

    sims = []

    def make(**kw):
        s = NewareSim(**kw).start()
        sims.append(s)
        return s

    yield make
    for s in sims:
        s.stop()


@pytest.fixture
def sim_processes():
    """Simulator processes of one test (stopped afterwards)."""
    procs = SimProcesses()
    yield procs
    procs.stop_all()
