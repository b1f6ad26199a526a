"""Simulated Keysight B2900-series SMU (B2901A, one channel; SCPI) over the cell model."""

from __future__ import annotations

from .scpi import ILLEGAL_PARAMETER, ScpiError, choice_arg
from .smu import SmuSim

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
        (":MEASure?", "meas_q"),
        (":SYSTem:ERRor[:NEXT]?", "syst_err"),
    ]

    def __init__(self, server):
        super().__init__(server)
        self.smu.setdefault("elements", ("VOLT", "CURR", "RES", "TIME", "STAT", "SOUR"))

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
        if args and args.replace(" ", "") not in ("(@1)",):
            raise ScpiError(*ILLEGAL_PARAMETER)
        v, i, t = self.measure()
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
