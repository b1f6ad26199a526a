"""Instrument simulators: each serves a driver's real protocol over a physical cell model.

Public API (stable; see docs/simulators.md)::

    server, port = start_simulator("keithley2450", port=0, speedup=1000, faults=("garble:every=50",))
    server.resource, server.model, server.clock, server.faults, server.advance(s), server.stop()
"""

from __future__ import annotations

from .cell_model import CellModel, CellParams, HalfCycle, Segment
from .server import FaultPlan, SimServer, model_for, parse_fault

__all__ = [
    "CellModel",
    "CellParams",
    "FaultPlan",
    "HalfCycle",
    "Segment",
    "SimServer",
    "parse_fault",
    "serve",
    "simulator_names",
    "start_simulator",
]


def _protocol(driver: str):
    from cyclerflow.acquire.instrument import load_driver

    module = load_driver(driver)
    factory = getattr(module, "simulator_protocol", None)
    if factory is None:
        from cyclerflow.errors import InputError

        raise InputError(f"driver {driver!r} has no simulator")
    return factory()


def simulator_names() -> list[str]:
    """Names of the installed drivers that have a simulator."""
    from cyclerflow.acquire.instrument import driver_names, load_driver

    return [n for n in driver_names() if hasattr(load_driver(n), "simulator_protocol")]


def start_simulator(
    driver: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    cell=None,
    speedup: float = 1.0,
    faults=(),
    seed: int = 0,
) -> tuple[SimServer, int]:
    """Start a simulator in a background thread; returns ``(server, port)`` once it listens.

    ``cell``: None (default LiCoO2|LiPON|Li cell), a metadata file path, a
    ``CellMetadata`` or a ``CellModel`` (to share one cell between simulators).
    ``speedup``: simulated seconds per wall second (0: the clock moves only by
    ``server.advance``). ``faults``: fault specs such as ``"slow:delay=3"``.
    """
    proto = _protocol(driver)
    server = SimServer(
        proto,
        host=host,
        port=port,
        model=model_for(cell, seed),
        speedup=speedup,
        faults=faults,
        seed=seed,
        resource_template=getattr(proto, "resource_template", "TCPIP0::{host}::{port}::SOCKET"),
    )
    server.start()
    return server, server.port


def serve(
    driver: str, *, host="127.0.0.1", port=0, cell=None, speedup=1.0, faults=(), seed=0, out=None
) -> None:
    """Blocking: run a simulator until interrupted, after printing where it listens."""
    server, real_port = start_simulator(
        driver, host=host, port=port, cell=cell, speedup=speedup, faults=faults, seed=seed
    )
    server.serve_announced(
        f"{driver} simulator listening on {server.host}:{real_port} "
        f"sim-clock={server.clock.speedup:g} resource={server.resource}",
        out,
    )
