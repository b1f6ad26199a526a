"""Common impedance text exports, recognised by their content:

- ``zview``: ZView ``Z60W Data File`` layout (Metrohm Autolab and others export it):
  quoted header lines, a quoted column line ``Freq (Hz) Ampl Bias Time(Sec) Z'(a) Z''(b)
  GD Err Range``, then comma-separated rows in that fixed order.
- ``versastudio``: AMETEK/PAR VersaStudio ``.par`` (INI-like ``<Section>`` blocks); each
  ``<SegmentN>`` has a ``Definition=`` line naming its comma-separated columns
  (``Frequency(Hz)``, ``Z Real``, ``Z Imag`` ...) followed by the rows; one spectrum per
  segment. Amplitude from ``Amplitude (mV RMS)``, date from ``DateAcquired``/``TimeAcquired``.
- ``chi``: CH Instruments ``A.C. Impedance`` text: free header (``Amplitude (V) = ..``,
  ``Init E (V) = ..``), column line ``Freq/Hz, Z'/ohm, Z"/ohm, Z/ohm, Phase/deg``, rows.
- ``table``: any delimited text whose column line names frequency with real and
  imaginary impedance (Princeton Applied Research Parstat ``Frequency (Hz) Zre (ohms) Zim
  (ohms)``, Metrohm Nova ``Frequency (Hz);Z' (Ω);-Z'' (Ω)``, Gamry Echem Analyst
  ``Freq,Zreal,Zimag``). Rows with frequency 0 are DC records: with potential, current
  and time columns they become cycling rows (current as printed); each run of rows with
  frequency > 0 is one spectrum. ``-Im(Z)`` / ``-Z''`` columns are negated. A table
  printing only the modulus and the phase (Zahner ``Frequency/Hz Impedance/Ohm
  Phase/deg``; ``|Z|``, ``Zmod``; the phase in degrees or ``rad``, its unit required,
  its sign as written, ``-Phase`` negated) gives Z' = |Z| cos, Z'' = |Z| sin, marked
  ``derived_from``. A tab-, semicolon- or space-separated table with decimal commas
  (``10,5``) is read with them; one mixing decimal commas and points is refused.
- ``headerless``: numeric rows only, ``frequency, Z', Z''`` (comma, semicolon, tab or
  space separated; decimal commas in tab/semicolon rows), ``Z''`` signed.

All these exports print the imaginary part signed (negative = capacitive) unless the
column is named ``-Z''``/``-Im(Z)``. Naive dates are taken as UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np

from cyclerflow.importers.common import Imported, naive_to_unix, name_temperature
from cyclerflow.importers.textfmt import data_block, decode, fail, head_lines, open_raw, parse_block
from cyclerflow.importers.textspan import find

FORMAT = "eis-text"
EXTENSIONS = (".txt", ".par", ".csv", ".dat")
#: what :func:`sniff` looks for (said when no reader fits)
SIGNATURE = "a Z60W/ZView, VersaStudio or CH Instruments header, a column line naming frequency with Z' and Z'' (or |Z| and phase), or rows of numbers only"

_NUMBER = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
#: a number with a decimal comma (``-0,5``, ``1,25E-003``): read in tab/semicolon rows
_COMMA_NUMBER = re.compile(r"^[-+]?\d+,\d+(?:[eE][-+]?\d+)?$")
_OHM = r"(?:[(\[/]\s*(?P<unit>[kmMµu]?(?:ohms?|Ohms?|Ω))\s*[)\]]?)?"
_ZRE = r"(?:z'|zs'|zre(?:al)?|z\s*real|re\s*\(z\))"
_ZIM = r"(?:z''|zs''|z\"|zim(?:ag|g)?|z\s*imag|im\s*\(z\))"
#: the modulus: ``|Z|``, ``Z``, ``Zmod``, ``Impedance`` (Nova, Zahner, Gamry exports)
_ZMOD = r"(?:\|\s*z\s*\||z|zmod|mod\s*\(z\)|impedance)"
#: the phase angle and its unit, degrees or ``rad`` (a phase without a unit is not taken)
_PHASE = r"(?:phase|zphz|phase\s*\(z\)|phi|φ)"
_DEG = r"[(\[/]\s*(?P<unit>deg(?:rees?)?|°|rad)\s*[)\]]?"
_ROLES = [
    (
        "f",
        re.compile(r"^(?:freq(?:uency)?\.?)\s*(?:[(\[/]\s*(?P<unit>[kmM]?Hz)\s*[)\]]?)?$", re.I),
    ),
    ("minus_im", re.compile(r"^-\s*" + _ZIM + r"\s*" + _OHM + "$", re.I)),
    ("re", re.compile(r"^" + _ZRE + r"\s*(?:\(a\))?\s*" + _OHM + "$", re.I)),
    ("im", re.compile(r"^" + _ZIM + r"\s*(?:\(b\))?\s*" + _OHM + "$", re.I)),
    ("mod", re.compile(r"^" + _ZMOD + r"\s*" + _OHM + "$", re.I)),
    ("minus_phase", re.compile(r"^-\s*" + _PHASE + r"\s*" + _DEG + "$", re.I)),
    ("phase", re.compile(r"^" + _PHASE + r"\s*" + _DEG + "$", re.I)),
    ("v", re.compile(r"^(?:potential|e|ewe|voltage)\s*[(\[/]\s*V\s*[)\]]?$", re.I)),
    ("i", re.compile(r"^(?:current|i)\s*[(\[/]\s*A\s*[)\]]?$", re.I)),
    ("t", re.compile(r"^(?:elapsed\s*time|time)\s*[(\[/]\s*s(?:ec)?\s*[)\]]?$", re.I)),
    # a sample temperature column (Novocontrol's Temp.[°C], analysers' Temperature (K)):
    # the unit is required; the degree sign may be Latin-1 or UTF-8 read as Latin-1
    ("temp_c", re.compile(r"^temp(?:erature)?\.?\s*[(\[/]\s*(?:Â?°\s*C|degC|C)\s*[)\]]?$", re.I)),
    ("temp_k", re.compile(r"^temp(?:erature)?\.?\s*[(\[/]\s*K\s*[)\]]?$", re.I)),
]
#: a spectrum whose temperature column spreads wider than this (K) gets a warning
TEMPERATURE_SPREAD_K = 2.0
_OHM_SCALE = {"k": 1e3, "m": 1e-3, "M": 1e6, "µ": 1e-6, "u": 1e-6}


def _roles(fields: list[str]) -> dict[str, tuple[int, float]]:
    """role -> (field index, scale to SI) for the labels of a column line."""
    out: dict[str, tuple[int, float]] = {}
    for i, f in enumerate(fields):
        f = f.strip().strip('"').strip()
        for role, rx in _ROLES:
            m = rx.match(f)
            if m and role not in out:
                unit = (m.groupdict().get("unit") or "").strip()
                scale = 1.0
                if unit and unit[0] in _OHM_SCALE and unit[:2].lower() != "oh":
                    scale = _OHM_SCALE[unit[0]]
                if role == "f" and unit[:1] in ("k", "M"):
                    scale = {"k": 1e3, "M": 1e6}[unit[0]]
                if role.endswith("phase"):
                    scale = 1.0 if unit.lower() == "rad" else np.pi / 180.0
                out[role] = (i, scale)
                break
    for signed in ("im", "phase"):
        if f"minus_{signed}" in out and signed not in out:
            i, s = out.pop(f"minus_{signed}")
            out[signed] = (i, -s)
    return out


def _complete(roles: dict[str, tuple[int, float]]) -> bool:
    """Frequency with the real and imaginary parts, or with the modulus and phase."""
    return "f" in roles and ({"re", "im"} <= set(roles) or {"mod", "phase"} <= set(roles))


def _split(line: str) -> tuple[str, list[str]]:
    for d in ("\t", ";", ","):
        if d in line:
            return d, line.split(d)
    return " ", line.split()


def _labelled(
    lines: list[str], limit: int = 80
) -> tuple[int, str, dict[str, tuple[int, float]], int] | None:
    """(line index, delimiter, roles, n fields) of the first column line naming f, Re, Im."""
    for k, ln in enumerate(lines[:limit]):
        d, fields = _split(ln)
        if len(fields) < 3:
            continue
        r = _roles(fields)
        if _complete(r):
            trailing = d != " " and not fields[-1].strip()  # a separator ending the line
            return k, d, r, len(fields) - trailing
    return None


def _numeric_fields(line: str) -> list[str] | None:
    d, fields = _split(line.strip())
    fields = [x.strip() for x in fields]
    if d == " ":
        fields = line.split()
    comma_ok = d in ("\t", ";")  # (a comma there cannot be a separator)
    if (
        len(fields) >= 3
        and all(_NUMBER.match(x) or (comma_ok and _COMMA_NUMBER.match(x)) for x in fields if x)
        and sum(1 for x in fields if x) >= 3
    ):
        return fields
    return None


def _kind(lines: list[str]) -> str | None:
    if not lines:
        return None
    first = lines[0].lstrip("\ufeff").strip()
    if first.startswith('"Z60W') or first.startswith('"ZView') or first.startswith("Z60W"):
        return "zview"
    if first == "<Application>" and any(
        ln.startswith("<Segment") or ln.startswith("Name=VersaStudio") for ln in lines
    ):
        return "versastudio"  # (read() also looks past the first lines it was given)
    if len(lines) > 1 and lines[1].strip() == "A.C. Impedance":
        return "chi"
    if _labelled(lines) is not None:
        return "table"
    body = [ln for ln in lines[:200] if ln.strip()]  # the rest is checked when parsed
    if body and all(_numeric_fields(ln) is not None for ln in body):
        return "headerless"
    return None


def sniff(path: Path, head: bytes) -> bool:
    """One of the layouts above, judged from the first 4 KiB."""
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        # a multi-byte character cut by the 4 KiB limit is fine; other bytes: Latin-1
        text = (
            head[: err.start].decode("utf-8-sig")
            if err.start > len(head) - 4
            else head.decode("latin-1")
        )
    if "\x00" in text:
        return False
    lines = text.splitlines()
    if len(head) >= 4096 and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    return _kind(lines) is not None


def _spectrum(c: dict[str, np.ndarray], scales: dict[str, float], **attrs) -> dict:
    return {
        "frequency_hertz": c["f"] * scales.get("f", 1.0),
        "real_impedance_ohm": c["re"] * scales.get("re", 1.0),
        "imaginary_impedance_ohm": c["im"] * scales.get("im", 1.0),
        **{k: v for k, v in attrs.items() if v is not None},
    }


def _data_bytes(raw: memoryview, head: list[str], start: int) -> tuple[int, bytes | memoryview]:
    """(index of the first row, the rows as bytes) after line ``start``: blank lines
    skipped at both ends. The rows stay bytes (no decoding and splitting of every line)."""
    while start < len(head) and not head[start].strip():
        start += 1
    return start, data_block(raw, start)


def _from_polar(
    c: dict[str, np.ndarray], scales: dict[str, float]
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Z' = |Z| cos(phase), Z'' = |Z| sin(phase) (phase as printed, negative =
    capacitive; a ``-Phase`` column negated), for a table that prints only |Z| and phase
    (impedance analysers). The values are computed, not printed: the spectrum says so.
    The phase's scale (from :func:`_roles`) turns degrees or radians into radians."""
    mod = c["mod"] * scales.get("mod", 1.0)
    ph = c["phase"] * scales["phase"]
    out = {**c, "re": mod * np.cos(ph), "im": mod * np.sin(ph)}
    return out, {**scales, "re": 1.0, "im": 1.0}


