"""SCPI parsing for simulated instruments: long/short keyword forms, ``;``-separated
commands, quoted strings, an error queue (``-113 Undefined header`` and friends)."""

from __future__ import annotations

import re
from collections import deque

from .server import Protocol

UNDEFINED_HEADER = (-113, "Undefined header")
DATA_OUT_OF_RANGE = (-222, "Parameter data out of range")
ILLEGAL_PARAMETER = (-224, "Illegal parameter value")
DATA_TYPE = (-104, "Data type error")


def _short(token: str) -> str:
    return "".join(ch for ch in token if ch.isupper() or ch.isdigit() or ch in "*?")


def keyword_match(pattern: str, header: str) -> bool:
    """True if ``header`` (as sent) matches ``pattern`` written as ``:SOURce:CURRent[:LEVel]``.

    Each keyword may be sent in its short (upper-case letters) or long form, any case;
    bracketed keywords are optional; a leading colon is optional.
    """
    pat = pattern.lstrip(":")
    head = header.strip().lstrip(":").upper()
    tokens = re.findall(r"\[:?([^\]]+)\]|:?([^:\[\]]+)", pat)
    parts = head.split(":") if head else []

    def match(ti: int, pi: int) -> bool:
        if ti == len(tokens):
            return pi == len(parts)
        optional, required = tokens[ti]
        word = optional or required
        if pi < len(parts) and parts[pi] in (word.upper(), _short(word).upper()):
            if match(ti + 1, pi + 1):
                return True
        return bool(optional) and match(ti + 1, pi)

    return match(0, 0)


def split_commands(line: str) -> list[str]:
    """Split a program message at ``;`` outside quotes."""
    out, cur, quote = [], [], ""
    for ch in line:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            cur.append(ch)
        elif ch == ";":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [c.strip() for c in out if c.strip()]


def parse_number(text: str) -> float:
    t = text.strip().upper()
    if t in ("ON",):
        return 1.0
    if t in ("OFF",):
        return 0.0
    return float(t)


class ScpiProtocol(Protocol):
    """Dispatch SCPI commands to handler methods.

    Subclasses set ``COMMANDS = [(pattern, method_name), ...]``; patterns end with ``?``
    for queries. A handler gets the argument text and returns the reply (queries) or None.
    Raising ``ScpiError(code, message)`` puts an entry in the error queue.
    """

    COMMANDS: list[tuple[str, str]] = []
    error_reply_format = '{code},"{message}"'

    def __init__(self, server):
        super().__init__(server)
        self.errors: deque[tuple[int, str]] = server.state.setdefault("errors", deque(maxlen=32))

    def push_error(self, code: int, message: str) -> None:
        self.errors.append((code, message))

    def inject_error(self) -> None:
        self.push_error(*DATA_OUT_OF_RANGE)

    def next_error(self) -> str:
        code, message = self.errors.popleft() if self.errors else (0, "No error")
        return self.error_reply_format.format(code=code, message=message)

    def handle(self, line: str) -> list[str]:
        replies = []
        for cmd in split_commands(line):
            header, _, args = cmd.partition(" ")
            handler = None
            for pattern, name in self.COMMANDS:
                if pattern.endswith("?") != header.endswith("?"):
                    continue
                if keyword_match(pattern.rstrip("?"), header.rstrip("?")):
                    handler = getattr(self, name)
                    break
            if handler is None:
                self.push_error(*UNDEFINED_HEADER)
                continue
            try:
                reply = handler(args.strip())
            except ScpiError as err:
                self.push_error(err.code, err.message)
                continue
            if reply is not None:
                replies.append(reply)
        return [";".join(replies)] if replies else []


class ScpiError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(f"{code},{message}")
        self.code, self.message = code, message


def number_arg(args: str, lo: float, hi: float) -> float:
    """A numeric argument in [lo, hi], or a SCPI error."""
    try:
        value = parse_number(args)
    except ValueError:
        raise ScpiError(*DATA_TYPE) from None
    if not (lo <= value <= hi):
        raise ScpiError(*DATA_OUT_OF_RANGE)
    return value


def choice_arg(args: str, *choices: str) -> str:
    """One of ``choices`` (short or long form, quoted or not), returned in canonical form."""
    text = args.strip().strip("\"'").upper()
    for c in choices:
        if text in (c.upper(), _short(c).upper()):
            return _short(c).upper() or c.upper()
    raise ScpiError(*ILLEGAL_PARAMETER)
