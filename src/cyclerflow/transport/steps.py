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
class Record:
    """Clean columns (s, A, V), cumulative charge ``q`` (A s, trapezoid) and the steps."""

    t: np.ndarray
    i: np.ndarray
    v: np.ndarray
    q: np.ndarray
    steps: Steps
    i_ref: float
    noise: float
    threshold: float

    @property
    def charge_span_as(self) -> float:
        """Range of the cumulative charge over the record (A s): the SOC basis."""
        return float(self.q.max() - self.q.min()) if len(self.q) else 0.0

    def soc(self, k: np.ndarray | int) -> np.ndarray:
        """State of charge (0..1) at sample index ``k``: (q - min q) / (max q - min q)."""
        span = self.charge_span_as
        lo = float(self.q.min())
        return (self.q[k] - lo) / span if span > 0 else np.full(np.shape(k), np.nan)


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


def cumulative_charge(t: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Cumulative trapezoid integral of the current (A s), 0 at the first sample."""
    q = np.empty(len(t), "f8")
    if len(t):
        q[0] = 0.0
        np.cumsum(0.5 * (i[1:] + i[:-1]) * np.diff(t), out=q[1:])
    return q


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
            cuts.append(m)
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
    return Record(
        t=s.t,
        i=s.i,
        v=s.v,
        q=cumulative_charge(s.t, s.i),
        steps=steps,
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
    v_hold = float(np.median(v[st.start[k] : b]))
    sign = float(np.sign(st.current[k]))
    ok = (np.abs(v[b:stop] - v_hold) <= tolerance * abs(v_hold)) & (
        i[b:stop] * sign > 2.0 * rec.noise
    )
    bad = np.flatnonzero(~ok)
    return b + (int(bad[0]) if len(bad) else stop - b)
