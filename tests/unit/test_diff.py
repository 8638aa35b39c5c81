"""reconciler.diff: field changes between two canonical objects, and the masking that comes before."""

from __future__ import annotations

import copy
import json
from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.diff import FieldChange, field_changes, masked

LIVE = {
    "appId": "snowflake-crawler",
    "connection": {"name": "prod", "adminRoles": ["$admin"], "adminUsers": ["amy"]},
    "inputs": {"include_filter": {"DB": ["A"]}, "row_limit": 10, "enable_lineage": True},
    "schedules": [{"cron": "0 0 * * *", "timezone": "UTC"}],
}


def changed(**fields: Any) -> dict[str, Any]:
    """LIVE with top-level fields replaced."""
    return {**copy.deepcopy(LIVE), **fields}


def test_equal_objects_have_no_changes() -> None:
    assert field_changes(LIVE, copy.deepcopy(LIVE)) == []
    assert field_changes({}, {}) == []
    assert field_changes({"a": {"b": 1, "c": 2}}, {"a": {"c": 2, "b": 1}}) == []  # key order is no change


def test_a_change_is_reported_at_most_two_levels_deep() -> None:
    after = changed(inputs={**LIVE["inputs"], "include_filter": {"DB": ["A", "B"]}, "row_limit": 20})
    assert field_changes(LIVE, after) == [
        FieldChange("change", "inputs.include_filter", {"DB": ["A"]}, {"DB": ["A", "B"]}),
        FieldChange("change", "inputs.row_limit", 10, 20),
    ]
    deep = field_changes({"a": {"b": {"c": {"d": 1}}}}, {"a": {"b": {"c": {"d": 2}}}})
    assert deep == [FieldChange("change", "a.b", {"c": {"d": 1}}, {"c": {"d": 2}})]


def test_a_list_changes_as_a_whole() -> None:
    after = changed(connection={**LIVE["connection"], "adminRoles": ["$admin", "$guest"]})
    assert field_changes(LIVE, after) == [
        FieldChange("change", "connection.adminRoles", ["$admin"], ["$admin", "$guest"])]
    assert field_changes({"a": [1, 2, 3]}, {"a": [3, 2, 1]}) == [FieldChange("change", "a", [1, 2, 3], [3, 2, 1])]
    schedules = [{"cron": "0 0 * * *", "timezone": "Asia/Kolkata"}]
    assert field_changes(LIVE, changed(schedules=schedules)) == [
        FieldChange("change", "schedules", LIVE["schedules"], schedules)]


def test_an_atomic_top_level_field_changes_as_a_whole() -> None:
    before = {"schedule": {"cron": "0 0 * * *", "timezone": "UTC"}, "parameters": {"a": "1"}}
    after = {"schedule": {"cron": "0 1 * * *", "timezone": "UTC"}, "parameters": {"a": "2"}}
    assert field_changes(before, after, atomic=["schedule"]) == [
        FieldChange("change", "parameters.a", "1", "2"),
        FieldChange("change", "schedule", before["schedule"], after["schedule"]),
    ]
    assert field_changes(before, after) == [
        FieldChange("change", "parameters.a", "1", "2"),
        FieldChange("change", "schedule.cron", "0 0 * * *", "0 1 * * *"),
    ]


def test_adds_removes_and_changes() -> None:
    before = {"inputs": {"gone": 1, "same": 2, "kept": "x"}, "credentialRef": "old-cred", "schedule": None}
    after = {"inputs": {"same": 2, "new": [1], "kept": 3}, "entrypoint": "miner", "schedule": {"cron": "@daily"}}
    assert field_changes(before, after) == [
        FieldChange("remove", "credentialRef", "old-cred", None),
        FieldChange("add", "entrypoint", None, "miner"),
        FieldChange("remove", "inputs.gone", 1, None),
        FieldChange("change", "inputs.kept", "x", 3),
        FieldChange("add", "inputs.new", None, [1]),
        FieldChange("change", "schedule", None, {"cron": "@daily"}),  # a null is a value, not an absence
    ]


def test_keys_of_mappings_that_share_none_are_added_and_removed_one_by_one() -> None:
    # deepdiff 8 and later would report each mapping as one changed value (at the root, path "").
    assert field_changes({"inputs": {"a": 1, "b": 2}}, {"inputs": {"c": 3, "d": 4}}) == [
        FieldChange("remove", "inputs.a", 1, None), FieldChange("remove", "inputs.b", 2, None),
        FieldChange("add", "inputs.c", None, 3), FieldChange("add", "inputs.d", None, 4)]
    assert field_changes({}, {"parameters": {"a": "1"}, "schedule": None}) == [
        FieldChange("add", "parameters", None, {"a": "1"}), FieldChange("add", "schedule", None, None)]


