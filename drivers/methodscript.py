"""PalmSens MethodSCRIPT: number text, script building and the reply/packet parser.

Replies of a MethodSCRIPT device, one per line:

- ``e``            the script was accepted and runs
- ``M0007``        a measurement loop starts (4 hex digits)
- ``P...``         a data packet: ``;``-separated variables, each ``tt`` (2-char variable
                   type) + 7 hex digits (value + 0x8000000 offset) + 1 SI-prefix char,
                   optionally followed by ``,``-separated metadata (first hex digit = kind:
                   1 status, 2 current range, 4 potential range; the rest = hex value),
                   e.g. ``Pda7F85F3Fu;ba48D503Dp,10,288``
- ``*``            a measurement loop ended
- ``!XXXX: Line n, Col c`` (or ``!XXXX``)  an error (hex code)
- ``T...``         text (``send_string``)
- empty line       the script ended
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cyclerflow.errors import InstrumentError

OFFSET = 0x8000000
SI_PREFIX = {
    "a": 1e-18,
    "f": 1e-15,
    "p": 1e-12,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    " ": 1.0,
    "i": 1.0,  # integer, no prefix
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
}
# MethodSCRIPT variable types used here -> (quantity, SI unit)
VAR_TYPES = {
    "aa": ("unknown", ""),
    "ab": ("we_potential", "V"),
    "ac": ("ce_potential", "V"),
    "ae": ("re_potential", "V"),
    "ba": ("we_current", "A"),
    "ca": ("phase", "deg"),
    "cb": ("impedance", "Ohm"),
    "cc": ("z_real", "Ohm"),
    "cd": ("z_imag", "Ohm"),
    "da": ("set_potential", "V"),
    "db": ("set_current", "A"),
    "dc": ("set_frequency", "Hz"),
    "dd": ("set_ac_amplitude", "V"),
    "eb": ("time", "s"),
}
STATUS_FLAGS = {0x1: "timing_error", 0x2: "overload", 0x4: "underload", 0x8: "overload_warning"}
METADATA_KINDS = {"1": "status", "2": "current_range", "4": "potential_range"}
ERROR_CODES = {
    0x0004: "unknown command",
    0x0005: "invalid argument",
    0x000C: "script syntax error",
    0x4003: "invalid variable",
}


@dataclass
class Value:
    """One decoded packet variable."""

    type: str
    value: float
    metadata: dict[str, int] = field(default_factory=dict)

    @property
    def quantity(self) -> str:
        return VAR_TYPES.get(self.type, (self.type, ""))[0]

    @property
    def status_flags(self) -> list[str]:
        status = self.metadata.get("status", 0)
        return [name for bit, name in STATUS_FLAGS.items() if status & bit]


@dataclass
class Reply:
    """One parsed reply line: ``kind`` in accepted, loop_start, packet, loop_end, error, text, end."""

    kind: str
    values: list[Value] = field(default_factory=list)
    code: int = 0
    text: str = ""

    def get(self, var_type: str) -> float | None:
        return next((v.value for v in self.values if v.type == var_type), None)


def encode_value(var_type: str, value: float, metadata: str = "") -> str:
    """``('ba', 1.5e-5)`` -> ``'ba8003A98n'``: smallest prefix whose mantissa fits in 27 bits."""
    for prefix in ("a", "f", "p", "n", "u", "m", " ", "k", "M", "G", "T"):
        mantissa = round(value / SI_PREFIX[prefix])
        if abs(mantissa) < OFFSET:
            break
    return f"{var_type}{mantissa + OFFSET:07X}{prefix}{metadata}"


def parse_value(text: str, *, where: str = "") -> Value:
    """Decode one packet variable such as ``ba48D503Dp,10,288``."""
    head, *meta = text.split(",")
    if len(head) != 10 or head[9] not in SI_PREFIX:
        raise ValueError(f"bad variable {text!r}")
    var_type, hex_value, prefix = head[:2], head[2:9], head[9]
    if not var_type.isalpha() or not var_type.islower():
        raise ValueError(f"bad variable type in {text!r}")
    value = (int(hex_value, 16) - OFFSET) * SI_PREFIX[prefix]
    metadata = {}
    for m in meta:
        if not m or m[0] not in METADATA_KINDS:
            raise ValueError(f"bad metadata {m!r} in {text!r}")
        metadata[METADATA_KINDS[m[0]]] = int(m[1:], 16)
    return Value(var_type, value, metadata)


def parse_reply(line: str, *, source: str = "palmsens", context: str = "") -> Reply:
    """Parse one reply line; a malformed line is an InstrumentError naming source and context."""
    ctx = f" {context!r}:" if context else ""
    if line == "":
        return Reply("end")
    try:
        first = line[0]
        if first == "P":
            return Reply("packet", [parse_value(v) for v in line[1:].split(";")])
        if first == "e" and line == "e":
            return Reply("accepted")
        if first == "M" and len(line) == 5:
            return Reply("loop_start", code=int(line[1:], 16))
        if line == "*":
            return Reply("loop_end")
        if first == "!":
            code_text, _, where = line[1:].partition(":")
            code = int(code_text, 16)
            desc = ERROR_CODES.get(code, "error")
            return Reply(
                "error", code=code, text=f"!{code_text} {desc}{(' at' + where) if where else ''}"
            )
        if first == "T":
            return Reply("text", text=line[1:])
    except ValueError:
        pass
    raise InstrumentError(f"{source}:{ctx} garbled reply {line[:60]!r} (not a MethodSCRIPT reply)")


def si_text(value: float) -> str:
    """A number as MethodSCRIPT text with an SI prefix and an integer mantissa: 4.2 -> '4200m'."""
    if value == 0:
        return "0"
    for prefix in ("", "m", "u", "n", "p", "f"):
        scale = SI_PREFIX[prefix or " "]
        mantissa = value / scale
        if (
            abs(mantissa - round(mantissa)) <= 1e-9 * max(1.0, abs(mantissa))
            or abs(mantissa) >= 1e6
        ):
            return f"{round(mantissa)}{prefix}"
    return f"{round(value / 1e-15)}f"


def parse_si_text(text: str) -> float:
    """Inverse of :func:`si_text` (also accepts a decimal mantissa and the ``i`` suffix)."""
    t = text.strip()
    if t and t[-1] in SI_PREFIX and not t[-1].isdigit() and t[-1] != " ":
        return float(t[:-1]) * SI_PREFIX[t[-1]]
    return float(t)


def packet_block(indent: str, names: list[str]) -> list[str]:
    return [f"{indent}pck_start", *[f"{indent}  pck_add {n}" for n in names], f"{indent}pck_end"]
