"""Simulated Keithley 2450 (SCPI command set) over the cell model."""

from __future__ import annotations

from .scpi import ILLEGAL_PARAMETER, ScpiError, choice_arg
from .smu import SmuSim, fmt


class Keithley2450Sim(SmuSim):
    IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,04500001,1.7.12b"
    COMMANDS = [
        ("*IDN?", "idn"),
        ("*CLS", "cls"),
        ("*RST", "rst"),
        (":OUTPut[:STATe]", "output"),
        (":OUTPut[:STATe]?", "output_q"),
        (":OUTPut:SMODe", "accept"),
        (":SOURce:FUNCtion[:MODE]", "source_func"),
        (":SOURce:FUNCtion[:MODE]?", "source_func_q"),
        (":SOURce:CURRent[:LEVel][:IMMediate][:AMPLitude]", "source_level_curr"),
        (":SOURce:VOLTage[:LEVel][:IMMediate][:AMPLitude]", "source_level_volt"),
        (":SOURce:CURRent:VLIMit[:LEVel]", "vlim"),
        (":SOURce:VOLTage:ILIMit[:LEVel]", "ilim"),
        (":SOURce:CURRent:RANGe:AUTO", "accept"),
        (":SOURce:VOLTage:RANGe:AUTO", "accept"),
        (":SOURce:CURRent:READ:BACK", "accept"),
        (":SOURce:VOLTage:READ:BACK", "accept"),
        (":SENSe:FUNCtion[:ON]", "sense_func"),
        (":SENSe:CURRent:RANGe:AUTO", "accept"),
        (":SENSe:VOLTage:RANGe:AUTO", "accept"),
        (":TRACe:CLEar", "trace_clear"),
        (":READ?", "read_q"),
        (":SYSTem:ERRor[:NEXT]?", "syst_err"),
    ]

    def source_func(self, args: str) -> None:
        new = choice_arg(args, "CURRent", "VOLTage")
        if new != self.smu["source"]:
            self.smu["output"] = False  # the 2450 turns the output off when the function changes
        self.smu["source"] = new
        self.apply()

    def source_func_q(self, args: str) -> str:
        return self.smu["source"]

    def sense_func(self, args: str) -> None:
        self.smu["sense"] = choice_arg(args, "CURRent", "VOLTage")

    def trace_clear(self, args: str) -> None:
        self.reset_time(args)

    def read_q(self, args: str) -> str:
        parts = [p.strip() for p in args.split(",") if p.strip()]
        buffer = parts[0].strip("\"'") if parts and parts[0][:1] in "\"'" else "defbuffer1"
        elements = [p.upper() for p in parts[1:]] if parts and parts[0][:1] in "\"'" else parts
        if buffer not in ("defbuffer1", "defbuffer2"):
            raise ScpiError(-230, "Data corrupt or stale; buffer does not exist")
        v, i, t = self.measure()
        values = {
            "READ": v if self.smu["sense"] == "VOLT" else i,
            "READING": v if self.smu["sense"] == "VOLT" else i,
            "SOUR": i if self.smu["source"] == "CURR" else v,
            "SOURCE": i if self.smu["source"] == "CURR" else v,
            "REL": t - self.smu["t0"],
            "RELATIVE": t - self.smu["t0"],
        }
        out = []
        for e in elements or ["READ"]:
            if e not in values:
                raise ScpiError(*ILLEGAL_PARAMETER)
            out.append(fmt(values[e]))
        return ",".join(out)
