"""Roles of fitted arcs by physics: effective capacitance and characteristic frequency.

Each arc ``p(R, CPE)`` (or ``p(R, C)``, or a ``Zarc``) has an effective capacitance
C = (R^(1-n) Q)^(1/n) (Brug-type for R||CPE; C itself for an ideal capacitor; tau/R for
a Zarc) and a characteristic frequency f = 1/(2 pi tau), tau = (R Q)^(1/n) = R C.
The capacitance says what the arc is (Irvine, Sinclair and West, Adv. Mater. 2 (1990)
132, Table 1, for a cell constant l/A = 1 cm^-1):

====================  =================  ===========================================
range                 C at l/A = 1/cm    scales with
====================  =================  ===========================================
bulk                  1e-13 .. 1e-11 F   A/l (a dielectric across the whole sample)
grain boundary        1e-11 .. 1e-8 F    A/l (thin boundaries in series through it)
surface layer         1e-9 .. 1e-7 F     A   (a layer of its own thickness: per cm²)
electrode interface   1e-7 .. 1e-5 F     A   (double layer / interface: per cm²)
====================  =================  ===========================================

Bulk and grain-boundary capacitances are those of the sample, C = eps eps0 A / l, so
their ranges scale by (1 cm^-1)/(l/A): a 1 µm film of 0.0035 cm² (l/A = 0.029 cm^-1)
has bulk capacitances near 5e-11 F. Surface layers and interfaces have their own
(nanometre) thickness whatever the sample thickness, so their ranges scale with the
area alone (the reference sample's area taken as 1 cm²). With no geometry the ranges
are used as printed and the evidence says so.

Which roles an arc may take depends on the sample (:data:`ALLOWED`): an electrolyte
between ion-blocking current collectors (``pellet``) has bulk, grain boundary, surface
layer and the electrode spike/arc, never an electrode-interface resistance; a thin-film
cell with electrodes has bulk and interface; a symmetric cell (same non-blocking metal
on both sides) bulk, grain boundary and interface. Arcs, ordered from high to low
characteristic frequency, get the allowed roles (in that order) whose ranges their
capacitances are closest to (distance in decades, 0 inside a range).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from cyclerflow.eis.circuits import Circuit, Element, Parallel, arcs
from cyclerflow.errors import InputError

SAMPLE_TYPES = ("pellet", "thin_film_cell", "symmetric_cell")

#: (range name, lower F, upper F, scaling) for l/A = 1 cm^-1 and A = 1 cm²
RANGES: tuple[tuple[str, float, float, str], ...] = (
    ("bulk", 1e-13, 1e-11, "A/l"),
    ("grain_boundary", 1e-11, 1e-8, "A/l"),
    ("surface_layer", 1e-9, 1e-7, "A"),
    ("electrode_interface", 1e-7, 1e-5, "A"),
)

#: role -> the capacitance range that is its evidence
ROLE_RANGE = {
    "bulk": "bulk",
    "grain_boundary": "grain_boundary",
    "surface_layer": "surface_layer",
    "electrode": "electrode_interface",
    "interface": "electrode_interface",
}

#: roles an arc may take, high to low frequency, per sample type
ALLOWED = {
    "pellet": ("bulk", "grain_boundary", "surface_layer", "electrode"),
    "thin_film_cell": ("bulk", "interface"),
    "symmetric_cell": ("bulk", "grain_boundary", "interface"),
}

#: the ready models tried for each sample type when no circuit is given
CANDIDATES = {
    "pellet": ("arc", "blocking", "bulk_gb"),
    "thin_film_cell": ("arc", "blocking", "cell"),
    "symmetric_cell": ("arc", "blocking", "cell"),
}

ELECTRODE_LAYERS = ("cathode", "anode")
#: smallest electrode area (cm²) taken as possible when the sample is unknown: with the
#: interface range's lower end (1e-7 F/cm², Irvine-Sinclair-West) an arc below
#: 1e-7 * 1e-3 = 1e-10 F cannot be an electrode interface of any usual cell
MIN_ELECTRODE_AREA_CM2 = 1e-3
#: every sample has a bulk: a role choice without a bulk arc (the bulk above the window)
#: must fit the capacitances better by this many decades (the ranges are typical
#: values, an order of magnitude wide; unscaled without geometry)
NO_BULK_ARC_DECADES = 1.0
#: two arcs inside the window whose peak frequencies and capacitances both lie closer
#: than this (decades) are one distorted arc split in two: bulk and grain boundary
#: differ in tau by >= 1.2 decades on the published pellet series, and a DRT cannot
#: resolve peaks closer than about 1 decade either
SPLIT_DECADES = 1.0
#: an arc whose resistance has a larger relative standard error is no evidence
MAX_REL_STDERR = 0.5


@dataclass(frozen=True)
class CellContext:
    """What the analysis knows about the sample: type, electrolyte thickness, area (cm)."""

    sample_type: str | None = None
    thickness_cm: float | None = None
    area_cm2: float | None = None
    source: str = "no metadata"

    def ranges(self) -> dict[str, tuple[float, float]]:
        """Capacitance ranges (F) scaled to this cell, {range name: (lo, hi)}."""
        out = {}
        for name, lo, hi, scaling in RANGES:
            k = self._factor(scaling)
            out[name] = (lo * k, hi * k)
        return out

    def _factor(self, scaling: str) -> float:
        if not self.area_cm2:
            return 1.0
        if scaling == "A":
            return float(self.area_cm2)
        if not self.thickness_cm:
            return 1.0
        return float(self.area_cm2 / self.thickness_cm)

    def scaling_note(self) -> str:
        if not self.area_cm2:
            return "no geometry: ranges for l/A = 1 cm^-1 and A = 1 cm2, unscaled"
        if not self.thickness_cm:
            return (
                f"A = {self.area_cm2:.4g} cm2 (areal ranges scaled); no thickness: bulk/gb unscaled"
            )
        return (
            f"l/A = {self.thickness_cm / self.area_cm2:.4g} cm^-1 (bulk, grain boundary scaled by A/l),"
            f" A = {self.area_cm2:.4g} cm2 (surface layer, interface scaled by A)"
        )


def context_from_metadata(meta) -> CellContext:
    """The :class:`CellContext` of a cell: ``sample_type`` key, else from the layer stack.

    A stack with a ``cathode`` or ``anode`` layer is a ``thin_film_cell``; a stack whose
    only active layer is the electrolyte (current collectors, substrate ... around it) is
    a ``pellet`` (electrolyte between ion-blocking electrodes). Raises
    :class:`InputError` for an unknown ``sample_type``.
    """
    if meta is None:
        return CellContext()
    thick = getattr(meta, "electrolyte_thickness_m", None)
    area = getattr(meta, "active_area_cm2", None)
    geo = {"thickness_cm": thick * 100 if thick else None, "area_cm2": area or None}
    given = (getattr(meta, "extra", None) or {}).get("sample_type")
    if given is not None:
        if given not in SAMPLE_TYPES:
            raise InputError(
                f"metadata key sample_type: {given!r} is not one of {', '.join(SAMPLE_TYPES)}"
            )
        return CellContext(given, source="metadata sample_type", **geo)
    roles = {lay.role for lay in getattr(meta, "layers", [])}
    if "electrolyte" not in roles:
        return CellContext(None, source="no electrolyte layer in the stack", **geo)
    if roles & set(ELECTRODE_LAYERS):
        return CellContext("thin_film_cell", source="stack has electrode layers", **geo)
    return CellContext("pellet", source="stack: electrolyte between current collectors only", **geo)


@dataclass(frozen=True)
class ArcEvidence:
    """One fitted arc: its resistor, effective capacitance (F), peak frequency (Hz)."""

    element: str
    resistance_ohm: float
    capacitance_farad: float
    f_peak_hertz: float
    range: str | None
    in_range: bool
    role: str | None = None
    determined: bool = True

    def to_dict(self) -> dict:
        return {
            "element": self.element,
            "role": self.role,
            "resistance_ohm": _finite(self.resistance_ohm),
            "capacitance_farad": _finite(self.capacitance_farad),
            "f_peak_hertz": _finite(self.f_peak_hertz),
            "range": self.range,
            "in_range": self.in_range,
            "determined": self.determined,
        }


@dataclass(frozen=True)
class RoleEvidence:
    """The arcs of a fit (high to low characteristic frequency) with their evidence, the
    ranges used and how the roles were given."""

    arcs: tuple[ArcEvidence, ...]
    ranges_farad: dict = field(default_factory=dict)
    scaling: str = ""
    sample_type: str | None = None
    assigned_by: str = "model"
    drt_arcs: int | None = None  #: significant in-window peaks of the quick DRT

    def to_dict(self) -> dict:
        return {
            "arcs": [a.to_dict() for a in self.arcs],
            "ranges_farad": {k: [v[0], v[1]] for k, v in self.ranges_farad.items()},
            "scaling": self.scaling,
            "sample_type": self.sample_type,
            "assigned_by": self.assigned_by,
            "drt_arcs": self.drt_arcs,
        }

    def role_of(self, element: str) -> str | None:
        return next((a.role for a in self.arcs if a.element == element), None)

    def roles_present(self) -> tuple[str, ...]:
        return tuple(a.role or "?" for a in self.arcs)


def _finite(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def arc_quantities(circuit: Circuit, params) -> list[tuple[str, float, float]]:
    """(resistor name, R Ohm, C_eff F) of every top-level arc, in circuit order."""
    out = []
    parts = {id(b): (r, c) for b, r, c in arcs(circuit)}
    for item in circuit.top_level():
        if isinstance(item, Element) and item.kind == "Zarc":
            r, tau = float(params[item.index]), float(params[item.index + 1])
            out.append((f"{item.name}_0", r, tau / r if r > 0 else math.nan))
        elif isinstance(item, Parallel) and id(item) in parts:
            res, cap = parts[id(item)]
            if res is None or cap is None:
                continue
            r = float(params[res.index])
            out.append((res.name, r, effective_capacitance(r, cap, params)))
    return out


def effective_capacitance(r: float, cap: Element, params) -> float:
    """C (F) of R||C, or (R^(1-n) Q)^(1/n) of R||CPE."""
    if cap.kind == "C":
        return float(params[cap.index])
    q, n = float(params[cap.index]), float(params[cap.index + 1])
    if r <= 0 or q <= 0 or n <= 0:
        return math.nan
    return float(math.exp((math.log(q) + (1 - n) * math.log(r)) / n))


def _distance(c: float, lo: float, hi: float) -> float:
    """Decades from c to the range [lo, hi] (0 inside)."""
    if not (c > 0 and math.isfinite(c)):
        return math.inf
    lc = math.log10(c)
    return max(math.log10(lo) - lc, 0.0, lc - math.log10(hi))


def _nearest(c: float, ranges: dict) -> tuple[str | None, bool]:
    best = min(ranges, key=lambda k: _distance(c, *ranges[k]), default=None)
    if best is None or not math.isfinite(_distance(c, *ranges[best])):
        return None, False
    return best, _distance(c, *ranges[best]) == 0.0


def assign_roles(
    circuit: Circuit,
    params,
    context: CellContext,
    model_roles: dict,
    stderr=None,
    *,
    reassign: bool = True,
) -> tuple[dict, RoleEvidence]:
    """Roles of the arcs by capacitance; returns (role -> element, evidence).

    Only arcs whose resistance is determined (relative standard error <=
    :data:`MAX_REL_STDERR`) count as evidence; an undetermined arc keeps the model's
    role. Without a known sample type the model's arc roles go in order of rising
    capacitance. ``reassign=False`` (roles given by the user) keeps the model's roles.
    """
    ranges = context.ranges()
    found = []
    names = list(circuit.param_names)
    for name, r, c in arc_quantities(circuit, params):
        f = 1.0 / (2 * math.pi * r * c) if r > 0 and c > 0 else math.nan
        rng, inside = _nearest(c, ranges)
        se = math.nan if stderr is None else float(stderr[names.index(name)])
        determined = stderr is None or (r > 0 and se / r <= MAX_REL_STDERR)
        found.append((name, r, c, f, rng, inside, determined))
    by_elem = {v: k for k, v in model_roles.items()}
    roles = dict(model_roles)
    assigned_by = "model"
    allowed = ALLOWED.get(context.sample_type or "")
    use = [i for i in range(len(found)) if found[i][6]] if reassign else []
    if allowed and use:
        order = sorted(use, key=lambda i: -np.nan_to_num(found[i][3], nan=-1))
        kept = {found[i][0]: by_elem.get(found[i][0]) for i in range(len(found)) if i not in use}
        free = tuple(r for r in allowed if r not in kept.values())
        combo = _best_combo([found[i][2] for i in order], free, ranges)
        if combo is not None:
            roles = {k: v for k, v in model_roles.items() if k == "lead" or v in kept}
            by_elem = {k: v for k, v in kept.items() if v}
            for i, role in zip(order, combo, strict=True):
                by_elem[found[i][0]] = role
                if role in ("bulk", "grain_boundary", "interface"):
                    roles[role] = found[i][0]
            if "bulk" not in roles:
                roles.update(_series_bulk_role(model_roles, by_elem))
            assigned_by = f"capacitance ({context.sample_type}: {context.source})"
    elif not allowed and len(use) >= 2:
        roles, by_elem, assigned_by = _order_by_capacitance(found, use, model_roles, by_elem)
    if not allowed and use:
        roles, by_elem, assigned_by = _no_tiny_interface(found, use, roles, by_elem, assigned_by)
    ev = tuple(
        ArcEvidence(n, r, c, f, rng, inside, by_elem.get(n), det)
        for n, r, c, f, rng, inside, det in sorted(
            found, key=lambda a: -np.nan_to_num(a[3], nan=-1)
        )
    )
    return roles, RoleEvidence(ev, ranges, context.scaling_note(), context.sample_type, assigned_by)


def _best_combo(caps: list[float], allowed: tuple[str, ...], ranges: dict):
    """Ordered choice of roles (one per arc) nearest the arcs' capacitances."""
    if len(caps) > len(allowed):
        return None
    best, best_cost = None, math.inf
    for combo in itertools.combinations(allowed, len(caps)):
        cost = sum(_distance(c, *ranges[ROLE_RANGE[r]]) for c, r in zip(caps, combo, strict=True))
        if "bulk" in allowed and "bulk" not in combo:
            cost += NO_BULK_ARC_DECADES
        if cost < best_cost - 1e-9:
            best, best_cost = combo, cost
    return best


