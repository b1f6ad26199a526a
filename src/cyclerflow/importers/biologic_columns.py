"""Column ids of the BioLogic ``.mpr`` data module and the record layout they give.

Facts gathered from public descriptions of the format (the EC-Lab/BT-Lab OLE COM user
manual's column list as quoted in several readers, galvani, yadg, eclabfiles and the
vendor files in ../shared/data checked against EC-Lab's own text export). Names are
the EC-Lab text-export names (``name/unit``); dtypes are little-endian numpy codes.
See docs/importers-biologic-neware.md for how the sources were weighed.

Three kinds of entries:

- :data:`DATA_COLUMNS`: id -> (name, dtype), where the sources agree (or one source
  is backed by a vendor file here);
- :data:`AMBIGUOUS_COLUMNS`: id -> candidate (name, dtype) pairs where the sources
  disagree on the width; the data module's size picks the one that fits;
- :data:`WIDTH_ONLY`: ids whose width the sources agree on but whose meaning they
  do not; the column is kept as ``vendor_col_<id>``.

:func:`record_layout` turns a file's id list into a packed record dtype. An id in
none of the tables is "unknown": with exactly one unknown id its width is what is
left of the record size (bytes of records / points) after the known columns; it is
kept as ``vendor_col_<id>`` and reported. Two or more unknown ids cannot be placed
and the layout is refused.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

#: one-bit/two-bit flag columns packed into one byte of each record: id -> (name, bit mask)
FLAG_COLUMNS: dict[int, tuple[str, int]] = {
    1: ("mode", 0x03),
    2: ("ox/red", 0x04),
    3: ("error", 0x08),
    21: ("control changes", 0x10),
    31: ("Ns changes", 0x20),
    65: ("counter inc.", 0x80),
}

_F4, _F8, _U1, _U2, _U4 = "<f4", "<f8", "u1", "<u2", "<u4"


def _series(first: int, names: list[str], dtype: str) -> dict[int, tuple[str, str]]:
    return {first + i: (n, dtype) for i, n in enumerate(names)}


_HARMONICS = (
    [f"|Ewe h{k}|/V" for k in range(2, 8)]
    + [f"|I h{k}|/A" for k in range(2, 8)]
    + [f"|Ece h{k}|/V" for k in range(2, 8)]
)
_QUALITY = [f"{q} {s}/%" for q in ("THD", "NSD", "NSR") for s in ("Ewe", "I", "Ece")]
_DIELECTRIC = [
    "Re(C)/nF",
    "Im(C)/nF",
    "|C|/nF",
    "Phase(C)/deg",
    "Re(M)",
    "Im(M)",
    "|M|",
    "Phase(M)/deg",
    "Re(Permittivity)",
    "Im(Permittivity)",
    "|Permittivity|",
    "Phase(Permittivity)/deg",
    "Re(Conductivity)/mS/cm",
    "Im(Conductivity)/mS/cm",
    "|Conductivity|/mS/cm",
    "Phase(Conductivity)/deg",
    "Re(Resistivity)/Ohm.cm",
    "Im(Resistivity)/Ohm.cm",
    "|Resistivity|/Ohm.cm",
    "Phase(Resistivity)/deg",
    "Tan(Delta)",
    "Loss Angle(Delta)/deg",
    "TCU base/°C",
    "TCU cell/°C",
    "TCU sample/°C",
    "Ewe initial/V",
    "Ewe final/V",
    "I initial/mA",
    "I final/mA",
    "P min/W",
    "P max/W",
    "T min/°C",
    "T max/°C",
]

#: id -> (EC-Lab export name, dtype)
DATA_COLUMNS: dict[int, tuple[str, str]] = {
    # ids met in the vendor files here (checked against EC-Lab's .mpt export)
    4: ("time/s", _F8),
    5: ("control/V/mA", _F4),
    6: ("Ewe/V", _F4),
    7: ("dq/mA.h", _F8),
    8: ("I/mA", _F4),
    9: ("Ece/V", _F4),
    11: ("<I>/mA", _F8),
    13: ("(Q-Qo)/mA.h", _F8),
    16: ("Analog IN 1/V", _F4),
    17: ("Analog IN 2/V", _F4),
    18: ("Analog IN 3/V", _F4),
    19: ("control/V", _F4),
    20: ("control/mA", _F4),
    23: ("dQ/mA.h", _F8),
    24: ("cycle number", _F8),
    26: ("Rapp/Ohm", _F4),
    27: ("Ewe-Ece/V", _F4),
    32: ("freq/Hz", _F4),
    33: ("|Ewe|/V", _F4),
    34: ("|I|/A", _F4),
    35: ("Phase(Z)/deg", _F4),
    36: ("|Z|/Ohm", _F4),
    37: ("Re(Z)/Ohm", _F4),
    38: ("-Im(Z)/Ohm", _F4),
    39: ("I Range", _U2),
    69: ("R/Ohm", _F4),
    70: ("P/W", _F4),
    74: ("|Energy|/W.h", _F8),
    75: ("Analog OUT/V", _F4),
    76: ("<I>/mA", _F4),
    77: ("<Ewe>/V", _F4),
    78: ("Cs-2/µF-2", _F4),
    96: ("|Ece|/V", _F4),
    98: ("Phase(Zce)/deg", _F4),
    99: ("|Zce|/Ohm", _F4),
    100: ("Re(Zce)/Ohm", _F4),
    101: ("-Im(Zce)/Ohm", _F4),
    123: ("Energy charge/W.h", _F8),
    124: ("Energy discharge/W.h", _F8),
    125: ("Capacitance charge/µF", _F8),
    126: ("Capacitance discharge/µF", _F8),
    131: ("Ns", _U2),
    163: ("|Estack|/V", _F4),
    168: ("Rcmp/Ohm", _F4),
    169: ("Cs/µF", _F4),
    172: ("Cp/µF", _F4),
    173: ("Cp-2/µF-2", _F4),
    174: ("<Ewe>/V", _F4),
    178: ("(Q-Qo)/C", _F4),
    179: ("dQ/C", _F4),
    211: ("Q charge/discharge/mA.h", _F8),
    212: ("half cycle", _U4),
    213: ("z cycle", _U4),
    # ids below 256 seen in newer files (yadg's table, galvani/yadg issue threads): stack
    # cells 1 and 2, counter-electrode energies, step time, quality and harmonics
    15: ("Phase(Z1)/deg", _F4),
    45: ("|Z1|/Ohm", _F4),
    46: ("|Z2|/Ohm", _F4),
    105: ("-Im(Z1)/Ohm", _F4),
    106: ("-Im(Z2)/Ohm", _F4),
    110: ("Energy ce/W.h", _F8),
    112: ("Energy we/W.h", _F8),
    115: ("Energy ce charge/W.h", _F8),
    116: ("Energy ce discharge/W.h", _F8),
    135: ("<E1>/V", _F4),
    136: ("<E2>/V", _F4),
    166: ("Phase(Zstack)/deg", _F4),
    167: ("|Zstack|/Ohm", _F4),
    175: ("|Zwe-ce|/Ohm", _F4),
    176: ("Re(Zwe-ce)/Ohm", _F4),
    177: ("-Im(Zwe-ce)/Ohm", _F4),
    182: ("step time/s", _F8),
    185: ("<Ece>/V", _F4),
    206: ("Temperature/°C", _F4),
    215: ("<Ece>/V", _F4),
    **_series(217, _QUALITY, _F4),
    **_series(230, _HARMONICS[:11], _F4),
    **_series(243, _HARMONICS[13:], _F4),
    248: ("Rac/Ohm", _F4),
    249: ("Rdc/Ohm", _F4),
    253: ("Acir/Dcir Control", _U1),
    # stack cells 1 and 2 in the 11.50+ numbering (eclabfiles' and a galvani fork's tables)
    271: ("Phase(Z1)/deg", _F4),
    272: ("Phase(Z2)/deg", _F4),
    301: ("|Z1|/Ohm", _F4),
    302: ("|Z2|/Ohm", _F4),
    331: ("Re(Z1)/Ohm", _F4),
    332: ("Re(Z2)/Ohm", _F4),
    361: ("-Im(Z1)/Ohm", _F4),
    362: ("-Im(Z2)/Ohm", _F4),
    391: ("<E1>/V", _F4),
    392: ("<E2>/V", _F4),
    # Modulo Bat (with EIS) and PEIS-with-Ece files (yadg PRs 224, 233, 235; issue 225)
    352: ("|Ece|/V", _F4),
    368: ("Energy we/W.h", _F8),
    878: ("Energy ce/W.h", _F8),
    884: ("Energy ce discharge/W.h", _F8),
    893: ("Capacitance charge/µF", _F8),
    903: ("<E1>/V", _F4),
    981: ("z cycle", _U4),
    # EC-Lab 11.50+ ids (the 400s): stacks, RRDE disk/ring, times, quality indicators
    **_series(
        422,
        ["Phase(Zstack)/deg", "|Zstack|/Ohm", "Re(Zstack)/Ohm", "-Im(Zstack)/Ohm", "<Estack>/V"],
        _F4,
    ),
    427: ("<Istack>/mA", _F4),
    430: ("Phase(Zwe-ce)/deg", _F4),
    431: ("|Zwe-ce|/Ohm", _F4),
    432: ("Re(Zwe-ce)/Ohm", _F4),
    433: ("-Im(Zwe-ce)/Ohm", _F4),
    437: ("cycle time/s", _F8),
    438: ("step time/s", _F8),
    439: ("charge time/s", _F8),
    440: ("discharge time/s", _F8),
    442: ("d(Q-Qo)/dE/mA.h/V", _F8),
    443: ("Capacity/mA.h", _F8),
    **_series(
        444,
        ["control disk/V", "control disk/mA", "Edisk/V", "Ecedisk=Ecering/V", "Idisk/mA"],
        _F4,
    ),
    449: ("dQdisk/C", _F8),
    450: ("(Q-Qo)disk/C", _F8),
    **_series(452, ["control ring/V", "Ering/V", "Iring/mA"], _F4),
    455: ("(Q-Qo)ring/C", _F8),
    **_series(456, ["Pdisk/W", "Pring/W", "Edisk-Ece/V", "Ering-Ece/V"], _F4),
    461: ("<EweX>/V", _F4),
    462: ("Temperature/°C", _F4),
    463: ("Ramp upwards", _U1),
    464: ("Time/µs", _F4),
    465: ("I Range disk", _U2),
    466: ("I Range ring", _U2),
    467: ("Q charge/discharge/mA.h", _F8),
    468: ("half cycle", _U4),
    469: ("z cycle", _U4),
    470: ("It/mA", _F4),
    471: ("<Ece>/V", _F4),
    472: ("Vcorr/mm/yr", _F4),
    **_series(473, _QUALITY, _F4),
    482: ("ShuntIsChanging", _U1),
    483: ("ModeIsChanging", _U1),
    484: ("NbIterInstr", _U4),
    485: ("Instr", _F4),
    **_series(486, _HARMONICS[:12], _F4),
    503: ("|Ece h7|/V", _F4),
    504: ("Rac/Ohm", _F4),
    505: ("Rdc/Ohm", _F4),
    506: ("TCU control/°C", _F4),
    507: ("TCU meas./°C", _F4),
    508: ("Regulation", _U1),
    509: ("Acir/Dcir Control", _U1),
    510: ("LTime/s", _F8),
    **_series(511, _DIELECTRIC, _F4),
}

#: ids the sources give different widths for: id -> candidates (name, dtype)
AMBIGUOUS_COLUMNS: dict[int, tuple[tuple[str, str], ...]] = {
    434: (("(Q-Qo)/C", _F4), ("(Q-Qo)/C", _F8)),
    435: (("dQ/C", _F4), ("dQ/C", _F8)),
    498: (("|Ece h2|/V", _F4), ("Q charge/mA.h", _F8)),
    499: (("|Ece h3|/V", _F4), ("Q discharge/mA.h", _F8)),
    500: (("|Ece h4|/V", _F4), ("step time/s", _F8)),
    501: (("|Ece h5|/V", _F4), ("Efficiency/%", _F8)),
    502: (("|Ece h6|/V", _F4), ("Capacity/mA.h", _F8)),
}

#: ids whose width is agreed but whose meaning differs between sources: id -> dtype
#: (241 |I h7| or |E1|, 242 |Ece h2| or |E2|, 436 Ece dc or Ewe (EC-Lab Express),
#: 441 <Ecv> or <Ece>)
WIDTH_ONLY: dict[int, str] = {241: _F4, 242: _F4, 436: _F4, 441: _F4, 451: _U4, 460: _F8}

#: how many width combinations of ambiguous ids are tried at most
MAX_COMBINATIONS = 256
#: dtype given to an unknown column of each width (bytes)
UNKNOWN_DTYPES = {1: _U1, 2: _U2, 4: _F4, 8: _F8}


@dataclass(frozen=True)
class Layout:
    """The packed record layout of one data module.

    ``fields``: (field name, dtype) in record order (a ``__flags__`` byte first when
    flag columns exist); ``names``: export name per non-flag id, in id order;
    ``inferred``: ids kept as ``vendor_col_<id>`` with the width found for them.
    """

    dtype: np.dtype
    names: tuple[str, ...]
    inferred: tuple[tuple[int, int], ...]


class LayoutError(ValueError):
    """The ids and the module size do not give one record layout (message says why)."""


def _options(cid: int) -> tuple[tuple[str, str], ...] | None:
    """Candidate (name, dtype) pairs of a non-flag id; None when unknown."""
    if cid in DATA_COLUMNS:
        return (DATA_COLUMNS[cid],)
    if cid in AMBIGUOUS_COLUMNS:
        return AMBIGUOUS_COLUMNS[cid]
    if cid in WIDTH_ONLY:
        return ((f"vendor_col_{cid}", WIDTH_ONLY[cid]),)
    return None


def modulo_width(cid: int) -> str | None:
    """The dtype the id's low byte has in the tables (ids >= 256 repeat the columns of
    ``id % 256``: 438/182 step time, 473/217 THD Ewe, 981/469/213 z cycle ...; yadg
    found the rule), or None. Only the width is taken: the same low byte can name
    different columns (174 ``<Ewe>`` and 430 ``Phase(Zwe-ce)``), so the column is kept
    as ``vendor_col_<id>``."""
    low = cid % 256
    if cid < 256 or low in FLAG_COLUMNS:
        return None
    if low in DATA_COLUMNS:
        return DATA_COLUMNS[low][1]
    return WIDTH_ONLY.get(low)


def _choose(
    opts: list[tuple[tuple[str, str], ...] | None], record_size: int | None
) -> tuple[list[tuple[str, str]], int | None]:
    """One (name, dtype) per column and the width left for the unknown one (or None)."""
    unknown = [i for i, o in enumerate(opts) if o is None]
    known = [o for o in opts if o is not None]
    combos = list(itertools.islice(itertools.product(*known), MAX_COMBINATIONS + 1))
    if len(combos) > MAX_COMBINATIONS:
        raise LayoutError(f"too many columns of uncertain width ({len(combos)}+ layouts)")
    if record_size is None:
        if unknown or len(combos) > 1:
            raise LayoutError("the record size is not known (no points)")
        return list(combos[0]), None
    fits = []
    for combo in combos:
        rest = record_size - sum(np.dtype(dt).itemsize for _, dt in combo)
        if (not unknown and rest == 0) or (unknown and rest in UNKNOWN_DTYPES):
            fits.append((combo, rest if unknown else None))
    if len({tuple(dt for _, dt in c) for c, _ in fits}) != 1:
        what = "no" if not fits else f"{len(fits)}"
        raise LayoutError(f"{what} column layouts fit a {record_size}-byte record")
    combo, rest = fits[0]
    return list(combo), rest


def record_layout(ids: list[int], record_size: int | None) -> Layout:
    """Packed record dtype for a data module's column ids.

    ``record_size``: bytes per record (bytes of records / points) or None when the
    module holds no points. Raises :class:`LayoutError` naming the ids that cannot
    be placed. Layouts are remembered per (ids, size) (the tables above are
    constants; a folder of files from one instrument shares one layout): working one
    out is about half of the fixed cost of reading a small file.
    """
    return _record_layout(tuple(ids), record_size)


def _modulo_options(
    data_ids: list[int], opts: list[tuple[tuple[str, str], ...] | None]
) -> tuple[list[tuple[tuple[str, str], ...] | None], frozenset[int]]:
    """With two or more unknown ids, each gets the width of its low byte
    (:func:`modulo_width`), when every one has such a width; the record size must then
    be filled exactly (no width is left to guess). One unknown id keeps the size rule
    (its width is what the record leaves). Returns the options and the ids so placed."""
    unknown = [i for i, o in enumerate(opts) if o is None]
    widths = [modulo_width(data_ids[i]) for i in unknown]
    if len(unknown) < 2 or any(w is None for w in widths):
        return opts, frozenset()
    out = list(opts)
    for i, dt in zip(unknown, widths, strict=True):
        out[i] = ((f"vendor_col_{data_ids[i]}", str(dt)),)
    return out, frozenset(data_ids[i] for i in unknown)


@functools.lru_cache(maxsize=256)
def _record_layout(ids: tuple[int, ...], record_size: int | None) -> Layout:
    data_ids = [c for c in ids if c not in FLAG_COLUMNS]
    has_flags = len(data_ids) < len(ids)
    opts = [_options(c) for c in data_ids]
    opts, by_modulo = _modulo_options(data_ids, opts)
    unknown = [c for c, o in zip(data_ids, opts, strict=True) if o is None]
    if len(unknown) > 1:
        raise LayoutError(
            f"unknown column ids {unknown}: the width of two or more unknown columns "
            "cannot be found from the record size"
        )
    size = None if record_size is None else record_size - int(has_flags)
    try:
        chosen, rest = _choose(opts, size)
    except LayoutError as err:
        extra = f" (unknown column id {unknown[0]})" if unknown else ""
        raise LayoutError(f"{err}{extra}") from None
    fields: list[tuple[str, str]] = [("__flags__", _U1)] if has_flags else []
    names: list[str] = []
    inferred: list[tuple[int, int]] = []
    it = iter(chosen)
    for cid, o in zip(data_ids, opts, strict=True):
        if o is None:
            name, dt = f"vendor_col_{cid}", UNKNOWN_DTYPES[int(rest)]
            inferred.append((cid, int(rest)))
        else:
            name, dt = next(it)
            if cid in by_modulo:
                inferred.append((cid, np.dtype(dt).itemsize))
        if name in names:
            name = f"{name} ({cid})"
        names.append(name)
        fields.append((name, dt))
    return Layout(np.dtype(fields), tuple(names), tuple(inferred))
