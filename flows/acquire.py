"""``acquire-station``: a station's channels as Prefect tasks, live cells re-analysed.

The acquisition engine (:mod:`cyclerflow.acquire.station`) does the work: validation of
the station file and everything it names, safety limits, reconnects, resume. This flow

1. validates the station (a bad file fails the flow before anything is switched on);
2. checks every instrument (connect, identify, output off) in a task with a timeout and
   retries with backoff on a lost link; a channel whose instrument does not answer is
   reported and not started, the others go on;
3. runs every channel as a task (threads in this process: the instruments are attached
   to this machine, so these tasks never go to Dask);
4. while channels run, re-analyses their cell files every ``reanalyze_every_s``
   (SWMR reads; the results go to ``<cell>.results.nc``, never into the cell file);
5. stops safely on cancellation: a watcher polls the flow run's state, and a
   ``Cancelling`` state (UI, ``prefect flow-run cancel``) or a termination signal
   (the runner's SIGTERM) sets every channel's stop flag; each channel switches its
   output off, records the stop and closes its file, and the run ends ``Cancelled``.

Commercial cycler channels (Neware BTS, Maccor MacNet, Arbin CTI; drivers that run
their own schedule) mix with SMU channels in the same station file: their task starts
the translated recipe on the cycler (or rejoins the test the cell file follows) and
downloads its records (:mod:`cyclerflow.acquire.cycler`); the instrument check only
connects and identifies them. On cancellation such a channel stops *following*: the
cycler goes on with its schedule, and the next run resumes the file with no gap.

A per-channel wall-clock limit (``channel_timeout_s``) stops a channel the same safe
way (not by killing its thread, which could leave an output on).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.states import Cancelled
from prefect.tasks import exponential_backoff

from cyclerflow.flows.lab import _logger, analyze_cell_task


@dataclass(frozen=True)
class ChannelRun:
    """What a channel's tasks need, handed to them directly (the tasks run as threads of
    the flow's process, so live objects such as the clock pass as they are; no cache)."""

    plan: Any  # cyclerflow.acquire.station.ChannelPlan
    clock: Any  # cyclerflow.acquire.clock.Clock
    flush_interval: float
    reconnect: Any


INSTRUMENT_CHECK_TIMEOUT_S = 60.0


def _is_cycler(run: ChannelRun) -> bool:
    """A commercial cycler channel: its driver runs the whole recipe on the cycler
    (``RUNS_OWN_SCHEDULE``; see cyclerflow.acquire.cycler)."""
    return bool(getattr(run.plan.device.module, "RUNS_OWN_SCHEDULE", False))


def _retry_on_link_error(task: Any, task_run: Any, state: Any) -> bool:
    from cyclerflow.acquire.link import is_connection_error

    try:
        state.result()
    except Exception as err:
        return is_connection_error(err) or isinstance(err, (TimeoutError, ConnectionError))
    return False


@task(
    name="check-instrument",
    timeout_seconds=INSTRUMENT_CHECK_TIMEOUT_S,
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_condition_fn=_retry_on_link_error,
    cache_policy=NO_CACHE,
)
def check_instrument_task(run: ChannelRun) -> str:
    """Connect, identify, switch the output off, close. Returns the identification.

    A cycler channel (its driver runs its own schedule) is only connected and
    identified (connecting checks that the server lists the channel): its output
    belongs to the cycler, which may be running a test this flow rejoins."""
    plan = run.plan
    dev = plan.device.module.open_channel(plan.device.resource, **plan.device.options)
    try:
        dev.connect()
        idn = dev.identify()
        if not _is_cycler(run):
            dev.output_off()
        return str(idn)
    finally:
        try:
            dev.close()
        except Exception:
            pass


@task(name="acquire-channel", cache_policy=NO_CACHE)
def acquire_channel_task(run: ChannelRun) -> dict[str, Any]:
    """Run one channel's recipe to its end or to a stop (output off either way)."""
    from cyclerflow.acquire.cycler import run_cycler_channel
    from cyclerflow.acquire.station import run_channel

    if _is_cycler(run):  # the cycler runs the recipe; the task follows it into the file
        res = run_cycler_channel(
            run.plan,
            flush_interval=run.flush_interval,
            stop=run.clock.stop,
            reconnect=run.reconnect,
        )
    else:
        res = run_channel(
            run.plan, clock=run.clock, flush_interval=run.flush_interval, reconnect=run.reconnect
        )
    return {
        "name": res.name,
        "out": str(res.out),
        "status": res.status,
        "message": res.message,
        "rows_written": res.rows_written,
        "cycles": res.cycles,
        "spectra": res.spectra,
    }


