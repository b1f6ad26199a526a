"""The cell's own charge curve: capacity basis and dV/dQ at a voltage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cyclerflow.transport.fitting import fit_line
from cyclerflow.transport.steps import CC, REST, Record


@dataclass(frozen=True)
class ChargeSequences:
    """Maximal sequences of charge steps (rests allowed inside, any discharge ends one):
    first and last step index and charge (A s) of each."""

    first: np.ndarray
    last: np.ndarray
    charge_as: np.ndarray


def charge_sequences(rec: Record) -> ChargeSequences:
    """Charge sequences of the record (see :class:`ChargeSequences`)."""
    st = rec.steps
    dq = rec.step_q
    active = st.kind != REST
    direction = np.where(active, np.sign(st.current), 0)
    idx = np.flatnonzero(direction != 0)
    if len(idx) == 0:
        z = np.zeros(0, "i8")
        return ChargeSequences(z, z, np.zeros(0))
    d = direction[idx]
    new = np.r_[True, d[1:] != d[:-1]]
    grp = np.cumsum(new) - 1
    pos_groups = np.unique(grp[d > 0])
    first = np.array([idx[grp == g][0] for g in pos_groups], "i8")
    last = np.array([idx[grp == g][-1] for g in pos_groups], "i8")
    charge = np.array([dq[idx[grp == g]].sum() for g in pos_groups], "f8")
    return ChargeSequences(first, last, charge)


def dv_dq_at(rec: Record, seqs: ChargeSequences, step: int, volt: float) -> float | None:
    """dV/dQ (V/C) of the latest charge sequence ending before ``step``, at ``volt``.

    From the constant-current samples of that sequence: a straight line of V vs charge
    over the samples within 2 % of the curve's voltage span of ``volt``; where fewer than
    5 samples lie there (the voltage is outside the curve), over its last 10 %."""
    before = np.flatnonzero(seqs.last < step)
    if len(before) == 0:
        return None
    g = int(before[-1])
    st = rec.steps
    ks = [
        k for k in range(seqs.first[g], seqs.last[g] + 1) if st.kind[k] == CC and st.current[k] > 0
    ]
    if not ks:
        return None
    v = np.concatenate([rec.v[st.start[k] : st.end[k]] for k in ks])
    q = np.concatenate([rec.q_local(k) for k in ks])
    span = float(v.max() - v.min())
    near = np.abs(v - volt) <= 0.02 * span
    if np.count_nonzero(near) < 5:
        near = q >= q.min() + 0.9 * (q.max() - q.min())
    line = fit_line(q[near], v[near])
    return None if line is None or line.slope <= 0 else line.slope
