"""Acquisition from a cycler that runs its own schedule (Neware BTS, Maccor, Arbin ...).

A cycler channel is started once with the whole recipe (translated by its driver into
the vendor's schedule), then the host polls its status and downloads new records by
sequence number into the cell file. The host never steps the cell itself; it keeps:

- no gap, no duplicate: records are asked for from the last stored sequence id + 1 and
  each batch is checked to continue it exactly; the sequence id is stored in the
  ``vendor_record_id`` column, so a restarted host resumes from the file alone;
- the usual columns and units (test time in simulated seconds, rebuilt from the
  vendor's step time; current > 0 charges), the vendor's step id, cycle id, step time,
  step type (``vendor_step_type``, codes in the column's ``codes`` attribute) and its
  capacity/energy counters;
- events: ``step_start``/``step_end`` per vendor step, ``alarm`` when the channel's
  protection trips, ``disconnect``/``resume`` around lost links, ``safety_stop`` when a
  host-side limit is crossed (the channel is stopped first).

Drivers implement :class:`CyclerChannel`; station files mix them freely with SMU
channels (``cyclerflow.acquire.station`` routes a driver whose module sets
``RUNS_OWN_SCHEDULE = True`` here).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from cyclerflow.acquire.recipe import Recipe
from cyclerflow.errors import InputError, InstrumentError
from cyclerflow.store import LIVE_COLUMNS

log = logging.getLogger("cyclerflow.acquire.cycler")

#: vendor step types -> codes of the ``vendor_step_type`` column
STEP_TYPE_CODES = {"rest": 0, "cc": 1, "dc": 2, "cccv": 3, "cccv_dc": 4, "cv": 5, "cv_dc": 6}
UNKNOWN_STEP_TYPE = 99

#: columns of a cycler channel's cell file (on top of the live columns)
CYCLER_COLUMNS = (
    *LIVE_COLUMNS,
    "charge_capacity_ampere_hour",
    "discharge_capacity_ampere_hour",
    "charge_energy_watt_hour",
    "discharge_energy_watt_hour",
    "vendor_cycle_index",
    "vendor_step_index",
    "vendor_record_id",
    "vendor_step_time_second",
    "vendor_step_type",
)
CYCLER_UNITS = {"vendor_step_time_second": "s", "vendor_record_id": "1", "vendor_step_type": "1"}
CYCLER_COLUMN_ATTRS = {
    "vendor_step_type": {"codes": ", ".join(f"{v}={k}" for k, v in STEP_TYPE_CODES.items())},
    "vendor_record_id": {"meaning": "the cycler's record sequence id (1-based, per test)"},
}


@dataclass(frozen=True)
class CyclerStatus:
    """A channel's state: ``working``, ``stop``, ``finish``, ``protect`` (alarm) or
    ``pause``; ``test_id`` of its latest test; ``record_count``: records stored for it."""

    state: str
    test_id: int
    record_count: int
    alarm: str = ""

    @property
    def running(self) -> bool:
        return self.state in ("working", "pause")


@dataclass(frozen=True)
class CyclerRecords:
    """Records of one download (arrays of equal length, SI: s, V, A, Ah, Wh).

    ``step_time_s``: time since the vendor step began; ``capacity_ah``/``energy_wh``:
    the vendor's counters of that step (magnitudes); ``current_a`` > 0 charges."""

    seq: np.ndarray
    step_id: np.ndarray
    cycle_id: np.ndarray
    step_type: np.ndarray
    step_time_s: np.ndarray
    voltage_v: np.ndarray
    current_a: np.ndarray
    capacity_ah: np.ndarray
    energy_wh: np.ndarray

    def __len__(self) -> int:
        return len(self.seq)


@runtime_checkable
class CyclerChannel(Protocol):
    """A cycler channel that runs a whole recipe by itself (drivers implement it)."""

    name: str

    def connect(self) -> None: ...
    def close(self) -> None: ...
    def identify(self) -> str: ...
    def clock_rate(self) -> float:
        """1.0 for a real cycler; a simulator's speed-up."""

    def check_recipe(self, recipe: Recipe) -> None:
        """Raise InputError naming the first recipe step the cycler cannot run."""

    def start(self, recipe: Recipe, barcode: str) -> None:
        """Translate and start the recipe (InstrumentError when the channel refuses)."""

    def stop(self) -> None: ...
    def status(self) -> CyclerStatus: ...
    def download(self, from_seq: int, count: int) -> CyclerRecords:
        """Records with sequence ids ``from_seq`` .. ``from_seq + count - 1`` (1-based)."""

    def recipe_steps(self, recipe: Recipe) -> dict[int, tuple[int, str]]:
        """Vendor step id -> (recipe leaf index, recipe step kind)."""