class CancelWatcher:
    """Polls the flow run's state; on ``Cancelling``/``Cancelled`` calls ``on_cancel`` once."""

    def __init__(self, flow_run_id: Any, on_cancel, *, interval_s: float = 1.0):
        self.flow_run_id = flow_run_id
        self.on_cancel = on_cancel
        self.interval_s = interval_s
        self.cancelled = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="acquire-cancel-watcher", daemon=True
        )

    def start(self) -> CancelWatcher:
        if self.flow_run_id is not None:
            self._thread.start()
        return self

    def _loop(self) -> None:
        from prefect.client.orchestration import get_client

        log = _logger()
        with get_client(sync_client=True) as client:
            while not self._done.wait(self.interval_s):
                try:
                    state = client.read_flow_run(self.flow_run_id).state
                except Exception as err:  # the API may be briefly unreachable: keep going
                    log.debug("cancel watcher: %s", err)
                    continue
                if state is not None and (state.is_cancelling() or state.is_cancelled()):
                    self.cancelled.set()
                    self.on_cancel()
                    return

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def _flow_run_id() -> Any:
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    return None if ctx is None or ctx.flow_run is None else ctx.flow_run.id


def _markdown(results: dict[str, dict[str, Any]], station: str) -> str:
    lines = [
        f"# Station {station}",
        "",
        "| channel | status | rows | cycles | file | message |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results.values():
        lines.append(
            f"| {r['name']} | {r['status']} | {r.get('rows_written', 0)} | {r.get('cycles', 0)} | `{r['out']}` | {r.get('message', '')} |"
        )
    return "\n".join(lines)


def _result_row(run: ChannelRun, status: str, message: str) -> dict[str, Any]:
    return {
        "name": run.plan.name,
        "out": str(run.plan.out),
        "status": status,
        "message": message,
        "rows_written": 0,
        "cycles": 0,
        "spectra": 0,
    }


class _StationRun:
    """One flow run's channels: their tasks, timers, results and analyses (lives only
    inside the flow call)."""

    def __init__(self, runs: dict[str, ChannelRun], stops, settings, log):
        self.runs, self.stops, self.settings, self.log = runs, stops, settings, log
        self.results: dict[str, dict[str, Any]] = {}
        self.analyses: dict[str, str] = {}
        self.analysis_futs: dict[str, Any] = {}
        self.running: dict[str, Any] = {}
        self.timers: list[threading.Timer] = []

    def stop_all(self) -> None:
        self.log.warning("stopping every channel safely (output off, file closed)")
        for ev in self.stops.values():
            ev.set()

    def check(self, names: list[str]) -> list[str]:
        """Channels whose instrument answered; the others get a 'disconnected' result."""
        checks = {n: check_instrument_task.submit(self.runs[n]) for n in names}
        ok = []
        for n, fut in checks.items():
            try:
                self.log.info("%s: %s", n, fut.result())
                ok.append(n)
            except Exception as err:
                self.results[n] = _result_row(
                    self.runs[n], "disconnected", f"instrument check failed: {err}"
                )
                self.log.error("%s: instrument check failed, channel not started: %s", n, err)
        return ok

    def start(self, names: list[str], timeout_s: float | None) -> None:
        self.running = {n: acquire_channel_task.submit(self.runs[n]) for n in names}
        for n in names if timeout_s else ():
            t = threading.Timer(float(timeout_s), self.stops[n].set)
            t.daemon = True
            t.start()
            self.timers.append(t)

    def wait(self, reanalyze_every_s: float | None) -> None:
        """Until every channel ends; re-analyse the running cells every so often."""
        pending = list(self.running.values())
        next_analysis = time.monotonic() + reanalyze_every_s if reanalyze_every_s else None
        while pending:
            _, not_done = wait(pending, timeout=1.0)
            pending = list(not_done)
            if next_analysis is not None and pending and time.monotonic() >= next_analysis:
                next_analysis = time.monotonic() + reanalyze_every_s
                self._reanalyse(pending)

    def _reanalyse(self, pending: list[Any]) -> None:
        for n, fut in self.running.items():
            out = str(self.runs[n].plan.out)
            if fut in pending and Path(out).exists() and not _busy(self.analysis_futs.get(out)):
                self.analysis_futs[out] = analyze_cell_task.submit(out, self.settings)

    def collect(self, analyze_at_end: bool) -> None:
        for n, fut in self.running.items():
            try:
                self.results[n] = fut.result()
            except Exception as err:
                row = _result_row(self.runs[n], "failed", f"{type(err).__name__}: {err}")
                self.results[n] = {k: row[k] for k in ("name", "out", "status", "message")}
        for out, fut in self.analysis_futs.items():
            self.analyses[out] = _outcome(fut)
        for r in self.results.values() if analyze_at_end else ():
            if Path(r["out"]).exists() and r.get("rows_written"):
                self.analyses[r["out"]] = _outcome(
                    analyze_cell_task.submit(r["out"], self.settings)
                )

    def stop_and_wait(self, grace_s: float) -> None:
        """Stop every channel and wait (up to ``grace_s``) for outputs off, files closed."""
        self.stop_all()
        deadline = time.monotonic() + grace_s
        for fut in self.running.values():
            try:
                fut.wait(max(0.1, deadline - time.monotonic()))
            except BaseException:
                pass


@flow(name="acquire-station")
def acquire_station_flow(
    station: str,
    reanalyze_every_s: float | None = 900.0,
    speedup: float | None = None,
    channel_timeout_s: float | None = None,
    check_instruments: bool = True,
    analyze_at_end: bool = True,
    resume_after_safety_stop: bool = False,
    settings: dict[str, Any] | None = None,
    stop_grace_s: float = 120.0,
):
    """Run every channel of ``station`` (a station.yaml) as a task; see the module doc.

    Returns {channel name: {"status", "message", "out", "rows_written", "cycles", ...},
    "_analyses": {out: "ok" | reason}}; a cancelled run ends in a ``Cancelled`` state
    carrying the same data.
    """
    from cyclerflow.acquire.clock import Clock
    from cyclerflow.acquire.station import load_station

    log = _logger()
    plan = load_station(station, resume_after_safety_stop=resume_after_safety_stop)
    stops = {ch.name: threading.Event() for ch in plan.channels}
    runs = {
        ch.name: ChannelRun(
            ch, Clock(speedup or plan.speedup, stops[ch.name]), plan.flush_interval, plan.reconnect
        )
        for ch in plan.channels
    }
    st = _StationRun(runs, stops, settings, log)
    watcher = CancelWatcher(_flow_run_id(), st.stop_all).start()
    try:
        startable = [ch.name for ch in plan.channels]
        if check_instruments:
            startable = st.check(startable)
        if not watcher.cancelled.is_set():
            st.start(startable, channel_timeout_s)
        st.wait(reanalyze_every_s)
        st.collect(analyze_at_end)
    except BaseException:
        # cancellation by signal (TerminationSignal), Ctrl-C, or a bug here: stop the
        # channels safely and wait for them to switch off and close their files
        st.stop_and_wait(stop_grace_s)
        raise
    finally:
        for t in st.timers:
            t.cancel()
        watcher.stop()
    for n, r in st.results.items():
        if r["status"] != "complete":
            log.warning("%s: %s (%s)", n, r["status"], r.get("message", ""))
    create_markdown_artifact(
        _markdown(st.results, station), key="acquire-station", description=f"channels of {station}"
    )
    data = {**st.results, "_analyses": st.analyses}
    if watcher.cancelled.is_set():
        return Cancelled(message="acquisition cancelled: every output off, files closed", data=data)
    return data


def _busy(fut: Any) -> bool:
    return fut is not None and not fut.state.is_final()


def _outcome(fut: Any) -> str:
    try:
        fut.result()
        return "ok"
    except Exception as err:
        return f"{type(err).__name__}: {err}"
