"""Keysight B2900-series SMU (B2901A/B2902A/B2911A...) as a galvanostat/potentiostat (SCPI).

Resource: ``TCPIP0::HOST::5025::SOCKET``, ``TCPIP0::HOST::INSTR``, USB-TMC or GPIB via pyvisa-py.

Shares the channel logic with the Keithley 2450 (:mod:`.scpi_smu`) but not its commands:
the B2900 selects the source with ``:SOUR:FUNC:MODE``, calls the compliance
*protection* of the sense function (``:SENS:VOLT:PROT`` while sourcing current),
measures voltage and current together with ``:MEAS?`` whose reply elements are set by
``:FORM:ELEM:SENS`` (always in the order VOLT, CURR, RES, TIME, STAT, SOUR), stamps
readings with its own timer (reset on connect), answers errors as ``+0,"No error"``,
and has an output-off mode ``HIZ`` (used so output off disconnects the cell) instead of
the 2450's ``:OUTP:SMOD HIMP``. Changing the source mode does not switch its output off.
"""

from __future__ import annotations

from .commands import Command, CommandSet
from .scpi_smu import ScpiSmuChannel

I_MAX, V_MAX = 3.03, 210.0

COMMANDS = CommandSet(
    "b2900",
    [
        Command("identify", "*IDN?", kind="query", type="str"),
        Command("clear_status", "*CLS"),
        Command("output_on", ":OUTP ON"),
        Command("output_off", ":OUTP OFF"),
        Command(
            "output_off_mode", ":OUTP:OFF:MODE {value}", type="str", choices=("HIZ", "ZERO", "NORM")
        ),
        Command("source_function", ":SOUR:FUNC:MODE {value}", type="str", choices=("CURR", "VOLT")),
        Command(
            "source_current", ":SOUR:CURR {value}", type="float", range=(-I_MAX, I_MAX), units="A"
        ),
        Command(
            "voltage_limit", ":SENS:VOLT:PROT {value}", type="float", range=(0.02, V_MAX), units="V"
        ),
        Command(
            "source_voltage", ":SOUR:VOLT {value}", type="float", range=(-V_MAX, V_MAX), units="V"
        ),
        Command(
            "current_limit", ":SENS:CURR:PROT {value}", type="float", range=(1e-9, I_MAX), units="A"
        ),
        Command("sense_functions", ':SENS:FUNC "VOLT","CURR"'),
        Command("sense_voltage_autorange", ":SENS:VOLT:RANG:AUTO ON"),
        Command("sense_current_autorange", ":SENS:CURR:RANG:AUTO ON"),
        Command("elements", ":FORM:ELEM:SENS VOLT,CURR,TIME"),
        Command("reset_timer", ":SYST:TIME:TIM:COUN:RES"),
        Command(
            "read",
            ":MEAS?",
            kind="query",
            type="floats",
            count=3,
            doc="voltage V, current A, time s",
        ),
        Command("next_error", ":SYST:ERR:NEXT?", kind="query", type="error"),
    ],
)


class B2900Channel(ScpiSmuChannel):
    commands = COMMANDS
    driver = "b2900"
    model_keyword = "B29"

    def setup_sequence(self):
        return [
            ("clear_status", None),
            ("output_off_mode", "HIZ"),
            ("sense_functions", None),
            ("sense_voltage_autorange", None),
            ("sense_current_autorange", None),
            ("elements", None),
            ("reset_timer", None),
        ]

    def configure_sequence(self, mode, level, limit, new_mode):
        if mode == "cc":
            body = [("voltage_limit", limit), ("source_current", level)]
            head = [("source_function", "CURR")]
        else:
            body = [("current_limit", limit), ("source_voltage", level)]
            head = [("source_function", "VOLT")]
        # levels first, then the mode: switching mode with the output on applies that
        # mode's programmed level at once (a 0 V level would short the cell)
        return body + (head + [("output_on", None)] if new_mode else [])

    def _reading(self, values, mode):
        voltage, current, time_s = values
        return voltage, current, time_s


def open_channel(resource: str, **options) -> B2900Channel:
    """A B2900 channel on ``resource`` (call ``connect()`` before use). Options as
    :func:`cyclerflow.drivers.keithley2450.open_channel`."""
    return B2900Channel(resource, **options)


def simulator_protocol():
    from .sim.b2900 import B2900Sim

    return B2900Sim


def serve_simulator(
    *,
    host: str = "127.0.0.1",
    port: int = 5025,
    cell=None,
    speedup: float = 1.0,
    faults=(),
    seed: int = 0,
):
    """Serve a simulated B2901A on TCP (blocking); see docs/simulators.md."""
    from .sim import serve

    serve("b2900", host=host, port=port, cell=cell, speedup=speedup, faults=faults, seed=seed)
