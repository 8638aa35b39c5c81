"""Safe unattended apply, end to end over real HTTP: one apply at a time per state file, a
project never touching another's records, saved plans applied only as reviewed, the state
commands, meaningful ownership prefixes, and a state file that is committed (sandbox data never).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.plan import plan_mac
from reconciler.sandbox import Sandbox
from reconciler.state import fingerprint_key
from tests.conftest import TOKEN, Introspection
from tests.test_apply import CRED, SECRETS, app, cli, manifests

ROOT = Path(__file__).resolve().parent.parent


def writes(observer: Introspection) -> int:
    """Requests that could change the tenant: every POST, PUT and DELETE except searches and tests."""
    return sum(n for route, n in observer.stats()["requests"].items()
               if not route.startswith("GET") and "indexsearch" not in route and "credentials/test" not in route)


def state_of(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "reconciler.state.json").read_text())


def records(folder: Path) -> dict[str, Any]:
    """The one project's records of the one tenant (none once every record is forgotten)."""
    tenants = [t for p in state_of(folder)["projects"].values() for t in p["tenants"].values()]
    assert len(tenants) <= 1
    return tenants[0]["resources"] if tenants else {}


def spawn_apply(sandbox: Sandbox, folder: Path, cwd: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "ATLAN_BASE_URL": sandbox.base_url, "ATLAN_API_KEY": TOKEN, "CI": "true", **SECRETS}
    env.pop("RECONCILER_FINGERPRINT_KEY", None)
    return subprocess.Popen([sys.executable, "-m", "reconciler", "apply", str(folder), "--auto-approve", *extra],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def apply_with_faults(sandbox: Sandbox, introspect: Introspection, folder: Path, cwd: Path, route: str,
                      kind: str = "drop-after") -> subprocess.CompletedProcess[str]:
    """One apply while every request to ``route`` meets the fault ``kind`` (then faults are off)."""
    introspect.post("config", {"fault_rate": 1.0, "fault_kinds": [kind], "fault_routes": [route]})
    try:
        return cli(sandbox, "apply", str(folder), "--auto-approve", cwd=cwd)
    finally:
        introspect.post("config", {"fault_rate": 0.0, "fault_routes": []})


# -- one apply at a time ------------------------------------------------------------------------------


def test_a_second_apply_fails_on_the_lock_naming_the_holder(sandbox_factory: Callable[..., Sandbox],
                                                             tmp_path: Path) -> None:
    sandbox = sandbox_factory(latency_ms=150)
    observer = Introspection(sandbox.base_url, TOKEN)
    folder = manifests(tmp_path, "---\n".join([CRED % ("pg-cred", "db.example.com"),
                                                *(app(f"a{i}", extra="  schedules: [{cron: '0 3 * * *'}]\n")
                                                  for i in range(4))]))
    first = spawn_apply(sandbox, folder, tmp_path)
    # The first apply holds the lock from before it reads anything: wait until it is talking to the tenant.
    assert observer.wait(total=2, timeout=30), "the first apply did not start"
    second = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path, env={"CI": "true"})
    assert second.returncode == 1
    assert f"is locked by another command: pid {first.pid} on" in second.stderr, second.stderr
    assert "--lock-timeout" in second.stderr
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    state = observer.state()
    assert sorted(a["name"] for a in state["apps"].values()) == ["a0", "a1", "a2", "a3"]
    assert len(state["credentials"]) == 1 and len(state["schedules"]) == 4  # nothing doubled
    # plan takes no lock: it runs while another command holds it.
    from reconciler.lock import state_lock

    with state_lock(folder / "reconciler.state.json", 0):
        planned = cli(sandbox, "plan", str(folder), "--detailed-exitcode", cwd=tmp_path)
    assert planned.returncode == 0, planned.stdout + planned.stderr


