"""Steps from the cycling segmentation's runs: the transport analyses add almost nothing
to ``analyze``'s time because they reuse its runs, run charges and thresholds.

Consecutive rest runs (not active in the segmentation) merge into one rest step; every
active run is a step. Kinds come from a run's first (for the current: second), middle
and last samples and its mean current (charge / duration), so no pass over the samples
is needed; a run that is
a CC part followed by a CV hold (records without step columns) is split as in
:func:`cyclerflow.transport.steps.detect_steps`.
"""

from __future__ import annotations

import numpy as np

from cyclerflow.cycling.segment import Samples, Segmentation
from cyclerflow.transport.steps import (
    CC,
    CV,
    OTHER,
    REST,
    Record,
    StepOptions,
    Steps,
    _cc_cv_splits,
    _q0,
)


def _endpoint_kinds(s: Samples, starts, ends, q, active, noise, opt: StepOptions):
    """Kinds and mean currents from first / middle / last samples and the step charge."""
    a, b = starts, ends - 1
    mid = (a + b) // 2
    # the first sample of a step can straddle the change (interval-mean currents): the
    # current's constancy is judged from the second sample on where there are three
    a2 = np.where(b - a >= 2, a + 1, a)
    dur = s.t[b] - s.t[a]
    with np.errstate(divide="ignore", invalid="ignore"):
        i_mean = np.where(dur > 0, q / dur, s.i[a])
    tol = opt.cc_tolerance * np.abs(i_mean) + 6.0 * noise
    dev = np.maximum.reduce([np.abs(s.i[x] - i_mean) for x in (a2, mid, b)])
    v_span = np.ptp(np.stack([s.v[a], s.v[mid], s.v[b]]), axis=0)
    cc = active & (dev <= tol)
    cv = active & ~cc & (v_span <= opt.cv_tolerance * np.abs(s.v[b]))
    cv &= np.abs(s.i[b]) <= opt.cv_decay * np.abs(s.i[a])
    kind = np.full(len(starts), OTHER, "i1")
    kind[~active] = REST
    kind[cc] = CC
    kind[cv] = CV
    return kind, i_mean


def _local_charge(s: Samples, a: int, b: int) -> float:
    seg_t, seg_i = s.t[a:b], s.i[a:b]
    return float((0.5 * (seg_i[1:] + seg_i[:-1]) * np.diff(seg_t)).sum())


def record_from_runs(s: Samples, seg: Segmentation, opt: StepOptions = StepOptions()) -> Record:
    """A :class:`Record` whose steps are the segmentation's runs (rest runs merged)."""
    act = seg.active
    new = act.copy()
    new[1:] |= act[:-1]
    new[0] = True
    first_run = np.flatnonzero(new)
    starts = seg.starts[first_run]
    ends = np.append(starts[1:], len(s.t))
    q = np.add.reduceat(seg.q_as, first_run)
    active = act[first_run]
    kind, i_mean = _endpoint_kinds(s, starts, ends, q, active, seg.noise_a, opt)
    cuts = _cc_cv_splits(s, starts, ends, kind, opt)
    if cuts:
        pos = np.searchsorted(starts, cuts, side="right") - 1
        part = np.array([_local_charge(s, starts[k], m) for k, m in zip(pos, cuts, strict=True)])
        q_parts = q.copy()
        q_parts[pos] = part
        rest = q[pos] - part
        starts = np.insert(starts, pos + 1, cuts)
        q = np.insert(q_parts, pos + 1, rest)
        active = np.insert(active, pos + 1, True)
        ends = np.append(starts[1:], len(s.t))
        kind, i_mean = _endpoint_kinds(s, starts, ends, q, active, seg.noise_a, opt)
    steps = Steps(start=starts, end=ends, kind=kind, current=i_mean, n=ends - starts)
    return Record(
        t=s.t,
        i=s.i,
        v=s.v,
        steps=steps,
        step_q=q,
        step_q0=_q0(q),
        i_ref=seg.i_ref_a,
        noise=seg.noise_a,
        threshold=seg.threshold_a,
    )