_COMMA_DIGITS = re.compile(rb"\d,\d")
_POINT_DIGITS = re.compile(rb"\d\.\d")


def _decimal_comma(path: Path, rows: bytes | memoryview, first: int) -> bytes | memoryview:
    """Rows of a tab-, semicolon- or space-separated table written on a decimal-comma PC
    (Nova, Parstat ... on a German/French locale: ``10,5``) with the comma turned into a
    point; unchanged when no comma sits between digits. A table mixing decimal commas
    and points is refused naming the first line with a point (no guess)."""
    body = bytes(rows)
    if b"," not in body or not _COMMA_DIGITS.search(body):
        return rows
    m = _POINT_DIGITS.search(body)
    if m:
        line = first + body.count(b"\n", 0, m.start())
        raise fail(
            FORMAT,
            path,
            "the table mixes decimal commas and decimal points: refusing to guess",
            f"line {line}",
        )
    return body.replace(b",", b".")


def _read_table(path: Path, lines: list[str], raw: memoryview) -> Imported:
    found = _labelled(lines)
    assert found is not None
    k, d, roles, nf = found
    start, rows = _data_bytes(raw, lines, k + 1)
    if not rows:
        raise fail(FORMAT, path, "no data rows after the column line", f"line {start + 1}")
    sep = None if d == " " else d
    if d != ",":
        rows = _decimal_comma(path, rows, start + 1)
    c = parse_block(
        path, FORMAT, rows, start + 1, {r: i for r, (i, _) in roles.items()}, sep=sep, n_fields=nf
    )
    scales = {r: s for r, (_, s) in roles.items()}
    polar = "re" not in c or "im" not in c
    if polar:
        c, scales = _from_polar(c, scales)
    f = c["f"]
    ac = f > 0
    spectra: list[dict] = []
    warnings: list[str] = []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ac.astype("i1"), [0]])))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        part = {r: v[a:b] for r, v in c.items()}
        attrs = {}
        if "t" in part:
            attrs["elapsed_time_second"] = float(part["t"][0])
        if "v" in part:
            attrs["dc_level"] = float(np.median(part["v"]))
        if polar:
            attrs["derived_from"] = "|Z| and phase (degrees)"
        attrs.update(_column_temperature(path, part, start + 1 + int(a), warnings))
        spectra.append(_spectrum(part, scales, technique="PEIS", **attrs))
    if not spectra:
        raise fail(FORMAT, path, "no rows with frequency > 0", f"line {start + 1}")
    cycling: dict[str, np.ndarray] = {}
    dc = ~ac
    if dc.any() and {"t", "v", "i"} <= set(c):
        cycling = {
            "test_time_second": c["t"][dc],
            "voltage_volt": c["v"][dc],
            "current_ampere": c["i"][dc],
        }
        back = np.flatnonzero(np.diff(cycling["test_time_second"]) < 0)
        if len(back):
            row = int(np.flatnonzero(dc)[int(back[0]) + 1])
            raise fail(FORMAT, path, "elapsed time goes backwards", f"line {start + 1 + row}")
    header = "\n".join(lines[: k + 1])
    return {"cycling": cycling, "spectra": spectra, "header": header, "warnings": warnings}


