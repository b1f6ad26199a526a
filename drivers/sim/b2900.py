"""Simulated Keysight B2900-series SMU (B2901A, one channel; SCPI) over the cell model."""

from __future__ import annotations

from .scpi import ILLEGAL_PARAMETER, ScpiError, choice_arg, number_arg
from .smu import SmuSim
from .trigger import Acquisition2900

COUNT_MAX = 100_000

ELEMENT_ORDER = ("VOLT", "CURR", "RES", "TIME", "STAT", "SOUR")


class B2900Sim(SmuSim):
    IDN = "Keysight Technologies,B2901A,MY00000001,4.0.2046.2626"
    error_reply_format = '{code:+d},"{message}"'
    COMMANDS = [
        ("*IDN?", "idn"),
        ("*CLS", "cls"),
        ("*RST", "rst"),
        (":OUTPut[1][:STATe]", "output"),
        (":OUTPut[1][:STATe]?", "output_q"),
        (":OUTPut[1]:OFF:MODE", "accept"),
        (":SOURce[1]:FUNCtion:MODE", "source_func"),
        (":SOURce[1]:FUNCtion:MODE?", "source_func_q"),
        (":SOURce[1]:CURRent[:LEVel][:IMMediate][:AMPLitude]", "source_level_curr"),
        (":SOURce[1]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", "source_level_volt"),
        (":SENSe[1]:VOLTage[:DC]:PROTection[:LEVel]", "vlim"),
        (":SENSe[1]:CURRent[:DC]:PROTection[:LEVel]", "ilim"),
        (":SENSe[1]:FUNCtion[:ON]", "accept"),
        (":SENSe[1]:VOLTage[:DC]:RANGe:AUTO", "accept"),
        (":SENSe[1]:CURRent[:DC]:RANGe:AUTO", "accept"),
        (":FORMat:ELEMents:SENSe", "form_elem"),
        (":SYSTem:TIME:TIMer:COUNt:RESet", "reset_time"),
        (":SOURce[1]:CURRent[:LEVel][:IMMediate][:AMPLitude]?", "source_level_curr_q"),
        (":SOURce[1]:VOLTage[:LEVel][:IMMediate][:AMPLitude]?", "source_level_volt_q"),
        (":MEASure?", "meas_q"),
        (":FETCh[:SCALar]?", "fetch_q"),
        (":SYSTem:ERRor[:NEXT]?", "syst_err"),
        (":ABORt:ACQuire", "abort"),
        (":INITiate[:IMMediate]:ACQuire", "initiate"),
        (":TRIGger[1]:ACQuire:SOURce", "trig_source"),
        (":TRIGger[1]:ACQuire:TIMer", "trig_timer"),
        (":TRIGger[1]:ACQuire:COUNt", "trig_count"),
        (":ARM[1]:ACQuire:COUNt", "arm_count"),
        (":CALCulate[1]:FEED", "calc_feed"),
        (":CALCulate[1]:LIMit[1]:FUNCtion", "lim_function"),
        (":CALCulate[1]:LIMit[1]:LOWer[:DATA]", "lim_low"),
        (":CALCulate[1]:LIMit[1]:UPPer[:DATA]", "lim_upp"),
        (":CALCulate[1]:LIMit[1]:STATe", "lim_state"),
        (":CALCulate[1]:LIMit[1]:FAIL?", "lim_fail_q"),
        (":CALCulate[1]:CLIMits:UPDate", "clim_update"),
        (":OUTPut[1]:OFF:AUTO", "auto_off"),
    ]

    def __init__(self, server):
        super().__init__(server)
        self.smu.setdefault("elements", ("VOLT", "CURR", "RES", "TIME", "STAT", "SOUR"))
        defaults = dict(
            trig_timer=1.0,
            trig_count=1,
            arm_count=1,
            feed="VOLT",
            lim_low=-1e37,
            lim_upp=1e37,
            lim_state=False,
            clim_update="END",
            auto_off=False,
            trig_source="AINT",
        )
        for key, value in defaults.items():
            self.smu.setdefault(key, value)

    def make_program(self):
        return Acquisition2900(self.model, self.smu)

    def program_running(self) -> bool:
        self.now()
        return self.program.running

    # acquisition and limit test --------------------------------------------------------
    def _idle_only(self) -> None:
        if self.program_running():
            raise ScpiError(-221, "Settings conflict; acquisition running")

    def abort(self, args: str) -> None:
        with self.server.lock:
            self.server.sync()
            self.program.abort()

    def initiate(self, args: str) -> None:
        if self.smu["trig_source"] != "TIM":
            raise ScpiError(-221, "Settings conflict; the simulator triggers by timer only")
        with self.server.lock:
            t = self.server.sync()
            self.program.initiate(t)
            self.program(t)

    def trig_source(self, args: str) -> None:
        self._idle_only()
        self.smu["trig_source"] = choice_arg(args, "TIMer", "AINT", "BUS")

    def trig_timer(self, args: str) -> None:
        self._idle_only()
        self.smu["trig_timer"] = number_arg(args, 1e-5, 1e5)

    def trig_count(self, args: str) -> None:
        self._idle_only()
        self.smu["trig_count"] = int(number_arg(args, 1, COUNT_MAX))

    def arm_count(self, args: str) -> None:
        self._idle_only()
        text = args.strip().upper()
        self.smu["arm_count"] = (
            float("inf") if text in ("INF", "INFINITY") else int(number_arg(args, 1, COUNT_MAX))
        )

    def calc_feed(self, args: str) -> None:
        self.smu["feed"] = choice_arg(args, "VOLTage", "CURRent")

    def lim_function(self, args: str) -> None:
        if choice_arg(args, "LIMit", "COMPliance") != "LIM":
            raise ScpiError(*ILLEGAL_PARAMETER)  # the simulator tests values only

    def lim_low(self, args: str) -> None:
        self.smu["lim_low"] = number_arg(args, -1e37, 1e37)

    def lim_upp(self, args: str) -> None:
        self.smu["lim_upp"] = number_arg(args, -1e37, 1e37)

    def lim_state(self, args: str) -> None:
        self.smu["lim_state"] = choice_arg(args, "ON", "OFF", "1", "0") in ("ON", "1")

    def lim_fail_q(self, args: str) -> str:
        self.now()
        return "1" if self.program.failed else "0"

    def clim_update(self, args: str) -> None:
        self.smu["clim_update"] = choice_arg(args, "IMMediate", "END")

    def auto_off(self, args: str) -> None:
        self.smu["auto_off"] = choice_arg(args, "ON", "OFF", "1", "0") in ("ON", "1")

    def source_func(self, args: str) -> None:
        self.smu["source"] = choice_arg(args, "CURRent", "VOLTage")
        self.apply()

    def source_func_q(self, args: str) -> str:
        return self.smu["source"]

    def form_elem(self, args: str) -> None:
        names = [
            choice_arg(a, "VOLTage", "CURRent", "RESistance", "TIME", "STATus", "SOURce")
            for a in args.split(",")
        ]
        self.smu["elements"] = tuple(e for e in ELEMENT_ORDER if e in names)

    def meas_q(self, args: str) -> str:
        return self._elements(args, self.measure)

    def fetch_q(self, args: str) -> str:
        return self._elements(args, self.latest)

    def _elements(self, args: str, reading) -> str:
        if args and args.replace(" ", "") not in ("(@1)",):
            raise ScpiError(*ILLEGAL_PARAMETER)
        v, i, t = reading()
        values = {
            "VOLT": v,
            "CURR": i,
            "RES": v / i if i else 9.91e37,
            "TIME": t - self.smu["t0"],
            "STAT": 0.0,
            "SOUR": i if self.smu["source"] == "CURR" else v,
        }
        out = []
        for e in self.smu["elements"]:
            out.append(f"{int(values[e]):+d}" if e == "STAT" else f"{values[e]:+.6E}")
        return ",".join(out)
