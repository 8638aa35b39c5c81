"""The tenant → live State, fetched concurrently (bounded by ``parallelism``).

Takes an API client, the desired State and the state file's records; returns every live object
as a manifest-shaped ``Resource`` (with the server's facts and a fingerprint of the raw object in
``Resource.server``), the names that more than one live object carries, and the normalization
context (input contracts, role and credential names).

Calls made, whatever the number of objects: the app list in pages of the largest size the API
serves (its items carry the rendered DAG, so no per-app GET unless an item lacks it), the
credential list by pages, the roles once, one describe and one input-contract fetch per distinct
app id (cached for the run), and one index search per legacy workflow named in the manifests.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from reconciler.client import ApiClient
from reconciler.errors import NotFoundError
from reconciler.model import Resource, ResourceKey, State
from reconciler.normalize import PLUMBING, RUNTIME, AppContract, Context, canonical_json

SCHEDULE_ANNOTATION = "orchestration.atlan.com/schedule"
TIMEZONE_ANNOTATION = "orchestration.atlan.com/timezone"


@dataclass
class Live:
    state: dict[ResourceKey, Resource]
    context: Context
    ambiguous: dict[ResourceKey, list[str]] = field(default_factory=dict)
    unknown_apps: set[str] = field(default_factory=set)  # app ids the tenant does not know


def fingerprint(raw: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(raw).encode()).hexdigest()


def fetch(client: ApiClient, desired: State, *, recorded: Mapping[str, Mapping[str, Any]] | None = None,
          parallelism: int = 8) -> Live:
    """``recorded``: the state file's records of this tenant, keyed "Kind/name"."""
    recorded = recorded or {}
    workflow_names = sorted({k.name for k in desired if k.kind == "Workflow"}
                            | {k.split("/", 1)[1] for k in recorded if k.startswith("Workflow/")})
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        apps_f = pool.submit(lambda: list(client.list_apps()))
        credentials_f = pool.submit(lambda: list(client.list_credentials()))
        roles_f = pool.submit(lambda: list(client.list_roles()))
        templates_f = {name: pool.submit(client.find_templates, name) for name in workflow_names}

        app_items = apps_f.result()
        # The (app id, entrypoint) pairs in use: declared, or live under a declared name.
        desired_names = {k.name for k in desired if k.kind == "App"}
        in_use = [(str(r.spec.get("appId")), r.spec.get("entrypoint")) for k, r in desired.items() if k.kind == "App"]
        in_use += [(_app_id(item), item.get("entrypoint")) for item in app_items
                   if item.get("name") in desired_names and _app_id(item)]
        entrypoints: dict[str, set[str]] = {}
        for app_id, entrypoint in in_use:
            entrypoints.setdefault(app_id, set()).update([str(entrypoint)] if entrypoint else [])
        contracts_f = {app_id: pool.submit(_app_contract, client, app_id, eps) for app_id, eps in sorted(entrypoints.items())}
        # Details only where a list item lacks the rendered DAG.
        details_f = {item["slug"]: pool.submit(client.get_app, item["slug"])
                     for item in app_items if not _args_of(item) and item.get("slug")}

        credentials = credentials_f.result()
        roles = roles_f.result()
        contracts = {app_id: f.result() for app_id, f in contracts_f.items()}
        details = {slug: f.result() for slug, f in details_f.items()}
        templates = {name: f.result() for name, f in templates_f.items()}

    state: dict[ResourceKey, Resource] = {}
    ambiguous: dict[ResourceKey, list[str]] = {}

    def add(resource: Resource, identity: str) -> None:
        if resource.key in state:
            ambiguous.setdefault(resource.key, [state[resource.key].server["id"]]).append(identity)
        else:
            state[resource.key] = resource

    for record in credentials:
        add(credential_resource(record), str(record.get("id")))
    for item in app_items:
        item = details.get(item.get("slug", ""), item)
        add(app_resource(item, recorded.get(f"App/{item.get('name')}") or {}), str(item.get("slug")))
    for name, sources in templates.items():
        for source in sources:
            add(workflow_resource(source), str(source["metadata"].get("uid") or name))
    for key in ambiguous:
        state.pop(key, None)

    context = Context(
        contracts={k: v for k, v in contracts.items() if v is not None},
        role_names={str(r.get("id")): str(r.get("name")) for r in roles},
        credential_names={str(r.get("id")): str(r.get("name")) for r in credentials},
    )
    return Live(state=state, context=context, ambiguous=ambiguous,
                unknown_apps={a for a, c in contracts.items() if c is None})


