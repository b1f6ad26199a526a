"""Errors that the command line reports as one clear line with exit code 2."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: a file, row, key or value that is not what was expected.

    The message names *what* and *where* (file, line/row/byte offset, key) and what
    was expected. The CLI prints it as one line and exits with code 2.
    """

    def __init__(self, message: str, *, path: object | None = None, where: str | None = None):
        self.path = None if path is None else str(path)
        self.where = where
        parts = []
        if self.path:
            parts.append(self.path + (f" ({where})" if where else ""))
        elif where:
            parts.append(where)
        parts.append(message)
        super().__init__(": ".join(parts))
        self.bare_message = message


class InstrumentError(RuntimeError):
    """An instrument failed: no reply, garbled reply, error queue not empty, lost link."""


class SafetyStop(RuntimeError):
    """A host-side safety limit was breached; the output has been switched off."""
