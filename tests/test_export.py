"""export against the sandbox over real HTTP: a tenant seeded through the official SDK exports
to manifests that plan as No changes; names carried twice are reported, not guessed; filters;
secret placeholders (and no secret anywhere); the state records an apply would write; a second
export changes nothing; export then apply creates nothing; differing files are never overwritten
unasked; App schedules only where the state file knows them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.client import ApiClient
from reconciler.export import escape_references, variable_name
from reconciler.sandbox import Sandbox
from reconciler.sandbox.catalogue import ROLES
from tests.conftest import TOKEN, Introspection, connection

ADMIN_GUID = ROLES[0]["id"]


def cli(sandbox: Sandbox, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess, against ``sandbox``, with no RECONCILER_* variable but ``env``'s."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILER_", "ATLAN_"))}
    full_env = {**base, "ATLAN_BASE_URL": sandbox.base_url, "ATLAN_API_KEY": TOKEN, **(env or {})}
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, timeout=180,
                          cwd=cwd, env=full_env, stdin=subprocess.DEVNULL)


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file export wrote (the lock folder aside), by path relative to ``folder``."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".reconciler-locks" not in p.parts}


def records(folder: Path) -> dict[str, dict[str, Any]]:
    """This project's records in the state file export wrote (one tenant)."""
    data = json.loads((folder / "reconciler.state.json").read_text())
    tenants = data["projects"]["."]["tenants"]
    assert len(tenants) == 1
    resources: dict[str, dict[str, Any]] = next(iter(tenants.values()))["resources"]
    return resources


def secret_variables(folder: Path) -> dict[str, str]:
    """A stand-in value for every ${env:…} the exported manifests take."""
    names = {m for p in (folder / "credentials").glob("*.yaml") for m in _references(p.read_text())}
    return {name: f"stand-in-{i}" for i, name in enumerate(sorted(names))}


def _references(text: str) -> list[str]:
    import re

    return re.findall(r"\$\{env:([A-Z0-9_]+)\}", text)


def credential(name: str, connector: str, password: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "connector": connector, "connectorConfigName": f"atlan-connectors-{connector}",
            "connectorType": connector, "authType": "basic", "host": f"{name}.example.com", "port": 443,
            "username": f"user-of-{name}", "password": password, "extra": extra}


def app_inputs(connector: str, conn_name: str, guid: str | None = None, **inputs: Any) -> dict[str, Any]:
    if guid is None:
        return {"connection": connection(connector, conn_name, adminRoles=[ADMIN_GUID]), "extraction_method": "agent",
                "agent_json": {"agent-name": f"{conn_name}-agent"}, **inputs}
    return {"connection": connection(connector, conn_name, adminRoles=[ADMIN_GUID]), "credential_guid": guid, **inputs}


def small_tenant(client: ApiClient) -> dict[str, str]:
    """Two credentials and three apps made through the reconciler's own client; returns the
    secret values the tenant holds (which no output may show)."""
    secrets = {"pg": "pg-secret-value-41", "sf": "sf-secret-value-42"}
    pg = client.create_credential(credential("dp-pg-cred", "postgres", secrets["pg"], database="orders"), test=False)["id"]
    sf = client.create_credential(credential("other-sf-cred", "snowflake", secrets["sf"], role="LOADER",
                                             private_key_password="pk-secret-value-43"), test=False)["id"]
    secrets["pk"] = "pk-secret-value-43"
    client.create_app("postgres-crawler", "dp-pg-crawler",
                      app_inputs("postgres", "orders", pg, include_filter='{"^orders$": ["^public$"]}',
                                 temp_table_regex="TMP_${SUFFIX}"))
    client.create_app("snowflake-crawler", "other-sf-crawler", app_inputs("snowflake", "warehouse", sf, exclude_views=True))
    client.create_app("postgres-crawler", "dp-pg-agent", app_inputs("postgres", "onprem", None))
    return secrets


# -- the round trip on a tenant made through the official SDK ---------------------------------------------


