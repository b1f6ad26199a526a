"""Charge-CE anomalies: cycles that keep much more of their charge than the cell's own
other cycles, read as a leakage estimate (docs/transport.md, section 7). The first
complete cycle (first-cycle irreversible capacity) is left out, and the first three
complete cycles (formation) are never anomalies."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from cyclerflow.transport.selfdischarge import Basis


@dataclass(frozen=True)
class CeOptions:
    """An anomaly: charge loss 1 - Qd/Qc above median + mad_factor x 1.4826 MAD +
    min_excess over the complete cycles; the first ``formation_cycles`` complete cycles
    (formation, SEI growth) are not candidates."""

    mad_factor: float = 5.0
    min_excess: float = 0.002
    formation_cycles: int = 3


def ce_anomalies(
    per_cycle: xr.Dataset | None, b: Basis, opt: CeOptions = CeOptions()
) -> list[dict]:
    """One event per anomalous cycle: loss, leakage (A) = lost charge / cycle duration."""
    if per_cycle is None or per_cycle.sizes.get("cycle", 0) < 3:
        return []
    qc = np.asarray(per_cycle["charge_capacity_ah"].values, "f8")
    qd = np.asarray(per_cycle["discharge_capacity_ah"].values, "f8")
    t0 = np.asarray(per_cycle["start_time_second"].values, "f8")
    t1 = np.asarray(per_cycle["end_time_second"].values, "f8")
    ok = np.asarray(per_cycle["complete"].values).astype(bool) & (qc > 0) & (t1 > t0)
    ok[np.argmax(ok)] = False  # the first complete cycle: formation loss, reported apart
    if ok.sum() < 3:
        return []
    loss = np.where(ok, 1.0 - qd / np.where(qc > 0, qc, 1.0), np.nan)
    med = float(np.nanmedian(loss))
    mad = float(np.nanmedian(np.abs(loss - med)))
    limit = med + opt.mad_factor * 1.4826 * mad + opt.min_excess
    candidate = ok & (loss > limit)
    candidate[np.flatnonzero(ok)[: max(opt.formation_cycles - 1, 0)]] = False
    out = []
    for k in np.flatnonzero(candidate):
        leak = (qc[k] - qd[k]) * 3600.0 / (t1[k] - t0[k])
        flagged = b.bound_a is not None and leak > b.bound_a
        out.append(
            {
                "method": "coulombic_efficiency",
                "time_s": float(t0[k]),
                "cycle": int(per_cycle["cycle"].values[k]),
                "charge_loss_fraction": float(loss[k]),
                "typical_charge_loss_fraction": med,
                "leakage_a": float(leak),
                "leakage_a_per_cm2": float(leak / b.area_cm2) if b.area_cm2 else None,
                "flagged": bool(flagged),
                "evidence": f"cycle kept {loss[k]:.2%} of its charge (typical {med:.2%}); "
                f"as a leakage over the cycle {leak:.3g} A",
            }
        )
    return out
