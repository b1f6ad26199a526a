"""Embedded-mode settings and batching (no harness needed)."""

from __future__ import annotations

from cyclerflow.flows.runtime import EMBEDDED_DEFAULTS, batches, configure_prefect_env


def test_configure_env_sets_defaults_and_removes_empty_api_url():
    env = {"PREFECT_API_URL": "  ", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300"}
    changed = configure_prefect_env(env)
    assert "PREFECT_API_URL" not in env  # empty is not unset: removed
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false" and env["DO_NOT_TRACK"] == "1"
    # a value the user set is kept
    assert env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "300"
    assert set(changed) == {"PREFECT_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED", "DO_NOT_TRACK"}
    env = {"PREFECT_API_URL": "http://lab:4200/api"}
    configure_prefect_env(env)
    assert env["PREFECT_API_URL"] == "http://lab:4200/api"
    assert int(env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"]) >= 90
    assert set(EMBEDDED_DEFAULTS) <= set(env)


def test_batches_cover_every_item_once():
    items = list(range(203))
    groups = batches(items, n_workers=2, per_worker=4)
    assert len(groups) == 8 and sum(groups, []) == items
    assert max(map(len, groups)) - min(map(len, groups)) <= 26
    assert batches(items[:3], n_workers=2) == [[0], [1], [2]]
    assert [len(g) for g in batches(items[:7], batch_size=3)] == [3, 3, 1]
    assert batches([], n_workers=4) == []


def test_no_api_to_share_outside_a_flow_run(monkeypatch):
    """Outside a flow run with no PREFECT_API_URL there is nothing to hand to workers."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from cyclerflow.flows.runtime import api_shared_with_workers

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        with api_shared_with_workers() as url:
            assert url is None and not PREFECT_API_URL.value()


def test_workers_get_the_flow_runs_api_url(prefect_harness):
    """Inside a flow run on an unconfigured API (ephemeral server), the settings that
    travel with submitted tasks name the flow run's server, so Dask worker processes do
    not start an ephemeral server each; the setting is undone afterwards."""
    from prefect import flow
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from cyclerflow.flows.runtime import api_shared_with_workers

    @flow
    def probe() -> tuple:
        client_url = str(FlowRunContext.get().client.api_url).rstrip("/")
        with temporary_settings(restore_defaults={PREFECT_API_URL}):
            with api_shared_with_workers() as url:
                inside = PREFECT_API_URL.value()
            after = PREFECT_API_URL.value()
        return client_url, url, inside, after

    client_url, url, inside, after = probe()
    assert client_url.startswith("http") and url == inside == client_url
    assert not after


def test_a_loopback_api_is_shared_only_with_a_local_cluster():
    from cyclerflow.flows.runtime import api_reachable_by_workers

    local_api = "http://127.0.0.1:8123/api"
    assert api_reachable_by_workers(local_api, None)  # LocalCluster of this run
    assert api_reachable_by_workers(local_api, "tcp://127.0.0.1:8786")
    assert not api_reachable_by_workers(local_api, "tcp://dask-sched.lab:8786")
    assert api_reachable_by_workers("http://prefect.lab:4200/api", "tcp://dask-sched.lab:8786")


def test_heartbeats_are_off_only_without_a_server(monkeypatch):
    """Ephemeral mode: flow-run heartbeats off (nobody outlives the process to read
    them; each costs up to 1 s at a flow's end). A configured server keeps Prefect's."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    from cyclerflow.flows.runtime import embedded_run_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        default = PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value()
        assert default is not None and default >= 30
        with embedded_run_settings():
            assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() is None
        assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() == default
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        with embedded_run_settings():
            assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() == default
