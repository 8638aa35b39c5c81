"""The legacy (Argo) workflow API and the user, group and token directory, driven by the last release
of the official SDK that has ``client.workflow`` (pyatlan 10.0.0; 11.0.0 dropped it).

The main run installs a newer pyatlan, where this module skips; ``.ci/run`` runs it again in a
virtualenv of its own with pyatlan 10.0.0 and ``RECONCILER_REQUIRE_LEGACY_SDK=1``, which turns the
skip into a failure, so the legacy routes are always driven by the SDK that calls them.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests

pyatlan = pytest.importorskip("pyatlan")

from pyatlan.client.atlan import AtlanClient  # noqa: E402

if not hasattr(AtlanClient, "workflow"):
    if os.environ.get("RECONCILER_REQUIRE_LEGACY_SDK"):
        raise RuntimeError("RECONCILER_REQUIRE_LEGACY_SDK is set, but the installed pyatlan has no client.workflow "
                           "(install pyatlan==10.0.0)")
    pytest.skip("the installed pyatlan has no client.workflow (the last release with it is 10.0.0)",
                allow_module_level=True)

from pyatlan.errors import AtlanError  # noqa: E402
from pyatlan.model.enums import AtlanWorkflowPhase, WorkflowPackage  # noqa: E402
from pyatlan.model.packages import LineageBuilder, SnowflakeCrawler  # noqa: E402
from pyatlan.model.workflow import ScheduleQueriesSearchRequest, WorkflowSchedule  # noqa: E402

from reconciler.sandbox import Sandbox  # noqa: E402
from reconciler.sandbox.catalogue import GROUPS, USERS  # noqa: E402
from reconciler.sandbox.store import ManualClock  # noqa: E402
from tests.conftest import TOKEN, Introspection  # noqa: E402

MINER = "atlan-snowflake-miner-1714638976"
LINEAGE = "csa-lineage-builder-1716000000"


@pytest.fixture
def atlan(sandbox: Sandbox) -> Iterator[AtlanClient]:
    yield AtlanClient(base_url=sandbox.base_url, api_key=TOKEN)


def _parameters(source: Any) -> dict[str, Any]:
    spec = source if isinstance(source, dict) else source.dict(by_alias=True)
    task = spec["templates"][0]["dag"]["tasks"][0]
    return {p["name"]: p["value"] for p in task["arguments"]["parameters"]}


def _lineage_builder() -> Any:
    from pyatlan.model.enums import AssetInputHandling

    return (LineageBuilder()
            .s3(access_key="AKIA-legacy", secret_key="legacy-s3-secret", region="us-east-1", bucket="lineage-bucket")
            .object_store(prefix="lineage/", object_key="lineage.csv")
            .options(input_handling=AssetInputHandling.UPSERT, fail_on_errors=True, case_sensitive_match=True,
                     field_separator=",", batch_size=20))


def test_the_seeded_lineage_template_is_what_the_sdks_builder_creates(atlan: AtlanClient,
                                                                      introspect: Introspection) -> None:
    created = atlan.workflow.run(_lineage_builder().to_workflow())
    name = created.metadata.name
    sent = _parameters(_lineage_builder().to_workflow().spec)
    stored = _parameters(introspect.state()["templates"][name]["source"]["spec"])
    vaulted = [g for g, e in introspect.state()["credentials"].items() if e["record"]["name"].startswith("csa-lineage-builder")]
    # The server vaulted the payload's credential and filled {{credentialGuid}} with its guid.
    assert sent["cloud_source"] == "{{credentialGuid}}" and stored["cloud_source"] == vaulted[0]
    assert {k: v for k, v in stored.items() if k != "cloud_source"} == {k: v for k, v in sent.items() if k != "cloud_source"}
    # The seeded one (a UI user's, made before the App API) has the same parameters, filled the same way.
    seeded = _parameters(introspect.state()["templates"][LINEAGE]["source"]["spec"])
    assert set(seeded) == set(sent) and "{{" not in str(seeded["cloud_source"])

    rerun = atlan.workflow.rerun(WorkflowPackage.LINEAGE_BUILDER, idempotent=True)
    assert rerun.metadata.name.startswith("csa-lineage-builder-")
    assert "legacy-s3-secret" not in str(introspect.state()["templates"][name])  # vaulted, not kept in the template


def test_find_by_type_and_runs_by_status_and_time_range(atlan: AtlanClient, sandbox: Sandbox) -> None:
    clock = sandbox.store.clock = ManualClock(dt.datetime(2026, 11, 22, 12, tzinfo=dt.timezone.utc).timestamp())
    [found] = atlan.workflow.find_by_type(WorkflowPackage.SNOWFLAKE_MINER)
    assert found.source.metadata.name == MINER
    first = atlan.workflow.rerun(found)
    clock.advance(sandbox.config.run_pending_s + sandbox.config.run_running_s + 1)
    assert atlan.workflow.find_runs_by_status_and_time_range([AtlanWorkflowPhase.SUCCESS], started_at="now-6h").hits.total["value"] == 1
    clock.advance(7 * 3600)  # seven hours on: the run started before now-6h
    assert atlan.workflow.find_runs_by_status_and_time_range([AtlanWorkflowPhase.SUCCESS], started_at="now-6h").hits.total["value"] == 0
    # finished_at is an upper bound: runs that ended before an hour ago.
    done = atlan.workflow.find_runs_by_status_and_time_range([AtlanWorkflowPhase.SUCCESS], finished_at="now-1h")
    assert [h.source.metadata.name for h in done.hits.hits] == [first.metadata.name]
    assert atlan.workflow.find_runs_by_status_and_time_range([AtlanWorkflowPhase.SUCCESS], finished_at="now-8h").hits.total["value"] == 0


def test_schedules_through_the_cron_routes(atlan: AtlanClient) -> None:
    [found] = atlan.workflow.find_by_type(WorkflowPackage.SNOWFLAKE_MINER)
    atlan.workflow.add_schedule(found, WorkflowSchedule(cron_schedule="15 3 * * *", timezone="Asia/Kolkata"))
    scheduled = atlan.workflow.get_scheduled_run(MINER)
    assert (scheduled.spec.schedule, scheduled.spec.timezone) == ("15 3 * * *", "Asia/Kolkata")
    atlan.workflow.remove_schedule(atlan.workflow.find_by_type(WorkflowPackage.SNOWFLAKE_MINER)[0])
    with pytest.raises(AtlanError):
        atlan.workflow.get_scheduled_run(MINER)


def test_change_ownership_takes_a_known_user(atlan: AtlanClient, introspect: Introspection) -> None:
    changed = atlan.workflow.update_owner(MINER, "jdoe")
    jdoe = next(u for u in USERS if u["username"] == "jdoe")
    assert changed.metadata.labels["workflows.argoproj.io/creator"] == jdoe["id"]
    labels = introspect.state()["templates"][MINER]["source"]["metadata"]["labels"]
    assert labels["workflows.argoproj.io/creator-preferred-username"] == "jdoe"
    with pytest.raises(AtlanError, match="nobody"):
        atlan.workflow.update_owner(MINER, "nobody")


def test_scheduled_queries_rerun_as_owner_and_found_between_dates(atlan: AtlanClient, sandbox: Sandbox) -> None:
    clock = sandbox.store.clock = ManualClock(dt.datetime(2026, 11, 22, 12, tzinfo=dt.timezone.utc).timestamp())
    name = "asq-6f1c2a9e-5d4b-4c3a-8b2e-0a0000000001-1716200000"
    body = {"metadata": {"name": name, "annotations": {"package.argoproj.io/name": "@atlan/schedule-query"},
                         "labels": {"workflows.argoproj.io/creator": USERS[1]["id"]}},
            "spec": {"templates": [{"name": "main"}], "entrypoint": "main"}}
    created = requests.post(f"{sandbox.base_url}api/service/workflows", json=body,
                            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert created.status_code == 200, created.text
    [query] = atlan.workflow.find_schedule_query("6f1c2a9e-5d4b-4c3a-8b2e-0a0000000001")
    assert query.source.metadata.name == name
    run = atlan.workflow.re_run_schedule_query(name)
    assert run.metadata.labels["workflows.argoproj.io/creator"] == USERS[1]["id"]  # as its owner
    clock.advance(60)
    window = ScheduleQueriesSearchRequest(start_date="2026-11-22T17:00:00.000+05:30", end_date="2026-11-22T18:00:00.000+05:30")
    found = atlan.workflow.find_schedule_query_between(window)
    assert [r.metadata.name for r in found or []] == [run.metadata.name]
    later = ScheduleQueriesSearchRequest(start_date="2026-11-23T00:00:00Z", end_date="2026-11-24T00:00:00Z")
    assert not atlan.workflow.find_schedule_query_between(later)
    assert not atlan.workflow.find_schedule_query_between(window, missed=True)


def test_users_groups_and_a_package_builder_with_admins(atlan: AtlanClient, introspect: Introspection) -> None:
    assert atlan.user.get_current().username == "service-account-apikey-reconciler"
    assert atlan.user.get_by_username("asmith").id == USERS[1]["id"]
    assert [u.username for u in atlan.user.get_by_usernames(["jdoe", "bwayne"])] == ["jdoe", "bwayne"]
    assert {g.alias for g in atlan.group.get_all()} == {g["alias"] for g in GROUPS}
    assert [g.name for g in atlan.group.get_by_name("Data Engineers")] == ["data_engineers"]
    assert atlan.user_cache.get_id_for_name("jdoe") == USERS[0]["id"]

    crawler = SnowflakeCrawler(client=atlan, connection_name="legacy-sf", admin_users=["jdoe"],
                               admin_groups=["data_engineers"]).basic_auth(
        username="loader", password="legacy-sf-secret", role="LOADER", warehouse="WH")
    created = atlan.workflow.run(crawler.account_usage(hostname="acme.snowflakecomputing.com",
                                                       database_name="SNOWFLAKE", schema_name="ACCOUNT_USAGE").to_workflow())
    assert created.metadata.name.startswith("atlan-snowflake-")
    with pytest.raises(ValueError, match="nobody"):  # the SDK checks admins against the directory
        SnowflakeCrawler(client=atlan, connection_name="legacy-bad", admin_users=["nobody"]).basic_auth(
            username="u", password="p", role="R", warehouse="W").account_usage(
            hostname="acme.snowflakecomputing.com", database_name="SNOWFLAKE", schema_name="ACCOUNT_USAGE").to_workflow()
    assert "legacy-sf-secret" not in str(introspect.state()["templates"][created.metadata.name])  # vaulted
