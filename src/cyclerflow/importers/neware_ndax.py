"""Neware BTS ``.ndax`` (zip of XML + binary ``.ndc``) and ``.nda`` files, via fastnda (BSD-3).

fastnda decodes the records (zipfile checks the CRC of every member it reads); when it
fails, this module checks the container (zip structure and CRCs, so a damaged file fails
with the name of the damaged member and its offset). This module maps the columns to BDF
names in SI units and keeps the vendor's numbering:

- ``vendor_cycle_index``: Neware's cycle number as stored in the file;
- ``cycle_count`` (ours): starts at 1 and goes up at each charge step that follows a
  discharge step (same rule as the other importers: a cycle is charge then discharge);
- ``vendor_step_index`` / ``step_index``: the step number in the Neware protocol;
  ``step_count``: Neware's running step counter;
- ``vendor_step_type``: Neware step type code (1 CC_Chg, 2 CC_DChg, 4 Rest, 7 CCCV_Chg ...;
  the table is in the header text).

Neware's current is already > 0 when charging. Capacity and energy restart at each step:
``charge_capacity_ampere_hour`` holds the step's charge capacity on charge steps and 0
elsewhere, ``discharge_capacity_ampere_hour`` likewise on discharge steps.
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import numpy as np

from cyclerflow.errors import InputError
from cyclerflow.importers.common import Imported

FORMAT = "neware-ndax"
EXTENSIONS = (".ndax", ".nda", ".zip")
WHAT = "Neware .ndax"
NDA_MAGIC = b"NEWARE"

#: Neware step type codes that charge / discharge the cell
CHARGE_TYPES = frozenset({1, 3, 7, 9, 11, 18, 27, 29})
DISCHARGE_TYPES = frozenset({2, 8, 10, 19, 20, 26, 28})


def sniff(path: Path, head: bytes) -> bool:
    """A zip holding ``data.ndc`` (.ndax) or a file starting with ``NEWARE`` (.nda)."""
    if head.startswith(NDA_MAGIC):
        return True
    if not head.startswith(b"PK\x03\x04"):
        return False
    if b"data.ndc" in head or b"VersionInfo.xml" in head or b"TestInfo.xml" in head:
        return True
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        return "data.ndc" in names or any(n.lower().endswith((".nda", ".ndax")) for n in names)
    except Exception:  # noqa: BLE001 - sniffing never raises
        return False


def _check_container(path: Path) -> None:
    """Zip structure and CRCs; raises naming the damaged member."""
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{WHAT}: file is empty", path=path)
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            if "data.ndc" not in names:
                raise InputError(
                    f"{WHAT}: zip has no 'data.ndc' member (members: {names[:8]})", path=path
                )
            for info in z.infolist():
                try:
                    with z.open(info) as fh:
                        while fh.read(1 << 20):
                            pass
                except Exception as err:  # noqa: BLE001 - zlib/isal/zipfile errors on damage
                    raise InputError(
                        f"{WHAT}: damaged zip member {info.filename!r} ({err})",
                        path=path,
                        where=f"byte {info.header_offset}",
                    ) from None
    except zipfile.BadZipFile as err:
        raise InputError(
            f"{WHAT}: not a valid zip container ({err}); truncated or not an .ndax file", path=path
        ) from None
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - zipfile raises many kinds on damaged headers
        raise InputError(
            f"{WHAT}: cannot open the zip container ({type(err).__name__}: {err})", path=path
        ) from None


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _run_fastnda(path: Path, what: str):
    """Call fastnda; any failure inside it becomes one InputError."""
    try:
        import fastnda
    except ImportError:
        raise InputError(
            f"{what}: reading Neware files needs fastnda (pip install fastnda)", path=path
        ) from None

    log = logging.getLogger("fastnda")
    cap = _Capture()
    old_propagate = log.propagate
    log.addHandler(cap)
    log.propagate = False
    try:
        df = fastnda.read(path, cycle_mode="raw", raw_categories=True)
        meta = fastnda.read_metadata(path) if path.suffix.lower() == ".ndax" else {}
    except (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError):
        raise
    except BaseException as err:  # noqa: BLE001 - fastnda/polars may raise anything on damaged data (incl. Rust panics)
        raise InputError(
            f"{what}: cannot decode the records ({type(err).__name__}: {err})", path=path
        ) from None
    finally:
        log.removeHandler(cap)
        log.propagate = old_propagate
    return df, meta, cap.messages


def _kind_of(step_type: np.ndarray) -> np.ndarray:
    """+1 charge, -1 discharge, 0 other for each row's step type code (a table lookup)."""
    st = np.asarray(step_type)
    if st.dtype.kind == "u" and st.dtype.itemsize <= 2:
        table = np.zeros(1 << (8 * st.dtype.itemsize), dtype="i1")
        table[list(CHARGE_TYPES)] = 1
        table[list(DISCHARGE_TYPES)] = -1
        return table[st]
    kind = np.zeros(len(st), dtype="i1")
    kind[np.isin(st, list(CHARGE_TYPES))] = 1
    kind[np.isin(st, list(DISCHARGE_TYPES))] = -1
    return kind


