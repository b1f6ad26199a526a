"""Fixtures of the cycler tests."""

from __future__ import annotations

import pytest


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
