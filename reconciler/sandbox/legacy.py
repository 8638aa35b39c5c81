"""Legacy (Argo) workflow API of the sandbox tenant (ATLAN_API §4): template and run search,
create-and-run, update by POST of the whole template, schedules as annotations (with the derived
``<name>-cron`` object), rerun, stop and archive. Both the ``workflows/…`` and the
``package-workflows/…`` variants are served. Phases are limited to the five the SDK can parse.

Also the routes pyatlan 10 (the last SDK with ``client.workflow``) calls that have no package
variant: ``workflows/triggerAsOwner`` (a rerun whose run carries the template owner's id as its
creator label), ``workflows/{name}/changeownership`` (the username as a JSON body, as the SDK
sends it, or as a query parameter; it must be a user of the directory, else 400; the template's
creator labels name the new owner), and ``runs/cron/scheduleQueriesBetweenDuration`` (runs of
``@atlan/schedule-query`` templates started between ``startDate`` and ``endDate``, inclusive,
oldest first). Choices where the real server's behaviour is unknown [?]: the sandbox fires no
schedules, so ``missedScheduleQueriesBetweenDuration`` is always an empty list; a missing or
unparsable date is 400 naming it.

More choices [?]:

* ``payload`` credentials are vaulted on create *and* update (a builder's ``to_workflow()`` sent to
  ``update`` carries them), each ``{{parameter}}`` placeholder in the spec, the connection JSON
  string included, becoming the issued guid; the raw credential is never stored. A payload
  credential without ``parameter`` or ``body`` is 400, checked before anything is vaulted.
* Owner: as Argo does, a template is labelled ``workflows.argoproj.io/creator`` (a user id) and
  ``creator-preferred-username`` with whoever created it, the API token's service account, over
  any such label in the body. An update keeps them whatever it echoes: only changeownership moves
  them. Runs carry the same two labels: the caller's (the service account) from ``submit`` and
  create, the template owner's from ``triggerAsOwner``. The seeded UI templates belong to ``jdoe``.
* ``triggerAsOwner`` takes the scheduled query's template name (``asq-…``) as ``resourceName``.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from reconciler import cron
from reconciler.sandbox import catalogue, runs
from reconciler.sandbox.credentials import vault
from reconciler.sandbox.dates import parse_instant
from reconciler.sandbox.routing import HttpError, Request, Router, bad_request, not_found, require_object
from reconciler.sandbox.search import search

router = Router()

SCHEDULE_ANNOTATION = "orchestration.atlan.com/schedule"
TIMEZONE_ANNOTATION = "orchestration.atlan.com/timezone"
CREATOR = "service-account-apikey-reconciler"
OWNER_LABEL = "workflows.argoproj.io/creator"  # who a template or run belongs to (a user id)
OWNER_NAME_LABEL = "workflows.argoproj.io/creator-preferred-username"
SCHEDULE_QUERY_PACKAGE = "@atlan/schedule-query"


def _active_template(data: dict[str, Any], name: str) -> dict[str, Any]:
    entry = data["templates"].get(name)
    if entry is None or entry["archived"]:
        raise not_found(f"workflow template {name!r}")
    return entry


def _check_annotations(metadata: dict[str, Any]) -> None:
    annotations = metadata.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise bad_request("metadata.annotations must be an object")
    schedule = annotations.get(SCHEDULE_ANNOTATION)
    if schedule is not None:
        problem = cron.cron_problem(schedule)
        if problem:
            raise bad_request(f"annotation {SCHEDULE_ANNOTATION}: {problem}")
        problem = cron.timezone_problem(annotations.get(TIMEZONE_ANNOTATION, "UTC"))
        if problem:
            raise bad_request(f"annotation {TIMEZONE_ANNOTATION}: {problem}")


def _check_spec(spec: Any) -> dict[str, Any]:
    spec = require_object(spec, "spec")
    if not isinstance(spec.get("templates"), list) or not spec["templates"]:
        raise bad_request("spec.templates must be a non-empty list")
    return spec


def _creator_labels(user: dict[str, Any] | None = None) -> dict[str, str]:
    """Argo's labels naming who created (owns) a template or run: the user's id and username. The
    default is the API token's service account, the identity every request here comes from."""
    user = user or catalogue.API_TOKEN_USER
    return {OWNER_LABEL: user["id"], OWNER_NAME_LABEL: user["username"]}


