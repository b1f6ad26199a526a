"""Ready equivalent-circuit models and the meaning (role) of their resistors.

==================  =================================  =======================================
name                circuit                            roles
==================  =================================  =======================================
``arc``             ``R0-p(R1,CPE1)``                  lead R0, bulk R1 (one arc that closes
                                                       on the real axis: non-blocking electrodes)
``blocking``        ``R0-p(R1,CPE1)-CPE2``             lead R0, bulk R1 (ion-blocking
                                                       electrodes on a solid electrolyte)
``bulk_gb``         ``R0-p(R1,CPE1)-p(R2,CPE2)-CPE3``  lead R0, bulk R1, grain boundary R2
``cell``            ``R0-p(R1,CPE1)-p(R2,CPE2)-CPE3``  lead R0, bulk R1 (electrolyte),
                                                       interface R2, CPE3 diffusion tail
``cell_warburg``    ``R0-p(R1,CPE1)-p(R2-W1,CPE2)``    lead R0, bulk R1, interface R2,
                                                       semi-infinite Warburg W1
``cell_ohmic``      ``R0-p(R1,CPE1)-CPE2``             bulk = R0 (electrolyte arc above the
                                                       window, as in liquid cells), interface R1
==================  =================================  =======================================

A circuit string that is not one of these gets roles by rule (stated in the result):
lead = the first top-level series R when the circuit has an arc, bulk = the R of the
first top-level ``p(...)`` block or ``Zarc`` (``Zarc1_0``) (the highest-frequency arc),
interface = the R of the last one when there are two or more; with no arc at all,
bulk = the first series R. ``roles={"bulk": "R3", ...}`` overrides any of them.

These are the roles in circuit order; after the fit, :func:`cyclerflow.eis.roles.assign_roles`
hands them to the arcs by capacitance (see there), unless roles were given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cyclerflow.eis.circuits import Circuit, arcs, parse_circuit, series_elements
from cyclerflow.errors import InputError

ROLE_NAMES = ("lead", "bulk", "interface", "grain_boundary")


@dataclass(frozen=True)
class Model:
    name: str
    circuit: str
    roles: dict = field(default_factory=dict)  # role -> element name
    note: str = ""

    @property
    def compiled(self) -> Circuit:
        return parse_circuit(self.circuit)


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model(
            "arc", "R0-p(R1,CPE1)", {"lead": "R0", "bulk": "R1"}, "one arc, non-blocking electrodes"
        ),
        Model(
            "blocking",
            "R0-p(R1,CPE1)-CPE2",
            {"lead": "R0", "bulk": "R1"},
            "bulk arc + blocking-electrode CPE",
        ),
        Model(
            "bulk_gb",
            "R0-p(R1,CPE1)-p(R2,CPE2)-CPE3",
            {"lead": "R0", "bulk": "R1", "grain_boundary": "R2"},
            "bulk arc + grain-boundary arc + blocking-electrode CPE",
        ),
        Model(
            "cell",
            "R0-p(R1,CPE1)-p(R2,CPE2)-CPE3",
            {"lead": "R0", "bulk": "R1", "interface": "R2"},
            "electrolyte arc + electrode-interface arc + CPE diffusion tail",
        ),
        Model(
            "cell_warburg",
            "R0-p(R1,CPE1)-p(R2-W1,CPE2)",
            {"lead": "R0", "bulk": "R1", "interface": "R2"},
            "electrolyte arc + interface arc with a semi-infinite Warburg",
        ),
        Model(
            "cell_ohmic",
            "R0-p(R1,CPE1)-CPE2",
            {"bulk": "R0", "interface": "R1"},
            "series electrolyte resistance (arc above the window) + interface arc + tail",
        ),
    )
}

#: candidates tried, in this order, when no circuit is given
AUTO_CANDIDATES = ("arc", "blocking", "cell")


def infer_roles(circuit: Circuit) -> dict:
    """Roles of the resistors of a circuit that is not a ready model (see module doc)."""
    roles: dict = {}
    # arcs in circuit order: p(R.., C/CPE) blocks and top-level Zarc elements (R = Zarc_0)
    arc_r = []
    blocks = {id(b[0]): b[1] for b in arcs(circuit) if b[1] is not None}
    for item in circuit.top_level():
        if id(item) in blocks:
            arc_r.append(blocks[id(item)].name)
        elif getattr(item, "kind", None) == "Zarc":
            arc_r.append(f"{item.name}_0")
    series_r = [e for e in series_elements(circuit) if e.kind == "R"]
    if arc_r:
        if series_r:
            roles["lead"] = series_r[0].name
        roles["bulk"] = arc_r[0]
        if len(arc_r) >= 2:
            roles["interface"] = arc_r[-1]
    elif series_r:
        roles["bulk"] = series_r[0].name
    return roles


def resolve_model(circuit: str | None, roles: dict | None = None) -> Model:
    """A :class:`Model` from a ready-model name or a circuit string (+ role overrides)."""
    if circuit in MODELS:
        model = MODELS[circuit]
    else:
        comp = parse_circuit(circuit)
        match = next((m for m in MODELS.values() if m.circuit == comp.string), None)
        model = match or Model("custom", comp.string, infer_roles(comp), "roles inferred by rule")
    if roles:
        comp = model.compiled
        names = {e.name for e in comp.elements} | set(comp.param_names)
        for role, el in roles.items():
            if role not in ROLE_NAMES:
                raise InputError(f"unknown role {role!r} (known: {', '.join(ROLE_NAMES)})")
            if el is not None and el not in names:
                raise InputError(f"role {role!r}: element {el!r} is not in circuit {comp.string!r}")
        merged = {**model.roles, **roles}
        model = Model(
            model.name if model.name != "custom" else "custom", model.circuit, merged, "roles given"
        )
    return model
