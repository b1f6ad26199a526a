"""Helpers for the acquisition tests: run a recipe on the in-process fake channel."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_channel import FakeChannel, FakeTemperatureController  # noqa: E402

from cyclerflow.acquire.clock import Clock, VirtualClock  # noqa: E402
from cyclerflow.acquire.engine import ChannelResult, ChannelRunner  # noqa: E402
from cyclerflow.acquire.link import ReconnectPolicy  # noqa: E402
from cyclerflow.acquire.progress import file_state  # noqa: E402
from cyclerflow.acquire.recipe import CURRENT_KINDS, loads_recipe  # noqa: E402
from cyclerflow.schema import parse_metadata  # noqa: E402
from cyclerflow.store import create_cell, resume_cell  # noqa: E402


@dataclass
class Run:
    result: ChannelResult
    channel: FakeChannel
    clock: Clock
    path: Path
    tc: FakeTemperatureController | None = None


def run_fake(
    path: Path,
    text: str,
    *,
    clock: Clock | None = None,
    stop_at: float | None = None,
    setup=None,
    channel: FakeChannel | None = None,
    temperature: bool = False,
    capacity_ah: float = 15e-6,
    reconnect: ReconnectPolicy = ReconnectPolicy(attempts=3, backoff_s=0.01),
) -> Run:
    """Run ``text`` on a fake channel into ``path`` (resuming when it exists).

    The default clock is virtual (time moves only when the engine sleeps), so the
    results are exact and do not depend on machine load; ``stop_at`` (simulated s)
    acts like Ctrl-C at that moment.
    """
    recipe = loads_recipe(text, source="recipe.yaml", nominal_capacity_ah=capacity_ah)
    clock = clock or VirtualClock(stop_at=stop_at)
    ch = FakeChannel(now=clock.now, cell=None if channel is None else channel.cell)
    ch.connect()
    tc = FakeTemperatureController(clock.now, ch) if temperature else None
    if setup is not None:
        setup(ch, clock)
    resume = None
    if path.exists():
        resume = file_state(path, CURRENT_KINDS).resume
        writer = resume_cell(path)
    else:
        writer = create_cell(
            path,
            parse_metadata({"cell_id": "FAKE-1", "nominal_capacity_uah": capacity_ah * 1e6}),
            protocol=text,
        )
    try:
        res = ChannelRunner(
            ch, writer, recipe, clock=clock, temperature=tc, resume=resume, reconnect=reconnect
        ).run()
    finally:
        writer.close()
    return Run(res, ch, clock, path, tc)


def step_charges(ds) -> dict[int, float]:
    """Trapezoid charge (Ah, signed) of each step_count in a read_cycling dataset."""
    t = ds["test_time_second"].values
    i = ds["current_ampere"].values
    sc = ds["step_count"].values
    out = {}
    for k in np.unique(sc):
        m = sc == k
        out[int(k)] = float(np.trapezoid(i[m], t[m])) / 3600.0 if m.sum() > 1 else 0.0
    return out


def half_cycles_from_file(ds) -> list[tuple[float, float]]:
    """(sign, charge Ah) per run of one current sign, from per-step charges (rests ignored)."""
    halves: list[list[float]] = []
    for _, q in sorted(step_charges(ds).items()):
        if q == 0:
            continue
        s = 1.0 if q > 0 else -1.0
        if halves and halves[-1][0] == s:
            halves[-1][1] += abs(q)
        else:
            halves.append([s, abs(q)])
    return [tuple(h) for h in halves]


@pytest.fixture
def fake_run():
    return run_fake
