"""Drift at its edges: fields Git starts comparing, hostile state files, secrets in the markdown
report, the schedules-only update path, objects that never existed or cannot be re-created, and
the files drift writes. Each was first written as an attack on the feature, then fixed."""

# ruff: noqa: F811  (the `atlan` fixture is imported from tests.test_drift and used as an argument)

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.sandbox import Sandbox
from tests.conftest import TOKEN, Introspection
from tests.test_apply import CRED, SECRETS, app, cli, manifests
from tests.test_drift import atlan, drift, objects, ui_save  # noqa: F401 - atlan is a fixture

# Each test runs whole commands against a sandbox; the dependency-floors run of .ci/run leaves them
# to the main run (they exercise the reconciler's own logic, which the floors do not change).
pytestmark = pytest.mark.slow

PROJECT = """apiVersion: reconciler/v1
kind: Project
metadata: {name: attack}
spec:
  ownership: {namePrefixes: ["dp-"]}
"""


def project(tmp: Path, text: str, name: str = "m") -> Path:
    folder = manifests(tmp, text, name)
    (folder / "reconciler.yaml").write_text(PROJECT)
    return folder


def apply_ok(sandbox: Sandbox, folder: Path, tmp: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = cli(sandbox, "apply", str(folder), "--auto-approve", *args, cwd=tmp, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def field_classes(report: dict[str, Any], key: str) -> dict[str, str]:
    return {f["path"]: f["class"] for f in objects(report)[key]["fields"]}


def state_of(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "reconciler.state.json").read_text())


def records(folder: Path) -> dict[str, Any]:
    [entry] = state_of(folder)["projects"].values()
    [tenant] = entry["tenants"].values()
    return tenant["resources"]


# -- 1. a field declared in Git for the first time is blamed on the tenant -----------------------------

def test_schedules_added_in_git_are_not_yet_applied(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = project(tmp_path, CRED % ("dp-pg", "pg.example.com") + "---\n" + app("dp-orders", "dp-pg"))
    apply_ok(sandbox, folder, tmp_path)
    assert drift(sandbox, folder, tmp_path)[0] == 0
    # A pull request adds a schedule; nobody touched the tenant.
    project(tmp_path, CRED % ("dp-pg", "pg.example.com") + "---\n"
            + app("dp-orders", "dp-pg", extra="  schedules: [{cron: '0 2 * * *', timezone: UTC}]\n"))
    code, report = drift(sandbox, folder, tmp_path)
    print(json.dumps(report, indent=1))
    assert code == 2
    assert field_classes(report, "App/dp-orders") == {"schedules": "not-yet-applied"}


def test_a_credential_field_declared_later_is_not_yet_applied(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = project(tmp_path, CRED % ("dp-pg", "pg.example.com"))
    apply_ok(sandbox, folder, tmp_path)
    project(tmp_path, (CRED % ("dp-pg", "pg.example.com")) + "  port: 6543\n")
    code, report = drift(sandbox, folder, tmp_path)
    assert field_classes(report, "Credential/dp-pg") == {"port": "not-yet-applied"}


TEMPLATE = "atlan-snowflake-miner-1714638976"


def workflow(params: str) -> str:
    return f"apiVersion: reconciler/v1\nkind: Workflow\nmetadata: {{name: {TEMPLATE}}}\nspec:\n  parameters: {params}\n"


def test_a_workflow_parameter_declared_later_is_not_yet_applied(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = project(tmp_path, workflow("{enable-lineage: true}"))
    apply_ok(sandbox, folder, tmp_path)
    assert drift(sandbox, folder, tmp_path)[0] == 0
    project(tmp_path, workflow("{enable-lineage: true, popularity-window-days: 60}"))
    code, report = drift(sandbox, folder, tmp_path)
    print(json.dumps(report["objects"], indent=1))
    assert field_classes(report, f"Workflow/{TEMPLATE}") == {"parameters.popularity-window-days": "not-yet-applied"}


def test_a_workflow_parameter_edited_on_the_tenant(sandbox: Sandbox, introspect: Introspection, tmp_path: Path) -> None:
    from reconciler.client import ApiClient

    folder = project(tmp_path, workflow("{enable-lineage: true}"))
    apply_ok(sandbox, folder, tmp_path)
    with ApiClient(sandbox.base_url, TOKEN) as api:
        [source] = [h["_source"] for h in api.search_templates({"match_all": {}}) if h["_source"]["metadata"]["name"] == TEMPLATE]
        for p in source["spec"]["templates"][0]["dag"]["tasks"][0]["arguments"]["parameters"]:
            if p["name"] == "enable-lineage":
                p["value"] = "false"
        api.update_template(source)
    code, report = drift(sandbox, folder, tmp_path)
    print(json.dumps(report["objects"], indent=1))
    assert field_classes(report, f"Workflow/{TEMPLATE}") == {"parameters.enable-lineage": "changed-on-tenant"}


# -- 2. hostile state files --------------------------------------------------------------------------------

def _poison(folder: Path, key: str, applied: Any) -> None:
    data = state_of(folder)
    [entry] = data["projects"].values()
    [tenant] = entry["tenants"].values()
    tenant["resources"][key]["applied"] = applied
    (folder / "reconciler.state.json").write_text(json.dumps(data))


@pytest.mark.parametrize("junk", ["junk", ["a", "b"], 7], ids=["string", "list", "int"])
def test_a_malformed_applied_record_never_crashes_apply(sandbox: Sandbox, introspect: Introspection, tmp_path: Path,
                                                       junk: Any) -> None:
    folder = project(tmp_path, CRED % ("dp-pg", "pg.example.com") + "---\n" + app("dp-orders", "dp-pg"))
    apply_ok(sandbox, folder, tmp_path)
    _poison(folder, "App/dp-orders", junk)
    # plan and drift take it (records_of skips what is not a mapping) ...
    assert cli(sandbox, "plan", str(folder), cwd=tmp_path).returncode == 0
    project(tmp_path, CRED % ("dp-pg", "pg.example.com") + "---\n"
            + app("dp-orders", "dp-pg", inputs="{temp_table_regex: '^tmp'}"))
    assert drift(sandbox, folder, tmp_path)[0] == 2
    # ... apply must too: a clear error or the junk replaced, never an internal error after the tenant changed.
    done = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path)
    [live] = introspect.state()["apps"].values()
    assert live["inputs"]["temp_table_regex"] == "^tmp"  # the update reached the tenant either way
    assert "internal error" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_deeply_nested_applied_record_is_a_clear_error(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = project(tmp_path, CRED % ("dp-pg", "pg.example.com") + "---\n" + app("dp-orders", "dp-pg"))
    apply_ok(sandbox, folder, tmp_path)
    text = (folder / "reconciler.state.json").read_text()
    deep = '{"fields": ' + '{"a": ' * 50000 + '1' + '}' * 50000 + '}'
    text = text.replace('"applied": {', '"applied": ' + deep + ', "was": {', 1)
    (folder / "reconciler.state.json").write_text(text)
    done = cli(sandbox, "drift", str(folder), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "internal error" not in done.stderr and "state file" in done.stderr, done.stderr


# -- 3. secrets ------------------------------------------------------------------------------------------

PIPE_SECRET = "pw|Zx8-secret-77"


def test_a_secret_with_a_pipe_never_reaches_the_markdown_report(sandbox: Sandbox, tmp_path: Path) -> None:
    env = {"SNOWFLAKE_PASSWORD": PIPE_SECRET}
    folder = project(tmp_path, CRED % ("dp-pg", "pg.example.com") + "---\n" + app("dp-orders", "dp-pg"))
    apply_ok(sandbox, folder, tmp_path, env=env)
    # Someone pastes the password into a non-secret input (the mistake masking exists for).
    project(tmp_path, CRED % ("dp-pg", "pg.example.com") + "---\n"
            + app("dp-orders", "dp-pg", inputs=f"{{temp_table_regex: '{PIPE_SECRET}'}}"))
    summary, report_file = tmp_path / "summary.md", tmp_path / "drift.md"
    done = cli(sandbox, "drift", str(folder), "--format", "markdown", "--report", str(report_file), cwd=tmp_path,
               env={**env, "GITHUB_STEP_SUMMARY": str(summary)})
    assert done.returncode == 2, done.stdout + done.stderr
    text = cli(sandbox, "drift", str(folder), cwd=tmp_path, env=env)
    assert PIPE_SECRET not in text.stdout and "(sensitive)" in text.stdout  # the text report masks it
    for where, out in (("stdout", done.stdout), ("report", report_file.read_text()), ("summary", summary.read_text())):
        assert "Zx8-secret-77" not in out, f"the secret reached the {where}: {out}"


def test_the_state_file_holds_no_unkeyed_hash_of_a_secret(sandbox: Sandbox, tmp_path: Path) -> None:
    from reconciler import drift as drift_module

    secret = SECRETS["SNOWFLAKE_PASSWORD"]
    # The password pasted into a non-secret input as well (masking hides it in every output).
    folder = project(tmp_path, CRED % ("dp-pg", "pg.example.com") + "---\n"
                     + app("dp-orders", "dp-pg", inputs=f"{{temp_table_regex: '{secret}'}}"))
    apply_ok(sandbox, folder, tmp_path)
    state = (folder / "reconciler.state.json").read_text()
    assert secret not in state
    # The digest is keyed like the secret fingerprints: the committed file cannot be used to test guesses.
    from reconciler.state import fingerprint_key

    assert drift_module._hash(secret, b"") not in state
    assert drift_module._hash(secret, fingerprint_key(TOKEN)) in state  # the same field, keyed


# -- 4. "missing" for what was never there -------------------------------------------------------------------

def test_a_create_that_never_reached_the_tenant_is_not_missing(sandbox: Sandbox, introspect: Introspection,
                                                              tmp_path: Path) -> None:
    from tests.test_safe_apply import apply_with_faults

    folder = project(tmp_path, CRED % ("dp-pg", "pg.example.com") + "---\n" + app("dp-orders", "dp-pg"))
    lost = apply_with_faults(sandbox, introspect, folder, tmp_path, "POST v1/app", "drop")
    assert lost.returncode == 1, lost.stdout + lost.stderr
    assert introspect.state()["apps"] == {}  # never created
    assert "App/dp-orders" in records(folder) and "applied" not in records(folder)["App/dp-orders"]  # write-ahead only
    code, report = drift(sandbox, folder, tmp_path)
    entry = objects(report)["App/dp-orders"]
    # Nobody deleted anything on the tenant: the create never happened.
    assert entry["classes"] != ["missing"] and entry["reason"] != "deleted on the tenant since the last apply", entry


# -- 5. the schedules-only update path ---------------------------------------------------------------------

def scheduled(cron: str) -> str:
    return (CRED % ("dp-pg", "pg.example.com") + "---\n"
            + app("dp-orders", "dp-pg", extra=f"  schedules: [{{cron: '{cron}', timezone: UTC}}]\n  run: {{onUpdate: true}}\n"))


def test_a_refused_schedules_only_update_owes_no_run(sandbox: Sandbox, introspect: Introspection, tmp_path: Path) -> None:
    from tests.test_safe_apply import apply_with_faults

    folder = project(tmp_path, scheduled("0 2 * * *"))
    apply_ok(sandbox, folder, tmp_path)
    project(tmp_path, scheduled("0 3 * * *"))
    refused = apply_with_faults(sandbox, introspect, folder, tmp_path, "POST v1/app/{slug}/schedule", "400")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert [s["cron"] for s in introspect.state()["schedules"].values()] == ["0 2 * * *"]  # the tenant did not change
    # The pull request is reverted: Git matches the tenant again, and nothing was changed on it.
    project(tmp_path, scheduled("0 2 * * *"))
    code, report = drift(sandbox, folder, tmp_path)
    assert code == 0, report["objects"]
    planned = cli(sandbox, "plan", str(folder), "--detailed-exitcode", cwd=tmp_path)
    assert planned.returncode == 0, planned.stdout


def test_a_schedules_only_update_with_run_on_update_converges(sandbox: Sandbox, introspect: Introspection,
                                                             tmp_path: Path) -> None:
    folder = project(tmp_path, scheduled("0 2 * * *"))
    apply_ok(sandbox, folder, tmp_path)
    [before] = [a["version"] for a in introspect.state()["apps"].values()]
    project(tmp_path, scheduled("0 3 * * *"))
    code, report = drift(sandbox, folder, tmp_path)
    assert code == 2 and field_classes(report, "App/dp-orders") == {"schedules": "not-yet-applied"}
    out = apply_ok(sandbox, folder, tmp_path)
    assert "run submitted" in out, out
    [after] = [a["version"] for a in introspect.state()["apps"].values()]
    assert after == before  # not saved again
    assert [s["cron"] for s in introspect.state()["schedules"].values()] == ["0 3 * * *"]
    assert drift(sandbox, folder, tmp_path)[0] == 0
    assert "runPending" not in records(folder)["App/dp-orders"]


# -- 6. what held or not: other kinds, ambiguity, exit codes ---------------------------------------------------

def test_a_workflow_deleted_on_the_tenant_is_missing(sandbox: Sandbox, tmp_path: Path) -> None:
    from reconciler.client import ApiClient

    folder = project(tmp_path, workflow("{enable-lineage: true}"))
    apply_ok(sandbox, folder, tmp_path)
    with ApiClient(sandbox.base_url, TOKEN) as api:
        api.archive_template(TEMPLATE)
    done = cli(sandbox, "drift", str(folder), "--format", "json", cwd=tmp_path)
    # Applied once, gone now: the drift class "missing" (exit 2, one issue), not an error that fails the job.
    assert done.returncode == 2, done.stdout + done.stderr
    assert objects(json.loads(done.stdout))[f"Workflow/{TEMPLATE}"]["classes"] == ["missing"]


def test_a_credential_host_edited_on_the_tenant(sandbox: Sandbox, tmp_path: Path) -> None:
    from reconciler.client import ApiClient

    folder = project(tmp_path, CRED % ("dp-pg", "pg.example.com"))
    apply_ok(sandbox, folder, tmp_path)
    with ApiClient(sandbox.base_url, TOKEN) as api:
        [cred] = [c for c in api.list_credentials() if c.get("name") == "dp-pg"]
        body = {k: v for k, v in api.get_credential(cred["id"]).items()}
        body["host"] = "other.example.com"
        api.update_credential(cred["id"], body)
    code, report = drift(sandbox, folder, tmp_path)
    assert code == 2 and field_classes(report, "Credential/dp-pg") == {"host": "changed-on-tenant"}


def test_an_ambiguous_name_in_scope_still_fails_and_outside_it_is_counted(sandbox: Sandbox, introspect: Introspection,
                                                                          tmp_path: Path) -> None:
    folder = project(tmp_path, CRED % ("dp-pg", "pg.example.com"))
    apply_ok(sandbox, folder, tmp_path)
    seed = [{"name": n, "app_id": "postgres-crawler", "inputs": {}} for n in ("dp-dup", "dp-dup", "theirs", "theirs")]
    introspect.post("seed", {"apps": seed})
    done = cli(sandbox, "drift", str(folder), "--format", "json", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert [d["code"] for d in report["diagnostics"] if d["severity"] == "error"] == ["RC101"]
    assert report["unmanaged"].get("App") == 2


def test_exit_codes(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = project(tmp_path, CRED % ("dp-pg", "pg.example.com"))
    apply_ok(sandbox, folder, tmp_path)
    for args in (("drift",), ("drift", str(folder), "--format", "xml"), ("drift", str(folder), "--parallelism", "0")):
        assert cli(sandbox, *args, cwd=tmp_path).returncode == 64, args
    down = cli(sandbox, "drift", str(folder), "--base-url", "http://127.0.0.1:9", cwd=tmp_path)
    assert down.returncode == 1 and "internal error" not in down.stderr, down.stderr
    missing = cli(sandbox, "drift", str(folder), "--allow-missing-secrets", cwd=tmp_path, env={"SNOWFLAKE_PASSWORD": ""})
    assert missing.returncode == 0, missing.stdout + missing.stderr
    refused = cli(sandbox, "drift", str(folder), cwd=tmp_path, env={"SNOWFLAKE_PASSWORD": ""})
    assert refused.returncode == 1, refused.stdout + refused.stderr


def test_saved_plan_target_and_a_no_op_apply_record_the_right_digest(sandbox: Sandbox, atlan: Any, tmp_path: Path) -> None:
    text = (CRED % ("dp-pg", "pg.example.com") + "---\n" + app("dp-orders", "dp-pg") + "---\n" + app("dp-other", "dp-pg"))
    folder = project(tmp_path, text)
    plan_file = tmp_path / "p.json"
    made = cli(sandbox, "plan", str(folder), "--out", str(plan_file), "--target", "Credential/dp-pg",
               "--target", "App/dp-orders", cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    done = cli(sandbox, "apply", str(plan_file), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "applied" in records(folder)["App/dp-orders"] and "App/dp-other" not in records(folder)
    apply_ok(sandbox, folder, tmp_path)
    first = (folder / "reconciler.state.json").read_text()
    apply_ok(sandbox, folder, tmp_path)
    assert (folder / "reconciler.state.json").read_text() == first  # a no-op apply writes nothing
    assert drift(sandbox, folder, tmp_path)[0] == 0
    # A default input edited in the UI after a create from a saved plan: changed on the tenant.
    ui_save(atlan, "dp-orders", use_source_schema_filtering="true")
    code, report = drift(sandbox, folder, tmp_path)
    assert field_classes(report, "App/dp-orders")["inputs.use_source_schema_filtering"] == "changed-on-tenant"


def test_a_state_file_from_before_drift_is_unknown_then_learns(sandbox: Sandbox, atlan: Any, tmp_path: Path) -> None:
    folder = project(tmp_path, CRED % ("dp-pg", "pg.example.com") + "---\n" + app("dp-orders", "dp-pg"))
    apply_ok(sandbox, folder, tmp_path)
    data = state_of(folder)
    for entry in data["projects"].values():
        for tenant in entry["tenants"].values():
            for record in tenant["resources"].values():
                record.pop("applied", None)
    (folder / "reconciler.state.json").write_text(json.dumps(data))
    ui_save(atlan, "dp-orders", temp_table_regex="ui")
    code, report = drift(sandbox, folder, tmp_path)
    assert field_classes(report, "App/dp-orders")["inputs.temp_table_regex"] == "unknown"
    apply_ok(sandbox, folder, tmp_path)
    assert "applied" in records(folder)["App/dp-orders"] and "applied" in records(folder)["Credential/dp-pg"]
    ui_save(atlan, "dp-orders", temp_table_regex="ui-again")
    code, report = drift(sandbox, folder, tmp_path)
    assert field_classes(report, "App/dp-orders")["inputs.temp_table_regex"] == "changed-on-tenant"


def test_an_ignored_field_compared_again_is_not_blamed_on_anyone(sandbox: Sandbox, atlan: Any, tmp_path: Path) -> None:
    ignored = "  ignoreDifferences: [inputs.temp_table_regex]\n"
    folder = project(tmp_path, CRED % ("dp-pg", "pg.example.com") + "---\n" + app("dp-orders", "dp-pg", extra=ignored))
    apply_ok(sandbox, folder, tmp_path)
    ui_save(atlan, "dp-orders", temp_table_regex="ui-edit")  # ignored: not compared
    assert drift(sandbox, folder, tmp_path)[0] == 0
    # The team stops ignoring it; Git's value is the one applied at the create (the contract default).
    project(tmp_path, CRED % ("dp-pg", "pg.example.com") + "---\n" + app("dp-orders", "dp-pg"))
    code, report = drift(sandbox, folder, tmp_path)
    assert code == 2
    # Not compared at the last apply: nobody can tell who moved, and the report does not guess.
    assert field_classes(report, "App/dp-orders")["inputs.temp_table_regex"] == "unknown"


def test_a_report_file_that_cannot_be_written_is_a_clear_error(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = project(tmp_path, CRED % ("dp-pg", "pg.example.com"))
    apply_ok(sandbox, folder, tmp_path)
    (tmp_path / "a-file").write_text("")
    done = cli(sandbox, "drift", str(folder), "--report", str(tmp_path / "a-file" / "r.md"), cwd=tmp_path)
    assert done.returncode == 1 and "internal error" not in done.stderr, done.stderr


def test_a_dotted_workflow_parameter_edited_on_the_tenant(sandbox: Sandbox, tmp_path: Path) -> None:
    from reconciler.client import ApiClient

    folder = project(tmp_path, workflow("{enable-lineage: true, 'x.y': '1'}"))
    apply_ok(sandbox, folder, tmp_path)
    assert drift(sandbox, folder, tmp_path)[0] == 0
    with ApiClient(sandbox.base_url, TOKEN) as api:
        [source] = [h["_source"] for h in api.search_templates({"match_all": {}}) if h["_source"]["metadata"]["name"] == TEMPLATE]
        for p in source["spec"]["templates"][0]["dag"]["tasks"][0]["arguments"]["parameters"]:
            if p["name"] == "x.y":
                p["value"] = "2"
        api.update_template(source)
    code, report = drift(sandbox, folder, tmp_path)
    assert code == 2 and field_classes(report, f"Workflow/{TEMPLATE}") == {"parameters.x.y": "changed-on-tenant"}


def test_the_report_says_credential_secrets_changed_in_atlan_cannot_be_seen(sandbox: Sandbox, tmp_path: Path) -> None:
    from reconciler.client import ApiClient

    folder = project(tmp_path, CRED % ("dp-pg", "pg.example.com"))
    apply_ok(sandbox, folder, tmp_path)
    with ApiClient(sandbox.base_url, TOKEN) as api:  # someone types a new password in Atlan
        [cred] = [c for c in api.list_credentials() if c.get("name") == "dp-pg"]
        api.update_credential(cred["id"], {**api.get_credential(cred["id"]), "password": "typed-in-the-ui"})
    code, report = drift(sandbox, folder, tmp_path)
    assert code == 0  # cannot be seen (write-only) ...
    assert any("Credential" in t or "secret" in t.lower() for t in report["cannot_see"]), report["cannot_see"]  # ... so say so


def test_a_replace_refused_then_allowed(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = project(tmp_path, CRED % ("dp-pg", "pg.example.com") + "---\n" + app("dp-orders", "dp-pg"))
    apply_ok(sandbox, folder, tmp_path)
    project(tmp_path, CRED % ("dp-pg", "pg.example.com") + "---\n"
            + app("dp-orders", "dp-pg", app_id="snowflake-crawler"))
    code, report = drift(sandbox, folder, tmp_path)
    entry = objects(report)["App/dp-orders"]
    assert code == 2 and entry["action"] == "replace" and entry["classes"] == ["not-yet-applied"], entry
    refused = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path)
    assert refused.returncode == 1
    assert objects(drift(sandbox, folder, tmp_path)[1])["App/dp-orders"]["classes"] == ["not-yet-applied"]
    apply_ok(sandbox, folder, tmp_path, "--allow-replace")
    assert drift(sandbox, folder, tmp_path)[0] == 0