def _column_temperature(
    path: Path, part: dict[str, np.ndarray], line: int, warnings: list[str]
) -> dict:
    """The spectrum's temperature (K: the median of its temperature column, °C or K)
    and where it came from; a spread wider than :data:`TEMPERATURE_SPREAD_K` during the
    sweep is named in a warning (``line``: the spectrum's first row)."""
    if "temp_c" in part:
        kelvin = part["temp_c"] + 273.15
    elif "temp_k" in part:
        kelvin = part["temp_k"]
    else:
        return {}
    if not np.all(np.isfinite(kelvin)) or np.any(kelvin <= 0):
        raise fail(
            FORMAT, path, "temperature column below absolute zero or not a number", f"line {line}"
        )
    spread = float(np.ptp(kelvin))
    if spread > TEMPERATURE_SPREAD_K:
        warnings.append(
            f"the spectrum from line {line} spans {spread:.3g} K in its temperature column: "
            "its median is taken"
        )
    return {"temperature_kelvin": float(np.median(kelvin)), "temperature_source": "column"}


def _read_zview(path: Path, lines: list[str], raw: memoryview) -> Imported:
    k = next((i for i, ln in enumerate(lines[:60]) if "Freq" in ln and "Z'" in ln), None)
    if k is None:
        raise fail(
            FORMAT,
            path,
            "ZView file without its column line (Freq (Hz) ... Z'(a) Z''(b))",
            "line 1",
        )
    start, rows = _data_bytes(raw, lines, k + 1)
    # Z60W columns in fixed order: Freq, Ampl, Bias, Time, Z', Z'', GD, Err, Range
    c = parse_block(
        path,
        FORMAT,
        rows,
        start + 1,
        {"f": 0, "ampl": 1, "bias": 2, "re": 4, "im": 5},
        sep=",",
        n_fields=9,
    )
    amp = float(c["ampl"][0]) if c["ampl"][0] != 0 else None
    sp = _spectrum(
        c, {}, technique="PEIS", amplitude=amp, dc_level=float(c["bias"][0]), source_layout="Z60W"
    )
    return {"cycling": {}, "spectra": [sp], "header": "\n".join(lines[: k + 1])}


