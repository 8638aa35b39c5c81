"""App API of the sandbox tenant (ATLAN_API §2): describe, input contracts, workflows, runs and
schedules.

What is stored is what the client sent, minus the runtime keys, ``connection_qualified_name``
and the raw ``credential`` (vaulted into a credential record, its guid put in
``credential_guid``). What is *read back* is reshaped the way the real server does it (§2.6):
contract defaults filled, runtime keys injected, ``connection`` as a JSON string, some
JSON-string fields parsed into objects. Naive diffing of desired against live fails on exactly
these differences, which is why they are reproduced.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from typing import Any

from jsonschema import Draft202012Validator

from reconciler import cron
from reconciler.sandbox import assets, catalogue, runs
from reconciler.sandbox.credentials import vault
from reconciler.sandbox.routing import HttpError, Request, Router, bad_request, int_param, not_found, parse_json, require_object
from reconciler.schema_errors import missing_fields, unknown_fields

router = Router()

OWNER = "reconciler-api-token"

_validators: dict[tuple[str, str], Draft202012Validator] = {}


def _validator(app_id: str, entrypoint: str, contract: dict[str, Any]) -> Draft202012Validator:
    key = (app_id, entrypoint)
    if key not in _validators:
        _validators[key] = Draft202012Validator(contract)
    return _validators[key]


# -- contracts ----------------------------------------------------------------------------------


def _app_spec(app_id: str) -> catalogue.AppSpec:
    spec = catalogue.APPS.get(app_id)
    if spec is None:
        raise not_found(f"app {app_id!r}")
    return spec


def _unknown_entrypoint(app_id: str, entrypoint: str) -> HttpError:
    return HttpError(
        400,
        f"unknown entrypoint {entrypoint!r} or app {app_id!r} does not expose an input contract (1003)",
        code=1003,
    )


def _resolve_contract(spec: catalogue.AppSpec, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The entrypoint and contract a create/update body addresses; an empty or unknown entrypoint is 1003."""
    entrypoint = body.get("entrypoint")
    if entrypoint is None:
        entrypoint = spec.default_entrypoint  # "" for an app whose contract sits at the default slot
    elif not isinstance(entrypoint, str) or not entrypoint:
        raise _unknown_entrypoint(spec.app_id, str(entrypoint))  # an empty entrypoint names none (ATLAN_API §2.2)
    if entrypoint not in spec.contracts or spec.contracts[entrypoint] is None:
        raise _unknown_entrypoint(spec.app_id, str(entrypoint))
    contract = spec.contracts[entrypoint]
    assert contract is not None
    return entrypoint, contract


