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
            units="V, A, s",
            doc="voltage V, current A, time s",
        ),
        Command("next_error", ":SYST:ERR:NEXT?", kind="query", type="error"),
        # read-back (source_state on reconnect)
        Command("output_q", ":OUTP?", kind="query", type="bool"),
        Command("source_function_q", ":SOUR:FUNC:MODE?", kind="query", type="str"),
        Command("source_current_q", ":SOUR:CURR?", kind="query", type="float", units="A"),
        Command("source_voltage_q", ":SOUR:VOLT?", kind="query", type="float", units="V"),
        # the guard: a timer-triggered acquisition whose limit test on the voltage stops
        # it at the first failure; the channel then goes idle and auto output-off acts
        Command("abort", ":ABOR:ACQ"),
        Command("auto_output_off", ":OUTP:OFF:AUTO {value}", type="bool"),
        Command("limit_feed", ":CALC:FEED VOLT"),
        Command("limit_function", ":CALC:LIM:FUNC LIM"),
        Command(
            "limit_low", ":CALC:LIM:LOW {value}", type="float", range=(-V_MAX, V_MAX), units="V"
        ),
        Command(
            "limit_high", ":CALC:LIM:UPP {value}", type="float", range=(-V_MAX, V_MAX), units="V"
        ),
        Command("limit_on", ":CALC:LIM:STAT ON"),
        Command("limit_stop_at_fail", ":CALC:CLIM:UPD IMM"),
        Command("trigger_source", ":TRIG:ACQ:SOUR TIM"),
        Command(
            "trigger_interval", ":TRIG:ACQ:TIM {value}", type="float", range=(1e-5, 1e5), units="s"
        ),
        Command("trigger_count", ":TRIG:ACQ:COUN 100000"),
        Command("arm_count", ":ARM:ACQ:COUN INF"),
        Command("initiate", ":INIT:ACQ"),
        Command("limit_failed", ":CALC:LIM:FAIL?", kind="query", type="bool"),
        Command(
            "fetch",
            ":FETC?",
            kind="query",
            type="floats",
            count=3,
            units="V, A, s",
            doc="newest reading of the acquisition (voltage V, current A, time s)",
        ),
    ],
)


class B2900Channel(ScpiSmuChannel):
    commands = COMMANDS
    driver = "b2900"
    model_keyword = "B29"

    def setup_sequence(self, keep_clock=False):
        return [
            ("clear_status", None),
            ("output_off_mode", "HIZ"),
            ("sense_functions", None),
            ("sense_voltage_autorange", None),
            ("sense_current_autorange", None),
            ("elements", None),
            ("reset_timer", None),
        ]

    def abort_sequence(self):
        # auto output-off off again: with it on, every :MEAS? would end with the output off
        return [("abort", None), ("auto_output_off", False)]

    def program_status(self) -> tuple[bool, bool]:
        failed = self._q("limit_failed")
        on = self._q("output_q")
        return failed and not on, on and not failed

    def guard_sequence(self, v_min, v_max):
        low = -V_MAX if v_min is None else v_min
        high = V_MAX if v_max is None else v_max
        return [
            ("limit_feed", None, {}),
            ("limit_function", None, {}),
            ("limit_low", low, {}),
            ("limit_high", high, {}),
            ("limit_on", None, {}),
            ("limit_stop_at_fail", None, {}),
            ("trigger_source", None, {}),
            ("trigger_interval", self.guard_interval_s, {}),
            ("trigger_count", None, {}),
            ("arm_count", None, {}),
            ("auto_output_off", True, {}),
            ("initiate", None, {}),
        ]

    def configure_sequence(self, mode, level, limit, new_mode, after_abort=False):
        if mode == "cc":
            body = [("voltage_limit", limit), ("source_current", level)]
            head = [("source_function", "CURR")]
        else:
            body = [("current_limit", limit), ("source_voltage", level)]
            head = [("source_function", "VOLT")]
        # levels first, then the mode: switching mode with the output on applies that
        # mode's programmed level at once (a 0 V level would short the cell)
        if new_mode:
            return body + head + [("output_on", None)]
        return body + ([("output_on", None)] if after_abort else [])

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
