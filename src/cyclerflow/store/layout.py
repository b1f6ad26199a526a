"""Names and shapes of the HDF5 cell file (see docs/file-format.md)."""

from __future__ import annotations

import numpy as np

FORMAT = "cyclerflow.cell"
FORMAT_VERSION = 1

CELL = "cell"
CYCLING = "cycling"
EIS = "eis"
#: while a file is written live (SWMR) new groups cannot be created, so spectra are
#: appended to this flat table and moved into /eis/<id> groups when the file closes.
EIS_STREAM = "eis/_stream"
EVENTS = "events"
PROTOCOL = "protocol"

#: root attribute set by recovery: unix time (s) at which a killed writer's file was closed
RECOVERED_ATTR = "recovered_unix_time_second"

CHUNK_ROWS = 1 << 16  # 65,536 rows per chunk: 512 KiB per float64 column (bulk files)
#: live (SWMR) files grow a few rows a second: small chunks keep a young file small and
#: each flush cheap (32 KiB per float64 column).
LIVE_CHUNK_ROWS = 1 << 12
MIN_CHUNK_ROWS = 1 << 10


def chunk_rows_for(n_rows: int) -> int:
    """Chunk length for a column written with ``n_rows`` rows at once: the next power
    of two, between MIN_CHUNK_ROWS and CHUNK_ROWS (a 50-row cell stays a few kB)."""
    n = MIN_CHUNK_ROWS
    while n < n_rows and n < CHUNK_ROWS:
        n <<= 1
    return n


EVENT_DTYPE = np.dtype(
    [
        ("unix_time_second", "f8"),
        ("test_time_second", "f8"),
        ("kind", "S16"),
        ("step", "i8"),
        ("message", "S240"),
    ]
)

#: per-spectrum attributes kept in the stream table (one row per spectrum)
SPECTRUM_META_DTYPE = np.dtype(
    [
        ("spectrum_id", "i8"),
        ("start_row", "i8"),
        ("n_points", "i8"),
        ("unix_time_second", "f8"),
        ("cycle_count", "i8"),
        ("temperature_kelvin", "f8"),
        ("amplitude", "f8"),
        ("dc_level", "f8"),
        ("technique", "S8"),
    ]
)

SPECTRUM_ATTR_DEFAULTS = {
    "unix_time_second": np.nan,
    "cycle_count": -1,
    "temperature_kelvin": np.nan,
    "amplitude": np.nan,
    "dc_level": np.nan,
    "technique": "PEIS",
}


def spectrum_group_name(spectrum_id: int) -> str:
    return f"{EIS}/{spectrum_id:08d}"
