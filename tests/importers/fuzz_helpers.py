"""Byte damage for the importers' fuzz tests (not a test module).

``CUT`` and ``FLIPS`` are the hypothesis strategies; :func:`damage` applies a drawn pair.
"""

from __future__ import annotations

from hypothesis import strategies as st

#: below 0.3 the file is truncated at cut / 0.3 of its length; otherwise it keeps its length
CUT = st.floats(0, 1)
#: up to four (relative position, XOR mask) byte flips
FLIPS = st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=4)


def damage(data: bytes, cut: float, flips: list[tuple[float, int]]) -> bytes:
    """``data`` with its bytes flipped at the ``flips`` positions, then maybe truncated."""
    out = bytearray(data)
    for pos, x in flips:
        out[int(pos * (len(out) - 1))] ^= x
    if cut < 0.3:
        out = out[: int(cut / 0.3 * len(out))]
    return bytes(out)
