"""The sandbox's fixed data: marketplace apps with their input contracts, seeded legacy
templates and the default roles.

The contracts are built from the SDK's generated per-app builders (pyatlan 11.6
``model/apps/<app>.py``: the ``…Inputs`` fields with their defaults, plus ``_HIDDEN_DEFAULTS``),
in the JSON-Schema style pydantic emits, so whatever those builders send is accepted. Filter
and config fields are JSON *strings*, as on the real server. Takes nothing, returns plain
data; no I/O.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

CONTRACT_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_CONNECTION_DEFS = {
    "ConnectionEntity": {
        "title": "ConnectionEntity",
        "type": "object",
        "required": ["typeName", "attributes"],
        "properties": {
            "typeName": {"const": "Connection"},
            "attributes": {"$ref": "#/$defs/ConnectionAttributes"},
        },
    },
    "ConnectionAttributes": {
        "title": "ConnectionAttributes",
        "type": "object",
        "additionalProperties": True,
        "required": ["qualifiedName", "connectorName"],
        "properties": {
            "qualifiedName": {"type": "string", "minLength": 1},
            "connectorName": {"type": "string", "minLength": 1},
            "name": {"type": "string"},
            "defaultCredentialGuid": {"type": "string"},
            "category": {"type": "string"},
            "adminUsers": {"type": "array", "items": {"type": "string"}},
            "adminGroups": {"type": "array", "items": {"type": "string"}},
            "adminRoles": {"type": "array", "items": {"type": "string"}},
            "allowQuery": {"type": "boolean"},
            "allowQueryPreview": {"type": "boolean"},
            "rowLimit": {"type": "integer"},
        },
    },
}


def _string(title: str, default: str, enum: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"title": title, "type": "string", "default": default}
    if enum:
        spec["enum"] = enum
    return spec


def _json_string(title: str, default: str) -> dict[str, Any]:
    """A setting that holds JSON inside a string (filters, custom config)."""
    return {"title": title, "type": "string", "default": default, "contentMediaType": "application/json"}


def _toggle_string(title: str, default: str) -> dict[str, Any]:
    """A boolean the server wants as the string "true"/"false" (a real boolean is rejected)."""
    return {"title": title, "type": "string", "enum": ["true", "false"], "default": default}


def _boolean(title: str, default: bool) -> dict[str, Any]:
    return {"title": title, "type": "boolean", "default": default}


def _integer(title: str, default: int, minimum: int = 0) -> dict[str, Any]:
    return {"title": title, "type": "integer", "default": default, "minimum": minimum}


def _number(title: str, default: float, minimum: float = 0) -> dict[str, Any]:
    return {"title": title, "type": "number", "default": default, "minimum": minimum}


def _plumbing(extraction_methods: list[str], default_method: str) -> dict[str, Any]:
    """Step 1 of every app: connection, credential and extraction method."""
    return {
        "connection": {
            "title": "Connection",
            "anyOf": [{"$ref": "#/$defs/ConnectionEntity"}, {"type": "string", "contentMediaType": "application/json"}],
        },
        "connection_qualified_name": {"title": "Connection Qualified Name", "type": "string"},
        "extraction_method": _string("Extraction Method", default_method, extraction_methods),
        "credential_guid": {"title": "Credential Guid", "type": "string"},
        "agent_json": {
            "title": "Agent Json",
            "anyOf": [{"type": "object"}, {"type": "string"}, {"type": "null"}],
            "default": None,
        },
    }


# Direct extraction needs the (possibly empty) credential_guid string; agent extraction needs agent_json.
_CREDENTIAL_RULE = {
    "if": {"properties": {"extraction_method": {"const": "agent"}}, "required": ["extraction_method"]},
    "then": {"required": ["agent_json"]},
    "else": {"required": ["credential_guid"]},
}


def _contract(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "$schema": CONTRACT_DIALECT,
        "title": "AppInputContract",
        "type": "object",
        "properties": properties,
        "required": ["connection"],
        "additionalProperties": False,
        "allOf": [_CREDENTIAL_RULE],
        "$defs": copy.deepcopy(_CONNECTION_DEFS),
    }


@dataclass(frozen=True)
class AppSpec:
    """One marketplace app. ``contracts`` maps entrypoint → input contract (None: no contract)."""

    app_id: str
    name: str
    connector: str
    default_entrypoint: str
    contracts: dict[str, dict[str, Any] | None]
    # String-typed JSON fields that the server hands back parsed, as objects (ATLAN_API §2.6).
    readback_as_object: frozenset[str] = field(default_factory=frozenset)
    native_ready: bool = True


def _snowflake_crawler() -> dict[str, Any]:
    props = _plumbing(["direct", "agent"], "direct")
    props.update(
        {
            "extract_strategy": _string("Extraction method", "information-schema", ["information-schema", "account-usage"]),
            "account_usage_database_name": _string("Database Name", "SNOWFLAKE"),
            "account_usage_schema_name": _string("Schema Name", "ACCOUNT_USAGE"),
            "temp_table_regex": _string("Exclude regex for tables & views", ""),
            "exclude_empty_tables": _boolean("Exclude tables with empty data", False),
            "exclude_views": _boolean("Exclude views", False),
            "enable_lineage": _boolean("View Definition Lineage", True),
            "include_filter": _json_string("Include Metadata", "{}"),
            "exclude_filter": _json_string("Exclude Metadata", "{}"),
            "asset_selection": _json_string("Asset selection", "{}"),
            "preflight_check": _string("Preflight check", ""),
            "enable_snowflake_tags": _boolean("Import Tags", False),
            "enable_stages": _boolean("Import Stages", False),
            "incremental_extraction": _boolean("Enable Incremental Extraction", True),
            "control_config_strategy": _string("Control Config", "default", ["default", "custom"]),
            "control_config": _json_string("Custom Config", ""),
            "enable_semantic_views": _boolean("Import Semantic Views", False),
        }
    )
    return _contract(props)


def _bigquery_crawler() -> dict[str, Any]:
    props = _plumbing(["direct", "agent"], "direct")
    props.update(
        {
            "include_filter": _json_string("Include Metadata", "{}"),
            "exclude_filter": _json_string("Exclude Metadata", "{}"),
            "temp_table_regex": _string("Exclude regex for tables & views", ""),
            "enable_nested_columns": _boolean("Import Nested Columns", True),
            "enable_bigquery_tag_sync": _boolean("Import Tags", False),
            "filter_sharded_tables": _boolean("Combine Sharded Tables", True),
            "hidden_datasets": _boolean("Hidden Assets", False),
            "control_config_strategy": _string("Advanced Config", "default", ["default", "custom"]),
            "control_config": _json_string("Custom Config", "{}"),
            "preflight_check": _string("Preflight check", ""),
            # Hidden UI defaults (the UI submits them; a user rarely sets them).
            "atlas_auth_type": _string("Atlas Auth Type", "internal"),
            "list_datasets_per_chunk": _integer("List Datasets Per Chunk", 50, 1),
            "mapping_chunk_size": _integer("Mapping Chunk Size", 1000, 1),
            "extract_output_chuck_size": _integer("Extract Output Chunk Size", 50000, 1),
            "max_concurrent_activities": _integer("Max Concurrent Activities", 15, 1),
            "max_activities_per_execution": _integer("Max Activities Per Execution", 300, 1),
        }
    )
    return _contract(props)


def _postgres_crawler() -> dict[str, Any]:
    props = _plumbing(["direct", "agent"], "direct")
    props.update(
        {
            "include_filter": _json_string("Include Metadata", "{}"),
            "exclude_filter": _json_string("Exclude Metadata", "{}"),
            "temp_table_regex": _string("Exclude regex for tables & views", ""),
            "advanced_config": _string("Advanced Config", "default", ["default", "custom"]),
            "use_source_schema_filtering": _toggle_string("Use Source Schema Filtering", "false"),
            "control_config_strategy": _string("Control Config", "default", ["default", "custom"]),
            "control_config": _json_string("Custom Config", "{}"),
            "use_jdbc_internal_methods": _toggle_string("Use JDBC Internal Methods", "true"),
        }
    )
    return _contract(props)


def _snowflake_miner() -> dict[str, Any]:
    props = _plumbing(["direct", "agent", "s3"], "direct")
    props.update(
        {
            "snowflake_database": _string("Snowflake Database", "default", ["default", "cloned"]),
            "database_name": _string("Database Name", "SNOWFLAKE"),
            "schema_name": _string("Schema Name", "ACCOUNT_USAGE"),
            "miner_start_time_epoch": _number("Start Time (epoch seconds)", 0),
            "control_config_strategy": _string("Control Config", "default", ["default", "custom"]),
            "control_config": _json_string("Custom Config", ""),
            "preflight_check": _string("Preflight check", ""),
            "calculate_popularity": _boolean("Calculate Popularity", True),
            "popularity_window_days": _number("Popularity Window (days)", 30, 1),
            "popularity_exclude_user_config": {
                "title": "Excluded Users",
                "type": "array",
                "items": {"type": "string"},
                "default": [],
            },
            # Hidden UI defaults.
            "extract_strategy": _string("Extract Strategy", "miner"),
            "native_lineage_active": _boolean("Native Lineage Active", False),
            "indirect_lineage": _toggle_string("Indirect Lineage", "false"),
            "ignore_orphans": _toggle_string("Ignore Orphans", "false"),
            "enable_sharded": _toggle_string("Enable Sharded", "false"),
            "enable_parent_job_scoping": _toggle_string("Enable Parent Job Scoping", "false"),
            "enable_fallback_match": _toggle_string("Enable Fallback Match", "true"),
            "include_indirect_column_relations": _toggle_string("Include Indirect Column Relations", "false"),
            "process_routines": _toggle_string("Process Routines", "true"),
        }
    )
    return _contract(props)


APPS: dict[str, AppSpec] = {
    spec.app_id: spec
    for spec in (
        AppSpec(
            "snowflake-crawler",
            "Snowflake",
            "snowflake",
            "crawler",
            {"crawler": _snowflake_crawler()},
            readback_as_object=frozenset({"control_config", "asset_selection"}),
        ),
        AppSpec(
            "bigquery-crawler",
            "BigQuery",
            "bigquery",
            "crawler",
            {"crawler": _bigquery_crawler()},
            readback_as_object=frozenset({"control_config"}),
        ),
        AppSpec(
            "postgres-crawler",
            "PostgreSQL",
            "postgres",
            "crawler",
            {"crawler": _postgres_crawler()},
            readback_as_object=frozenset({"control_config"}),
        ),
        AppSpec(
            "snowflake-miner",
            "Snowflake Miner",
            "snowflake",
            "miner",
            {"miner": _snowflake_miner()},
            readback_as_object=frozenset({"control_config"}),
        ),
        # Listed in the marketplace but not runnable through the App API on this tenant.
        AppSpec("tableau-crawler", "Tableau", "tableau", "crawler", {"crawler": None}, native_ready=False),
    )
}

# Keys the server injects into stored inputs; clients must not echo them back (ATLAN_API §2.3).
RUNTIME_KEYS = frozenset({"user-id", "user_id", "workflow_id", "correlation_id"})

# The three default roles, with stable GUIDs so `$admin` resolves identically on every sandbox.
ROLES: tuple[dict[str, Any], ...] = (
    {
        "id": "3b5b8c8e-4f1a-4a8e-9d2a-0a0000000001",
        "name": "$admin",
        "description": "Admin user",
        "clientRole": True,
        "level": "workspace",
        "memberCount": "2",
        "userCount": "2",
    },
    {
        "id": "3b5b8c8e-4f1a-4a8e-9d2a-0a0000000002",
        "name": "$member",
        "description": "Member user",
        "clientRole": True,
        "level": "workspace",
        "memberCount": "14",
        "userCount": "14",
    },
    {
        "id": "3b5b8c8e-4f1a-4a8e-9d2a-0a0000000003",
        "name": "$guest",
        "description": "Guest user",
        "clientRole": True,
        "level": "workspace",
        "memberCount": "5",
        "userCount": "5",
    },
)

API_TOKEN_USER: dict[str, Any] = {
    "id": "0f7c1d2e-6a55-4a3e-9b1e-5e0000000001",
    "username": "service-account-apikey-reconciler",
    "firstName": "API",
    "lastName": "Token",
    "roles": [{"id": ROLES[0]["id"], "name": "$api-token-default-access"}],
}


def _legacy_template(
    name: str,
    package: str,
    template_ref: str,
    parameters: list[tuple[str, str]],
    created: str,
    schedule: tuple[str, str] | None,
) -> dict[str, Any]:
    """A UI-created Argo WorkflowTemplate, shaped like a `workflows/indexsearch` hit's `_source`."""
    annotations = {
        "package.argoproj.io/name": package,
        "orchestration.atlan.com/atlanName": name,
        "package.argoproj.io/description": f"UI-created {package} workflow",
    }
    if schedule:
        annotations["orchestration.atlan.com/schedule"] = schedule[0]
        annotations["orchestration.atlan.com/timezone"] = schedule[1]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {
            "name": name,
            "namespace": "default",
            "creationTimestamp": created,
            "labels": {
                "orchestration.atlan.com/atlan-ui": "true",
                "orchestration.atlan.com/type": "connector",
                "package.argoproj.io/name": package.replace("@", "a-t-r").replace("/", "s-l-a-s-h"),
            },
            "annotations": annotations,
        },
        "spec": {
            "entrypoint": "main",
            "templates": [
                {
                    "name": "main",
                    "dag": {
                        "tasks": [
                            {
                                "name": "run",
                                "arguments": {"parameters": [{"name": k, "value": v} for k, v in parameters]},
                                "templateRef": {"name": template_ref, "template": "main", "clusterScope": True},
                            }
                        ]
                    },
                }
            ],
            "workflowMetadata": {"annotations": {"package.argoproj.io/name": package}},
        },
    }


