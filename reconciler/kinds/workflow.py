"""Workflow: the parameters and schedule of an existing legacy (Argo) workflow template
(``/api/service/workflows``), and its re-run.

A Workflow manages a template the UI created; it never creates or deletes one. Live: one index
search per template name. Apply: the whole template is sent back with the declared parameters
and schedule annotations changed. ``run: {onUpdate: true}`` re-runs the template after a change,
as ``client.workflow.rerun(wf, idempotent=True)`` does in the official SDK: never while a run of
it is Pending or Running (that one is reported instead). The submit is write-ahead (an intent),
so a lost answer is never sent twice.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from reconciler.errors import Diagnostic
from reconciler.kinds import Fetched, FetchScope, Kind
from reconciler.model import Resource, ResourceKey
from reconciler.normalize import Context, canonical_json, canonical_schedule, canonical_value, fingerprint
from reconciler.outcomes import RUN_IN_FLIGHT, Outcome, RunState, Status
from reconciler.plan import Action, Change

if TYPE_CHECKING:
    from reconciler.apply import Applier
    from reconciler.client import ApiClient

SCHEDULE_ANNOTATION = "orchestration.atlan.com/schedule"
TIMEZONE_ANNOTATION = "orchestration.atlan.com/timezone"
TEMPLATE_LABEL = "workflows.argoproj.io/workflow-template"


class WorkflowKind(Kind):
    kind = "Workflow"
    schema_file = "workflow.schema.json"
    rank = 2
    schedule_single = "schedule"
    needs_one_of = ("parameters", "schedule")
    declared_only = ("parameters.*", "schedule")
    creatable = False  # the template belongs to the UI; a Workflow only tunes it
    deletable = False

    # -- fetch ---------------------------------------------------------------------------------------

    def fetch(self, client: ApiClient, scope: FetchScope, pool: Executor) -> Callable[[], Fetched]:
        names = sorted(set(scope.declared(self.kind)) | set(scope.records(self.kind)))
        found = {name: pool.submit(client.find_templates, name) for name in names}

        def finish() -> Fetched:
            return Fetched(objects=[(resource(source), str(source["metadata"].get("uid") or name))
                                    for name, f in found.items() for source in f.result()])
        return finish

    # -- normalize and plan ----------------------------------------------------------------------------

    def canonical(self, spec: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "parameters" in spec:
            out["parameters"] = {k: _parameter(v) for k, v in (spec.get("parameters") or {}).items()}
        if "schedule" in spec:
            out["schedule"] = canonical_schedule(spec["schedule"]) if spec["schedule"] else None
        return out

    def not_creatable(self, want: Resource) -> Diagnostic | None:
        return Diagnostic.at(want.origin, "RC102",
                             f"{want.key} does not exist on the tenant; a Workflow manages an existing template only",
                             column=1, hint="Check the template name (Workflows created in the UI are named "
                                            "<prefix>-<10-digit epoch>).")

    # -- apply ---------------------------------------------------------------------------------------

    def apply(self, change: Change, ops: Applier) -> Outcome | None:
        key, after = change.key, dict(change.after or {})
        live = ops.live.state.get(key)
        if live is None:
            return Outcome(change, Status.FAILED, "the template does not exist on the tenant")
        # The record keeps what it holds (unverified intents, a run owed): only apply settles those.
        record = {**ops.record(key), "template": key.name}
        if change.action is Action.NOOP:
            ops.remember(key, record, change)
            return None
        with ops.owing_run(change, record):
            ops.client.update_template(with_changes(live.server["source"], after))
        ops.put(key, ops.with_lifecycle({**ops.record(key), "template": key.name}, change))
        return Outcome(change, Status.APPLIED)

    exportable = True

    def discover(self, client: ApiClient) -> list[Resource]:
        return [Resource(ResourceKey("Workflow", str(hit["_source"]["metadata"]["name"])), {})
                for hit in client.search_templates({"match_all": {}})]

    def export_spec(self, live: Resource, ctx: Context, ref: Callable[[str, str], str],
                    record: Mapping[str, Any]) -> dict[str, Any]:
        # A parameter set twice in the template with different values is left out: an update sets
        # every occurrence of a declared parameter, which would silently change the other one.
        seen: dict[str, set[str]] = {}
        for param in task_parameters(live.server.get("source") or {}):
            seen.setdefault(str(param.get("name")), set()).add(canonical_json(param.get("value")))
        parameters = {k: v for k, v in (live.spec.get("parameters") or {}).items() if len(seen.get(k, ())) <= 1}
        out: dict[str, Any] = {}
        if parameters:
            out["parameters"] = parameters
        out["schedule"] = live.spec.get("schedule")  # shown by the template itself: None is known to be none
        return out

    def export_record(self, live: Resource, record: Mapping[str, Any]) -> dict[str, Any]:
        return {**record, "template": live.key.name}

    def submit_run(self, change: Change, ops: Applier) -> Outcome:
        name = change.key.name
        if not ops.record(change.key).get("template"):
            return Outcome(change, Status.SKIPPED, "skipped: the template was not updated")
        with ops.run_intent(change.key) as settle:
            in_flight = runs_in_flight(ops.client, name)
            if in_flight:
                settle()
                run_name, phase = in_flight[0]
                return Outcome(change, Status.APPLIED, f"a run is already in flight: {run_name} is {phase}; "
                                                       "not started again")
            run = ops.client.rerun_template(name)
            settle()
        return Outcome(change, Status.APPLIED, "", run_id=str((run.get("metadata") or {}).get("name")),
                       run_status=str((run.get("status") or {}).get("phase") or "Pending"))

    def run_status(self, client: ApiClient, run_id: str) -> RunState | None:
        return run_state(run_id, client)

    def cancel_run(self, client: ApiClient, run_id: str) -> str | None:
        answer = client.stop_workflow_run(run_id)
        phase = str(((answer or {}).get("status") or {}).get("phase") or "")
        if phase:
            return phase
        state = run_state(run_id, client)
        return state.status if state else None


# -- the template ----------------------------------------------------------------------------------------


def task_parameters(source: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every task parameter of a template (the Argo walk: templates → dag.tasks → arguments),
    as the mutable dicts of ``source``."""
    for template in (source.get("spec") or {}).get("templates") or []:
        for task in (template.get("dag") or {}).get("tasks") or []:
            yield from (task.get("arguments") or {}).get("parameters") or []