def _vault_payload(ctx: Any, spec: dict[str, Any], payload: Any) -> dict[str, Any]:
    """The spec with each ``payload`` credential vaulted and its ``{{parameter}}`` placeholders
    (``{{credentialGuid}}``, in parameters and inside the connection JSON string) replaced by the
    issued guid. The raw credential is never stored in the template."""
    if payload is not None and not isinstance(payload, list):
        raise bad_request("payload must be a list", causes=[
            {"errorType": "type", "errorMessage": "a list of {parameter, type, body}", "location": "payload"}])
    credentials = [(i, item) for i, item in enumerate(payload or []) if isinstance(item, dict) and item.get("type") == "credential"]
    for index, item in credentials:  # all checked before any is vaulted
        if not isinstance(item.get("parameter"), str) or not item["parameter"] or not isinstance(item.get("body"), dict):
            raise bad_request("a payload credential needs a 'parameter' name and a 'body' object", causes=[
                {"errorType": "required", "errorMessage": "parameter and body", "location": f"payload[{index}]"}])
    spec_text = json.dumps(spec)
    for _, item in credentials:
        guid = vault(ctx.store, item["body"], created_by=CREATOR)
        spec_text = spec_text.replace("{{" + item["parameter"] + "}}", guid)
    spec = json.loads(spec_text)
    return spec if isinstance(spec, dict) else {}


def _phase(ctx: Any, run: dict[str, Any]) -> str:
    status = runs.progress(ctx, run)
    return "Failed" if status == "Stopped" else status  # Argo's Stopped is not a phase the SDK can parse


def render_run(ctx: Any, run: dict[str, Any]) -> dict[str, Any]:
    phase = _phase(ctx, run)
    status: dict[str, Any] = {"phase": phase, "startedAt": runs.iso(run["created_at"]), "progress": "0/1"}
    if phase not in runs.ACTIVE:
        status["finishedAt"] = runs.finished_at(run)
        status["progress"] = "1/1" if phase == "Succeeded" else "0/1"
        if run.get("stopped_at") is not None:
            status["message"] = "Stopped with strategy 'Stop'"
        elif phase == "Failed":
            status["message"] = runs.message(ctx, run)
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": run["name"],
            "namespace": "default",
            "creationTimestamp": runs.iso(run["created_at"]),
            "labels": {"workflows.argoproj.io/phase": phase, **_run_creator(run),
                       "workflows.argoproj.io/workflow-template": run["template"]},
        },
        "spec": {"workflowTemplateRef": {"name": run["template"]}},
        "status": status,
    }


def _run_creator(run: dict[str, Any]) -> dict[str, str]:
    """A run's creator labels: the API token's service account, or, for a run triggered as its
    template's owner, that owner."""
    if not run.get("creator"):
        return _creator_labels()
    return {OWNER_LABEL: run["creator"], **({OWNER_NAME_LABEL: run["creator_name"]} if run.get("creator_name") else {})}


def _new_run(ctx: Any, template: str, *, owner: dict[str, str] | None = None) -> dict[str, Any]:
    data = ctx.store.data
    while True:
        name = f"{template}-{ctx.store.new_suffix(5)}"
        if name not in data["workflow_runs"]:
            break
    source = data["templates"][template]["source"]
    run = {"name": name, "template": template, **runs.new_timing(ctx, _credentials_of(source), unknown_credentials_ok=True)}
    if owner and owner.get(OWNER_LABEL):
        run["creator"] = owner[OWNER_LABEL]
        if owner.get(OWNER_NAME_LABEL):
            run["creator_name"] = owner[OWNER_NAME_LABEL]
    data["workflow_runs"][name] = run
    return run