def _read_chi(path: Path, lines: list[str], raw: memoryview) -> Imported:
    found = _labelled(lines)
    if found is None:
        raise fail(
            FORMAT,
            path,
            "CH Instruments file without a 'Freq/Hz, Z'/ohm, Z\"/ohm' column line",
            "line 1",
        )
    k, d, roles, nf = found
    start, rows = _data_bytes(raw, lines, k + 1)
    if not rows:
        raise fail(FORMAT, path, "no data rows after the column line", f"line {start + 1}")
    c = parse_block(
        path,
        FORMAT,
        rows,
        start + 1,
        {r: i for r, (i, _) in roles.items() if r in ("f", "re", "im")},
        sep=d,
        n_fields=nf,
    )
    header = lines[:k]
    settings = {}
    for ln in header:
        key, eq, val = ln.partition("=")
        if eq:
            settings[key.strip()] = val.strip()

    def num(key: str) -> float | None:
        try:
            return float(settings[key])
        except (KeyError, ValueError):
            return None

    unix = None
    m = re.match(
        r"^\s*([A-Za-z]{3})[a-z]*\.?\s+(\d{1,2}),\s*(\d{4})\s+(\d{1,2}:\d{2}:\d{2})", lines[0]
    )
    if m:
        try:
            unix = naive_to_unix(
                dt.datetime.strptime(
                    f"{m.group(1)} {m.group(2)} {m.group(3)} {m.group(4)}", "%b %d %Y %H:%M:%S"
                )
            )
        except ValueError:
            unix = None
    sp = _spectrum(
        c,
        {r: s for r, (_, s) in roles.items()},
        technique="PEIS",
        amplitude=num("Amplitude (V)"),
        dc_level=num("Init E (V)"),
        unix_time_second=unix,
    )
    return {"cycling": {}, "spectra": [sp], "header": "\n".join(lines[: k + 1])}