def seeded_legacy_templates() -> list[dict[str, Any]]:
    """Templates a UI user created before the tenant moved to the App API."""
    miner_connection = (
        '{"typeName": "Connection", "attributes": {"qualifiedName": "default/snowflake/1714638000",'
        ' "name": "production-snowflake", "connectorName": "snowflake"}}'
    )
    return [
        _legacy_template(
            "atlan-snowflake-miner-1714638976",
            "@atlan/snowflake-miner",
            "atlan-snowflake-miner",
            [
                ("connection-qualified-name", "default/snowflake/1714638000"),
                ("connection", miner_connection),
                ("extraction-method", "query_history"),
                ("database-name", "SNOWFLAKE"),
                ("schema-name", "ACCOUNT_USAGE"),
                ("miner-start-time-epoch", "1714521600"),
                ("enable-lineage", "false"),
                ("calculate-popularity", "true"),
                ("popularity-window-days", "30"),
                ("control-config-strategy", "default"),
            ],
            "2024-05-02T08:36:16Z",
            ("45 4 * * *", "Europe/Paris"),
        ),
        _legacy_template(
            "csa-lineage-builder-1716000000",
            "@csa/lineage-builder",
            "csa-lineage-builder",
            [
                ("import-type", "CLOUD"),
                ("cloud-source", "{{credentialGuid}}"),
                ("lineage-prefix", "lineage/"),
                ("lineage-key", "lineage.csv"),
                ("fail-on-errors", "true"),
                ("case-sensitive", "true"),
            ],
            "2024-05-18T02:40:00Z",
            None,
        ),
        _legacy_template(
            "atlan-snowflake-1714638001",
            "@atlan/snowflake",
            "atlan-snowflake",
            [
                ("extract-strategy", "information-schema"),
                ("include-filter", '{"^ANALYTICS$": ["^PUBLIC$"]}'),
                ("enable-lineage", "true"),
                ("credential-guid", "8d1c0c55-2b60-4c53-9a0f-6a0000000001"),
                ("control-config-strategy", "default"),
            ],
            "2024-05-02T08:00:01Z",
            ("0 2 * * *", "UTC"),
        ),
    ]
