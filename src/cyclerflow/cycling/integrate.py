"""Trapezoidal integration of current and power over contiguous runs of samples.

Every run ``[start, end)`` is integrated from its first to its last sample (the
interval between the last sample of one run and the first sample of the next is
not counted: the instant the set point changed inside that gap is unknown).
All sums are float64; one pass over the samples, no Python loop.
"""

from __future__ import annotations

import numpy as np

SECONDS_PER_HOUR = 3600.0


def interval_weights(t: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Half the time step of every interval, zeroed where an interval crosses a run boundary.

    Returns an array of length ``len(t)`` (the last element is 0): element ``k`` is
    ``(t[k+1] - t[k]) / 2`` in seconds, or 0 when sample ``k+1`` starts a new run.
    """
    n = len(t)
    w = np.empty(n, dtype="f8")
    np.subtract(t[1:], t[:-1], out=w[:-1])
    w *= 0.5
    w[-1] = 0.0
    b = starts[1:] - 1
    w[b] = 0.0
    return w


def trapezoid_sample_weights(t: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per-sample trapezoid weights (s): the run integral of y is ``sum(y * W)`` per run.

    ``W[k] = (t[k+1] - t[k-1]) / 2`` inside a run, ``(t[k+1] - t[k]) / 2`` at its first
    sample and ``(t[k] - t[k-1]) / 2`` at its last (0 for a one-sample run). Summing
    ``y * W`` over a run equals the trapezoid rule from its first to its last sample.
    """
    w = interval_weights(t, starts)
    big_w = w.copy()
    big_w[1:] += w[:-1]
    return big_w


def weighted_run_sums(
    y: np.ndarray, big_w: np.ndarray, starts: np.ndarray, buf: np.ndarray | None = None
) -> np.ndarray:
    """``sum(y * W)`` per run, using ``buf`` (len(y) float64) as scratch if given."""
    if len(y) == 0:
        return np.zeros(0)
    buf = np.empty(len(y), "f8") if buf is None else buf
    np.multiply(y, big_w, out=buf)
    return np.add.reduceat(buf, starts)


def cumulative_in_runs(y: np.ndarray, w: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Cumulative trapezoid integral of ``y`` restarting at 0 at each run start (y x s)."""
    n = len(y)
    if n == 0:
        return np.zeros(0)
    inc = np.zeros(n, dtype="f8")
    np.add(y[:-1], y[1:], out=inc[1:])
    inc[1:] *= w[:-1]
    inc[starts] = 0.0
    c = np.cumsum(inc)
    offset = c[starts]
    lengths = np.diff(np.append(starts, n))
    c -= np.repeat(offset, lengths)
    return c


# --- interval-mean currents (e.g. BioLogic <I>: the mean over the preceding interval) ---


def interval_lengths(t: np.ndarray) -> np.ndarray:
    """``t[k] - t[k-1]`` for every sample (0 for the first), seconds."""
    w = np.empty(len(t), dtype="f8")
    if len(t):
        w[0] = 0.0
        np.subtract(t[1:], t[:-1], out=w[1:])
    return w


def run_integrals_interval_mean(y: np.ndarray, dt: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Rectangle sum ``sum_k y[k] * (t[k] - t[k-1])`` per run (y x s).

    For a column that holds the mean over the interval ending at each sample, every
    interval is counted once, in the run of the sample that closes it (so the interval
    in which a step begins belongs to that step).
    """
    if len(y) == 0:
        return np.zeros(0)
    return np.add.reduceat(y * dt, starts)


def cumulative_interval_mean(y: np.ndarray, dt: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Cumulative rectangle sum within each run, 0 before the run's first interval."""
    n = len(y)
    if n == 0:
        return np.zeros(0)
    inc = y * dt
    c = np.cumsum(inc)
    offset = c[starts] - inc[starts]
    lengths = np.diff(np.append(starts, n))
    c -= np.repeat(offset, lengths)
    return c