@runtime_checkable
class PolledCyclerChannel(Protocol):
    """A cycler channel whose API returns the latest reading only (Maccor MacNet): the
    driver numbers the readings itself, so a rejoin tells it where the file stands, and
    it reports what polling could not see (``gap`` notes, written as events)."""

    def resume_from(self, carry: Carry) -> None: ...
    def take_notes(self) -> list[str]: ...


def check_cycler_recipe(module, recipe: Recipe, where: str = "") -> None:
    """Validate ``recipe`` against a cycler driver module (before anything connects)."""
    check = getattr(module, "check_recipe", None)
    if check is None:
        return
    try:
        check(recipe)
    except InputError as err:
        pre = f"{where}: " if where else ""
        raise InputError(f"{pre}recipe {err.bare_message}", path=recipe.source) from None


def step_type_codes(names: np.ndarray) -> np.ndarray:
    """Vendor step type names -> ``vendor_step_type`` codes."""
    uniq, inv = np.unique(names, return_inverse=True)
    codes = np.array([STEP_TYPE_CODES.get(str(u), UNKNOWN_STEP_TYPE) for u in uniq], dtype="f8")
    return codes[inv] if len(uniq) else np.zeros(0)


# --- where a file stands ---------------------------------------------------------------

CHARGE_TYPES = frozenset({"cc", "cccv", "cv"})
DISCHARGE_TYPES = frozenset({"dc", "cccv_dc", "cv_dc"})
START_NOTE = "cycler_start"


@dataclass(frozen=True)
class Carry:
    """What the next record continues from (read back from the file on a restart).

    ``last_seq``: the last stored sequence id (0: none); ``step_key``: (vendor step id,
    cycle id) of the last record; ``step_offset_s``: test time at which that step
    began; ``step_time_s``: its step time; ``last_t``: its test time (s; NaN: none);
    ``unix0``: Unix time at test time 0."""

    last_seq: int = 0
    step_key: tuple[int, int] | None = None
    step_offset_s: float = 0.0
    step_time_s: float = 0.0
    last_t: float = math.nan
    step_count: int = 0
    last_cap_ah: float = 0.0
    unix0: float = 0.0
    test_id: int | None = None


def read_carry(path: str | Path) -> Carry:
    """The carry state of an existing cycler cell file (its last row and start note)."""
    import h5py

    from cyclerflow.acquire.progress import parse_fields
    from cyclerflow.store import read_events
    from cyclerflow.store.recovery import needs_recovery, recover

    if needs_recovery(path):
        recover(path)
    test_id = None
    for e in read_events(path):
        if e["kind"] == "note" and e["message"].startswith(START_NOTE):
            test_id = int(parse_fields(e["message"])["test_id"])
    with h5py.File(path, "r") as f:
        cyc = f["cycling"]
        if "vendor_record_id" not in cyc:
            raise InputError("not a cycler channel's file (no vendor_record_id)", path=path)
        n = min(int(d.shape[0]) for d in cyc.values())
        if n == 0:
            return Carry(unix0=time.time(), test_id=test_id)
        row = {k: cyc[k][n - 1] for k in cyc}
        first_t, first_u = cyc["test_time_second"][0], cyc["unix_time_second"][0]
    st = float(row["vendor_step_time_second"])
    return Carry(
        last_seq=int(row["vendor_record_id"]),
        step_key=(int(row["vendor_step_index"]), int(row["vendor_cycle_index"])),
        step_offset_s=float(row["test_time_second"]) - st,
        step_time_s=st,
        last_t=float(row["test_time_second"]),
        step_count=int(row["step_count"]),
        last_cap_ah=float(
            max(row["charge_capacity_ampere_hour"], row["discharge_capacity_ampere_hour"])
        ),
        unix0=float(first_u - first_t),
        test_id=test_id,
    )


