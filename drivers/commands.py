"""Declarative instrument commands: a command is data (name, template, reply type, range, units).

A driver declares its command set once::

    COMMANDS = CommandSet("keithley2450", [
        Command("source_current", ":SOUR:CURR {value}", type="float", range=(-1.05, 1.05), units="A"),
        Command("read", ':READ? "defbuffer1", READ, SOUR, REL', kind="query", type="floats", count=3),
        ...
    ])

and calls ``COMMANDS.write(transport, "source_current", 1e-5)`` or
``COMMANDS.query(transport, "read")``. Values are range-checked before anything is sent
(:class:`InputError` naming the instrument, command and range); replies are parsed by
type, and a reply that does not parse is an :class:`InstrumentError` naming the
instrument, the command sent and the reply received.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from cyclerflow.errors import InputError, InstrumentError

REPLY_TYPES = ("none", "float", "floats", "int", "bool", "str", "error")


def format_number(value: float) -> str:
    """Shortest exact-enough text for a number in a command (7 significant digits)."""
    text = format(float(value), ".7g")
    return text.replace("e-0", "e-").replace("e+0", "e+")


@dataclass(frozen=True)
class Command:
    """One instrument command.

    ``template`` uses ``{value}`` for the argument (numbers formatted by
    :func:`format_number`, strings as given); ``kind`` is ``write`` or ``query``;
    ``type`` is the argument type for writes and the reply type for queries
    (``float``, ``floats``, ``int``, ``bool``, ``str``, ``error`` = SCPI ``code,"message"``);
    ``range`` (inclusive, SI ``units``; ``"1"`` for a dimensionless number such as a
    mode or a bit mask) and ``choices`` validate the argument; ``fields`` are further
    numeric template fields validated like the argument;
    ``count`` is the number of values a ``floats`` reply must have.
    """

    name: str
    template: str
    kind: str = "write"
    type: str = "none"
    range: tuple[float, float] | None = None
    units: str = ""
    choices: tuple[str, ...] = ()
    count: int | None = None
    number_format: str = "scpi"  # "scpi": 1.5e-05; "si": MethodSCRIPT text such as 15u
    doc: str = ""
    # further numeric fields of the template, validated like ``value``: (name, lo, hi) in ``units``
    fields: tuple[tuple[str, float, float], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("write", "query"):
            raise ValueError(f"command {self.name}: kind must be write or query")
        if self.type not in REPLY_TYPES:
            raise ValueError(f"command {self.name}: unknown type {self.type!r}")


_ERROR_REPLY = re.compile(r'^\s*([-+]?\d+)\s*,\s*"(.*)"\s*$')


@dataclass
class CommandSet:
    """The commands of one instrument family, by name."""

    instrument: str
    commands: Iterable[Command]
    by_name: dict[str, Command] = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {c.name: c for c in self.commands}

    def __getitem__(self, name: str) -> Command:
        return self.by_name[name]

    def __iter__(self):
        return iter(self.by_name.values())

    def format(self, name: str, value: object = None, **fields: object) -> str:
        """The exact text sent for ``name`` with ``value`` (validated)."""
        cmd = self.by_name[name]
        if "{value}" in cmd.template:
            if value is None:
                raise InputError(f"{self.instrument}: command {name} needs a value")
            text = self._check(cmd, value)
        else:
            text = ""
        for fname, lo, hi in cmd.fields:
            if fname not in fields:
                raise InputError(f"{self.instrument}: command {name} needs {fname!r}")
            ranged = Command(
                f"{name}.{fname}",
                "",
                type="float",
                range=(lo, hi),
                units=cmd.units,
                number_format=cmd.number_format,
            )
            fields[fname] = self._check(ranged, fields[fname])
        if cmd.number_format == "si":
            from .methodscript import si_text

            fields = {
                k: si_text(v) if isinstance(v, (int, float)) else v for k, v in fields.items()
            }
        try:
            return cmd.template.format(value=text, **fields)
        except KeyError as err:
            raise InputError(f"{self.instrument}: command {name} needs {err.args[0]!r}") from None

    def _check(self, cmd: Command, value: object) -> str:
        if cmd.choices:
            if str(value).upper() not in {c.upper() for c in cmd.choices}:
                raise InputError(
                    f"{self.instrument}: {cmd.name} = {value!r} is not one of {', '.join(cmd.choices)}"
                )
            return str(value)
        if cmd.type in ("float", "int"):
            try:
                number = float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise InputError(
                    f"{self.instrument}: {cmd.name} needs a number, got {value!r}"
                ) from None
            if number != number:
                raise InputError(f"{self.instrument}: {cmd.name} is NaN")
            if cmd.range is not None and not (cmd.range[0] <= number <= cmd.range[1]):
                lo, hi = cmd.range
                units = "" if cmd.units == "1" else cmd.units  # "1": dimensionless
                raise InputError(
                    f"{self.instrument}: {cmd.name} = {number:g} {units} is outside "
                    f"{lo:g} .. {hi:g} {units}".replace("  ", " ").rstrip()
                )
            if cmd.type == "int":
                return str(int(number))
            if cmd.number_format == "si":
                from .methodscript import si_text

                return si_text(number)
            return format_number(number)
        if cmd.type == "bool":
            return "ON" if value else "OFF"
        return str(value)

    def parse(self, name: str, reply: str, sent: str = "", source: str = ""):
        """Parse ``reply`` to ``sent`` by the reply type of ``name``."""
        cmd = self.by_name[name]
        who = f"{self.instrument}{f' ({source})' if source else ''}"

        def bad(expected: str) -> InstrumentError:
            return InstrumentError(
                f"{who}: {sent or cmd.template!r}: garbled reply {reply[:60]!r} (expected {expected})"
            )

        t = cmd.type
        try:
            if t in ("none", "str"):
                return reply
            if t == "float":
                return float(reply)
            if t == "int":
                return int(float(reply))
            if t == "bool":
                if reply.strip() not in ("0", "1", "ON", "OFF"):
                    raise ValueError
                return reply.strip() in ("1", "ON")
            if t == "floats":
                values = [float(x) for x in reply.split(",")]
                if cmd.count is not None and len(values) != cmd.count:
                    raise ValueError
                return values
            if t == "error":
                m = _ERROR_REPLY.match(reply)
                if not m:
                    raise ValueError
                return int(m.group(1)), m.group(2)
        except ValueError:
            expected = {
                "float": "a number",
                "int": "an integer",
                "bool": "0 or 1",
                "floats": f"{cmd.count or 'several'} comma-separated numbers",
                "error": 'an error entry like 0,"No error"',
            }[t]
            raise bad(expected) from None
        raise AssertionError(t)

    def write(self, transport, name: str, value: object = None, **fields: object) -> str:
        """Send a write command; returns the text sent."""
        cmd = self.by_name[name]
        if cmd.kind != "write":
            raise TypeError(f"{name} is a query")
        text = self.format(name, value, **fields)
        transport.write(text)
        return text

    def query(
        self,
        transport,
        name: str,
        value: object = None,
        *,
        timeout_s: float | None = None,
        **fields,
    ):
        """Send a query and return its parsed reply."""
        cmd = self.by_name[name]
        if cmd.kind != "query":
            raise TypeError(f"{name} is not a query")
        text = self.format(name, value, **fields)
        reply = transport.query(text, timeout_s)
        return self.parse(name, reply, text, getattr(transport, "resource", ""))
