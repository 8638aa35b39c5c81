"""The core invariant: after apply, plan shows no changes. On generated tenants (hypothesis) and
on an edit-apply-plan loop over every field the manifest schemas allow."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.client import ApiClient
from reconciler.engine import apply, make_plan
from reconciler.sandbox import Sandbox
from tests.conftest import TOKEN, Introspection

NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.timezone.utc)
CRONS = ["0 2 * * *", "@daily", "30 4 * * MON-FRI", "*/15 * * * *", "0 0 1 * *", "@hourly", "5 4 * * 0"]
ZONES = ["UTC", "Asia/Kolkata", "Asia/Calcutta", "Europe/Paris", "America/New_York", "Etc/UTC"]
SECRET_ENV = {"PW_0": "secret-zero", "PW_1": "secret-one", "PW_2": "secret-two", "USER": "loader"}
INPUTS = {
    "snowflake-crawler": st.fixed_dictionaries({}, optional={
        "include_filter": st.dictionaries(st.sampled_from(["^A$", "^B$", "^RAW$"]), st.lists(st.sampled_from(["^S$", "^T$"]), max_size=2), max_size=2),
        "exclude_views": st.booleans(), "enable_lineage": st.booleans(),
        "extract_strategy": st.sampled_from(["information-schema", "account-usage"]),
        "control_config": st.sampled_from(["", "{}", '{"flag": true}']), "temp_table_regex": st.sampled_from(["", "^tmp_"]),
    }),
    "bigquery-crawler": st.fixed_dictionaries({}, optional={
        "include_filter": st.dictionaries(st.sampled_from(["^p$", "^q$"]), st.lists(st.sampled_from(["^d$"]), max_size=1), max_size=2),
        "enable_nested_columns": st.booleans(), "list_datasets_per_chunk": st.integers(1, 500),
    }),
    "postgres-crawler": st.fixed_dictionaries({}, optional={
        "use_source_schema_filtering": st.sampled_from(["true", "false"]), "advanced_config": st.sampled_from(["default", "custom"]),
        "include_filter": st.just({"^db$": ["^public$"]}),
    }),
    "snowflake-miner": st.fixed_dictionaries({}, optional={
        "miner_start_time_epoch": st.integers(0, 1_800_000_000), "calculate_popularity": st.booleans(),
        "popularity_window_days": st.sampled_from([7, 30, 90]), "popularity_exclude_user_config": st.lists(st.sampled_from(["svc", "etl"]), unique=True),
    }),
}

schedule = st.fixed_dictionaries({"cron": st.sampled_from(CRONS)}, optional={"timezone": st.sampled_from(ZONES)})


@st.composite
def tenants(draw: Any) -> list[dict[str, Any]]:
    docs = []
    credentials = [f"cred-{i}" for i in range(draw(st.integers(0, 3)))]
    for i, name in enumerate(credentials):
        spec: dict[str, Any] = {"connector": draw(st.sampled_from(["snowflake", "postgres"])), "authType": "basic",
                                "username": "${env:USER}", "password": f"${{env:PW_{i}}}"}
        if draw(st.booleans()):
            spec["host"] = draw(st.sampled_from(["a.example.com", "b.example.com"]))
        if draw(st.booleans()):
            spec["extra"] = {"role": draw(st.sampled_from(["R1", "R2"]))}
        docs.append({"kind": "Credential", "metadata": {"name": name}, "spec": spec})
    for i in range(draw(st.integers(1, 4))):
        app_id = draw(st.sampled_from(sorted(INPUTS)))
        inputs = dict(draw(INPUTS[app_id]))
        spec = {"appId": app_id, "connection": {"name": f"conn-{i}"}, "inputs": inputs}
        if credentials and draw(st.booleans()):
            spec["credentialRef"] = draw(st.sampled_from(credentials))
        else:
            inputs.update({"extraction_method": "agent", "agent_json": {"agent": f"a{i}"}})
        if draw(st.booleans()):
            spec["connection"]["adminRoles"] = draw(st.lists(st.sampled_from(["$admin", "$member", "$guest"]), unique=True, min_size=1))
        if draw(st.booleans()):
            spec["schedules"] = draw(st.lists(schedule, max_size=3))
        docs.append({"kind": "App", "metadata": {"name": f"app-{i}"}, "spec": spec})
    if draw(st.booleans()):
        docs.append({"kind": "Workflow", "metadata": {"name": "atlan-snowflake-miner-1714638976"},
                     "spec": {"parameters": {"enable-lineage": draw(st.sampled_from(["true", "false"]))},
                              "schedule": draw(st.one_of(st.none(), schedule.map(lambda s: {"timezone": "UTC", **s})))}})
    return docs


def write(folder: Path, docs: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    body = [{"apiVersion": "reconciler/v1", **d} for d in docs]
    (folder / "all.yaml").write_text(yaml.safe_dump_all(body, sort_keys=False))


def converge(client: ApiClient, folder: Path, tenant: str, env: dict[str, str] | None = None, **options: Any) -> None:
    env = env or SECRET_ENV
    _, report = apply([str(folder)], client, api_key=TOKEN, tenant_id=tenant, env=env, **options)
    assert not report.failed, [(o.change.key, o.status, o.message) for o in report.outcomes]
    plan = make_plan([str(folder)], client, api_key=TOKEN, tenant_id=tenant, env=env, now=NOW).plan
    leftover = [(str(c.key), c.action.value, [f.to_dict() for f in c.fields]) for c in plan.changes if c.action.value != "no-op"]
    assert leftover == [], json.dumps(leftover, indent=1)
    assert [d.code for d in plan.diagnostics] == []


@pytest.mark.slow
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(docs=tenants())
def test_generated_tenants_converge(docs: list[dict[str, Any]], sandbox_factory: Callable[..., Sandbox], tmp_path_factory: Any) -> None:
    for exposed in (False, True):
        sandbox = sandbox_factory(expose_schedules=exposed)
        folder = tmp_path_factory.mktemp("gen")
        write(folder, docs)
        with ApiClient(sandbox.base_url, TOKEN, backoff_factor=0.01) as client:
            converge(client, folder, sandbox.base_url)
        state = Introspection(sandbox.base_url, TOKEN).state()
        declared = {d["metadata"]["name"]: d for d in docs if d["kind"] == "App"}
        assert sorted(a["name"] for a in state["apps"].values()) == sorted(declared)
        for record in state["apps"].values():
            attached = [s for s in state["schedules"].values() if s["slug"] == record["slug"]]
            assert len(attached) == len(declared[record["name"]]["spec"].get("schedules") or [])
            assert all(s["version"] == record["version"] for s in attached)
        sandbox.stop()


def test_every_field_edit_applies_and_converges(sandbox: Sandbox, introspect: Introspection, tmp_path: Path) -> None:
    """One tenant, edited field by field through everything the schemas allow; each edit applied
    and then planned as No changes."""
    docs: list[dict[str, Any]] = [
        {"kind": "Credential", "metadata": {"name": "c1"}, "spec": {"connector": "snowflake", "authType": "basic",
                                                                      "username": "${env:USER}", "password": "${env:PW_0}"}},
        {"kind": "Credential", "metadata": {"name": "c2"}, "spec": {"connector": "snowflake", "authType": "basic",
                                                                      "username": "${env:USER}", "password": "${env:PW_1}"}},
        {"kind": "App", "metadata": {"name": "app"}, "spec": {"appId": "snowflake-crawler", "credentialRef": "c1",
                                                              "connection": {"name": "prod"}, "inputs": {}}},
        {"kind": "Workflow", "metadata": {"name": "atlan-snowflake-miner-1714638976"}, "spec": {"parameters": {"enable-lineage": "true"}}},
    ]
    cred, app, workflow = docs[0]["spec"], docs[2]["spec"], docs[3]["spec"]
    env = dict(SECRET_ENV)
    edits: list[tuple[str, Callable[[], None]]] = [
        ("credential host", lambda: cred.update(host="h1.example.com")),
        ("credential port", lambda: cred.update(port=1443)),
        ("credential description", lambda: cred.update(description="prod loader")),
        ("credential connectorConfigName", lambda: cred.update(connectorConfigName="atlan-connectors-snowflake")),
        ("credential connectorType", lambda: cred.update(connectorType="jdbc")),
        ("credential authType", lambda: cred.update(authType="keypair")),
        ("credential extra", lambda: cred.update(extra={"role": "LOADER", "warehouse": "WH"})),
        ("credential secretExtra", lambda: cred.update(secretExtra={"private_key_password": "${env:PW_2}"})),
        ("credential password rotation", lambda: env.update(PW_0="rotated-secret")),
        ("credential username rotation", lambda: env.update(USER="loader2")),
        ("app entrypoint", lambda: app.update(entrypoint="crawler")),
        ("app credentialRef", lambda: app.update(credentialRef="c2")),
        ("app connection name", lambda: app["connection"].update(name="production")),
        ("app adminRoles", lambda: app["connection"].update(adminRoles=["$admin", "$member"])),
        ("app adminUsers", lambda: app["connection"].update(adminUsers=["jdoe"])),
        ("app adminGroups", lambda: app["connection"].update(adminGroups=["data-eng"])),
        ("app filter mapping", lambda: app["inputs"].update(include_filter={"^A$": ["^S$"]})),
        ("app filter as JSON string", lambda: app["inputs"].update(include_filter='{"^B$": ["^T$"]}')),
        ("app boolean input", lambda: app["inputs"].update(exclude_views=True)),
        ("app enum input", lambda: app["inputs"].update(extract_strategy="account-usage")),
        ("app JSON config as mapping", lambda: app["inputs"].update(control_config={"flag": True})),
        ("app input removed", lambda: app["inputs"].pop("exclude_views")),
        ("app schedules added", lambda: app.update(schedules=[{"cron": "0 2 * * *", "timezone": "Asia/Kolkata"}])),
        ("app schedule equivalent spelling", lambda: app.update(schedules=[{"cron": "0 2 * * *", "timezone": "Asia/Calcutta"}])),
        ("app second schedule", lambda: app["schedules"].append({"cron": "@weekly"})),
        ("app schedule cron change", lambda: app["schedules"][0].update(cron="30 3 * * *")),
        ("app schedule timezone change", lambda: app["schedules"][0].update(timezone="Europe/Paris")),
        ("app input change with schedules", lambda: app["inputs"].update(temp_table_regex="^tmp")),
        ("app schedules removed", lambda: app.update(schedules=[])),
        ("app run flags", lambda: app.update(run={"onCreate": True, "onUpdate": False})),
        ("app ignoreDifferences", lambda: app.update(ignoreDifferences=["inputs.preflight_check"])),
        ("app preventDestroy", lambda: app.update(lifecycle={"preventDestroy": True})),
        ("app metadata description", lambda: docs[2]["metadata"].update(description="the crawler", labels={"team": "data"})),
        ("workflow parameter change", lambda: workflow["parameters"].update({"enable-lineage": "false"})),
        ("workflow new parameter", lambda: workflow["parameters"].update({"custom-flag": True})),
        ("workflow schedule set", lambda: workflow.update(schedule={"cron": "5 4 * * *", "timezone": "Europe/Paris"})),
        ("workflow schedule change", lambda: workflow.update(schedule={"cron": "@daily", "timezone": "UTC"})),
        ("workflow schedule removed", lambda: workflow.update(schedule=None)),
        ("app appId (replace)", lambda: app.update(appId="snowflake-miner", entrypoint="miner", inputs={}, ignoreDifferences=[])),
    ]
    folder = tmp_path / "m"
    with ApiClient(sandbox.base_url, TOKEN, backoff_factor=0.01) as client:
        write(folder, docs)
        converge(client, folder, sandbox.base_url, env)
        for name, edit in edits:
            edit()
            write(folder, docs)
            try:
                converge(client, folder, sandbox.base_url, env, allow_replace=True)
            except AssertionError as exc:
                raise AssertionError(f"after edit {name!r}: {exc}") from None
    apps = [a for a in introspect.state()["apps"].values() if not a["archived"]]
    assert [(a["name"], a["app_id"]) for a in apps] == [("app", "snowflake-miner")]
