"""The sandbox's fixed data: marketplace apps with their input contracts, seeded legacy
templates and the default roles. Takes nothing, returns plain data; no I/O.

Where the apps come from:

* **Every app id the official SDK has a typed builder for** (pyatlan's ``model/apps/*.py``: 38
  in pyatlan 11.6), from ``catalogue_sdk.py``. That module is generated from the installed SDK
  by ``python -m reconciler.sandbox.generate_catalogue`` and committed, so the package never
  needs the SDK at run time. The generator drives each builder's ``create()`` offline and
  records what it *sends*: wire keys (field names, never the hyphenated aliases), defaults with
  the hidden ones the UI submits, JSON types, the enums of ``Literal``/``bool`` setters,
  JSON-string filters, named credential fields (its docstring has the rules). After upgrading
  pyatlan, regenerate and read the diff; ``tests/test_catalogue.py`` fails while the committed
  module differs from what the installed SDK of the recorded version generates.
* **Two hand-written contracts** that replace the generated ones of the same (real) ids:
  ``bigquery-crawler`` is richer than what the SDK's hand-written BigqueryCrawler lets the
  generator see (UI titles, the control-config enum, ``minimum`` bounds), and tests and golden
  plans rely on ``snowflake-crawler``'s JSON-string filters and asset selection. Both accept
  what their builders send, except that SnowflakeCrawler's ``include_metadata``,
  ``exclude_metadata`` and ``asset_selection`` forward a mapping unencoded, which these JSON-string
  fields refuse (pass a JSON string). ``postgres-crawler`` and ``snowflake-miner`` used to be
  hand-written too and are now generated (the old Snowflake Miner contract's ``s3`` extraction
  method is gone: no builder sends it).
* One app that is **not runnable** through the App API, ``tableau-crawler``: described with
  ``native_ready: false`` and no ``execution_mode`` or ``app_service_url``, its input contract is
  404. It is a sandbox fixture, not a real id (the SDK's Tableau app is ``atlan-tableau``, which is
  native and generated like the others), kept because tests need one app without a native
  contract.

Each contract is the generated (or hand-written) properties inside one frame: the plumbing
(``connection``, ``connection_qualified_name``, ``extraction_method``, ``credential_guid``,
``agent_json``), ``required: [connection]`` with the credential rule (direct: a non-null
``credential_guid`` string; agent: ``agent_json``, and the null ``credential_guid`` the SDK sends),
no unknown keys, and the ``ConnectionEntity`` ``$defs``. An app the SDK builds without a named
entrypoint (``_ENTRYPOINT = ""``, 15 of them: the builder omits ``entrypoint``) has its contract
at the default slot, keyed ``""`` here, and describe lists no entrypoint for it, as the SDK's
generator found on the tenant it read.

``APPS`` is built on first use, once per process (about 10 ms).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator, Mapping
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


def _boolean(title: str, default: bool) -> dict[str, Any]:
    return {"title": title, "type": "boolean", "default": default}


def _integer(title: str, default: int, minimum: int = 0) -> dict[str, Any]:
    return {"title": title, "type": "integer", "default": default, "minimum": minimum}


def _plumbing(extraction_methods: list[str], default_method: str) -> dict[str, Any]:
    """Step 1 of every app: connection, credential and extraction method."""
    return {
        "connection": {
            "title": "Connection",
            "anyOf": [{"$ref": "#/$defs/ConnectionEntity"}, {"type": "string", "contentMediaType": "application/json"}],
        },
        "connection_qualified_name": {"title": "Connection Qualified Name", "type": "string"},
        "extraction_method": _string("Extraction Method", default_method, extraction_methods),
        # A string in direct mode (see _CREDENTIAL_RULE); the SDK's builders send null with an agent.
        "credential_guid": {"title": "Credential Guid", "type": ["string", "null"]},
        "agent_json": {
            "title": "Agent Json",
            "anyOf": [{"type": "object"}, {"type": "string"}, {"type": "null"}],
            "default": None,
        },
    }


# Direct extraction needs the (possibly empty) credential_guid string, never null (ATLAN_API §2.2);
# agent extraction needs agent_json, and takes the null credential_guid the SDK's create() sends.
_CREDENTIAL_RULE = {
    "if": {"properties": {"extraction_method": {"const": "agent"}}, "required": ["extraction_method"]},
    "then": {"required": ["agent_json"]},
    "else": {"required": ["credential_guid"], "properties": {"credential_guid": {"type": "string"}}},
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
    """One marketplace app. ``contracts`` maps entrypoint → input contract (None: no contract); the
    entrypoint ``""`` is the default slot of an app without named entrypoints."""

    app_id: str
    name: str
    connector: str
    default_entrypoint: str
    contracts: dict[str, dict[str, Any] | None]
    # String-typed JSON fields that the server hands back parsed, as objects (ATLAN_API §2.6).
    readback_as_object: frozenset[str] = field(default_factory=frozenset)
    native_ready: bool = True
    # Inputs besides credential_guid that hold the guid of a vaulted credential (dbt's api_credential_guid).
    credential_fields: frozenset[str] = field(default_factory=frozenset)


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


# Contracts kept by hand for real SDK ids, in place of the generated ones (see the module
# docstring): name, entrypoint, contract factory, JSON-string fields read back as objects.
_HAND_WRITTEN: dict[str, tuple[str, str, Callable[[], dict[str, Any]], frozenset[str]]] = {
    "snowflake-crawler": ("Snowflake", "crawler", _snowflake_crawler, frozenset({"control_config", "asset_selection"})),
    "bigquery-crawler": ("BigQuery", "crawler", _bigquery_crawler, frozenset({"control_config"})),
}

# JSON-string inputs the server hands back parsed (ATLAN_API §2.6: control_config as an object,
# Standard Lineage's cross_connection_qualified_names as a native list).
_READBACK_AS_OBJECT = frozenset({"control_config", "cross_connection_qualified_names"})


def _generated(app_id: str, entry: Mapping[str, Any]) -> AppSpec:
    """An app of ``catalogue_sdk`` as the sandbox serves it: its inputs inside the contract frame."""
    methods = list(entry["extraction_methods"])
    props = _plumbing(methods, methods[0])
    props.update(copy.deepcopy(entry["inputs"]))
    for key in entry.get("credential_fields", ()):  # named credential fields carry a vaulted guid
        props[key] = {"title": key.replace("_", " ").title(), "type": "string"}
    readback = frozenset(k for k in _READBACK_AS_OBJECT if props.get(k, {}).get("contentMediaType"))
    return AppSpec(app_id, entry["name"], entry["connector"], entry["entrypoint"],
                   {entry["entrypoint"]: _contract(props)}, readback_as_object=readback,
                   credential_fields=frozenset(entry.get("credential_fields", ())))


def _build_apps() -> dict[str, AppSpec]:
    from reconciler.sandbox import catalogue_sdk

    apps = {app_id: _generated(app_id, entry) for app_id, entry in catalogue_sdk.APPS.items()}
    for app_id, (name, entrypoint, contract, readback) in _HAND_WRITTEN.items():
        connector = catalogue_sdk.APPS[app_id]["connector"]
        apps[app_id] = AppSpec(app_id, name, connector, entrypoint, {entrypoint: contract()}, readback_as_object=readback)
    # Listed in the marketplace but not runnable through the App API: no native contract (a
    # sandbox-only id; see the module docstring).
    apps["tableau-crawler"] = AppSpec("tableau-crawler", "Tableau", "tableau", "crawler", {"crawler": None},
                                      native_ready=False)
    return dict(sorted(apps.items()))


class _Apps(Mapping[str, AppSpec]):
    """App id → AppSpec, built on first use (once per process), so importing the sandbox stays cheap."""

    _apps: dict[str, AppSpec] | None = None

    def _all(self) -> dict[str, AppSpec]:
        if self._apps is None:
            with _BUILD_LOCK:
                if self._apps is None:
                    self._apps = _build_apps()
        return self._apps

    def __getitem__(self, app_id: str) -> AppSpec:
        return self._all()[app_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


_BUILD_LOCK = threading.Lock()
APPS: Mapping[str, AppSpec] = _Apps()

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

# The role an API token's service account holds: a role of its own (not $admin, whose guid it once
# borrowed), and not a workspace role, so ``GET roles`` does not list it.
API_TOKEN_ROLE: dict[str, Any] = {"id": "3b5b8c8e-4f1a-4a8e-9d2a-0a0000000010", "name": "$api-token-default-access"}
API_TOKEN_USER: dict[str, Any] = {
    "id": "0f7c1d2e-6a55-4a3e-9b1e-5e0000000001",
    "username": "service-account-apikey-reconciler",
    "firstName": "API",
    "lastName": "Token",
    "roles": [dict(API_TOKEN_ROLE)],
}


# The tenant's people (``GET users``, ``v2/groups``, ``apikeys``; see ``directory``), fixed.
DIRECTORY_CREATED_MS = 1_714_521_600_000  # 2024-05-01


def _user(guid: str, username: str, first: str, last: str, role: str, groups: int) -> dict[str, Any]:
    return {"id": guid, "username": username, "firstName": first, "lastName": last,
            "email": f"{username}@example.com", "emailVerified": True, "enabled": True,
            "createdTimestamp": DIRECTORY_CREATED_MS, "lastLoginTime": DIRECTORY_CREATED_MS, "attributes": {},
            "roles": [role], "defaultRoles": [role], "workspaceRole": role, "groupCount": groups, "personas": [],
            "isLocked": False}


def _group(guid: str, name: str, alias: str, users: int) -> dict[str, Any]:
    return {"id": guid, "name": name, "alias": alias, "path": f"/{name}", "userCount": users, "roles": [],
            "personas": [], "purposes": [],
            "attributes": {"alias": [alias], "isDefault": ["false"], "createdBy": ["jdoe"],
                           "createdAt": [str(DIRECTORY_CREATED_MS)], "description": [f"The {alias} team"]}}


USERS: tuple[dict[str, Any], ...] = (
    _user("5d1e0c3a-7b2f-4e6a-9c1d-7f0000000001", "jdoe", "Jane", "Doe", "$admin", 2),
    _user("5d1e0c3a-7b2f-4e6a-9c1d-7f0000000002", "asmith", "Alex", "Smith", "$member", 1),
    _user("5d1e0c3a-7b2f-4e6a-9c1d-7f0000000003", "bwayne", "Bruce", "Wayne", "$guest", 0),
)
GROUPS: tuple[dict[str, Any], ...] = (
    _group("6e2f1d4b-8c3a-4f7b-8d2e-800000000001", "data_engineers", "Data Engineers", 2),
    _group("6e2f1d4b-8c3a-4f7b-8d2e-800000000002", "analysts", "Analysts", 1),
)
API_TOKENS: tuple[dict[str, Any], ...] = (
    {"id": "7f3a2e5c-9d4b-4a8c-8e3f-900000000001", "clientId": "apikey-reconciler", "displayName": "reconciler",
     "attributes": {"clientId": "apikey-reconciler", "displayName": "reconciler", "createdBy": "jdoe",
                    "createdAt": DIRECTORY_CREATED_MS, "description": "the reconciler's CI token",
                    "workspacePermissions": "[]", "personas": "[]", "personaQualifiedName": "[]"}},
)


def _legacy_template(
    name: str,
    package: str,
    template_ref: str,
    parameters: list[tuple[str, Any]],
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
                # Argo's creator labels: the UI user who made it (the directory's admin, jdoe).
                "workflows.argoproj.io/creator": USERS[0]["id"],
                "workflows.argoproj.io/creator-preferred-username": USERS[0]["username"],
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
        # What the SDK's LineageBuilder (pyatlan 10, the last with client.workflow) creates:
        # .s3(...).object_store("lineage/", "lineage.csv").options(UPSERT, True, True, ",", 20).
        # Its parameters are snake_case and typed (booleans and numbers as JSON), and the server
        # filled {{credentialGuid}} with the guid of the credential it vaulted from the payload.
        _legacy_template(
            "csa-lineage-builder-1716000000",
            "@csa/lineage-builder",
            "csa-lineage-builder",
            [
                ("lineage_prefix", "lineage/"),
                ("lineage_key", "lineage.csv"),
                ("lineage_import_type", "CLOUD"),
                ("cloud_source", "8d1c0c55-2b60-4c53-9a0f-6a0000000002"),
                ("lineage_upsert_semantic", "upsert"),
                ("lineage_fail_on_errors", True),
                ("lineage_case_sensitive", True),
                ("field_separator", ","),
                ("batch_size", 20),
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
