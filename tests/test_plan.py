"""plan against the sandbox: objects made through the official SDK from the same intent as a
manifest plan as No changes; API calls do not grow with unchanged objects; the Plan round-trips;
the pure stages import no network or CLI code; exit codes through the real CLI."""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from reconciler.client import ApiClient
from reconciler.engine import make_plan
from reconciler.plan import Action, Plan
from reconciler.sandbox import Sandbox
from reconciler.sandbox.catalogue import ROLES
from tests.conftest import TOKEN, Introspection

ROOT = Path(__file__).resolve().parent.parent
NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.timezone.utc)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_objects_made_with_pyatlan_plan_as_no_changes(sandbox_factory: Callable[..., Sandbox], tmp_path: Path) -> None:
    pytest.importorskip("pyatlan")
    from pyatlan.client.atlan import AtlanClient
    from pyatlan.model.apps.snowflake_crawler import SnowflakeCrawler
    from pyatlan.model.credential import Credential

    sandbox = sandbox_factory(expose_schedules=True)
    atlan = AtlanClient(base_url=sandbox.base_url, api_key=TOKEN)
    cred = atlan.credentials.creator(Credential(
        name="sf-prod", auth_type="basic", connector_config_name="atlan-connectors-snowflake", connector_type="snowflake",
        host="acme.snowflakecomputing.com", port=443, username="loader", password="pw", extras={"role": "LOADER"}), test=True)
    created = (SnowflakeCrawler(atlan).credential_guid(cred.id)
               .connection(name="production-snowflake", admin_roles=[ROLES[0]["id"]])
               .include_metadata('{"^ANALYTICS$": ["^PUBLIC$"]}').import_tags(True)
               .custom_config('{"flag": true}').create(name="sf-crawler"))
    atlan.app.add_schedule(created.slug, "0 0 * * *", "Asia/Calcutta")
    template = requests.post(f"{sandbox.base_url}api/service/workflows/indexsearch", timeout=10,
                             headers={"Authorization": f"Bearer {TOKEN}"},
                             json={"query": {"term": {"metadata.name.keyword": "atlan-snowflake-miner-1714638976"}}}
                             ).json()["hits"]["hits"][0]["_source"]
    for p in template["spec"]["templates"][0]["dag"]["tasks"][0]["arguments"]["parameters"]:
        if p["name"] == "enable-lineage":
            p["value"] = "true"
    requests.post(f"{sandbox.base_url}api/service/workflows/atlan-snowflake-miner-1714638976", json=template,
                  headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).raise_for_status()

    write(tmp_path / "m" / "all.yaml", """
apiVersion: reconciler/v1
kind: Credential
metadata: {name: sf-prod}
spec:
  connector: snowflake
  authType: basic
  host: acme.snowflakecomputing.com
  port: 443
  username: ${env:SF_USER}
  password: ${env:SF_PASSWORD}
  extra: {role: LOADER}
---
apiVersion: reconciler/v1
kind: App
metadata: {name: sf-crawler}
spec:
  appId: snowflake-crawler
  credentialRef: sf-prod
  connection: {name: production-snowflake, adminRoles: ["$admin"]}
  inputs:
    include_filter: {"^ANALYTICS$": ["^PUBLIC$"]}
    enable_snowflake_tags: true
    control_config: {flag: true}
  schedules: [{cron: "@daily", timezone: Asia/Kolkata}]
---
apiVersion: reconciler/v1
kind: Workflow
metadata: {name: atlan-snowflake-miner-1714638976}
spec:
  parameters: {enable-lineage: true}
  schedule: {cron: "45 4 * * *", timezone: Europe/Paris}
""")
    with ApiClient(sandbox.base_url, TOKEN) as client:
        result = make_plan([str(tmp_path / "m")], client, api_key=TOKEN, env={"SF_USER": "loader", "SF_PASSWORD": "pw"}, now=NOW)
    plan = result.plan
    assert [c.action for c in plan.changes] == [Action.NOOP, Action.NOOP, Action.NOOP], [c.fields for c in plan.changes]
    assert not plan.has_changes
    assert [d.code for d in plan.diagnostics] == ["RC105"]  # secrets set outside reconciler: cannot be compared


