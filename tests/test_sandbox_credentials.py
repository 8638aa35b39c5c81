"""Credentials matter to the sandbox the way they do to a tenant: App create/update refuse a guid
that does not exist, a run whose credential is deleted or failing as it ends ends Failed (App and
legacy runs, through our client, through pyatlan, and through `reconciler apply --wait`), the
username is read back, and a restart with the same seed on a state file never mints a stored id."""

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

from reconciler.client import ApiClient
from reconciler.errors import InvalidRequestError
from reconciler.sandbox import Sandbox
from reconciler.sandbox.store import ManualClock
from tests.conftest import TOKEN, Introspection, connection, fast_config, raw_credential, read_lines_until
from tests.test_apply import CRED, SECRETS, app, manifests

DEFAULT_GUID_FIELD = "inputs.connection.attributes.defaultCredentialGuid"


def pg_inputs(name: str, guid: str = "", **extra: Any) -> dict[str, Any]:
    """Inputs reusing a vaulted credential the way the UI and `reconciler apply` do: on the connection."""
    attributes = {"defaultCredentialGuid": guid} if guid else {}
    return {"connection": connection("postgres", name, **attributes), "credential_guid": "", **extra}


def new_credential(client: ApiClient, name: str, **overrides: Any) -> str:
    return str(client.create_credential({**raw_credential("postgres", name), **overrides}, test=False)["id"])


def run_to_the_end(client: ApiClient, clock: ManualClock, sandbox: Sandbox, run_id: str) -> dict[str, Any]:
    clock.advance(sandbox.config.run_pending_s + sandbox.config.run_running_s + 1)
    return client.get_run(run_id)


@pytest.fixture
def clock(sandbox: Sandbox) -> ManualClock:
    sandbox.store.clock = manual = ManualClock()  # runs move only when the test says so
    return manual


# -- 1. a credential guid must exist --------------------------------------------------------------------


def test_create_and_update_refuse_a_credential_that_does_not_exist(client: ApiClient) -> None:
    for inputs, field in ((pg_inputs("pg", "0b5e1d8c-0000-4000-8000-000000000000"), DEFAULT_GUID_FIELD),
                          ({**pg_inputs("pg"), "credential_guid": "no-such-guid"}, "inputs.credential_guid")):
        with pytest.raises(InvalidRequestError) as err:
            client.create_app("postgres-crawler", "pg", inputs)
        assert err.value.status == 400 and [e.location for e in err.value.field_errors] == [field]
        assert field in str(err.value)  # the message names the field too
    guid = new_credential(client, "c")
    slug = client.create_app("postgres-crawler", "pg", pg_inputs("pg", guid)).slug
    client.archive_credential(guid)
    with pytest.raises(InvalidRequestError) as err:  # purged since: an update naming it is refused
        client.update_app(slug, pg_inputs("pg", guid, temp_table_regex="x"))
    assert [e.location for e in err.value.field_errors] == [DEFAULT_GUID_FIELD]
    # A raw credential replaces the connection's guid, so a stale one there does not matter.
    assert client.update_app(slug, {**pg_inputs("pg", guid), "credential": raw_credential("postgres", "c2")})["version"]


# -- 1. runs fail on a deleted or failing credential ----------------------------------------------------


def test_a_credential_purged_while_the_run_is_in_flight_fails_it(sandbox: Sandbox, client: ApiClient,
                                                                clock: ManualClock) -> None:
    purged, kept = new_credential(client, "purged"), new_credential(client, "kept")
    in_flight = client.create_app("postgres-crawler", "in-flight", pg_inputs("in-flight", purged), run=True)
    finished = client.create_app("postgres-crawler", "finished", pg_inputs("finished", kept), run=True)
    clock.advance(sandbox.config.run_pending_s + sandbox.config.run_running_s / 2)
    client.archive_credential(purged)  # between submit and the run's end
    assert client.get_run(in_flight.run_id)["status"] == "Running"
    ended = run_to_the_end(client, clock, sandbox, str(in_flight.run_id))
    assert ended["status"] == "Failed"
    assert ended["message"] == f"credential {purged} was deleted (archived); the run cannot authenticate to the source"
    assert client.get_run(finished.run_id)["status"] == "Succeeded"
    # A purge after a run ended does not rewrite it; a run submitted after the purge fails.
    client.archive_credential(kept)
    assert client.get_run(finished.run_id)["status"] == "Succeeded" and "message" not in client.get_run(finished.run_id)
    assert run_to_the_end(client, clock, sandbox, client.submit_run(finished.slug)["run_id"])["status"] == "Failed"