# --- records -> rows ------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """Rows for the file from one download, the carry after them and the step changes
    (indices into the batch where a new vendor step begins)."""

    rows: dict[str, np.ndarray]
    carry: Carry
    starts: np.ndarray


def _rebuilt_test_time(
    offset0: float, st: np.ndarray, prev_st: np.ndarray, new: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(test time, step offset) in s from step times ``st``: each new step begins where
    the previous one's last record ended (``offset0``: the first record's step offset).

    The running sum starts from ``offset0`` itself, so a step's first offset is the very
    float ``offset + step time`` of the record before it: a new step starting at step
    time 0 gets the same test time as that record, never one ulp less (adding the
    offset after the sum rounds differently and made time step backwards).
    """
    steps = np.where(new, prev_st, 0.0)
    if not len(steps):
        return steps, steps
    steps[0] += offset0  # rounded like ``prev offset + prev step time`` at a step change
    offset = np.cumsum(steps)
    return offset + st, offset


def to_rows(recs: CyclerRecords, carry: Carry, leaf_of_step: dict[int, tuple[int, str]]) -> Batch:
    """Map vendor records onto the file's columns (test time rebuilt from step times)."""
    n = len(recs)
    if n and (recs.seq[0] != carry.last_seq + 1 or np.any(np.diff(recs.seq) != 1)):
        raise InstrumentError(
            f"cycler records do not continue the file: expected sequence id {carry.last_seq + 1}, "
            f"got {int(recs.seq[0])}..{int(recs.seq[-1])} ({n} records)"
        )
    st = recs.step_time_s
    prev_key_s = np.concatenate([[carry.step_key[0] if carry.step_key else -1], recs.step_id[:-1]])
    prev_key_c = np.concatenate([[carry.step_key[1] if carry.step_key else -1], recs.cycle_id[:-1]])
    prev_st = np.concatenate([[carry.step_time_s], st[:-1]])
    new = (recs.step_id != prev_key_s) | (recs.cycle_id != prev_key_c) | (st < prev_st)
    vendor_t = getattr(recs, "test_time_s", None)  # records that carry the test time (Arbin)
    if vendor_t is not None:
        test_time = np.asarray(vendor_t, dtype="f8")
        offset = test_time - st
    else:
        test_time, offset = _rebuilt_test_time(carry.step_offset_s, st, prev_st, new)
        if math.isfinite(carry.last_t):  # an offset read back from a file, rounded
            np.maximum.accumulate(np.maximum(test_time, carry.last_t), out=test_time)
    step_count = carry.step_count + np.cumsum(new)
    leaf = np.array([leaf_of_step.get(int(s), (-1, ""))[0] for s in recs.step_id], dtype="i8")
    charge = np.isin(recs.step_type, list(CHARGE_TYPES)) | (
        ~np.isin(recs.step_type, list(DISCHARGE_TYPES)) & (recs.current_a > 0)
    )
    zero = np.zeros(n)
    rows = {
        "test_time_second": test_time,
        "unix_time_second": carry.unix0 + test_time,
        "voltage_volt": recs.voltage_v,
        "current_ampere": recs.current_a,
        "cycle_count": recs.cycle_id,
        "step_count": step_count,
        "step_index": leaf,
        "charge_capacity_ampere_hour": np.where(charge, recs.capacity_ah, zero),
        "discharge_capacity_ampere_hour": np.where(charge, zero, recs.capacity_ah),
        "charge_energy_watt_hour": np.where(charge, recs.energy_wh, zero),
        "discharge_energy_watt_hour": np.where(charge, zero, recs.energy_wh),
        "vendor_cycle_index": recs.cycle_id,
        "vendor_step_index": recs.step_id,
        "vendor_record_id": recs.seq,
        "vendor_step_time_second": st,
        "vendor_step_type": step_type_codes(recs.step_type),
    }
    if not n:
        return Batch(rows, carry, np.zeros(0, dtype="i8"))
    after = Carry(
        last_seq=int(recs.seq[-1]),
        step_key=(int(recs.step_id[-1]), int(recs.cycle_id[-1])),
        step_offset_s=float(offset[-1]),
        step_time_s=float(st[-1]),
        last_t=float(test_time[-1]),
        step_count=int(step_count[-1]),
        last_cap_ah=float(recs.capacity_ah[-1]),
        unix0=carry.unix0,
        test_id=carry.test_id,
    )
    return Batch(rows, after, np.flatnonzero(new))


