"""Independent client conformance: the official SDK (pyatlan) drives the sandbox over HTTP.

If pyatlan and the sandbox disagree, the sandbox is wrong (unless ATLAN_API.md says otherwise).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

pyatlan = pytest.importorskip("pyatlan")

from pyatlan.client.atlan import AtlanClient  # noqa: E402
from pyatlan.errors import AtlanError, NotFoundError  # noqa: E402
from pyatlan.model.apps.bigquery_crawler import BigqueryCrawler  # noqa: E402
from pyatlan.model.apps.postgres_crawler import PostgresCrawler  # noqa: E402
from pyatlan.model.credential import Credential  # noqa: E402

from reconciler.sandbox import Sandbox  # noqa: E402
from reconciler.sandbox.catalogue import ROLES  # noqa: E402
from reconciler.sandbox.store import ManualClock  # noqa: E402
from tests.conftest import TOKEN, Introspection, connection  # noqa: E402

ADMIN_GUID = ROLES[0]["id"]


@pytest.fixture
def atlan(sandbox: Sandbox) -> Iterator[AtlanClient]:
    client = AtlanClient(base_url=sandbox.base_url, api_key=TOKEN)
    yield client


def _bigquery(atlan: AtlanClient, name: str) -> Any:
    return (
        BigqueryCrawler(atlan)
        .service_account(email="svc@p.iam.gserviceaccount.com", service_account_json='{"private_key": "sa-key"}',
                         project_id="p")
        .connection(name=name, admin_roles=[ADMIN_GUID])
        .include({"p": ["analytics"]})
        .create(name=name)
    )


def _args(atlan: AtlanClient, slug: str) -> dict[str, Any]:
    return atlan.app.get(slug).dict()["dag"]["extract"]["inputs"]["args"]


def test_describe_and_input_contract(atlan: AtlanClient) -> None:
    info = atlan.app.describe("bigquery-crawler")
    assert info.app_id == "bigquery-crawler"
    assert info.native_ready is True
    assert "crawler" in [e.name for e in info.entrypoints]

    contract = atlan.app.get_input_contract("bigquery-crawler")
    assert contract.title == "AppInputContract"
    assert "connection" in contract.field_names()
    assert contract.credential_field() == "credential_guid"
    assert contract.describe()["include_filter"] == {"type": "string", "required": False, "default": "{}"}
    assert atlan.app.get_input_contract("snowflake-miner", "miner").properties["calculate_popularity"]["default"] is True

    with pytest.raises(NotFoundError):
        atlan.app.get_input_contract("tableau-crawler")
    with pytest.raises(AtlanError) as unknown:
        atlan.app.get_input_contract("bigquery-crawler", "no-such-entrypoint")
    assert "1003" in str(unknown.value)


def test_builder_create_vaults_the_credential_and_reuses_on_409(atlan: AtlanClient, introspect: Introspection) -> None:
    created = _bigquery(atlan, "bq-prod")
    assert created.slug.startswith("bq-prod-")
    assert isinstance(created.version, int)
    assert created.execution_mode == "native"
    assert created.run_id is None  # the builder's create() sends run=false

    args = _args(atlan, created.slug)
    assert "credential" not in args and "connection_qualified_name" not in args
    guid = args["credential_guid"]
    assert guid
    assert isinstance(args["connection"], str)  # read back as a JSON string
    assert json.loads(args["connection"])["attributes"]["adminRoles"] == [ADMIN_GUID]
    assert args["include_filter"] == '{"^p$": ["^analytics$"]}'
    assert args["control_config"] == {}  # a JSON-string field read back as an object
    assert args["workflow_id"] and args["user_id"]  # runtime keys injected

    vaulted = introspect.state()["credentials"][guid]
    assert vaulted["secrets"]["password"] == '{"private_key": "sa-key"}'
    public = atlan.credentials.get(guid)
    assert public.name.startswith("default-bigquery-")
    assert "sa-key" not in public.json()

    again = _bigquery(atlan, "bq-prod")  # a second create of the same name adopts the first
    assert again.slug == created.slug
    assert len([a for a in introspect.state()["apps"].values() if a["name"] == "bq-prod"]) == 1


def test_get_all_pages_and_name_filter(atlan: AtlanClient) -> None:
    slugs = {_bigquery(atlan, f"bq-page-{i}").slug for i in range(7)}
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = atlan.app.get_all(limit=3, cursor=cursor)
        pages += 1
        seen.extend(w.slug for w in page.workflows)
        for workflow in page.workflows:
            assert workflow.dag["extract"]["inputs"]["app_id"] == "bigquery-crawler"
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert pages == 3
    assert set(seen) == slugs and len(seen) == 7

    only = atlan.app.get_all(name="bq-page-4")
    assert [w.name for w in only.workflows] == ["bq-page-4"]
    assert atlan.app.get_all(name="bq-page").workflows == []


def test_builder_load_update_changes_version_and_keeps_credential(atlan: AtlanClient) -> None:
    created = _bigquery(atlan, "bq-update")
    before = atlan.app.get(created.slug)
    guid = _args(atlan, created.slug)["credential_guid"]
    time.sleep(0.01)
    updated = BigqueryCrawler(atlan).load(created.slug).include({"p": ["finance"]}).update()
    assert updated.slug == created.slug
    assert updated.version != before.version

    after = atlan.app.get(created.slug)
    assert after.version == updated.version
    assert after.name == "bq-update"
    args = _args(atlan, created.slug)
    assert args["include_filter"] == '{"^p$": ["^finance$"]}'
    assert args["credential_guid"] == guid
    assert json.loads(args["connection"])["attributes"]["adminRoles"] == [ADMIN_GUID]


def test_raw_update_with_empty_credential_guid_keeps_the_vaulted_one(atlan: AtlanClient) -> None:
    created = (
        PostgresCrawler(atlan).basic(username="u", password="p", host="pg.example.com", port=5432, database="db")
        .connection(name="pg-raw").create(name="pg-raw")
    )
    guid = _args(atlan, created.slug)["credential_guid"]
    atlan.app.update(created.slug, inputs={"connection": connection("postgres", "pg-raw"), "credential_guid": "",
                                           "use_source_schema_filtering": "true"})
    args = _args(atlan, created.slug)
    assert args["credential_guid"] == guid
    assert args["use_source_schema_filtering"] == "true"
    assert args["include_filter"] == "{}"  # full replace: dropped inputs fall back to contract defaults


def test_runs_submit_poll_cancel(atlan: AtlanClient, sandbox: Sandbox) -> None:
    # Runs move on the sandbox's clock, and only when the test moves it: however slow the machine,
    # the run is still active when it is submitted again and cancelled.
    clock = sandbox.store.clock = ManualClock()
    pending_s, running_s = sandbox.config.run_pending_s, sandbox.config.run_running_s
    slug = _bigquery(atlan, "bq-runs").slug
    run = atlan.app.submit(slug)
    assert run.run_id and run.slug == slug and run.status == "Pending"

    with pytest.raises(AtlanError) as busy:
        atlan.app.submit(slug)
    assert getattr(busy.value.error_code, "http_error_code", None) == 500

    assert atlan.app.get_run(run.run_id).status == "Pending"
    clock.advance(pending_s + running_s / 2)  # midway: no rounding at a window's edge
    status = atlan.app.get_run(run.run_id)
    assert status.status == "Running" and not status.is_terminal
    clock.advance(running_s)
    status = atlan.app.get_run(run.run_id)
    assert status.is_terminal and status.is_success

    second = atlan.app.submit(slug)
    cancelled = atlan.app.cancel_run(second.run_id)
    assert cancelled.cancelled is True and cancelled.status == "Stopped"
    assert atlan.app.get_run(second.run_id).status == "Stopped"


def test_schedules_add_remove_and_hidden_from_get(atlan: AtlanClient, introspect: Introspection) -> None:
    slug = _bigquery(atlan, "bq-sched").slug
    first = atlan.app.add_schedule(slug, "0 9 * * *", "Asia/Kolkata")
    assert (first.cron, first.timezone) == ("0 9 * * *", "Asia/Kolkata")
    second = atlan.app.add_schedule(slug, "30 2 * * 1")
    assert second.timezone == "UTC"
    assert first.trigger_id != second.trigger_id
    assert atlan.app.get(slug).schedules is None  # attached schedules are not read back

    state = introspect.state()
    assert {s["trigger_id"] for s in state["schedules"].values() if s["slug"] == slug} == {first.trigger_id, second.trigger_id}

    removed = atlan.app.remove_schedule(slug, first.trigger_id)
    assert removed.trigger_id == first.trigger_id and removed.deleted is True
    assert set(introspect.state()["schedules"]) == {second.trigger_id}


def test_delete_archives(atlan: AtlanClient) -> None:
    slug = _bigquery(atlan, "bq-delete").slug
    deleted = atlan.app.delete(slug)
    assert deleted.slug == slug and deleted.archived is True
    assert atlan.app.get_all(name="bq-delete").workflows == []


def test_role_cache_resolves_admin(atlan: AtlanClient) -> None:
    assert atlan.role_cache.get_id_for_name("$admin") == ADMIN_GUID
    assert atlan.role_cache.get_name_for_id(ROLES[2]["id"]) == "$guest"
    assert atlan.role_cache.is_api_token_user() is True


def _credential(name: str, password: str = "pw-1") -> Credential:
    return Credential(name=name, auth_type="basic", connector_config_name="atlan-connectors-snowflake",
                      connector_type="jdbc", host="acme.snowflakecomputing.com", port=443, username="loader",
                      password=password, extras={"role": "LOADER", "warehouse": "WH"})


def test_credentials_lifecycle(atlan: AtlanClient, introspect: Introspection) -> None:
    created = atlan.credentials.creator(_credential("snowflake-prod"), test=True)
    assert created.id and created.name == "snowflake-prod"
    assert created.extras == {"role": "LOADER", "warehouse": "WH"}
    atlan.credentials.creator(_credential("snowflake-dev"), test=True)

    fetched = atlan.credentials.get(created.id)
    assert fetched.host == "acme.snowflakecomputing.com"
    assert "pw-1" not in fetched.json() and fetched.username == "loader"  # read back, for to_credential()

    listed = atlan.credentials.get_all(filter={"name": "snowflake-prod"})
    assert [r.id for r in listed.records] == [created.id]
    assert len(atlan.credentials.get_all(limit=1, offset=1).records) == 1

    result = atlan.credentials.test(_credential("snowflake-prod"))
    assert result.is_successful

    to_update = fetched.to_credential()
    to_update.username, to_update.password = "loader", "pw-2"
    to_update.host = "acme2.snowflakecomputing.com"
    updated = atlan.credentials.test_and_update(to_update)
    assert updated.host == "acme2.snowflakecomputing.com" and updated.version != fetched.version
    assert introspect.state()["credentials"][created.id]["secrets"]["password"] == "pw-2"

    atlan.credentials.purge_by_guid(created.id)
    with pytest.raises(NotFoundError):
        atlan.credentials.get(created.id)
    assert atlan.credentials.get_all(filter={"name": "snowflake-prod"}).records == []


def test_credentials_the_sandbox_is_told_are_bad(atlan: AtlanClient, introspect: Introspection) -> None:
    introspect.post("failing-credentials", {"matchers": [{"password": "wrong"}]})
    assert not atlan.credentials.test(_credential("x", password="wrong")).is_successful
    with pytest.raises(AtlanError) as failed:
        atlan.credentials.creator(_credential("x", password="wrong"), test=True)
    assert "credential test failed" in str(failed.value)
    bad = _credential("x", password="wrong")
    bad.id = "not-used"
    with pytest.raises(AtlanError) as refused:
        atlan.credentials.test_and_update(bad)
    assert "did not work" in str(refused.value)


def test_users_groups_and_tokens_through_the_sdk(atlan: AtlanClient) -> None:
    from reconciler.sandbox.catalogue import GROUPS, USERS

    assert atlan.user.get_current().username == "service-account-apikey-reconciler"
    assert atlan.user.get_by_username("asmith").id == USERS[1]["id"]
    assert atlan.user_cache.get_id_for_name("jdoe") == USERS[0]["id"]
    assert [g.name for g in atlan.group.get_by_name("Data Engineers")] == ["data_engineers"]
    assert atlan.group_cache.get_id_for_alias("Analysts") == GROUPS[1]["id"]
    with pytest.raises(ValueError, match="nobody"):
        atlan.user_cache.validate_names(["nobody"])  # not a user, nor an API token


def test_legacy_routes_the_sdk_calls_without_a_package_variant(sandbox: Sandbox, introspect: Introspection) -> None:
    # Driven by pyatlan 10 in test_sandbox_pyatlan_legacy.py; here, the routes themselves.
    def call(method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{sandbox.base_url}api/service/{path}",
                                headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10, **kwargs)

    miner = "atlan-snowflake-miner-1714638976"
    run = call("POST", "workflows/triggerAsOwner", json={"namespace": "default", "resourceKind": "WorkflowTemplate",
                                                          "resourceName": miner})
    assert run.status_code == 200 and run.json()["metadata"]["name"].startswith(miner)  # not the update route
    assert call("POST", f"workflows/{miner}/changeownership", json={"username": "asmith"}).status_code == 200
    assert call("POST", f"workflows/{miner}/changeownership", params={"username": "nobody"}).status_code == 400
    window = {"startDate": "2026-01-01T00:00:00Z", "endDate": "2026-01-02T00:00:00.000+05:30"}
    assert call("GET", "runs/cron/scheduleQueriesBetweenDuration", params=window).json() == []
    missing = call("GET", "runs/cron/scheduleQueriesBetweenDuration", params={"startDate": "2026-01-01"})
    assert missing.status_code == 400 and "endDate" in missing.json()["message"]
    assert call("GET", "runs/cron/missedScheduleQueriesBetweenDuration", params=window).json() == []
