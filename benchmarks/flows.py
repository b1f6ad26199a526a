"""Orchestration overhead and Dask scale-out of the lab flow (run by hand).

    python benchmarks/flows.py [--cells 200] [--dask-cells 60] [--server] [--dask-mode tasks|direct] [--batch-size N] [--cold] [--repeat 3] [--skip-overhead] [--skip-dask]

1. Overhead: a folder of N small cells analysed (a) bare, in one process with
   :func:`cyclerflow.lab.analyze_batch` (no Prefect), and (b) by ``analyze_lab_flow``
   (cache off, report off) with one worker thread, so parallelism cannot hide the
   overhead. Prints (flow - bare) / N; the target is < 0.2 s per cell. The flow time
   includes Prefect start-up (the ephemeral server, unless ``--server``).
2. Scale-out: CPU-bound cells (many cycles, many spectra) analysed bare in one
   process vs. by the flow with ``dask_address`` pointing at a LocalCluster of 2
   worker *processes* started (and warmed up) beforehand, as a lab would run it
   against an existing cluster. Prints the throughput ratio; the target is >= 1.6x.
   The baseline is one process on one core: BLAS/OpenMP are limited to one thread
   (set below, before NumPy loads; Dask's nanny does the same in its workers), and
   its CPU time / wall time is printed to show it. Prefect is warmed up like the
   cluster (one small flow run first: the ephemeral server starts and creates its
   database), and that start-up is printed apart; ``--cold`` times the flow with a
   cold Prefect instead (end to end, as one ``cyclerflow flows run`` would see it).
   CPU time during the timed run is split into the flow process, the Prefect
   server and the Dask workers.

``--server`` starts ``prefect server start`` on a free local port, points
PREFECT_API_URL at it (so Dask worker processes report to one server instead of
starting one ephemeral server each), and stops it at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: one BLAS/OpenMP thread per process, set before NumPy loads: the single-process
#: baseline must not use the second core through threaded linear algebra
BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
for _var in BLAS_THREAD_VARS:
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

K_B_EV = 8.617333262e-5


def make_lab(root: Path, n: int, *, n_cycles: int, n_spectra: int, points_per_half: int) -> None:
    from cyclerflow.schema import parse_metadata
    from cyclerflow.store import write_cell
    from cyclerflow.synthetic import galvanostatic_cycles, rc_spectrum

    f = np.logspace(6, -1, 50)
    for k in range(n):
        wafer, die = f"W{k // 50:02d}", f"D{(k // 10) % 5:02d}"
        meta = {
            "cell_id": f"{wafer}-{die}-C{k:03d}",
            "wafer": wafer,
            "die": die,
            "active_area_cm2": 0.25,
            "layers": [
                {
                    "role": "cathode",
                    "material": "LiCoO2",
                    "thickness_um": 1.0,
                    "density_g_cm3": 4.8,
                },
                {"role": "electrolyte", "material": "LiPON", "thickness_um": 1.0},
            ],
        }
        cyc = galvanostatic_cycles(
            n_cycles=n_cycles,
            capacity_ah=15e-6,
            current_a=7.5e-6,
            fade_per_cycle=1e-4 * (1 + k % 7),
            points_per_half=points_per_half,
            t0_unix=1.79e9 + k,
        )
        spectra = []
        for j in range(n_spectra):
            t_k = 273.15 + 25 + 50 * j / max(1, n_spectra - 1)
            factor = (298.15 / t_k) * np.exp(-0.55 / K_B_EV * (1 / t_k - 1 / 298.15))
            z = rc_spectrum(
                f,
                r_lead_ohm=5.0,
                r_bulk_ohm=1e-4 / (2.4e-6 * factor * 0.25),
                q_bulk=2e-9,
                q_electrode=5e-6,
            )
            spectra.append(
                {
                    "frequency_hertz": f,
                    "real_impedance_ohm": z.real,
                    "imaginary_impedance_ohm": z.imag,
                    "temperature_kelvin": t_k,
                    "cycle_count": 1 + j,
                }
            )
        path = root / wafer / die / f"{meta['cell_id']}.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_cell(path, parse_metadata(meta), cycling=cyc, spectra=spectra, force=True)


_TICK = os.sysconf("SC_CLK_TCK")


def _role(pid: int, me: int, cmdline: str) -> str:
    """``flow`` (this process), ``server`` (a Prefect server: uvicorn / `prefect server`)
    or ``workers`` (anything else below this process: Dask workers, pool processes)."""
    if pid == me:
        return "flow"
    if "uvicorn" in cmdline or "prefect server" in cmdline:
        return "server"
    return "workers"


def _proc_table() -> dict[int, tuple[int, float, str]]:
    """pid -> (parent pid, CPU seconds user + system, command line) from /proc."""
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{d}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        table[int(d)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK, cmd)
    return table


def tree_cpu_by_pid() -> dict[int, tuple[str, float]]:
    """pid -> (role, CPU seconds) of this process and its live descendants (the
    ephemeral Prefect server, Dask workers, a local `prefect server`)."""
    me = os.getpid()
    table = _proc_table()
    out = {}
    for pid, (_, cpu, cmd) in table.items():
        p = pid
        while p and p != me and p in table:
            p = table[p][0]
        if p == me:
            out[pid] = (_role(pid, me, cmd), cpu)
    return out


def tree_cpu_s() -> float:
    """CPU seconds (user + system) of this process and its live descendants."""
    return sum(cpu for _, cpu in tree_cpu_by_pid().values())


def machine_busy_s() -> float:
    """CPU seconds all processes on the machine have used since boot (/proc/stat)."""
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / _TICK


class Timer:
    """Wall time (s), CPU time of this process tree (s), split by role (flow, server,
    workers), and CPU time of the whole machine (s: other users' load shows as the
    difference)."""

    def __enter__(self):
        self.cpu0 = tree_cpu_by_pid()
        self.busy0 = machine_busy_s()
        self.wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall0
        self.busy = machine_busy_s() - self.busy0
        self.roles: dict[str, float] = {}
        for pid, (role, cpu) in tree_cpu_by_pid().items():
            prev = self.cpu0.get(pid, (role, 0.0))[1]
            self.roles[role] = self.roles.get(role, 0.0) + cpu - prev
        self.cpu = sum(self.roles.values())

    def describe(self) -> str:
        """One line: wall, CPU by role, CPU used by others on the machine."""
        roles = ", ".join(f"{k} {v:.1f}" for k, v in sorted(self.roles.items()))
        others = max(0.0, self.busy - self.cpu)
        return (
            f"wall {self.wall:.2f} s, CPU {self.cpu:.2f} s ({roles}); "
            f"other processes on the machine {others:.1f} s CPU"
        )


def bare(root: Path) -> tuple[Timer, int]:
    from cyclerflow.lab import LabSettings, analyze_batch, discover_cells

    with Timer() as dt:
        rows = analyze_batch(discover_cells(root), LabSettings())
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        raise SystemExit(f"bare analysis failed on {len(failed)} cells: {failed[0]['reason']}")
    return dt, len(rows)


def flow_run(root: Path, out: Path, **kw) -> tuple[Timer, dict]:
    from prefect.task_runners import ThreadPoolTaskRunner

    from cyclerflow.flows.lab import analyze_lab_flow

    threads = kw.pop("threads", None)
    f = (
        analyze_lab_flow
        if threads is None
        else analyze_lab_flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=threads))
    )
    from cyclerflow.flows.runtime import embedded_run_settings

    with Timer() as dt, embedded_run_settings():
        res = f(root=str(root), out=str(out), use_cache=False, report=False, **kw)
    return dt, res


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-services",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    import urllib.request

    t0 = time.monotonic()
    while time.monotonic() - t0 < 180:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    print(f"prefect server up at {url} after {time.monotonic() - t0:.1f} s")
                    return proc, url
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    raise SystemExit("prefect server did not start in 180 s")


def start_cluster(n_workers: int = 2):
    """A LocalCluster of ``n_workers`` one-thread worker processes with cyclerflow and
    Prefect imported on them (an existing cluster, as with --dask-address).
    Returns (cluster, client, Timer of the start)."""
    from distributed import Client, LocalCluster

    with Timer() as t_start:
        cluster = LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
        client.run(lambda: __import__("cyclerflow.flows.lab"))
    return cluster, client, t_start


BARE_PROCESS = """
import sys
from pathlib import Path
from cyclerflow.lab import LabSettings, analyze_batch, discover_cells
rows = analyze_batch(discover_cells(Path(sys.argv[1])), LabSettings())
bad = [r for r in rows if r["status"] != "ok"]
print(len(rows), len(bad), bad[0]["reason"] if bad else "")
"""


def bare_process(root: Path) -> tuple[Timer, int]:
    """The bare analysis in a fresh process of its own (no Prefect, no Dask client
    threads, no cluster alive beside it: the baseline a lab compares with)."""
    import resource

    def children_cpu() -> float:
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime

    c0 = children_cpu()
    with Timer() as dt:
        out = subprocess.run(
            [sys.executable, "-c", BARE_PROCESS, str(root)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    # an exited child is not in the process table any more: its CPU from rusage
    dt.roles["bare process"] = children_cpu() - c0
    dt.cpu += dt.roles["bare process"]
    n, n_bad = int(out[0]), int(out[1])
    if n_bad:
        raise SystemExit(f"bare analysis failed on {n_bad} cells: {' '.join(out[2:])}")
    return dt, n


def scale_out(work: Path, args: argparse.Namespace) -> None:
    """Part 2: bare single process vs. the flow on a 2-worker cluster; prints the ratio.

    Alternating runs (``--repeat N``: bare, flow, bare, flow, ..., bare), each flow run
    compared with the mean of the bare runs around it: on this shared machine one
    process's speed drifts by 10-20 % from minute to minute, which a single pair of
    runs cannot tell from the speed-up. Each bare run is a fresh process with the
    cluster shut down (idle Dask workers still use ~7 % of a core, and a Dask client
    and Prefect in the measuring process add threads of their own); each flow run gets
    a new cluster, started and warmed up untimed (imports, one small flow run)."""
    lab = work / "cpu"
    make_lab(lab, args.dask_cells, n_cycles=200, n_spectra=8, points_per_half=200)
    warm = work / "warm"
    make_lab(warm, 2, n_cycles=5, n_spectra=2, points_per_half=40)
    bares: list[Timer] = []
    flows: list[Timer] = []
    warms: list[Timer] = []
    starts: list[Timer] = []
    for k in range(args.repeat):
        t_bare, n = bare_process(lab)
        bares.append(t_bare)
        cluster, client, t_start = start_cluster()
        starts.append(t_start)
        kw = {
            "dask_address": cluster.scheduler_address,
            "batch_size": args.batch_size,
            "dask_mode": args.dask_mode,
        }
        try:
            if not args.cold:
                t_warm, _ = flow_run(warm, work / f"out-warm-{k}", **kw)
                warms.append(t_warm)
            t_dask, res = flow_run(lab, work / f"out-dask-{k}", **kw)
            assert res["counts"]["ok"] == n, res["counts"]
            flows.append(t_dask)
        finally:
            client.close()
            cluster.close()
    t_bare, _ = bare_process(lab)
    bares.append(t_bare)
    t_start = starts[0]
    t_warm = warms[0] if warms else None
    blas = ", ".join(f"{v}={os.environ[v]}" for v in BLAS_THREAD_VARS)
    for k, t in enumerate(bares):
        print(
            f"[dask] bare, a fresh single process ({blas}), run {k + 1}: {t.describe()}; "
            f"{n / t.wall:.3f} cells/s; CPU/wall {t.cpu / t.wall:.2f} (1.00 = one core)"
        )
    print(
        f"[dask] starting a LocalCluster of 2 worker processes and importing cyclerflow on them: {t_start.wall:.1f} s (once per cluster)"
    )
    if t_warm is not None:
        print(
            f"[dask] first warm-up flow run, 2 small cells (Prefect start-up: server, database; once per process): {t_warm.describe()}"
        )
    ratios = []
    for k, t in enumerate(flows):
        around = 0.5 * (bares[k].wall + bares[k + 1].wall)
        ratios.append(around / t.wall)
        print(
            f"[dask] flow ({args.dask_mode}, Prefect {'cold' if args.cold else 'warm'}) with --dask-address on that cluster, run {k + 1}: "
            f"{t.describe()}; {n / t.wall:.3f} cells/s; ratio to the bare runs around it {ratios[-1]:.2f}x"
        )
    ratio = float(np.median(ratios))
    print(
        f"[dask] throughput ratio (median of {len(ratios)}): {ratio:.2f}x, range {min(ratios):.2f}-{max(ratios):.2f} "
        f"(target >= 1.6x): {'PASS' if ratio >= 1.6 else 'FAIL'}; load average now {os.getloadavg()}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cells", type=int, default=200)
    ap.add_argument("--dask-cells", type=int, default=60)
    ap.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="cells per task in the Dask run (default: the flow's)",
    )
    ap.add_argument(
        "--server", action="store_true", help="start a local `prefect server` and use it"
    )
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--skip-dask", action="store_true")
    ap.add_argument("--dask-mode", default="tasks", choices=["tasks", "direct"])
    ap.add_argument(
        "--repeat", type=int, default=3, help="alternating bare/flow pairs in the Dask part"
    )
    ap.add_argument(
        "--cold",
        action="store_true",
        help="time the Dask flow with a cold Prefect (no warm-up flow run first)",
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cyclerflow-bench-flows-"))
    server = None
    try:
        if args.server:
            import atexit

            server, url = start_server(work / "prefect-home")
            os.environ["PREFECT_API_URL"] = url
            # registered before Prefect is imported, so it runs after Prefect's own exit
            # handlers (which flush logs to the server)
            atexit.register(stop_server, server, work)
        else:
            os.environ.pop("PREFECT_API_URL", None)
            os.environ["PREFECT_HOME"] = str(work / "prefect-home")
        import cyclerflow.flows  # noqa: F401  (embedded defaults before Prefect loads)
        from cyclerflow.flows.runtime import api_mode

        print(f"Prefect API: {api_mode()}; {os.cpu_count()} CPUs; load average {os.getloadavg()}")
        if not args.skip_overhead:
            lab = work / "small"
            t0 = time.perf_counter()
            make_lab(lab, args.cells, n_cycles=5, n_spectra=2, points_per_half=40)
            print(f"made {args.cells} small cells in {time.perf_counter() - t0:.1f} s")
            t_bare, n = bare(lab)
            t_flow, res = flow_run(lab, work / "out-overhead", threads=1)
            assert res["counts"]["ok"] == n, res["counts"]
            t_bare2, _ = bare(lab)
            print(
                f"[overhead] bare, run 1: wall {t_bare.wall:.2f} s, CPU {t_bare.cpu:.2f} s ({t_bare.cpu / n * 1e3:.1f} ms CPU/cell)"
            )
            print(f"[overhead] bare, run 2: wall {t_bare2.wall:.2f} s, CPU {t_bare2.cpu:.2f} s")
            print(
                f"[overhead] flow, 1 worker thread (incl. Prefect start-up): wall {t_flow.wall:.2f} s, CPU {t_flow.cpu:.2f} s (this process + Prefect server)"
            )
            cpu_bare = (t_bare.cpu + t_bare2.cpu) / 2
            wall_bare = (t_bare.wall + t_bare2.wall) / 2
            per_cpu = (t_flow.cpu - cpu_bare) / n
            per_wall = (t_flow.wall - wall_bare) / n
            print(
                f"[overhead] per cell: wall {per_wall * 1e3:+.1f} ms, CPU {per_cpu * 1e3:+.1f} ms (target < 200 ms): {'PASS' if max(per_wall, per_cpu) < 0.2 else 'FAIL'}"
            )
            print(
                f"[overhead] load average now {os.getloadavg()} (other processes share the cores: wall times are noisy, CPU times less so)"
            )
        if not args.skip_dask:
            scale_out(work, args)
    finally:
        if server is None:
            shutil.rmtree(work, ignore_errors=True)


def stop_server(proc: subprocess.Popen, work: Path) -> None:
    """Stop the local Prefect server, then remove the work folder (its database too)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