def our_cycle_count(step_type: np.ndarray) -> np.ndarray:
    """Cycle number from 1, +1 at each charge step that follows a discharge step."""
    kind = _kind_of(step_type)
    st = np.asarray(step_type)
    out = np.empty(len(st), dtype="i8")
    cycle, seen_dchg = 1, False
    # work per run of equal step type (fast on long files)
    starts = np.flatnonzero(np.r_[True, st[1:] != st[:-1]])
    ends = np.r_[starts[1:], len(st)]
    for a, b, k in zip(starts.tolist(), ends.tolist(), kind[starts].tolist(), strict=True):
        if k > 0 and seen_dchg:
            cycle += 1
            seen_dchg = False
        elif k < 0:
            seen_dchg = True
        out[a:b] = cycle
    return out


def _inner_member(path: Path) -> str | None:
    """The one .nda/.ndax inside a plain .zip (not an .ndax container), else None."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except Exception:  # noqa: BLE001 - not a readable zip: the container check reports it
        return None
    if "data.ndc" in names:
        return None
    inner = [n for n in names if n.lower().endswith((".nda", ".ndax")) and not n.endswith("/")]
    if len(inner) > 1:
        raise InputError(f"{WHAT}: the zip holds several Neware files {inner[:4]}", path=path)
    return inner[0] if inner else None


def _read_zipped(path: Path, member: str) -> Imported:
    """Extract the Neware file of a .zip to a temporary folder and read it there."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / Path(member).name
        try:
            with zipfile.ZipFile(path) as z, z.open(member) as src:
                target.write_bytes(src.read())
        except Exception as err:  # noqa: BLE001 - zlib/zipfile errors on damage
            raise InputError(f"{WHAT}: damaged zip member {member!r} ({err})", path=path) from None
        try:
            imp = read(target)
        except InputError as err:
            raise InputError(f"{err.bare_message} (zip member {member!r})", path=path) from None
    imp["header"] = f"# read from zip member {member}\n" + imp["header"]
    return imp


def _decode(path: Path) -> tuple[object, dict, list[str], str]:
    """Check the file and run fastnda: (frame, metadata, reader warnings, what)."""
    suffix = path.suffix.lower()
    with open(path, "rb") as fh:
        magic = fh.read(len(NDA_MAGIC))
    if suffix == ".nda" or magic == NDA_MAGIC:
        what = "Neware .nda"
        if path.stat().st_size == 0:
            raise InputError(f"{what}: file is empty", path=path)
        if suffix != ".nda":
            raise InputError(f"{what}: rename the file to .nda to read it", path=path)
    else:
        what = WHAT
        if suffix != ".ndax":
            _check_container(path)
            raise InputError(f"{WHAT}: rename the file to .ndax to read it", path=path)
    try:
        df, meta, warnings = _run_fastnda(path, what)
    except InputError:
        # fastnda reads every member it needs in full, so zipfile has checked their
        # CRCs; on any failure the container check names a damaged member and its offset
        if what == WHAT:
            _check_container(path)
        raise
    if df.height == 0:
        raise InputError(f"{what}: the file holds no records", path=path)
    missing = [c for c in ("voltage_V", "current_mA", "total_time_s") if c not in df.columns]
    if missing:
        raise InputError(f"{what}: decoded records lack {missing}", path=path)
    return df, meta, warnings, what


