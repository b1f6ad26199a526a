"""Steps of a record for the transport analyses: rest, constant current, constant voltage.

A *step* is a maximal block of samples with the same current class and no current jump:
the class is +1 / -1 above the rest threshold and 0 at or below it (the threshold of
:func:`cyclerflow.cycling.segment.rest_threshold`: a fraction of the record's reference
current or a multiple of its noise, never an absolute current), and a jump is a change
between consecutive samples larger than ``jump_fraction`` x the reference current.
Instrument step / cycle columns split steps too. Everything is relative, so the same
code reads nA microcells and A cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cyclerflow.cycling.segment import Samples, Thresholds, rest_threshold

REST, CC, CV, OTHER = 0, 1, 2, 3
KIND_NAME = {REST: "rest", CC: "constant_current", CV: "constant_voltage", OTHER: "other"}


@dataclass(frozen=True)
class StepOptions:
    """Relative thresholds of step detection (fractions; no absolute currents).

    jump_fraction: a current change between consecutive samples above this fraction of
        the reference current starts a new step.
    cc_tolerance: a step is constant-current when max - min of its current is within
        this fraction of its mean |I| (plus 6 x the record's current noise).
    cv_tolerance: a step is constant-voltage when max - min of its voltage is within
        this fraction of its mean |V| and its |I| falls to ``cv_decay`` x its first value.
    held_voltage: a current jump does not start a new step when the voltage changes by
        less than this fraction between the two samples (the decay of a CV hold).
    """

    jump_fraction: float = 0.05
    cc_tolerance: float = 0.05
    cv_tolerance: float = 2e-3
    cv_decay: float = 0.7
    held_voltage: float = 5e-4
    segmentation: Thresholds = Thresholds()


@dataclass(frozen=True)
class Steps:
    """Per step: first sample, one past the last, kind, mean current (A), sample count."""

    start: np.ndarray
    end: np.ndarray
    kind: np.ndarray
    current: np.ndarray
    n: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    def duration(self, t: np.ndarray) -> np.ndarray:
        """Last sample time - first sample time of every step (s)."""
        return t[self.end - 1] - t[self.start]


@dataclass(frozen=True)
class Record:
    """Clean columns (s, A, V), the steps, and per step its charge and the cumulative
    charge at its first sample (A s; trapezoid within steps, the interval between two
    steps not counted, as in the cycling capacities)."""

    t: np.ndarray
    i: np.ndarray
    v: np.ndarray
    steps: Steps
    step_q: np.ndarray
    step_q0: np.ndarray
    i_ref: float
    noise: float
    threshold: float

    @property
    def charge_span_as(self) -> float:
        """Range of the cumulative charge over the record (A s): the SOC basis."""
        if len(self.step_q0) == 0:
            return 0.0
        both = np.concatenate((self.step_q0, self.step_q0 + self.step_q))
        return float(both.max() - both.min())

    def q_local(self, k: int) -> np.ndarray:
        """Cumulative charge (A s) at every sample of step k."""
        a, b = int(self.steps.start[k]), int(self.steps.end[k])
        out = np.empty(b - a)
        out[0] = 0.0
        np.cumsum(0.5 * (self.i[a + 1 : b] + self.i[a : b - 1]) * np.diff(self.t[a:b]), out=out[1:])
        return self.step_q0[k] + out

    def q_at(self, idx: int) -> float:
        """Cumulative charge (A s) at sample ``idx``."""
        k = int(np.searchsorted(self.steps.start, idx, side="right")) - 1
        a = int(self.steps.start[k])
        seg_t, seg_i = self.t[a : idx + 1], self.i[a : idx + 1]
        return float(self.step_q0[k] + (0.5 * (seg_i[1:] + seg_i[:-1]) * np.diff(seg_t)).sum())

    def soc(self, idx: int) -> float:
        """State of charge (0..1) at sample ``idx``: (q - min q) / (max q - min q)."""
        span = self.charge_span_as
        if span <= 0:
            return float("nan")
        lo = float(min(self.step_q0.min(), (self.step_q0 + self.step_q).min()))
        return (self.q_at(idx) - lo) / span


def step_charges(t: np.ndarray, i: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Trapezoid charge (A s) within each step (steps start at ``starts``)."""
    inc = np.zeros(len(t), "f8")
    inc[1:] = 0.5 * (i[1:] + i[:-1]) * np.diff(t)
    inc[starts] = 0.0  # the interval before a step's first sample is not the step's
    return np.add.reduceat(inc, starts)


def _q0(step_q: np.ndarray) -> np.ndarray:
    return np.concatenate(([0.0], np.cumsum(step_q)[:-1]))


def _boundaries(s: Samples, cls: np.ndarray, jump: float, v_tol: float) -> np.ndarray:
    change = cls[1:] != cls[:-1]
    # a current jump at a held voltage is a CV decay, not a new step
    change |= (np.abs(np.diff(s.i)) > jump) & (np.abs(np.diff(s.v)) > v_tol * np.abs(s.v[1:]))
    for col in (s.step, s.cycle):
        if col is not None:
            change |= col[1:] != col[:-1]
    return np.concatenate(([0], np.flatnonzero(change) + 1))


def _kinds(s: Samples, starts, ends, cls, noise, opt: StepOptions) -> np.ndarray:
    n = ends - starts
    i_mean = np.add.reduceat(s.i, starts) / n
    i_span = np.maximum.reduceat(s.i, starts) - np.minimum.reduceat(s.i, starts)
    v_span = np.maximum.reduceat(s.v, starts) - np.minimum.reduceat(s.v, starts)
    v_mean = np.add.reduceat(s.v, starts) / n
    c = cls[starts]
    cc = (c != 0) & (i_span <= opt.cc_tolerance * np.abs(i_mean) + 6.0 * noise)
    decays = np.abs(s.i[ends - 1]) <= opt.cv_decay * np.abs(s.i[starts])
    cv = (c != 0) & ~cc & (v_span <= opt.cv_tolerance * np.abs(v_mean)) & decays
    kind = np.full(len(starts), OTHER, "i1")
    kind[c == 0] = REST
    kind[cc] = CC
    kind[cv] = CV
    return kind, i_mean, n


def _cc_cv_splits(s: Samples, starts, ends, kind, opt: StepOptions) -> list[int]:
    """Where an unclassified step is a CC part followed by a CV hold (no step column):
    the first sample whose current left the step's first current by ``cc_tolerance``,
    if the voltage is held from there on."""
    cuts = []
    for k in np.flatnonzero(kind == OTHER):
        a, b = int(starts[k]), int(ends[k])
        i0 = s.i[a]
        off = np.flatnonzero(np.abs(s.i[a:b] - i0) > opt.cc_tolerance * abs(i0))
        if len(off) == 0 or off[0] < 3:
            continue
        m = a + int(off[0])
        tail = s.v[m:b]
        if tail.max() - tail.min() <= opt.cv_tolerance * abs(float(tail.mean())):
            # the hold began where the voltage reached its held value, not where the
            # current had left the CC value by the tolerance
            held = np.abs(s.v[a:m] - s.v[m]) <= 0.4 * opt.held_voltage * abs(float(s.v[m]))
            lead = np.flatnonzero(~held)
            cuts.append(a + int(lead[-1]) + 1 if len(lead) else m)
    return cuts


def detect_steps(s: Samples, opt: StepOptions = StepOptions()) -> Record:
    """Split a record into steps and classify them (see module docstring)."""
    i_ref, noise, thr = rest_threshold(s.i, opt.segmentation)
    cls = np.sign(s.i).astype("i1")
    cls[np.abs(s.i) <= thr] = 0
    jump = opt.jump_fraction * i_ref if i_ref > 0 else np.inf
    starts = _boundaries(s, cls, jump, opt.held_voltage)
    ends = np.append(starts[1:], len(s.t))
    kind, i_mean, n = _kinds(s, starts, ends, cls, noise, opt)
    cuts = _cc_cv_splits(s, starts, ends, kind, opt)
    if cuts:
        starts = np.union1d(starts, np.asarray(cuts, starts.dtype))
        ends = np.append(starts[1:], len(s.t))
        kind, i_mean, n = _kinds(s, starts, ends, cls, noise, opt)
    steps = Steps(start=starts, end=ends, kind=kind, current=i_mean, n=n)
    q = step_charges(s.t, s.i, starts)
    return Record(
        t=s.t,
        i=s.i,
        v=s.v,
        steps=steps,
        step_q=q,
        step_q0=_q0(q),
        i_ref=i_ref,
        noise=noise,
        threshold=thr,
    )


def held_end(rec: Record, k: int, tolerance: float = 2e-3) -> int:
    """End (exclusive sample index) of CV step k extended, sample by sample, over the
    following rest steps while the voltage stays held (within ``tolerance`` x |V|) and the
    current keeps its sign above twice the noise: a hold whose current fell below the
    rest threshold."""
    st, v, i = rec.steps, rec.v, rec.i
    b = int(st.end[k])
    j = k + 1
    while j < len(st) and st.kind[j] == REST:
        j += 1
    stop = int(st.start[j]) if j < len(st) else len(v)
    if stop <= b:
        return b
    v_hold = float(v[b - 1])
    sign = float(np.sign(st.current[k]))
    ok = (np.abs(v[b:stop] - v_hold) <= tolerance * abs(v_hold)) & (
        i[b:stop] * sign > 2.0 * rec.noise
    )
    bad = np.flatnonzero(~ok)
    return b + (int(bad[0]) if len(bad) else stop - b)
