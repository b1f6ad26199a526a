"""Initial guesses derived from the spectrum itself.

Features (frequencies strictly decreasing, Im(Z) < 0 capacitive):

- high-frequency intercept: Z' at the highest frequency;
- arc apexes: local maxima of -Z'' against log f (3-point smoothed), highest first;
- valley: the first local minimum of -Z'' below the first apex (where an arc meets the
  low-frequency tail), and the phase-angle minimum;
- tail: the CPE exponent from the slope of log(-Z'') vs log(omega) over the last points.

:func:`initial_guesses` turns them into a few starting vectors for any circuit: the
first series resistor takes the intercept, each top-level ``p(R.., C/CPE)`` block an
arc (diameter from its apex height, Q from ``tau = 1/omega_apex``), series
capacitive/Warburg elements the tail. Variants move unresolved arcs by decades and put
the first arc above the window, which is what the restarts try.
"""

from __future__ import annotations

import numpy as np

from cyclerflow.eis.circuits import Circuit, Element, Parallel, arcs


def features(f: np.ndarray, z: np.ndarray) -> dict:
    """Shape features of a spectrum (f strictly decreasing)."""
    mim = -z.imag
    sm = mim.copy()
    sm[1:-1] = (mim[:-2] + 2 * mim[1:-1] + mim[2:]) / 4
    scale = float(np.max(np.abs(z)))
    apex = [
        i
        for i in range(1, len(f) - 1)
        if sm[i] > sm[i - 1] and sm[i] >= sm[i + 1] and sm[i] > 0.002 * scale
    ]
    valley = None
    if apex:
        after = [
            i for i in range(apex[0] + 1, len(f) - 1) if sm[i] < sm[i - 1] and sm[i] <= sm[i + 1]
        ]
        valley = after[0] if after else None
    phase = np.degrees(np.angle(z))
    k = min(4, len(f) // 3)
    lw = np.log(2 * np.pi * f[-k:])
    lm = np.log(np.maximum(mim[-k:], 1e-300))
    slope = float(np.polyfit(lw, lm, 1)[0]) if np.all(mim[-k:] > 0) else 0.0
    return {
        "r_hf": float(max(z.real[0], 1e-6 * scale)),
        "apex": apex,
        "valley": valley,
        "phase_min": int(np.argmax(phase)),  # closest to the real axis (least negative)
        "tail_n": float(np.clip(-slope, 0.3, 1.0)),
        "capacitive_tail": bool(slope < -0.3 and phase[-1] < -35),
        "scale": scale,
    }


def _arc_params(kind: str, r: float, omega: float, n: float = 0.9) -> list[float]:
    if kind == "CPE":
        return [1.0 / (r * omega**n), n]
    if kind == "C":
        return [1.0 / (r * omega)]
    return []


def initial_guesses(
    circuit: Circuit, f: np.ndarray, z: np.ndarray, feat: dict | None = None
) -> list[np.ndarray]:
    """A few starting vectors for ``circuit`` (first = best bet)."""
    feat = feat or features(f, z)
    blocks = arcs(circuit)
    nb = len(_arc_items(circuit))
    r_hf = feat["r_hf"]
    end = feat["valley"] if feat["valley"] is not None else len(f) - 1
    if not feat["capacitive_tail"]:
        end = len(f) - 1
    r_end = float(z.real[end])
    span = max(r_end - r_hf, 0.05 * feat["scale"])
    apex = list(feat["apex"])
    omega = 2 * np.pi * f
    lo_f = f[end]

    def place(apex_idx: list[int], first_above: bool) -> list[tuple[float, float]]:
        """(R, omega) per block."""
        known = [(max(2.4 * -z.imag[i], 1e-3 * span), omega[i]) for i in apex_idx[:nb]]
        if first_above:
            known = [(0.6 * span, omega[0] * 5)] + known
            known = known[:nb]
        missing = nb - len(known)
        if missing > 0:
            r_left = max(span - sum(r for r, _ in known), 0.2 * span) / missing
            w_top = known[-1][1] if known else omega[0]
            grid = np.geomspace(w_top, 2 * np.pi * lo_f, missing + 2)[1:-1]
            known += [(r_left, w) for w in grid]
        tot = sum(r for r, _ in known)
        if tot > 1.5 * span:
            known = [(r * span / tot, w) for r, w in known]
        return known

    variants = [place(apex, False)]
    if nb >= 1:
        variants.append(place(apex, True))
    if nb >= 2 and len(apex) >= 1:
        variants.append(place(apex[1:], True) if len(apex) > 1 else place([], True))
        # found apex belongs to the second arc; first is above the window
        v = place(apex, False)
        v = [(r, w) for r, w in v]
        v[0], v[1:] = (v[0][0], v[0][1] * 30), [(r, w / 10) for r, w in v[1:]]
        variants.append(v)
    return [_vector(circuit, blocks, var, feat, f, z, r_hf, span) for var in variants]


def _vector(circuit, blocks, arc_rw, feat, f, z, r_hf, span) -> np.ndarray:
    p = np.ones(circuit.n_params)
    omega = 2 * np.pi * f
    w_lf = omega[-1]
    mim_lf = max(-z.imag[-1], 1e-3 * feat["scale"])
    n_tail = feat["tail_n"]
    series_r_done = False
    parts = {id(blk): (res, cap) for blk, res, cap in blocks}
    rw = {id(it): v for it, v in zip(_arc_items(circuit), arc_rw, strict=False)}
    for item in circuit.top_level():
        if isinstance(item, Element) and item.kind == "Zarc" and id(item) in rw:
            r, w = rw[id(item)]
            p[item.index : item.index + 3] = [r, 1.0 / w, 0.9]
        elif isinstance(item, Parallel):
            res, cap = parts[id(item)]
            r, w = rw[id(item)]
            for el in _elements(item):
                if el is res:
                    p[el.index] = r
                elif el is cap:
                    p[el.index : el.index + el.n_params] = _arc_params(el.kind, r, w)
                else:
                    p[el.index : el.index + el.n_params] = _default(el, r, w, w_lf, mim_lf, n_tail)
        else:
            el = item
            if el.kind == "R":
                p[el.index] = r_hf if not series_r_done else 1e-3 * span
                series_r_done = True
            else:
                p[el.index : el.index + el.n_params] = _default(
                    el, span, omega[0], w_lf, mim_lf, n_tail
                )
    return p


def _arc_items(circuit: Circuit) -> list:
    """Top-level arcs in circuit order: p(...) blocks and Zarc elements."""
    return [
        it
        for it in circuit.top_level()
        if isinstance(it, Parallel) or (isinstance(it, Element) and it.kind == "Zarc")
    ]


def _elements(node):
    if isinstance(node, Element):
        yield node
    else:
        for c in node.items:
            yield from _elements(c)


def _default(
    el: Element, r: float, w: float, w_lf: float, mim_lf: float, n_tail: float
) -> list[float]:
    """Guess for a tail-type element (or anything else)."""
    k = el.kind
    if k == "CPE":
        return [np.sin(n_tail * np.pi / 2) / (mim_lf * w_lf**n_tail), n_tail]
    if k == "C":
        return [1.0 / (mim_lf * w_lf)]
    if k == "W":
        return [mim_lf * np.sqrt(w_lf)]
    if k in ("Wo", "Ws"):
        return [max(mim_lf, r), 10.0 / w_lf]
    if k == "L":
        return [1e-3 * r / w]
    if k == "R":
        return [r]
    if k == "Zarc":
        return [r, 1.0 / w, 0.9]
    if k in ("K", "G"):
        return [r, 1.0 / w]
    if k == "La":
        return [1e-3 * r / w, 0.9]
    return [1.0] * el.n_params
