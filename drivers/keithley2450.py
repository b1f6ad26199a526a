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

from cyclerflow.errors import InstrumentError

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
            units="V|A, A|V, s",
            doc="reading (sense function), source read-back, relative time (s)",
        ),
        Command("next_error", ":SYST:ERR?", kind="query", type="error"),
        # read-back (source_state on reconnect)
        Command("output_q", ":OUTP?", kind="query", type="bool"),
        Command("source_function_q", ":SOUR:FUNC?", kind="query", type="str"),
        Command("source_current_q", ":SOUR:CURR?", kind="query", type="float", units="A"),
        Command("source_voltage_q", ":SOUR:VOLT?", kind="query", type="float", units="V"),
        # the guard: a trigger model that measures, tests the reading against constant
        # limits and turns the output off (block 5) when it is outside; else waits and loops
        Command("abort", ":ABOR"),
        Command("trigger_clear", ':TRIG:LOAD "Empty"'),
        Command("block_measure", ':TRIG:BLOC:MEAS 1, "defbuffer1", 1'),
        Command(
            "block_limit",
            ":TRIG:BLOC:BRAN:LIM:CONS 2, {value}, {low}, {high}, 5, 1",
            type="str",
            choices=("ABOVE", "BELOW", "OUTSIDE"),
            units="V",
            fields=(("low", -V_MAX, V_MAX), ("high", -V_MAX, V_MAX)),
            doc="limit type, limit A (low), limit B (high); branch to block 5 when met",
        ),
        Command(
            "block_delay",
            ":TRIG:BLOC:DEL:CONS 3, {value}",
            type="float",
            range=(1e-3, 1e4),
            units="s",
        ),
        Command("block_loop", ":TRIG:BLOC:BRAN:ALW 4, 1"),
        Command("block_output_off", ":TRIG:BLOC:SOUR:STAT 5, OFF"),
        Command("initiate", ":INIT"),
        Command(
            "trigger_state",
            ":TRIG:STAT?",
            kind="query",
            type="str",
            doc="model state;block state;last block executed (e.g. IDLE;IDLE;5)",
        ),
        Command(
            "fetch",
            ':FETC? "defbuffer1", READ, SOUR, REL',
            kind="query",
            type="floats",
            count=3,
            units="V|A, A|V, s",
            doc="newest buffered reading (the trigger model's), without measuring",
        ),
    ],
)

TRIP_BLOCK = 5  # the output-off block of the guard program


class Keithley2450Channel(ScpiSmuChannel):
    commands = COMMANDS
    driver = "keithley2450"
    model_keyword = "2450"

    def setup_sequence(self, keep_clock=False):
        # a trigger model left running (or tripped) by an earlier host keeps its buffer
        # and so the relative time origin: clearing it then would stop the guard
        return [
            ("clear_status", None),
            ("output_off_mode", "HIMP"),
            ("current_readback", None),
            ("voltage_readback", None),
        ] + ([] if keep_clock or self._tripped_at_connect else [("clear_buffer", None)])

    def _trigger_state(self) -> tuple[str, int]:
        reply = self._q("trigger_state")
        parts = reply.strip().split(";")
        try:
            return parts[0].upper(), int(parts[-1])
        except (ValueError, IndexError):
            raise InstrumentError(
                f"{self._label()}: ':TRIG:STAT?': garbled reply {reply[:60]!r} "
                "(expected STATE;STATE;BLOCK)"
            ) from None

    _tripped_at_connect = False

    def program_running(self) -> bool:
        # a model that tripped keeps its buffer too: its last reading is the one that tripped
        state, block = self._trigger_state()
        self._tripped_at_connect = state == "IDLE" and block == TRIP_BLOCK
        return state == "RUNNING"

    def program_status(self) -> tuple[bool, bool]:
        state, block = self._trigger_state()
        return state == "IDLE" and block == TRIP_BLOCK, state == "RUNNING"

    def guard_sequence(self, v_min, v_max):
        if v_min is not None and v_max is not None:
            kind, low, high = "OUTSIDE", v_min, v_max
        elif v_min is not None:
            kind, low, high = "BELOW", v_min, v_min
        else:
            kind, low, high = "ABOVE", v_max, v_max
        return [
            ("trigger_clear", None, {}),
            ("block_measure", None, {}),
            ("block_limit", kind, {"low": low, "high": high}),
            ("block_delay", self.guard_interval_s, {}),
            ("block_loop", None, {}),
            ("block_output_off", None, {}),
            ("initiate", None, {}),
        ]

    def configure_sequence(self, mode, level, limit, new_mode, after_abort=False):
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
        # limit before level; changing the source function turns the 2450's output off, and
        # so may the guard program that was running: output on again after those
        on = [("output_on", None)] if (new_mode or after_abort) else []
        return (head if new_mode else []) + body + on

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