def _versa_segment(
    path: Path, lines: list[str], i: int, names: list[str], roles: dict
) -> tuple[dict, int]:
    """(columns of the segment whose ``Definition=`` is line ``i``, index after its rows)."""
    n = len(lines)
    j = i + 1
    while j < n and lines[j].strip() and not lines[j].startswith("<"):
        j += 1
    rows = lines[i + 1 : j]
    if not rows:
        raise fail(FORMAT, path, "segment without data rows", f"line {i + 2}")
    if j >= n:
        raise fail(
            FORMAT, path, "segment not closed by '</Segment...>' (truncated file?)", f"line {n}"
        )
    want = {r: idx for r, (idx, _) in roles.items()}
    nf = len(names) - (names[-1] in ("", "0"))
    c = parse_block(path, FORMAT, rows, i + 2, want, sep=",", n_fields=nf)
    c["_scales"] = {r: s for r, (_, s) in roles.items()}  # type: ignore[assignment]
    return c, j


def _versa_walk(path: Path, lines: list[str]) -> tuple[list[dict], list[str], dict[str, str]]:
    """(segments with impedance columns, header lines, ``key=value`` settings)."""
    settings: dict[str, str] = {}
    spectra: list[dict] = []
    header: list[str] = []
    i = 0
    while i < len(lines):
        ln = lines[i]
        header.append(ln)
        if ln.startswith("Definition="):
            names = [x.strip() for x in ln.partition("=")[2].split(",")]
            roles = _roles(names)
            if {"f", "re", "im"} <= set(roles):
                c, i = _versa_segment(path, lines, i, names, roles)
                spectra.append(c)
                continue
        else:
            key, eq, val = ln.partition("=")
            if eq:
                settings.setdefault(key.strip(), val.strip())
        i += 1
    if not spectra:
        raise fail(
            FORMAT,
            path,
            "no <Segment> with Frequency, Z Real and Z Imag columns",
            f"line {len(lines)}",
        )
    return spectra, header, settings


