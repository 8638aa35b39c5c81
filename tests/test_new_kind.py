"""Adding a kind is one module and one registry row: a throw-away kind, registered at run time,
goes through validate, fetch, plan, render, apply (create, update, delete with --prune) and the
state file with no change anywhere else. Its objects live in a dict the test holds."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import pytest

from reconciler import kinds, render
from reconciler.apply import Applier
from reconciler.client import ApiClient
from reconciler.engine import apply, make_plan
from reconciler.errors import ReconcilerError
from reconciler.kinds import Fetched, FetchScope, Kind
from reconciler.model import Resource, ResourceKey
from reconciler.normalize import Context, fingerprint
from reconciler.outcomes import Outcome, RunState, Status
from reconciler.plan import Action, Change
from reconciler.sandbox import Sandbox
from tests.conftest import TOKEN

NOTES: dict[str, dict[str, Any]] = {}  # the throw-away kind's "tenant"


class NoteKind(Kind):
    kind = "Note"
    rank = 5
    schema = {
        "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"apiVersion": {"const": "reconciler/v1"}, "kind": {"const": "Note"},
                       "metadata": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
                       "spec": {"type": "object", "additionalProperties": False, "required": ["text"],
                                "properties": {"text": {"type": "string"}}}},
    }

    def fetch(self, client: ApiClient, scope: FetchScope, pool: Executor) -> Callable[[], Fetched]:
        found = pool.submit(lambda: [dict(n) for n in NOTES.values()])
        return lambda: Fetched(objects=[(Resource(ResourceKey("Note", n["name"]), {"text": n["text"]},
                                                  server={"id": n["id"], "fingerprint": fingerprint(n)}), n["id"])
                                        for n in found.result()])

    def canonical(self, spec: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
        return {"text": spec.get("text")}

    def apply(self, change: Change, ops: Applier) -> Outcome | None:
        if change.action is Action.NOOP:
            return None
        note = NOTES.setdefault(change.key.name, {"name": change.key.name, "id": f"note-{len(NOTES) + 1}"})
        note["text"] = (change.after or {})["text"]
        ops.put(change.key, {"id": note["id"]})
        return Outcome(change, Status.APPLIED)

    def delete(self, change: Change, live: Resource, ops: Applier) -> None:
        del NOTES[change.key.name]


class UndeletableNote(NoteKind):
    def delete(self, change: Change, live: Resource, ops: Applier) -> None:
        Kind.delete(self, change, live, ops)  # the base: no delete step


@pytest.fixture
def note_kind() -> Iterator[None]:
    NOTES.clear()
    kinds.register(NoteKind())
    yield
    kinds.unregister("Note")
    NOTES.clear()


def write(folder: Path, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "notes.yaml").write_text(text)
    return folder


NOTE = "apiVersion: reconciler/v1\nkind: Note\nmetadata: {name: %s}\nspec: {text: %s}\n"


def test_a_registered_kind_goes_through_every_stage(note_kind: None, sandbox: Sandbox, tmp_path: Path) -> None:
    folder = write(tmp_path / "m", NOTE % ("hello", "hi") + "---\n" + NOTE % ("bye", "ciao"))
    with ApiClient(sandbox.base_url, TOKEN) as client:
        plan = make_plan([str(folder)], client, api_key=TOKEN, env={}, tenant_id=sandbox.base_url).plan
        assert [(c.action, str(c.key)) for c in plan.changes] == [(Action.CREATE, "Note/bye"), (Action.CREATE, "Note/hello")]
        assert "+ Note/hello (create: not on the tenant)\n    + text: \"hi\"" in render.plan_text(plan)

        _, report = apply([str(folder)], client, api_key=TOKEN, env={}, tenant_id=sandbox.base_url)
        assert not report.failed and {n["text"] for n in NOTES.values()} == {"hi", "ciao"}
        assert not make_plan([str(folder)], client, api_key=TOKEN, env={}, tenant_id=sandbox.base_url).plan.has_changes

        write(folder, NOTE % ("hello", "hello again"))  # one changed, one no longer declared
        plan, report = apply([str(folder)], client, api_key=TOKEN, env={}, tenant_id=sandbox.base_url, prune=True)
        assert [(c.action, str(c.key)) for c in plan.changes] == [(Action.DELETE, "Note/bye"), (Action.UPDATE, "Note/hello")]
        assert not report.failed and {k: n["text"] for k, n in NOTES.items()} == {"hello": "hello again"}
        assert not make_plan([str(folder)], client, api_key=TOKEN, env={}, tenant_id=sandbox.base_url).plan.has_changes


def test_a_kind_without_a_delete_step_fails_the_delete_and_keeps_its_record(note_kind: None, sandbox: Sandbox,
                                                                            tmp_path: Path) -> None:
    folder = write(tmp_path / "m", NOTE % ("kept", "x"))
    with ApiClient(sandbox.base_url, TOKEN) as client:
        apply([str(folder)], client, api_key=TOKEN, env={}, tenant_id=sandbox.base_url)
        kinds.register(UndeletableNote())
        write(folder, "")
        _, report = apply([str(folder)], client, api_key=TOKEN, env={}, tenant_id=sandbox.base_url, prune=True)
    [outcome] = report.outcomes
    assert outcome.status is Status.FAILED and "never deleted" in outcome.message
    assert "kept" in NOTES
    state = (folder / "reconciler.state.json").read_text()
    assert "Note/kept" in state  # still recorded: the next plan offers the delete again


def test_validation_knows_the_new_kind(note_kind: None, tmp_path: Path) -> None:
    from reconciler.validate import validate

    folder = write(tmp_path / "m", NOTE % ("n", "t") + "---\napiVersion: reconciler/v1\nkind: Note\nmetadata: {name: m}\n"
                                                    "spec: {text: t, colour: red}\n")
    result = validate([folder], env={})
    assert ResourceKey("Note", "n") in result.resources
    [error] = result.errors
    assert (error.code, error.line, error.path, error.hint) == ("RC021", 9, "spec.colour", "Allowed here: text."), error
    assert error.file.endswith("m/notes.yaml")


class RunningNote(NoteKind):
    """A kind with runs, whose tenant shows a run only from the third look (an index that lags)."""

    schema = {**NoteKind.schema, "properties": {**NoteKind.schema["properties"], "spec": {
        "type": "object", "properties": {"text": {"type": "string"}, "run": {"type": "object"}}}}}
    looks: dict[str, int] = {}

    def submit_run(self, change: Change, ops: Applier) -> Outcome:
        return Outcome(change, Status.APPLIED, run_id=f"run-{change.key.name}", run_status="Pending")

    def run_status(self, client: ApiClient, run_id: str) -> RunState | None:
        if run_id == "run-broken":
            raise ReconcilerError("the runs index answered nonsense")
        self.looks[run_id] = self.looks.get(run_id, 0) + 1
        return None if self.looks[run_id] < 3 else RunState("Succeeded")


def test_wait_follows_runs_the_tenant_shows_late_and_survives_one_it_cannot_read(sandbox: Sandbox, tmp_path: Path) -> None:
    kinds.register(RunningNote())
    try:
        folder = write(tmp_path / "m", "---\n".join(
            f"apiVersion: reconciler/v1\nkind: Note\nmetadata: {{name: {n}}}\nspec: {{text: t, run: {{onCreate: true}}}}\n"
            for n in ("late", "broken")))
        seen: list[tuple[str, str | None]] = []
        with ApiClient(sandbox.base_url, TOKEN) as client:
            _, report = apply([str(folder)], client, api_key=TOKEN, env={}, tenant_id=sandbox.base_url, wait_timeout=30,
                              on_run=lambda o: seen.append((str(o.run_id), o.run_status)))
    finally:
        kinds.unregister("Note")
    runs = {o.run_id: o for o in report.outcomes if o.run_id}
    assert runs["run-late"].run_status == "Succeeded" and RunningNote.looks["run-late"] == 3
    assert seen == [("run-late", "Succeeded")]
    assert runs["run-broken"].run_status == "Pending" and "could not be read" in runs["run-broken"].message


def test_a_kind_registered_again_is_validated_by_its_new_schema(note_kind: None, tmp_path: Path) -> None:
    from reconciler.validate import validate

    folder = write(tmp_path / "m", NOTE % ("n", "hello"))
    assert validate([folder], env={}).errors == []

    class NumberNote(NoteKind):
        schema = {**NoteKind.schema, "properties": {**NoteKind.schema["properties"], "spec": {
            "type": "object", "properties": {"text": {"type": "integer"}}}}}

    kinds.register(NumberNote())
    assert [(d.code, d.path) for d in validate([folder], env={}).errors] == [("RC023", "spec.text")]
