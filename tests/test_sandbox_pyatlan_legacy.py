"""The legacy (Argo) workflow API and the user, group and token directory, driven by the last release
of the official SDK that has ``client.workflow`` (pyatlan 10.0.0; 11.0.0 dropped it).

The main run installs a newer pyatlan, where this module skips; ``.ci/run`` runs it again with
pyatlan 10.0.0 put ahead on the path (on the newer release's dependencies) and
``RECONCILER_REQUIRE_LEGACY_SDK=1``, which turns the skip into a failure, so the legacy routes are
always driven by the SDK that calls them.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests

REQUIRED = bool(os.environ.get("RECONCILER_REQUIRE_LEGACY_SDK"))
if REQUIRED:
    import pyatlan  # noqa: F401  # an ImportError here fails the run instead of skipping it
pyatlan = pytest.importorskip("pyatlan")

from pyatlan.client.atlan import AtlanClient  # noqa: E402

if not hasattr(AtlanClient, "workflow"):
    if REQUIRED:
        raise RuntimeError("RECONCILER_REQUIRE_LEGACY_SDK is set, but the installed pyatlan has no client.workflow "
                           "(install pyatlan==10.0.0)")
    pytest.skip("the installed pyatlan has no client.workflow (the last release with it is 10.0.0)",
                allow_module_level=True)

import pyatlan.client.workflow as sdk_workflow  # noqa: E402
from pyatlan.errors import AtlanError  # noqa: E402
from pyatlan.model.enums import AtlanWorkflowPhase, WorkflowPackage  # noqa: E402
from pyatlan.model.packages import LineageBuilder, SnowflakeCrawler  # noqa: E402
from pyatlan.model.workflow import ScheduleQueriesSearchRequest, WorkflowSchedule  # noqa: E402

from reconciler.sandbox import Sandbox  # noqa: E402
from reconciler.sandbox.catalogue import API_TOKEN_USER, API_TOKENS, GROUPS, USERS  # noqa: E402
from reconciler.sandbox.store import ManualClock  # noqa: E402
from tests.conftest import TOKEN, Introspection  # noqa: E402

MINER = "atlan-snowflake-miner-1714638976"
LINEAGE = "csa-lineage-builder-1716000000"
OWNER = "workflows.argoproj.io/creator"


@pytest.fixture
def atlan(sandbox: Sandbox) -> Iterator[AtlanClient]:
    yield AtlanClient(base_url=sandbox.base_url, api_key=TOKEN)


@pytest.fixture
def no_sdk_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """``rerun(idempotent=True)`` sleeps 10 s of wall-clock time before it looks for an active run.
    Here time is the sandbox's clock, so the sleep is recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(sdk_workflow, "sleep", slept.append)
    return slept


def _service(sandbox: Sandbox, method: str, path: str, **kwargs: Any) -> requests.Response:
    """A plain request to a route the SDK has no call for (or not in this form)."""
    return requests.request(method, f"{sandbox.base_url}api/service/{path}", headers={"Authorization": f"Bearer {TOKEN}"},
                            timeout=10, **kwargs)


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


def test_the_seeded_lineage_template_is_what_the_sdks_builder_creates(atlan: AtlanClient, sandbox: Sandbox,
                                                                      introspect: Introspection,
                                                                      no_sdk_sleep: list[float]) -> None:
    clock = sandbox.store.clock = ManualClock(dt.datetime(2026, 11, 22, 12, tzinfo=dt.timezone.utc).timestamp())
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

    assert "legacy-s3-secret" not in str(introspect.state()["templates"][name])  # vaulted, not kept in the template

    # Idempotent: the run that create started is still Pending (the clock has not moved), so the
    # SDK finds it through runs/indexsearch and submits nothing.
    [first_run] = [r for r, e in introspect.state()["workflow_runs"].items() if e["template"] == name]
    again = atlan.workflow.rerun(WorkflowPackage.LINEAGE_BUILDER, idempotent=True)
    assert no_sdk_sleep == [10] and again.metadata.name == first_run and again.status.phase == AtlanWorkflowPhase.PENDING
    clock.advance(sandbox.config.run_pending_s + sandbox.config.run_running_s + 1)
    rerun = atlan.workflow.rerun(WorkflowPackage.LINEAGE_BUILDER, idempotent=True)
    assert rerun.metadata.name != first_run and rerun.metadata.name.startswith(f"{name}-")