def seed_with_pyatlan(sandbox: Sandbox) -> list[str]:
    """23 apps of 5 app ids on 4 connectors (Snowflake, BigQuery, Postgres, MySQL), 6 credentials and 2 legacy
    workflows, made the way a user of the official SDK makes them. pyatlan 11.6 has no
    ``client.workflow`` (the legacy API left it), so the legacy templates are posted through its
    own transport as the 8.x ``client.workflow.run`` posted them (``workflows?submit=true``).
    Returns the secret values sent."""
    from pyatlan.client.atlan import AtlanClient
    from pyatlan.model.apps.atlan_mysql import AtlanMysql
    from pyatlan.model.apps.bigquery_crawler import BigqueryCrawler
    from pyatlan.model.apps.postgres_crawler import PostgresCrawler
    from pyatlan.model.apps.snowflake_crawler import SnowflakeCrawler
    from pyatlan.model.apps.snowflake_miner import SnowflakeMiner
    from pyatlan.model.credential import Credential
    from pyatlan.utils import API, EndPoint, HTTPMethod

    atlan = AtlanClient(base_url=sandbox.base_url, api_key=TOKEN)
    sent: list[str] = []

    def make_credential(name: str, connector: str, connector_type: str, **extras: Any) -> str:
        sent.extend([f"user-of-{name}", f"pw-of-{name}-s3cret"])
        made = atlan.credentials.creator(Credential(
            name=name, auth_type="basic", connector_config_name=f"atlan-connectors-{connector}",
            connector_type=connector_type, host=f"{name}.example.com", port=443, username=f"user-of-{name}",
            password=f"pw-of-{name}-s3cret", extras=extras), test=True)
        return str(made.id)

    guids = {
        "sf-prod": make_credential("sf-prod", "snowflake", "jdbc", role="LOADER", warehouse="WH"),
        "sf-dev": make_credential("sf-dev", "snowflake", "snowflake", role="DEV"),
        "bq-prod": make_credential("bq-prod", "bigquery", "bigquery", project_id="acme"),
        "pg-orders": make_credential("pg-orders", "postgres", "jdbc", database="orders"),
        "pg-events": make_credential("pg-events", "postgres", "postgres"),
        "my-shop": make_credential("my-shop", "mysql", "jdbc"),
    }
    for i in range(6):
        (SnowflakeCrawler(atlan).credential_guid(guids["sf-prod" if i % 2 else "sf-dev"])
         .connection(name=f"sf-conn-{i}", admin_roles=[ADMIN_GUID])
         .include_metadata(json.dumps({f"^DB{i}$": ["^PUBLIC$"], "^RAW_${ENV}$": []}))
         .exclude_regex_for_tables_views(f"TMP_${{RUN}}_{i}").exclude_views(i % 3 == 0).create(name=f"sf-crawler-{i}"))
    for i in range(4):
        (SnowflakeMiner(atlan).credential_guid(guids["sf-prod"]).connection(name=f"sf-miner-conn-{i}")
         .calculate_popularity(i % 2 == 0).popularity_window_days(30 + i).create(name=f"sf-miner-{i}"))
    for i in range(5):
        (BigqueryCrawler(atlan).credential_guid(guids["bq-prod"]).connection(name=f"bq-conn-{i}", admin_roles=[ADMIN_GUID])
         .include({"acme": [f"ds{i}"]}).import_tags(i % 2 == 0).create(name=f"bq-crawler-{i}"))
    for i in range(3):
        (PostgresCrawler(atlan).credential_guid(guids["pg-orders" if i % 2 else "pg-events"])
         .connection(name=f"pg-conn-{i}", admin_roles=[ADMIN_GUID])
         .include_metadata(json.dumps({"^orders$": ["^public$"]})).create(name=f"pg-crawler-{i}"))
    for i in range(3, 5):
        # Agent extraction through the SDK's raw create: its builder's agent() sends credential_guid
        # null, which the sandbox's contract refuses.
        atlan.app.create(app_id="postgres-crawler", name=f"pg-agent-{i}", run=False, inputs={
            "connection": connection("postgres", f"pg-conn-{i}", 1716000000 + i, adminRoles=[ADMIN_GUID]),
            "extraction_method": "agent", "agent_json": {"agent-name": f"agent-{i}"}, "use_source_schema_filtering": "true"})

    for i in range(3):
        (AtlanMysql(atlan).credential_guid(guids["my-shop"]).connection(name=f"mysql-conn-{i}", admin_roles=[ADMIN_GUID])
         .include_metadata({"shop": [f"sales_{i}"]}).exclude_regex_for_tables_views("^tmp_").create(name=f"mysql-crawler-{i}"))

    run = API("workflows?submit=true", HTTPMethod.POST, HTTPStatus.OK, endpoint=EndPoint.HERACLES)

    def legacy(name: str, parameters: list[tuple[str, str]], schedule: tuple[str, str] | None = None,
               payload: list[dict[str, Any]] | None = None) -> None:
        annotations = {"package.argoproj.io/name": "@atlan/" + name.split("-")[1], "orchestration.atlan.com/atlanName": name}
        if schedule:
            annotations |= {"orchestration.atlan.com/schedule": schedule[0], "orchestration.atlan.com/timezone": schedule[1]}
        task = {"name": "run", "arguments": {"parameters": [{"name": k, "value": v} for k, v in parameters]},
                "templateRef": {"name": name.rsplit("-", 1)[0], "template": "main", "clusterScope": True}}
        body: dict[str, Any] = {"metadata": {"name": name, "namespace": "default", "annotations": annotations},
                                "spec": {"entrypoint": "main", "templates": [{"name": "main", "dag": {"tasks": [task]}}]}}
        if payload:
            body["payload"] = payload
        atlan._call_api(run, request_obj=body)

    sent.extend(["legacy-user", "legacy-s3cret"])
    legacy("atlan-postgres-1716000001", [("credential-guid", "{{credentialGuid}}"),
                                         ("include-filter", '{"^orders$": ["^public$"]}')], ("0 3 * * *", "Asia/Kolkata"),
           [{"parameter": "credentialGuid", "type": "credential", "body": {
               "name": "legacy-pg", "host": "pg.example.com", "port": 5432, "authType": "basic", "username": "legacy-user",
               "password": "legacy-s3cret", "extra": {}, "connectorConfigName": "atlan-connectors-postgres"}}])
    legacy("atlan-dbt-1716000002", [("enable-lineage", "true")])
    return sent


