"""Demo experiments for the transport analyses: a GITT on a film with known diffusion
and a float hold on a soft-shorted cell, acquired through the Keithley 2450 simulator
(SCPI over a socket) by the acquisition engine on a linked virtual clock: the
simulator's clock moves only with the engine's, so hours of simulated time take
seconds and no reading is late (docs/transport.md, section 13).
"""

from __future__ import annotations

from pathlib import Path

from cyclerflow.errors import InstrumentError

#: the simulated film: D = 1e-11 cm²/s over a 1 µm cathode (L²/D = 1000 s)
FILM_D_M2_PER_S = 1e-15
FILM_THICKNESS_M = 1e-6
#: the soft short of the float cell (Ohm): 1 µA at 4 V
SHORT_OHM = 4e6

GITT_RECIPE = """\
# GITT: 40-s pulses on a film with L^2/D = 1000 s, relaxed for 1000 s each
name: demo-gitt
limits: {voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA}
sample_interval: 10 s
record: {every: 60 s}
steps:
  - rest: {duration: 10 min}
  - cc_charge: {current: 7.5 uA, until: {capacity: 40 %}}
  - rest: {duration: 1 h}
  - gitt: {current: 2 uA, direction: charge, pulse: 40 s, rest: 1000 s, max_pulses: 3,
           until: {voltage: 4.25 V}, record: {every: 1 s}}
"""

FLOAT_RECIPE = """\
# leakage: charge, hold 4.0 V for 3 h (float), then watch the open-circuit voltage
name: demo-float
limits: {voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA}
sample_interval: 10 s
record: {every: 60 s}
steps:
  - cccv: {current: 7.5 uA, voltage: 4.0 V, until: {current: 0.5 uA, time: 1 h}}
  - float: {voltage: 4.0 V, duration: 3 h}
  - rest: {duration: 4 h}
"""


def _metadata(cell_id: str) -> dict:
    return {
        "cell_id": cell_id,
        "nominal_capacity_uah": 15,
        "active_area_cm2": 0.25,
        "layers": [{"role": "cathode", "material": "LiCoO2", "thickness_um": 1.0}],
        "notes": "simulated film (demo transport experiments)",
    }


def acquire_linked(
    out: Path, recipe_text: str, cell, meta: dict, *, driver: str = "keithley2450"
) -> Path:
    """Run ``recipe_text`` on ``driver``'s simulator around the ``CellModel`` ``cell``
    with a linked virtual clock; the closed cell file ``out``. Raises InstrumentError
    when the recipe does not complete."""
    from cyclerflow.acquire.clock import VirtualClock
    from cyclerflow.acquire.engine import ChannelRunner
    from cyclerflow.acquire.instrument import load_driver
    from cyclerflow.acquire.recipe import loads_recipe
    from cyclerflow.drivers.sim import start_simulator
    from cyclerflow.schema import parse_metadata
    from cyclerflow.store import create_cell

    metadata = parse_metadata(meta)
    server, _ = start_simulator(driver, speedup=0.0, cell=cell)
    try:
        ch = load_driver(driver).open_channel(server.resource)
        ch.connect()
        recipe = loads_recipe(recipe_text, nominal_capacity_ah=metadata.nominal_capacity_ah)
        w = create_cell(out, metadata, protocol=recipe_text)
        try:
            clock = VirtualClock(on_advance=server.advance)
            res = ChannelRunner(ch, w, recipe, clock=clock).run()
        finally:
            w.close()
            ch.close()
    finally:
        server.stop()
    if res.status != "complete":
        raise InstrumentError(f"{out.name}: {res.status} ({res.message})")
    return out


def film_cell(**params):
    """The simulated film cell (``CellParams`` overrides as keywords)."""
    from cyclerflow.drivers.sim import CellModel, CellParams

    return CellModel(
        CellParams(
            diffusion_m2_per_s=FILM_D_M2_PER_S, cathode_thickness_m=FILM_THICKNESS_M, **params
        )
    )


def acquire_experiments(folder: Path) -> list[Path]:
    """The GITT cell and the soft-shorted float cell, written into ``folder``."""
    from cyclerflow.drivers.sim import CellModel, CellParams

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.h5"):
        old.unlink()
    shorted = CellModel(CellParams(initial_soc=0.3))
    shorted.set_short(SHORT_OHM, 0.0)
    return [
        acquire_linked(folder / "W03-GITT.h5", GITT_RECIPE, film_cell(), _metadata("W03-GITT")),
        acquire_linked(folder / "W03-SHORT.h5", FLOAT_RECIPE, shorted, _metadata("W03-SHORT")),
    ]