def test_api_calls_do_not_grow_with_unchanged_objects(sandbox: Sandbox, introspect: Introspection, tmp_path: Path) -> None:
    apps = [{"name": f"app-{i:03d}", "app_id": "postgres-crawler",
             "inputs": {"connection": {"typeName": "Connection", "attributes": {"qualifiedName": f"default/postgres/{i}",
                        "connectorName": "postgres", "name": f"conn-{i}"}}, "extraction_method": "agent",
                        "agent_json": {"agent": "a"}}} for i in range(500)]
    introspect.post("seed", {"apps": apps})
    docs = [f"apiVersion: reconciler/v1\nkind: App\nmetadata: {{name: app-{i:03d}}}\nspec:\n  appId: postgres-crawler\n"
            f"  connection: {{name: conn-{i}}}\n  inputs: {{extraction_method: agent, agent_json: {{agent: a}}}}\n"
            for i in range(500)]
    write(tmp_path / "m" / "apps.yaml", "---\n".join(docs))
    introspect.post("reset", {"state": False, "stats": True})
    with ApiClient(sandbox.base_url, TOKEN) as client:
        plan = make_plan([str(tmp_path / "m")], client, api_key=TOKEN, env={}, now=NOW).plan
    assert len(plan.changes) == 500 and not plan.has_changes
    stats = introspect.stats()
    assert stats["requests"] == {
        "GET v1/app": 3,  # 500 apps in pages of 200
        "GET credentials": 1,
        "GET roles": 1,
        "GET v1/apps/{app_id}": 1,  # one describe and one contract per distinct app id
        "GET v1/apps/{app_id}/inputs": 1,
    }


def test_plan_round_trips_through_json(sandbox: Sandbox, tmp_path: Path) -> None:
    env = dict(line.removeprefix("export ").split("=", 1) for line in (ROOT / "specs/sandbox.env").read_text().splitlines()
               if line.startswith("export "))
    env = {k: v.strip("'") for k, v in env.items()}
    with ApiClient(sandbox.base_url, TOKEN) as client:
        plan = make_plan([str(ROOT / "specs")], client, api_key=TOKEN, env=env, now=NOW).plan
    assert plan.has_changes and plan.counts()["create"] == 5
    data = json.loads(json.dumps(plan.to_dict()))
    assert Plan.from_dict(data) == plan
    assert Plan.from_dict(data).to_dict() == plan.to_dict()
    with pytest.raises(ValueError, match="format version"):
        Plan.from_dict({**data, "format_version": 99})


PURE = ["diff", "plan", "render", "normalize", "model", "kinds/__init__", "outcomes", "defaults"]
FORBIDDEN = ("requests", "urllib3", "click", "reconciler.client", "reconciler.fetch", "reconciler.cli",
             "reconciler.sandbox", "reconciler.tenant", "reconciler.engine", "http", "socket")


def _runtime_imports(tree: ast.Module) -> list[str]:
    """Every module a file imports when it runs (imports under ``if TYPE_CHECKING:`` are for
    type checkers only)."""
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for child in node.body for n in ast.walk(child)}
    nodes = [n for n in ast.walk(tree) if id(n) not in skipped]
    imported = [n.module or "" for n in nodes if isinstance(n, ast.ImportFrom)]
    return imported + [a.name for n in nodes if isinstance(n, ast.Import) for a in n.names]


