"""apply against the sandbox over real HTTP: convergence, partial failure, stale plans, pruning,
replacement, schedules bound to the latest version, runs, and the refusal to apply unasked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.sandbox import Sandbox
from tests.conftest import TOKEN, Introspection

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {"SNOWFLAKE_USER": "sandbox-loader", "SNOWFLAKE_PASSWORD": "sf-secret-value-1",
           "BIGQUERY_SERVICE_ACCOUNT_EMAIL": "bq@example.iam", "BIGQUERY_SERVICE_ACCOUNT_JSON": "bq-secret-json-2"}


def cli(sandbox: Sandbox, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "ATLAN_BASE_URL": sandbox.base_url, "ATLAN_API_KEY": TOKEN, **SECRETS, **(env or {})}
    full_env.pop("RECONCILER_FINGERPRINT_KEY", None)
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, timeout=180,
                          cwd=cwd, env=full_env, stdin=subprocess.DEVNULL)


def manifests(tmp: Path, text: str, name: str = "m") -> Path:
    folder = tmp / name
    folder.mkdir(exist_ok=True)
    (folder / "all.yaml").write_text(text)
    return folder


CRED = """apiVersion: reconciler/v1
kind: Credential
metadata: {name: %s}
spec:
  connector: postgres
  authType: basic
  host: %s
  username: ${env:SNOWFLAKE_USER}
  password: ${env:SNOWFLAKE_PASSWORD}