def _series_bulk_role(model_roles: dict, by_elem: dict) -> dict:
    """No arc has a bulk capacitance: the bulk is in a series resistance.

    The model's own series bulk resistor (``cell_ohmic``) when it has one, else the lead
    resistor, which then holds lead + bulk (the bulk arc lies above the window).
    """
    bulk_el = model_roles.get("bulk")
    if bulk_el is not None and bulk_el not in by_elem and bulk_el != model_roles.get("lead"):
        return {"bulk": bulk_el}
    if "lead" in model_roles:
        return {"bulk": model_roles["lead"]}
    return {}


def _order_by_capacitance(found, use, model_roles: dict, by_elem: dict):
    """Sample type unknown: the model's arc roles, in the model's order, go to the
    determined arcs in order of rising capacitance (the bulk's geometric capacitance is
    the smallest of any sample; grain boundaries and interfaces come after it)."""
    arc_roles = [by_elem.get(found[i][0]) for i in use]
    order = sorted(use, key=lambda i: found[i][2])
    if None in arc_roles or [found[i][0] for i in order] == [found[i][0] for i in use]:
        return model_roles, by_elem, "model"
    roles, elems = dict(model_roles), dict(by_elem)
    for i, role in zip(order, arc_roles, strict=True):
        roles[role] = found[i][0]
        elems[found[i][0]] = role
    return roles, elems, "capacitance order (sample type unknown)"


