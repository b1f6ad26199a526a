"""Vendor records -> cell-file rows: test time from step times, counters, continuity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cyclerflow.acquire.cycler import Carry, CyclerRecords, first_breach, to_rows
from cyclerflow.acquire.recipe import Limits
from cyclerflow.errors import InstrumentError


def recs(seq, step, cyc, stype, st, v=3.7, i=1e-5, cap=0.0):
    n = len(seq)
    full = lambda x: np.full(n, x, dtype="f8") if np.isscalar(x) else np.asarray(x, "f8")  # noqa: E731
    return CyclerRecords(
        seq=np.asarray(seq),
        step_id=np.asarray(step),
        cycle_id=np.asarray(cyc),
        step_type=np.asarray(stype),
        step_time_s=np.asarray(st, "f8"),
        voltage_v=full(v),
        current_a=full(i),
        capacity_ah=full(cap),
        energy_wh=full(0.0),
    )


def test_test_time_is_rebuilt_from_step_times_across_batches():
    # step 1 (rest) 0..60 s, step 2 (cc) 0..100 s, then step 2 again in cycle 2
    a = recs([1, 2, 3, 4], [1, 1, 2, 2], [1, 1, 1, 1], ["rest", "rest", "cc", "cc"], [0, 60, 0, 50])
    b1 = to_rows(a, Carry(unix0=1000.0), {1: (1, "rest"), 2: (2, "cc_charge")})
    np.testing.assert_array_equal(b1.rows["test_time_second"], [0, 60, 60, 110])
    np.testing.assert_array_equal(b1.rows["unix_time_second"], [1000, 1060, 1060, 1110])
    np.testing.assert_array_equal(b1.rows["step_count"], [1, 1, 2, 2])
    np.testing.assert_array_equal(b1.rows["step_index"], [1, 1, 2, 2])
    assert b1.starts.tolist() == [0, 2]
    b = recs([5, 6, 7], [2, 2, 2], [1, 2, 2], ["cc"] * 3, [100, 0, 30], cap=[2e-6, 0, 1e-6])
    b2 = to_rows(b, b1.carry, {2: (2, "cc_charge")})
    np.testing.assert_array_equal(b2.rows["test_time_second"], [160, 160, 190])
    np.testing.assert_array_equal(b2.rows["step_count"], [2, 3, 3])
    np.testing.assert_array_equal(b2.rows["charge_capacity_ampere_hour"], [2e-6, 0, 1e-6])
    np.testing.assert_array_equal(b2.rows["discharge_capacity_ampere_hour"], [0, 0, 0])
    assert b2.carry.last_seq == 7 and b2.carry.step_offset_s == 160


def test_discharge_counters_and_step_type_codes():
    r = recs([1, 2], [3, 3], [1, 1], ["dc", "dc"], [0, 10], i=-1e-5, cap=[0, 3e-8])
    rows = to_rows(r, Carry(), {}).rows
    np.testing.assert_array_equal(rows["discharge_capacity_ampere_hour"], [0, 3e-8])
    np.testing.assert_array_equal(rows["charge_capacity_ampere_hour"], [0, 0])
    np.testing.assert_array_equal(rows["vendor_step_type"], [2, 2])
    np.testing.assert_array_equal(rows["step_index"], [-1, -1])  # unknown vendor step


@pytest.mark.parametrize("seq", [[2, 3], [1, 3], [1, 1]])
def test_a_gap_or_duplicate_is_refused(seq):
    with pytest.raises(InstrumentError, match="do not continue the file"):
        to_rows(recs(seq, [1, 1], [1, 1], ["cc"] * 2, [0, 1]), Carry(), {})


def test_first_breach_finds_the_first_bad_row():
    lim = Limits(voltage_max=4.2, voltage_min=3.0, current_max=1e-4, step_time_max=100.0)
    rows = to_rows(
        recs([1, 2, 3, 4], [1] * 4, [1] * 4, ["cc"] * 4, [0, 50, 101, 120], v=[3.5, 4.1, 4.1, 4.3]),
        Carry(),
        {},
    ).rows
    k, msg = first_breach(lim, rows)
    assert k == 2 and "step_time_max" in msg
    rows["voltage_volt"][1] = 4.25
    k, msg = first_breach(lim, rows)
    assert k == 1 and "voltage_max" in msg


@settings(max_examples=300, deadline=None)
@given(
    offset0=st.floats(0, 1e7),
    step_times=st.lists(
        st.lists(st.floats(0, 5e4, allow_subnormal=False), min_size=1, max_size=6),
        min_size=2,
        max_size=8,
    ),
    split=st.integers(0, 40),
)
def test_rebuilt_test_time_never_steps_back(offset0, step_times, split):
    # steps whose step time restarts at 0 (as a cycler logs a step's first record):
    # the rebuilt time must not fall an ulp below the record before, within a batch
    # or across two batches
    st_all = np.concatenate([np.sort(s) - min(s) for s in step_times])
    step_id = np.concatenate([np.full(len(s), k + 1) for k, s in enumerate(step_times)])
    n = len(st_all)
    k = min(split, n)
    carry = Carry(step_offset_s=offset0, step_time_s=0.0, step_key=(1, 1))
    times = []
    for lo, hi in ((0, k), (k, n)):
        seq = np.arange(lo + 1, hi + 1)
        b = to_rows(
            recs(seq, step_id[lo:hi], [1] * (hi - lo), ["cc"] * (hi - lo), st_all[lo:hi]), carry, {}
        )
        times.append(b.rows["test_time_second"])
        carry = b.carry
    t = np.concatenate(times)
    assert np.all(np.diff(t) >= 0), t
    # and each step's first record is exactly where the step before ended
    first = np.flatnonzero(np.diff(step_id)) + 1
    np.testing.assert_array_equal(t[first], t[first - 1] + st_all[first])


def test_a_carry_read_back_from_a_file_does_not_step_back():
    # read_carry stores the step offset as (last test time - step time), which rounds:
    # (22443.340315930724 - 2110.5828779135863) + 2110.5828779135863 < 22443.340315930724
    t_last, st_last = 22443.340315930724, 2110.5828779135863
    assert (t_last - st_last) + st_last < t_last
    carry = Carry(
        last_seq=9,
        step_key=(2, 1),
        step_offset_s=t_last - st_last,
        step_time_s=st_last,
        last_t=t_last,
    )
    b = to_rows(recs([10, 11], [3, 3], [1, 1], ["cc", "cc"], [0.0, 5.0]), carry, {})
    assert b.rows["test_time_second"][0] == t_last
    assert b.rows["test_time_second"][1] > t_last
