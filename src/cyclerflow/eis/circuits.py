"""Equivalent circuits in impedance.py's grammar, compiled once into numpy functions.

Grammar (the same as ``impedance.models.circuits.CustomCircuit``): elements are a name
from impedance.py's element registry followed by an identifier (``R0``, ``CPE1``,
``Wo1``); ``-`` joins in series, ``p(a, b, ...)`` in parallel, and each argument of
``p`` is itself a series expression: ``R0-p(R1,CPE1)-p(R2-Wo1,CPE2)-CPE3``.

Parameter names follow impedance.py too: one-parameter elements are named as the
element (``R0``), others get ``_0``, ``_1`` ... (``CPE1_0`` = Q, ``CPE1_1`` = alpha).

:func:`parse_circuit` returns a :class:`Circuit` (cached per string) whose
:meth:`Circuit.impedance` and :meth:`Circuit.impedance_and_jacobian` evaluate the
network and its analytic derivatives, vectorised over frequency. Elements without a
closed-form derivative here (``Gs``, ``TLMQ``, ``T`` and user-registered ones) are
evaluated by impedance.py's own element function and differentiated numerically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from cyclerflow.errors import InputError

# exponent-like parameters: bounded in [lo, hi], fitted linearly (not in log space)
EXPONENTS: dict[str, tuple[int, ...]] = {"CPE": (1,), "La": (1,), "Zarc": (2,), "TLMQ": (2,)}
EXPONENT_BOUNDS = (0.2, 1.0)

_TOKEN = re.compile(r"([A-Za-z]+)([0-9_]*[0-9A-Za-z_]*)")


def _registry() -> dict:
    from impedance.models.circuits.elements import circuit_elements

    return {k: v for k, v in circuit_elements.items() if k not in ("s", "p")}


# --- element impedances and derivatives --------------------------------------------
# each returns (Z, [dZ/dp_0, dZ/dp_1, ...]); jw = 1j*omega, ljw = log(1j*omega)


def _el_R(p, jw, ljw, jac):
    z = np.full(jw.shape, p[0] + 0j)
    return z, ([np.ones(jw.shape, complex)] if jac else None)


def _el_C(p, jw, ljw, jac):
    z = 1.0 / (p[0] * jw)
    return z, ([-z / p[0]] if jac else None)


def _el_L(p, jw, ljw, jac):
    z = p[0] * jw
    return z, ([jw + 0j] if jac else None)


def _el_CPE(p, jw, ljw, jac):
    q, a = p
    z = np.exp(-np.log(q) - a * ljw)
    return z, ([-z / q, -z * ljw] if jac else None)


def _el_W(p, jw, ljw, jac):
    om = jw.imag
    z = p[0] * (1 - 1j) / np.sqrt(om)
    return z, ([z / p[0]] if jac else None)


def _el_Wo(p, jw, ljw, jac):
    z0, tau = p
    s = np.sqrt(jw * tau)
    th = np.tanh(s)
    z = z0 / (s * th)
    if not jac:
        return z, None
    csch2 = 1.0 / th**2 - 1.0
    dtau = -z0 / (2 * tau) * (csch2 + 1.0 / (th * s))
    return z, [z / z0, dtau]


def _el_Ws(p, jw, ljw, jac):
    z0, tau = p
    s = np.sqrt(jw * tau)
    th = np.tanh(s)
    z = z0 * th / s
    if not jac:
        return z, None
    dtau = z0 / (2 * tau) * ((1.0 - th**2) - th / s)
    return z, [z / z0, dtau]


def _el_La(p, jw, ljw, jac):
    lv, a = p
    lg = np.log(lv) + ljw
    z = np.exp(a * lg)
    return z, ([a * z / lv, z * lg] if jac else None)


def _el_G(p, jw, ljw, jac):
    r, t = p
    u = 1.0 + jw * t
    z = r / np.sqrt(u)
    return z, ([z / r, -z * jw / (2 * u)] if jac else None)


def _el_K(p, jw, ljw, jac):
    r, tau = p
    u = 1.0 + jw * tau
    z = r / u
    return z, ([z / r, -r * jw / u**2] if jac else None)


def _el_Zarc(p, jw, ljw, jac):
    r, tau, g = p
    lt = np.log(tau) + ljw
    u = np.exp(g * lt)
    d = 1.0 + u
    z = r / d
    if not jac:
        return z, None
    c = -r / d**2 * u
    return z, [z / r, c * g / tau, c * lt]


NATIVE = {
    "R": _el_R,
    "C": _el_C,
    "L": _el_L,
    "CPE": _el_CPE,
    "W": _el_W,
    "Wo": _el_Wo,
    "Ws": _el_Ws,
    "La": _el_La,
    "G": _el_G,
    "K": _el_K,
    "Zarc": _el_Zarc,
}


def _foreign(kind: str):
    """Wrap impedance.py's own element function (numerical derivative)."""
    func = _registry()[kind]

    def ev(p, jw, ljw, jac):
        f = jw.imag / (2 * np.pi)
        z = np.asarray(func([float(v) for v in p], f), dtype=complex)
        if not jac:
            return z, None
        ds = []
        for i in range(len(p)):
            q = [float(v) for v in p]
            h = 1e-7 * max(abs(q[i]), 1e-12)
            q[i] += h
            ds.append((np.asarray(func(q, f), dtype=complex) - z) / h)
        return z, ds

    return ev


