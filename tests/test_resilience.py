"""Crash safety and faults: a SIGKILLed apply re-runs to exactly the declared objects, and 200
resources apply under 20% transient faults and a rate limit with zero duplicates."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler import render
from reconciler.client import ApiClient
from reconciler.engine import apply, make_plan
from reconciler.sandbox import Sandbox
from reconciler.state import StateFile
from tests.conftest import TOKEN, Introspection

ENV = {"USER": "loader", "PW": "crash-test-secret"}


def crash_manifests(folder: Path) -> dict[str, int]:
    """Two credentials, five apps with two schedules each, one workflow; returns schedules per app."""
    docs: list[dict[str, Any]] = [
        {"kind": "Credential", "metadata": {"name": f"cred-{i}"},
         "spec": {"connector": "postgres", "authType": "basic", "host": f"db{i}.example.com",
                  "username": "${env:USER}", "password": "${env:PW}"}} for i in range(2)]
    for i in range(5):
        docs.append({"kind": "App", "metadata": {"name": f"app-{i}"}, "spec": {
            "appId": "postgres-crawler", "credentialRef": f"cred-{i % 2}", "connection": {"name": f"c{i}"},
            "inputs": {"temp_table_regex": f"^t{i}"},
            "schedules": [{"cron": f"{i} 2 * * *", "timezone": "Asia/Kolkata"}, {"cron": "@weekly"}]}})
    docs.append({"kind": "Workflow", "metadata": {"name": "csa-lineage-builder-1716000000"},
                 "spec": {"parameters": {"lineage_fail_on_errors": False}}})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "all.yaml").write_text(yaml.safe_dump_all([{"apiVersion": "reconciler/v1", **d} for d in docs], sort_keys=False))
    return {f"app-{i}": 2 for i in range(5)}


def apply_cli(sandbox: Sandbox, folder: Path, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "ATLAN_BASE_URL": sandbox.base_url, "ATLAN_API_KEY": TOKEN, **ENV}
    return subprocess.Popen([sys.executable, "-m", "reconciler", "apply", str(folder), "--auto-approve", "--parallelism", "4"],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def state_records(folder: Path) -> dict[str, Any]:
    """Every record, as the next command would load it: the file and the journal a killed apply left."""
    data = StateFile.load(folder / "reconciler.state.json").to_dict()
    tenants = [t for p in data["projects"].values() for t in p["tenants"].values()]
    return {k: v for t in tenants for k, v in t["resources"].items()}


def hidden_triggers(tenant: dict[str, Any], records: dict[str, Any]) -> list[dict[str, Any]]:
    """Triggers on the tenant that neither a recorded trigger id nor an unsettled intent accounts for:
    schedules nobody could ever see, remove or stop firing."""
    recorded = {s["trigger_id"] for r in records.values() for s in r.get("schedules") or []}
    intents = [(r.get("slug"), i["cron"], i["timezone"]) for r in records.values()
               for i in r.get("intents") or [] if i["action"] == "schedule"]
    hidden = []
    for trigger_id, trigger in tenant["schedules"].items():
        if trigger_id in recorded:
            continue
        claim = (trigger["slug"], trigger["cron"], trigger["timezone"])
        if claim in intents:
            intents.remove(claim)  # one intent accounts for one trigger
        else:
            hidden.append(trigger)
    return hidden


def settle_intents(sandbox: Sandbox, folder: Path, cwd: Path, tenant: dict[str, Any]) -> int:
    """What a person does after a crash: look at the tenant and settle each intent."""
    env = {**os.environ, "ATLAN_BASE_URL": sandbox.base_url, "ATLAN_API_KEY": TOKEN}
    recorded = {s["trigger_id"] for r in state_records(folder).values() for s in r.get("schedules") or []}
    settled = 0
    for key, record in state_records(folder).items():
        for intent in record.get("intents") or []:
            found = [t for t, s in tenant["schedules"].items() if t not in recorded and s["slug"] == record.get("slug")
                     and (s["cron"], s["timezone"]) == (intent.get("cron"), intent.get("timezone"))]
            how = ["--attached", found[0]] if found and intent["action"] == "schedule" else ["--absent"]
            recorded |= set(found[:1])
            done = subprocess.run([sys.executable, "-m", "reconciler", "state", "resolve", key, "--intent", intent["id"],
                                   *how, "--project", str(folder)], cwd=cwd, env=env, capture_output=True, text=True,
                                  timeout=60)
            assert done.returncode == 0, done.stdout + done.stderr
            settled += 1
    return settled


@pytest.mark.slow
def test_sigkill_at_random_points_leaves_no_hidden_trigger(sandbox_factory: Callable[..., Sandbox], tmp_path: Path) -> None:
    """The API hides attached schedules (the real server's behaviour): a kill between a schedule
    POST and its record must leave a visible intent, never a trigger nobody knows of."""
    rng = random.Random(20261121)
    partial = hidden = lost = intents = journals = 0
    for trial in range(20):
        sandbox = sandbox_factory(latency_ms=20, jitter_ms=20, seed=trial)
        observer = Introspection(sandbox.base_url, TOKEN)
        work = tmp_path / f"trial-{trial}"
        expected = crash_manifests(work / "m")
        # Kill after a random number of API requests (a full apply makes about 40), so every kill
        # lands somewhere inside the run: during the fetch, between creates, between schedules.
        kill_after = rng.randint(1, 38)
        proc = apply_cli(sandbox, work / "m", work)
        # Wait on the tenant's own count (blocking there, not sleeping here), a second at a time so that
        # an apply that ended early is noticed.
        deadline = time.monotonic() + 60
        while not observer.wait(total=kill_after, timeout=1) and proc.poll() is None and time.monotonic() < deadline:
            pass
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        tenant = observer.state()
        # What the apply recorded before the kill is in the journal (the file is written at the end):
        # the records below are the file with the journal replayed, as the next command reads them.
        journal = work / "m" / "reconciler.state.json.journal"
        journals += journal.exists()
        records = state_records(work / "m")
        partial += 0 < len(tenant["apps"]) < len(expected)
        hidden += len(hidden_triggers(tenant, records))
        live = [f"App/{a['name']}" for a in tenant["apps"].values()]
        live += [f"Credential/{c['record']['name']}" for c in tenant["credentials"].values()]
        lost += len([key for key in live if key not in records])

        # The re-run never attaches a schedule an intent stands for; once settled, it converges.
        rerun = apply_cli(sandbox, work / "m", work)
        out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, f"trial {trial}: {out}\n{err}"
        assert not journal.exists(), f"trial {trial}: the re-run left a journal"  # folded into the file
        assert not hidden_triggers(observer.state(), state_records(work / "m")), f"trial {trial}"
        settled = settle_intents(sandbox, work / "m", work, observer.state())
        intents += settled
        if settled:
            final = apply_cli(sandbox, work / "m", work)
            out, err = final.communicate(timeout=120)
            assert final.returncode == 0, f"trial {trial}: {out}\n{err}"
        state = observer.state()
        apps = [a for a in state["apps"].values() if not a["archived"]]
        assert sorted(a["name"] for a in apps) == sorted(expected), f"trial {trial}"
        assert sorted(c["record"]["name"] for c in state["credentials"].values() if not c["archived"]) == ["cred-0", "cred-1"]
        for app in apps:
            attached = [s for s in state["schedules"].values() if s["slug"] == app["slug"]]
            assert len(attached) == expected[app["name"]], f"trial {trial}: {app['name']} has {len(attached)} schedules"
            assert all(s["version"] == app["version"] for s in attached), f"trial {trial}: stale schedule"
        with ApiClient(sandbox.base_url, TOKEN) as client:
            plan = make_plan([str(work / "m")], client, api_key=TOKEN, env=ENV, tenant_id=sandbox.base_url).plan
        assert not plan.has_changes, f"trial {trial}: {[(str(c.key), c.fields) for c in plan.changes if c.action.value != 'no-op']}"
        assert not plan.diagnostics, f"trial {trial}: {plan.diagnostics}"
        sandbox.stop()
    print(f"20 kills: {partial} left a partly applied tenant, {journals} a journal to replay, {intents} an intent "
          f"to settle, {hidden} hidden triggers, {lost} lost records")
    assert hidden == 0 and lost == 0
    assert partial >= 5, f"only {partial} of 20 kills landed mid-apply; the kill points are not spread enough"
    assert journals >= 5, f"only {journals} of 20 kills left a journal: the replay was hardly tried"


@pytest.mark.slow
def test_200_resources_under_faults_and_a_rate_limit(sandbox_factory: Callable[..., Sandbox], tmp_path: Path) -> None:
    # Faults where the tenant says it did nothing (429, 503 with Retry-After): every write may be
    # retried, so one apply completes. Faults that leave a write in doubt are the fault matrix's.
    sandbox = sandbox_factory(seed=5, fault_rate=0.2, fault_kinds=("429", "503"), retry_after_s=0, rate_limit=150,
                              rate_burst=20)
    observer = Introspection(sandbox.base_url, TOKEN)
    docs: list[dict[str, Any]] = [
        {"kind": "Credential", "metadata": {"name": f"cred-{i:02d}"},
         "spec": {"connector": "postgres", "authType": "basic", "username": "${env:USER}", "password": "${env:PW}"}}
        for i in range(20)]
    for i in range(180):
        spec: dict[str, Any] = {"appId": "postgres-crawler", "connection": {"name": f"c{i}"}, "inputs": {}}
        if i % 2:
            spec["credentialRef"] = f"cred-{i % 20:02d}"
        else:
            spec["inputs"] = {"extraction_method": "agent", "agent_json": {"agent": "a"}}
        if i % 3 == 0:
            spec["schedules"] = [{"cron": "0 1 * * *"}]
        docs.append({"kind": "App", "metadata": {"name": f"app-{i:03d}"}, "spec": spec})
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "all.yaml").write_text(yaml.safe_dump_all([{"apiVersion": "reconciler/v1", **d} for d in docs]))

    # No budget given to the client: apply must install its own, shared and throttle-aware.
    with ApiClient(sandbox.base_url, TOKEN, max_retries=10, backoff_factor=0.005) as client:
        _, report = apply([str(folder)], client, api_key=TOKEN, env=ENV, tenant_id=sandbox.base_url, parallelism=8)
        assert not report.failed, [(str(o.change.key), o.message) for o in report.outcomes if o.status.value != "applied"]
        stats = observer.stats()
        assert stats["faults_total"] >= 50 and stats["faults"].get("rate-limit", 0) >= 1
        # Every fault and every throttled request was retried once, and it shows in the report.
        assert sum(report.retries.values()) == stats["faults_total"]
        assert f"{sum(report.retries.values())} retries" in render.report_text(report)
        assert client.budget is not None and client.budget.lowest < 8  # it slowed down when throttled
        plan = make_plan([str(folder)], client, api_key=TOKEN, env=ENV, tenant_id=sandbox.base_url).plan
        assert not plan.has_changes
    state = observer.state()
    assert sorted(a["name"] for a in state["apps"].values()) == [f"app-{i:03d}" for i in range(180)]
    assert sorted(c["record"]["name"] for c in state["credentials"].values()) == [f"cred-{i:02d}" for i in range(20)]
    assert len(state["schedules"]) == 60


FAULT_MATRIX = ["429", "500", "502", "503", "504", "drop", "drop-after", "all+rate-limit"]
MATRIX_FIGURES: dict[str, str] = {}


def matrix_manifests(folder: Path) -> dict[str, int]:
    """100 resources: 10 credentials, 90 apps (a third with a schedule, some with a run on create);
    returns the schedules each app declares."""
    docs: list[dict[str, Any]] = [
        {"kind": "Credential", "metadata": {"name": f"mx-cred-{i}"},
         "spec": {"connector": "postgres", "authType": "basic", "host": f"db{i}.example.com",
                  "username": "${env:USER}", "password": "${env:PW}"}} for i in range(10)]
    schedules = {}
    for i in range(90):
        spec: dict[str, Any] = {"appId": "postgres-crawler", "connection": {"name": f"c{i}"}, "credentialRef": f"mx-cred-{i % 10}",
                                "inputs": {"temp_table_regex": f"^t{i}"}}
        if i % 3 == 0:
            spec["schedules"] = [{"cron": f"{i % 60} 1 * * *", "timezone": "Europe/Paris"}]
        if i % 15 == 0:
            spec["run"] = {"onCreate": True}
        schedules[f"mx-app-{i:02d}"] = len(spec.get("schedules") or [])
        docs.append({"kind": "App", "metadata": {"name": f"mx-app-{i:02d}"}, "spec": spec})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "all.yaml").write_text(yaml.safe_dump_all([{"apiVersion": "reconciler/v1", **d} for d in docs]))
    return schedules


def settle_in_process(folder: Path, tenant_id: str, tenant: dict[str, Any]) -> int:
    """``settle_intents`` without a process per intent: the same resolve, under the same lock."""
    from reconciler.lock import state_lock
    from reconciler.state import StateFile, resolve_intent

    settled = 0
    with state_lock(folder / "reconciler.state.json", 10):
        state = StateFile.load(folder / "reconciler.state.json", ".")
        records = state.tenant(tenant_id)
        recorded = {s["trigger_id"] for r in records.resources.values() for s in r.get("schedules") or []}
        for key, intent in records.intents():
            slug = records.resources[key].get("slug")
            found = [t for t, s in tenant["schedules"].items() if t not in recorded and s["slug"] == slug
                     and (s["cron"], s["timezone"]) == (intent.get("cron"), intent.get("timezone"))]
            attached = found[0] if found and intent["action"] == "schedule" else None
            recorded |= set(found[:1])
            resolve_intent(records, key, intent_id=intent["id"], attached=attached)
            settled += 1
        state.save()
    return settled


@pytest.mark.slow
@pytest.mark.parametrize("kind", FAULT_MATRIX)
def test_fault_matrix_converges_with_every_object_exactly_once(kind: str, sandbox_factory: Callable[..., Sandbox],
                                                               tmp_path: Path) -> None:
    from reconciler.engine import apply as run_apply

    faults: dict[str, Any] = {"fault_rate": 0.3, "fault_kinds": (kind,), "retry_after_s": 0}
    if kind == "all+rate-limit":
        faults.update(fault_kinds=("429", "500", "502", "503", "504", "drop", "drop-after"), rate_limit=150, rate_burst=20)
    sandbox = sandbox_factory(seed=11, run_pending_s=0.01, run_running_s=0.01, **faults)
    observer = Introspection(sandbox.base_url, TOKEN)
    folder = tmp_path / "m"
    expected = matrix_manifests(folder)
    runs = intents = retries = 0
    with ApiClient(sandbox.base_url, TOKEN, max_retries=10, backoff_factor=0.002, backoff_max=0.05) as client:
        for runs in range(1, 6):  # noqa: B007 - read after the loop: how many applies it took
            _, report = run_apply([str(folder)], client, api_key=TOKEN, env=ENV, tenant_id=sandbox.base_url, parallelism=8)
            retries = sum(report.retries.values())
            statuses = {o.status.value for o in report.outcomes}
            assert statuses <= {"applied", "unverified", "failed", "skipped"}
            intents += settle_in_process(folder, sandbox.base_url, observer.state())
            if not report.failed:
                break
        state = observer.state()
        apps = [a for a in state["apps"].values() if not a["archived"]]
        names = [a["name"] for a in apps]
        assert sorted(names) == sorted(expected), f"duplicated or missing apps: {sorted(names)}"
        credentials = [c["record"]["name"] for c in state["credentials"].values() if not c["archived"]]
        assert sorted(credentials) == [f"mx-cred-{i}" for i in range(10)], "duplicated or missing credentials"
        for app in apps:
            attached = [s for s in state["schedules"].values() if s["slug"] == app["slug"]]
            assert len(attached) == expected[app["name"]], f"{app['name']} has {len(attached)} triggers"
        # At most one run per run.onCreate, never a second: a submit whose answer was lost is an
        # intent the user settles, not a retry.
        slugs = [r["slug"] for r in state["runs"].values()]
        assert len(slugs) == len(set(slugs)) and len(slugs) <= 6
        observer.post("config", {"fault_rate": 0.0, "rate_limit": 0})
        plan = make_plan([str(folder)], client, api_key=TOKEN, env=ENV, tenant_id=sandbox.base_url).plan
        assert not plan.has_changes and not plan.diagnostics, [str(c.key) for c in plan.changes if c.action.value != "no-op"]
    faults_total = observer.stats()["faults_total"]
    MATRIX_FIGURES[kind] = (f"{kind:>15}: {faults_total} faults, {retries} retries, {runs} apply run(s), "
                            f"{intents} intent(s) settled, 0 duplicates")
    print(MATRIX_FIGURES[kind])
