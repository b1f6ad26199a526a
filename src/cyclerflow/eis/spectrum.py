"""Checking one impedance spectrum before anything is fitted to it."""

from __future__ import annotations

import numpy as np

from cyclerflow.errors import InputError

#: fewest points a spectrum may have to be fitted
MIN_POINTS = 10


def check_spectrum(
    frequency_hertz, z, *, where: str | None = None, path=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate a spectrum; return (f, z, order) with f strictly decreasing.

    ``order`` maps the returned arrays back to the caller's order: ``f_in = f[inverse]``
    with ``inverse = np.argsort(order)``. Raises :class:`InputError` for fewer than
    ``MIN_POINTS`` points, NaN/inf, frequencies <= 0, duplicate or non-monotonic
    frequencies, and a positive imaginary part at every frequency (sign convention
    flipped: cyclerflow stores Im(Z) signed, negative = capacitive).
    """
    f = np.asarray(frequency_hertz, dtype="f8").ravel()
    zc = np.asarray(z).ravel()
    if not np.iscomplexobj(zc):
        raise InputError("impedance must be a complex array (Z' + j Z'')", path=path, where=where)
    zc = zc.astype(complex)
    if f.shape != zc.shape:
        raise InputError(
            f"{f.size} frequencies but {zc.size} impedance values", path=path, where=where
        )
    if f.size < MIN_POINTS:
        raise InputError(
            f"only {f.size} points; at least {MIN_POINTS} are needed to fit a spectrum",
            path=path,
            where=where,
        )
    bad = np.flatnonzero(~np.isfinite(f) | ~np.isfinite(zc.real) | ~np.isfinite(zc.imag))
    if bad.size:
        raise InputError(
            f"NaN or infinite value at point {int(bad[0]) + 1} (f = {f[bad[0]]!r} Hz)",
            path=path,
            where=where,
        )
    if np.any(f <= 0):
        i = int(np.flatnonzero(f <= 0)[0])
        raise InputError(
            f"frequency must be > 0 Hz (point {i + 1}: {f[i]!r})", path=path, where=where
        )
    d = np.diff(f)
    if np.any(d == 0):
        i = int(np.flatnonzero(d == 0)[0]) + 1
        raise InputError(
            f"duplicate frequency {f[i]:g} Hz at point {i + 1}", path=path, where=where
        )
    if not (np.all(d < 0) or np.all(d > 0)):
        i = int(np.flatnonzero(np.sign(d) != np.sign(d[0]))[0]) + 1
        raise InputError(
            f"frequencies are not monotonic (the sweep turns at point {i + 1}, {f[i]:g} Hz)",
            path=path,
            where=where,
        )
    if np.all(zc.imag > 0):
        raise InputError(
            "imaginary impedance is positive at every frequency: sign convention flipped? "
            "(expected Im(Z) signed, negative = capacitive; the file may hold -Im(Z))",
            path=path,
            where=where,
        )
    if np.any(np.abs(zc) == 0):
        raise InputError("impedance is exactly zero at some frequency", path=path, where=where)
    order = np.argsort(-f, kind="stable")
    return f[order], zc[order], order