def first_breach(limits, rows: dict[str, np.ndarray]) -> tuple[int, str] | None:
    """Index and message of the first row outside the recipe's host-side limits."""
    from cyclerflow.acquire.instrument import Sample
    from cyclerflow.acquire.safety import CURRENT_TOLERANCE, check_sample

    v, i = rows["voltage_volt"], rows["current_ampere"]
    with np.errstate(invalid="ignore"):
        bad = (
            ~np.isfinite(v)
            | ~np.isfinite(i)
            | (v > limits.voltage_max)
            | (v < limits.voltage_min)
            | (np.abs(i) > limits.current_max * (1 + CURRENT_TOLERANCE))
        )
    if limits.step_time_max is not None:
        bad |= rows["vendor_step_time_second"] > limits.step_time_max
    hits = np.flatnonzero(bad)
    if not len(hits):
        return None
    k = int(hits[0])
    msg = check_sample(limits, Sample(0.0, float(v[k]), float(i[k])))
    if msg is None:
        msg = f"step time {rows['vendor_step_time_second'][k]:g} s > step_time_max"
    return k, msg


# --- the runner ---------------------------------------------------------------------------


class CyclerRunner:
    """Start (or rejoin) a cycler channel's test and stream its records into ``writer``.

    ``poll_interval_s``: wall seconds between status polls while nothing is pending;
    ``max_batch``: records per download call. ``stop``: a threading.Event (Ctrl-C): the
    host stops following, the cycler goes on; a restart resumes from the file.
    """

    def __init__(
        self,
        channel: CyclerChannel,
        writer,
        recipe: Recipe,
        *,
        name: str = "ch1",
        carry: Carry | None = None,
        poll_interval_s: float = 1.0,
        max_batch: int = 50_000,
        stop=None,
        reconnect=None,
        barcode: str = "",
    ):
        from cyclerflow.acquire.engine import ChannelResult
        from cyclerflow.acquire.link import ReconnectPolicy

        self.ch, self.w, self.recipe, self.name = channel, writer, recipe, name
        self.carry = carry or Carry(unix0=time.time())
        self.poll_s, self.max_batch, self.stop = poll_interval_s, max_batch, stop
        self.policy = reconnect or ReconnectPolicy()
        self.barcode = barcode or name
        self.result = ChannelResult(name, writer.path)
        self.steps = channel.recipe_steps(recipe)
        self._alarm_noted = False
        #: (wall time a record reached the file - wall time it was first reported) per poll
        self.lag_s: list[float] = []

    def event(self, kind: str, message: str, *, step: int = -1, t: float | None = None) -> None:
        tt = self.carry.step_offset_s + self.carry.step_time_s if t is None else t
        self.w.add_event(
            kind, message, step=step, test_time_second=tt, unix_time_second=self.carry.unix0 + tt
        )

    def run(self):
        """Run to the end of the cycler's test (or a stop/fault); returns a ChannelResult."""
        from cyclerflow.acquire.link import is_connection_error

        res = self.result
        try:
            self._begin()
            while not self._stopped():
                if self._poll_once():
                    break
        except InstrumentError as err:
            if is_connection_error(err):
                res.status, res.message = "disconnected", str(err)
            else:
                res.status, res.message = "error", f"instrument error: {err}"
            self.event("note", f"stopped following: {err}"[:240])
        if res.status == "failed" and self._stopped():
            res.status = "stopped"
            res.message = "host stopped following (the cycler goes on; restart to resume)"
            self.event("note", "host stopped following the cycler")
        self.w.flush()
        res.rows_written = self.w.rows_flushed
        res.cycles = int(self.carry.step_key[1]) if self.carry.step_key else 0
        return res

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _begin(self) -> None:
        from cyclerflow.acquire.progress import format_fields

        rate = self._io(self.ch.clock_rate)
        if self.carry.test_id is None:
            self.ch.check_recipe(self.recipe)
            self._io(lambda: self.ch.start(self.recipe, self.barcode))
            st = self._io(self.ch.status)
            self.carry = Carry(unix0=time.time(), test_id=st.test_id)
            device = self.ch.identify().replace(" ", "_")
            fields = format_fields(test_id=st.test_id, clock_rate=float(rate), device=device)
            self.event("note", f"{START_NOTE} {fields}", t=0.0)
            self._tell_channel()
            return
        if isinstance(self.ch, PolledCyclerChannel):
            self._io(lambda: self.ch.resume_from(self.carry))
        st = self._io(self.ch.status)
        if st.test_id != self.carry.test_id:
            raise InstrumentError(
                f"the channel now holds test {st.test_id}, not the file's test "
                f"{self.carry.test_id}: nothing is overwritten; choose a new output file"
            )
        self.event("resume", f"rejoined test_id={st.test_id} from seq={self.carry.last_seq + 1}")
        self._tell_channel()

    def _tell_channel(self) -> None:
        """Tell a channel that numbers records itself (Arbin CTI) where the file stands."""
        hook = getattr(self.ch, "resume_at", None)
        if hook is not None:
            hook(self.carry.last_seq, self.carry.step_key, self.carry.step_time_s)

    def _poll_once(self) -> bool:
        """One status poll and the downloads it calls for; True when the run is over."""
        t_seen = time.monotonic()
        st = self._io(self.ch.status)
        while st.record_count > self.carry.last_seq and not self._stopped():
            n = min(self.max_batch, st.record_count - self.carry.last_seq)
            recs = self._io(lambda n=n: self.ch.download(self.carry.last_seq + 1, n))
            if not len(recs):
                break
            if self._ingest(recs):
                return True
        self.lag_s.append(time.monotonic() - t_seen)
        if isinstance(self.ch, PolledCyclerChannel):
            for note in self.ch.take_notes():
                self.event("gap", note[:240])
        if st.state == "protect" and not self._alarm_noted:
            self._alarm_noted = True
            self.event("alarm", f"cycler protection tripped ({st.alarm or 'protect'})")
        if not st.running and self.carry.last_seq >= st.record_count:
            self._finish(st)
            return True
        if st.record_count <= self.carry.last_seq and self.stop is not None:
            self.stop.wait(self.poll_s)
        elif st.record_count <= self.carry.last_seq:
            time.sleep(self.poll_s)
        return False

    def _ingest(self, recs: CyclerRecords) -> bool:
        """Write one download into the file (step events included); True on a safety stop."""
        batch = to_rows(recs, self.carry, self.steps)
        breach = first_breach(self.recipe.limits, batch.rows)
        rows = batch.rows
        if breach is not None:
            k = breach[0] + 1
            rows = {c: a[:k] for c, a in rows.items()}
            recs = type(recs)(**{f: getattr(recs, f)[:k] for f in recs.__dataclass_fields__})
            batch = to_rows(recs, self.carry, self.steps)
        self._step_events(batch, recs)
        self.w.append_cycling(rows)
        self.carry = batch.carry
        self.result.samples_read += len(recs)
        if breach is None:
            return False
        self._safety_stop(breach[1])
        return True

    def _step_events(self, batch: Batch, recs: CyclerRecords) -> None:
        from cyclerflow.acquire.progress import format_fields

        t = batch.rows["test_time_second"]
        for k in batch.starts:
            count = int(batch.rows["step_count"][k])
            if count > 1:
                q = float(recs.capacity_ah[k - 1]) if k > 0 else self.carry.last_cap_ah
                prev = count - 1
                self.event("step_end", format_fields(step_count=prev, q_ah=q), t=float(t[k]))
            sid = int(recs.step_id[k])
            leaf, kind = self.steps.get(sid, (-1, "unknown"))
            msg = format_fields(
                pos=max(leaf, 1),
                kind=kind,
                cycle=int(recs.cycle_id[k]),
                step_count=count,
                vendor_step=sid,
                step_type=str(recs.step_type[k]),
            )
            self.event("step_start", msg, step=leaf, t=float(t[k]))

    def _safety_stop(self, message: str) -> None:
        try:
            self._io(self.ch.stop)
        finally:
            self.event("safety_stop", message)
            self.result.status, self.result.message = "safety_stop", message

    def _finish(self, st: CyclerStatus) -> None:
        from cyclerflow.acquire.progress import COMPLETE_MESSAGE, format_fields

        q = self.carry.last_cap_ah
        if self.carry.step_key is not None:
            self.event("step_end", format_fields(step_count=self.carry.step_count, q_ah=q))
        if st.state == "finish":
            self.event("note", COMPLETE_MESSAGE)
            self.result.status, self.result.message = "complete", "cycler finished the schedule"
        elif st.state == "protect":
            self.result.status = "alarm"
            self.result.message = f"cycler protection tripped ({st.alarm or 'protect'})"
        else:
            self.result.status, self.result.message = "stopped", f"cycler channel is {st.state}"

    def _io(self, fn):
        """Call ``fn`` on the channel; on a lost link reconnect with back-off and retry."""
        from cyclerflow.acquire.link import is_connection_error

        delays = list(self.policy.delays())
        while True:
            try:
                return fn()
            except Exception as err:
                if not is_connection_error(err) or not delays:
                    raise
                self.event("disconnect", f"{err}"[:240])
                if self._wait(delays.pop(0)):
                    raise
                try:
                    self.ch.connect()
                except Exception as again:
                    if not is_connection_error(again):
                        raise
                    continue
                self.event("resume", "link restored")

    def _wait(self, seconds: float) -> bool:
        if self.stop is not None:
            return self.stop.wait(seconds)
        time.sleep(seconds)
        return False