def test_a_lock_left_by_a_killed_apply_is_freed(sandbox_factory: Callable[..., Sandbox], tmp_path: Path) -> None:
    """A SIGKILL after the first schedule POST: what the apply recorded is in the journal only (the
    file is written once, at the end), read by plan and drift without writing, folded by the next
    apply, which neither repeats nor loses anything and leaves no journal."""
    sandbox = sandbox_factory(latency_ms=100)
    observer = Introspection(sandbox.base_url, TOKEN)
    schedule = "  schedules: [{cron: '0 3 * * *'}]\n"
    folder = manifests(tmp_path, "---\n".join([CRED % ("pg-cred", "db.example.com"), app("k1", extra=schedule),
                                                app("k2", extra=schedule)]))
    victim = spawn_apply(sandbox, folder, tmp_path)
    # Its answer is 100 ms away: the intent recorded before it is the journal's last word on that app.
    assert observer.wait(route="POST v1/app/{slug}/schedule", timeout=30), "no schedule was sent"
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    holder = folder / ".reconciler-locks" / "reconciler.state.json.holder"
    assert json.loads(holder.read_text())["pid"] == victim.pid  # the dead holder's note is still there
    state_file, journal = folder / "reconciler.state.json", folder / "reconciler.state.json.journal"
    assert not state_file.exists() and journal.exists()
    left = journal.read_bytes()

    # Read-only commands replay it in memory: they see the records and the intent, and write nothing.
    listed = cli(sandbox, "state", "list", "--project", str(folder), cwd=tmp_path)
    assert "Credential/pg-cred" in listed.stdout and "unverified" in listed.stdout, listed.stdout + listed.stderr
    planned = cli(sandbox, "plan", str(folder), cwd=tmp_path)
    assert planned.returncode == 0 and "RC107 warning: App/k" in planned.stdout, planned.stdout + planned.stderr
    drift = cli(sandbox, "drift", str(folder), cwd=tmp_path)
    assert drift.returncode in (0, 2), drift.stdout + drift.stderr
    assert not state_file.exists() and journal.read_bytes() == left

    rerun = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path, env={"CI": "true"})
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"(pid {victim.pid} on" in rerun.stdout and "ended without releasing its lock" in rerun.stdout
    assert not holder.exists() and not journal.exists()
    tenant = observer.state()
    assert sorted(a["name"] for a in tenant["apps"].values()) == ["k1", "k2"] and len(tenant["credentials"]) == 1
    assert len(tenant["schedules"]) <= 2  # an intent's schedule is never attached a second time
    recorded = records(folder)
    assert sorted(recorded) == ["App/k1", "App/k2", "Credential/pg-cred"]
    assert {a["slug"] for a in tenant["apps"].values()} == {r["slug"] for k, r in recorded.items() if k.startswith("App/")}
    assert any(r.get("intents") for r in recorded.values())  # still visible, until `state resolve` settles it


