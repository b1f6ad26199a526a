"""A small writer of the documented BioLogic .mpr layout (and the matching .mpt text),
so tests can build files byte by byte with known values (no vendor file needed)."""

from __future__ import annotations

import struct

import numpy as np

MAGIC = b"BIO-LOGIC MODULAR FILE\x1a"
#: data-module version -> (bytes of the column count, offset of the first record)
LAYOUTS = {3: (1, 0x196), 11: (2, 0x3EF)}


def module(short: bytes, long: bytes, content: bytes, version: int, new: bool) -> bytes:
    """One module: names, header (EC-Lab >= 11.50 layout when ``new``), date, content."""
    head = b"MODULE" + short.ljust(10) + long.ljust(25)
    if new:
        head += struct.pack("<iIII", -1, len(content), 0, version)
    else:
        head += struct.pack("<II", len(content), version)
    return head + b"01/02/25" + content


def data_content(ids: list[int], records: np.ndarray, version: int) -> bytes:
    """The content of a data module: record count, column ids, the records (as given)."""
    ncol_size, off = LAYOUTS[version]
    data = struct.pack("<I", len(records))
    data += struct.pack("<H", len(ids)) if ncol_size == 2 else bytes([len(ids)])
    data += struct.pack(f"<{len(ids)}H", *ids)
    return data.ljust(off, b"\0") + records.tobytes()


def make_mpr(ids: list[int], records: np.ndarray, *, new: bool, technique: int = 0x04) -> bytes:
    """An .mpr with settings, data (``records`` packed as given) and LOG modules."""
    version = 11 if new else 3
    data = data_content(ids, records, version)
    log = bytearray(1100)
    struct.pack_into("<d", log, 585, 45659.5)  # 2025-01-02 12:00:00 (OLE days)
    out = MAGIC.ljust(48) + bytes(4)
    out += module(b"VMP Set", b"VMP settings", bytes([technique]) + bytes(100), 0, new)
    out += module(b"VMP data", b"VMP data", data, version, new)
    out += module(b"VMP LOG", b"VMP LOG", bytes(log), 0, new)
    return out


def make_mpt(
    columns: dict[str, np.ndarray], title: str = "Galvanostatic Cycling with Potential Limitation"
) -> bytes:
    """EC-Lab-style text export of the same columns (tab-separated, Latin-1)."""
    header = [
        "EC-Lab ASCII FILE",
        "Nb header lines : 6",
        "",
        title,
        "Acquisition started on : 01/02/2025 12:00:00.000",
    ]
    names = list(columns)
    lines = header + ["\t".join(names) + "\t"]
    n = len(next(iter(columns.values())))
    for i in range(n):
        lines.append(
            "\t".join(
                repr(float(columns[c][i]))
                if columns[c].dtype.kind == "f"
                else str(int(columns[c][i]))
                for c in names
            )
            + "\t"
        )
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")