def create_cycler_cell(
    path: str | Path,
    metadata,
    *,
    metadata_text: str | None = None,
    protocol: str | None = None,
    **options,
):
    """A new cell file with the cycler columns (:data:`CYCLER_COLUMNS`, their units and
    attributes); ``options`` go to :func:`cyclerflow.store.create_cell` (e.g.
    ``flush_interval`` in seconds). Returns the writer."""
    from cyclerflow.store import create_cell

    return create_cell(
        path,
        metadata,
        metadata_text=metadata_text,
        protocol=protocol,
        columns=CYCLER_COLUMNS,
        units=CYCLER_UNITS,
        column_attrs=CYCLER_COLUMN_ATTRS,
        **options,
    )


def channel_metadata(metadata, device, identity: str):
    """The cell's metadata with where it was cycled added (``cycler_driver``,
    ``cycler_resource``, ``cycler_channel``: the connected channel's identification, e.g.
    ``Neware BTS 192.0.2.20:502 channel 27-1-1-3`` = devtype-device-unit-channel), so the
    file and the report name the channel. Keys already in the metadata are kept."""
    if metadata is None:
        return None
    added = {
        "cycler_driver": device.driver,
        "cycler_resource": device.resource,
        "cycler_channel": identity,
    }
    extra = {k: v for k, v in added.items() if k not in metadata.extra}
    return type(metadata).model_validate({**metadata.model_dump(), **extra})


