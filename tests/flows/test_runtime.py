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
