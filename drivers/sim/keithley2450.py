"""Simulated Keithley 2450 (SCPI command set) over the cell model."""

from __future__ import annotations

from .scpi import ILLEGAL_PARAMETER, ScpiError, choice_arg, number_arg
from .smu import SmuSim, fmt
from .trigger import TriggerModel2450

BLOCK_RANGE = (1, 63)


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
        (":SOURce:CURRent[:LEVel][:IMMediate][:AMPLitude]?", "source_level_curr_q"),
        (":SOURce:VOLTage[:LEVel][:IMMediate][:AMPLitude]?", "source_level_volt_q"),
        (":READ?", "read_q"),
        (":FETCh?", "fetch_q"),
        (":SYSTem:ERRor[:NEXT]?", "syst_err"),
        (":ABORt", "abort"),
        (":INITiate[:IMMediate]", "initiate"),
        (":TRIGger:LOAD", "trig_load"),
        (":TRIGger:STATe?", "trig_state_q"),
        (":TRIGger:BLOCk:MEASure", "block_measure"),
        (":TRIGger:BLOCk:BRANch:LIMit:CONStant", "block_limit"),
        (":TRIGger:BLOCk:DELay:CONStant", "block_delay"),
        (":TRIGger:BLOCk:BRANch:ALWays", "block_always"),
        (":TRIGger:BLOCk:SOURce:STATe", "block_source"),
    ]

    def make_program(self):
        return TriggerModel2450(self.model, self.smu)

    def program_running(self) -> bool:
        self.now()
        return self.program.state == "RUNNING"

    # trigger model ----------------------------------------------------------------------
    def _block_args(self, args: str, n: int) -> list[str]:
        parts = [p.strip() for p in args.split(",")]
        if len(parts) < n or not parts[0].isdigit():
            raise ScpiError(*ILLEGAL_PARAMETER)
        if not BLOCK_RANGE[0] <= int(parts[0]) <= BLOCK_RANGE[1]:
            raise ScpiError(*ILLEGAL_PARAMETER)
        if self.program_running():
            raise ScpiError(-221, "Settings conflict; trigger model running")
        return parts

    def abort(self, args: str) -> None:
        with self.server.lock:
            self.server.sync()
            self.program.abort()

    def initiate(self, args: str) -> None:
        with self.server.lock:
            t = self.server.sync()
            if self.program.state == "EMPTY":
                raise ScpiError(-221, "Settings conflict; trigger model is empty")
            self.program.initiate(t)
            self.program(t)  # blocks due now run at once (the first measurement and test)

    def trig_load(self, args: str) -> None:
        if args.strip().strip("\"'").upper() != "EMPTY":
            raise ScpiError(*ILLEGAL_PARAMETER)
        if self.program_running():
            raise ScpiError(-221, "Settings conflict; trigger model running")
        self.program.load_empty()

    def trig_state_q(self, args: str) -> str:
        self.now()
        return self.program.status()

    def block_measure(self, args: str) -> None:
        parts = self._block_args(args, 1)
        if len(parts) > 1 and parts[1].strip("\"'") not in ("defbuffer1", "defbuffer2"):
            raise ScpiError(-230, "Data corrupt or stale; buffer does not exist")
        if len(parts) > 2 and parts[2] != "1":
            raise ScpiError(*ILLEGAL_PARAMETER)  # the simulator measures one reading per block
        self.program.define(int(parts[0]), ("MEAS",))

    def block_limit(self, args: str) -> None:
        parts = self._block_args(args, 5)
        kind = choice_arg(parts[1], "ABOVe", "BELow", "INside", "OUTside")
        low = number_arg(parts[2], -1e37, 1e37)
        high = number_arg(parts[3], -1e37, 1e37)
        target = int(number_arg(parts[4], *BLOCK_RANGE))
        self.program.define(int(parts[0]), ("LIM", kind, low, high, target))

    def block_delay(self, args: str) -> None:
        parts = self._block_args(args, 2)
        self.program.define(int(parts[0]), ("DEL", number_arg(parts[1], 0.0, 10_000.0)))

    def block_always(self, args: str) -> None:
        parts = self._block_args(args, 2)
        self.program.define(int(parts[0]), ("ALW", int(number_arg(parts[1], *BLOCK_RANGE))))

    def block_source(self, args: str) -> None:
        parts = self._block_args(args, 2)
        on = choice_arg(parts[1], "ON", "OFF", "1", "0") in ("ON", "1")
        self.program.define(int(parts[0]), ("SOUR", on))

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
        if self.program_running():
            raise ScpiError(-221, "Settings conflict; trigger model running")
        self.smu["last"] = None
        self.reset_time(args)

    def read_q(self, args: str) -> str:
        return self._elements(args, self.measure)

    def fetch_q(self, args: str) -> str:
        return self._elements(args, self.latest)

    def _elements(self, args: str, reading) -> str:
        parts = [p.strip() for p in args.split(",") if p.strip()]
        buffer = parts[0].strip("\"'") if parts and parts[0][:1] in "\"'" else "defbuffer1"
        elements = [p.upper() for p in parts[1:]] if parts and parts[0][:1] in "\"'" else parts
        if buffer not in ("defbuffer1", "defbuffer2"):
            raise ScpiError(-230, "Data corrupt or stale; buffer does not exist")
        v, i, t = reading()
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
