"""Who moved: digests and the class of each field difference (pure)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reconciler import drift
from reconciler.diff import field_changes

APPLIED = {"appId": "postgres-crawler", "inputs": {"include_filter": {"public": ["orders"]}, "mode": "direct"},
           "schedules": [{"cron": "0 2 * * *", "timezone": "UTC"}], "connection": {}}
ATOMIC = ("schedules",)


def classes(before: dict[str, Any], after: dict[str, Any], applied: dict[str, Any] | None = APPLIED) -> dict[str, str]:
    recorded = None if applied is None else drift.digest(applied, ATOMIC)
    return {f.path: drift.classify(f, before, after, recorded, ATOMIC) for f in field_changes(before, after, ATOMIC)}


def edit(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    head, _, rest = path.partition(".")
    out = {**obj}
    out[head] = {**obj[head], rest: value} if rest else value
    return out


def test_each_side_moving_alone_and_both():
    ui = edit(APPLIED, "inputs.mode", "agent")
    git = edit(APPLIED, "inputs.include_filter", {"public": ["orders", "refunds"]})
    assert classes(ui, APPLIED) == {"inputs.mode": drift.CHANGED_ON_TENANT}
    assert classes(APPLIED, git) == {"inputs.include_filter": drift.NOT_YET_APPLIED}
    assert classes(ui, git) == {"inputs.mode": drift.CHANGED_ON_TENANT, "inputs.include_filter": drift.NOT_YET_APPLIED}
    both = edit(APPLIED, "inputs.include_filter", {"public": ["refunds"]})
    assert classes(both, git) == {"inputs.include_filter": drift.BOTH_MOVED}


def test_no_record_is_unknown_and_never_guessed():
    assert classes(edit(APPLIED, "inputs.mode", "agent"), APPLIED, applied=None) == {"inputs.mode": drift.UNKNOWN}


def test_fields_added_or_removed_on_either_side():
    added_in_git = edit(APPLIED, "inputs.new", "x")
    assert classes(APPLIED, added_in_git) == {"inputs.new": drift.NOT_YET_APPLIED}
    added_on_tenant = edit(APPLIED, "inputs.new", "x")
    assert classes(added_on_tenant, APPLIED) == {"inputs.new": drift.CHANGED_ON_TENANT}
    # A mapping compared as a whole where one side is not a mapping any more ("inputs" itself).
    flattened = {**APPLIED, "inputs": "broken"}
    assert classes(flattened, APPLIED) == {"inputs": drift.CHANGED_ON_TENANT}
    assert classes(APPLIED, flattened) == {"inputs": drift.NOT_YET_APPLIED}
    # An empty mapping at apply gets keys later.
    assert classes(edit(APPLIED, "connection.adminRoles", ["$admin"]), APPLIED) == {"connection.adminRoles": drift.CHANGED_ON_TENANT}


def test_schedules_are_one_field_and_lists_are_whole():
    moved = {**APPLIED, "schedules": [{"cron": "0 3 * * *", "timezone": "UTC"}]}
    assert classes(APPLIED, moved) == {"schedules": drift.NOT_YET_APPLIED}


def test_digest_holds_no_values_and_has_one_hash_per_compared_field():
    recorded = drift.digest({**APPLIED, "inputs": {**APPLIED["inputs"], "password_like": "hunter2-value"}}, ATOMIC)
    assert set(recorded) == {"appId", "inputs", "schedules", "connection"}
    assert set(recorded["inputs"]) == {"include_filter", "mode", "password_like"}
    assert "hunter2" not in repr(recorded) and all(len(h) == drift.HASH_CHARS for h in recorded["inputs"].values())


values = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=3),
                      lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=2), inner, max_size=2),
                      max_leaves=4)
objects = st.dictionaries(st.sampled_from(["a", "b", "schedules"]), values, max_size=3)


@given(objects, objects, objects)
def test_classes_follow_who_moved(applied: dict[str, Any], live: dict[str, Any], git: dict[str, Any]):
    """For any three objects: a field that equals the applied one on a side did not move on that
    side; every difference gets exactly one class, never unknown when a record exists."""
    recorded = drift.digest(applied, ATOMIC)
    for f in field_changes(live, git, ATOMIC):
        cls = drift.classify(f, live, git, recorded, ATOMIC)
        live_same = drift._now(live, f.path, ATOMIC, b"") == drift._now(applied, f.path, ATOMIC, b"")
        git_same = drift._now(git, f.path, ATOMIC, b"") == drift._now(applied, f.path, ATOMIC, b"")
        assert cls == {(False, True): drift.CHANGED_ON_TENANT, (True, False): drift.NOT_YET_APPLIED,
                       (False, False): drift.BOTH_MOVED}[(live_same, git_same)]