_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


def _credentials_of(source: dict[str, Any]) -> list[str]:
    """The credential guids a template's parameters name: a parameter whose value is a guid
    (``credential-guid``, the lineage builder's ``cloud_source``), or a connection JSON whose
    ``defaultCredentialGuid`` is one. The run uses the template as it is when submitted."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            value = node.get("value") if "name" in node else None
            if isinstance(value, str) and _GUID.match(value):
                found.append(value)
            elif isinstance(value, str) and value.lstrip().startswith("{"):
                try:
                    parsed = json.loads(value)
                except ValueError:
                    parsed = None
                attributes = parsed.get("attributes") if isinstance(parsed, dict) else None
                guid = attributes.get("defaultCredentialGuid") if isinstance(attributes, dict) else None
                if isinstance(guid, str) and _GUID.match(guid):
                    found.append(guid)
            for child in node.values():
                walk(child)

    walk(source.get("spec"))
    return found


def _cron_object(entry: dict[str, Any]) -> dict[str, Any] | None:
    source = entry["source"]
    annotations = source["metadata"].get("annotations") or {}
    schedule = annotations.get(SCHEDULE_ANNOTATION)
    if entry["archived"] or not schedule:
        return None
    name = source["metadata"]["name"]
    return {
        "metadata": {"name": f"{name}-cron", "namespace": "default", "creationTimestamp": source["metadata"].get("creationTimestamp")},
        "spec": {
            "schedule": schedule,
            "timezone": annotations.get(TIMEZONE_ANNOTATION, "UTC"),
            "workflowSpec": {"workflowTemplateRef": {"name": name}},
            "concurrencyPolicy": "Allow",
            "startingDeadlineSeconds": 0,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
        },
        "status": {"active": [], "conditions": [], "lastScheduledTime": None},
        "workflowMetadata": copy.deepcopy(source["spec"].get("workflowMetadata")),
    }


def _rerun(ctx: Any, req: Request, *, as_owner: bool = False) -> dict[str, Any]:
    """A new run of a template (``ReRunRequest``: namespace, resourceKind, resourceName)."""
    body = require_object(req.body, "rerun body")
    if body.get("resourceKind", "WorkflowTemplate") != "WorkflowTemplate":
        raise bad_request("resourceKind must be 'WorkflowTemplate'")
    name = body.get("resourceName")
    if not isinstance(name, str) or not name:
        raise bad_request("resourceName is required")
    with ctx.store.mutate() as data:
        source = _active_template(data, name)["source"]
        owner = (source["metadata"].get("labels") or {}) if as_owner else None
        return render_run(ctx, _new_run(ctx, name, owner=owner))


def _workflow_response(source: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": copy.deepcopy(source["metadata"]), "spec": copy.deepcopy(source["spec"])}


def _register(prefix: str) -> None:
    """Routes served under both `workflows` and `package-workflows`. Literal paths come first."""

    @router.route("POST", f"{prefix}/submit")
    def rerun(ctx: Any, req: Request) -> dict[str, Any]:
        return _rerun(ctx, req)

    @router.route("POST", prefix)
    def create_and_run(ctx: Any, req: Request) -> dict[str, Any]:
        body = require_object(req.body, "workflow body")
        metadata = require_object(body.get("metadata"), "metadata")
        name = metadata.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request("metadata.name is required")
        spec = _check_spec(body.get("spec"))
        _check_annotations(metadata)
        with ctx.store.mutate() as data:
            existing = data["templates"].get(name)
            if existing is not None and not existing["archived"]:
                raise HttpError(409, f"workflow template {name!r} already exists", code=409)
            new_metadata = copy.deepcopy(metadata)
            # Argo labels a template with the identity that created it, whatever the body says.
            new_metadata["labels"] = {**(new_metadata.get("labels") or {}), **_creator_labels()}
            source = {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "WorkflowTemplate",
                "metadata": {**new_metadata, "namespace": "default", "creationTimestamp": runs.iso(ctx.store.now()),
                             "uid": ctx.store.new_guid(), "resourceVersion": "1", "generation": 1},
                "spec": _vault_payload(ctx, spec, body.get("payload")),
            }
            data["templates"][name] = {"source": source, "archived": False}
            if req.params.get("submit", "").lower() == "true":
                _new_run(ctx, name)
            return {**_workflow_response(source), "payload": []}

    @router.route("POST", f"{prefix}/{{name}}")
    def update_template(ctx: Any, req: Request, name: str) -> dict[str, Any]:
        body = require_object(req.body, "workflow body")
        metadata = require_object(body.get("metadata"), "metadata")
        if metadata.get("name", name) != name:
            raise bad_request(f"metadata.name {metadata.get('name')!r} does not match {name!r} in the path")
        spec = _check_spec(body.get("spec"))
        _check_annotations(metadata)
        with ctx.store.mutate() as data:
            source = _active_template(data, name)["source"]
            kept = source["metadata"]
            new_metadata = copy.deepcopy(metadata)
            # Server-owned metadata is kept, whatever the client echoes; the rest is replaced. The
            # owner (the creator labels) changes only through changeownership.
            for key in ("name", "namespace", "uid", "creationTimestamp"):
                if key in kept:
                    new_metadata[key] = kept[key]
            owner = {k: v for k, v in (kept.get("labels") or {}).items() if k in (OWNER_LABEL, OWNER_NAME_LABEL)}
            labels = {k: v for k, v in (new_metadata.get("labels") or {}).items() if k not in (OWNER_LABEL, OWNER_NAME_LABEL)}
            if owner or labels or "labels" in new_metadata:
                new_metadata["labels"] = {**labels, **owner}
            new_metadata["resourceVersion"] = str(int(kept.get("resourceVersion", "1")) + 1)
            new_metadata["generation"] = int(kept.get("generation", 1)) + 1
            source["metadata"] = new_metadata
            source["spec"] = _vault_payload(ctx, spec, body.get("payload"))
            return _workflow_response(source)

    @router.route("POST", f"{prefix}/{{name}}/archive")
    def archive_template(ctx: Any, req: Request, name: str) -> dict[str, Any]:
        with ctx.store.mutate() as data:
            _active_template(data, name)["archived"] = True
            return {"name": name, "archived": True, "message": "workflow template archived"}


@router.route("POST", "workflows/indexsearch")
def search_templates(ctx: Any, req: Request) -> dict[str, Any]:
    request = require_object(req.body or {}, "search request")
    with ctx.store.read() as data:
        docs = [(name, copy.deepcopy(e["source"])) for name, e in data["templates"].items() if not e["archived"]]
    return search(docs, request, "atlan-workflow-templates", ctx.store.now())


@router.route("POST", "runs/indexsearch")
def search_runs(ctx: Any, req: Request) -> dict[str, Any]:
    request = require_object(req.body or {}, "search request")
    with ctx.store.read() as data:
        docs = [(name, render_run(ctx, run)) for name, run in data["workflow_runs"].items()]
    return search(docs, request, "atlan-workflow-runs", ctx.store.now())


@router.route("POST", "workflows/triggerAsOwner")
def trigger_as_owner(ctx: Any, req: Request) -> dict[str, Any]:
    """A run of a template as its owner (the SDK's ``re_run_schedule_query``): the run's creator
    label is the template's owner, where it has one."""
    return _rerun(ctx, req, as_owner=True)


@router.route("POST", "workflows/{name}/changeownership")
def change_ownership(ctx: Any, req: Request, name: str) -> dict[str, Any]:
    """The new owner's username comes as a JSON body (what the SDK sends), or as a query parameter."""
    body = req.body if isinstance(req.body, dict) else {}
    username = body.get("username", req.params.get("username"))
    if not isinstance(username, str) or not username:
        raise bad_request("'username' is required: the user who should own the workflow",
                          causes=[{"errorType": "required", "errorMessage": "required", "location": "username"}])
    user = next((u for u in catalogue.USERS if u["username"] == username), None)
    if user is None:
        raise bad_request(f"user {username!r} does not exist", causes=[
            {"errorType": "reference", "errorMessage": f"no user {username!r}", "location": "username"}])
    with ctx.store.mutate() as data:
        source = _active_template(data, name)["source"]
        metadata = source["metadata"]
        metadata["labels"] = {**(metadata.get("labels") or {}), **_creator_labels(user)}
        metadata["resourceVersion"] = str(int(metadata.get("resourceVersion", "1")) + 1)
        return _workflow_response(source)


@router.route("GET", "runs/cron/scheduleQueriesBetweenDuration")
def schedule_query_runs(ctx: Any, req: Request) -> list[dict[str, Any]]:
    """Runs of scheduled queries (templates of ``@atlan/schedule-query``) started between
    ``startDate`` and ``endDate`` (ISO-8601, inclusive), oldest first."""
    start, end = _window(req)
    with ctx.store.read() as data:
        found = []
        for run in data["workflow_runs"].values():
            entry = data["templates"].get(run["template"])
            package = ((entry or {}).get("source", {}).get("metadata", {}).get("annotations") or {}).get(
                "package.argoproj.io/name")
            if package == SCHEDULE_QUERY_PACKAGE and start <= run["created_at"] <= end:
                found.append(run)
        return [render_run(ctx, run) for run in sorted(found, key=lambda r: r["created_at"])]


@router.route("GET", "runs/cron/missedScheduleQueriesBetweenDuration")
def missed_schedule_query_runs(ctx: Any, req: Request) -> list[dict[str, Any]]:
    """The sandbox fires no schedules, so none can be missed: always an empty list (once the
    window is checked)."""
    _window(req)
    return []


def _window(req: Request) -> tuple[float, float]:
    bounds = []
    for name in ("startDate", "endDate"):
        raw = req.params.get(name)
        moment = parse_instant(raw) if raw else None
        if moment is None:
            example = "an ISO-8601 date-time (e.g. 2024-03-25T16:30:00.000+05:30)"
            message = f"is required: {example}" if not raw else f"must be {example}, got {raw[:100]!r}"
            raise bad_request(f"query parameter {name!r} {message}", causes=[
                                  {"errorType": "required" if not raw else "format", "errorMessage": "an ISO-8601 date-time",
                                   "location": name}])
        bounds.append(moment.timestamp())
    if bounds[0] > bounds[1]:
        raise bad_request("'startDate' is after 'endDate'")
    return bounds[0], bounds[1]


@router.route("POST", "runs/{run_name}/stop")
def stop_run(ctx: Any, req: Request, run_name: str) -> dict[str, Any]:
    with ctx.store.mutate() as data:
        run = data["workflow_runs"].get(run_name)
        if run is None:
            raise not_found(f"workflow run {run_name!r}")
        runs.stop(ctx, run)
        return render_run(ctx, run)


@router.route("GET", "runs/cron")
def list_cron(ctx: Any, req: Request) -> dict[str, Any]:
    with ctx.store.read() as data:
        items = [c for c in (_cron_object(e) for e in data["templates"].values()) if c is not None]
    return {"items": items}


@router.route("GET", "runs/cron/{cron_name}")
def get_cron(ctx: Any, req: Request, cron_name: str) -> dict[str, Any]:
    name = cron_name[: -len("-cron")] if cron_name.endswith("-cron") else cron_name
    with ctx.store.read() as data:
        entry = data["templates"].get(name)
        found = _cron_object(entry) if entry is not None else None
    if found is None:
        raise not_found(f"cron workflow {cron_name!r}")
    return found


# `workflows/indexsearch` is registered above; the literal routes of each prefix then win over
# `{prefix}/{name}` because they are registered first.
for _prefix in ("workflows", "package-workflows"):
    _register(_prefix)