@pytest.mark.parametrize("module", PURE)
def test_pure_stages_import_no_network_or_cli_code(module: str) -> None:
    imported = _runtime_imports(ast.parse((ROOT / "reconciler" / f"{module}.py").read_text()))
    bad = [m for m in imported if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert bad == [], f"reconciler/{module}.py imports {bad}"
    deepdiff_users = [m for m in imported if m.startswith("deepdiff")]
    assert not deepdiff_users or module == "diff"


def test_pure_stages_load_no_network_code_at_run_time() -> None:
    """What the static scan cannot see: the modules they import in turn (the kinds registry loads
    the kind modules only when a stage asks for a kind). The standard library's http is left out:
    some versions of jsonschema load it themselves (urllib.request, for remote references)."""
    code = ("import sys; import reconciler.diff, reconciler.plan, reconciler.render, reconciler.normalize; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('requests', 'urllib3', 'click') "
            "or m in ('reconciler.client', 'reconciler.fetch', 'reconciler.engine', 'reconciler.apply')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env={**os.environ, **env})


def test_exit_codes_through_the_cli(sandbox: Sandbox, tmp_path: Path) -> None:
    env = {"ATLAN_BASE_URL": sandbox.base_url, "ATLAN_API_KEY": TOKEN, "U": "u", "P": "p"}
    manifests = write(tmp_path / "m" / "c.yaml", "apiVersion: reconciler/v1\nkind: Credential\nmetadata: {name: c1}\n"
                      "spec: {connector: postgres, authType: basic, username: '${env:U}', password: '${env:P}'}\n").parent
    changes = run_cli("plan", str(manifests), "--detailed-exitcode", env=env, cwd=tmp_path)
    assert changes.returncode == 2, changes.stderr
    assert "+ Credential/c1 (create: not on the tenant)" in changes.stdout
    assert changes.stdout.rstrip().endswith("Plan: 1 to create, 0 to update, 0 to delete.")
    assert run_cli("plan", str(manifests), env=env, cwd=tmp_path).returncode == 0  # changes, but no --detailed-exitcode

    with ApiClient(sandbox.base_url, TOKEN) as client:
        client.create_credential({"name": "c1", "connector": "postgres", "authType": "basic", "username": "u", "password": "p"})
    same = run_cli("plan", str(manifests), "--detailed-exitcode", "--out", str(tmp_path / "plan.json"), env=env, cwd=tmp_path)
    assert same.returncode == 0 and "No changes." in same.stdout
    assert json.loads((tmp_path / "plan.json").read_text())["summary"]["update"] == 0

    write(tmp_path / "bad" / "x.yaml", "apiVersion: reconciler/v1\nkind: Nope\n")
    assert run_cli("plan", str(tmp_path / "bad"), env=env, cwd=tmp_path).returncode == 1
    assert run_cli("plan", str(manifests), "--target", "Nope", env=env, cwd=tmp_path).returncode == 64
    assert run_cli("plan", env=env, cwd=tmp_path).returncode == 64

    summary = tmp_path / "summary.md"
    md = run_cli("plan", str(manifests), "--format", "markdown", env={**env, "GITHUB_STEP_SUMMARY": str(summary)}, cwd=tmp_path)
    assert md.stdout.startswith("<!-- reconciler-plan:part-1 -->\n### reconciler plan: no changes")
    assert summary.read_text().startswith("<!-- reconciler-plan:part-1 -->\n### reconciler plan")


def test_markdown_parts_and_outputs_for_a_pull_request_job(sandbox: Sandbox, tmp_path: Path) -> None:
    """What the plan workflow posts: DIR/part-N.md, each starting with its marker, for a plan, for
    refused manifests and for a tenant that cannot be read; never a stale part of an earlier run."""
    env = {"ATLAN_BASE_URL": sandbox.base_url, "ATLAN_API_KEY": TOKEN, "U": "u", "P": "p", "GITHUB_OUTPUT": str(tmp_path / "out")}
    manifests = write(tmp_path / "m" / "c.yaml", "apiVersion: reconciler/v1\nkind: Credential\nmetadata: {name: c1}\n"
                      "spec: {connector: postgres, authType: basic, username: '${env:U}', password: '${env:P}'}\n").parent
    parts = tmp_path / "parts"
    write(parts / "part-7.md", "a stale part of an earlier, longer plan")
    done = run_cli("plan", str(manifests), "--markdown-dir", str(parts), "--out", "plan.json", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in parts.iterdir()) == ["part-1.md"]
    assert (parts / "part-1.md").read_text().startswith("<!-- reconciler-plan:part-1 -->\n### reconciler plan: 1 to create")
    assert (tmp_path / "out").read_text().splitlines() == ["has_changes=true", "parts=1", "plan_path=plan.json"]

    write(manifests / "bad.yaml", "apiVersion: reconciler/v1\nkind: App\nmetadata: {name: x}\nspec: {appId: 7}\n")
    refused = run_cli("plan", str(manifests), "--markdown-dir", str(parts), env=env, cwd=tmp_path)
    assert refused.returncode == 1
    assert (parts / "part-1.md").read_text().startswith("<!-- reconciler-plan:part-1 -->\n### reconciler: the manifests have")
    (manifests / "bad.yaml").unlink()

    unreachable = run_cli("plan", str(manifests), "--markdown-dir", str(parts), env={**env, "ATLAN_API_KEY": ""}, cwd=tmp_path)
    assert unreachable.returncode == 64, unreachable.stderr
    text = (parts / "part-1.md").read_text()
    assert text.startswith("<!-- reconciler-plan:part-1 -->\n### reconciler plan failed\n\n**Error:** ") and "**Hint:**" in text


def test_an_empty_secret_variable_is_unset(sandbox: Sandbox, tmp_path: Path) -> None:
    """CI passes a repository secret it does not have as "": never sent as an empty password."""
    env = {"ATLAN_BASE_URL": sandbox.base_url, "ATLAN_API_KEY": TOKEN, "U": "u", "P": ""}
    manifests = write(tmp_path / "m" / "c.yaml", "apiVersion: reconciler/v1\nkind: Credential\nmetadata: {name: c1}\n"
                      "spec: {connector: postgres, authType: basic, username: '${env:U}', password: '${env:P}'}\n").parent
    refused = run_cli("apply", str(manifests), "--auto-approve", env=env, cwd=tmp_path)
    assert refused.returncode == 1 and "RC050 environment variable P is empty (needed by a secret field)" in refused.stderr
    assert run_cli("plan", str(manifests), "--allow-missing-secrets", env=env, cwd=tmp_path).returncode == 0


def test_validate_loads_no_network_or_diff_code() -> None:
    """What a pre-commit hook runs stays light: validation never needs the client or deepdiff."""
    code = ("import sys; from reconciler.validate import validate; "
            "validate(['specs'], env={}, allow_missing_secrets=True); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('requests', 'urllib3', 'deepdiff', 'pydantic') "
            "or m in ('reconciler.client', 'reconciler.fetch', 'reconciler.apply')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr
