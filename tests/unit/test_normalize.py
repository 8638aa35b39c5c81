"""reconciler.normalize: equal intent is equal data, whichever side (manifest or tenant) it comes from."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.model import Resource, ResourceKey
from reconciler.normalize import (
    AppContract,
    Context,
    as_declared,
    canonical,
    canonical_json,
    canonical_schedule,
    canonical_schedules,
    canonical_value,
)

CRAWLER = {"properties": {
    "connection": {"title": "Connection"},
    "credential_guid": {"type": "string", "default": ""},  # plumbing: never filled in as an input
    "extraction_method": {"type": "string", "default": "direct"},
    "include_filter": {"type": "string", "contentMediaType": "application/json", "default": "{}"},
    "temp_table_regex": {"type": "string", "default": ""},
    "row_limit": {"type": "integer", "default": 10000},
    "enable_lineage": {"type": "boolean", "default": True},
    "sample_ratio": {"type": "number", "default": 1.0},
}}
MINER = {"properties": {"miner_start_time_epoch": {"type": "integer", "default": 0}}}
ADMIN_GUID, GUEST_GUID, CREDENTIAL_GUID = "6f1e0000-0000-0000-0000-000000000001", "9a2b0000-0000-0000-0000-000000000002", \
    "c0de0000-0000-0000-0000-000000000003"
CTX = Context(contracts={"snowflake-crawler": AppContract("crawler", {"crawler": CRAWLER, "miner": MINER})},
              role_names={ADMIN_GUID: "$admin", GUEST_GUID: "$guest"},
              credential_names={CREDENTIAL_GUID: "snowflake-prod"})
CRAWLER_DEFAULTS = {"extraction_method": "direct", "include_filter": {}, "temp_table_regex": "", "row_limit": 10000,
                    "enable_lineage": True, "sample_ratio": 1}


def app(**spec: Any) -> Resource:
    return Resource(key=ResourceKey("App", "snowflake-prod"), spec={"appId": "snowflake-crawler", **spec})


def credential(**spec: Any) -> Resource:
    return Resource(key=ResourceKey("Credential", "snowflake-prod"), spec=spec)


def workflow(**spec: Any) -> Resource:
    return Resource(key=ResourceKey("Workflow", "atlan-snowflake-miner-1714638976"), spec=spec)


# -- App ------------------------------------------------------------------------------------------------


def test_contract_defaults_are_filled_in() -> None:
    assert canonical(app(connection={"name": "prod"}), CTX) == {
        "appId": "snowflake-crawler", "entrypoint": "crawler", "connection": {"name": "prod"},
        "inputs": CRAWLER_DEFAULTS,
    }


def test_declared_inputs_win_over_defaults_and_the_entrypoint_picks_the_contract() -> None:
    assert canonical(app(inputs={"row_limit": 5}), CTX)["inputs"] == {**CRAWLER_DEFAULTS, "row_limit": 5}
    mined = canonical(app(entrypoint="miner", inputs={"extra": "x"}), CTX)
    assert (mined["entrypoint"], mined["inputs"]) == ("miner", {"miner_start_time_epoch": 0, "extra": "x"})


def test_without_a_contract_only_declared_inputs_count() -> None:
    unknown = Resource(key=ResourceKey("App", "a"), spec={"appId": "no-such-app", "inputs": {"a": 1}})
    assert canonical(unknown, CTX) == {"appId": "no-such-app", "entrypoint": None, "connection": {"name": None},
                                       "inputs": {"a": 1}}
    assert canonical(app(entrypoint="nowhere", inputs={"a": 1}), CTX)["inputs"] == {"a": 1}


@pytest.mark.parametrize("written", [
    '{"DB": ["SCHEMA_A", "SCHEMA_B"]}',
    '  {"DB":["SCHEMA_A","SCHEMA_B"]}',
    {"DB": ["SCHEMA_A", "SCHEMA_B"]},
])
def test_a_json_string_setting_equals_the_yaml_mapping(written: Any) -> None:
    inputs = canonical(app(inputs={"include_filter": written, "unknown_setting": written}), CTX)["inputs"]
    assert inputs["include_filter"] == {"DB": ["SCHEMA_A", "SCHEMA_B"]}
    assert inputs["unknown_setting"] == {"DB": ["SCHEMA_A", "SCHEMA_B"]}  # not in the contract: read as JSON too


def test_only_json_settings_are_parsed_and_bad_json_stays_as_written() -> None:
    inputs = canonical(app(inputs={"temp_table_regex": '{"a": 1}', "include_filter": "{not json"}), CTX)["inputs"]
    assert inputs["temp_table_regex"] == '{"a": 1}'  # a plain string setting
    assert inputs["include_filter"] == "{not json"


def test_runtime_and_plumbing_keys_are_not_inputs() -> None:
    inputs = {"connection": '{"typeName": "Connection"}', "connection_qualified_name": "default/snowflake/1",
              "credential_guid": CREDENTIAL_GUID, "credential": {"username": "u"}, "user-id": "u1", "user_id": "u1",
              "workflow_id": "w-1", "correlation_id": "c-1", "row_limit": 7}
    assert canonical(app(inputs=inputs), CTX)["inputs"] == {**CRAWLER_DEFAULTS, "row_limit": 7}


def test_a_credential_guid_is_named() -> None:
    assert canonical(app(credentialRef=CREDENTIAL_GUID), CTX)["credentialRef"] == "snowflake-prod"
    assert canonical(app(credentialRef="snowflake-prod"), CTX)["credentialRef"] == "snowflake-prod"
    assert canonical(app(credentialRef="c0de-unknown"), CTX)["credentialRef"] == "c0de-unknown"
    assert "credentialRef" not in canonical(app(), CTX)
    assert "credentialRef" not in canonical(app(credentialRef=""), CTX)


def test_admin_roles_are_named_and_admins_sorted_without_repeats() -> None:
    connection = {"name": "prod", "qualifiedName": "default/snowflake/1", "adminRoles": [GUEST_GUID, ADMIN_GUID, "$admin"],
                  "adminUsers": ["zoe", "amy", "zoe", ADMIN_GUID], "adminGroups": []}
    assert canonical(app(connection=connection), CTX)["connection"] == {
        "name": "prod", "adminRoles": ["$admin", "$guest"], "adminUsers": [ADMIN_GUID, "amy", "zoe"], "adminGroups": []}
    assert canonical(app(connection={"name": "prod"}), CTX)["connection"] == {"name": "prod"}  # undeclared: absent


def test_equivalent_schedules_are_equal_in_any_order() -> None:
    written = [{"cron": "0 9 * * MON-FRI", "timezone": "Asia/Calcutta"}, {"cron": "@daily"}]
    live = [{"cron": "0 0 * * *", "timezone": "UTC"}, {"cron": "0 9 * * 1-5", "timezone": "Asia/Kolkata"}]
    expected = [{"cron": "0 0 * * *", "timezone": "UTC"}, {"cron": "0 9 * * 1-5", "timezone": "Asia/Kolkata"}]
    assert canonical(app(schedules=written), CTX)["schedules"] == expected
    assert canonical(app(schedules=written[::-1]), CTX)["schedules"] == expected
    assert canonical(app(schedules=live), CTX)["schedules"] == expected
    assert canonical(app(schedules=[]), CTX)["schedules"] == []
    assert "schedules" not in canonical(app(), CTX)


def test_integral_floats_become_integers() -> None:
    inputs = canonical(app(inputs={"row_limit": 5.0, "ratio": 2.5, "nested": {"a": [1.0, 2.5, True]}}), CTX)["inputs"]
    assert (inputs["row_limit"], inputs["ratio"], inputs["nested"]) == (5, 2.5, {"a": [1, 2.5, True]})
    assert type(inputs["row_limit"]) is int and type(inputs["nested"]["a"][0]) is int
    assert inputs["nested"]["a"][2] is True  # a boolean is not a number


def test_as_declared_drops_the_defaults_and_keeps_the_names() -> None:
    declared = as_declared(CTX)
    resource = app(credentialRef=CREDENTIAL_GUID, connection={"name": "prod", "adminRoles": [ADMIN_GUID]},
                   inputs={"row_limit": 5, "include_filter": '{"DB": []}', "workflow_id": "w-1"})
    assert canonical(resource, declared) == {
        "appId": "snowflake-crawler", "entrypoint": "crawler", "connection": {"name": "prod", "adminRoles": ["$admin"]},
        "inputs": {"row_limit": 5, "include_filter": {"DB": []}}, "credentialRef": "snowflake-prod",
    }
    assert canonical(resource, CTX)["inputs"] == {**CRAWLER_DEFAULTS, "row_limit": 5, "include_filter": {"DB": []}}
    assert CTX.contracts["snowflake-crawler"].by_entrypoint["crawler"] == CRAWLER  # the context given is unchanged


@pytest.mark.parametrize("resource", [
    app(credentialRef=CREDENTIAL_GUID, connection={"name": "p", "adminRoles": [GUEST_GUID]},
        inputs={"include_filter": '{"A": ["B"]}', "row_limit": 3.0, "user_id": "u"},
        schedules=[{"cron": "@weekly", "timezone": "US/Eastern"}]),
    credential(connector="postgres", authType="basic", port=5432, extra={"n": 1.0}),
    workflow(parameters={"flag": True, "n": 2.0}, schedule={"cron": "*/30 * * * *"}),
])
def test_a_canonical_form_is_its_own_canonical_form(resource: Resource) -> None:
    once = canonical(resource, CTX)
    assert canonical(Resource(key=resource.key, spec=once), CTX) == once


# -- Credential and Workflow ------------------------------------------------------------------------------


def test_a_credentials_canonical_form_holds_no_secret() -> None:
    spec = {"connector": "postgres", "authType": "basic", "host": "db.example.com", "port": 5432, "description": None,
            "username": "${env:PG_USER}", "password": "${env:PG_PASSWORD}", "secretExtra": {"key": "${env:PG_KEY}"},
            "extra": {"database": "analytics", "ratio": 2.0}}
    assert canonical(credential(**spec), CTX) == {"connector": "postgres", "authType": "basic", "host": "db.example.com",
                                                  "port": 5432, "extra": {"database": "analytics", "ratio": 2}}
    assert canonical(credential(connector="postgres", authType="basic"), CTX) == {
        "connector": "postgres", "authType": "basic", "extra": {}}


def test_workflow_parameters_become_the_strings_argo_stores() -> None:
    parameters = {"enabled": True, "disabled": False, "count": 3, "whole": 2.0, "half": 0.5, "name": "x"}
    assert canonical(workflow(parameters=parameters), CTX) == {"parameters": {
        "enabled": "true", "disabled": "false", "count": "3", "whole": "2", "half": "0.5", "name": "x"}}


def test_a_workflow_schedule_is_canonical_and_null_removes_it() -> None:
    assert canonical(workflow(schedule={"cron": "@daily", "timezone": "Asia/Calcutta"}), CTX) == {
        "schedule": {"cron": "0 0 * * *", "timezone": "Asia/Kolkata"}}
    assert canonical(workflow(schedule=None), CTX) == {"schedule": None}
    assert canonical(workflow(), CTX) == {}


# -- shared rules ----------------------------------------------------------------------------------------


def test_canonical_schedule_and_schedules() -> None:
    assert canonical_schedule({"cron": "@hourly"}) == {"cron": "0 * * * *", "timezone": "UTC"}
    assert canonical_schedule({"cron": " 0 0 * * 7 ", "timezone": "Etc/UTC"}) == {"cron": "0 0 * * 0", "timezone": "UTC"}
    assert canonical_schedules(None) is None  # the live side is unknown, not empty
    assert canonical_schedules([{"cron": "5 * * * *"}, {"cron": "0 * * * *", "timezone": "UTC"}]) == [
        {"cron": "0 * * * *", "timezone": "UTC"}, {"cron": "5 * * * *", "timezone": "UTC"}]


def test_canonical_json_ignores_key_order_and_spacing() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": None, "c": "x"}]}) == '{"a":[1,{"c":"x","d":null}],"b":1}'
    assert canonical_json({"a": 1, "b": 2}) == canonical_json({"b": 2, "a": 1})
    assert canonical_json({"when": dt.date(2026, 1, 2)}) == '{"when":"2026-01-02"}'


def test_canonical_value_makes_a_copy() -> None:
    value = {"a": [1.0, {"b": 2.0}]}
    assert canonical_value(value) == {"a": [1, {"b": 2}]}
    assert value == {"a": [1.0, {"b": 2.0}]} and type(value["a"][0]) is float


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=15)
int_values = st.recursive(
    st.integers(-2**53, 2**53) | st.text(max_size=3),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=4),
    max_leaves=15)


def _floats(value: Any) -> Any:
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return value


@settings(max_examples=50, deadline=None)
@given(json_values)
def test_canonical_value_is_idempotent(value: Any) -> None:
    once = canonical_value(value)
    assert canonical_value(once) == once
    assert canonical_json(canonical_value(once)) == canonical_json(once)


@settings(max_examples=50, deadline=None)
@given(int_values)
def test_integral_floats_and_integers_are_one_value(value: Any) -> None:
    as_floats = _floats(value)
    assert canonical_json(canonical_value(as_floats)) == canonical_json(value)
    assert canonical_value(copy.deepcopy(as_floats)) == value
