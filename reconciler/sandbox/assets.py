"""Asset search of the sandbox tenant: the subset of Atlas's ``POST /api/meta/search/indexsearch``
that the official SDK's app builders and ``AppClient`` use (ATLAN_API §2.10).

* **Connection** assets, looked up by ``qualifiedName`` (``client.asset.get_by_qualified_name``,
  which a builder given ``connection(qualified_name=…)`` calls to reuse a connection, e.g. a
  miner on its crawler's connection).
* **AppWorkflowRun** assets, one per App run, under
  ``default/apps/automation_engine/workflows/{slug}/{run_id}`` with ``appWorkflowRunStatus``:
  what ``AppClient.submit(slug, idempotent=True)`` searches for an in-flight run.

The request is the SDK's ``IndexSearchRequest``: ``dsl`` (the Elasticsearch query subset of
``search.py``, over ``__state``, ``__typeName``, ``__superTypeNames``, ``__guid``, ``qualifiedName``,
``name`` and the attributes), ``attributes`` to return. The answer is Atlas's: ``approximateCount``
and ``entities`` (left out when nothing matched, as Atlas does), each with ``typeName``, ``guid``,
``status``, ``displayText`` and ``attributes`` (``qualifiedName`` and ``name`` always, and the
requested ones that have a value).

Choices where the real server's behaviour is unknown [?] (ATLAN_API only says builders read the
connection under ``/api/meta/``):

* A Connection asset is written when an App workflow carrying that connection is created or
  updated (the real tenant writes it when the run publishes; the sandbox has no publish step). Its
  attributes are the wire attributes the workflow sent (``_CONNECTION_WIRE_ATTRS``). A connection
  written without a ``name`` is renamed to its qualifiedName's last segment: the rename the SDK
  guards against (AICHAT-1798, "a stub missing name makes the exporter fall back to the
  qualifiedName's numeric tail"). Archiving the workflow leaves the connection, as on a tenant.
* The index is current at once, unless ``index_lag_s`` is set: then a run shows that long after it
  was submitted (the real index lags by seconds; the SDK polls for that).
* Only Connection and AppWorkflowRun assets exist; any other type matches nothing.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from reconciler.sandbox import runs, search
from reconciler.sandbox.routing import Request, Router, bad_request, require_object

router = Router(prefix="/api/meta/")

RUN_QN_PREFIX = "default/apps/automation_engine/workflows/"
# What a builder reads back from a connection and sends again (pyatlan model/apps/_base.py).
CONNECTION_WIRE_ATTRS = (
    "name", "connectorName", "defaultCredentialGuid", "category", "adminUsers", "adminGroups", "adminRoles",
    "allowQuery", "allowQueryPreview", "queryTimeout", "rowLimit", "credentialStrategy", "previewCredentialStrategy",
    "policyStrategy", "policyStrategyForSamplePreview", "objectStorageUploadThreshold", "hasPopularityInsights",
    "connectionDbtEnvironments", "connectionIsDQEnabled", "isPartial", "isSampleDataPreviewEnabled",
    "vectorEmbeddingsEnabled", "sourceLogo",
)
_SUPER_TYPES = {"Connection": ["SQL", "Catalog", "Asset", "Referenceable"],
                "AppWorkflowRun": ["App", "Catalog", "Asset", "Referenceable"]}


def write_connection(ctx: Any, connection: Any) -> None:
    """Create or update the Connection asset a workflow carries (the caller holds the mutate lock)."""
    if not isinstance(connection, dict) or not isinstance(connection.get("attributes"), dict):
        return
    given = connection["attributes"]
    qualified_name = given.get("qualifiedName")
    if not isinstance(qualified_name, str) or not qualified_name:
        return
    connections = ctx.store.data["connections"]
    now_ms = int(ctx.store.now() * 1000)
    entry = connections.get(qualified_name)
    if entry is None:
        entry = {"guid": ctx.store.new_guid(), "created_at": now_ms, "attributes": {}}
        connections[qualified_name] = entry
    attributes = {key: copy.deepcopy(given[key]) for key in CONNECTION_WIRE_ATTRS if given.get(key) is not None}
    if not attributes.get("name"):
        attributes["name"] = qualified_name.rsplit("/", 1)[-1]
    if not attributes.get("connectorName"):
        parts = qualified_name.split("/")
        if len(parts) >= 3 and parts[0] == "default":
            attributes["connectorName"] = parts[1]
    entry["attributes"] = attributes
    entry["updated_at"] = now_ms


def connection_guids(data: dict[str, Any]) -> set[str]:
    return {entry["guid"] for entry in data["connections"].values()}


def _documents(ctx: Any, data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for qualified_name, entry in data["connections"].items():
        docs.append(_document("Connection", entry["guid"], qualified_name, entry["attributes"],
                              entry["created_at"], entry.get("updated_at", entry["created_at"])))
    visible_until = ctx.store.now() - ctx.config.index_lag_s
    for run in data["runs"].values():
        if run["created_at"] > visible_until:
            continue
        app = data["apps"].get(run["slug"]) or {}
        status = runs.progress(ctx, run)
        started_ms = int(run["created_at"] * 1000)
        attributes: dict[str, Any] = {
            "name": run["run_id"],
            "appWorkflowRunStatus": status,
            "appWorkflowRunStartedAt": started_ms,
            "appWorkflowRunAppWorkflowSlug": run["slug"],
            "appWorkflowRunAppWorkflowName": app.get("name"),
            "appWorkflowRunAppWorkflowVersion": str(run["version"]),
            "appWorkflowRunAppName": app.get("app_id"),
        }
        if status not in runs.ACTIVE:
            attributes["appWorkflowRunCompletedAt"] = int(run.get("stopped_at") or
                                                          run["created_at"] + run["pending_s"] + run["running_s"]) * 1000
        guid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox/app-run/{run['run_id']}"))
        docs.append(_document("AppWorkflowRun", guid, f"{RUN_QN_PREFIX}{run['slug']}/{run['run_id']}",
                              {k: v for k, v in attributes.items() if v is not None}, started_ms, started_ms))
    return docs


def _document(type_name: str, guid: str, qualified_name: str, attributes: dict[str, Any],
              created_ms: int, updated_ms: int) -> tuple[str, dict[str, Any]]:
    return guid, {
        "__guid": guid, "__typeName": type_name, "__superTypeNames": _SUPER_TYPES[type_name], "__state": "ACTIVE",
        "__timestamp": created_ms, "__modificationTimestamp": updated_ms,
        "qualifiedName": qualified_name, **attributes,
    }


def _entity(source: dict[str, Any], wanted: list[str]) -> dict[str, Any]:
    attributes = {"qualifiedName": source["qualifiedName"], "name": source.get("name")}
    attributes.update({key: copy.deepcopy(source[key]) for key in wanted if key in source})
    return {
        "typeName": source["__typeName"],
        "guid": source["__guid"],
        "status": source["__state"],
        "displayText": source.get("name"),
        "attributes": attributes,
        "createTime": source["__timestamp"],
        "updateTime": source["__modificationTimestamp"],
        "isIncomplete": False,
        "labels": [],
        "classificationNames": [],
        "meaningNames": [],
        "meanings": [],
    }


@router.route("POST", "search/indexsearch")
def index_search(ctx: Any, req: Request) -> dict[str, Any]:
    body = require_object(req.body, "search request")
    dsl = require_object(body.get("dsl") if body.get("dsl") is not None else {}, "'dsl'")
    wanted = body.get("attributes") or []
    if not isinstance(wanted, list) or not all(isinstance(a, str) for a in wanted):
        raise bad_request("'attributes' must be a list of attribute names")
    with ctx.store.read() as data:
        answer = search.search(_documents(ctx, data), dsl, "janusgraph_vertex_index", ctx.store.now())
    out: dict[str, Any] = {
        "queryType": "INDEX",
        "searchParameters": {"dsl": dsl, "attributes": wanted, "showSearchScore": False, "suppressLogs": True},
        "approximateCount": answer["hits"]["total"]["value"],
    }
    entities = [_entity(hit["_source"], wanted) for hit in answer["hits"]["hits"]]
    if entities:
        out["entities"] = entities
    return out