def _field_causes(spec: catalogue.AppSpec, entrypoint: str, contract: dict[str, Any], inputs: dict[str, Any]) -> list[dict[str, Any]]:
    causes = []
    # jsonschema raises one "required" error per missing field, in the order of the schema's list,
    # each carrying the whole list: the n-th error of one schema at one path names the n-th missing field.
    required_seen: dict[tuple[str, int], int] = {}
    for error in sorted(_validator(spec.app_id, entrypoint, contract).iter_errors(inputs), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "required":
            group = (path, id(error.schema))
            nth = required_seen[group] = required_seen.get(group, -1) + 1
            path = ".".join(filter(None, [path, *missing_fields(error)[nth:nth + 1]]))
        elif error.validator == "additionalProperties":
            path = ".".join(filter(None, [path, *unknown_fields(error)[:1]]))
        causes.append({"errorType": error.validator, "errorMessage": error.message, "location": f"inputs.{path}".rstrip(".")})
    # JSON-string fields must hold JSON (the worker json.loads them).
    for key, prop in contract["properties"].items():
        value = inputs.get(key)
        if prop.get("contentMediaType") == "application/json" and isinstance(value, str) and value != "":
            try:
                parse_json(value)
            except ValueError as exc:
                causes.append({"errorType": "contentMediaType", "errorMessage": f"{key} is not valid JSON: {exc}",
                               "location": f"inputs.{key}"})
    return causes


def _prepare_inputs(ctx: Any, spec: catalogue.AppSpec, entrypoint: str, contract: dict[str, Any],
                    raw_inputs: Any, previous: dict[str, Any] | None) -> tuple[dict[str, Any], str | None]:
    """Validate inputs and turn them into what is stored; returns (inputs, connection_qualified_name).

    The caller holds the mutate lock. Nothing is changed unless validation passes.
    """
    if not isinstance(raw_inputs, dict):
        raise bad_request("'inputs' must be a JSON object", causes=[{"errorType": "type", "errorMessage": "not an object", "location": "inputs"}])
    inputs = copy.deepcopy(raw_inputs)
    for key in catalogue.RUNTIME_KEYS:
        inputs.pop(key, None)
    raw_credential = inputs.pop("credential", None)
    causes: list[dict[str, Any]] = []
    if isinstance(inputs.get("connection"), str):
        try:
            inputs["connection"] = parse_json(inputs["connection"])
        except ValueError as exc:
            causes.append({"errorType": "contentMediaType", "errorMessage": f"connection is not valid JSON: {exc}",
                           "location": "inputs.connection"})
    if not causes:
        causes = _field_causes(spec, entrypoint, contract, inputs)
    if raw_credential is not None and not isinstance(raw_credential, dict):
        causes.append({"errorType": "type", "errorMessage": "credential must be an object", "location": "inputs.credential"})
    references = [(f"inputs.{key}", inputs.get(key)) for key in sorted({"credential_guid", *spec.credential_fields})]
    given = inputs.get("connection", {}).get("attributes") if isinstance(inputs.get("connection"), dict) else None
    if raw_credential is None and isinstance(given, dict):  # a raw credential replaces the connection's
        references.append(("inputs.connection.attributes.defaultCredentialGuid", given.get("defaultCredentialGuid")))
    for location, guid in references:
        if isinstance(guid, str) and guid:
            entry = ctx.store.data["credentials"].get(guid)
            if entry is None or entry["archived"]:
                causes.append({"errorType": "reference", "errorMessage": f"credential {guid!r} does not exist",
                               "location": location})
    if causes:
        fields = ", ".join(sorted({c["location"] for c in causes}))
        raise bad_request(f"inputs do not match the input contract of {spec.app_id}/{entrypoint}: {fields}", causes=causes)

    connection = inputs["connection"]
    attributes = connection["attributes"]
    qualified_name = inputs.pop("connection_qualified_name", None) or attributes.get("qualifiedName")

    if raw_credential is not None:
        if not raw_credential.get("name"):
            raw_credential["name"] = _default_credential_name(ctx, attributes.get("connectorName") or spec.connector,
                                                              qualified_name)
        new_guid = vault(ctx.store, raw_credential, created_by=OWNER)
        inputs["credential_guid"] = new_guid
        attributes["defaultCredentialGuid"] = new_guid
    elif previous is not None and not inputs.get("credential_guid"):
        # Credential-preserving update: an omitted credential keeps the persisted one. A different
        # guid on the connection (the UI's shape) is a switch to that credential.
        kept = (previous.get("connection") or {}).get("attributes", {}).get("defaultCredentialGuid")
        given = attributes.get("defaultCredentialGuid")
        if not given or given in (kept, previous.get("credential_guid")):
            if previous.get("credential_guid"):
                inputs["credential_guid"] = previous["credential_guid"]
            if kept and not given:
                attributes["defaultCredentialGuid"] = kept
    return inputs, qualified_name


def _default_credential_name(ctx: Any, connector: str, qualified_name: Any) -> str:
    """The name a credential vaulted from ``inputs.credential`` gets when it was sent without one (the
    docs' raw REST body): what the SDK's builders send, ``default-{connector}-{epoch}-0``, with the
    epoch of the connection's qualifiedName (``default/{connector}/{epoch}``) or else of now."""
    tail = qualified_name.rsplit("/", 1)[-1] if isinstance(qualified_name, str) else ""
    epoch = tail if tail.isdigit() else str(int(ctx.store.now()))
    return f"default-{connector}-{epoch}-0"


# -- reshaping on read ----------------------------------------------------------------------------


def render_app(ctx: Any, record: dict[str, Any]) -> dict[str, Any]:
    """A workflow as GET v1/app/{slug} and the list return it."""
    spec = catalogue.APPS[record["app_id"]]
    contract = spec.contracts.get(record["entrypoint"]) or {"properties": {}}
    args: dict[str, Any] = {}
    for key, prop in contract["properties"].items():
        if "default" in prop:
            args[key] = copy.deepcopy(prop["default"])
    args.update(copy.deepcopy(record["inputs"]))
    for key in spec.readback_as_object:
        value = args.get(key)
        if isinstance(value, str) and value:
            try:
                parsed = parse_json(value)
            except ValueError:
                continue
            if isinstance(parsed, (dict, list)):
                args[key] = parsed
    args["connection"] = json.dumps(args["connection"], separators=(",", ":"))
    args["workflow_id"] = record["workflow_id"]
    args["user_id"] = record["user_id"]
    args["correlation_id"] = record["correlation_id"]
    out: dict[str, Any] = {
        "slug": record["slug"],
        "name": record["name"],
        "version": record["version"],
        "owner": record["owner"],
        "app_id": record["app_id"],
        **({"entrypoint": record["entrypoint"]} if record["entrypoint"] else {}),
        "created_at": runs.iso(record["created_at"]),
        "updated_at": runs.iso(record["updated_at"]),
        "dag": {
            "extract": {"inputs": {"app_id": record["app_id"], "args": args}},
            "publish": {},
        },
    }
    if ctx.config.expose_schedules:
        out["schedules"] = [
            {"trigger_id": s["trigger_id"], "cron": s["cron"], "timezone": s["timezone"], "version": s["version"]}
            for s in _schedules_of(ctx.store.data, record["slug"])
        ]
    return out


def _schedules_of(data: dict[str, Any], slug: str) -> list[dict[str, Any]]:
    return sorted((s for s in data["schedules"].values() if s["slug"] == slug), key=lambda s: s["seq"])


def _active_app(data: dict[str, Any], slug: str) -> dict[str, Any]:
    record = data["apps"].get(slug)
    if record is None or record["archived"]:
        raise not_found(f"workflow {slug!r}")
    return record


def _insert_workflow(ctx: Any, name: str, spec: catalogue.AppSpec, entrypoint: str, inputs: dict[str, Any],
                     qualified_name: str | None, owner: str) -> dict[str, Any]:
    """Store a new workflow record under a freshly minted slug (the caller holds the mutate lock)."""
    now = ctx.store.now()
    slug = _mint_slug(ctx, name)
    record = {
        "slug": slug,
        "name": name,
        "app_id": spec.app_id,
        "entrypoint": entrypoint,
        "owner": owner,
        "version": _new_version(ctx),
        "inputs": inputs,
        "connection_qualified_name": qualified_name,
        "workflow_id": f"{slug}-{ctx.store.new_suffix(6)}",
        "user_id": catalogue.API_TOKEN_USER["id"],
        "correlation_id": ctx.store.new_guid(),
        "created_at": now,
        "updated_at": now,
        "archived": False,
        "seq": ctx.store.next_seq(),
    }
    names = _names(ctx)  # made (if it must be) before the record is in
    ctx.store.data["apps"][slug] = record
    names.setdefault(name, []).append(slug)
    assets.write_connection(ctx, inputs.get("connection"))
    return record


def _names(ctx: Any) -> dict[str, list[str]]:
    """Active workflows by name (slugs in creation order): a create checks its name in one lookup,
    not a scan of every workflow the tenant ever had."""
    def build(data: dict[str, Any]) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for record in sorted(data["apps"].values(), key=lambda a: a["seq"]):
            if not record["archived"]:
                index.setdefault(record["name"], []).append(record["slug"])
        return index
    return ctx.store.index("app_names", build)


def _named(ctx: Any, name: str) -> list[dict[str, Any]]:
    return [ctx.store.data["apps"][slug] for slug in _names(ctx).get(name, ())]


def _new_version(ctx: Any, previous: int = 0) -> int:
    return max(int(ctx.store.now()), previous + 1)


def _mint_slug(ctx: Any, name: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "app"
    while True:
        slug = f"{base}-{ctx.store.new_suffix(8)}"
        if slug not in ctx.store.data["apps"]:
            return slug


# -- runs -------------------------------------------------------------------------------------------


def _render_run(ctx: Any, run: dict[str, Any]) -> dict[str, Any]:
    status = runs.progress(ctx, run)
    out = {"run_id": run["run_id"], "status": status, "slug": run["slug"], "started_at": runs.iso(run["created_at"]),
           "version": run["version"]}
    if status not in runs.ACTIVE:
        out["finished_at"] = runs.finished_at(run)
    if status == "Failed":
        out["message"] = runs.message(ctx, run)
    return out


def credentials_used(spec: catalogue.AppSpec, inputs: dict[str, Any]) -> list[str]:
    """The guids of the credentials a run of these stored inputs authenticates with."""
    attributes = (inputs.get("connection") or {}).get("attributes") or {}
    values = [inputs.get(key) for key in ("credential_guid", *sorted(spec.credential_fields))]
    values.append(attributes.get("defaultCredentialGuid"))
    return [v for v in values if isinstance(v, str) and v]


def _submit(ctx: Any, record: dict[str, Any]) -> dict[str, Any]:
    data = ctx.store.data
    for run in data["runs"].values():
        if run["slug"] == record["slug"] and runs.progress(ctx, run) in runs.ACTIVE:
            raise HttpError(500, f"workflow {record['slug']!r} already has an active run {run['run_id']!r}; "
                                 "wait for it to finish or cancel it", code=500)
    used = credentials_used(catalogue.APPS[record["app_id"]], record["inputs"])
    run = {"run_id": ctx.store.new_guid(), "slug": record["slug"], "version": record["version"],
           **runs.new_timing(ctx, used)}
    data["runs"][run["run_id"]] = run
    return run


# -- schedules ---------------------------------------------------------------------------------------


def _check_schedule(body: Any, *, where: str) -> tuple[str, str]:
    body = require_object(body, where)
    if "timezone" in body and body["timezone"] is None:
        raise bad_request(f"{where}: timezone must not be null; omit it for UTC or give an IANA name",
                          causes=[{"errorType": "type", "errorMessage": "null", "location": "timezone"}])
    cron_expr, timezone = body.get("cron"), body.get("timezone", "UTC")
    problem = cron.cron_problem(cron_expr)
    if problem:
        raise bad_request(f"{where}: {problem}", causes=[{"errorType": "cron", "errorMessage": problem, "location": "cron"}])
    problem = cron.timezone_problem(timezone)
    if problem:
        raise bad_request(f"{where}: {problem}", causes=[{"errorType": "timezone", "errorMessage": problem, "location": "timezone"}])
    return str(cron_expr), str(timezone)


def _attach(ctx: Any, record: dict[str, Any], cron_expr: str, timezone: str) -> dict[str, Any]:
    while True:  # never the id of a stored schedule: that would replace it
        trigger_id = f"t-{ctx.store.new_suffix(12, '0123456789abcdef')}"
        if trigger_id not in ctx.store.data["schedules"]:
            break
    trigger = {
        "trigger_id": trigger_id,
        "slug": record["slug"],
        "cron": cron_expr,
        "timezone": timezone,
        "version": record["version"],  # a schedule fires the version it was attached to
        "created_at": ctx.store.now(),
        "seq": ctx.store.next_seq(),
    }
    ctx.store.data["schedules"][trigger["trigger_id"]] = trigger
    return trigger


# -- endpoints -------------------------------------------------------------------------------------


@router.route("GET", "v1/apps/{app_id}")
def describe_app(ctx: Any, req: Request, app_id: str) -> dict[str, Any]:
    spec = _app_spec(app_id)
    out: dict[str, Any] = {"app_id": spec.app_id, "name": spec.name, "native_ready": spec.native_ready}
    if spec.native_ready:  # an app the App API cannot run has no native execution mode or service
        out["execution_mode"] = "native"
        out["app_service_url"] = f"http://{spec.app_id.lower()}.apps.svc.cluster.local"
    out["entrypoints"] = [{"name": ep} for ep in spec.contracts if ep]  # not the unnamed default slot
    return out


@router.route("GET", "v1/apps/{app_id}/inputs")
def input_contract(ctx: Any, req: Request, app_id: str) -> dict[str, Any]:
    spec = _app_spec(app_id)
    entrypoint = req.params.get("entrypoint")
    if entrypoint is None:
        entrypoint = spec.default_entrypoint
    elif not entrypoint:
        raise _unknown_entrypoint(app_id, entrypoint)
    if entrypoint not in spec.contracts:
        raise _unknown_entrypoint(app_id, entrypoint)
    contract = spec.contracts[entrypoint]
    if contract is None:
        raise HttpError(404, f"app {app_id!r} has no native input contract on this tenant and cannot be run "
                             "through the App API", code=404)
    return copy.deepcopy(contract)


@router.route("POST", "v1/app")
def create_app(ctx: Any, req: Request) -> dict[str, Any]:
    body = require_object(req.body, "request body")
    for key in ("app_id", "name"):
        if not isinstance(body.get(key), str) or not body[key].strip():
            raise bad_request(f"'{key}' is required and must be a non-empty string",
                              causes=[{"errorType": "required", "errorMessage": "required", "location": key}])
    if "inputs" not in body:
        raise bad_request("'inputs' is required", causes=[{"errorType": "required", "errorMessage": "required", "location": "inputs"}])
    spec = catalogue.APPS.get(body["app_id"])
    if spec is None:
        raise bad_request(f"unknown app_id {body['app_id']!r}; GET v1/apps/{{app_id}} lists what exists")
    entrypoint, contract = _resolve_contract(spec, body)
    run = body.get("run", True)
    if not isinstance(run, bool):
        raise bad_request("'run' must be a boolean")
    with ctx.store.mutate():
        same_name = _named(ctx, body["name"])
        if len(same_name) == 1:
            raise HttpError(409, "a workflow with that name already exists",
                            extra={"slug": same_name[0]["slug"], "version": same_name[0]["version"]})
        if same_name:
            raise HttpError(409, "several workflows with that name already exist",
                            extra={"slugs": [a["slug"] for a in same_name]})
        schedule = _check_schedule(body["schedule"], where="schedule") if body.get("schedule") is not None else None
        inputs, qualified_name = _prepare_inputs(ctx, spec, entrypoint, contract, body["inputs"], None)
        record = _insert_workflow(ctx, body["name"], spec, entrypoint, inputs, qualified_name, OWNER)
        slug = record["slug"]
        out: dict[str, Any] = {"execution_mode": "native", "slug": slug, "version": record["version"]}
        if schedule is not None:
            out["schedule_trigger_id"] = _attach(ctx, record, *schedule)["trigger_id"]
        if run:
            out["run_id"] = _submit(ctx, record)["run_id"]
        return out


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind != "seq":
            raise ValueError(kind)
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise bad_request(f"invalid cursor {cursor!r}; pass back the next_cursor of the previous page") from None


@router.route("GET", "v1/app")
def list_apps(ctx: Any, req: Request) -> dict[str, Any]:
    cfg = ctx.config
    limit = min(int_param(req.params, "limit", cfg.app_list_default_limit, minimum=1), cfg.app_list_max_limit)
    after = _decode_cursor(req.params["cursor"]) if req.params.get("cursor") else 0
    name = req.params.get("name")
    with ctx.store.read() as data:
        candidates = _named(ctx, name) if name is not None else data["apps"].values()
        matching = sorted((a for a in candidates if not a["archived"] and a["seq"] > after), key=lambda a: a["seq"])
        page = matching[:limit]
        has_more = len(matching) > limit
        return {
            "workflows": [render_app(ctx, a) for a in page],
            "has_more": has_more,
            "next_cursor": _encode_cursor(page[-1]["seq"]) if has_more else None,
        }


@router.route("GET", "v1/app/{slug}")
def get_app(ctx: Any, req: Request, slug: str) -> dict[str, Any]:
    with ctx.store.read() as data:
        return render_app(ctx, _active_app(data, slug))


@router.route("PUT", "v1/app/{slug}")
def update_app(ctx: Any, req: Request, slug: str) -> dict[str, Any]:
    body = require_object(req.body, "request body")
    if "inputs" not in body:
        raise bad_request("'inputs' is required (the complete input values: update is a full replace)",
                          causes=[{"errorType": "required", "errorMessage": "required", "location": "inputs"}])
    with ctx.store.mutate() as data:
        record = _active_app(data, slug)
        spec = catalogue.APPS[record["app_id"]]
        entrypoint, contract = _resolve_contract(spec, body)
        inputs, qualified_name = _prepare_inputs(ctx, spec, entrypoint, contract, body["inputs"], record["inputs"])
        record["inputs"] = inputs
        record["entrypoint"] = entrypoint
        record["connection_qualified_name"] = qualified_name or record["connection_qualified_name"]
        record["version"] = _new_version(ctx, record["version"])
        record["updated_at"] = ctx.store.now()
        record["correlation_id"] = ctx.store.new_guid()
        assets.write_connection(ctx, inputs.get("connection"))
        return {"execution_mode": "native", "slug": slug, "version": record["version"]}


@router.route("DELETE", "v1/app/{slug}")
def delete_app(ctx: Any, req: Request, slug: str) -> dict[str, Any]:
    with ctx.store.mutate() as data:
        record = _active_app(data, slug)
        _names(ctx)[record["name"]].remove(slug)  # (made, if it must be, while the record is still active)
        record["archived"] = True
        # Archiving a workflow removes its schedules; the name is free for reuse.
        for trigger in _schedules_of(data, slug):
            del data["schedules"][trigger["trigger_id"]]
        return {"slug": slug, "archived": True}


@router.route("POST", "v1/app/{slug}/submit")
def submit_run(ctx: Any, req: Request, slug: str) -> dict[str, Any]:
    with ctx.store.mutate() as data:
        run = _submit(ctx, _active_app(data, slug))
        return _render_run(ctx, run)


@router.route("GET", "v1/app/runs/{run_id}")
def get_run(ctx: Any, req: Request, run_id: str) -> dict[str, Any]:
    with ctx.store.read() as data:
        run = data["runs"].get(run_id)
        if run is None:
            raise not_found(f"run {run_id!r}")
        return _render_run(ctx, run)


@router.route("POST", "v1/app/runs/{run_id}/cancel")
def cancel_run(ctx: Any, req: Request, run_id: str) -> dict[str, Any]:
    with ctx.store.mutate() as data:
        run = data["runs"].get(run_id)
        if run is None:
            raise not_found(f"run {run_id!r}")
        cancelled = runs.stop(ctx, run)
        return {"run_id": run_id, "cancelled": cancelled, "status": runs.progress(ctx, run), "slug": run["slug"]}


@router.route("POST", "v1/app/{slug}/schedule")
def add_schedule(ctx: Any, req: Request, slug: str) -> dict[str, Any]:
    with ctx.store.mutate() as data:
        record = _active_app(data, slug)
        cron_expr, timezone = _check_schedule(req.body, where="schedule")
        trigger = _attach(ctx, record, cron_expr, timezone)
        return {"trigger_id": trigger["trigger_id"], "cron": cron_expr, "timezone": timezone}


@router.route("DELETE", "v1/app/{slug}/schedule/{trigger_id}")
def remove_schedule(ctx: Any, req: Request, slug: str, trigger_id: str) -> dict[str, Any]:
    with ctx.store.mutate() as data:
        _active_app(data, slug)
        trigger = data["schedules"].get(trigger_id)
        if trigger is None or trigger["slug"] != slug:
            raise not_found(f"schedule {trigger_id!r} of workflow {slug!r}")
        del data["schedules"][trigger_id]
        return {"trigger_id": trigger_id, "deleted": True}


def seed_app(ctx: Any, item: dict[str, Any]) -> str:
    """Insert a workflow directly (test seeding: allows duplicate names, skips the contract).

    The caller holds the mutate lock. ``item``: name, app_id, inputs, optional entrypoint.
    """
    spec = _app_spec(item["app_id"])
    entrypoint = item.get("entrypoint") or spec.default_entrypoint
    inputs = copy.deepcopy(item.get("inputs") or {})
    connection = inputs.get("connection")
    if isinstance(connection, str):
        try:
            connection = parse_json(connection)
        except ValueError as exc:
            raise bad_request(f"inputs.connection is not valid JSON: {exc}") from None
    if not isinstance(connection, dict):
        connection = {"typeName": "Connection", "attributes": {"qualifiedName": f"default/{spec.connector}/{int(ctx.store.now())}",
                                                               "connectorName": spec.connector, "name": item["name"]}}
    inputs["connection"] = connection
    inputs.setdefault("credential_guid", "")
    record = _insert_workflow(ctx, item["name"], spec, entrypoint, inputs,
                              connection["attributes"].get("qualifiedName"), item.get("owner", "ui-user"))
    return str(record["slug"])