#: fastnda columns stored in mA, mA h, mW h (scaled by 1e-3 to A, A h, W h)
_MILLI = ("current_mA", "capacity_mAh", "energy_mWh")
#: fastnda columns taken as float64 as they are (s, V, aux channels)
_PLAIN = ("total_time_s", "voltage_V", "unix_time_s", "step_time_s")
#: fastnda integer columns (counters, step type code), widened to int64
_INTEGERS = ("step_type", "cycle_count", "step_index", "step_count", "index")


def _block(arrays: list[np.ndarray], dtype: str) -> np.ndarray:
    """Equal-length arrays cast to ``dtype`` in one pass, as the rows of one 2-D block
    (each row a contiguous array; ``unsafe`` casting, as ``np.asarray(v, dtype)``)."""
    if not arrays:
        return np.empty((0, 0), dtype=dtype)
    return np.concatenate(arrays, dtype=dtype, casting="unsafe").reshape(len(arrays), -1)


def _check_whole(stored: dict[str, np.ndarray], names: list[str]) -> None:
    """Counters that fastnda handed over as floats (nulls in a damaged record) must be
    whole and finite: a NaN cast to int64 would become -2**63 without a word."""
    for n in names:
        v = stored[n]
        if v.dtype.kind == "f" and not (np.isfinite(v).all() and (v == np.round(v)).all()):
            bad = int(np.flatnonzero(~np.isfinite(v) | (v != np.round(v)))[0])
            raise ValueError(f"column {n!r}: record {bad} is not a whole number ({v[bad]!r})")


def _columns(df) -> dict[str, np.ndarray]:
    """Every fastnda column used, by fastnda name: float64 (mA, mA h, mW h scaled to
    A, A h, W h; the others as stored) or int64 (``_INTEGERS``).

    The stored float32 / uint32 columns are cast in two passes, one float64 block and
    one int64 block, instead of one cast per column (each cast paid its allocation and
    call); float64 columns are used without a copy. A float32 value widened, then
    multiplied by 1e-3 in float64, has the same bits as before."""
    have = df.columns
    stored = {n: df.get_column(n).to_numpy() for n in have}
    out: dict[str, np.ndarray] = {}
    milli = [n for n in _MILLI if n in stored]
    plain = [n for n in have if n in _PLAIN or n.startswith("aux")]
    narrow = milli + [n for n in plain if stored[n].dtype != np.float64]
    floats = _block([stored[n] for n in narrow], "f8")
    floats[: len(milli)] *= 1e-3
    out.update(zip(narrow, floats, strict=True))
    out.update((n, stored[n]) for n in plain if n not in out)  # float64 already: no copy
    ints = [n for n in _INTEGERS if n in stored]
    _check_whole(stored, ints)
    out.update(zip(ints, _block([stored[n] for n in ints], "i8"), strict=True))
    ordered = {n: out[n] for n in have if n in out}  # the file's column order
    if "step_type" in stored:
        ordered["stored step_type"] = stored["step_type"]
    return ordered


def _numbering(
    col: dict[str, np.ndarray], cyc: dict[str, np.ndarray], units: dict[str, str]
) -> None:
    """Step type, cycle and step numbers, step time, record index (``col``: from
    :func:`_columns`)."""
    if "step_type" in col:
        # the stored uint8 codes: the charge/discharge kind is a table lookup
        cyc["cycle_count"] = our_cycle_count(col["stored step_type"])
        cyc["vendor_step_type"] = col["step_type"]
        units["vendor_step_type"] = "1"
    if "cycle_count" in col:
        cyc["vendor_cycle_index"] = col["cycle_count"]
        cyc.setdefault("cycle_count", cyc["vendor_cycle_index"])
    if "step_index" in col:
        cyc["vendor_step_index"] = col["step_index"]
        cyc["step_index"] = cyc["vendor_step_index"]
    if "step_count" in col:
        cyc["step_count"] = col["step_count"]
    if "step_time_s" in col:
        cyc["step_time_second"] = col["step_time_s"]
        units["step_time_second"] = "s"
    if "index" in col:
        cyc["vendor_record_index"] = col["index"]
        units["vendor_record_index"] = "1"