def test_a_tenant_made_through_the_sdk_exports_to_manifests_that_plan_as_no_changes(
        sandbox: Sandbox, introspect: Introspection, tmp_path: Path) -> None:
    pytest.importorskip("pyatlan")
    sent = seed_with_pyatlan(sandbox)
    live = introspect.state()
    app_ids = {a["app_id"] for a in live["apps"].values()}
    connectors = {json.loads(a["inputs"]["connection"])["attributes"]["connectorName"] if isinstance(a["inputs"]["connection"], str)
                  else a["inputs"]["connection"]["attributes"]["connectorName"] for a in live["apps"].values()}
    assert len(live["apps"]) == 23 and len(app_ids) == 5 and connectors == {"snowflake", "bigquery", "postgres", "mysql"}

    done = cli(sandbox, "export", "--out", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    written = files_of(out)
    assert len([p for p in written if p.startswith("apps/")]) == 23
    assert len([p for p in written if p.startswith("credentials/")]) == 7  # 6, and the legacy template's payload
    assert len([p for p in written if p.startswith("workflows/")]) == 5  # 2, and the sandbox's 3 UI-made ones
    assert "reconciler.yaml" in written and "reconciler.state.json" in written
    assert "Exported 35 objects into out/: 23 apps, 7 credentials, 5 workflows." in done.stdout
    assert "reconciler plan out --detailed-exitcode" in done.stdout
    assert "Reading the tenant" in done.stderr  # progress goes to stderr

    crawler = yaml.safe_load(written["apps/sf-crawler-3.yaml"])["spec"]
    assert crawler["credentialRef"] == "sf-prod"  # by name, not guid
    assert crawler["connection"]["adminRoles"] == ["$admin"]  # by name, not guid
    assert crawler["inputs"] == {"temp_table_regex": "TMP_$${RUN}_3", "exclude_views": True,  # only what differs
                                 "include_filter": {"^DB3$": ["^PUBLIC$"], "^RAW_${ENV}$": []}}
    assert "schedules" not in crawler  # unknown: never guessed
    assert "entrypoint" not in crawler  # the app's default
    assert yaml.safe_load(written["apps/pg-agent-3.yaml"])["spec"]["inputs"] == {
        "extraction_method": "agent", "agent_json": {"agent-name": "agent-3"}, "use_source_schema_filtering": "true"}
    mysql = yaml.safe_load(written["apps/mysql-crawler-1.yaml"])["spec"]
    assert mysql["appId"] == "atlan-mysql" and mysql["credentialRef"] == "my-shop" and "entrypoint" not in mysql
    assert mysql["inputs"]["exclude_table_regex"] == "^tmp_"
    sf_prod = yaml.safe_load(written["credentials/sf-prod.yaml"])["spec"]
    assert sf_prod == {"connector": "snowflake", "authType": "basic", "connectorType": "jdbc",
                       "host": "sf-prod.example.com", "port": 443, "username": "${env:RECONCILER_SF_PROD_USERNAME}",
                       "password": "${env:RECONCILER_SF_PROD_PASSWORD}", "extra": {"role": "LOADER", "warehouse": "WH"}}
    workflow = yaml.safe_load(written["workflows/atlan-postgres-1716000001.yaml"])["spec"]
    assert workflow["schedule"] == {"cron": "0 3 * * *", "timezone": "Asia/Kolkata"}
    assert workflow["parameters"]["include-filter"] == '{"^orders$": ["^public$"]}'

    everything = done.stdout + done.stderr + "".join(b.decode() for b in written.values())
    assert not [s for s in sent if s in everything]

    without = cli(sandbox, "plan", "out", "--detailed-exitcode", "--allow-missing-secrets", cwd=tmp_path)
    assert without.returncode == 0, without.stdout + without.stderr
    assert "No changes." in without.stdout and "35 objects unchanged" in without.stdout
    with_secrets = cli(sandbox, "plan", "out", "--detailed-exitcode", cwd=tmp_path, env=secret_variables(out))
    assert with_secrets.returncode == 0, with_secrets.stdout + with_secrets.stderr
    assert "No changes." in with_secrets.stdout


# -- what export refuses to guess ------------------------------------------------------------------------


def test_a_name_carried_twice_is_reported_and_not_exported(sandbox: Sandbox, client: ApiClient, introspect: Introspection,
                                                           tmp_path: Path) -> None:
    small_tenant(client)
    slugs = introspect.post("seed", {"apps": [{"name": "twin", "app_id": "postgres-crawler", "inputs": {}},
                                              {"name": "twin", "app_id": "snowflake-crawler", "inputs": {}}]})["slugs"]
    guids = [client.create_credential(credential("shared", "postgres", "dup-secret"), test=False)["id"] for _ in range(2)]
    # Neither can be a manifest either: a name the manifest rules refuse, inputs the app's contract refuses.
    introspect.post("seed", {"apps": [{"name": "Made In The UI", "app_id": "postgres-crawler", "inputs": {}},
                                      {"name": "odd-inputs", "app_id": "postgres-crawler", "inputs": {"no_such_input": 1}}]})

    done = cli(sandbox, "export", "--out", "out", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and error[0].startswith("Error: 4 live object names were not exported: ")
    assert "App/twin" in error[0] and "Credential/shared" in error[0]
    assert all(identity in error[0] for identity in [*slugs, *guids])
    assert "App/Made In The UI (it cannot be written as a manifest: metadata.name" in error[0]
    assert "App/odd-inputs (the tenant's checks reject it: " in error[0] and "no_such_input" in error[0]
    assert "Hint: Objects that share a name cannot be told apart: rename or delete all but one" in done.stderr
    assert "Not exported:" in done.stdout
    out = tmp_path / "out"
    assert not (out / "apps" / "twin.yaml").exists() and not (out / "credentials" / "shared.yaml").exists()
    assert not (out / "apps" / "odd-inputs.yaml").exists()
    assert sorted(k for k in records(out) if not k.startswith("Workflow/")) == [
        "App/dp-pg-agent", "App/dp-pg-crawler", "App/other-sf-crawler", "Credential/dp-pg-cred", "Credential/other-sf-cred"]
    assert len([p for p in files_of(out) if p.startswith("workflows/")]) == 3  # the rest is exported


# -- filters ----------------------------------------------------------------------------------------------


def test_filters_choose_kinds_names_and_app_ids(sandbox: Sandbox, client: ApiClient, tmp_path: Path) -> None:
    small_tenant(client)

    apps = cli(sandbox, "export", "--out", "apps-only", "--kind", "App", "--app-id", "postgres-crawler", cwd=tmp_path)
    assert apps.returncode == 0, apps.stderr
    assert [p for p in files_of(tmp_path / "apps-only") if p.endswith(".yaml")] == [
        "apps/dp-pg-agent.yaml", "apps/dp-pg-crawler.yaml", "reconciler.yaml"]
    # Its credential is not exported with it: referred to by guid, which plan resolves on the tenant.
    spec = yaml.safe_load((tmp_path / "apps-only" / "apps" / "dp-pg-crawler.yaml").read_text())["spec"]
    assert len(spec["credentialRef"]) == 36
    assert sorted(records(tmp_path / "apps-only")) == ["App/dp-pg-agent", "App/dp-pg-crawler"]
    plan = cli(sandbox, "plan", "apps-only", "--detailed-exitcode", cwd=tmp_path)
    assert plan.returncode == 0 and "No changes." in plan.stdout, plan.stdout + plan.stderr

    named = cli(sandbox, "export", "--out", "named", "--name-prefix", "dp-", "--kind", "credential", cwd=tmp_path)
    assert named.returncode == 0, named.stderr
    assert [p for p in files_of(tmp_path / "named") if p.endswith(".yaml")] == ["credentials/dp-pg-cred.yaml",
                                                                                  "reconciler.yaml"]

    several = cli(sandbox, "export", "--out", "several", "--name-prefix", "dp-", "--name-prefix", "other-sf-c",
                  "--app-id", "snowflake-crawler", "--app-id", "no-such-app", cwd=tmp_path)
    assert several.returncode == 0, several.stderr
    assert [p for p in files_of(tmp_path / "several") if "/" in p and p.endswith(".yaml")] == [
        "apps/other-sf-crawler.yaml", "credentials/dp-pg-cred.yaml", "credentials/other-sf-cred.yaml"]
    assert "No app matched --app-id no-such-app." in several.stdout

    unknown = cli(sandbox, "export", "--out", "x", "--kind", "Connection", cwd=tmp_path)
    assert unknown.returncode == 64
    assert "Error: --kind 'Connection' is not a kind export writes" in unknown.stderr
    assert "App, Credential, Workflow" in unknown.stderr


# -- secrets ----------------------------------------------------------------------------------------------


def test_secrets_become_listed_placeholders_and_never_appear(sandbox: Sandbox, client: ApiClient,
                                                            tmp_path: Path) -> None:
    secrets = small_tenant(client)
    # Two names that make the same variable name: made unique.
    for name in ("a-b", "a_b"):
        client.create_credential(credential(name, "postgres", f"secret-of-{name}"), test=False)
        secrets[name] = f"secret-of-{name}"

    done = cli(sandbox, "export", "--out", "out", cwd=tmp_path, env={"RECONCILER_A_B_USERNAME": "set-but-unused"})
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    first = yaml.safe_load((out / "credentials" / "a-b.yaml").read_text())["spec"]
    second = yaml.safe_load((out / "credentials" / "a_b.yaml").read_text())["spec"]
    assert first["username"] == "${env:RECONCILER_A_B_USERNAME}"
    assert second["username"] == "${env:RECONCILER_A_B_USERNAME_2}"
    assert "private_key_password" not in json.dumps(first)  # a secret extra the API hides: never guessed
    listed = done.stdout[done.stdout.index("Secrets the manifests take"):]
    for variable in ["RECONCILER_A_B_USERNAME", "RECONCILER_A_B_USERNAME_2", "RECONCILER_DP_PG_CRED_PASSWORD",
                     "RECONCILER_OTHER_SF_CRED_USERNAME"]:
        assert variable in listed
    assert "RECONCILER_A_B_USERNAME   " in listed and "Credential/a-b username\n" in listed  # set: not flagged
    assert "Credential/a_b username  (not set)" in listed
    everything = done.stdout + done.stderr + "".join(b.decode() for b in files_of(out).values())
    assert not [value for value in secrets.values() if value in everything]
    state_text = (out / "reconciler.state.json").read_text()
    assert "${env" not in state_text and "set-but-unused" not in state_text and "secretFingerprint" not in state_text


# -- the records, and what comes after -----------------------------------------------------------------------


def test_records_are_the_ones_apply_writes_and_apply_after_export_creates_nothing(
        sandbox: Sandbox, client: ApiClient, introspect: Introspection, tmp_path: Path) -> None:
    small_tenant(client)
    done = cli(sandbox, "export", "--out", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    live = introspect.state()
    slugs = {a["name"]: slug for slug, a in live["apps"].items()}
    guids = {c["record"]["name"]: guid for guid, c in live["credentials"].items()}
    exported = records(out)
    assert exported["App/dp-pg-crawler"]["slug"] == slugs["dp-pg-crawler"]
    assert "schedules" not in exported["App/dp-pg-crawler"]  # unknown is not "none"
    assert exported["Credential/dp-pg-cred"]["guid"] == guids["dp-pg-cred"]
    assert exported["Workflow/atlan-snowflake-1714638001"]["template"] == "atlan-snowflake-1714638001"
    listed = cli(sandbox, "state", "list", "--project", "out", cwd=tmp_path)
    assert f"App/dp-pg-crawler  (slug {slugs['dp-pg-crawler']})" in listed.stdout, listed.stdout + listed.stderr

    introspect.post("reset", {"state": False, "stats": True})
    applied = cli(sandbox, "apply", "out", "--auto-approve", cwd=tmp_path, env=secret_variables(out))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    requests = introspect.stats()["requests"]
    writes = {route: n for route, n in requests.items() if not route.startswith("GET") and "indexsearch" not in route}
    # Nothing created, updated, scheduled or deleted; only the credentials, whose secrets apply records once.
    assert writes == {"POST credentials/test": 2, "POST credentials/{guid}": 2}, writes
    after = records(out)
    assert {k: {f: v for f, v in r.items() if f not in ("secretFingerprint", "applied")} for k, r in after.items()} == \
        {k: {f: v for f, v in r.items() if f != "applied"} for k, r in exported.items()}
    assert {k: r.get("applied", {}).get("fields") for k, r in after.items()} == \
        {k: r.get("applied", {}).get("fields") for k, r in exported.items()}
    again = cli(sandbox, "plan", "out", "--detailed-exitcode", cwd=tmp_path, env=secret_variables(out))
    assert again.returncode == 0 and "No changes." in again.stdout and "RC105" not in again.stdout + again.stderr


def test_a_second_export_into_the_same_folder_changes_nothing(sandbox: Sandbox, client: ApiClient, tmp_path: Path) -> None:
    small_tenant(client)
    first = cli(sandbox, "export", "--out", "out", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = files_of(tmp_path / "out")
    second = cli(sandbox, "export", "--out", "out", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert files_of(tmp_path / "out") == before
    assert "0 files written, 8 unchanged" in second.stdout
    assert "reconciler.yaml" not in second.stdout  # kept, not written again


def test_differing_files_are_never_overwritten_unasked(sandbox: Sandbox, client: ApiClient, tmp_path: Path) -> None:
    small_tenant(client)
    assert cli(sandbox, "export", "--out", "out", cwd=tmp_path).returncode == 0
    out = tmp_path / "out"
    edited = out / "apps" / "dp-pg-crawler.yaml"
    edited.write_text(edited.read_text().replace("orders", "sales"))
    (out / "apps" / "dp-pg-agent.yaml").unlink()
    state_before = (out / "reconciler.state.json").read_bytes()

    refused = cli(sandbox, "export", "--out", "out", cwd=tmp_path)
    assert refused.returncode == 1
    assert "Error: 1 manifest file in out differs from the tenant: apps/dp-pg-crawler.yaml; nothing was written" \
        in refused.stderr
    assert "--force" in refused.stderr and "empty folder" in refused.stderr
    assert "sales" in edited.read_text() and not (out / "apps" / "dp-pg-agent.yaml").exists()
    assert (out / "reconciler.state.json").read_bytes() == state_before

    forced = cli(sandbox, "export", "--out", "out", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "sales" not in edited.read_text() and (out / "apps" / "dp-pg-agent.yaml").exists()
    assert not [p for p in out.rglob("*.tmp")]  # atomic writes leave nothing behind


SCHEDULED = """apiVersion: reconciler/v1
kind: App
metadata: {name: dp-scheduled}
spec:
  appId: postgres-crawler
  connection: {name: scheduled-conn, adminRoles: ["$admin"]}
  inputs: {extraction_method: agent, agent_json: {agent-name: a}, include_filter: {"^x$": []}}
  schedules: [{cron: "0 9 * * *", timezone: Asia/Kolkata}, {cron: "@daily"}]
  lifecycle: {preventDestroy: true}
"""


def test_app_schedules_come_from_the_state_file_where_it_knows_them(sandbox: Sandbox, client: ApiClient,
                                                                     introspect: Introspection, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "reconciler.yaml").write_text("apiVersion: reconciler/v1\nkind: Project\nmetadata: {name: mine}\nspec: {}\n")
    (out / "old.yaml").write_text(SCHEDULED)
    assert cli(sandbox, "apply", "out", "--auto-approve", cwd=tmp_path).returncode == 0
    small_tenant(client)  # made outside reconciler: their schedules are unknown
    triggers = sorted(records(out)["App/dp-scheduled"]["schedules"], key=lambda s: s["trigger_id"])
    assert len(triggers) == 2

    # Declared already (in another file): left as it is, never declared twice.
    kept = cli(sandbox, "export", "--out", "out", cwd=tmp_path)
    assert kept.returncode == 0, kept.stderr
    assert "App/dp-scheduled: declared already in old.yaml; left as it is" in kept.stdout
    assert not (out / "apps" / "dp-scheduled.yaml").exists()
    assert "reconciler.yaml" not in kept.stdout  # the project's own is kept

    (out / "old.yaml").unlink()  # the manifest lost, its records kept
    done = cli(sandbox, "export", "--out", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    spec = yaml.safe_load((out / "apps" / "dp-scheduled.yaml").read_text())["spec"]
    assert sorted(spec["schedules"], key=lambda s: s["cron"]) == [{"cron": "0 0 * * *", "timezone": "UTC"},  # as recorded
                                                                 {"cron": "0 9 * * *", "timezone": "Asia/Kolkata"}]
    assert spec["lifecycle"] == {"preventDestroy": True}
    record = records(out)["App/dp-scheduled"]
    assert sorted(record["schedules"], key=lambda s: s["trigger_id"]) == triggers  # the same triggers, none added
    assert record["preventDestroy"] is True
    assert json.loads((out / "reconciler.state.json").read_text())["projects"]["."]["name"] == "mine"
    unknown = yaml.safe_load((out / "apps" / "dp-pg-crawler.yaml").read_text())["spec"]
    assert "schedules" not in unknown and "schedules" not in records(out)["App/dp-pg-crawler"]
    assert "Schedules of 3 apps are left out" in done.stdout

    introspect.post("reset", {"state": False, "stats": True})
    plan = cli(sandbox, "plan", "out", "--detailed-exitcode", "--allow-missing-secrets", cwd=tmp_path)
    assert plan.returncode == 0 and "No changes." in plan.stdout, plan.stdout + plan.stderr
    assert "RC108" not in plan.stdout + plan.stderr
    applied = cli(sandbox, "apply", "out", "--auto-approve", cwd=tmp_path, env=secret_variables(out))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert introspect.requests_to("POST v1/app/{slug}/schedule") == 0 and introspect.requests_to("POST v1/app") == 0
    assert len([s for s in introspect.state()["schedules"].values()]) == 2


def test_what_another_project_sharing_the_state_file_manages_is_left_to_it(sandbox: Sandbox, tmp_path: Path) -> None:
    project = "apiVersion: reconciler/v1\nkind: Project\nmetadata: {name: %s}\nspec: {stateFile: ../state.json}\n"
    for name in ("theirs", "mine"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "reconciler.yaml").write_text(project % name)
    (tmp_path / "theirs" / "app.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: App\nmetadata: {name: their-app}\nspec:\n  appId: postgres-crawler\n"
        "  connection: {name: theirs}\n  inputs: {extraction_method: agent, agent_json: {a: 1}}\n")
    assert cli(sandbox, "apply", "theirs", "--auto-approve", cwd=tmp_path).returncode == 0

    done = cli(sandbox, "export", "--out", "mine", "--kind", "App", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "App/their-app: another project sharing the state file manages it; left as it is" in done.stdout
    assert not (tmp_path / "mine" / "apps" / "their-app.yaml").exists()
    projects = json.loads((tmp_path / "state.json").read_text())["projects"]
    assert list(projects["theirs"]["tenants"].values())[0]["resources"].keys() == {"App/their-app"}
    assert "mine" not in projects  # nothing of its own to record


def test_a_folder_inside_a_project_is_exported_into_that_project(sandbox: Sandbox, client: ApiClient,
                                                                   tmp_path: Path) -> None:
    small_tenant(client)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "reconciler.yaml").write_text("apiVersion: reconciler/v1\nkind: Project\nmetadata: {name: repo}\nspec: {}\n")
    (repo / "credentials.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Credential\nmetadata: {name: dp-pg-cred}\nspec:\n  connector: postgres\n"
        "  authType: basic\n  host: dp-pg-cred.example.com\n  port: 443\n  username: ${env:PG_USER}\n"
        "  password: ${env:PG_PASSWORD}\n  extra: {database: orders}\n")

    done = cli(sandbox, "export", "--out", "repo/imported", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Credential/dp-pg-cred: declared already in ../credentials.yaml; left as it is" in done.stdout
    assert "reconciler plan repo --detailed-exitcode" in done.stdout and "git add repo &&" in done.stdout
    assert not (repo / "imported" / "reconciler.yaml").exists() and not (repo / "imported" / "reconciler.state.json").exists()
    spec = yaml.safe_load((repo / "imported" / "apps" / "dp-pg-crawler.yaml").read_text())["spec"]
    assert spec["credentialRef"] == "dp-pg-cred"  # declared in the project: by name
    recorded = json.loads((repo / "reconciler.state.json").read_text())["projects"]["."]
    assert recorded["name"] == "repo" and "Credential/dp-pg-cred" not in list(recorded["tenants"].values())[0]["resources"]
    plan = cli(sandbox, "plan", "repo", "--detailed-exitcode", "--allow-missing-secrets", cwd=tmp_path)
    assert plan.returncode == 0 and "No changes." in plan.stdout, plan.stdout + plan.stderr


def test_export_help_documents_every_option(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from reconciler.cli import cli as command

    shown = CliRunner().invoke(command, ["export", "--help"])
    assert shown.exit_code == 0
    for option in ("--out", "--kind", "--name-prefix", "--app-id", "--force", "--parallelism", "--lock-timeout",
                   "--base-url", "--api-key-env"):
        assert option in shown.output


# -- the pure helpers -----------------------------------------------------------------------------------------


def test_variable_names_are_upper_snake_unique_and_never_a_protected_one() -> None:
    taken: set[str] = set()
    assert variable_name("sf-prod", "password", taken) == "RECONCILER_SF_PROD_PASSWORD"
    assert variable_name("sf_prod", "password", taken) == "RECONCILER_SF_PROD_PASSWORD_2"
    assert variable_name("sf.prod", "password", taken) == "RECONCILER_SF_PROD_PASSWORD_3"
    assert variable_name("fingerprint", "key", set()) == "RECONCILER_FINGERPRINT_KEY_2"


def test_literal_references_are_escaped() -> None:
    assert escape_references({"a": ["x${y}", 1], "${k}": "$${z}"}) == {"a": ["x$${y}", 1], "${k}": "$$${z}"}