def test_a_credential_marked_failing_fails_runs_that_end_while_it_is(sandbox: Sandbox, client: ApiClient,
                                                                   introspect: Introspection, clock: ManualClock) -> None:
    guid = new_credential(client, "flaky", host="flaky.example.com")
    slug = client.create_app("postgres-crawler", "pg", pg_inputs("pg", guid)).slug
    first = client.submit_run(slug)["run_id"]
    introspect.post("failing-credentials", {"matchers": [{"host": "flaky.example.com", "_reason": "password expired"}]})
    ended = run_to_the_end(client, clock, sandbox, first)
    assert (ended["status"], ended["message"]) == ("Failed", f"credential {guid} failed its test: password expired")
    # Fixing the credential later does not rewrite the finished run; the next run succeeds.
    client.update_credential(guid, {"host": "fixed.example.com"})
    assert client.get_run(first)["status"] == "Failed"
    second = client.submit_run(slug)["run_id"]
    assert run_to_the_end(client, clock, sandbox, second)["status"] == "Succeeded"
    introspect.post("failing-credentials", {"matchers": [{"username": "svc"}]})  # matches the vaulted secret too
    third = client.submit_run(slug)["run_id"]
    assert run_to_the_end(client, clock, sandbox, third)["status"] == "Failed"
    introspect.post("failing-credentials", {"matchers": [{"username": "nobody"}]})
    assert [client.get_run(r)["status"] for r in (first, second, third)] == ["Failed", "Succeeded", "Failed"]


def test_a_legacy_run_fails_when_its_template_credential_is_purged(sandbox: Sandbox, client: ApiClient,
                                                                  clock: ManualClock) -> None:
    name = "atlan-postgres-1795260536"
    connection_json = '{"typeName": "Connection", "attributes": {"defaultCredentialGuid": "{{credentialGuid}}"}}'
    body = {
        "metadata": {"name": name, "annotations": {"package.argoproj.io/name": "@atlan/postgres"}},
        "spec": {"templates": [{"name": "main", "dag": {"tasks": [{"name": "run", "arguments": {"parameters": [
            {"name": "connection", "value": connection_json}]}}]}}]},
        "payload": [{"parameter": "credentialGuid", "type": "credential", "body": raw_credential("postgres", "p")}],
    }
    client.call("POST", "workflows", params={"submit": "true"}, body=body)
    [template] = client.find_templates(name)
    guid = next(c["id"] for c in client.list_credentials({"name": "p"}))
    assert guid in template["spec"]["templates"][0]["dag"]["tasks"][0]["arguments"]["parameters"][0]["value"]
    run = client.rerun_template(name)["metadata"]["name"]
    seeded = client.rerun_template("atlan-snowflake-1714638001")["metadata"]["name"]  # names a guid never issued here
    clock.advance(sandbox.config.run_pending_s + sandbox.config.run_running_s / 2)
    client.archive_credential(guid)
    clock.advance(sandbox.config.run_running_s)
    status = {hit["_source"]["metadata"]["name"]: hit["_source"]["status"] for hit in client.search_runs({"match_all": {}})}
    assert status[run]["phase"] == "Failed"
    assert status[run]["message"] == f"credential {guid} was deleted (archived); the run cannot authenticate to the source"
    assert status[seeded]["phase"] == "Succeeded"


# -- 3. the username is read back ----------------------------------------------------------------------


def test_username_is_read_back_and_the_password_never(client: ApiClient, introspect: Introspection) -> None:
    guid = new_credential(client, "c", username="loader", password="pw-1")
    got = client.get_credential(guid)
    [listed] = client.list_credentials({"name": "c"})
    for answer in (got, listed, client.update_credential(guid, {"host": "h2.example.com"})):
        assert answer["username"] == "loader" and "password" not in answer and "pk-secret" not in str(answer)
    assert introspect.state()["credentials"][guid]["secrets"]["password"] == "pw-1"  # kept on update