def test_an_update_with_a_payload_vaults_it_and_fills_the_placeholder(atlan: AtlanClient,
                                                                      introspect: Introspection) -> None:
    created = atlan.workflow.run(_lineage_builder().to_workflow())
    guid = _parameters(created.spec)["cloud_source"]
    # The builder's workflow again (payload and {{credentialGuid}} included), sent as an update.
    again = _lineage_builder().s3(access_key="AKIA-rotated", secret_key="rotated-s3-secret", region="us-east-1",
                                  bucket="lineage-bucket").to_workflow()
    again.metadata.name = created.metadata.name
    updated = atlan.workflow.update(again)
    rotated = _parameters(updated.spec)["cloud_source"]
    assert rotated not in (guid, "{{credentialGuid}}") and rotated in introspect.state()["credentials"]
    stored = introspect.state()["templates"][created.metadata.name]
    assert "rotated-s3-secret" not in str(stored) and stored["source"]["metadata"]["resourceVersion"] == "2"
    # The update flow the SDK documents (the search hit's to_workflow(), no payload) keeps the guid.
    [found] = [w for w in atlan.workflow.find_by_type(WorkflowPackage.LINEAGE_BUILDER)
               if w.source.metadata.name == created.metadata.name]
    assert _parameters(atlan.workflow.update(found.to_workflow()).spec)["cloud_source"] == rotated


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
    assert f"{MINER}-cron" in {s.metadata.name for s in atlan.workflow.get_all_scheduled_runs()}
    atlan.workflow.remove_schedule(atlan.workflow.find_by_type(WorkflowPackage.SNOWFLAKE_MINER)[0])
    with pytest.raises(AtlanError):
        atlan.workflow.get_scheduled_run(MINER)


def test_change_ownership_takes_a_known_user(atlan: AtlanClient, sandbox: Sandbox, introspect: Introspection) -> None:
    asmith = next(u for u in USERS if u["username"] == "asmith")
    changed = atlan.workflow.update_owner(MINER, "asmith")  # the username goes out as a JSON body
    assert changed.metadata.labels["workflows.argoproj.io/creator"] == asmith["id"]
    labels = introspect.state()["templates"][MINER]["source"]["metadata"]["labels"]
    assert labels["workflows.argoproj.io/creator-preferred-username"] == "asmith"
    with pytest.raises(AtlanError, match="nobody"):
        atlan.workflow.update_owner(MINER, "nobody")
    # An update (the SDK's add_schedule echoes the search hit) does not move the owner.
    [found] = atlan.workflow.find_by_type(WorkflowPackage.SNOWFLAKE_MINER)
    atlan.workflow.add_schedule(found, WorkflowSchedule(cron_schedule="0 1 * * *", timezone="UTC"))
    assert introspect.state()["templates"][MINER]["source"]["metadata"]["labels"][OWNER] == asmith["id"]
    # WorkflowUpdateOwner calls the username a query parameter: that form is accepted too.
    by_query = _service(sandbox, "POST", f"workflows/{MINER}/changeownership", params={"username": "jdoe"})
    assert by_query.status_code == 200 and by_query.json()["metadata"]["labels"][OWNER] == USERS[0]["id"]
    missing = _service(sandbox, "POST", f"workflows/{MINER}/changeownership", json={})
    assert missing.status_code == 400 and missing.json()["causes"][0]["location"] == "username"
    unknown = _service(sandbox, "POST", "workflows/no-such-template/changeownership", json={"username": "jdoe"})
    assert unknown.status_code == 404 and set(unknown.json()) >= {"code", "message"}