"""


def app(name: str, cred: str | None = "pg-cred", extra: str = "", app_id: str = "postgres-crawler", inputs: str = "{}") -> str:
    ref = f"  credentialRef: {cred}\n" if cred else ""
    return (f"apiVersion: reconciler/v1\nkind: App\nmetadata: {{name: {name}}}\nspec:\n  appId: {app_id}\n{ref}"
            f"  connection: {{name: {name}-conn, adminRoles: [\"$admin\"]}}\n  inputs: {inputs}\n{extra}")


def test_specs_converge(sandbox: Sandbox, introspect: Introspection, tmp_path: Path) -> None:
    work = tmp_path / "repo"
    shutil.copytree(ROOT / "specs", work / "specs")
    first = cli(sandbox, "apply", "specs", "--auto-approve", cwd=work)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "Apply complete: 5 created, 1 updated, 0 deleted, 1 run submitted, 0 failed, 0 skipped." in first.stdout
    again = cli(sandbox, "plan", "specs", "--detailed-exitcode", cwd=work)
    assert again.returncode == 0, again.stdout
    assert "No changes. The tenant matches the manifests." in again.stdout and "Warning" not in again.stdout
    state = introspect.state()
    assert sorted(a["name"] for a in state["apps"].values()) == sorted(
        ["dp-bigquery-analytics-crawler", "dp-postgres-orders-crawler", "dp-snowflake-prod-crawler"])
    assert len(state["schedules"]) == 4 and len(state["credentials"]) == 2
    assert len(state["runs"]) == 1  # run.onCreate of the BigQuery crawler only
    sf_guid = next(g for g, c in state["credentials"].items() if c["record"]["name"] == "dp-snowflake-prod")
    assert state["credentials"][sf_guid]["secrets"]["password"] == SECRETS["SNOWFLAKE_PASSWORD"]
    sf_app = next(a for a in state["apps"].values() if a["name"] == "dp-snowflake-prod-crawler")
    assert sf_app["inputs"]["connection"]["attributes"]["defaultCredentialGuid"] == sf_guid
    assert json.loads(sf_app["inputs"]["include_filter"]) == {"^ANALYTICS$": ["^PUBLIC$", "^MARTS$"], "^RAW$": ["^EVENTS$"]}
    recorded = json.loads((work / "specs" / "reconciler.state.json").read_text())
    assert "sf-secret-value-1" not in json.dumps(recorded)
    third = cli(sandbox, "apply", "specs", "--auto-approve", cwd=work)
    assert third.returncode == 0 and "0 created, 0 updated, 0 deleted" in third.stdout
    assert len(introspect.state()["runs"]) == 1  # no new run: nothing was created


def test_refuses_without_a_terminal_or_auto_approve(sandbox: Sandbox, introspect: Introspection, tmp_path: Path) -> None:
    folder = manifests(tmp_path, CRED % ("pg-cred", "db.example.com"))
    refused = cli(sandbox, "apply", str(folder), cwd=tmp_path)
    assert refused.returncode == 1 and "refusing to apply without --auto-approve" in refused.stderr
    assert introspect.state()["credentials"] == {}


def test_partial_failure_skips_dependents_only(sandbox: Sandbox, introspect: Introspection, tmp_path: Path) -> None:
    introspect.post("failing-credentials", {"matchers": [{"host": "bad.example.com", "_reason": "password authentication failed"}]})
    folder = manifests(tmp_path, "---\n".join([
        CRED % ("pg-cred", "bad.example.com"), CRED % ("ok-cred", "db.example.com"),
        app("uses-bad", "pg-cred"), app("uses-ok", "ok-cred"), app("agent-one", None, inputs="{extraction_method: agent, agent_json: {a: 1}}")]))
    done = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path)
    assert done.returncode == 1
    assert "✗ failed Credential/pg-cred: credential test failed: password authentication failed" in done.stdout
    assert "– skipped App/uses-bad: skipped: it depends on Credential/pg-cred, which did not apply" in done.stdout
    assert "✓ created App/uses-ok" in done.stdout and "✓ created App/agent-one" in done.stdout
    assert "Apply failed: 3 created, 0 updated, 0 deleted, 1 failed, 1 skipped." in done.stdout
    assert sorted(a["name"] for a in introspect.state()["apps"].values()) == ["agent-one", "uses-ok"]


def test_saved_plan_applies_and_a_stale_one_is_refused(sandbox: Sandbox, introspect: Introspection, tmp_path: Path) -> None:
    folder = manifests(tmp_path, "---\n".join([CRED % ("pg-cred", "db.example.com"), app("pg-app")]))
    assert cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path).returncode == 0
    (folder / "all.yaml").write_text((folder / "all.yaml").read_text().replace("inputs: {}", "inputs: {temp_table_regex: '^tmp'}"))
    plan_file = tmp_path / "plan.json"
    assert cli(sandbox, "plan", str(folder), "--out", str(plan_file), cwd=tmp_path).returncode == 0
    assert "sf-secret" not in plan_file.read_text() and "${env:SNOWFLAKE_PASSWORD}" in plan_file.read_text()

    # Someone edits the workflow in the UI after the plan was made.
    [slug] = [a["slug"] for a in introspect.state()["apps"].values()]
    from reconciler.client import ApiClient

    with ApiClient(sandbox.base_url, TOKEN) as client:
        live_args = client.get_app(slug)["dag"]["extract"]["inputs"]["args"]
        client.update_app(slug, {"connection": live_args["connection"], "credential_guid": "", "temp_table_regex": "ui-edit"})
    stale = cli(sandbox, "apply", str(plan_file), cwd=tmp_path)
    assert stale.returncode == 1
    assert "the saved plan is stale, nothing was applied: App/pg-app was changed on the tenant since the plan" in stale.stderr
    assert introspect.state()["apps"][slug]["inputs"]["temp_table_regex"] == "ui-edit"

    assert cli(sandbox, "plan", str(folder), "--out", str(plan_file), cwd=tmp_path).returncode == 0
    fresh = cli(sandbox, "apply", str(plan_file), cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert introspect.state()["apps"][slug]["inputs"]["temp_table_regex"] == "^tmp"
    assert cli(sandbox, "plan", str(folder), "--detailed-exitcode", cwd=tmp_path).returncode == 0


def test_prune_scope_prevent_destroy_and_max_deletes(sandbox: Sandbox, introspect: Introspection, tmp_path: Path) -> None:
    keep_all = "---\n".join([CRED % ("pg-cred", "db.example.com"), app("a1"), app("a2"),
                             app("guarded", extra="  lifecycle: {preventDestroy: true}\n")])
    folder = manifests(tmp_path, keep_all)
    assert cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path).returncode == 0
    introspect.post("seed", {"apps": [{"name": "not-ours", "app_id": "postgres-crawler", "inputs": {}}]})
    (folder / "all.yaml").write_text(CRED % ("pg-cred", "db.example.com"))

    unpruned = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path)
    # Pending deletes are not failures: a UI-created object in scope must not turn every CI apply red.
    assert unpruned.returncode == 0, unpruned.stdout + unpruned.stderr
    assert unpruned.stdout.count("– not applied App/") == 2
    assert "Plan: 0 to create, 0 to update, 0 to delete (2 delete candidates need --prune)." in unpruned.stdout
    assert "2 deletes not applied (needs --prune)" in unpruned.stdout
    assert "guarded is no longer declared, but preventDestroy was recorded" in unpruned.stdout
    assert "Not managed by these manifests, left alone: 1 App." in unpruned.stdout

    too_many = cli(sandbox, "apply", str(folder), "--auto-approve", "--prune", "--max-deletes", "1", cwd=tmp_path)
    assert too_many.returncode == 1 and "deletes 2 objects, more than --max-deletes 1; nothing was applied" in too_many.stderr
    assert len([a for a in introspect.state()["apps"].values() if not a["archived"]]) == 4

    pruned = cli(sandbox, "apply", str(folder), "--auto-approve", "--prune", cwd=tmp_path)
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    live = sorted(a["name"] for a in introspect.state()["apps"].values() if not a["archived"])
    assert live == ["guarded", "not-ours"]


def test_replace_is_refused_without_allow_replace(sandbox: Sandbox, introspect: Introspection, tmp_path: Path) -> None:
    agent = "{extraction_method: agent, agent_json: {a: 1}}"
    folder = manifests(tmp_path, app("moving", None, app_id="postgres-crawler", inputs=agent))
    assert cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path).returncode == 0
    (folder / "all.yaml").write_text(app("moving", None, app_id="bigquery-crawler", inputs=agent))
    refused = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path)
    assert refused.returncode == 1 and "re-run with --allow-replace" in refused.stdout
    assert [a["app_id"] for a in introspect.state()["apps"].values()] == ["postgres-crawler"]
    allowed = cli(sandbox, "apply", str(folder), "--auto-approve", "--allow-replace", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stdout
    apps = introspect.state()["apps"].values()
    assert sorted((a["app_id"], a["archived"]) for a in apps) == [("bigquery-crawler", False), ("postgres-crawler", True)]
    assert cli(sandbox, "plan", str(folder), "--detailed-exitcode", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("exposed", [False, True], ids=["schedules-hidden", "schedules-exposed"])
def test_schedules_follow_updates_to_the_latest_version(sandbox_factory: Callable[..., Sandbox], tmp_path: Path,
                                                        exposed: bool) -> None:
    sandbox = sandbox_factory(expose_schedules=exposed)
    observer = Introspection(sandbox.base_url, TOKEN)
    two = "  schedules:\n    - {cron: '0 2 * * *', timezone: Asia/Kolkata}\n    - {cron: '@weekly'}\n"
    folder = manifests(tmp_path, "---\n".join([CRED % ("pg-cred", "db.example.com"), app("sched", extra=two)]))
    assert cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path).returncode == 0
    (folder / "all.yaml").write_text((folder / "all.yaml").read_text().replace("inputs: {}", "inputs: {temp_table_regex: x}")
                                     .replace("@weekly", "0 5 * * 1"))
    done = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    state = observer.state()
    [app_record] = state["apps"].values()
    schedules = sorted((s["cron"], s["timezone"], s["version"]) for s in state["schedules"].values())
    assert schedules == [("0 2 * * *", "Asia/Kolkata", app_record["version"]), ("0 5 * * 1", "UTC", app_record["version"])]
    assert cli(sandbox, "plan", str(folder), "--detailed-exitcode", cwd=tmp_path).returncode == 0


def test_runs_wait_until_succeeded_or_failed(sandbox_factory: Callable[..., Sandbox], tmp_path: Path) -> None:
    for rate, status, code in ((0.0, "Succeeded", 0), (1.0, "Failed", 1)):
        sandbox = sandbox_factory(run_failure_rate=rate)
        folder = manifests(tmp_path, app("runner", None, inputs="{extraction_method: agent, agent_json: {a: 1}}",
                                         extra="  run: {onCreate: true, onUpdate: true}\n"), name=f"m{rate}")
        done = cli(sandbox, "apply", str(folder), "--auto-approve", "--wait", cwd=tmp_path)
        assert done.returncode == code, done.stdout + done.stderr
        assert f": {status}" in done.stderr  # progress lines on stderr
        assert "run submitted App/runner (run " in done.stdout and f": {status})" in done.stdout
        if code:
            assert "apply did not complete: run " in done.stderr and f"of App/runner {status}" in done.stderr


def test_a_run_in_flight_is_reported_not_duplicated(sandbox_factory: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = sandbox_factory(run_pending_s=30, run_running_s=30)
    observer = Introspection(sandbox.base_url, TOKEN)
    body = app("busy", None, inputs="{extraction_method: agent, agent_json: {a: 1}}", extra="  run: {onCreate: true, onUpdate: true}\n")
    folder = manifests(tmp_path, body)
    assert cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path).returncode == 0
    (folder / "all.yaml").write_text(body.replace("agent_json: {a: 1}", "agent_json: {a: 2}"))
    second = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path)
    assert second.returncode == 0 and "a run is already in flight" in second.stdout
    assert len(observer.state()["runs"]) == 1


def test_report_formats(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = manifests(tmp_path, CRED % ("pg-cred", "db.example.com"))
    summary = tmp_path / "summary.md"
    done = cli(sandbox, "apply", str(folder), "--auto-approve", "--format", "json", cwd=tmp_path,
               env={"GITHUB_STEP_SUMMARY": str(summary)})
    report = json.loads(done.stdout)
    assert report["failed"] is False and report["outcomes"][0] == {
        "action": "create", "kind": "Credential", "name": "pg-cred", "status": "applied", "message": "", "run_id": None,
        "run_status": None}
    assert report["requests"] > 0 and "retries" in report
    assert summary.read_text().startswith("### reconciler apply complete: 1 created")


def test_create_adopts_a_workflow_made_since_the_plan(sandbox: Sandbox, introspect: Introspection, tmp_path: Path) -> None:
    from reconciler.apply import Applier, Options
    from reconciler.client import ApiClient
    from reconciler.engine import make_plan
    from reconciler.state import fingerprint_key

    folder = manifests(tmp_path, app("raced", None, inputs="{extraction_method: agent, agent_json: {a: 1}, temp_table_regex: mine}"))
    with ApiClient(sandbox.base_url, TOKEN) as client:
        result = make_plan([str(folder)], client, api_key=TOKEN, env={}, tenant_id=sandbox.base_url)
        assert result.plan.counts()["create"] == 1
        # Someone (or a crashed earlier run) creates it between the plan and the apply.
        client.create_app("postgres-crawler", "raced", {"connection": {"typeName": "Connection", "attributes": {
            "qualifiedName": "default/postgres/1", "connectorName": "postgres", "name": "x"}},
            "extraction_method": "agent", "agent_json": {"a": 1}, "temp_table_regex": "theirs"})
        report = Applier(client, result.plan, result.live, result.state,
                         Options(env={}, fingerprint_key=fingerprint_key(TOKEN))).run()
        assert not report.failed
        again = make_plan([str(folder)], client, api_key=TOKEN, env={}, tenant_id=sandbox.base_url).plan
        assert not again.has_changes
    [record] = introspect.state()["apps"].values()
    assert record["inputs"]["temp_table_regex"] == "mine"


def test_workflow_update_leaves_the_rest_of_the_template_alone(sandbox: Sandbox, introspect: Introspection, tmp_path: Path) -> None:
    name = "atlan-snowflake-miner-1714638976"
    before = introspect.state()["templates"][name]["source"]
    folder = manifests(tmp_path, f"apiVersion: reconciler/v1\nkind: Workflow\nmetadata: {{name: {name}}}\n"
                                 "spec:\n  parameters: {enable-lineage: true, new-param: 7}\n"
                                 "  schedule: {cron: '5 4 * * *', timezone: Asia/Kolkata}\n")
    assert cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path).returncode == 0
    after = introspect.state()["templates"][name]["source"]
    params_before = before["spec"]["templates"][0]["dag"]["tasks"][0]["arguments"]["parameters"]
    params_after = after["spec"]["templates"][0]["dag"]["tasks"][0]["arguments"]["parameters"]
    expected = [{**p, "value": "true"} if p["name"] == "enable-lineage" else p for p in params_before]
    assert params_after == expected + [{"name": "new-param", "value": "7"}]
    annotations = dict(before["metadata"]["annotations"])
    annotations.update({"orchestration.atlan.com/schedule": "5 4 * * *", "orchestration.atlan.com/timezone": "Asia/Kolkata"})
    assert after["metadata"]["annotations"] == annotations
    assert after["metadata"]["labels"] == before["metadata"]["labels"]
    strip = lambda source: {k: v for k, v in source["spec"].items() if k != "templates"}  # noqa: E731
    assert strip(after) == strip(before)
    assert int(after["metadata"]["resourceVersion"]) == int(before["metadata"]["resourceVersion"]) + 1


@pytest.mark.parametrize("exposed", [False, True], ids=["schedules-hidden", "schedules-exposed"])
def test_a_lost_state_file_is_survivable(sandbox_factory: Callable[..., Sandbox], tmp_path: Path, exposed: bool) -> None:
    sandbox = sandbox_factory(expose_schedules=exposed)
    folder = manifests(tmp_path, "---\n".join([CRED % ("pg-cred", "db.example.com"),
                                                app("kept", extra="  schedules: [{cron: '0 3 * * *'}]\n")]))
    assert cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path).returncode == 0
    (folder / "reconciler.state.json").unlink()
    plan = cli(sandbox, "plan", str(folder), "--detailed-exitcode", cwd=tmp_path)
    assert "+ App/kept" not in plan.stdout and "+ Credential/pg-cred" not in plan.stdout  # re-discovered by name
    assert "RC105 Credential/pg-cred" in plan.stdout  # secret fingerprints went with the file
    if exposed:
        assert plan.returncode == 0 and "No changes." in plan.stdout
        return
    # Lost state is loud, not silent: the schedules cannot be verified, and apply attaches nothing.
    assert plan.returncode == 0 and "RC108 warning: App/kept: its schedules cannot be verified" in plan.stdout
    assert "--adopt-schedules" in plan.stdout
    assert len(introspect_of(sandbox).state()["schedules"]) == 1
    again = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(introspect_of(sandbox).state()["schedules"]) == 1  # not attached a second time
    record = json.loads((folder / "reconciler.state.json").read_text())
    [mine] = record["projects"].values()
    [tenant] = mine["tenants"].values()
    assert "schedules" not in tenant["resources"]["App/kept"]  # still unknown, so still not attached next time
    # The user says the tenant's triggers do not matter: attached once more and recorded; the earlier
    # trigger, which no state knows, stays on the tenant (that is what --adopt-schedules asserts is fine).
    adopted = cli(sandbox, "apply", str(folder), "--auto-approve", "--adopt-schedules", cwd=tmp_path)
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    assert len(introspect_of(sandbox).state()["schedules"]) == 2
    final = cli(sandbox, "plan", str(folder), "--detailed-exitcode", cwd=tmp_path)
    assert final.returncode == 0 and "No changes. The tenant matches the manifests." in final.stdout


def introspect_of(sandbox: Sandbox) -> Introspection:
    return Introspection(sandbox.base_url, TOKEN)


def test_runs_in_flight_can_be_cancelled(sandbox_factory: Callable[..., Sandbox], tmp_path: Path) -> None:
    """What Ctrl-C during --wait offers: cancel every run still in flight."""
    from reconciler.apply import cancel_runs, wait_for_runs
    from reconciler.client import ApiClient
    from reconciler.engine import apply
    from reconciler.outcomes import Outcome

    sandbox = sandbox_factory(run_pending_s=30, run_running_s=30)
    folder = manifests(tmp_path, app("long", None, inputs="{extraction_method: agent, agent_json: {a: 1}}",
                                     extra="  run: {onCreate: true}\n"))
    with ApiClient(sandbox.base_url, TOKEN) as client:
        _, report = apply([str(folder)], client, api_key=TOKEN, env={}, tenant_id=sandbox.base_url)
        seen: list[Outcome] = []
        wait_for_runs(client, report, timeout=0.2, progress=seen.append, interval=0.05)
        [run] = [o for o in report.outcomes if o.run_id]
        assert run.run_status == "Pending" and "still Pending after 0 s" in run.message and seen == [run]
        assert cancel_runs(client, report) == [run]
        assert run.run_status == "Stopped" and client.get_run(str(run.run_id))["status"] == "Stopped"
    assert report.failed  # a cancelled run is not a success


def test_an_app_saved_again_on_the_tenant_has_its_stale_schedules_planned(sandbox: Sandbox, introspect: Introspection,
                                                                           tmp_path: Path) -> None:
    """A schedule fires the version it was attached to: once the app is saved in the UI (same
    inputs, a new version), its schedules fire the old one. The plan says so; apply re-attaches
    them as that planned change, and submits no run for it."""
    from reconciler.client import ApiClient

    folder = manifests(tmp_path, app("resaved", None, inputs="{extraction_method: agent, agent_json: {a: 1}}",
                                     extra="  schedules: [{cron: '0 2 * * *', timezone: UTC}]\n  run: {onUpdate: true}\n"))
    assert cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path).returncode == 0
    [record] = introspect.state()["apps"].values()
    with ApiClient(sandbox.base_url, TOKEN) as client:  # the UI's save: same inputs, a new version
        args = dict(client.get_app(record["slug"])["dag"]["extract"]["inputs"]["args"])
        args["control_config"] = json.dumps(args["control_config"])  # read back as an object, sent as JSON text
        saved = client.update_app(record["slug"], args)
    old, new = record["version"], saved["version"]
    assert new != old and [s["version"] for s in introspect.state()["schedules"].values()] == [old]

    planned = cli(sandbox, "plan", str(folder), "--detailed-exitcode", cwd=tmp_path)
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert (f"~ App/resaved (update: its schedules fire version {old}: it was saved since they were attached; "
            f"apply attaches them to version {new})") in planned.stdout
    assert f"~ schedules.version: [{old}] → {new}" in planned.stdout and "run" not in planned.stdout.split("Plan:")[1]
    done = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    current = next(iter(introspect.state()["apps"].values()))["version"]
    assert [s["version"] for s in introspect.state()["schedules"].values()] == [current]
    assert not [r for r in introspect.state().get("runs", {}).values()]
    final = cli(sandbox, "plan", str(folder), "--detailed-exitcode", cwd=tmp_path)
    assert final.returncode == 0 and "No changes." in final.stdout