# --- tree -------------------------------------------------------------------------


@dataclass(frozen=True)
class Element:
    name: str  # e.g. "CPE1"
    kind: str  # e.g. "CPE"
    index: int  # first parameter index in the flat vector
    n_params: int


@dataclass(frozen=True)
class Series:
    items: tuple


@dataclass(frozen=True)
class Parallel:
    items: tuple


def _eval(node, p, jw, ljw, jac, funcs):
    """Return (Z, list of (param index, dZ/dp)) for a node."""
    if isinstance(node, Element):
        z, ds = funcs[node.name](p[node.index : node.index + node.n_params], jw, ljw, jac)
        return z, ([] if not jac else [(node.index + i, d) for i, d in enumerate(ds)])
    parts = [_eval(c, p, jw, ljw, jac, funcs) for c in node.items]
    if isinstance(node, Series):
        z = parts[0][0]
        for zz, _ in parts[1:]:
            z = z + zz
        return z, [d for _, ds in parts for d in ds]
    y = 1.0 / parts[0][0]
    for zz, _ in parts[1:]:
        y = y + 1.0 / zz
    z = 1.0 / y
    if not jac:
        return z, []
    out = []
    for zz, ds in parts:
        fac = (z / zz) ** 2
        out.extend((i, fac * d) for i, d in ds)
    return z, out