def test_sigint_exits_130_and_leaves_a_valid_state_file(sandbox_factory: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = sandbox_factory(latency_ms=60)
    observer = Introspection(sandbox.base_url, TOKEN)
    folder = manifests(tmp_path, "---\n".join([CRED % ("pg-cred", "db.example.com"),
                                                *(app(f"i{i}", extra="  schedules: [{cron: '0 4 * * *'}]\n")
                                                  for i in range(6))]))
    proc = spawn_apply(sandbox, folder, tmp_path, "--parallelism", "2")
    assert observer.wait(route="POST v1/app", timeout=30), "no app was created"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert state_of(folder)["format"] == 2  # parses, whole
    rerun = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    state = observer.state()
    assert len(state["apps"]) == 6 and len(state["schedules"]) == 6


# -- projects sharing a state file ----------------------------------------------------------------------


def project(folder: Path, name: str, prefix: str, docs: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "reconciler.yaml").write_text(
        f"apiVersion: reconciler/v1\nkind: Project\nmetadata: {{name: {name}}}\n"
        f"spec: {{ownership: {{namePrefixes: ['{prefix}']}}, stateFile: ../shared-state.json}}\n")
    (folder / "all.yaml").write_text("---\n".join(docs))
    return folder


def test_two_projects_sharing_a_state_file_never_touch_each_other(sandbox: Sandbox, introspect: Introspection,
                                                                  tmp_path: Path) -> None:
    # Both copied the example's reconciler.yaml: one name, told apart by their folders.
    team_a = project(tmp_path / "team-a", "data-platform", "ta-",
                     [CRED % ("ta-cred", "a.example.com"), *(app(f"ta-app{i}", cred="ta-cred") for i in range(3))])
    team_b = project(tmp_path / "team-b", "data-platform", "tb-",
                     [CRED % ("tb-cred", "b.example.com"), *(app(f"tb-app{i}", cred="tb-cred") for i in range(3))])
    for folder in (team_a, team_b):
        done = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    shared = json.loads((tmp_path / "shared-state.json").read_text())
    assert sorted(shared["projects"]) == ["team-a", "team-b"]
    # Team A removes everything but its credential and prunes: only its own apps go.
    (team_a / "all.yaml").write_text(CRED % ("ta-cred", "a.example.com"))
    pruned = cli(sandbox, "apply", str(team_a), "--auto-approve", "--prune", cwd=tmp_path)
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert "Not managed by these manifests, left alone: 3 Apps, 1 Credential." in pruned.stdout  # team B's
    live = sorted(a["name"] for a in introspect.state()["apps"].values() if not a["archived"])
    assert live == ["tb-app0", "tb-app1", "tb-app2"]
    shared = json.loads((tmp_path / "shared-state.json").read_text())
    assert sorted(shared["projects"]["team-b"]["tenants"][sandbox.base_url]["resources"]) == [
        "App/tb-app0", "App/tb-app1", "App/tb-app2", "Credential/tb-cred"]
    assert cli(sandbox, "plan", str(team_b), "--detailed-exitcode", cwd=tmp_path).returncode == 0


# -- saved plans apply only as reviewed -----------------------------------------------------------------


@pytest.fixture
def reviewed(sandbox: Sandbox, introspect: Introspection, tmp_path: Path) -> dict[str, Any]:
    """A project with a managed app gone from the manifests, a preventDestroy app, an app nobody
    manages, and a saved plan made without --prune."""
    folder = manifests(tmp_path, "---\n".join([CRED % ("pg-cred", "db.example.com"), app("p-a1"), app("p-a2"),
                                                app("p-guarded", extra="  lifecycle: {preventDestroy: true}\n")]))
    assert cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path).returncode == 0
    introspect.post("seed", {"apps": [{"name": "not-ours", "app_id": "postgres-crawler", "inputs": {}}]})
    (folder / "all.yaml").write_text("---\n".join([CRED % ("pg-cred", "db2.example.com"), app("p-a2"),
                                                    app("p-guarded", extra="  lifecycle: {preventDestroy: true}\n")]))
    made = cli(sandbox, "plan", str(folder), "--out", "plan.json", cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    data = json.loads((tmp_path / "plan.json").read_text())
    assert data["mac"].startswith("hmac-sha256:")
    return {"folder": folder, "data": data, "live": {a["name"]: a for a in introspect.state()["apps"].values()}}


def write_plan(tmp_path: Path, data: dict[str, Any], *, sign: bool) -> None:
    data = {k: v for k, v in data.items() if k != "mac"}
    if sign:  # a tamperer who holds the key: the independent checks must still refuse
        data["mac"] = plan_mac(data, fingerprint_key(TOKEN))
    (tmp_path / "plan.json").write_text(json.dumps(data))


def delete_of(name: str, live: dict[str, Any], kind: str = "App", *, needs_prune: bool = False) -> dict[str, Any]:
    return {"action": "delete", "kind": kind, "name": name, "before": {}, "after": None, "fields": [],
            "reason": "no longer declared", "fingerprint": "sha256:" + "0" * 64, "needs_prune": needs_prune,
            "origin": "", "settings": {}}


TAMPERINGS: dict[str, tuple[Callable[[dict[str, Any], dict[str, Any]], None], bool, str]] = {
    "edited, MAC kept": (lambda d, live: d["changes"].append(delete_of("not-ours", live)), False,
                         "does not carry a valid MAC"),
    "MAC removed": (lambda d, live: d.pop("mac"), False, "does not carry a valid MAC"),
    "delete of an unmanaged app": (lambda d, live: (d.update(prune=True), d["changes"].append(delete_of("not-ours", live))),
                                   True, "App/not-ours: not managed by this project"),
    "delete of a preventDestroy app": (lambda d, live: (d.update(prune=True), d["changes"].append(delete_of("p-guarded", live))),
                                       True, "App/p-guarded: preventDestroy is recorded for it"),
    "delete of a declared credential": (lambda d, live: (d.update(prune=True),
                                                         d["changes"].append(delete_of("pg-cred", live, "Credential"))),
                                        True, "Credential/pg-cred: the manifests still declare it"),
    "delete of a Workflow": (lambda d, live: (d.update(prune=True), d["changes"].append(delete_of("wf", live, "Workflow"))),
                             True, "Workflow/wf: reconciler never deletes Workflow objects"),
    "a change of an unknown kind": (lambda d, live: d["changes"].append(delete_of("x", live, "Persona")), True,
                                    "Persona/x: no such kind"),
    "a run nobody asked for": (lambda d, live: d["changes"].append({**delete_of("p-a2", live), "action": "run"}), True,
                               "App/p-a2: a run that neither its manifest nor the state file asks for"),
    "an origin that is not a string": (lambda d, live: d["changes"][0].update(origin=5), True, "is not a reconciler plan"),
    "settings that are not a mapping": (lambda d, live: d["changes"][0].update(settings="x"), True,
                                        "is not a reconciler plan"),
    "blank tenant": (lambda d, live: d.update(tenant=""), True, "names no tenant"),
    "null fingerprint": (lambda d, live: [c.update(fingerprint=None) for c in d["changes"] if c["action"] == "update"],
                         True, "Credential/pg-cred: update without the fingerprint of the live object"),
    "API key as a secret": (lambda d, live: [c["settings"].update(secret_refs={"password": "${env:ATLAN_API_KEY}"})
                                             for c in d["changes"] if c["kind"] == "Credential"],
                            True, "Credential/pg-cred: a secret reference names the API key"),
    "state file redirected": (lambda d, live: d.update(state_file="elsewhere/state.json"), True,
                              "which is not this project's state file"),
    "a plan from 2001": (lambda d, live: d.update(created_at="2001-01-01T00:00:00Z"), True, "older than --max-plan-age"),
    "a plan from the future": (lambda d, live: d.update(created_at="2099-01-01T00:00:00Z"), True, "in the future"),
}


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_a_tampered_plan_is_refused_and_sends_no_write(name: str, reviewed: dict[str, Any], sandbox: Sandbox,
                                                        introspect: Introspection, tmp_path: Path) -> None:
    tamper, sign, message = TAMPERINGS[name]
    data = json.loads(json.dumps(reviewed["data"]))
    tamper(data, reviewed["live"])
    write_plan(tmp_path, data, sign=sign)
    before = writes(introspect)
    refused = cli(sandbox, "apply", "plan.json", cwd=tmp_path)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert message in refused.stderr, refused.stderr
    assert "Hint:" in refused.stderr
    assert writes(introspect) == before
    assert sorted(a["name"] for a in introspect.state()["apps"].values() if not a["archived"]) == [
        "not-ours", "p-a1", "p-a2", "p-guarded"]


def test_the_reviewed_plan_applies_and_its_pending_delete_is_not_a_failure(reviewed: dict[str, Any], sandbox: Sandbox,
                                                                            introspect: Introspection,
                                                                            tmp_path: Path) -> None:
    done = cli(sandbox, "apply", "plan.json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "– not applied App/p-a1: needs --prune" in done.stdout
    assert "1 delete not applied (needs --prune)" in done.stdout
    cred = next(c for c in introspect.state()["credentials"].values() if c["record"]["name"] == "pg-cred")
    assert cred["record"]["host"] == "db2.example.com"
    again = cli(sandbox, "apply", "plan.json", cwd=tmp_path)  # the tenant moved since: stale
    assert again.returncode == 1 and "stale" in again.stderr


# -- the state commands ------------------------------------------------------------------------------


def test_state_list_show_forget_and_resolve(sandbox: Sandbox, introspect: Introspection, tmp_path: Path) -> None:
    folder = manifests(tmp_path, app("s-app", None, inputs="{extraction_method: agent, agent_json: {a: 1}}",
                                     extra="  schedules: [{cron: '0 5 * * *', timezone: Europe/Paris}]\n"))
    # The answer to the schedule POST is lost after the tenant attached it.
    lost = apply_with_faults(sandbox, introspect, folder, tmp_path, "POST v1/app/{slug}/schedule")
    assert lost.returncode == 1 and "? unverified App/s-app: schedule '0 5 * * *' (Europe/Paris) may or may not be attached" \
        in lost.stdout, lost.stdout + lost.stderr
    [trigger] = introspect.state()["schedules"]
    intents = records(folder)["App/s-app"]["intents"]
    assert [i["cron"] for i in intents] == ["0 5 * * *"]

    plan = cli(sandbox, "plan", str(folder), "--detailed-exitcode", cwd=tmp_path)
    assert plan.returncode == 0 and "RC107 warning: App/s-app: a schedule '0 5 * * *' (Europe/Paris) may have been attached" \
        in plan.stdout
    again = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path)
    assert again.returncode == 0 and len(introspect.state()["schedules"]) == 1  # never attached twice

    listed = cli(sandbox, "state", "list", "--project", str(folder), cwd=tmp_path)
    assert listed.returncode == 0 and f"unverified {intents[0]['id']}: schedule '0 5 * * *' (Europe/Paris)" in listed.stdout
    shown = cli(sandbox, "state", "show", "App/s-app", "--project", str(folder), cwd=tmp_path)
    assert json.loads(shown.stdout)["intents"][0]["id"] == intents[0]["id"]
    bad = cli(sandbox, "state", "resolve", "App/s-app", "--project", str(folder), cwd=tmp_path)
    assert bad.returncode == 64 and "--attached TRIGGER_ID or --absent" in bad.stderr
    resolved = cli(sandbox, "state", "resolve", "App/s-app", "--attached", trigger, "--project", str(folder), cwd=tmp_path)
    assert resolved.returncode == 0 and f"recorded as attached (trigger {trigger})" in resolved.stdout
    assert [s["trigger_id"] for s in records(folder)["App/s-app"]["schedules"]] == [trigger]
    assert "intents" not in records(folder)["App/s-app"]
    clean = cli(sandbox, "plan", str(folder), "--detailed-exitcode", cwd=tmp_path)
    assert clean.returncode == 0 and "No changes. The tenant matches the manifests." in clean.stdout

    forgot = cli(sandbox, "state", "forget", "App/s-app", "--project", str(folder), cwd=tmp_path)
    assert forgot.returncode == 0 and "App/s-app" not in records(folder)
    missing = cli(sandbox, "state", "show", "App/s-app", "--project", str(folder), cwd=tmp_path)
    assert missing.returncode == 1 and "no record of App/s-app" in missing.stderr


def test_an_intent_resolved_absent_is_attached_by_the_next_apply(sandbox: Sandbox, introspect: Introspection,
                                                                tmp_path: Path) -> None:
    folder = manifests(tmp_path, app("r-app", None, inputs="{extraction_method: agent, agent_json: {a: 1}}",
                                     extra="  schedules: [{cron: '0 6 * * *'}]\n"))
    # A drop before the server handled it: from the client's side just as unknown.
    assert apply_with_faults(sandbox, introspect, folder, tmp_path, "POST v1/app/{slug}/schedule", "drop").returncode == 1
    assert introspect.state()["schedules"] == {} or len(introspect.state()["schedules"]) == 0
    assert cli(sandbox, "state", "resolve", "App/r-app", "--absent", "--project", str(folder), cwd=tmp_path).returncode == 0
    done = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path)
    assert done.returncode == 0 and len(introspect.state()["schedules"]) == 1, done.stdout + done.stderr


