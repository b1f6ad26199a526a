"""What SCPI source-measure units (Keithley 2450, Keysight B2900) share.

The command tables stay per instrument (their SCPI differs: ``VLIM`` vs ``PROT``,
``:READ?`` buffer elements vs ``:MEAS?`` with ``FORM:ELEM``, ``:SOUR:FUNC`` vs
``:SOUR:FUNC:MODE``, error reply ``0,"No error"`` vs ``+0,"No error"``). This base
holds the connection, the error queue, sign conversion and the channel protocol of
:class:`cyclerflow.acquire.instrument.SourceMeterChannel`; a subclass supplies the
command table and the few sequences that differ.
"""

from __future__ import annotations

import numpy as np

from cyclerflow.acquire.instrument import Sample
from cyclerflow.errors import InputError, InstrumentError

from .commands import CommandSet
from .simclock import clock_rate_from
from .transports import Transport, open_transport


class ScpiSmuChannel:
    """A SourceMeterChannel over SCPI. ``polarity=-1`` if the cell is wired reversed."""

    commands: CommandSet
    driver = "scpi"
    model_keyword = ""  # must appear in *IDN?
    # read_around_switch: a source change can be sent in one program message between two
    # readings (see :meth:`_configure`)
    capabilities = frozenset({"cc", "cv", "ocv", "read_around_switch"})
    max_errors = 32

    def __init__(
        self,
        resource: str,
        *,
        name: str | None = None,
        timeout_s: float = 2.0,
        polarity: int = 1,
        ocv_voltage_limit_v: float = 20.0,
        transport: Transport | None = None,
        **transport_options,
    ):
        if polarity not in (1, -1):
            raise InputError(f"{self.driver}: polarity must be +1 or -1, got {polarity!r}")
        self.resource = resource
        self.name = name or self.driver
        self.polarity = polarity
        self.ocv_voltage_limit_v = ocv_voltage_limit_v
        self.transport = transport or open_transport(
            resource, name=self.driver, timeout_s=timeout_s, **transport_options
        )
        self._idn = ""
        self._mode: str | None = None  # "cc", "cv" (source function configured) or None

    # helpers ------------------------------------------------------------------------
    def _w(self, name: str, value: object = None) -> str:
        return self.commands.write(self.transport, name, value)

    def _q(self, name: str, value: object = None):
        return self.commands.query(self.transport, name, value)

    def _label(self) -> str:
        return f"{self.driver} ({self.resource})"

    def check_errors(self, context: str) -> None:
        """Raise :class:`InstrumentError` if the instrument's error queue is not empty."""
        errs = self.errors()
        if errs:
            raise InstrumentError(
                f"{self._label()}: after {context}: instrument reported {'; '.join(errs)}"
            )

    # SourceMeterChannel ---------------------------------------------------------------------
    def connect(self) -> None:
        self.transport.open()
        self._idn = self._q("identify")
        if self.model_keyword and self.model_keyword not in self._idn:
            self.transport.close()
            raise InstrumentError(
                f"{self._label()}: '*IDN?' answered {self._idn!r}, which is not a {self.model_keyword}"
            )
        for name, value in self.setup_sequence():
            self._w(name, value)
        self._mode = None
        self.check_errors("connect")

    def setup_sequence(self) -> list[tuple[str, object]]:
        return [("clear_status", None)]

    def close(self) -> None:
        try:
            self.output_off()
        except InstrumentError:
            pass
        finally:
            self.transport.close()

    def identify(self) -> str:
        if not self._idn:
            self._idn = self._q("identify")
        return self._idn

    def clock_rate(self) -> float:
        """How fast the instrument's clock runs relative to real time (1.0 on hardware;
        a simulator's speed-up from the ``sim-clock=`` field of its ``*IDN?`` reply)."""
        return clock_rate_from(self.identify(), source=self._label())

    def output_off(self) -> None:
        self._w("output_off")

    def errors(self) -> list[str]:
        out = []
        for _ in range(self.max_errors):
            code, message = self._q("next_error")
            if code == 0:
                break
            out.append(f'{code},"{message}"')
        return out

    def source_current(
        self, current_a: float, voltage_limit_v: float, *, read_around: bool = False
    ) -> tuple[Sample, Sample] | None:
        return self._configure(
            "cc", self.polarity * current_a, abs(voltage_limit_v), read_around=read_around
        )

    def source_voltage(
        self, voltage_v: float, current_limit_a: float, *, read_around: bool = False
    ) -> tuple[Sample, Sample] | None:
        return self._configure(
            "cv", self.polarity * voltage_v, abs(current_limit_a), read_around=read_around
        )

    def open_circuit(self, *, read_around: bool = False) -> tuple[Sample, Sample] | None:
        """Source 0 A (a current source at zero is high-impedance): reads still work."""
        return self._configure("cc", 0.0, self.ocv_voltage_limit_v, read_around=read_around)

    def read(self) -> Sample:
        return self._sample(self._q("read"), self._mode)

    def _sample(self, values: list[float], mode: str | None) -> Sample:
        voltage, current, time_s = self._reading(values, mode)
        return Sample(
            time_s=time_s, voltage_v=self.polarity * voltage, current_a=self.polarity * current
        )

    def measure_eis(self, f_start_hz, f_stop_hz, points_per_decade, amplitude, dc_level=0.0):
        raise InstrumentError(f"{self._label()}: EIS is not available on a DC source-measure unit")

    # per instrument ----------------------------------------------------------------------
    def _configure(
        self, mode: str, level: float, limit: float, *, read_around: bool = False
    ) -> tuple[Sample, Sample] | None:
        """Send the source sequence for ``mode``. With ``read_around``, the sequence goes
        in one program message between two reading queries (``READ?;<source
        commands>;READ?``): the instrument takes the last reading before the change and
        the first after it back to back, however long the host takes between its own
        reads. Returns ``(before, after)`` then, else None."""
        # format (and range-check) the whole sequence before anything is sent
        sent = [
            self.commands.format(n, v)
            for n, v in self.configure_sequence(mode, level, limit, self._mode != mode)
        ]
        old_mode = self._mode
        if not read_around:
            for text in sent:
                self.transport.write(text)
            self._mode = mode
            self.check_errors(" / ".join(repr(s) for s in sent))
            return None
        read = self.commands.format("read")
        message = ";".join([read, *sent, read])
        reply = self.transport.query(message)
        self._mode = mode
        parts = reply.split(";")
        if len(parts) != 2:
            raise InstrumentError(
                f"{self._label()}: {message!r}: garbled reply {reply[:80]!r} "
                "(expected two readings separated by ';')"
            )
        source = getattr(self.transport, "resource", "")
        before = self._sample(self.commands.parse("read", parts[0], message, source), old_mode)
        after = self._sample(self.commands.parse("read", parts[1], message, source), mode)
        self.check_errors(repr(message))
        return before, after

    def configure_sequence(self, mode: str, level: float, limit: float, new_mode: bool):
        raise NotImplementedError

    def _reading(self, values: list[float], mode: str | None) -> tuple[float, float, float]:
        """(voltage V, current A, instrument time s) from a reading's values in ``mode``."""
        raise NotImplementedError


def as_array(x) -> np.ndarray:
    return np.asarray(x, dtype="f8")