# -- 2. a restart with the same seed never reuses a stored id -------------------------------------------


def _one_life(sandbox: Sandbox, tag: str) -> dict[str, set[str]]:
    """Create credentials, apps (with runs) and schedules; the ids minted."""
    minted: dict[str, set[str]] = {"credentials": set(), "apps": set(), "runs": set(), "schedules": set()}
    with ApiClient(sandbox.base_url, TOKEN) as client:
        for i in range(3):
            guid = new_credential(client, f"{tag}-c{i}")
            created = client.create_app("postgres-crawler", f"pg-{i}" if tag == "first" else f"{tag}-{i}",
                                        pg_inputs(f"{tag}-{i}", guid), run=True, schedule={"cron": "0 1 * * *"})
            minted["credentials"].add(guid)
            minted["apps"].add(created.slug)
            minted["runs"].add(str(created.run_id))
            minted["schedules"].add(str(client.add_schedule(created.slug, "0 2 * * *", "UTC")["trigger_id"]))
            minted["schedules"].add(str(created.schedule_trigger_id))
        vaulted = client.create_app("postgres-crawler", f"{tag}-vaulted", {**pg_inputs(f"{tag}-v"),
                                    "credential": raw_credential("postgres", f"{tag}-raw")})
        minted["apps"].add(vaulted.slug)
        minted["credentials"].add(client.get_app(vaulted.slug)["dag"]["extract"]["inputs"]["args"]["credential_guid"])
    return minted


def _ids(state: dict[str, Any]) -> dict[str, set[str]]:
    return {kind: set(state[kind]) for kind in ("credentials", "apps", "runs", "schedules")}


def test_a_restart_with_the_same_seed_loses_nothing_and_mints_no_stored_id(tmp_path: Path) -> None:
    state_file = tmp_path / "tenant.json"
    with Sandbox(fast_config(state_file=str(state_file), seed=7)).start() as first:
        first_ids = _one_life(first, "first")
        first_state = Introspection(first.base_url, TOKEN).state()
    shutil.copy(state_file, tmp_path / "twin.json")
    with Sandbox(fast_config(state_file=str(state_file), seed=7)).start() as second:
        second_ids = _one_life(second, "second")
        second_state = Introspection(second.base_url, TOKEN).state()
    for kind, ids in first_ids.items():
        assert not ids & second_ids[kind], f"{kind}: the second life re-minted {ids & second_ids[kind]}"
        assert _ids(second_state)[kind] == ids | second_ids[kind]
        for key in ids:  # every record of the first life is untouched
            assert second_state[kind][key] == first_state[kind][key]
    assert len(second_state["credentials"]) == 8 and len(second_state["schedules"]) == 12
    # Repeatable: the same seed on the same stored state mints the same ids.
    with Sandbox(fast_config(state_file=str(tmp_path / "twin.json"), seed=7)).start() as twin:
        assert _one_life(twin, "second") == second_ids


