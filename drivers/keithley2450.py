"""Keithley 2450 source-measure unit as a galvanostat/potentiostat (SCPI command set).

Resource: ``TCPIP0::HOST::5025::SOCKET`` (raw socket), ``TCPIP0::HOST::INSTR`` (VXI-11),
``USB0::0x05E6::0x2450::SERIAL::INSTR`` or ``GPIB0::18::INSTR``, all through pyvisa-py.

Battery specifics: the output-off state is set to high impedance (``:OUTP:SMOD HIMP``)
so switching the output off disconnects the cell instead of shorting it at 0 V;
readings come from ``defbuffer1`` with the measured source value (read-back on) and
the relative timestamp, cleared once on connect so ``time_s`` counts from there.
Sign: the 2450's positive current flows out of FORCE HI; with the cell's positive
electrode on HI that charges the cell (``polarity=-1`` for reversed wiring).
"""

from __future__ import annotations

from .commands import Command, CommandSet
from .scpi_smu import ScpiSmuChannel

I_MAX, V_MAX = 1.05, 210.0

COMMANDS = CommandSet(
    "keithley2450",
    [
        Command("identify", "*IDN?", kind="query", type="str"),
        Command("clear_status", "*CLS"),
        Command("output_on", ":OUTP ON"),
        Command("output_off", ":OUTP OFF"),
        Command(
            "output_off_mode",
            ":OUTP:SMOD {value}",
            type="str",
            choices=("HIMP", "NORM", "ZERO", "GUAR"),
        ),
        Command("source_function", ":SOUR:FUNC {value}", type="str", choices=("CURR", "VOLT")),
        Command(
            "source_current", ":SOUR:CURR {value}", type="float", range=(-I_MAX, I_MAX), units="A"
        ),
        Command(
            "voltage_limit", ":SOUR:CURR:VLIM {value}", type="float", range=(0.02, V_MAX), units="V"
        ),
        Command(
            "source_voltage", ":SOUR:VOLT {value}", type="float", range=(-V_MAX, V_MAX), units="V"
        ),
        Command(
            "current_limit", ":SOUR:VOLT:ILIM {value}", type="float", range=(1e-9, I_MAX), units="A"
        ),
        Command("current_autorange", ":SOUR:CURR:RANG:AUTO ON"),
        Command("voltage_autorange", ":SOUR:VOLT:RANG:AUTO ON"),
        Command("current_readback", ":SOUR:CURR:READ:BACK ON"),
        Command("voltage_readback", ":SOUR:VOLT:READ:BACK ON"),
        Command("sense_function", ':SENS:FUNC "{value}"', type="str", choices=("VOLT", "CURR")),
        Command("sense_voltage_autorange", ":SENS:VOLT:RANG:AUTO ON"),
        Command("sense_current_autorange", ":SENS:CURR:RANG:AUTO ON"),
        Command("clear_buffer", ':TRAC:CLE "defbuffer1"'),
        Command(
            "read",
            ':READ? "defbuffer1", READ, SOUR, REL',
            kind="query",
            type="floats",
            count=3,
            doc="reading (sense function), source read-back, relative time (s)",
        ),
        Command("next_error", ":SYST:ERR?", kind="query", type="error"),
    ],
)


class Keithley2450Channel(ScpiSmuChannel):
    commands = COMMANDS
    driver = "keithley2450"
    model_keyword = "2450"

    def setup_sequence(self):
        return [
            ("clear_status", None),
            ("output_off_mode", "HIMP"),
            ("current_readback", None),
            ("voltage_readback", None),
            ("clear_buffer", None),
        ]

    def configure_sequence(self, mode, level, limit, new_mode):
        if mode == "cc":
            head = [
                ("source_function", "CURR"),
                ("current_autorange", None),
                ("sense_function", "VOLT"),
                ("sense_voltage_autorange", None),
            ]
            body = [("voltage_limit", limit), ("source_current", level)]
        else:
            head = [
                ("source_function", "VOLT"),
                ("voltage_autorange", None),
                ("sense_function", "CURR"),
                ("sense_current_autorange", None),
            ]
            body = [("current_limit", limit), ("source_voltage", level)]
        # limit before level; changing the source function turns the 2450's output off
        return (head if new_mode else []) + body + ([("output_on", None)] if new_mode else [])

    def _reading(self, values, mode):
        reading, source, rel = values
        if mode == "cv":
            return source, reading, rel
        return reading, source, rel


def open_channel(resource: str, **options) -> Keithley2450Channel:
    """A Keithley 2450 channel on ``resource`` (call ``connect()`` before use).

    Options: ``name``, ``timeout_s`` (default 2), ``polarity`` (+1/-1),
    ``ocv_voltage_limit_v`` (compliance used while resting at 0 A, default 20 V),
    and transport options (``write_termination``, ``read_termination``).
    """
    return Keithley2450Channel(resource, **options)


def simulator_protocol():
    from .sim.keithley2450 import Keithley2450Sim

    return Keithley2450Sim


def serve_simulator(
    *,
    host: str = "127.0.0.1",
    port: int = 5025,
    cell=None,
    speedup: float = 1.0,
    faults=(),
    seed: int = 0,
):
    """Serve a simulated 2450 on TCP (blocking); see docs/simulators.md."""
    from .sim import serve

    serve(
        "keithley2450", host=host, port=port, cell=cell, speedup=speedup, faults=faults, seed=seed
    )