def _versa_start(settings: dict[str, str]) -> float | None:
    """Unix time of ``DateAcquired`` + ``TimeAcquired`` (naive, taken as UTC)."""
    try:
        t = dt.datetime.strptime(
            f"{settings['DateAcquired']} {settings['TimeAcquired']}", "%A, %B %d, %Y %I:%M:%S %p"
        )
    except (KeyError, ValueError):
        return None
    return naive_to_unix(t)


def _read_versastudio(path: Path, lines: list[str]) -> Imported:
    spectra, header, settings = _versa_walk(path, lines)
    unix = _versa_start(settings)
    try:
        amp = float(settings["Amplitude (mV RMS)"]) * 1e-3
    except (KeyError, ValueError):
        amp = None
    technique = "GEIS" if "galvanostatic eis" in " ".join(header).lower() else "PEIS"
    out = []
    for c in spectra:
        scales = c.pop("_scales")  # type: ignore[arg-type]
        t0 = float(c["t"][0]) if "t" in c else 0.0
        out.append(
            _spectrum(
                c,
                scales,  # type: ignore[arg-type]
                technique=technique,
                amplitude=amp,
                amplitude_kind="rms" if amp is not None else None,
                unix_time_second=None if unix is None else unix + t0,
            )
        )
    # keep the header short: drop the GUI layout XML that VersaStudio appends
    text = "\n".join(
        ln
        for ln in header
        if not ln.lstrip().startswith("<Dock") and not ln.lstrip().startswith("</Dock")
    )
    return {"cycling": {}, "spectra": out, "header": text}


def _read_headerless(path: Path, lines: list[str], raw: memoryview) -> Imported:
    start, rows = _data_bytes(raw, lines, 0)
    d, fields = _split(lines[start].strip())
    sep = None if d == " " else d
    nf = len(fields) - (sep is not None and not fields[-1].strip())
    if d in ("\t", ";"):
        rows = _decimal_comma(path, rows, start + 1)
    c = parse_block(path, FORMAT, rows, start + 1, {"f": 0, "re": 1, "im": 2}, sep=sep, n_fields=nf)
    return {"cycling": {}, "spectra": [_spectrum(c, {}, technique="PEIS")], "header": ""}


_READERS = {
    "zview": _read_zview,
    "versastudio": _read_versastudio,
    "chi": _read_chi,
    "table": _read_table,
    "headerless": _read_headerless,
}


def read(path: str | Path) -> Imported:
    """Read one of the EIS text exports listed in the module docstring."""
    path = Path(path)
    with open_raw(path, FORMAT) as view:  # a view of the file: the rows are not copied
        return _read_view(path, view[3:] if view[:3] == b"\xef\xbb\xbf" else view)


def _read_view(path: Path, raw: memoryview) -> Imported:
    """The spectra (and DC rows) of the bytes of one EIS text export (see :func:`read`)."""
    if find(raw, b"\r") >= 0 and find(raw, b"\r\r\n") >= 0:  # PowerSuite (a one-byte
        # search first, memchr: skips the slower one on LF-only files)
        raw = memoryview(bytes(raw).replace(b"\r\r\n", b"\n"))
    head = head_lines(raw, 300)  # enough to tell the layout; rows are parsed from bytes
    kind = _kind(head)
    if kind == "versastudio" or (kind is None and head and head[0].strip() == "<Application>"):
        versa = find(raw, b"<Segment") >= 0 or find(raw, b"Name=VersaStudio") >= 0
        kind = "versastudio" if versa else None
    if kind is None:
        raise fail(
            FORMAT,
            path,
            "not a recognised impedance text export (no Z60W, VersaStudio, CH Instruments header, "
            "no column line naming frequency / Z' / Z'', and not all rows numeric)",
            "line 1",
        )
    if kind != "versastudio":
        data = _READERS[kind](path, head, raw)
    else:
        data = _READERS[kind](path, decode(bytes(raw)).splitlines())
    for i, sp in enumerate(data["spectra"]):
        f = sp["frequency_hertz"]
        if np.any(f <= 0):
            raise fail(FORMAT, path, f"spectrum {i + 1} has a frequency <= 0 Hz")
        sp.setdefault("source_layout", kind)
    return name_temperature(data, path)