def _app_contract(client: ApiClient, app_id: str, wanted: set[str]) -> AppContract | None:
    """The app's default entrypoint and the contracts of the entrypoints in use (the default
    one always); None when the tenant has no such app."""
    try:
        info = client.describe_app(app_id)
    except NotFoundError:
        return None
    entrypoints = [str(e["name"]) for e in info.get("entrypoints") or [] if e.get("name")]
    default = entrypoints[0] if entrypoints else None
    contracts = {}
    for entrypoint in sorted({default or "", *(w for w in wanted if w in entrypoints)}):
        try:
            contracts[entrypoint] = client.get_input_contract(app_id, entrypoint or None)
        except NotFoundError:
            continue  # no native contract for this entrypoint
    return AppContract(default, contracts)


def _args_of(item: Mapping[str, Any]) -> Mapping[str, Any] | None:
    try:
        args = item["dag"]["extract"]["inputs"]["args"]
    except (KeyError, TypeError):
        return None
    return args if isinstance(args, dict) else None


def _app_id(item: Mapping[str, Any]) -> str:
    if item.get("app_id"):
        return str(item["app_id"])
    try:
        return str(item["dag"]["extract"]["inputs"]["app_id"])
    except (KeyError, TypeError):
        return ""


def _json_object(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


# -- adapters: one per kind, API object → manifest-shaped Resource ----------------------------------------


def app_resource(item: Mapping[str, Any], record: Mapping[str, Any]) -> Resource:
    args = dict(_args_of(item) or {})
    connection = _json_object(args.get("connection"))
    attributes = connection.get("attributes") or {}
    credential_guid = args.get("credential_guid") or attributes.get("defaultCredentialGuid") or None
    spec: dict[str, Any] = {
        "appId": _app_id(item),
        "connection": {
            "name": attributes.get("name"),
            "qualifiedName": attributes.get("qualifiedName"),
            "adminRoles": list(attributes.get("adminRoles") or []),
            "adminUsers": list(attributes.get("adminUsers") or []),
            "adminGroups": list(attributes.get("adminGroups") or []),
        },
        "inputs": {k: v for k, v in args.items() if k not in PLUMBING and k not in RUNTIME},
    }
    if item.get("entrypoint"):
        spec["entrypoint"] = item["entrypoint"]
    if credential_guid:
        spec["credentialRef"] = credential_guid
    # The API hides attached schedules; the state file remembers the ones we attached, and the
    # ones whose attachment is unverified (an intent: compared as attached, never added again).
    # With neither, they are unknown (None), and the plan says so.
    pending = [i for i in record.get("intents") or [] if i.get("action") == "schedule"]
    if isinstance(item.get("schedules"), list):
        schedules, source, pending = [{"cron": s.get("cron"), "timezone": s.get("timezone") or "UTC",
                                       "trigger_id": s.get("trigger_id"), "version": s.get("version")}
                                      for s in item["schedules"]], "api", []
    elif "schedules" in record:
        schedules, source = list(record["schedules"]), "state"
    else:
        schedules, source = None, None
    spec["schedules"] = None if schedules is None else [{"cron": s["cron"], "timezone": s.get("timezone") or "UTC"}
                                                        for s in [*schedules, *pending]]
    server = {
        "id": item.get("slug"),
        "slug": item.get("slug"),
        "version": item.get("version"),
        "connection": connection,
        "credential_guid": credential_guid,
        "schedules": schedules,  # triggers: seen through the API, or recorded
        "schedules_source": source,  # "api", "state" or None (unknown)
        "fingerprint": fingerprint(item),
    }
    return Resource(key=ResourceKey("App", str(item.get("name"))), spec=spec, server=server)


def credential_resource(record: Mapping[str, Any]) -> Resource:
    spec = {k: record[k] for k in ("connector", "connectorConfigName", "connectorType", "authType", "description",
                                   "host", "port") if record.get(k) is not None}
    spec["extra"] = dict(record.get("extra") or {})
    server = {"id": record.get("id"), "guid": record.get("id"), "version": record.get("version"),
              "fingerprint": fingerprint(record)}
    return Resource(key=ResourceKey("Credential", str(record.get("name"))), spec=spec, server=server)


def template_parameters(source: Mapping[str, Any]) -> dict[str, Any]:
    """Every task parameter of a template, first occurrence of a name winning."""
    params: dict[str, Any] = {}
    for template in (source.get("spec") or {}).get("templates") or []:
        for task in ((template.get("dag") or {}).get("tasks") or []):
            for p in ((task.get("arguments") or {}).get("parameters") or []):
                params.setdefault(str(p.get("name")), p.get("value"))
    return params


def workflow_resource(source: Mapping[str, Any]) -> Resource:
    annotations = (source.get("metadata") or {}).get("annotations") or {}
    schedule = annotations.get(SCHEDULE_ANNOTATION)
    spec = {
        "parameters": template_parameters(source),
        "schedule": {"cron": schedule, "timezone": annotations.get(TIMEZONE_ANNOTATION) or "UTC"} if schedule else None,
    }
    server = {"id": (source.get("metadata") or {}).get("uid"), "source": source, "fingerprint": fingerprint(source)}
    return Resource(key=ResourceKey("Workflow", str(source["metadata"]["name"])), spec=spec, server=server)