@dataclass(frozen=True)
class Circuit:
    """A parsed, compiled circuit. Build with :func:`parse_circuit`."""

    string: str
    tree: Series
    elements: tuple[Element, ...]
    param_names: tuple[str, ...]
    param_units: tuple[str, ...]
    exponent_mask: np.ndarray = field(compare=False, repr=False)
    funcs: dict = field(compare=False, repr=False)

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    def element(self, name: str) -> Element:
        for e in self.elements:
            if e.name == name:
                return e
        raise KeyError(name)

    def impedance(self, params, frequency_hertz) -> np.ndarray:
        """Complex impedance (Ohm) at the frequencies (Hz) for a parameter vector."""
        params = np.asarray(params, "f8").ravel()
        if params.size != self.n_params:
            raise InputError(
                f"circuit {self.string!r} takes {self.n_params} parameters "
                f"({', '.join(self.param_names)}), got {params.size}"
            )
        w = 2 * np.pi * np.asarray(frequency_hertz, dtype="f8")
        jw = 1j * w
        z, _ = _eval(
            self.tree, np.asarray(params, "f8"), jw, np.log(w) + 0.5j * np.pi, False, self.funcs
        )
        return np.broadcast_to(z, w.shape).astype(complex)

    def impedance_and_jacobian(
        self, params, omega, log_jomega=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(Z, dZ/dp) with dZ/dp of shape (n_params, n_frequencies); omega in rad/s."""
        omega = np.asarray(omega, dtype="f8")
        jw = 1j * omega
        ljw = np.log(omega) + 0.5j * np.pi if log_jomega is None else log_jomega
        z, ds = _eval(self.tree, np.asarray(params, "f8"), jw, ljw, True, self.funcs)
        jac = np.zeros((self.n_params, omega.size), complex)
        for i, d in ds:
            jac[i] += d
        return np.broadcast_to(z, omega.shape).astype(complex), jac

    def top_level(self) -> tuple:
        """The items joined in series at the top level."""
        return self.tree.items


# --- parser -----------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str):
        self.s = text
        self.i = 0
        self.elements: list[Element] = []
        self.n = 0
        self.reg = _registry()

    def err(self, msg: str):
        raise InputError(f"circuit {self.s!r} does not parse: {msg} (at character {self.i + 1})")

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def series(self) -> Series:
        items = [self.term()]
        while self.peek() == "-":
            self.i += 1
            items.append(self.term())
        return Series(tuple(items))

    def term(self):
        if self.s.startswith("p(", self.i):
            self.i += 2
            items = [self.series()]
            while self.peek() == ",":
                self.i += 1
                items.append(self.series())
            if self.peek() != ")":
                self.err("expected ',' or ')'")
            self.i += 1
            if len(items) < 2:
                self.err("p(...) needs at least two branches")
            return Parallel(tuple(items))
        m = _TOKEN.match(self.s, self.i)
        if not m:
            self.err("expected an element name such as R0, CPE1 or p(")
        letters, ident = m.group(1), m.group(2)
        # split element type from identifier the way impedance.py does (letters only)
        name = m.group(0)
        kind = "".join(ch for ch in name if ch not in "0123456789_")
        if kind not in self.reg:
            known = ", ".join(sorted(self.reg))
            self.err(f"unknown element {name!r} (known: {known})")
        if not any(ch.isdigit() for ch in ident) and not ident:
            self.err(f"element {name!r} needs an identifier number (e.g. {letters}1)")
        if any(e.name == name for e in self.elements):
            self.err(f"element {name!r} appears twice")
        n_params = int(self.reg[kind].num_params)
        el = Element(name, kind, self.n, n_params)
        self.elements.append(el)
        self.n += n_params
        self.i = m.end()
        return el


@lru_cache(maxsize=256)
def parse_circuit(circuit: str) -> Circuit:
    """Parse and compile a circuit string (impedance.py grammar). Cached per string.

    Raises :class:`InputError` for a string that does not parse.
    """
    if not isinstance(circuit, str) or not circuit.strip():
        raise InputError("circuit string is empty")
    text = re.sub(r"\s+", "", circuit)
    ps = _Parser(text)
    tree = ps.series()
    if ps.i != len(text):
        ps.err(f"unexpected {text[ps.i]!r}")
    names, units, expo, funcs = [], [], [], {}
    reg = ps.reg
    for e in ps.elements:
        el_units = list(getattr(reg[e.kind], "units", [""] * e.n_params))
        for k in range(e.n_params):
            names.append(e.name if e.n_params == 1 else f"{e.name}_{k}")
            units.append(el_units[k] if k < len(el_units) else "")
            expo.append(k in EXPONENTS.get(e.kind, ()))
        funcs[e.name] = NATIVE.get(e.kind) or _foreign(e.kind)
    return Circuit(
        string=text,
        tree=tree,
        elements=tuple(ps.elements),
        param_names=tuple(names),
        param_units=tuple(units),
        exponent_mask=np.array(expo, dtype=bool),
        funcs=funcs,
    )


def to_string(node) -> str:
    """Circuit string of a (sub)tree."""
    if isinstance(node, Element):
        return node.name
    if isinstance(node, Series):
        return "-".join(to_string(c) for c in node.items)
    return "p(" + ",".join(to_string(c) for c in node.items) + ")"


def arcs(circuit: Circuit) -> list[tuple[Parallel, Element | None, Element | None]]:
    """Top-level parallel blocks as (block, its resistor, its capacitive element).

    The resistor is the first ``R`` anywhere inside the block (``p(R2-Wo1,C2)`` -> R2),
    the capacitive element the first ``C``/``CPE`` branch.
    """
    out = []
    for item in circuit.top_level():
        if not isinstance(item, Parallel):
            continue
        res = cap = None
        for br in item.items:
            for el in _walk(br):
                if res is None and el.kind == "R":
                    res = el
            if (
                len(br.items) == 1
                and isinstance(br.items[0], Element)
                and br.items[0].kind in ("C", "CPE")
            ):
                cap = cap or br.items[0]
        out.append((item, res, cap))
    return out


def _walk(node):
    if isinstance(node, Element):
        yield node
    else:
        for c in node.items:
            yield from _walk(c)


def series_elements(circuit: Circuit) -> list[Element]:
    """Elements joined in series at the top level (not inside any p(...))."""
    return [it for it in circuit.top_level() if isinstance(it, Element)]


def without(circuit: Circuit, item) -> str:
    """Circuit string with one top-level series item removed."""
    rest = [to_string(c) for c in circuit.top_level() if c is not item]
    return "-".join(rest)
