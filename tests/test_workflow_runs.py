"""Re-running a legacy workflow after a change (``run: {onUpdate: true}`` on a Workflow), as the
SDK's ``client.workflow.rerun(wf, idempotent=True)`` does: once per change, never while a run of
the template is Pending or Running, never twice for one lost answer, and followed by --wait."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reconciler.client import ApiClient
from reconciler.sandbox import Sandbox
from tests.conftest import TOKEN, Introspection
from tests.test_apply import cli, manifests
from tests.test_safe_apply import apply_with_faults

TEMPLATE = "atlan-snowflake-miner-1714638976"


def workflow(value: str, run: str = "  run: {onUpdate: true}\n") -> str:
    return (f"apiVersion: reconciler/v1\nkind: Workflow\nmetadata: {{name: {TEMPLATE}}}\n"
            f"spec:\n  parameters: {{enable-lineage: {value}}}\n{run}")


def runs_of(introspect: Introspection) -> list[dict[str, object]]:
    return [r for r in introspect.state()["workflow_runs"].values() if r["template"] == TEMPLATE]


def test_a_change_reruns_the_template_once_and_wait_follows_it(sandbox: Sandbox, introspect: Introspection,
                                                                tmp_path: Path) -> None:
    folder = manifests(tmp_path, workflow("true"))
    planned = cli(sandbox, "plan", str(folder), cwd=tmp_path)
    assert f"> Workflow/{TEMPLATE} (run: run.onUpdate)" in planned.stdout, planned.stdout
    assert "Plan: 0 to create, 1 to update, 0 to delete, 1 run to submit." in planned.stdout
    done = cli(sandbox, "apply", str(folder), "--auto-approve", "--wait", "--wait-timeout", "60", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    [run] = runs_of(introspect)
    assert f"✓ run submitted Workflow/{TEMPLATE} (run {run['name']}: " in done.stdout
    assert f"run {run['name']} of Workflow/{TEMPLATE}: Succeeded" in done.stderr
    # Converged: no change, so no run either.
    again = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path)
    assert again.returncode == 0 and "No changes." in again.stdout
    assert len(runs_of(introspect)) == 1
    # Without run.onUpdate a change re-runs nothing.
    quiet = manifests(tmp_path, workflow("false", run=""), name="quiet")
    assert cli(sandbox, "apply", str(quiet), "--auto-approve", cwd=tmp_path).returncode == 0
    assert len(runs_of(introspect)) == 1


def test_never_a_second_run_while_one_is_in_flight(sandbox_factory: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = sandbox_factory(run_pending_s=60, run_running_s=60)
    introspect = Introspection(sandbox.base_url, TOKEN)
    with ApiClient(sandbox.base_url, TOKEN) as client:
        in_flight = client.rerun_template(TEMPLATE)["metadata"]["name"]
    done = cli(sandbox, "apply", str(manifests(tmp_path, workflow("true"))), "--auto-approve", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"a run is already in flight: {in_flight} is Pending; not started again" in done.stdout
    assert [r["name"] for r in runs_of(introspect)] == [in_flight]
    record = _record(tmp_path)
    assert "intents" not in record and "runPending" not in record  # settled: nothing owed, nothing unverified


def test_a_lost_answer_to_the_rerun_is_never_sent_again(sandbox: Sandbox, introspect: Introspection,
                                                        tmp_path: Path) -> None:
    folder = manifests(tmp_path, workflow("true"))
    lost = apply_with_faults(sandbox, introspect, folder, tmp_path, "POST workflows/submit")
    assert lost.returncode == 1, lost.stdout + lost.stderr
    assert f"? unverified Workflow/{TEMPLATE}" in lost.stdout
    assert len(runs_of(introspect)) == 1  # the tenant did act on it
    [intent] = _record(tmp_path)["intents"]
    assert intent["action"] == "run"
    plan = cli(sandbox, "plan", str(folder), cwd=tmp_path)
    assert "RC107" in plan.stdout and "a run may have been submitted" in plan.stdout
    again = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(runs_of(introspect)) == 1  # not submitted twice
    assert _record(tmp_path)["intents"] == [intent]  # an unchanged template keeps its unverified run
    assert "RC107" in cli(sandbox, "plan", str(folder), cwd=tmp_path).stdout


def test_a_refused_update_owes_no_run(sandbox: Sandbox, introspect: Introspection, tmp_path: Path) -> None:
    folder = manifests(tmp_path, workflow("true"))
    refused = apply_with_faults(sandbox, introspect, folder, tmp_path, "POST workflows/{name}", "400")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "runPending" not in _record(tmp_path) and runs_of(introspect) == []
    plan = cli(sandbox, "plan", str(folder), cwd=tmp_path)
    assert "1 run to submit" in plan.stdout and "owed" not in plan.stdout  # the run the change itself asks for


def test_a_run_owed_by_a_killed_apply_is_submitted_by_the_next(sandbox: Sandbox, introspect: Introspection,
                                                               tmp_path: Path) -> None:
    """The update went through and the rerun was refused outright (the tenant did nothing): the
    record keeps the run owed, the next plan shows it, and the next apply submits it."""
    folder = manifests(tmp_path, workflow("true"))
    refused = apply_with_faults(sandbox, introspect, folder, tmp_path, "POST workflows/submit", "400")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert runs_of(introspect) == []
    assert _record(tmp_path).get("runPending") is True
    plan = cli(sandbox, "plan", str(folder), cwd=tmp_path)
    assert f"> Workflow/{TEMPLATE} (run: a run was owed and never submitted" in plan.stdout, plan.stdout
    again = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(runs_of(introspect)) == 1
    assert "runPending" not in _record(tmp_path)


def _record(tmp_path: Path) -> dict[str, object]:
    """The Workflow's state record ({} when there is none)."""
    import json

    path = tmp_path / "m" / "reconciler.state.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    tenants = [t for project in data["projects"].values() for t in project["tenants"].values()]
    return dict(tenants[0]["resources"].get(f"Workflow/{TEMPLATE}", {})) if tenants else {}