def _no_tiny_interface(found, use, roles: dict, by_elem: dict, assigned_by: str):
    """Sample type unknown: a determined "interface" arc whose capacitance is below any
    electrode interface's (:data:`MIN_ELECTRODE_AREA_CM2` x the range's 1e-7 F/cm²) is a
    grain boundary (a pellet measured without its stack)."""
    floor = RANGES[3][1] * MIN_ELECTRODE_AREA_CM2
    for i in use:
        name, c = found[i][0], found[i][2]
        if by_elem.get(name) == "interface" and 0 < c < floor:
            roles = {k: v for k, v in roles.items() if k != "interface"}
            roles["grain_boundary"] = name
            by_elem = {**by_elem, name: "grain_boundary"}
            assigned_by = f"capacitance: {name} ({c:.2g} F) below any electrode interface's"
    return roles, by_elem, assigned_by


def split_arc(circuit: Circuit, params, f_max_hertz: float) -> str | None:
    """Why a fit's arcs are one arc split in two (see :data:`SPLIT_DECADES`), or None.

    Both arcs must peak inside the window (below ``f_max_hertz``): a bulk arc above the
    window has an extrapolated tau and is not compared."""
    q = [(n, r, c) for n, r, c in arc_quantities(circuit, params) if r > 0 and c > 0]
    for (n1, r1, c1), (n2, r2, c2) in itertools.combinations(q, 2):
        f1, f2 = 1 / (2 * math.pi * r1 * c1), 1 / (2 * math.pi * r2 * c2)
        if max(f1, f2) > f_max_hertz:
            continue
        d_tau, d_c = abs(math.log10(f1 / f2)), abs(math.log10(c1 / c2))
        if d_tau < SPLIT_DECADES and d_c < SPLIT_DECADES:
            return (
                f"arcs {n1} and {n2} are {d_tau:.2f} decades apart in frequency and "
                f"{d_c:.2f} in capacitance: one arc split in two"
            )
    return None