# -- ownership prefixes ------------------------------------------------------------------------------


def test_a_prefix_matching_most_of_the_tenant_claims_nothing(sandbox: Sandbox, introspect: Introspection,
                                                             tmp_path: Path) -> None:
    introspect.post("seed", {"apps": [{"name": f"data-ui-{i}", "app_id": "postgres-crawler", "inputs": {}} for i in range(3)]
                             + [{"name": "other", "app_id": "postgres-crawler", "inputs": {}}]})
    folder = manifests(tmp_path, app("data-mine", None, inputs="{extraction_method: agent, agent_json: {a: 1}}"))
    (folder / "reconciler.yaml").write_text("apiVersion: reconciler/v1\nkind: Project\nmetadata: {name: p}\n"
                                            "spec: {ownership: {namePrefixes: [data-]}}\n")
    plan = cli(sandbox, "plan", str(folder), "--prune", cwd=tmp_path)
    assert plan.returncode == 1
    assert "RC106 ownership prefix 'data-' matches 3 of the 4 live objects" in plan.stdout, plan.stdout
    assert "App/data-ui" not in plan.stdout  # nothing it would have claimed is a delete candidate


# -- the state file is committed, sandbox data never ----------------------------------------------------


def test_a_copied_example_commits_its_state_and_never_the_sandbox_data(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "specs", repo / "specs", ignore=shutil.ignore_patterns("reconciler.state.json", ".reconciler*"))
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("ATLAN_BASE_URL", "ATLAN_API_KEY")}
    env.update(SECRETS)
    done = subprocess.run([sys.executable, "-m", "reconciler", "apply", "specs", "--auto-approve"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    staged = subprocess.run(["git", "diff", "--cached", "--name-only"], cwd=repo, check=True, capture_output=True,
                            text=True).stdout.split()
    assert "specs/reconciler.state.json" in staged
    assert (repo / ".reconciler" / "sandbox.json").exists()
    assert not [f for f in staged if f.startswith(".reconciler") or "/.reconciler" in f], staged


# -- what an adversarial review found --------------------------------------------------------------------


def test_a_plan_made_for_one_project_is_refused_by_another(sandbox: Sandbox, introspect: Introspection,
                                                           tmp_path: Path) -> None:
    mono = tmp_path / "mono"
    team_a = project(mono / "a", "team-a", "ta-", [CRED % ("ta-cred", "a.example.com"), app("ta-app", cred="ta-cred")])
    team_b = project(mono / "b", "team-b", "tb-", [app("tb-app", None, inputs="{extraction_method: agent, agent_json: {a: 1}}")])
    for folder in (team_a, team_b):  # each its own state file, as in a monorepo
        (folder / "reconciler.yaml").write_text((folder / "reconciler.yaml").read_text().replace(", stateFile: ../shared-state.json", ""))
    assert cli(sandbox, "plan", ".", "--out", "plan.json", cwd=team_a).returncode == 0
    before = writes(introspect)
    wrong = cli(sandbox, "apply", "../a/plan.json", cwd=team_b)
    assert wrong.returncode == 1 and "the plan was made for project 'team-a', not 'team-b'" in wrong.stderr, wrong.stderr
    assert writes(introspect) == before
    # Same name (both copied one reconciler.yaml): what it creates is not declared here.
    (team_b / "reconciler.yaml").write_text((team_b / "reconciler.yaml").read_text().replace("team-b", "team-a"))
    same_name = cli(sandbox, "apply", "../a/plan.json", cwd=team_b)
    assert same_name.returncode == 1 and "App/ta-app: this project does not declare it" in same_name.stderr
    assert writes(introspect) == before
    assert cli(sandbox, "apply", "plan.json", cwd=team_a).returncode == 0  # where it belongs, it applies


def test_a_prefix_never_claims_what_another_project_records(sandbox: Sandbox, introspect: Introspection,
                                                            tmp_path: Path) -> None:
    agent = "{extraction_method: agent, agent_json: {a: 1}}"
    team_a = project(tmp_path / "a", "team-a", "dp-", [app("dp-a-app", None, inputs=agent)])
    team_b = project(tmp_path / "b", "team-b", "zz-", [app(f"dp-b-app{i}", None, inputs=agent) for i in range(3)])
    introspect.post("seed", {"apps": [{"name": f"ui-{i}", "app_id": "postgres-crawler", "inputs": {}} for i in range(4)]})
    for folder in (team_a, team_b):
        assert cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path).returncode == 0
    pruned = cli(sandbox, "apply", str(team_a), "--auto-approve", "--prune", cwd=tmp_path)
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert "dp-b-app" not in pruned.stdout.split("Not managed")[0]  # not even a candidate
    live = sorted(a["name"] for a in introspect.state()["apps"].values() if not a["archived"])
    assert [n for n in live if n.startswith("dp-b")] == ["dp-b-app0", "dp-b-app1", "dp-b-app2"]


def test_an_old_no_change_plan_is_stale_once_another_apply_ran(sandbox: Sandbox, introspect: Introspection,
                                                                tmp_path: Path) -> None:
    agent = "{extraction_method: agent, agent_json: {a: 1}}"
    folder = manifests(tmp_path, app("rp-app", None, inputs=agent, extra="  schedules: [{cron: '30 1 * * *'}]\n"))
    assert cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path).returncode == 0
    assert cli(sandbox, "plan", str(folder), "--out", "old.json", cwd=tmp_path).returncode == 0
    (folder / "all.yaml").write_text(app("rp-app", None, inputs=agent, extra="  schedules: [{cron: '45 5 * * *'}]\n"))
    assert cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path).returncode == 0
    replay = cli(sandbox, "apply", "old.json", cwd=tmp_path)
    assert replay.returncode == 1 and "stale" in replay.stderr and "records changed since the plan" in replay.stderr
    assert [s["cron"] for s in introspect.state()["schedules"].values()] == ["45 5 * * *"]