def test_a_kill_around_the_rerun_never_loses_it_nor_doubles_it(sandbox_factory: Callable[..., Sandbox],
                                                               tmp_path: Path) -> None:
    """Killed once the template update has reached the tenant (before, during or after the rerun's
    submit): the next apply submits the owed run, or reports the unverified one; never two."""
    import os
    import signal
    import subprocess
    import sys

    from tests.test_apply import SECRETS

    outcomes = set()
    for trial in range(4):
        sandbox = sandbox_factory(latency_ms=15, jitter_ms=15, seed=trial)
        observer = Introspection(sandbox.base_url, TOKEN)
        work = tmp_path / f"trial-{trial}"
        work.mkdir()
        folder = manifests(work, workflow("true"))
        env = {**os.environ, "ATLAN_BASE_URL": sandbox.base_url, "ATLAN_API_KEY": TOKEN, **SECRETS}
        proc = subprocess.Popen([sys.executable, "-m", "reconciler", "apply", str(folder), "--auto-approve"], cwd=work,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        route = "POST workflows/submit" if trial % 2 else "POST workflows/{name}"
        assert observer.wait(route=route, total=0, timeout=60) or proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        again = cli(sandbox, "apply", str(folder), "--auto-approve", cwd=work)
        runs = [r for r in observer.state()["workflow_runs"].values() if r["template"] == TEMPLATE]
        record = _record(work)
        assert len(runs) <= 1, f"trial {trial}: {runs}"
        assert again.returncode == 0, again.stdout + again.stderr
        if "intents" in record:
            outcomes.add("unverified")  # the submit reached the tenant, its answer did not reach us
            assert len(runs) == 1 and "RC107" in cli(sandbox, "plan", str(folder), cwd=work).stdout
        else:
            outcomes.add("submitted")
            assert len(runs) == 1 and "runPending" not in record and "intents" not in record, (trial, record, runs)
    assert outcomes, outcomes  # every trial ended in one of the two safe states


def test_wait_reports_why_a_rerun_failed(sandbox_factory: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = sandbox_factory(run_failure_rate=1.0)
    done = cli(sandbox, "apply", str(manifests(tmp_path, workflow("true"))), "--auto-approve", "--wait",
               "--wait-timeout", "60", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    [run] = runs_of(Introspection(sandbox.base_url, TOKEN))
    reason = "the run failed (the sandbox's run_failure_rate)"  # the run's status.message on the tenant
    assert f"✗ run submitted Workflow/{TEMPLATE} (run {run['name']}: Failed): {reason}" in done.stdout.splitlines()
    assert f"run {run['name']} of Workflow/{TEMPLATE} Failed ({reason})" in done.stderr