def test_numbers_of_another_type_or_value_are_changes() -> None:
    assert field_changes({"a": {"b": 1}}, {"a": {"b": "1"}}) == [FieldChange("change", "a.b", 1, "1")]
    assert field_changes({"a": {"b": {}}}, {"a": {"b": []}}) == [FieldChange("change", "a.b", {}, [])]


def test_masked_drops_what_is_only_compared_when_declared() -> None:
    desired = {"connection": {"name": "prod"}, "schedules": None}
    live = {"connection": {"name": "prod", "adminRoles": ["$admin"]}, "schedules": [{"cron": "0 0 * * *"}],
            "credentialRef": "c"}
    d, lv = masked(desired, live, declared_only=["connection.adminRoles", "credentialRef", "schedules"], ignore=[])
    assert d == desired
    assert lv == {"connection": {"name": "prod"}, "schedules": [{"cron": "0 0 * * *"}]}  # a null is declared


def test_masked_star_keeps_only_the_declared_keys_of_a_mapping() -> None:
    live = {"parameters": {"a": "1", "b": "2", "c": "3"}, "schedule": None}
    _, lv = masked({"parameters": {"a": "9", "z": "0"}}, live, declared_only=["parameters.*"], ignore=[])
    assert lv == {"parameters": {"a": "1"}, "schedule": None}
    _, lv = masked({"schedule": None}, live, declared_only=["parameters.*"], ignore=[])
    assert lv == {"schedule": None}  # none declared: the whole mapping is out of the comparison
    _, lv = masked({"parameters": {}}, live, declared_only=["parameters.*"], ignore=[])
    assert lv == {"parameters": {}, "schedule": None}
    _, lv = masked({"parameters": None}, live, declared_only=["parameters.*"], ignore=[])
    assert lv == {"parameters": {}, "schedule": None}


def test_masked_ignores_paths_on_both_sides() -> None:
    desired = {"inputs": {"row_limit": 5, "include_filter": {}}, "entrypoint": "crawler"}
    live = {"inputs": {"row_limit": 10, "include_filter": {}}, "entrypoint": "miner"}
    d, lv = masked(desired, live, declared_only=[], ignore=["inputs.row_limit", "entrypoint", "no.such.path"])
    assert (d, lv) == ({"inputs": {"include_filter": {}}}, {"inputs": {"include_filter": {}}})
    assert field_changes(lv, d) == []


def test_masked_does_not_change_its_inputs() -> None:
    desired = {"parameters": {"a": "1"}, "inputs": {"x": {"y": 1}}}
    live = {"parameters": {"a": "1", "b": "2"}, "inputs": {"x": {"y": 2}}, "credentialRef": "c"}
    before = copy.deepcopy((desired, live))
    d, lv = masked(MappingProxyType(desired), MappingProxyType(live), declared_only=["parameters.*", "credentialRef"],
                   ignore=["inputs.x"])
    assert (desired, live) == before
    assert (d, lv) == ({"parameters": {"a": "1"}, "inputs": {}}, {"parameters": {"a": "1"}, "inputs": {}})
    # Only the mappings along a dropped path are copied; the rest is shared (the results are read,
    # never changed: a plan masks every object, and deep copies were a fifth of its time).
    assert d["parameters"] is desired["parameters"] and lv["parameters"] is not live["parameters"]
    assert d["inputs"] is not desired["inputs"]


# Field names as manifests have them: a dot would make a dotted path ("inputs.a.b") ambiguous.
KEYS = st.text(alphabet=st.characters(blacklist_characters="."), max_size=4)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=3),
    max_leaves=12)
objects = st.dictionaries(KEYS, json_values, max_size=4)


@settings(max_examples=50, deadline=None)
@given(objects)
def test_an_object_never_differs_from_itself(value: dict[str, Any]) -> None:
    assert field_changes(value, copy.deepcopy(value)) == []


@settings(max_examples=50, deadline=None)
@given(objects, objects)
def test_changes_are_sorted_distinct_paths_at_most_two_levels_deep(
        before: dict[str, Any], after: dict[str, Any]) -> None:
    changes = field_changes(before, after)
    assert (changes == []) == (json.dumps(before, sort_keys=True) == json.dumps(after, sort_keys=True))
    assert [c.path for c in changes] == sorted({c.path for c in changes})
    for change in changes:
        assert change.op in ("add", "remove", "change")
        assert len(change.path.split(".")) <= 2
        assert (change.old is None) if change.op == "add" else (change.new is None) if change.op == "remove" else (
            json.dumps(change.old) != json.dumps(change.new))