def run_cycler_channel(plan, *, flush_interval: float = 1.0, stop=None, reconnect=None):
    """Station entry for a cycler channel: connect, create or resume the file, follow the
    test to its end. Never raises (the result says what happened)."""
    from cyclerflow.acquire.engine import ChannelResult
    from cyclerflow.acquire.filestable import observe
    from cyclerflow.acquire.link import is_connection_error
    from cyclerflow.store import resume_cell

    result = ChannelResult(plan.name, plan.out)
    if plan.state is not None and plan.state.complete:
        result.status, result.message = "complete", "already complete (nothing to do)"
        return result
    ch = writer = None
    try:
        ch = plan.device.module.open_channel(plan.device.resource, **plan.device.options)
        ch.name = plan.name
        try:
            ch.connect()
        except Exception as err:
            result.status = "disconnected" if is_connection_error(err) else "error"
            result.message = f"cannot connect: {err}"
            return result
        carry = read_carry(plan.out) if plan.out.exists() else None
        if carry is None:
            writer = create_cycler_cell(
                plan.out,
                channel_metadata(plan.metadata, plan.device, ch.identify()),
                metadata_text=plan.metadata_text,
                protocol=plan.recipe.text,
                flush_interval=flush_interval,
            )
        else:
            writer = resume_cell(plan.out, flush_interval=flush_interval)
        observe(writer, plan.metadata)
        runner = CyclerRunner(
            ch,
            writer,
            plan.recipe,
            name=plan.name,
            carry=carry,
            poll_interval_s=flush_interval,
            stop=stop,
            reconnect=reconnect,
            barcode=plan.out.stem,
        )
        return runner.run()
    except Exception as err:  # isolate: one channel's failure never stops the others
        log.exception("%s: %s", plan.name, err)
        result.status, result.message = "failed", f"{type(err).__name__}: {err}"
        return result
    finally:
        if ch is not None:
            ch.close()
        if writer is not None:
            writer.close()


def run_station_cycler(plan, station, clock, ready) -> object:
    """A station thread's work for a cycler channel (``ready``: the station's barrier,
    passed at once: a cycler channel needs no synchronised start)."""
    import contextlib
    import threading

    if ready is not None:
        with contextlib.suppress(threading.BrokenBarrierError):
            ready.wait(timeout=300)
    return run_cycler_channel(
        plan, flush_interval=station.flush_interval, stop=clock.stop, reconnect=station.reconnect
    )