def test_serve_with_the_same_seed_on_a_state_file_keeps_the_first_lifes_ids(tmp_path: Path) -> None:
    """`reconciler sandbox serve --seed 11` on the state file of an earlier life seeded 11 (whose
    first minted id was a credential guid): the guid is not minted again, the credential survives."""
    state_file = tmp_path / "sb.json"
    with Sandbox(fast_config(state_file=str(state_file), seed=11)).start() as first, \
            ApiClient(first.base_url, TOKEN) as client:
        before = new_credential(client, "before")
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "sandbox", "serve", "--token", TOKEN, "--seed", "11",
                             "--state-file", str(state_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        lines = read_lines_until(proc, lambda seen: len(seen) >= 4, timeout=30)
        with ApiClient(lines[2].strip().removeprefix("export ATLAN_BASE_URL="), TOKEN) as client:
            after = new_credential(client, "after")
            assert {c["name"]: c["id"] for c in client.list_credentials()} == {"before": before, "after": after}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert after != before
    assert {c["record"]["name"] for c in json.loads(state_file.read_text())["credentials"].values()} == {"before", "after"}


# -- through pyatlan ------------------------------------------------------------------------------------


def test_pyatlan_refused_made_up_guid_and_failed_run_after_purge(sandbox: Sandbox, clock: ManualClock) -> None:
    pytest.importorskip("pyatlan")
    from pyatlan.client.atlan import AtlanClient
    from pyatlan.errors import InvalidRequestError as SdkInvalidRequest
    from pyatlan.model.apps.postgres_crawler import PostgresCrawler

    atlan = AtlanClient(base_url=sandbox.base_url, api_key=TOKEN)
    with pytest.raises(SdkInvalidRequest) as refused:
        PostgresCrawler(atlan).credential_guid("5d1c0c55-0000-4000-8000-00000000beef").connection(name="pg").create(name="pg")
    assert "inputs.credential_guid" in str(refused.value)

    created = (PostgresCrawler(atlan).basic(username="u", password="p", host="pg.example.com", port=5432, database="db")
               .connection(name="pg").create(name="pg"))
    args = atlan.app.get(created.slug).dict()["dag"]["extract"]["inputs"]["args"]
    with pytest.raises(SdkInvalidRequest) as refused:  # a made-up guid on the connection, as the UI shape
        atlan.app.update(created.slug, inputs={"connection": connection(
            "postgres", "pg", defaultCredentialGuid="5d1c0c55-0000-4000-8000-00000000beef"), "credential_guid": ""})
    assert DEFAULT_GUID_FIELD in str(refused.value)

    # The SDK's round trip keeps the username now that it is read back.
    fetched = atlan.credentials.get(args["credential_guid"])
    assert fetched.username == "u"
    again = fetched.to_credential()
    again.password = "p2"
    assert atlan.credentials.test_and_update(again).username == "u"

    run = atlan.app.submit(created.slug)
    clock.advance(sandbox.config.run_pending_s + sandbox.config.run_running_s / 2)
    atlan.credentials.purge_by_guid(args["credential_guid"])
    clock.advance(sandbox.config.run_running_s)
    status = atlan.app.get_run(run.run_id)
    assert status.is_terminal and not status.is_success and status.status == "Failed"


# -- the reconciler end to end --------------------------------------------------------------------------


def test_apply_wait_fails_when_the_credential_is_purged_before_the_run_ends(
        sandbox_factory: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = sandbox_factory(run_pending_s=5, run_running_s=5)
    clock = sandbox.store.clock = ManualClock()
    observer = Introspection(sandbox.base_url, TOKEN)
    folder = manifests(tmp_path, CRED % ("pg-cred", "db.example.com") + "---\n"
                       + app("runner", "pg-cred", extra="  run: {onCreate: true}\n"))
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "apply", str(folder), "--auto-approve", "--wait",
                             "--wait-timeout", "60"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_cli_env(sandbox))
    try:
        # The apply has submitted the run and polled it once (Pending): purge its credential now.
        assert observer.wait(route="GET v1/app/runs/{run_id}", timeout=60), "apply never polled its run"
        state = observer.state()
        [guid] = state["credentials"]
        [run_id] = state["runs"]
        with ApiClient(sandbox.base_url, TOKEN) as client:
            client.archive_credential(guid)
        clock.advance(11)  # past the run's end: the next poll sees it Failed
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, stdout + stderr
    with ApiClient(sandbox.base_url, TOKEN) as client:
        reason = client.get_run(run_id)["message"]
    assert guid in reason and "was deleted" in reason  # why: the sandbox says so (see below)
    # The report marks the run as the failure it is, says why, and counts it; so does the error.
    assert f"✗ run submitted App/runner (run {run_id}: Failed): {reason}" in stdout.splitlines()
    assert "1 run did not succeed" in stdout.splitlines()[-1]
    assert f"apply did not complete: run {run_id} of App/runner Failed ({reason})" in stderr


def _cli_env(sandbox: Sandbox) -> dict[str, str]:
    env = {**os.environ, "ATLAN_BASE_URL": sandbox.base_url, "ATLAN_API_KEY": TOKEN, **SECRETS}
    env.pop("RECONCILER_FINGERPRINT_KEY", None)
    return env
