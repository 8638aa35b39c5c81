"""Sandbox behaviours beyond plain conformance: reshaping on read, version-bound schedules,
persistence across restarts, thread safety, deterministic faults, search, auth and the
`reconciler sandbox serve` command as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler.client import ApiClient
from reconciler.errors import InvalidRequestError
from reconciler.sandbox import Sandbox, SandboxConfig
from reconciler.sandbox.routing import HttpError
from reconciler.sandbox.search import field_values, matches, search
from reconciler.sandbox.store import ManualClock, StateFileError
from tests.conftest import TOKEN, Introspection, connection, fast_config, raw_credential, read_lines_until


def inputs(connector: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"connection": connection(connector, name), "credential_guid": "", **extra}


def test_read_back_is_reshaped_and_echoed_runtime_keys_are_dropped(client: ApiClient, introspect: Introspection) -> None:
    created = client.create_app("snowflake-crawler", "sf", {
        **inputs("snowflake", "sf"), "credential": raw_credential("snowflake", "c"),
        "control_config": '{"flag": true}', "include_filter": '{"^DB$": ["^S$"]}', "connection_qualified_name": "default/snowflake/1717286400",
    })
    args = client.get_app(created.slug)["dag"]["extract"]["inputs"]["args"]
    assert args["control_config"] == {"flag": True}  # JSON string read back as an object
    assert args["include_filter"] == '{"^DB$": ["^S$"]}'  # the filter stays a string
    assert args["enable_lineage"] is True and args["account_usage_schema_name"] == "ACCOUNT_USAGE"  # defaults
    conn = json.loads(args["connection"])
    assert conn["attributes"]["defaultCredentialGuid"] == args["credential_guid"]
    assert "connection_qualified_name" not in args and "credential" not in args
    assert {"workflow_id", "user_id", "correlation_id"} <= set(args)

    # A client echoing the whole read-back (runtime keys included) gets them dropped, once it
    # re-encodes the string-typed fields that came back as objects (as the SDK does).
    echoed = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in args.items()}
    client.update_app(created.slug, echoed)
    stored = introspect.state()["apps"][created.slug]["inputs"]
    assert not {"workflow_id", "user_id", "correlation_id"} & set(stored)
    assert stored["credential_guid"] == args["credential_guid"]


def test_schedules_stay_bound_to_the_version_they_were_attached_to(client: ApiClient, introspect: Introspection) -> None:
    created = client.create_app("postgres-crawler", "pg", inputs("postgres", "pg"), schedule={"cron": "0 1 * * *"})
    time.sleep(0.001)
    updated = client.update_app(created.slug, inputs("postgres", "pg", temp_table_regex="x"))
    state = introspect.state()
    [trigger] = state["schedules"].values()
    assert trigger["version"] == created.version < updated["version"] == state["apps"][created.slug]["version"]
    assert trigger["timezone"] == "UTC"
    assert "schedules" not in client.get_app(created.slug)


def test_expose_schedules_switch(sandbox_factory: Callable[..., Sandbox]) -> None:
    sandbox = sandbox_factory(expose_schedules=True)
    with ApiClient(sandbox.base_url, TOKEN) as client:
        slug = client.create_app("postgres-crawler", "pg", inputs("postgres", "pg")).slug
        trigger = client.add_schedule(slug, "0 9 * * *", "Asia/Kolkata")["trigger_id"]
        assert client.get_app(slug)["schedules"] == [
            {"trigger_id": trigger, "cron": "0 9 * * *", "timezone": "Asia/Kolkata", "version": client.get_app(slug)["version"]}]
        assert [w["schedules"] for w in client.list_apps()][0][0]["trigger_id"] == trigger


def test_runs_progress_and_fail_at_the_configured_rate(sandbox_factory: Callable[..., Sandbox]) -> None:
    sandbox = sandbox_factory(run_failure_rate=1.0)
    clock = sandbox.store.clock = ManualClock()  # runs move only when the test says so
    pending_s, running_s = sandbox.config.run_pending_s, sandbox.config.run_running_s
    with ApiClient(sandbox.base_url, TOKEN) as client:
        created = client.create_app("postgres-crawler", "pg", inputs("postgres", "pg"), run=True)
        seen = [client.get_run(created.run_id)["status"]]
        for step in (pending_s + running_s / 2, running_s):  # to the middle of Running, then past it
            clock.advance(step)
            seen.append(client.get_run(created.run_id)["status"])
    assert seen == ["Pending", "Running", "Failed"]


def test_credential_reference_must_exist_and_defaults_do_not_need_sending(client: ApiClient) -> None:
    with pytest.raises(InvalidRequestError) as err:
        client.create_app("postgres-crawler", "pg", {**inputs("postgres", "pg"), "credential_guid": "no-such-guid"})
    assert [e.location for e in err.value.field_errors] == ["inputs.credential_guid"]
    with pytest.raises(InvalidRequestError) as err:
        client.create_app("postgres-crawler", "pg", {"connection": "{not json", "credential_guid": ""})
    assert [e.location for e in err.value.field_errors] == ["inputs.connection"]
    with pytest.raises(InvalidRequestError) as err:
        client.create_app("postgres-crawler", "pg", {"connection": connection("postgres", "pg")})
    assert [e.location for e in err.value.field_errors] == ["inputs.credential_guid"]
    agent = client.create_app("postgres-crawler", "pg-agent", {"connection": connection("postgres", "pg"),
                                                              "extraction_method": "agent", "agent_json": {"agent": "a1"}})
    assert agent.slug


@pytest.mark.parametrize("persist_interval", [0, 0.2])
def test_state_survives_a_restart(tmp_path: Path, persist_interval: float) -> None:
    state_file = tmp_path / "tenant.json"
    config = fast_config(state_file=str(state_file), persist_interval=persist_interval)
    with Sandbox(config).start() as first, ApiClient(first.base_url, TOKEN) as client:
        created = client.create_app("postgres-crawler", "pg", {**inputs("postgres", "pg"),
                                    "credential": raw_credential("postgres", "c", password="vaulted-pw")})
        trigger = client.add_schedule(created.slug, "0 9 * * *", "UTC")["trigger_id"]
        [template] = client.find_templates("atlan-snowflake-1714638001")
        template["metadata"]["annotations"]["orchestration.atlan.com/schedule"] = "0 5 * * *"
        client.update_template(template)
        before = client.get_app(created.slug)
    assert state_file.exists()
    with Sandbox(fast_config(state_file=str(state_file))).start() as second, ApiClient(second.base_url, TOKEN) as client:
        assert client.get_app(created.slug) == before
        state = Introspection(second.base_url, TOKEN).state()
        assert list(state["schedules"]) == [trigger]
        guid = before["dag"]["extract"]["inputs"]["args"]["credential_guid"]
        assert state["credentials"][guid]["secrets"]["password"] == "vaulted-pw"
        assert client.get_template_cron("atlan-snowflake-1714638001")["spec"]["schedule"] == "0 5 * * *"
        assert client.create_app("postgres-crawler", "pg", inputs("postgres", "pg")).adopted


def test_unreadable_state_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    state_file = tmp_path / "tenant.json"
    state_file.write_text("{ not json")
    with pytest.raises(StateFileError, match="move it aside"):
        Sandbox(fast_config(state_file=str(state_file)))
    assert state_file.read_text() == "{ not json"


def test_sixteen_concurrent_threads_lose_nothing(sandbox: Sandbox, introspect: Introspection) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with ApiClient(sandbox.base_url, TOKEN) as client:
                for i in range(5):
                    slug = client.create_app("postgres-crawler", f"pg-{n}-{i}", {
                        **inputs("postgres", f"pg-{n}-{i}"), "credential": raw_credential("postgres", f"c-{n}-{i}")}).slug
                    client.add_schedule(slug, "0 2 * * *", "UTC")
                    client.update_app(slug, inputs("postgres", f"pg-{n}-{i}", temp_table_regex=str(n)))
                    client.create_credential(raw_credential("snowflake", f"sf-{n}-{i}"), test=False)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    state = introspect.state()
    assert len(state["apps"]) == 80 and len(state["schedules"]) == 80 and len(state["credentials"]) == 160
    assert {a["inputs"]["temp_table_regex"] for a in state["apps"].values()} == {str(n) for n in range(16)}
    assert len({a["slug"] for a in state["apps"].values()}) == 80
    stats = introspect.stats()
    assert stats["requests"]["POST v1/app"] == 80 and stats["requests"]["PUT v1/app/{slug}"] == 80


def test_faults_are_deterministic_for_a_seed(sandbox_factory: Callable[..., Sandbox]) -> None:
    def fault_sequence() -> list[str]:
        sandbox = sandbox_factory(seed=42, fault_rate=0.5, fault_kinds=("502", "503", "504", "429"))
        outcomes = []
        for _ in range(40):
            answer = requests.get(f"{sandbox.base_url}api/service/v1/apps/postgres-crawler",
                                  headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
            outcomes.append(str(answer.status_code))
            if answer.status_code in (429, 503):
                assert answer.headers["Retry-After"] == "0" or int(answer.headers["Retry-After"]) >= 0
        return outcomes

    first, second = fault_sequence(), fault_sequence()
    assert first == second
    assert "200" in first and len(set(first)) >= 3


def test_drop_after_applies_the_change_and_the_create_retry_adopts_it(sandbox: Sandbox, introspect: Introspection,
                                                                       client: ApiClient) -> None:
    introspect.post("config", {"fault_rate": 1.0, "fault_kinds": ["drop-after"]})
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(f"{sandbox.base_url}api/service/v1/app", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5,
                      json={"app_id": "postgres-crawler", "name": "pg", "inputs": inputs("postgres", "pg"), "run": False})
    introspect.post("config", {"fault_rate": 0.0})
    assert client.create_app("postgres-crawler", "pg", inputs("postgres", "pg")).adopted
    assert [a["name"] for a in introspect.state()["apps"].values()] == ["pg"]


def test_auth_and_error_bodies(sandbox: Sandbox) -> None:
    url = f"{sandbox.base_url}api/service/v1/app"
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        answer = requests.get(url, headers=headers, timeout=5)
        assert answer.status_code == 401
        assert set(answer.json()) == {"code", "message"} and answer.json()["code"] == 401
    assert requests.get(f"{sandbox.base_url}_sandbox/state", timeout=5).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(f"{sandbox.base_url}api/service/v2/nothing", headers=auth, timeout=5).status_code == 404
    assert requests.patch(url, headers=auth, timeout=5).status_code == 405
    bad = requests.post(url, headers={**auth, "Content-Type": "application/json"}, data="{", timeout=5)
    assert bad.status_code == 400 and bad.json()["message"]


def test_introspection_config_is_validated(introspect: Introspection, sandbox: Sandbox) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    refused = requests.post(f"{sandbox.base_url}_sandbox/config", json={"fault_kinds": ["418"]}, headers=auth, timeout=5)
    assert refused.status_code == 400 and "unknown fault kind" in refused.json()["message"]
    assert introspect.get("config")["fault_kinds"] == ["429", "502", "503", "504", "drop"]
    refused = requests.post(f"{sandbox.base_url}_sandbox/config", json={"token": "x"}, headers=auth, timeout=5)
    assert refused.status_code == 400
    assert "token" not in introspect.get("config")


def test_legacy_create_and_run_vaults_the_payload(client: ApiClient, introspect: Introspection) -> None:
    body = {
        "metadata": {"name": "atlan-postgres-1795260536", "annotations": {"package.argoproj.io/name": "@atlan/postgres"}},
        "spec": {"templates": [{"name": "main", "dag": {"tasks": [{"name": "run", "arguments": {"parameters": [
            {"name": "credential-guid", "value": "{{credentialGuid}}"}]}}]}}]},
        "payload": [{"parameter": "credentialGuid", "type": "credential", "body": raw_credential("postgres", "p")}],
    }
    client.call("POST", "package-workflows", params={"submit": True}, body=body)
    [template] = client.find_templates("atlan-postgres-1795260536")
    guid = template["spec"]["templates"][0]["dag"]["tasks"][0]["arguments"]["parameters"][0]["value"]
    state = introspect.state()
    assert state["credentials"][guid]["secrets"]["password"] == "s3cret-pw"
    assert [r["template"] for r in state["workflow_runs"].values()] == ["atlan-postgres-1795260536"]


def test_search_subset() -> None:
    doc = {"metadata": {"name": "atlan-snowflake-1714638976", "creationTimestamp": "2024-05-02T08:36:16Z",
                        "labels": {"workflows.argoproj.io/phase": "Running", "a.b/c": "x"}},
           "spec": {"templates": [{"name": "main"}, {"name": "other"}]}}
    assert field_values(doc, "metadata.labels.workflows.argoproj.io/phase") == ["Running"]
    assert field_values(doc, "spec.templates.name") == ["main", "other"]
    assert matches({"term": {"metadata.labels.workflows.argoproj.io/phase.keyword": "Running"}}, "id", doc)
    assert matches({"regexp": {"metadata.name.keyword": "atlan[-]snowflake[-][0-9]{10}"}}, "id", doc)
    assert not matches({"regexp": {"metadata.name.keyword": "atlan[-]snowflake"}}, "id", doc)
    assert matches({"range": {"metadata.creationTimestamp": {"gte": "2024-01-01", "lt": "2025"}}}, "id", doc)
    assert matches({"bool": {"should": [{"term": {"_id": "no"}}, {"prefix": {"metadata.name": "atlan-"}}]}}, "id", doc)
    assert not matches({"bool": {"must_not": [{"exists": {"field": "metadata.labels.a.b/c"}}]}}, "id", doc)
    assert matches({"terms": {"spec.templates.name.keyword": ["x", "other"]}}, "id", doc)
    with pytest.raises(HttpError, match="unsupported query clause 'fuzzy'"):
        matches({"fuzzy": {"a": "b"}}, "id", doc)
    docs = [(str(i), {"n": i, "t": f"2024-0{i}-01"}) for i in range(1, 6)]
    page = search(docs, {"from": 1, "size": 2, "sort": [{"t": {"order": "desc"}}]}, "idx")
    assert [h["_id"] for h in page["hits"]["hits"]] == ["4", "3"] and page["hits"]["total"]["value"] == 5


def test_serve_command_prints_exports_and_persists(tmp_path: Path) -> None:
    state_file = tmp_path / "sb.json"
    command = [sys.executable, "-m", "reconciler", "sandbox", "serve", "--token", "cli-token", "--state-file", str(state_file)]

    def start() -> tuple[subprocess.Popen[str], str]:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        lines = [line.strip() for line in read_lines_until(proc, lambda seen: len(seen) >= 4, timeout=30)]
        assert lines[3] == "export ATLAN_API_KEY=cli-token"
        base = lines[2].removeprefix("export ATLAN_BASE_URL=")
        assert base.startswith("http://127.0.0.1:") and base.endswith("/")
        return proc, base

    proc, base = start()
    try:
        with ApiClient(base, "cli-token") as client:
            slug = client.create_app("postgres-crawler", "pg", inputs("postgres", "pg")).slug
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert slug in json.loads(state_file.read_text())["apps"]
    proc, base = start()
    try:
        with ApiClient(base, "cli-token") as client:
            assert client.get_app(slug)["name"] == "pg"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_serve_rejects_bad_options(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "reconciler", "sandbox", "serve", "--fault-kinds", "418",
                           "--state-file", str(tmp_path / "s.json")], capture_output=True, text=True, timeout=30)
    assert done.returncode == 64 and "unknown fault kind" in done.stderr
    done = subprocess.run([sys.executable, "-m", "reconciler", "sandbox", "serve", "--fault-rate", "2"],
                          capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert done.returncode == 64


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Sandbox(SandboxConfig(fault_rate=1.5))
