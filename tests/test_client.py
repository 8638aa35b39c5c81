"""Our API client against the sandbox over real HTTP: every endpoint, pagination, typed errors,
retries under injected faults (counted from the sandbox's introspection, not timed)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from reconciler.client import ApiClient, credential_test_passed
from reconciler.errors import (
    ApiConnectionError,
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    ServerError,
    UsageError,
)
from reconciler.sandbox import Sandbox
from reconciler.sandbox.catalogue import ROLES
from reconciler.transport import JitterRetry, join_url
from tests.conftest import TOKEN, Introspection, connection, raw_credential


def app_inputs(connector: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"connection": connection(connector, name), "credential_guid": "", **extra}


def wait_terminal(client: ApiClient, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    run = client.get_run(run_id)
    while run["status"] in ("Pending", "Running") and time.monotonic() < deadline:
        time.sleep(0.03)
        run = client.get_run(run_id)
    return run


def test_join_url_follows_the_sdk() -> None:
    assert join_url("https://t.atlan.com", "v1/app") == "https://t.atlan.com/api/service/v1/app"
    assert join_url("https://t.atlan.com/", "v1/app") == "https://t.atlan.com/api/service/v1/app"
    assert join_url("https://h/x/", "v1/app") == "https://h/x/api/service/v1/app"
    assert join_url("https://h/x", "v1/app") == "https://h/api/service/v1/app"


def test_bad_base_url_and_missing_key_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="not an http"):
        ApiClient("tenant.atlan.com", "k")
    with pytest.raises(UsageError, match="no API key"):
        ApiClient("https://t.atlan.com", "")


def test_app_lifecycle_every_endpoint(client: ApiClient, introspect: Introspection) -> None:
    assert client.describe_app("snowflake-crawler")["entrypoints"] == [{"name": "crawler"}]
    contract = client.get_input_contract("snowflake-crawler", "crawler")
    assert contract["properties"]["include_filter"]["type"] == "string"

    created = client.create_app(
        "snowflake-crawler", "sf-prod",
        {**app_inputs("snowflake", "production"), "credential": raw_credential("snowflake", "sf-cred")},
        entrypoint="crawler", schedule={"cron": "0 9 * * *", "timezone": "Asia/Kolkata"}, run=True,
    )
    assert not created.adopted and created.run_id and created.schedule_trigger_id
    live = client.get_app(created.slug)
    args = live["dag"]["extract"]["inputs"]["args"]
    assert args["credential_guid"] and "credential" not in args
    assert args["extract_strategy"] == "information-schema"  # contract default filled on read

    assert wait_terminal(client, created.run_id)["status"] == "Succeeded"
    updated = client.update_app(created.slug, app_inputs("snowflake", "production", enable_lineage=False))
    assert updated["version"] > live["version"]
    after = client.get_app(created.slug)["dag"]["extract"]["inputs"]["args"]
    assert after["enable_lineage"] is False and after["credential_guid"] == args["credential_guid"]

    trigger = client.add_schedule(created.slug, "@daily", None)
    assert trigger["timezone"] == "UTC"
    assert client.remove_schedule(created.slug, trigger["trigger_id"]) == {"trigger_id": trigger["trigger_id"], "deleted": True}
    schedules = introspect.state()["schedules"]
    assert list(schedules) == [created.schedule_trigger_id]

    run = client.submit_run(created.slug)
    assert run["status"] == "Pending"
    cancelled = client.cancel_run(run["run_id"])
    assert cancelled["cancelled"] is True and cancelled["status"] == "Stopped"
    assert client.cancel_run(run["run_id"])["cancelled"] is False  # already terminal

    assert client.delete_app(created.slug) == {"slug": created.slug, "archived": True}
    with pytest.raises(NotFoundError):
        client.get_app(created.slug)
    assert introspect.state()["schedules"] == {}


def test_create_adopts_the_existing_workflow_on_409(client: ApiClient, introspect: Introspection) -> None:
    first = client.create_app("postgres-crawler", "pg-prod", app_inputs("postgres", "pg"))
    second = client.create_app("postgres-crawler", "pg-prod", app_inputs("postgres", "pg"))
    assert second.adopted and second.slug == first.slug
    assert introspect.requests_to("POST v1/app") == 2


def test_create_refuses_to_guess_between_duplicates(client: ApiClient, introspect: Introspection) -> None:
    slugs = introspect.post("seed", {"apps": [
        {"name": "twin", "app_id": "postgres-crawler", "inputs": {}},
        {"name": "twin", "app_id": "postgres-crawler", "inputs": {}},
    ]})["slugs"]
    with pytest.raises(ConflictError) as conflict:
        client.create_app("postgres-crawler", "twin", app_inputs("postgres", "twin"))
    assert conflict.value.status == 409
    assert all(slug in str(conflict.value) for slug in slugs)
    assert conflict.value.hint


def test_cursor_pagination_over_many_pages(client: ApiClient, introspect: Introspection) -> None:
    for i in range(23):
        client.create_app("postgres-crawler", f"pg-{i:02d}", app_inputs("postgres", f"pg-{i}"))
    introspect.post("reset", {"state": False, "stats": True})
    names = [w["name"] for w in client.list_apps(page_size=4)]
    assert names == [f"pg-{i:02d}" for i in range(23)]
    assert introspect.requests_to("GET v1/app") == 6  # ceil(23 / 4) pages, nothing more
    assert [w["name"] for w in client.list_apps(name="pg-07")] == ["pg-07"]


def test_offset_pagination_of_credentials(client: ApiClient, introspect: Introspection) -> None:
    for i in range(11):
        client.create_credential(raw_credential("postgres", f"cred-{i:02d}"), test=False)
    introspect.post("reset", {"state": False, "stats": True})
    records = list(client.list_credentials(page_size=2))
    assert [r["name"] for r in records] == [f"cred-{i:02d}" for i in range(11)]
    assert introspect.requests_to("GET credentials") == 6
    assert [r["name"] for r in client.list_credentials({"name": "cred-05"})] == ["cred-05"]


def test_credentials_endpoints_never_return_secrets(client: ApiClient, introspect: Introspection) -> None:
    body = raw_credential("snowflake", "sf", password="pw-secret")
    assert credential_test_passed(client.test_credential(body))
    created = client.create_credential(body, test=True)
    guid = created["id"]
    fetched = client.get_credential(guid)
    for answer in (created, fetched):
        assert "password" not in answer and answer["username"] == "svc"  # the username is read back
        assert answer["extra"] == {"role": "LOADER"}  # the secret-looking extra key is vaulted
    updated = client.update_credential(guid, {**body, "host": "sf2.example.com", "password": "pw-rotated"})
    assert updated["host"] == "sf2.example.com" and updated["version"] == "1.0.1"
    assert introspect.state()["credentials"][guid]["secrets"]["password"] == "pw-rotated"
    client.archive_credential(guid)
    with pytest.raises(NotFoundError):
        client.get_credential(guid)

    introspect.post("failing-credentials", {"matchers": [{"host": "bad.example.com"}]})
    verdict = client.test_credential({**body, "host": "bad.example.com"})
    assert not credential_test_passed(verdict) and verdict["error"]
    with pytest.raises(InvalidRequestError, match="credential test failed"):
        client.create_credential({**body, "host": "bad.example.com"}, test=True)


def test_roles_and_whoami(client: ApiClient) -> None:
    assert [r["id"] for r in client.list_roles({"name": "$admin"})] == [ROLES[0]["id"]]
    assert {r["name"] for r in client.list_roles()} == {"$admin", "$member", "$guest"}
    [role] = client.whoami()["roles"]
    assert role["name"] == "$api-token-default-access"
    # A role of its own: not the $admin role's guid, and not one of the workspace roles.
    assert role["id"] not in {r["id"] for r in client.list_roles()}


def test_legacy_workflow_endpoints(client: ApiClient, introspect: Introspection) -> None:
    [template] = client.find_templates("atlan-snowflake-miner-1714638976")
    assert template["metadata"]["annotations"]["orchestration.atlan.com/schedule"] == "45 4 * * *"
    assert client.get_template_cron("atlan-snowflake-miner-1714638976")["spec"]["timezone"] == "Europe/Paris"
    assert client.find_templates("atlan-snowflake-miner") == []  # exact name only

    by_type = {"bool": {"filter": [{"nested": {"path": "metadata", "query": {"regexp": {
        "metadata.name.keyword": {"value": "atlan[-]snowflake[-]miner[-][0-9]{10}"}}}}}]}}
    assert [h["_id"] for h in client.search_templates(by_type)] == ["atlan-snowflake-miner-1714638976"]

    params = template["spec"]["templates"][0]["dag"]["tasks"][0]["arguments"]["parameters"]
    for p in params:
        if p["name"] == "enable-lineage":
            p["value"] = "true"
    annotations = template["metadata"]["annotations"]
    annotations["orchestration.atlan.com/schedule"] = "5 4 * * *"
    answer = client.update_template(template)
    assert answer["metadata"]["resourceVersion"] == "2"
    [stored] = client.find_templates("atlan-snowflake-miner-1714638976")
    stored_params = stored["spec"]["templates"][0]["dag"]["tasks"][0]["arguments"]["parameters"]
    assert {"name": "enable-lineage", "value": "true"} in stored_params
    assert client.get_template_cron("atlan-snowflake-miner-1714638976")["spec"]["schedule"] == "5 4 * * *"

    del annotations["orchestration.atlan.com/schedule"]
    client.update_template(stored | {"metadata": {**stored["metadata"], "annotations": annotations}})
    with pytest.raises(NotFoundError):
        client.get_template_cron("atlan-snowflake-miner-1714638976")

    run = client.rerun_template("atlan-snowflake-miner-1714638976")
    run_name = run["metadata"]["name"]
    assert run_name.startswith("atlan-snowflake-miner-1714638976-") and len(run_name.rsplit("-", 1)[1]) == 5
    of_template = {"bool": {"must": [{"nested": {"path": "spec", "query": {"term": {
        "spec.workflowTemplateRef.name.keyword": "atlan-snowflake-miner-1714638976"}}}}]}}
    assert [h["_id"] for h in client.search_runs(of_template)] == [run_name]
    stopped = client.stop_workflow_run(run_name)
    assert stopped["status"]["phase"] == "Failed"
    running = {"bool": {"filter": [{"term": {"status.phase.keyword": "Running"}}]}}
    assert list(client.search_runs(running)) == []

    client.archive_template("csa-lineage-builder-1716000000")
    assert client.find_templates("csa-lineage-builder-1716000000") == []


def test_typed_errors(sandbox: Sandbox, client: ApiClient) -> None:
    with ApiClient(sandbox.base_url, "wrong-token") as stranger, pytest.raises(AuthenticationError) as denied:
        stranger.describe_app("snowflake-crawler")
    assert denied.value.status == 401 and denied.value.hint and "wrong-token" not in str(denied.value)

    with pytest.raises(NotFoundError) as missing:
        client.get_run("no-such-run")
    assert missing.value.method == "GET" and missing.value.url.endswith("/api/service/v1/app/runs/no-such-run")
    assert "not found" in missing.value.server_message

    with pytest.raises(InvalidRequestError) as invalid:
        client.create_app("bigquery-crawler", "bq", app_inputs(
            "bigquery", "bq", include_filter={"^p$": []}, list_datasets_per_chunk="fifty", includ_filter="{}"))
    locations = {e.location for e in invalid.value.field_errors}
    assert locations == {"inputs.include_filter", "inputs.list_datasets_per_chunk", "inputs.includ_filter"}
    assert invalid.value.status == 400

    with pytest.raises(InvalidRequestError) as unknown_entrypoint:
        client.create_app("bigquery-crawler", "bq", app_inputs("bigquery", "bq"), entrypoint="miner")
    assert unknown_entrypoint.value.code == 1003

    slug = client.create_app("bigquery-crawler", "bq", app_inputs("bigquery", "bq")).slug
    with pytest.raises(InvalidRequestError, match="timezone must not be null"):
        client.call("POST", f"v1/app/{slug}/schedule", body={"cron": "0 9 * * *", "timezone": None})
    with pytest.raises(InvalidRequestError, match="five"):
        client.add_schedule(slug, "0 9 * *", "UTC")
    with pytest.raises(InvalidRequestError, match="unknown IANA timezone"):
        client.add_schedule(slug, "0 9 * * *", "Mars/Olympus")
    with pytest.raises(NotFoundError):
        client.remove_schedule(slug, "t-unknown")


def test_submit_is_not_retried_on_500(client: ApiClient, introspect: Introspection) -> None:
    slug = client.create_app("postgres-crawler", "pg-busy", app_inputs("postgres", "pg")).slug
    client.submit_run(slug)
    with pytest.raises(ServerError, match="already has an active run") as busy:
        client.submit_run(slug)
    # A 500 to a write leaves the client in doubt; only the caller can read this message.
    assert busy.value.outcome_unknown
    assert introspect.requests_to("POST v1/app/{slug}/submit") == 2
    assert client.retries.total == 0


def test_every_call_succeeds_when_30_percent_of_answers_say_nothing_was_done(
        sandbox_factory: Callable[..., Sandbox]) -> None:
    # 429 and 503 with Retry-After: the tenant did nothing, so every call is retried, writes too.
    sandbox = sandbox_factory(seed=11, fault_rate=0.3, fault_kinds=("429", "503"), retry_after_s=0)
    observer = Introspection(sandbox.base_url, TOKEN)
    with ApiClient(sandbox.base_url, TOKEN, max_retries=10, backoff_factor=0.002) as client:
        slugs = []
        for i in range(8):
            created = client.create_app("postgres-crawler", f"pg-{i}", {**app_inputs("postgres", f"pg-{i}"),
                                        "credential": raw_credential("postgres", f"c-{i}")})
            slugs.append(created.slug)
            client.update_app(created.slug, app_inputs("postgres", f"pg-{i}", temp_table_regex="^tmp_"))
            client.add_schedule(created.slug, "0 3 * * *", "UTC")
            client.get_app(created.slug)
        assert len(list(client.list_apps(page_size=3))) == 8
        guid = client.create_credential(raw_credential("snowflake", "sf"), test=True)["id"]
        client.update_credential(guid, raw_credential("snowflake", "sf", password="new"))
        assert len(list(client.list_credentials(page_size=3))) == 9
        run = client.submit_run(slugs[0])
        client.cancel_run(run["run_id"])
        client.rerun_template("atlan-snowflake-miner-1714638976")
        client.delete_app(slugs[-1])

        stats = observer.stats()
        assert stats["faults_total"] >= 10  # the faults really happened
        # Every injected fault was answered by exactly one retry, and nothing else was retried.
        assert client.retries.total == stats["faults_total"]
        assert client.retries.snapshot() == stats["faults"]

    state = observer.state()
    names = sorted(a["name"] for a in state["apps"].values())
    assert names == sorted(f"pg-{i}" for i in range(8))  # no duplicate from a retried POST
    assert len(state["schedules"]) == 7 and len(state["credentials"]) == 9


def test_idempotent_calls_succeed_under_30_percent_of_every_fault(sandbox_factory: Callable[..., Sandbox]) -> None:
    # Reads, PUT, DELETE and the POSTs marked idempotent are retried after any fault, including
    # a 500 and an answer lost after the tenant acted (drop-after).
    sandbox = sandbox_factory(seed=12, retry_after_s=0)
    observer = Introspection(sandbox.base_url, TOKEN)
    with ApiClient(sandbox.base_url, TOKEN, max_retries=10, backoff_factor=0.002) as client:
        slugs = [client.create_app("postgres-crawler", f"pg-{i}", app_inputs("postgres", f"pg-{i}")).slug
                 for i in range(4)]
        guid = client.create_credential(raw_credential("snowflake", "sf"), test=False)["id"]
        run_id = client.submit_run(slugs[0])["run_id"]
        run_name = client.rerun_template("atlan-snowflake-miner-1714638976")["metadata"]["name"]
        observer.post("config", {"fault_rate": 0.3, "fault_kinds": ["429", "500", "502", "503", "504", "drop",
                                                                     "drop-after"]})
        for round_ in range(3):
            for slug in slugs:
                client.get_app(slug)
                client.update_app(slug, app_inputs("postgres", slug, temp_table_regex=f"^tmp{round_}_"))
        assert len(list(client.list_apps(page_size=2))) == 4
        assert credential_test_passed(client.test_credential(raw_credential("snowflake", "sf")))
        client.update_credential(guid, raw_credential("snowflake", "sf", password="new"))
        client.cancel_run(run_id)
        [template] = client.find_templates("atlan-snowflake-miner-1714638976")
        client.update_template(template)
        client.stop_workflow_run(run_name)
        client.describe_app("bigquery-crawler")
        client.get_input_contract("bigquery-crawler")
        list(client.list_roles())
        client.delete_app(slugs[-1])
        client.archive_credential(guid)
        client.archive_template("csa-lineage-builder-1716000000")

        faults = observer.stats()["faults"]
        assert sum(faults.values()) >= 10 and faults.get("drop-after") and faults.get("500")
        # Every injected fault was answered by exactly one retry, and nothing else was retried.
        retries = client.retries.snapshot()
        assert retries.pop("read", 0) == faults.pop("drop", 0) + faults.pop("drop-after", 0)
        assert retries == faults
    state = observer.state()
    assert len(state["apps"]) == 4 and len(state["credentials"]) == 1


def test_retry_after_is_honoured_under_a_rate_limit(sandbox_factory: Callable[..., Sandbox]) -> None:
    sandbox = sandbox_factory(rate_limit=20, rate_burst=2)
    observer = Introspection(sandbox.base_url, TOKEN)
    with ApiClient(sandbox.base_url, TOKEN, backoff_factor=0.001) as client:
        for _ in range(8):
            client.describe_app("postgres-crawler")
        throttled = observer.stats()["faults"].get("rate-limit", 0)
        assert throttled >= 1
        assert client.retries.snapshot() == {"429": throttled}


def test_unreachable_tenant_is_a_connection_error() -> None:
    with ApiClient("http://127.0.0.1:9/", "k", max_retries=1, backoff_factor=0.001, connect_timeout=1) as client, \
            pytest.raises(ApiConnectionError) as err:
        client.describe_app("x")
    assert err.value.status is None and err.value.hint
    assert client.retries.snapshot() == {"connection": 1}


def test_backoff_is_full_jitter_and_retry_after_is_capped() -> None:
    retry = JitterRetry(total=5, backoff_factor=1, backoff_max=8, retry_after_max=3)
    assert retry.get_backoff_time() == 0  # no attempt yet
    for _ in range(4):
        retry = retry.increment(method="GET", url="/", error=ConnectionResetError())
    samples = [retry.get_backoff_time() for _ in range(200)]
    assert min(samples) >= 0 and max(samples) <= 8 and len(set(samples)) > 100
    assert retry.parse_retry_after("100") == 3


def test_debug_log_redacts_the_token(client: ApiClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="reconciler.http"):
        client.create_credential(raw_credential("postgres", "c", password="never-logged"), test=False)
    text = caplog.text
    assert "POST" in text and "Bearer ***" in text
    assert TOKEN not in text and "never-logged" not in text
