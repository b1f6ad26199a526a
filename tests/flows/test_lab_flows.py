"""The analysis flows under Prefect's test harness (one harness per session)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from flows_support import make_cell

pytestmark = pytest.mark.flows


def _read_csv(path: Path) -> dict[str, dict]:
    with open(path) as fh:
        return {Path(r["path"]).name: r for r in csv.DictReader(fh)}


def _latest_markdown(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert arts, f"no artifact {key!r}"
    return max(arts, key=lambda a: a.created).data


def test_lab_flow_live_corrupt_unchanged(prefect_harness, tmp_path, live_writer):
    from cyclerflow.analysis import analyze_cell
    from cyclerflow.flows.lab import analyze_lab_flow, analyze_live_cells_flow
    from cyclerflow.lab import LabSettings, run_lab

    lab = tmp_path / "lab"
    unchanged = make_cell(lab / "W01" / "a.h5", "W01-D01-C1", "W01", "D01")
    changed = make_cell(lab / "W01" / "b.h5", "W01-D02-C1", "W01", "D02")
    settings = {"retention_cycle": 3}
    # the "last run" (core, no Prefect): both cells analysed and cached
    first = run_lab(lab, settings=LabSettings.from_dict(settings), report=False)
    assert first.count("ok") == 2
    results_a = unchanged.with_name("a.results.nc")
    mtime_a = results_a.stat().st_mtime_ns
    # since then: one cell re-measured, one corrupt file copied in, one cell being written
    make_cell(changed, "W01-D02-C1", "W01", "D02", n_cycles=5)
    data = unchanged.read_bytes()
    (lab / "W02").mkdir()
    (lab / "W02" / "corrupt.h5").write_bytes(data[: len(data) // 2])
    (lab / "W09").mkdir()
    live_writer(lab / "W09" / "live.h5")

    res = analyze_lab_flow(root=str(lab), settings=settings)

    assert res["counts"] == {"ok": 2, "cached": 1, "failed": 1}
    assert list(res["failed"]) == [str(lab / "W02" / "corrupt.h5")]
    assert "cannot open" in res["failed"][str(lab / "W02" / "corrupt.h5")]
    assert results_a.stat().st_mtime_ns == mtime_a  # the unchanged cell was not analysed again
    rows = _read_csv(lab / "lab_summary.csv")
    assert set(rows) == {"a.h5", "b.h5", "corrupt.h5", "live.h5"}
    assert rows["a.h5"]["status"] == "cached" and rows["b.h5"]["status"] == "ok"
    assert rows["live.h5"]["status"] == "ok" and rows["live.h5"]["live"] == "true"
    assert rows["live.h5"]["flags"].startswith("live") and rows["live.h5"]["wafer"] == "W09"
    assert rows["corrupt.h5"]["status"] == "failed" and rows["corrupt.h5"]["reason"]
    # the flow's numbers are the core analysis' numbers
    direct = analyze_cell(changed, write_results=False)
    ref = direct["cycling"]["reference_cycle"]
    q_ref = next(c for c in direct["cycling"]["cycles"] if c["cycle"] == ref)[
        "discharge_capacity_ah"
    ]
    assert rows["b.h5"]["n_cycles"] == "5"
    assert float(rows["b.h5"]["discharge_capacity_ah"]) == pytest.approx(q_ref, rel=1e-12)
    ea = direct["eis"]["arrhenius"]["activation_energy_ev"]
    assert float(rows["b.h5"]["activation_energy_ev"]) == pytest.approx(ea, rel=1e-6)
    assert ea == pytest.approx(0.55, abs=0.01)  # the synthetic cells are made with Ea = 0.55 eV
    sigma = direct["eis"]["spectra"][1]["conductivity_s_per_cm"]  # 25 °C spectrum
    assert sigma == pytest.approx(2.4e-6, rel=0.05)  # the synthetic cells are made with 2.4 µS/cm
    doc = json.loads((lab / "lab_summary.json").read_text())
    assert doc["counts"] == {"ok": 2, "cached": 1, "failed": 1}
    md = _latest_markdown("lab-summary")
    assert "corrupt.h5" in md and "W01-D02-C1" in md
    # the lab report (cyclerflow.report) covers the analysed cells, not the corrupt one
    report = Path(res["report"])
    html = report.read_text()
    assert report.name == "lab_report.html" and "W01-D01-C1" in html and "W01-D02-C1" in html
    # the short-schedule flow: only the live cell
    live = analyze_live_cells_flow(root=str(lab))
    assert live == {"live": 1, "failed": {}}
    assert list(_read_csv(lab / "live_summary.csv")) == ["live.h5"]


def test_analyze_cell_flow_artifact(prefect_harness, tmp_path):
    from cyclerflow.flows.lab import analyze_cell_flow

    cell = make_cell(tmp_path / "c.h5", "W03-D01-C7", "W03", "D01")
    res = analyze_cell_flow(str(cell))
    assert res["cell_id"] == "W03-D01-C7"
    assert cell.with_name("c.results.nc").exists()
    md = _latest_markdown("cell-w03-d01-c7")
    q = res["cycling"]["cycles"][0]["discharge_capacity_ah"]
    assert f"{q * 1e6:.5g}" in md and "W03-D01-C7" in md
    ea = res["eis"]["arrhenius"]["activation_energy_ev"]
    assert ("–" if ea is None else f"{ea:.3f}") in md


def test_dask_runner_two_workers_via_cli(prefect_harness, tmp_path):
    """`flows run analyze-lab --dask-address` on a LocalCluster with 2 workers (threads)."""
    from distributed import LocalCluster

    from cyclerflow.cli import main
    from cyclerflow.lab import run_lab

    lab = tmp_path / "lab"
    for k in range(6):
        make_cell(lab / f"c{k}.h5", f"W01-D01-C{k}", "W01", "D01", n_cycles=3 + k)
    ref = tmp_path / "ref"
    core = {Path(r["path"]).name: r for r in run_lab(lab, out=ref, report=False).rows}
    for p in lab.glob("*.results.nc"):
        p.unlink()
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        code = main(
            [
                "flows",
                "run",
                "analyze-lab",
                "--root",
                str(lab),
                "--dask-address",
                cluster.scheduler_address,
                "--batch-size",
                "2",
                "--no-report",
                "--json",
            ]
        )
        assert code == 0
        assert len(cluster.workers) == 2
        # both workers ran tasks (3 batches of 2 cells on 2 workers)
        assert all(w.state.transition_counter > 0 for w in cluster.workers.values())
        # dask_mode="direct": plain Dask functions under one Prefect task, same rows
        from cyclerflow.flows.lab import analyze_lab_flow

        direct = analyze_lab_flow(
            root=str(lab),
            out=str(tmp_path / "direct"),
            use_cache=False,
            report=False,
            dask_address=cluster.scheduler_address,
            dask_mode="direct",
        )
        assert direct["counts"] == {"ok": 6, "cached": 0, "failed": 0}
    direct_rows = _read_csv(tmp_path / "direct" / "lab_summary.csv")
    rows = _read_csv(lab / "lab_summary.csv")
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows.values())
    for name, r in rows.items():
        assert int(r["n_cycles"]) == core[name]["n_cycles"]
        assert float(r["mean_coulombic_efficiency"]) == pytest.approx(
            core[name]["mean_coulombic_efficiency"], rel=1e-12
        )
        assert direct_rows[name]["mean_coulombic_efficiency"] == r["mean_coulombic_efficiency"]
        assert direct_rows[name]["activation_energy_ev"] == r["activation_energy_ev"]
    assert all((lab / f"c{k}.results.nc").exists() for k in range(6))


def test_served_deployments_register_schedules(prefect_harness, tmp_path):
    import datetime as dt

    from prefect.client.orchestration import get_client

    from cyclerflow.cli import main

    code = main(
        [
            "flows",
            "serve",
            "--root",
            str(tmp_path),
            "--lab-cron",
            "30 1 * * *",
            "--live-interval",
            "10 min",
            "--register-only",
        ]
    )
    assert code == 0
    with get_client(sync_client=True) as client:
        lab = client.read_deployment_by_name("analyze-lab/nightly")
        live = client.read_deployment_by_name("analyze-live-cells/live")
    assert [s.schedule.cron for s in lab.schedules] == ["30 1 * * *"]
    assert [s.schedule.interval for s in live.schedules] == [dt.timedelta(minutes=10)]
    assert lab.parameters["root"] == str(tmp_path.resolve())
    assert live.parameters["root"] == str(tmp_path.resolve())
    assert lab.entrypoint == "cyclerflow.flows.lab.analyze_lab_flow"


def test_cli_bad_root_is_one_clear_line(tmp_path, capsys):
    from cyclerflow.cli import main

    assert main(["flows", "run", "analyze-lab", "--root", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0] and "not a folder" in err[0]
    assert main(["flows", "serve", "--root", str(tmp_path), "--lab-cron", "not a cron"]) == 2
    assert "cron" in capsys.readouterr().err
    assert not os.listdir(tmp_path)
