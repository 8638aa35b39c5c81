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


def lines_of(state: StateFile) -> list[dict[str, Any]]:
    return [json.loads(line) for line in state.journal_path.read_text().splitlines()]


def test_changes_go_to_the_journal_and_compaction_folds_them_in(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = StateFile.load(path, ".", "p")
    synced: list[int] = []
    state.sync = synced.append  # each append is one fsync
    state.put(TENANT, "App/a", {"slug": "a-1"})
    state.put_many(TENANT, {"App/b": {"slug": "b-1"}, "App/c": {"slug": "c-1"}})
    state.put(TENANT, "App/c", None)
    assert not path.exists() and state.writes == {"appends": 3, "rewrites": 0} and len(synced) == 3
    assert lines_of(state)[0] == {"journal": 1, "base": ""}  # the header: it extends no file yet
    assert [line["key"] for line in lines_of(state)[1:]] == ["App/a", "App/b", "App/c", "App/c"]
    again = StateFile.load(path, ".", "p")  # what a read-only command sees: the journal, replayed
    assert sorted(again.tenant(TENANT).resources) == ["App/a", "App/b"]
    assert not path.exists() and len(lines_of(state)) == 5  # and it wrote nothing
    state.compact()
    assert state.writes["rewrites"] == 1 and not state.journal_path.exists()
    assert sorted(json.loads(path.read_text())["projects"]["."]["tenants"][TENANT]["resources"]) == ["App/a", "App/b"]
    state.compact()  # nothing left to fold: nothing written
    assert state.writes["rewrites"] == 1
    state.put(TENANT, "App/d", {"slug": "d-1"})  # a new journal, on top of the file just written
    assert lines_of(state)[0]["base"].startswith("sha256:")
    assert sorted(StateFile.load(path, ".", "p").tenant(TENANT).resources) == ["App/a", "App/b", "App/d"]


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
    assert [line.get("key") for line in lines_of(writer)] == [None, "App/a", "App/c"]
    assert sorted(StateFile.load(path, ".", "p").tenant(TENANT).resources) == ["App/a", "App/c"]
    with state.journal_path.open("a") as fh:  # damage that no kill makes: refused, with where it is
        fh.write('{"project": "."\n' + json.dumps({"project": ".", "tenant": TENANT, "key": "App/d", "record": {}}) + "\n")
    with pytest.raises(ReconcilerError, match="malformed at line 4 of 5") as refused:
        StateFile.load(path, ".", "p")
    assert "delete that line" in str(refused.value.hint)
    state.journal_path.write_text(json.dumps({"project": ".", "tenant": TENANT, "key": "Nope/x", "record": {}}) + "\n")
    with pytest.raises(ReconcilerError, match="line 1"):
        StateFile.load(path, ".", "p")
    state.journal_path.write_bytes(b'{"journal":1,"base":""}\n{"project":".","tenant":"t","key":"App/\xff","record":{}}\n')
    with pytest.raises(ReconcilerError, match="malformed at line 2"):  # never read "as well as it can"
        StateFile.load(path, ".", "p")
    state.journal_path.write_text('{"journal":2,"base":""}\n')
    with pytest.raises(ReconcilerError, match="is in format 2, not 1"):
        StateFile.load(path, ".", "p")


def test_a_kill_in_the_first_append_leaves_a_journal_the_next_writer_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    (tmp_path / "state.json.journal").write_text('{"journal":1,"ba')  # not even the header made it
    state = StateFile.load(path, ".", "p")
    assert state.tenant(TENANT).resources == {}
    state.put(TENANT, "App/a", {"slug": "a-1"})
    assert lines_of(state) == [{"journal": 1, "base": ""}, {"project": ".", "name": "p", "tenant": TENANT,
                                                            "key": "App/a", "record": {"slug": "a-1"}}]


def test_a_journal_folded_already_is_never_replayed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill between the rename of the new file and the removal of the journal leaves a journal
    whose changes are in the file: replayed again, it would undo what came after (a record forgotten
    by ``state forget`` would come back)."""
    import reconciler.state as state_module

    path = tmp_path / "state.json"
    state = StateFile.load(path, ".", "p")
    state.put(TENANT, "App/a", {"slug": "a-1"})
    state.put(TENANT, "App/b", {"slug": "b-1"})
    forgetting = StateFile.load(path, ".", "p")  # `state forget App/b`: an edit, then one whole write
    del forgetting.tenant(TENANT).resources["App/b"]
    left: list[bytes] = []
    real = state_module.write_text_atomic
    monkeypatch.setattr(state_module, "write_text_atomic",
                        lambda p, text: (real(p, text), left.append(forgetting.journal_path.read_bytes()))[0])
    forgetting.save()
    monkeypatch.undo()
    assert json.loads(left[0].splitlines()[-1])["folded"].startswith("sha256:")  # said before the rename
    forgetting.journal_path.write_bytes(left[0])  # as if killed after the rename, before the removal
    assert sorted(StateFile.load(path, ".", "p").tenant(TENANT).resources) == ["App/a"]
    writer = StateFile.load(path, ".", "p")
    writer.put(TENANT, "App/c", {"slug": "c-1"})  # starts a journal of its own over the folded one
    assert [line.get("key") for line in lines_of(writer)] == [None, "App/c"]
    assert sorted(StateFile.load(path, ".", "p").tenant(TENANT).resources) == ["App/a", "App/c"]


def test_a_journal_of_a_file_replaced_since_is_refused(tmp_path: Path) -> None:
    """A kill, then the state file replaced (a checkout, a pull): the journal's changes are in no
    file. Loud, never dropped, and never applied to a file they were not made to."""
    path = tmp_path / "state.json"
    state = StateFile.load(path, ".", "p")
    state.put(TENANT, "App/a", {"slug": "a-1"})
    state.compact()
    state.put(TENANT, "App/b", {"slug": "b-1"})  # killed here: App/b is in the journal only
    path.write_text(path.read_text().replace("a-1", "a-2"))
    with pytest.raises(ReconcilerError, match="another version of state.json") as refused:
        StateFile.load(path, ".", "p")
    assert "put back the state file" in str(refused.value.hint) and "delete the journal" in str(refused.value.hint)


def test_state_compact_folds_every_projects_changes_and_nothing_else(tmp_path: Path) -> None:
    """``reconciler state compact`` (what the apply workflow runs before committing the state file)
    folds a killed apply's journal into the file: the lines of every project sharing it, each
    project's name kept; by STATE_FILE or by the project's reconciler.yaml."""
    import subprocess
    import sys

    def compact(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "reconciler", "state", "compact", *args], capture_output=True,
                              text=True, cwd=tmp_path, timeout=60, stdin=subprocess.DEVNULL)

    path = tmp_path / "shared.json"
    a = StateFile.load(path, project_key(tmp_path / "team-a", path), "alpha")
    a.put(TENANT, "App/a", {"slug": "a-1"})
    a.compact()
    before = path.read_bytes()
    a.put(TENANT, "App/a", None)
    b = StateFile.load(path, project_key(tmp_path / "team-b", path), "beta")
    b.put_many(TENANT, {"App/b": {"slug": "b-1"}, "Credential/c": {"guid": "g-1"}})  # both killed: a journal
    done = compact(str(path))
    assert done.returncode == 0 and "Folded shared.json.journal into" in done.stdout and "(3 changes)" in done.stdout, \
        done.stdout + done.stderr
    assert not b.journal_path.exists()
    data = json.loads(path.read_text())
    assert {name: entry["name"] for name, entry in data["projects"].items()} == {"team-a": "alpha", "team-b": "beta"}
    assert data["projects"]["team-a"]["tenants"][TENANT]["resources"] == {}  # its one record, forgotten
    assert sorted(data["projects"]["team-b"]["tenants"][TENANT]["resources"]) == ["App/b", "Credential/c"]
    assert compact(str(path)).stdout == f"No journal beside {path}: nothing to fold.\n"
    assert path.read_bytes() != before

    # By the project: its reconciler.yaml names the state file.
    (tmp_path / "team-b").mkdir()
    (tmp_path / "team-b" / "reconciler.yaml").write_text("apiVersion: reconciler/v1\nkind: Project\nmetadata: {name: beta}\n"
                                                         "spec: {stateFile: ../shared.json}\n")
    b = StateFile.load(path, project_key(tmp_path / "team-b", path), "beta")
    b.put(TENANT, "App/b2", {"slug": "b-2"})
    done = compact("--project", "team-b")
    assert done.returncode == 0 and "(1 change)" in done.stdout, done.stdout + done.stderr
    assert sorted(json.loads(path.read_text())["projects"]["team-b"]["tenants"][TENANT]["resources"]) == \
        ["App/b", "App/b2", "Credential/c"]
    # A journal it cannot read is refused with where, and left in place.
    b.journal_path.write_text('{"journal":1,"base":""}\n{broken\n{"project":"team-b"}\n')
    done = compact(str(path))
    assert done.returncode == 1 and "malformed at line 2" in done.stderr and b.journal_path.exists(), done.stderr


def test_threads_writing_at_once_share_one_fsync(tmp_path: Path) -> None:
    """Group commit: while one append is being synced, the changes of every other worker queue up
    and go to disk together, in the next append, with one fsync."""
    import threading

    path = tmp_path / "state.json"
    state = StateFile.load(path, ".", "p")
    synced: list[int] = []
    syncing, release, all_queued = threading.Event(), threading.Event(), threading.Event()
    state.queued = lambda waiting: all_queued.set() if waiting == 15 else None

    def sync(fd: int) -> None:
        synced.append(fd)
        if len(synced) == 1:
            syncing.set()
            assert release.wait(60)
    state.sync = sync
    first = threading.Thread(target=state.put, args=(TENANT, "App/a00", {"slug": "s0"}))
    first.start()
    assert syncing.wait(60)  # the first change's append is being synced
    others = [threading.Thread(target=state.put, args=(TENANT, f"App/a{n:02d}", {"slug": f"s{n}"})) for n in range(1, 16)]
    for thread in others:
        thread.start()
    assert all_queued.wait(60)  # every other change is queued behind it (none of them has returned)
    assert len(synced) == 1 and all(thread.is_alive() for thread in others)
    release.set()
    for thread in [first, *others]:
        thread.join(60)
    assert len(synced) == 2 and state.writes == {"appends": 2, "rewrites": 0}
    assert len(lines_of(state)) == 17
    assert len(StateFile.load(path, ".", "p").tenant(TENANT).resources) == 16


def test_threads_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    import concurrent.futures

    path = tmp_path / "state.json"
    state = StateFile.load(path, ".", "p")
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: state.put(TENANT, f"App/a{n}", {"slug": f"s{n}"}), range(200)))
        list(pool.map(lambda n: state.put(TENANT, f"App/a{n}", None if n % 2 else {"slug": f"t{n}"}), range(200)))
    assert state.writes["appends"] <= 400 and state.writes["rewrites"] == 0
    replayed = StateFile.load(path, ".", "p").tenant(TENANT).resources
    assert replayed == {f"App/a{n}": {"slug": f"t{n}"} for n in range(0, 200, 2)} == state.tenant(TENANT).resources
    assert len(lines_of(state)) == 401


def test_a_failed_append_fails_its_writers_and_is_written_by_the_next(tmp_path: Path) -> None:
    from reconciler.state import StateWriteError

    path = tmp_path / "state.json"
    state = StateFile.load(path, ".", "p")
    state.put(TENANT, "App/a", {"slug": "a-1"})

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")
    state.sync = full
    with pytest.raises(StateWriteError, match="No space left on device"):
        state.put(TENANT, "App/b", {"slug": "b-1"})  # never acknowledged: its request is not sent
    state.sync = lambda fd: None
    state.put(TENANT, "App/c", {"slug": "c-1"})
    # What reached the file unsynced was cut off before the retry: each change once, in order.
    assert [line.get("key") for line in lines_of(state)] == [None, "App/a", "App/b", "App/c"]
    assert sorted(StateFile.load(path, ".", "p").tenant(TENANT).resources) == ["App/a", "App/b", "App/c"]


@pytest.mark.parametrize("apps", [4, 24])
def test_an_apply_rewrites_the_file_once_however_many_changes(apps: int, sandbox: Any, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import reconciler.state as state_module
    from reconciler.client import ApiClient
    from reconciler.engine import apply
    from tests.conftest import TOKEN

    rewrites: list[Path] = []
    appends: list[StateFile] = []
    real_write, real_append = state_module.write_text_atomic, StateFile._append
    monkeypatch.setattr(state_module, "write_text_atomic", lambda p, text: (rewrites.append(p), real_write(p, text))[1])
    monkeypatch.setattr(StateFile, "_append", lambda self: (appends.append(self), real_append(self))[1])
    folder = tmp_path / "m"
    folder.mkdir()
    docs = [f"apiVersion: reconciler/v1\nkind: App\nmetadata: {{name: app-{i:02d}}}\nspec:\n  appId: postgres-crawler\n"
            f"  connection: {{name: c{i}}}\n  inputs: {{extraction_method: agent, agent_json: {{agent: a}}}}\n"
            f"  schedules: [{{cron: '0 {i} * * *'}}]\n" for i in range(apps)]
    (folder / "apps.yaml").write_text("---\n".join(docs))
    with ApiClient(sandbox.base_url, TOKEN) as client:
        _, report = apply([str(folder)], client, api_key=TOKEN, env={}, parallelism=8)
    assert not report.failed and len(report.outcomes) == apps
    state_file = folder / "reconciler.state.json"
    assert rewrites == [state_file]  # once, at the end: the changes went to the journal (and it is gone)
    # Each app: its record, a schedule's intent, its trigger id; then one append for the phase's digests.
    # Appends made at once share a write, so there are at most that many.
    assert 2 <= len(appends) <= 3 * apps + 1
    assert not (folder / "reconciler.state.json.journal").exists()
    assert len(StateFile.load(state_file).tenant(sandbox.base_url).resources) == apps
