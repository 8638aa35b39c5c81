"""`reconciler drift`: who moved since the last apply, each scenario made on the tenant through the
official SDK (pyatlan) the way a person or another tool would, then checked over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.sandbox import Sandbox
from tests.conftest import TOKEN, Introspection
from tests.test_apply import CRED, SECRETS, app, cli

pyatlan = pytest.importorskip("pyatlan")
from pyatlan.client.atlan import AtlanClient  # noqa: E402
from pyatlan.model.apps.postgres_crawler import PostgresCrawler  # noqa: E402

PROJECT = """apiVersion: reconciler/v1
kind: Project
metadata: {name: drift}
spec:
  ownership: {namePrefixes: ["dp-"]}
"""
SCHEDULED = "  schedules: [{cron: '0 2 * * *', timezone: UTC}]\n"


def project(tmp: Path, include: str = "{public: [orders]}", name: str = "m") -> Path:
    folder = tmp / name
    folder.mkdir(exist_ok=True)
    (folder / "reconciler.yaml").write_text(PROJECT)
    (folder / "all.yaml").write_text(
        CRED % ("dp-pg", "pg.example.com") + "---\n"
        + app("dp-orders", "dp-pg", inputs=f"{{include_filter: {include}}}", extra=SCHEDULED))
    return folder


@pytest.fixture
def atlan(sandbox: Sandbox) -> Iterator[AtlanClient]:
    yield AtlanClient(base_url=sandbox.base_url, api_key=TOKEN)


@pytest.fixture
def applied(sandbox: Sandbox, tmp_path: Path) -> Path:
    folder = project(tmp_path)
    done = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def slug_of(atlan: AtlanClient, name: str) -> str:
    [found] = [w for w in atlan.app.get_all(name=name).workflows if w.name == name]
    return str(found.slug)


def ui_save(atlan: AtlanClient, name: str, **changes: Any) -> tuple[str, str]:
    """What the UI does on save: the whole inputs sent back (a full replace), some of them edited.
    Returns the version before and after."""
    slug = slug_of(atlan, name)
    before = atlan.app.get(slug)
    args = dict(before.dict()["dag"]["extract"]["inputs"]["args"])
    args = {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in args.items()}  # read as objects, sent as text
    args.update(changes)
    after = atlan.app.update(slug, inputs=args)
    assert after.version != before.version
    return str(before.version), str(after.version)


def drift(sandbox: Sandbox, folder: Path, tmp: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """Run `reconciler drift --format json`; the exit code and the report."""
    done = cli(sandbox, "drift", str(folder), "--format", "json", *args, cwd=tmp, env=env)
    assert done.returncode in (0, 2), done.stdout + done.stderr
    return done.returncode, json.loads(done.stdout)


def objects(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['name']}": o for o in report["objects"]}


def test_apply_then_drift_is_clean_and_says_what_cannot_be_seen(sandbox: Sandbox, applied: Path, tmp_path: Path) -> None:
    code, report = drift(sandbox, applied, tmp_path)
    assert code == 0 and report["drifted"] is False and report["objects"] == []
    assert [t.split(" cannot be seen")[0] for t in report["cannot_see"]] == [
        "App schedules edited in Atlan", "Credential secrets changed in Atlan"]
    text = cli(sandbox, "drift", str(applied), cwd=tmp_path)
    assert text.returncode == 0 and text.stdout.startswith("No drift on ")
    assert text.stdout.count("App schedules edited in Atlan cannot be seen") == 1  # said once, not guessed


def test_an_edit_in_the_ui_is_changed_on_the_tenant(sandbox: Sandbox, atlan: AtlanClient, applied: Path, tmp_path: Path) -> None:
    _, version = ui_save(atlan, "dp-orders", include_filter='{"public": ["payments"]}', use_source_schema_filtering="true")
    code, report = drift(sandbox, applied, tmp_path)
    assert code == 2 and report["summary"] == {"changed-on-tenant": 1, "stale-schedule": 1}
    entry = objects(report)["App/dp-orders"]
    assert entry["classes"] == ["changed-on-tenant", "stale-schedule"]  # saved: a new version, the schedule fires the old
    assert entry["reason"] == f"changed on the tenant since the last apply (now version {version})"
    fields = {f["path"]: f for f in entry["fields"]}
    # A declared input and one left at its contract default: both were edited in the UI.
    assert set(fields) == {"inputs.include_filter", "inputs.use_source_schema_filtering", "schedules.version"}
    assert fields["inputs.include_filter"] == {"path": "inputs.include_filter", "class": "changed-on-tenant",
                                               "git": {"public": ["orders"]}, "live": {"public": ["payments"]}}
    assert fields["inputs.use_source_schema_filtering"]["git"] == "false"
    assert fields["inputs.use_source_schema_filtering"]["live"] == "true"
    # The plan says the same, next to each field apply would overwrite.
    planned = cli(sandbox, "plan", str(applied), cwd=tmp_path)
    assert ('~ inputs.include_filter: {"public": ["payments"]} → {"public": ["orders"]}   '
            "# changed on the tenant since the last apply") in planned.stdout
    # Apply puts Git back; drift is clean again.
    assert cli(sandbox, "apply", str(applied), "--auto-approve", cwd=tmp_path).returncode == 0
    assert drift(sandbox, applied, tmp_path)[0] == 0


def test_a_merge_not_yet_applied_and_a_field_moved_on_both_sides(sandbox: Sandbox, atlan: AtlanClient, applied: Path,
                                                                tmp_path: Path) -> None:
    project(tmp_path, include="{public: [orders, customers]}")  # merged, not applied
    code, report = drift(sandbox, applied, tmp_path)
    [field] = objects(report)["App/dp-orders"]["fields"]
    assert code == 2 and field["path"] == "inputs.include_filter" and field["class"] == "not-yet-applied"
    assert field["git"] == {"public": ["orders", "customers"]} and field["live"] == {"public": ["orders"]}

    ui_save(atlan, "dp-orders", include_filter='{"public": ["refunds"]}')
    _, report = drift(sandbox, applied, tmp_path)
    field, stale = objects(report)["App/dp-orders"]["fields"]
    assert stale["path"] == "schedules.version" and stale["class"] == "stale-schedule"
    assert field["class"] == "changed-on-tenant-and-in-git" and field["live"] == {"public": ["refunds"]}
    assert field["git"] == {"public": ["orders", "customers"]}


def test_a_rotated_secret_is_named_and_never_shown(sandbox: Sandbox, applied: Path, tmp_path: Path) -> None:
    rotated = "rotated-pw-9f8e7d6c5b"
    out, summary = tmp_path / "github_output", tmp_path / "summary.md"
    report_file = tmp_path / "drift.md"
    env = {"SNOWFLAKE_PASSWORD": rotated, "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary)}
    done = cli(sandbox, "drift", str(applied), "--format", "markdown", "--report", str(report_file), cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "| `Credential/dp-pg` | update | secret rotated" in done.stdout
    assert out.read_text().splitlines() == ["drifted=true", f"report_path={report_file}"]
    assert report_file.read_text() == done.stdout
    for secret in (rotated, SECRETS["SNOWFLAKE_PASSWORD"], SECRETS["SNOWFLAKE_USER"]):
        for where, text in (("stdout", done.stdout), ("stderr", done.stderr), ("report", report_file.read_text()),
                            ("summary", summary.read_text()), ("outputs", out.read_text()),
                            ("state", (applied / "reconciler.state.json").read_text())):
            assert secret not in text, f"a secret reached the {where}"
    code, report = drift(sandbox, applied, tmp_path, env={"SNOWFLAKE_PASSWORD": rotated})
    assert objects(report)["Credential/dp-pg"]["fields"] == [
        {"path": "secrets", "class": "secret-rotated", "git": "(sensitive): rotated", "live": "(sensitive)"}]


def test_an_app_saved_again_in_the_ui_has_a_stale_schedule(sandbox: Sandbox, atlan: AtlanClient, introspect: Introspection,
                                                          applied: Path, tmp_path: Path) -> None:
    old, new = ui_save(atlan, "dp-orders")  # same inputs, a new version: the schedule still fires the old one
    code, report = drift(sandbox, applied, tmp_path)
    entry = objects(report)["App/dp-orders"]
    assert code == 2 and entry["classes"] == ["stale-schedule"]
    assert entry["fields"] == [{"path": "schedules.version", "class": "stale-schedule", "git": int(new) if new.isdigit() else new,
                                "live": [int(old) if old.isdigit() else old]}]
    assert entry["run"] is False
    done = cli(sandbox, "apply", str(applied), "--auto-approve", cwd=tmp_path)
    assert done.returncode == 0 and "updated App/dp-orders" in done.stdout, done.stdout + done.stderr
    assert [str(s["version"]) for s in introspect.state()["schedules"].values()] == [new]  # the planned re-attachment
    assert drift(sandbox, applied, tmp_path)[0] == 0


def test_missing_and_unmanaged_in_scope(sandbox: Sandbox, atlan: AtlanClient, applied: Path, tmp_path: Path) -> None:
    atlan.app.delete(slug_of(atlan, "dp-orders"))
    (PostgresCrawler(atlan).basic(username="u", password="p", host="pg.example.com", port=5432, database="db")
     .connection(name="dp-adhoc").create(name="dp-adhoc"))
    (PostgresCrawler(atlan).basic(username="u", password="p", host="pg.example.com", port=5432, database="db")
     .connection(name="other-team").create(name="other-team"))
    code, report = drift(sandbox, applied, tmp_path)
    found = objects(report)
    assert code == 2 and found["App/dp-orders"]["classes"] == ["missing"]
    assert found["App/dp-orders"]["reason"] == "deleted on the tenant since the last apply"
    assert found["App/dp-adhoc"]["classes"] == ["unmanaged-in-scope"] and found["App/dp-adhoc"]["action"] == "delete"
    # Outside the scope: a count, never named; so are the two credentials the SDK vaulted under one name.
    assert "App/other-team" not in found and report["unmanaged"] == {"App": 1, "Credential": 2}
    assert report["summary"] == {"missing": 1, "unmanaged-in-scope": 1}


def test_exit_codes_and_outputs_for_ci(sandbox: Sandbox, applied: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    clean = cli(sandbox, "drift", str(applied), "--report", str(tmp_path / "r.txt"), cwd=tmp_path,
                env={"GITHUB_OUTPUT": str(out)})
    assert clean.returncode == 0 and out.read_text().splitlines() == ["drifted=false", f"report_path={tmp_path / 'r.txt'}"]
    assert (tmp_path / "r.txt").read_text() == clean.stdout
    assert cli(sandbox, "drift", str(applied), "--no-such-option", cwd=tmp_path).returncode == 64
    (applied / "all.yaml").write_text((applied / "all.yaml").read_text().replace("appId: postgres-crawler", "appId: 7"))
    broken = cli(sandbox, "drift", str(applied), "--format", "markdown", "--report", str(tmp_path / "r.md"), cwd=tmp_path)
    assert broken.returncode == 1 and "all.yaml:" in broken.stderr
    assert "the manifests have 1 error" in (tmp_path / "r.md").read_text()  # what the issue body shows


def test_apply_records_what_it_applied_and_a_second_apply_writes_nothing(sandbox: Sandbox, applied: Path,
                                                                         tmp_path: Path) -> None:
    state_file = applied / "reconciler.state.json"
    records = next(iter(json.loads(state_file.read_text())["projects"]["."]["tenants"].values()))["resources"]
    assert set(records) == {"App/dp-orders", "Credential/dp-pg"}
    for record in records.values():
        fields = record["applied"]["fields"]
        assert fields and all(isinstance(h, (str, dict)) for h in fields.values())
    assert set(records["App/dp-orders"]["applied"]["fields"]["inputs"]) >= {"include_filter", "use_source_schema_filtering"}
    before = state_file.read_bytes()
    again = cli(sandbox, "apply", str(applied), "--auto-approve", cwd=tmp_path)
    assert again.returncode == 0 and state_file.read_bytes() == before  # no change: not one write