def test_a_run_on_create_is_owed_until_submitted(sandbox: Sandbox, introspect: Introspection, tmp_path: Path) -> None:
    folder = manifests(tmp_path, app("owed", None, inputs="{extraction_method: agent, agent_json: {a: 1}}",
                                     extra="  run: {onCreate: true}\n"))
    # Every answer to the create is lost (the first attempt and the client's re-sends).
    lost = apply_with_faults(sandbox, introspect, folder, tmp_path, "POST v1/app")
    assert lost.returncode == 1 and "unverified App/owed" in lost.stdout, lost.stdout + lost.stderr
    assert len(introspect.state()["apps"]) == 1 and not introspect.state()["runs"]
    plan = cli(sandbox, "plan", str(folder), cwd=tmp_path)
    assert "> App/owed (run: a run was owed and never submitted: the apply that owed it stopped)" in plan.stdout, plan.stdout
    again = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path)
    assert again.returncode == 0 and len(introspect.state()["runs"]) == 1, again.stdout + again.stderr
    assert cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path).returncode == 0
    assert len(introspect.state()["runs"]) == 1  # owed once, submitted once


def test_a_state_file_shared_through_a_link_stays_shared(sandbox: Sandbox, tmp_path: Path) -> None:
    agent = "{extraction_method: agent, agent_json: {a: 1}}"
    (tmp_path / "common").mkdir()
    team_a = project(tmp_path / "a", "team-a", "la-", [app("la-app", None, inputs=agent)])
    team_d = project(tmp_path / "d", "team-d", "ld-", [app("ld-app", None, inputs=agent)])
    for folder in (team_a, team_d):
        (folder / "reconciler.yaml").write_text((folder / "reconciler.yaml").read_text().replace("../shared-state.json",
                                                                                              "state-link.json"))
        (folder / "state-link.json").symlink_to(tmp_path / "common" / "state.json")
    for folder in (team_a, team_d):
        done = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    assert (team_d / "state-link.json").is_symlink() and (team_a / "state-link.json").is_symlink()
    shared = json.loads((tmp_path / "common" / "state.json").read_text())
    assert sorted(shared["projects"]) == ["../a", "../d"]
    assert (tmp_path / "common" / ".reconciler-locks").is_dir()  # one lock, beside the real file


def test_a_saved_plan_is_refused_while_the_manifests_do_not_validate(reviewed: dict[str, Any], sandbox: Sandbox,
                                                                     introspect: Introspection, tmp_path: Path) -> None:
    (reviewed["folder"] / "broken.yaml").write_text("apiVersion: reconciler/v1\nkind: App\nmetadata: {name: [}\n")
    before = writes(introspect)
    refused = cli(sandbox, "apply", "plan.json", cwd=tmp_path)
    assert refused.returncode == 1 and "cannot be read here" in refused.stderr and "broken.yaml" in refused.stderr
    assert writes(introspect) == before


def test_a_re_signed_plan_with_a_change_twice_is_refused(reviewed: dict[str, Any], sandbox: Sandbox,
                                                         introspect: Introspection, tmp_path: Path) -> None:
    data = json.loads(json.dumps(reviewed["data"]))
    data["changes"] += [c for c in data["changes"] if c["action"] == "update"]
    write_plan(tmp_path, data, sign=True)
    before = writes(introspect)
    refused = cli(sandbox, "apply", "plan.json", cwd=tmp_path)
    assert refused.returncode == 1 and "Credential/pg-cred: a second update" in refused.stderr
    assert writes(introspect) == before