def _capacity_energy(col: dict[str, np.ndarray], cyc: dict[str, np.ndarray]) -> None:
    """Signed A h / W h counters split into charge and discharge columns (A h, W h).

    Written into preallocated outputs (no temporaries of the column's size)."""
    if "capacity_mAh" in col:
        q = col["capacity_mAh"]  # A h, our own copy: negated in place below
        zero = np.zeros(1)
        cyc["charge_capacity_ampere_hour"] = np.maximum(q, zero)
        np.negative(q, out=q)
        cyc["discharge_capacity_ampere_hour"] = np.maximum(q, zero, out=q)
    if "energy_mWh" in col:
        e = col["energy_mWh"]  # W h
        charge = np.zeros(len(e))
        discharge = np.zeros(len(e))
        np.copyto(charge, e, where=e > 0)
        np.negative(e, out=discharge, where=e < 0)
        cyc["charge_energy_watt_hour"] = charge
        cyc["discharge_energy_watt_hour"] = discharge


def _aux(col: dict[str, np.ndarray], cyc: dict[str, np.ndarray], units: dict[str, str]) -> None:
    """Auxiliary channels: the first non-zero temperature becomes temperature_kelvin;
    every aux column is also kept under its fastnda name."""
    temps = [c for c in col if c.startswith("aux") and c.endswith("_temperature_degC")]
    for c in temps:
        v = col[c]
        if np.any(v != 0):
            cyc["temperature_kelvin"] = v + 273.15
            break
    for c in list(col):
        if not c.startswith("aux"):
            continue
        base = "".join(ch if ch.isalnum() else "_" for ch in c).strip("_")
        if c.endswith("_V"):
            name, unit = base[: -len("_V")] + "_volt", "V"
        elif c.endswith("_degC"):
            name, unit = base[: -len("_degC")] + "_celsius", "degC"
        else:
            name, unit = base + "_unknown", "1"
        cyc["neware_" + name] = col[c]
        units["neware_" + name] = unit


def read(path: str | Path) -> Imported:
    """Read a Neware .ndax/.nda file (or a .zip holding one) into BDF columns
    (SI, current > 0 charging)."""
    path = Path(path)
    if not path.exists():
        raise InputError("input file not found", path=path)
    if path.suffix.lower() == ".zip":
        member = _inner_member(path)
        if member is None:
            raise InputError(f"{WHAT}: the zip holds no .nda/.ndax file", path=path)
        return _read_zipped(path, member)
    df, meta, warnings, what = _decode(path)
    try:
        col = _columns(df)
    except ValueError as err:
        raise InputError(f"{what}: {err}", path=path) from None
    cyc: dict[str, np.ndarray] = {
        "test_time_second": col["total_time_s"],
        "voltage_volt": col["voltage_V"],
        "current_ampere": col["current_mA"],
    }
    if "unix_time_s" in col:
        cyc["unix_time_second"] = col["unix_time_s"]
    units: dict[str, str] = {}
    _numbering(col, cyc, units)
    _capacity_energy(col, cyc)
    _aux(col, cyc, units)
    from fastnda.dicts import STEP_TYPE_MAP

    header = json.dumps(meta, default=str, ensure_ascii=False)
    header += "\n# step type codes: " + ", ".join(f"{k}={v}" for k, v in STEP_TYPE_MAP.items())
    if warnings:
        header += "\n# reader warnings: " + " | ".join(warnings)
    return {"cycling": cyc, "spectra": [], "units": units, "header": header}
