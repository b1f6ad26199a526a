"""A station: many channels, each running its own recipe into its own cell file.

Everything is validated first (station file, every cell, recipe, driver, output
path, resume state) and only then does any channel connect, so a bad file never
leaves an output switched on or a partial cell file behind. Each channel then runs
in its own thread (instrument I/O is the bottleneck); a channel that fails is
reported and the others go on. SIGINT/SIGTERM set one stop flag: every channel
switches its output off, writes a ``note`` event and closes its file.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from cyclerflow.acquire.clock import Clock
from cyclerflow.acquire.cycler import check_cycler_recipe, run_station_cycler
from cyclerflow.acquire.engine import ChannelResult, ChannelRunner
from cyclerflow.acquire.guards import describe_cycler_limits, describe_limits
from cyclerflow.acquire.instrument import ReportsClock, SourceMeterChannel, load_driver
from cyclerflow.acquire.link import ReconnectPolicy, is_connection_error
from cyclerflow.acquire.progress import FileState, file_state
from cyclerflow.acquire.recipe import CURRENT_KINDS, Recipe, load_recipe
from cyclerflow.acquire.timebase import ClockMismatch, rates_agree, resolve_rate
from cyclerflow.errors import InputError
from cyclerflow.schema import CellMetadata, load_metadata
from cyclerflow.store import create_cell, read_protocol, resume_cell
from cyclerflow.store.writer import live_writer_pid
from cyclerflow.units import parse_quantity

log = logging.getLogger("cyclerflow.acquire")

#: `cyclerflow acquire` sets the interpreter's thread switch interval to this (s): with
#: many channel threads a thread whose sampling time has come gets the GIL within ~1 ms
#: instead of Python's default 5 ms
ENGINE_SWITCH_INTERVAL_S = 0.001


@dataclass
class DeviceSpec:
    driver: str
    resource: str
    options: dict[str, Any] = field(default_factory=dict)
    module: ModuleType | None = None


@dataclass
class ChannelPlan:
    """One validated channel, ready to run."""

    name: str
    device: DeviceSpec
    cell_path: Path
    recipe_path: Path
    out: Path
    metadata: CellMetadata
    metadata_text: str
    recipe: Recipe
    temperature: DeviceSpec | None = None
    state: FileState | None = None  # None: a new file


@dataclass
class StationPlan:
    channels: list[ChannelPlan]
    speedup: float = 1.0
    #: ``speedup`` was given (station file or --speedup): an override checked against
    #: the instruments' own clock rates; else each channel runs at its instrument's rate
    speedup_given: bool = False
    #: override of every recipe's ``on_resume`` (``--on-resume``)
    on_resume: str | None = None
    #: Unix time at which a watchdog switched the outputs off while no engine ran
    output_off_at: float | None = None
    flush_interval: float = 1.0
    reconnect: ReconnectPolicy = ReconnectPolicy()
    source: str | None = None


_CHANNEL_KEYS = {"name", "driver", "resource", "cell", "recipe", "out", "options", "temperature"}
_STATION_KEYS = {"channels", "speedup", "flush_interval", "reconnect", "name", "description"}


def resolve_driver(name: str, *, where: str, source: str | None) -> ModuleType:
    """A driver module by entry-point name, or by dotted module path (development)."""
    if not isinstance(name, str) or not name:
        raise InputError(f"{where}.driver: expected a driver name", path=source)
    try:
        mod = load_driver(name)
    except InputError as err:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            raise InputError(f"{where}.driver: {err.bare_message}", path=source) from None
    except ImportError as err:
        raise InputError(
            f"{where}.driver: driver {name!r} cannot be loaded ({err})", path=source
        ) from None
    if not callable(getattr(mod, "open_channel", None)):
        raise InputError(
            f"{where}.driver: module {mod.__name__!r} has no open_channel()", path=source
        )
    return mod


def _device(raw: Any, where: str, source: str | None) -> DeviceSpec:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a mapping with driver and resource", path=source)
    unknown = set(raw) - {"driver", "resource", "options"}
    if unknown:
        raise InputError(f"{where}.{sorted(unknown)[0]}: unknown key", path=source)
    for key in ("driver", "resource"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise InputError(f"{where}.{key}: is required (a text)", path=source)
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise InputError(f"{where}.options: expected a mapping", path=source)
    mod = resolve_driver(raw["driver"], where=where, source=source)
    return DeviceSpec(raw["driver"], raw["resource"], dict(options), mod)


def plan_channel(
    *,
    name: str,
    driver: str,
    resource: str,
    cell: str | Path,
    recipe: str | Path,
    out: str | Path,
    options: dict[str, Any] | None = None,
    temperature: dict[str, Any] | None = None,
    where: str = "",
    source: str | None = None,
    resume_after_safety_stop: bool = False,
) -> ChannelPlan:
    """Validate one channel: driver, cell metadata, recipe (with the cell's capacity),
    output path and, for an existing file, that it can be resumed."""
    pre = f"{where}." if where else ""
    device = _device(
        {"driver": driver, "resource": resource, "options": options or {}}, where or name, source
    )
    meta, meta_text = load_metadata(cell)
    rec = load_recipe(recipe, nominal_capacity_ah=meta.nominal_capacity_ah)
    if getattr(device.module, "RUNS_OWN_SCHEDULE", False):  # a cycler: recipe checked up front
        check_cycler_recipe(device.module, rec, where or name)
        # the channel object too (not connected): its options may decide what maps
        check_cycler_recipe(_open(device, name), rec, where or name)
    tdev = None
    if temperature is not None:
        tdev = _device(temperature, f"{pre}temperature", source)
    elif rec.needs_temperature_controller():
        raise InputError(
            f"{pre}temperature: recipe {str(recipe)!r} sets temperatures, so the channel needs "
            "'temperature: {driver: ..., resource: ...}'",
            path=source,
        )
    out = Path(out)
    if out.suffix.lower() not in (".h5", ".hdf5"):
        raise InputError(f"{pre}out: expected a .h5 file name, got {str(out)!r}", path=source)
    if not out.parent.is_dir():
        raise InputError(f"{pre}out: folder {str(out.parent)!r} does not exist", path=source)
    state = None
    if out.exists():
        pid = live_writer_pid(out)
        if pid is not None:
            raise InputError(f"is being written by process {pid}", path=out)
        old = read_protocol(out) or ""
        if old != rec.text:
            raise InputError(
                f"exists and was written with a different recipe than {str(recipe)!r}; "
                "nothing is overwritten: choose a new output file",
                path=out,
            )
        state = file_state(out, CURRENT_KINDS)
        if state.safety_stop and not resume_after_safety_stop:
            raise InputError(
                f"stopped on a safety limit ({state.safety_stop}); check the cell, then resume "
                "with --resume-after-safety-stop",
                path=out,
            )
    return ChannelPlan(
        name=name,
        device=device,
        cell_path=Path(cell),
        recipe_path=Path(recipe),
        out=out,
        metadata=meta,
        metadata_text=meta_text,
        recipe=rec,
        temperature=tdev,
        state=state,
    )


def load_station(path: str | Path, *, resume_after_safety_stop: bool = False) -> StationPlan:
    """Read and validate a station file and every file it names (paths relative to it)."""
    path = Path(path)
    src = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("station file not found", path=path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InputError(f"cannot parse YAML: {' '.join(str(err).split())}", path=path) from None
    if not isinstance(data, dict):
        raise InputError("a station file is a mapping with 'channels'", path=path)
    unknown = set(data) - _STATION_KEYS
    if unknown:
        raise InputError(
            f"{sorted(unknown)[0]}: unknown key (expected one of {', '.join(sorted(_STATION_KEYS))})",
            path=path,
        )
    chans = data.get("channels")
    if not isinstance(chans, list) or not chans:
        raise InputError("channels: expected a non-empty list of channels", path=path)
    speedup = _positive_number(data.get("speedup", 1.0), "speedup", src)
    flush = (
        parse_quantity(data.get("flush_interval", "1 s"), "time", where="flush_interval")
        if "flush_interval" in data
        else 1.0
    )
    if not flush > 0:
        raise InputError("flush_interval: must be > 0", path=path)
    reconnect = _reconnect(data.get("reconnect"), src)
    plans: list[ChannelPlan] = []
    for k, raw in enumerate(chans):
        plans.append(_station_channel(raw, k, path, plans, resume_after_safety_stop))
    return StationPlan(
        plans,
        speedup=speedup,
        speedup_given="speedup" in data,
        flush_interval=flush,
        reconnect=reconnect,
        source=src,
    )


def _station_channel(
    raw: Any, k: int, path: Path, before: list[ChannelPlan], resume_after_safety_stop: bool
) -> ChannelPlan:
    """Validate channel ``k`` of station file ``path`` (``before``: the channels above it)."""
    where = f"channels[{k}]"
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a mapping", path=path)
    unknown = set(raw) - _CHANNEL_KEYS
    if unknown:
        raise InputError(
            f"{where}.{sorted(unknown)[0]}: unknown key (expected one of {', '.join(sorted(_CHANNEL_KEYS))})",
            path=path,
        )
    for key in ("driver", "resource", "cell", "recipe", "out"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise InputError(f"{where}.{key}: is required (a text)", path=path)
    name = str(raw.get("name") or f"ch{k + 1}")
    if any(p.name == name for p in before):
        raise InputError(f"{where}.name: {name!r} is used by two channels", path=path)
    base = path.parent
    out = (base / raw["out"]).resolve()
    other = next((p.name for p in before if p.out == out), None)
    if other is not None:
        raise InputError(
            f"{where}.out: {raw['out']!r} is also the output of channel {other!r}", path=path
        )
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise InputError(f"{where}.options: expected a mapping", path=path)
    return plan_channel(
        name=name,
        driver=raw["driver"],
        resource=raw["resource"],
        cell=base / raw["cell"],
        recipe=base / raw["recipe"],
        out=out,
        options=options,
        temperature=raw.get("temperature"),
        where=where,
        source=str(path),
        resume_after_safety_stop=resume_after_safety_stop,
    )


def _positive_number(value: Any, key: str, src: str | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InputError(f"{key}: expected a number > 0, got {value!r}", path=src)
    return float(value)


def _reconnect(raw: Any, src: str | None) -> ReconnectPolicy:
    if raw is None:
        return ReconnectPolicy()
    if not isinstance(raw, dict) or set(raw) - {"attempts", "backoff", "max_delay"}:
        raise InputError(
            "reconnect: expected {attempts: N, backoff: 0.5 s, max_delay: 10 s}", path=src
        )
    attempts = raw.get("attempts", 5)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
        raise InputError(
            f"reconnect.attempts: expected a whole number >= 0, got {attempts!r}", path=src
        )
    backoff = parse_quantity(raw.get("backoff", "0.5 s"), "time", where="reconnect.backoff")
    max_delay = parse_quantity(raw.get("max_delay", "10 s"), "time", where="reconnect.max_delay")
    return ReconnectPolicy(attempts=attempts, backoff_s=backoff, max_delay_s=max_delay)


# --- running ---------------------------------------------------------------------------------


def _open(dev: DeviceSpec, name: str):
    obj = dev.module.open_channel(dev.resource, **dev.options)
    if getattr(obj, "name", None) in (None, ""):
        with contextlib.suppress(Exception):
            obj.name = name
    return obj


def _connect(plan: ChannelPlan, result: ChannelResult) -> tuple[Any, Any] | None:
    """Open and connect the channel (and its temperature controller); None (with the
    result filled in) when that fails."""
    channel = tc = None
    try:
        channel = _open(plan.device, plan.name)
        channel.connect()
        if plan.temperature is not None:
            tc = _open(plan.temperature, plan.name + "-temperature")
            tc.connect()
    except Exception as err:
        result.status = "disconnected" if is_connection_error(err) else "error"
        result.message = f"cannot connect: {err}"
        for dev in (channel, tc):
            if dev is not None:
                with contextlib.suppress(Exception):
                    dev.close()
        return None
    return channel, tc


def channel_clock(channel: Any, clock: Clock, *, speedup_given: bool) -> tuple[Clock, str]:
    """The clock to run ``channel`` on and where its rate comes from.

    A channel that reports its clock rate (:class:`ReportsClock`) sets it; a speed-up
    the user gave (``speedup_given``) is only an override checked against it
    (:class:`ClockMismatch` when they differ by more than 1 %).
    """
    if not isinstance(channel, ReportsClock):
        how = "from --speedup" if speedup_given else "assumed: the instrument does not report one"
        return clock, f"{clock.speedup:g}x real time ({how})"
    reported = float(channel.clock_rate())
    rate = resolve_rate(reported, clock.speedup if speedup_given else None)
    text = f"{rate:g}x real time (reported by the instrument)"
    if rates_agree(rate, clock.speedup) or type(clock) is not Clock:
        return clock, text
    return Clock(rate, clock.stop), text


def _check_capabilities(plan: ChannelPlan, channel: Any, result: ChannelResult) -> bool:
    if not isinstance(channel, SourceMeterChannel):
        result.status = "error"
        result.message = (
            f"driver {plan.device.driver!r} returned a {type(channel).__name__}, which is not "
            "a SourceMeterChannel (see cyclerflow.acquire.instrument)"
        )
        return False
    missing = plan.recipe.needs() - set(channel.capabilities)
    if missing:
        result.status = "error"
        result.message = (
            f"driver {plan.device.driver!r} cannot do {sorted(missing)} that the recipe uses"
        )
    return not missing


def _writer(plan: ChannelPlan, flush_interval: float):
    from cyclerflow.acquire.filestable import observe

    if plan.state is None:
        writer = create_cell(
            plan.out,
            plan.metadata,
            metadata_text=plan.metadata_text,
            protocol=plan.recipe.text,
            flush_interval=flush_interval,
        )
    else:
        writer = resume_cell(plan.out, flush_interval=flush_interval)
    return observe(writer, plan.metadata)


@dataclass(frozen=True)
class RunOptions:
    """How a station runs its channels (see :func:`run_channel`)."""

    flush_interval: float = 1.0
    reconnect: ReconnectPolicy = ReconnectPolicy()
    keep_lateness: bool = False
    #: the clock's speed-up was given by the user (an override, checked against the
    #: instrument's own clock rate)
    speedup_given: bool = False
    #: called with one line per channel at start (clock and instrument-held limits)
    announce: Callable[[str], None] | None = None
    #: override of the recipe's ``on_resume``
    on_resume: str | None = None
    #: Unix time at which a watchdog switched the output off while no engine ran
    output_off_at: float | None = None


def run_channel(
    plan: ChannelPlan,
    *,
    clock: Clock,
    flush_interval: float = 1.0,
    reconnect: ReconnectPolicy = ReconnectPolicy(),
    keep_lateness: bool = False,
    ready: threading.Barrier | None = None,
    flush_phase: float = 0.0,
    speedup_given: bool = False,
    announce: Callable[[str], None] | None = None,
    on_resume: str | None = None,
    output_off_at: float | None = None,
) -> ChannelResult:
    """Connect, open (or resume) the cell file, run the recipe, close everything.

    With ``ready`` (a barrier shared by the station's channels) every channel connects
    and opens its file first and they start sampling together: opening HDF5 files holds
    the interpreter, which would make already-running channels miss samples.
    """
    opts = RunOptions(
        flush_interval,
        reconnect,
        keep_lateness,
        speedup_given,
        announce,
        on_resume,
        output_off_at,
    )
    result = ChannelResult(plan.name, plan.out)
    arrived = [ready is None]

    def arrive() -> None:
        if not arrived[0]:
            arrived[0] = True
            with contextlib.suppress(threading.BrokenBarrierError):
                ready.wait(timeout=300)

    if plan.state is not None and plan.state.complete:
        arrive()
        result.status, result.message = "complete", "already complete (nothing to do)"
        return result
    try:
        return _run_connected(plan, clock, opts, result, arrive, flush_phase)
    finally:
        arrive()


def _run_connected(
    plan: ChannelPlan,
    clock: Clock,
    opts: RunOptions,
    result: ChannelResult,
    arrive: Callable[[], None],
    flush_phase: float,
) -> ChannelResult:
    devices = _connect(plan, result)
    if devices is None:
        return result
    channel, tc = devices
    writer = None
    try:
        if not _check_capabilities(plan, channel, result):
            return result
        clock, clock_text = channel_clock(channel, clock, speedup_given=opts.speedup_given)
        limits_text = describe_limits(channel, plan.recipe)
        if opts.announce is not None:
            opts.announce(f"{plan.name}: clock {clock_text}; {limits_text}")
        writer = _writer(plan, opts.flush_interval)
        runner = ChannelRunner(
            channel,
            writer,
            plan.recipe,
            clock=clock,
            name=plan.name,
            temperature=tc,
            resume=plan.state.resume if plan.state else None,
            reconnect=opts.reconnect,
            keep_lateness=opts.keep_lateness,
            flush_phase=flush_phase,
            clock_source=clock_text,
            start_notes=(f"clock {clock_text}", limits_text),
            on_resume=opts.on_resume,
            output_off_at=opts.output_off_at,
        )
        arrive()
        # spread the channels' sampling instants over one interval (host load, shared links)
        if flush_phase and not clock.sleep(flush_phase * plan.recipe.sample_interval):
            pass  # stopped while waiting: run() sees the flag and stops safely at once
        return runner.run()
    except ClockMismatch as err:
        result.status, result.message = "error", f"clock: {err}"
        with contextlib.suppress(Exception):
            channel.output_off()
        return result
    except Exception as err:  # isolate: report, never propagate to other channels
        result.status, result.message = "failed", f"{type(err).__name__}: {err}"
        log.error("%s: %s\n%s", plan.name, err, traceback.format_exc())
        with contextlib.suppress(Exception):
            channel.output_off()
        return result
    finally:
        for dev in (channel, tc):
            if dev is not None:
                with contextlib.suppress(Exception):
                    dev.close()
        if writer is not None:
            _close_writer(writer, plan.name)


def _close_writer(writer, name: str, attempts: int = 20, delay_s: float = 0.25) -> None:
    """Close a cell file. Moving the streamed spectra into their groups reopens the file,
    which fails while a live reader holds it open: retry for a while, and release the
    writer's lock either way (the file stays readable; spectra stay in the stream)."""
    from cyclerflow.store.writer import finalize_stream, lock_path

    try:
        writer.close()
        return
    except Exception as err:
        last = err
    for _ in range(attempts):
        time.sleep(delay_s)
        try:
            finalize_stream(writer.path)
            break
        except Exception as err:
            last = err
    else:
        log.error(
            "%s: finishing %s failed (%s); its spectra stay in the live stream table",
            name,
            writer.path,
            last,
        )
    lock_path(writer.path).unlink(missing_ok=True)


_heap_lock = threading.Lock()
_heap_frozen_by = 0  # stations running with the heap frozen


def freeze_heap() -> None:
    """Collect garbage once, then move every live object into the garbage collector's
    permanent generation (``gc.freeze``) until :func:`unfreeze_heap`.

    A full collection stops every thread while it walks all tracked objects: ~80 ms
    with this package's imports (h5py, numpy, pandas, pydantic), which made channels
    sample that late. Frozen objects are not walked, so later full collections only
    see objects made while sampling and take well under a millisecond. Called when all
    channels of a station are ready, before any samples; nesting is counted.
    """
    global _heap_frozen_by
    with _heap_lock:
        if _heap_frozen_by == 0:
            gc.collect()
            gc.freeze()
        _heap_frozen_by += 1


def unfreeze_heap() -> None:
    """Undo :func:`freeze_heap` (the last station to finish returns the objects to the
    collector's oldest generation)."""
    global _heap_frozen_by
    with _heap_lock:
        if _heap_frozen_by <= 0:
            return
        _heap_frozen_by -= 1
        if _heap_frozen_by == 0:
            gc.unfreeze()


def run_station(
    plan: StationPlan,
    *,
    stop: threading.Event | None = None,
    speedup: float | None = None,
    keep_lateness: bool = False,
    announce: Callable[[str], None] | None = None,
) -> list[ChannelResult]:
    """Run every channel in its own thread; returns one result per channel (in order).

    ``speedup`` (or the plan's, when given) overrides the clock rate the instruments
    report, checked against it; ``announce`` gets one line per channel at start.

    While the channels sample, the interpreter's heap is frozen (:func:`freeze_heap`) so
    that no full garbage collection pauses them all at once.
    """
    clock = Clock(speedup or plan.speedup, stop)
    results: list[ChannelResult | None] = [None] * len(plan.channels)
    frozen = threading.Event()

    def all_ready() -> None:  # run by the last channel to arrive, before any is released
        freeze_heap()
        frozen.set()

    ready = threading.Barrier(len(plan.channels), action=all_ready)

    def work(k: int, ch: ChannelPlan) -> None:
        if getattr(ch.device.module, "RUNS_OWN_SCHEDULE", False):  # a cycler runs its schedule
            if announce is not None:
                announce(f"{ch.name}: {describe_cycler_limits(ch.device.module, ch.recipe)}")
            results[k] = run_station_cycler(ch, plan, clock, ready)
            return
        results[k] = run_channel(
            ch,
            clock=clock,
            flush_interval=plan.flush_interval,
            reconnect=plan.reconnect,
            keep_lateness=keep_lateness,
            ready=ready,
            flush_phase=k / len(plan.channels),
            speedup_given=plan.speedup_given or speedup is not None,
            announce=announce,
            on_resume=plan.on_resume,
            output_off_at=plan.output_off_at,
        )

    threads = [
        threading.Thread(target=work, args=(k, ch), name=f"acquire-{ch.name}", daemon=True)
        for k, ch in enumerate(plan.channels)
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    finally:
        if frozen.is_set():
            unfreeze_heap()
    return [
        r if r is not None else ChannelResult(c.name, c.out, "failed", "thread died")
        for r, c in zip(results, plan.channels, strict=True)
    ]


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """While inside, SIGINT and SIGTERM set ``stop`` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):  # noqa: ARG001
        log.warning("signal %s: stopping every channel safely", signal.Signals(signum).name)
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)
