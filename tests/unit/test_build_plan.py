"""build_plan, pure: desired and live States in, a Plan out. No server, no files."""

from __future__ import annotations

import datetime as dt
from typing import Any

from reconciler.model import Resource, ResourceKey, SourceRef
from reconciler.normalize import AppContract, Context
from reconciler.plan import Action, ApplySettings, Plan, Records, build_plan

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.timezone.utc)
CONTRACT = {"properties": {"include_filter": {"type": "string", "contentMediaType": "application/json", "default": "{}"},
                           "temp_table_regex": {"type": "string", "default": ""}}}
CTX = Context(contracts={"postgres-crawler": AppContract("crawler", {"crawler": CONTRACT})},
              credential_names={"9d1a3c52-0000-4000-8000-000000000001": "pg-cred"})
GUID = "9d1a3c52-0000-4000-8000-000000000001"


def app(name: str, *, origin: bool = True, **spec: Any) -> Resource:
    body = {"appId": "postgres-crawler", "connection": {"name": f"{name}-conn"}, "inputs": {}, **spec}
    return Resource(ResourceKey("App", name), body, origin=SourceRef("apps.yaml", 3) if origin else SourceRef())


def live_app(name: str, schedules: list[dict[str, str]] | None = None, **inputs: Any) -> Resource:
    spec = {"appId": "postgres-crawler", "entrypoint": "crawler", "inputs": {"include_filter": "{}", **inputs},
            "connection": {"name": f"{name}-conn", "adminRoles": [], "adminUsers": [], "adminGroups": []},
            "schedules": schedules}
    return Resource(ResourceKey("App", name), spec, server={"id": f"slug-{name}", "fingerprint": f"sha256:{name}"})


def credential(name: str, **spec: Any) -> Resource:
    body = {"connector": "postgres", "authType": "basic", "username": "${env:U}", "password": "${env:P}", **spec}
    return Resource(ResourceKey("Credential", name), body, origin=SourceRef("creds.yaml", 1))


def live_credential(name: str, **spec: Any) -> Resource:
    return Resource(ResourceKey("Credential", name), {"connector": "postgres", "authType": "basic", "extra": {}, **spec},
                    server={"id": GUID, "guid": GUID, "fingerprint": "sha256:c"})


def plan(desired: list[Resource], live: list[Resource], **options: Any) -> Plan:
    return build_plan({r.key: r for r in desired}, {r.key: r for r in live}, options.pop("ctx", CTX), now=NOW, **options)


def actions(p: Plan) -> list[tuple[str, str]]:
    return [(c.action.value, str(c.key)) for c in p.changes]


def test_pairs_by_key_orders_by_rank_then_name_and_leaves_the_unmanaged_alone() -> None:
    p = plan([app("b"), app("a", credentialRef="pg-cred"), credential("pg-cred")], [live_app("z")])
    assert actions(p) == [("create", "Credential/pg-cred"), ("create", "App/a"), ("create", "App/b")]
    assert p.unmanaged == {"App": 1} and p.created_at == "2026-11-22T12:00:00Z"
    create = p.changes[1]
    # A create shows the intent, not the defaults the server fills in.
    assert create.after == {"appId": "postgres-crawler", "entrypoint": "crawler", "connection": {"name": "a-conn"},
                            "inputs": {}, "credentialRef": "pg-cred"}
    assert create.origin == SourceRef("apps.yaml", 3) and create.before is None


def test_equal_after_normalisation_is_a_no_op_and_a_difference_an_update_with_its_fields() -> None:
    same = plan([app("a", inputs={"include_filter": {}})], [live_app("a")])
    assert actions(same) == [("no-op", "App/a")] and not same.has_changes
    changed = plan([app("a", inputs={"temp_table_regex": "mine"})], [live_app("a")])
    [update] = changed.changes
    assert update.action is Action.UPDATE and update.reason == "differs from the manifest"
    assert [(f.op, f.path, f.old, f.new) for f in update.fields] == [("change", "inputs.temp_table_regex", "", "mine")]
    assert update.fingerprint == "sha256:a"


def test_an_immutable_field_makes_a_replace() -> None:
    [change] = plan([app("a", appId="snowflake-crawler")], [live_app("a")]).changes
    assert change.action is Action.REPLACE and "appId cannot change in place" in change.reason


def test_deletes_are_candidates_without_prune_and_only_for_what_the_project_owns() -> None:
    records = Records(managed=frozenset({ResourceKey("App", "gone")}))
    waiting = plan([], [live_app("gone"), live_app("theirs")], records=records)
    assert actions(waiting) == [("delete", "App/gone")] and waiting.unmanaged == {"App": 1}
    assert waiting.waits_for_prune(waiting.changes[0]) and waiting.counts()["delete_candidates"] == 1
    assert waiting.counts()["delete"] == 0
    pruned = plan([], [live_app("gone")], records=records, prune=True)
    assert not pruned.waits_for_prune(pruned.changes[0]) and pruned.counts()["delete"] == 1
    assert pruned.to_dict()["changes"][0]["needs_prune"] is False