def template_parameters(source: Mapping[str, Any]) -> dict[str, Any]:
    """Every task parameter of a template, first occurrence of a name winning."""
    params: dict[str, Any] = {}
    for p in task_parameters(source):
        params.setdefault(str(p.get("name")), p.get("value"))
    return params


def resource(source: Mapping[str, Any]) -> Resource:
    annotations = (source.get("metadata") or {}).get("annotations") or {}
    schedule = annotations.get(SCHEDULE_ANNOTATION)
    spec = {
        "parameters": template_parameters(source),
        "schedule": {"cron": schedule, "timezone": annotations.get(TIMEZONE_ANNOTATION) or "UTC"} if schedule else None,
    }
    server = {"id": (source.get("metadata") or {}).get("uid"), "source": source, "fingerprint": fingerprint(source)}
    return Resource(key=ResourceKey("Workflow", str(source["metadata"]["name"])), spec=spec, server=server)


def with_changes(source: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The whole template with the declared parameters set (a name the template lacks is added to
    its first task) and the schedule annotations set or removed."""
    updated = copy.deepcopy(dict(source))
    wanted = dict(after.get("parameters") or {})
    present = set()
    for param in task_parameters(updated):
        present.add(param.get("name"))
        if param.get("name") in wanted:
            param["value"] = wanted[param["name"]]
    missing = [name for name in wanted if name not in present]
    if missing:
        first = updated["spec"]["templates"][0]["dag"]["tasks"][0]
        first.setdefault("arguments", {}).setdefault("parameters", []).extend({"name": n, "value": wanted[n]} for n in missing)
    if "schedule" in after:
        annotations = updated.setdefault("metadata", {}).setdefault("annotations", {})
        if after["schedule"]:
            annotations[SCHEDULE_ANNOTATION] = after["schedule"]["cron"]
            annotations[TIMEZONE_ANNOTATION] = after["schedule"]["timezone"]
        else:
            annotations.pop(SCHEDULE_ANNOTATION, None)
            annotations.pop(TIMEZONE_ANNOTATION, None)
    return updated


def _parameter(value: Any) -> str:
    # Argo parameter values are strings; `true` in YAML means the string "true".
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(canonical_value(value))


# -- runs ------------------------------------------------------------------------------------------------


def runs_in_flight(client: ApiClient, name: str) -> list[tuple[str, str]]:
    """The runs of a template that are Pending or Running, with their phase (what the SDK's
    idempotent rerun finds)."""
    query = {"bool": {"filter": [
        {"nested": {"path": "spec", "query": {"term": {"spec.workflowTemplateRef.name.keyword": {"value": name}}}}},
        {"terms": {"status.phase.keyword": sorted(RUN_IN_FLIGHT)}},
    ]}}
    return [(str(hit["_source"]["metadata"]["name"]), str((hit["_source"].get("status") or {}).get("phase")))
            for hit in client.search_runs(query)]


def run_state(run_name: str, client: ApiClient) -> RunState | None:
    """A run's phase and message; None while the runs index does not show it yet (it lags behind a
    submit)."""
    query = {"bool": {"filter": [{"term": {"_id": {"value": run_name}}}]}}
    hits = list(client.search_runs(query))
    if not hits:
        return None
    status = hits[0]["_source"].get("status") or {}
    return RunState(str(status.get("phase")), str(status.get("message") or ""))


KIND = WorkflowKind()
