"""Clock texts (``hh:mm:ss``) of the Neware BTSDA CSV fast path, eight bytes at a time.

Rows of one width lie back to back in the column's bytes, so the eight bytes
``hh:mm:ss`` of every row can be read as one little-endian ``uint64`` (a strided view,
no copy). One XOR with the layout turns digits into their values and separators into
0; one addition then sets a byte's top bit exactly where a byte is not what the layout
allows (the rows are ASCII, so no carry crosses bytes). The value of each two-digit
field comes from one multiply-add over the whole word. Each step is one numpy pass over
``n`` words instead of one pass per character.

Every function here raises :class:`Doubt` for anything it does not vouch for; the
caller then reads the column (or the file) the careful way.
"""

from __future__ import annotations

import numpy as np


class Doubt(Exception):
    """The fast path cannot vouch for this file: read it the careful way."""


#: the top bit of every byte of a word
HIGH = np.uint64(0x8080808080808080)
CLOCK = b"00:00:00"


def words(block: np.ndarray, width: int, at: int) -> np.ndarray:
    """Bytes ``at .. at + 7`` of every ``width``-long row of ``block`` (contiguous
    uint8, rows back to back, ``at + 8 <= width``) as little-endian uint64, no copy."""
    n = len(block) // width
    return np.ndarray((n,), dtype="<u8", buffer=block, offset=at, strides=(width,))


def _masks(layout: bytes) -> tuple[np.uint64, np.uint64]:
    """(XOR, ADD) words for an 8-byte layout ('0' marks a digit, anything else must
    be matched exactly)."""
    xor = add = 0
    for i, c in enumerate(layout):
        digit = c == 48
        xor |= (48 if digit else c) << (8 * i)
        add |= (0x7F - (9 if digit else 0)) << (8 * i)
    return np.uint64(xor), np.uint64(add)


def checked(w: np.ndarray, layout: bytes) -> np.ndarray:
    """Digit values (and 0 at the separators) of ASCII words laid out like ``layout``
    (a new array); Doubt if any word differs (a non-digit where a digit belongs,
    another separator)."""
    xor, add = _masks(layout)
    x = w ^ xor
    over = x + add  # a byte above its limit (9 for a digit, 0 else) reaches 0x80
    over &= HIGH
    if over.any():
        raise Doubt("clock text laid out differently")
    return x


def pairs(x: np.ndarray) -> np.ndarray:
    """(n, 8) uint8 view whose byte i is 10 * digit i + digit i + 1 of the checked
    words ``x`` (``x`` is overwritten). For ``hh:mm:ss``: hours in column 0, minutes
    in 3, seconds in 6 (each at most 99, so no carry crosses bytes)."""
    y = x * 10
    x >>= 8
    y += x
    return y.view(np.uint8).reshape(len(y), 8)


def clock_seconds(p: np.ndarray, hours: np.ndarray | None = None) -> np.ndarray:
    """``hours * 3600 + minutes * 60`` (int64, a new array) from :func:`pairs` of
    ``hh:mm:ss`` words; ``hours`` (int64, optional) replaces column 0 (more digits)."""
    out = p[:, 0].astype(np.int64) if hours is None else hours
    out *= 60
    out += p[:, 3]
    out *= 60
    return out


def digit_columns(m: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Integer value (int64) of the digits in columns ``start:stop`` of the (n, width)
    bytes ``m``; Doubt for a non-digit."""
    v = np.zeros(len(m), np.int64)
    for j in range(start, stop):
        d = m[:, j] - np.uint8(48)  # wraps above 9 for anything but '0'..'9'
        if (d > 9).any():
            raise Doubt("not a digit")
        v *= 10
        v += d
    return v