def test_prefixes_claim_objects_but_a_prefix_claiming_most_of_the_tenant_claims_nothing() -> None:
    live = [live_app("team-a"), live_app("team-b"), live_app("other")]
    narrow = plan([], live, owned_prefixes=("team-a",))
    assert actions(narrow) == [("delete", "App/team-a")]
    broad = plan([], live, owned_prefixes=("team",), project_file="reconciler.yaml")
    assert broad.changes == () and [d.code for d in broad.errors] == ["RC106"]
    others = plan([], live, owned_prefixes=("team-a",), records=Records(others=frozenset({ResourceKey("App", "team-a")})))
    assert others.changes == ()


def test_prevent_destroy_ambiguity_and_exclusions_are_said_not_planned() -> None:
    records = Records(managed=frozenset({ResourceKey("App", "kept")}), prevent_destroy=frozenset({ResourceKey("App", "kept")}))
    p = plan([app("dup"), app("bad")], [live_app("kept")], records=records,
             ambiguous={ResourceKey("App", "dup"): ["s1", "s2"]}, excluded=[ResourceKey("App", "bad")])
    assert p.changes == ()
    assert sorted(d.code for d in p.diagnostics) == ["RC101", "RC103"]
    rc101 = next(d for d in p.diagnostics if d.code == "RC101")
    assert (rc101.file, rc101.line, rc101.column) == ("apps.yaml", 3, 1) and "(s1, s2)" in rc101.message


def test_unknowable_schedules_are_not_compared_unless_adopted() -> None:
    schedules = [{"cron": "0 2 * * *", "timezone": "UTC"}]
    unknown = plan([app("a", schedules=schedules)], [live_app("a", schedules=None)])
    assert actions(unknown) == [("no-op", "App/a")] and [d.code for d in unknown.diagnostics] == ["RC108"]
    adopted = plan([app("a", schedules=schedules)], [live_app("a", schedules=None)], adopt_schedules=True)
    [update] = adopted.changes
    assert [(f.path, f.old, f.new) for f in update.fields] == [("schedules", None, schedules)]
    known = plan([app("a", schedules=[{"cron": "0 2 * * *", "timezone": "Etc/UTC"}])], [live_app("a", schedules=schedules)])
    assert actions(known) == [("no-op", "App/a")]  # equal after canonical timezones


def test_runs_follow_their_change_and_an_owed_run_is_planned_again() -> None:
    created = plan([app("a", run={"onCreate": True})], [])
    assert actions(created) == [("create", "App/a"), ("run", "App/a")]
    untouched = plan([app("a", run={"onUpdate": True})], [live_app("a")])
    assert actions(untouched) == [("no-op", "App/a")]
    owed = plan([app("a")], [live_app("a")], records=Records(pending_runs=frozenset({ResourceKey("App", "a")})))
    assert actions(owed) == [("no-op", "App/a"), ("run", "App/a")] and "owed" in owed.changes[1].reason


def test_secrets_rotated_and_secrets_the_tenant_keeps_in_clear() -> None:
    key = ResourceKey("Credential", "c")
    rotated = plan([credential("c")], [live_credential("c")], desired_fingerprints={key: "new"},
                   records=Records(secret_fingerprints={key: "old"}))
    [update] = rotated.changes
    assert update.reason == "secrets rotated" and [f.path for f in update.fields] == ["secrets"]
    assert update.settings == ApplySettings(secret_refs={"username": "${env:U}", "password": "${env:P}"})
    clear = plan([credential("c", secretExtra={"token": "${env:T}"})], [live_credential("c", extra={"token": "shown"})])
    assert actions(clear) == [("no-op", "Credential/c")] and [d.code for d in clear.diagnostics] == ["RC113"]


def test_a_credential_ref_given_as_a_guid_travels_as_a_guid() -> None:
    [change] = plan([app("a", credentialRef=GUID)], []).changes
    assert change.after is not None and change.after["credentialRef"] == "pg-cred"  # shown by name
    assert change.settings.credential_guid == GUID  # sent as given


def test_workflows_are_never_created_or_deleted() -> None:
    wf = Resource(ResourceKey("Workflow", "wf"), {"parameters": {"a": 1}}, origin=SourceRef("wf.yaml", 1))
    missing = plan([wf], [])
    assert missing.changes == () and [d.code for d in missing.diagnostics] == ["RC102"]
    live_wf = Resource(ResourceKey("Workflow", "old"), {"parameters": {}}, server={"id": "u"})
    gone = plan([], [live_wf], records=Records(managed=frozenset({live_wf.key})), prune=True)
    assert gone.changes == () and gone.unmanaged == {}


def test_targets_limit_the_plan() -> None:
    p = plan([app("a"), app("b")], [], targets=[ResourceKey("App", "b")])
    assert actions(p) == [("create", "App/b")] and p.targets == ("App/b",)


def test_the_plan_round_trips_through_its_dict() -> None:
    records = Records(managed=frozenset({ResourceKey("App", "gone")}))
    p = plan([app("a", inputs={"temp_table_regex": "x"}, entrypoint="crawler",
                  connection={"name": "a-conn", "qualifiedName": "default/postgres/1"}, lifecycle={"preventDestroy": True}),
              credential("c")], [live_app("a"), live_app("gone")], records=records)
    again = Plan.from_dict(p.to_dict())
    assert again == p
    app_change = next(c for c in again.changes if str(c.key) == "App/a")
    assert app_change.settings == ApplySettings(prevent_destroy=True, connection_qualified_name="default/postgres/1",
                                                entrypoint="crawler")
