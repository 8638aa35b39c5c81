"""The state file on its own: projects kept apart, old files migrated, malformed files refused
with where they are wrong, and intents settled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import ReconcilerError
from reconciler.state import StateFile, project_key, resolve_intent

TENANT = "https://acme.atlan.com/"


def test_each_project_reads_and_writes_only_its_own_records(tmp_path: Path) -> None:
    path = tmp_path / "shared.json"
    a = StateFile.load(path, project_key(tmp_path / "team-a", path), "same-name")
    a.put(TENANT, "App/a", {"slug": "a-1"})
    b = StateFile.load(path, project_key(tmp_path / "team-b", path), "same-name")
    assert b.tenant(TENANT).resources == {}  # a's records are not b's
    b.put(TENANT, "App/b", {"slug": "b-1"})
    # Writers hold the state lock from load to last write, so the next one loads what b wrote (from
    # the journal: nobody has compacted it yet, and each load replays it, other projects' lines too).
    a = StateFile.load(path, project_key(tmp_path / "team-a", path), "same-name")
    a.put(TENANT, "App/a2", {"slug": "a-2"})
    assert not path.exists() and a.journal_path.exists()
    a.compact()
    assert not a.journal_path.exists()
    data = json.loads(path.read_text())
    assert sorted(data["projects"]) == ["team-a", "team-b"]
    assert sorted(data["projects"]["team-a"]["tenants"][TENANT]["resources"]) == ["App/a", "App/a2"]
    assert sorted(data["projects"]["team-b"]["tenants"][TENANT]["resources"]) == ["App/b"]
    assert data["projects"]["team-a"]["name"] == data["projects"]["team-b"]["name"] == "same-name"


def test_a_format_1_file_is_read_as_this_projects_and_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"format": 1, "tenants": {TENANT: {"resources": {"App/x": {"slug": "x-1"}}}}}))
    state = StateFile.load(path, ".", "p")
    assert state.migrated and state.tenant(TENANT).get("App/x") == {"slug": "x-1"}
    state.save()
    assert json.loads(path.read_text())["projects"]["."]["tenants"][TENANT]["resources"]["App/x"] == {"slug": "x-1"}


@pytest.mark.parametrize("content, where", [
    ("{not json", "cannot be read"),
    (json.dumps({"format": 9}), "is not a format-2"),
    (json.dumps({"format": 2, "projects": []}), "is not a format-2"),
    (json.dumps({"format": 2, "projects": {".": []}}), "the entry of project '.' is not a mapping"),
    (json.dumps({"format": 2, "projects": {".": {"tenants": {TENANT: {"resources": []}}}}}), "are not a mapping"),
    (json.dumps({"format": 2, "projects": {".": {"tenants": {TENANT: {"resources": {"App/x": 3}}}}}}),
     "the record of App/x is not a mapping"),
    (json.dumps({"format": 2, "projects": {".": {"tenants": {TENANT: {"resources": {"nokind": {}}}}}}}),
     "record key 'nokind' is not KIND/NAME"),
])
def test_a_malformed_state_file_is_refused_saying_where(tmp_path: Path, content: str, where: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(ReconcilerError, match=where) as caught:
        StateFile.load(path, ".")
    assert str(path) in str(caught.value) and caught.value.hint
    assert path.read_text() == content  # left as it was


def test_resolve_intent_names_what_it_settles(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "s.json")
    tenant = state.tenant(TENANT)
    intents = [{"id": "i1", "action": "schedule", "cron": "0 1 * * *", "timezone": "UTC", "version": 3, "at": "t"},
               {"id": "i2", "action": "run", "at": "t"}]
    tenant.resources["App/x"] = {"slug": "x-1", "schedules": [], "intents": intents}
    with pytest.raises(ReconcilerError, match="has 2 unverified intents: i1 .*, i2"):
        resolve_intent(tenant, "App/x", intent_id=None, attached=None)
    with pytest.raises(ReconcilerError, match="is a run, not a schedule"):
        resolve_intent(tenant, "App/x", intent_id="i2", attached="t-9")
    done = resolve_intent(tenant, "App/x", intent_id="i1", attached="t-9")
    assert done == "App/x: schedule '0 1 * * *' (UTC) of t recorded as attached (trigger t-9)"
    assert tenant.get("App/x")["schedules"] == [{"trigger_id": "t-9", "cron": "0 1 * * *", "timezone": "UTC", "version": 3}]
    assert resolve_intent(tenant, "App/x", intent_id=None, attached=None) == "App/x: run of t recorded as absent"
    assert "intents" not in tenant.get("App/x")
    with pytest.raises(ReconcilerError, match="has no unverified intent"):
        resolve_intent(tenant, "App/x", intent_id=None, attached=None)


def test_state_commands_refuse_a_project_file_that_does_not_load(tmp_path: Path) -> None:
    """A reconciler.yaml that fails its schema says where the state file is no longer: the state
    commands stop on it instead of reading the default file as if nothing were wrong."""
    import subprocess
    import sys

    (tmp_path / "reconciler.yaml").write_text("apiVersion: reconciler/v1\nkind: Project\nmetadata: {name: p}\n"
                                              "spec: {stateFile: 7}\n")
    done = subprocess.run([sys.executable, "-m", "reconciler", "state", "list", "--project", "."], capture_output=True,
                          text=True, cwd=tmp_path, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 1 and "reconciler.yaml:4:" in done.stderr and "stateFile" in done.stderr, done.stderr


# -- the journal -----------------------------------------------------------------------------------------


def test_changes_go_to_the_journal_and_compaction_folds_them_in(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = StateFile.load(path, ".", "p")
    state.put(TENANT, "App/a", {"slug": "a-1"})
    state.put_many(TENANT, {"App/b": {"slug": "b-1"}, "App/c": {"slug": "c-1"}})
    state.put(TENANT, "App/c", None)
    assert not path.exists() and state.writes == {"appends": 3, "rewrites": 0}
    again = StateFile.load(path, ".", "p")  # what a read-only command sees: the journal, replayed
    assert sorted(again.tenant(TENANT).resources) == ["App/a", "App/b"]
    assert not path.exists()  # and it wrote nothing
    state.compact()
    assert state.writes["rewrites"] == 1 and not state.journal_path.exists()
    assert sorted(json.loads(path.read_text())["projects"]["."]["tenants"][TENANT]["resources"]) == ["App/a", "App/b"]
    state.compact()  # nothing left to fold: nothing written
    assert state.writes["rewrites"] == 1


def test_a_line_cut_short_by_a_kill_is_ignored_and_a_broken_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = StateFile.load(path, ".", "p")
    state.put(TENANT, "App/a", {"slug": "a-1"})
    with state.journal_path.open("a") as fh:
        fh.write('{"project": ".", "tenant": "' + TENANT + '", "key": "App/b", "rec')  # killed mid-append
    assert sorted(StateFile.load(path, ".", "p").tenant(TENANT).resources) == ["App/a"]
    # The next apply appends after it: the cut-short line goes first, or it would sit mid-journal.
    writer = StateFile.load(path, ".", "p")
    writer.put(TENANT, "App/c", {"slug": "c-1"})
    assert sorted(StateFile.load(path, ".", "p").tenant(TENANT).resources) == ["App/a", "App/c"]
    with state.journal_path.open("a") as fh:  # damage that no kill makes: refused, with where it is
        fh.write('{"project": "."\n' + json.dumps({"project": ".", "tenant": TENANT, "key": "App/d", "record": {}}) + "\n")
    with pytest.raises(ReconcilerError, match="malformed at line 3"):
        StateFile.load(path, ".", "p")
    state.journal_path.write_text(json.dumps({"project": ".", "tenant": TENANT, "key": "Nope/x", "record": {}}) + "\n")
    with pytest.raises(ReconcilerError, match="line 1"):
        StateFile.load(path, ".", "p")


def test_threads_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    import concurrent.futures

    path = tmp_path / "state.json"
    state = StateFile.load(path, ".", "p")
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: state.put(TENANT, f"App/a{n}", {"slug": f"s{n}"}), range(200)))
    assert state.writes["appends"] <= 200 and state.writes["rewrites"] == 0
    assert len(StateFile.load(path, ".", "p").tenant(TENANT).resources) == 200
    assert len(state.journal_path.read_text().splitlines()) == 200


def test_an_apply_rewrites_the_file_once_however_many_changes(sandbox: Any, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import reconciler.state as state_module
    from reconciler.client import ApiClient
    from reconciler.engine import apply
    from tests.conftest import TOKEN

    rewrites: list[Path] = []
    real = state_module.write_text_atomic
    monkeypatch.setattr(state_module, "write_text_atomic", lambda p, text: (rewrites.append(p), real(p, text))[1])
    folder = tmp_path / "m"
    folder.mkdir()
    docs = [f"apiVersion: reconciler/v1\nkind: App\nmetadata: {{name: app-{i:02d}}}\nspec:\n  appId: postgres-crawler\n"
            f"  connection: {{name: c{i}}}\n  inputs: {{extraction_method: agent, agent_json: {{agent: a}}}}\n"
            f"  schedules: [{{cron: '0 {i} * * *'}}]\n" for i in range(20)]
    (folder / "apps.yaml").write_text("---\n".join(docs))
    with ApiClient(sandbox.base_url, TOKEN) as client:
        _, report = apply([str(folder)], client, api_key=TOKEN, env={}, parallelism=8)
    assert not report.failed and len(report.outcomes) == 20
    state_file = folder / "reconciler.state.json"
    assert rewrites == [state_file]  # once, at the end: the changes went to the journal (and it is gone)
    assert not (folder / "reconciler.state.json.journal").exists()
    assert len(StateFile.load(state_file).tenant(sandbox.base_url).resources) == 20