def test_scheduled_queries_rerun_as_owner_and_found_between_dates(atlan: AtlanClient, sandbox: Sandbox) -> None:
    clock = sandbox.store.clock = ManualClock(dt.datetime(2026, 11, 22, 12, tzinfo=dt.timezone.utc).timestamp())
    name = "asq-6f1c2a9e-5d4b-4c3a-8b2e-0a0000000001-1716200000"
    # The SDK has no call that creates a scheduled query (the UI does): a plain create. The server
    # labels it with its creator, the token's service account, whatever the body says.
    body = {"metadata": {"name": name, "annotations": {"package.argoproj.io/name": "@atlan/schedule-query"},
                         "labels": {OWNER: USERS[2]["id"]}},
            "spec": {"templates": [{"name": "main"}], "entrypoint": "main"}}
    created = _service(sandbox, "POST", "workflows", json=body)
    assert created.status_code == 200, created.text
    assert created.json()["metadata"]["labels"][OWNER] == API_TOKEN_USER["id"]
    [query] = atlan.workflow.find_schedule_query("6f1c2a9e-5d4b-4c3a-8b2e-0a0000000001")
    assert query.source.metadata.name == name
    mine = atlan.workflow.re_run_schedule_query(name)
    assert mine.metadata.labels[OWNER] == API_TOKEN_USER["id"]
    atlan.workflow.update_owner(name, "asmith")
    run = atlan.workflow.re_run_schedule_query(name)  # POST workflows/triggerAsOwner
    assert run.metadata.labels[OWNER] == USERS[1]["id"]  # as its owner
    rerun = atlan.workflow.rerun(atlan.workflow.find_by_id(name))  # POST workflows/submit: as the caller
    assert rerun.metadata.labels[OWNER] == API_TOKEN_USER["id"]
    # The fixed paths are not taken for a template called triggerAsOwner or a cron called scheduleQueries…
    no_name = _service(sandbox, "POST", "workflows/triggerAsOwner", json={"namespace": "default"})
    assert no_name.status_code == 400 and "resourceName" in no_name.json()["message"]
    assert _service(sandbox, "POST", "workflows/triggerAsOwner", json={"resourceName": "nope"}).status_code == 404
    no_dates = _service(sandbox, "GET", "runs/cron/scheduleQueriesBetweenDuration")
    assert no_dates.status_code == 400 and no_dates.json()["causes"][0]["location"] == "startDate"
    bad_date = _service(sandbox, "GET", "runs/cron/missedScheduleQueriesBetweenDuration",
                        params={"startDate": "2026-11-22T00:00:00Z", "endDate": "tomorrow"})
    assert bad_date.status_code == 400 and "'tomorrow'" in bad_date.json()["message"]
    clock.advance(60)
    window = ScheduleQueriesSearchRequest(start_date="2026-11-22T17:00:00.000+05:30", end_date="2026-11-22T18:00:00.000+05:30")
    found = atlan.workflow.find_schedule_query_between(window)
    assert [r.metadata.name for r in found or []] == [mine.metadata.name, run.metadata.name, rerun.metadata.name]
    later = ScheduleQueriesSearchRequest(start_date="2026-11-23T00:00:00Z", end_date="2026-11-24T00:00:00Z")
    assert not atlan.workflow.find_schedule_query_between(later)
    assert not atlan.workflow.find_schedule_query_between(window, missed=True)


def test_users_groups_and_a_package_builder_with_admins(atlan: AtlanClient, sandbox: Sandbox,
                                                         introspect: Introspection) -> None:
    assert atlan.user.get_current().username == "service-account-apikey-reconciler"
    assert atlan.user.get_by_username("asmith").id == USERS[1]["id"]
    assert [u.username for u in atlan.user.get_by_usernames(["jdoe", "bwayne"])] == ["jdoe", "bwayne"]
    assert {g.alias for g in atlan.group.get_all()} == {g["alias"] for g in GROUPS}
    assert [g.name for g in atlan.group.get_by_name("Data Engineers")] == ["data_engineers"]
    assert atlan.user_cache.get_id_for_name("jdoe") == USERS[0]["id"]
    # A token's service account is not a user: the cache asks GET apikeys for it.
    assert atlan.user_cache.get_id_for_name(API_TOKEN_USER["username"]) == API_TOKENS[0]["id"]
    assert atlan.token.get_by_name("reconciler").client_id == "apikey-reconciler"
    assert atlan.group_cache.get_id_for_name("analysts") == GROUPS[1]["id"]
    page = _service(sandbox, "GET", "users", params={"limit": 2, "offset": 1, "sort": "username"}).json()
    assert (page["totalRecord"], [u["username"] for u in page["records"]]) == (3, ["bwayne", "jdoe"])

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
