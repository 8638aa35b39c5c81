"""Plan → tenant: ordered, concurrent, crash-safe execution, and an ApplyReport.

Takes a Plan, the live State it was computed from (fresh), the state file and the options;
performs the changes in dependency order (credentials → apps and their schedules → workflows →
runs; deletes last, apps before credentials), independent changes of one phase concurrently,
and records every successful change in the state file at once (atomic write), so a crash
loses nothing and a re-run converges. A failed change fails only its dependents. Secrets are
read from the environment here, when they are sent, and never kept.
"""

from __future__ import annotations

import concurrent.futures
import copy
import enum
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from reconciler import kinds, render
from reconciler.client import ApiClient, credential_test_passed
from reconciler.errors import ApiError, NotFoundError, ReconcilerError, ServerError
from reconciler.fetch import SCHEDULE_ANNOTATION, TIMEZONE_ANNOTATION, Live
from reconciler.manifests import resolve_env
from reconciler.model import ResourceKey
from reconciler.normalize import canonical_json, canonical_schedule, wire_inputs
from reconciler.plan import Action, Change, Plan
from reconciler.state import StateFile, TenantState, secret_fingerprint

TERMINAL_RUN_STATUSES = ("Succeeded", "Failed", "Stopped", "Terminated", "Skipped")


class Status(str, enum.Enum):
    APPLIED = "applied"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class Outcome:
    change: Change
    status: Status
    message: str = ""
    run_id: str | None = None
    run_status: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.change.action.value, "kind": self.change.key.kind, "name": self.change.key.name,
                "status": self.status.value, "message": self.message, "run_id": self.run_id, "run_status": self.run_status}


@dataclass
class ApplyReport:
    tenant: str
    outcomes: list[Outcome] = field(default_factory=list)
    requests: int = 0  # of the whole command (fetch included)
    retries: Mapping[str, int] = field(default_factory=dict)  # by reason, whole command
    seconds: float = 0.0  # of the changes
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(o.status is not Status.APPLIED for o in self.outcomes) or any(
            o.run_status not in (None, "Succeeded", "Pending", "Running") for o in self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": 1, "tenant": self.tenant, "failed": self.failed, "seconds": round(self.seconds, 3),
                "requests": self.requests, "retries": dict(self.retries), "notes": list(self.notes),
                "outcomes": [o.to_dict() for o in self.outcomes]}


class ApplyError(ReconcilerError):
    """The apply was refused before anything was sent (too many deletes, stale plan, …)."""


@dataclass
class Options:
    prune: bool = False
    allow_replace: bool = False
    max_deletes: int = 10
    parallelism: int = 8
    env: Mapping[str, str] = field(default_factory=dict)
    fingerprint_key: bytes = b""


class Applier:
    def __init__(self, client: ApiClient, plan: Plan, live: Live, state: StateFile, options: Options,
                 progress: Callable[[str], None] = lambda _message: None) -> None:
        self.client = client
        self.plan = plan
        self.live = live
        self.state = state
        self.tenant_id = plan.tenant or client.base_url
        self.tenant: TenantState = state.tenant(self.tenant_id)
        self.options = options
        self.progress = progress
        self.report = ApplyReport(tenant=self.tenant_id)
        self._lock = threading.Lock()
        self._not_applied: set[ResourceKey] = set()  # objects whose change failed or was skipped
        self.role_guids = {name: guid for guid, name in live.context.role_names.items()}
        self.credential_guids = {k.name: r.server.get("guid") for k, r in live.state.items() if k.kind == "Credential"}

    # -- driver -----------------------------------------------------------------------------------

    def run(self) -> ApplyReport:
        started = time.monotonic()
        deletes = [c for c in self.plan.changes if c.action is Action.DELETE and (self.options.prune or not c.needs_prune)]
        if len(deletes) > self.options.max_deletes:
            raise ApplyError(f"the plan deletes {len(deletes)} objects, more than --max-deletes {self.options.max_deletes}; "
                             "nothing was applied", hint="Check the plan; raise --max-deletes if these deletes are intended.")
        for spec in kinds.by_rank():
            phase = [c for c in self.plan.changes if c.key.kind == spec.kind and c.action in (
                Action.CREATE, Action.UPDATE, Action.REPLACE, Action.NOOP)]
            self._concurrently(phase, self._apply_one)
        self._concurrently([c for c in self.plan.changes if c.action is Action.RUN], self._run_one)
        for spec in reversed(kinds.by_rank()):
            phase = [c for c in self.plan.changes if c.key.kind == spec.kind and c.action is Action.DELETE]
            self._concurrently(phase, self._delete_one)
        self.report.seconds = time.monotonic() - started
        # The client belongs to this command: its totals cover the fetch as well as the changes.
        self.report.requests = self.client.calls
        self.report.retries = self.client.retries.snapshot()
        order = {id(c): i for i, c in enumerate(self.plan.changes)}
        self.report.outcomes.sort(key=lambda o: order.get(id(o.change), 0))
        return self.report

    def _concurrently(self, changes: list[Change], fn: Callable[[Change], Outcome | None]) -> None:
        if not changes:
            return
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, self.options.parallelism)) as pool:
            for outcome in pool.map(lambda c: self._guarded(fn, c), changes):
                if outcome is not None:
                    self._finish(outcome)

    def _guarded(self, fn: Callable[[Change], Outcome | None], change: Change) -> Outcome | None:
        blocker = self._blocked_by(change)
        if blocker:
            return Outcome(change, Status.SKIPPED, f"skipped: it depends on {blocker}, which did not apply")
        try:
            return fn(change)
        except ApiError as exc:
            return Outcome(change, Status.FAILED, f"{exc.server_message} ({exc.method} {exc.status or 'no answer'})")
        except ReconcilerError as exc:
            return Outcome(change, Status.FAILED, str(exc))

    def _finish(self, outcome: Outcome) -> None:
        with self._lock:
            self.report.outcomes.append(outcome)
            if outcome.status is not Status.APPLIED:
                self._not_applied.add(outcome.change.key)
        if outcome.status is not Status.APPLIED or outcome.change.action is not Action.NOOP or outcome.message:
            self.progress(render.outcome_line(outcome))

    def _blocked_by(self, change: Change) -> str | None:
        """The object this change depends on, when that object's own change did not apply."""
        deps: list[ResourceKey] = []
        if change.action is Action.RUN:
            deps.append(change.key)
        elif change.key.kind == "App" and change.action is not Action.DELETE:
            ref = (change.after or {}).get("credentialRef")
            if ref:
                deps.append(ResourceKey("Credential", str(ref)))
        with self._lock:
            return next((str(dep) for dep in deps if dep in self._not_applied), None)

    def _record(self, key: ResourceKey, record: Mapping[str, Any] | None) -> None:
        """Write the state file after a successful change: atomic, so a crash loses nothing."""
        self.state.put(self.tenant_id, str(key), dict(record) if record is not None else None)

    # -- create / update / replace / no-op ------------------------------------------------------------

    def _apply_one(self, change: Change) -> Outcome | None:
        if change.action is Action.REPLACE and not self.options.allow_replace:
            return Outcome(change, Status.FAILED, f"refused: {change.reason.replace('; apply needs --allow-replace', '')}; "
                                                  "re-run with --allow-replace to delete and re-create it")
        handler = {"Credential": self._credential, "App": self._app, "Workflow": self._workflow}[change.key.kind]
        return handler(change)

    def _secrets(self, change: Change) -> dict[str, str]:
        values, missing = resolve_env(change.settings.get("secret_refs") or {}, self.options.env)
        if missing:
            raise ReconcilerError(f"environment variable {', '.join(missing)} is not set; {change.key} needs it now",
                                  hint=f"Export {', '.join(missing)} in the job that runs apply.")
        return values

    def _credential(self, change: Change) -> Outcome | None:
        key, after = change.key, dict(change.after or {})
        record = self.tenant.get(key)
        live = self.live.state.get(key)
        secrets = self._secrets(change)
        fingerprint = secret_fingerprint(self.options.fingerprint_key, secrets) if secrets else None
        if change.action is Action.NOOP and (not secrets or record.get("secretFingerprint") == fingerprint):
            self._remember(key, {**record, "guid": live.server.get("guid") if live else record.get("guid")}, change)
            return None
        connector = str(after.get("connector"))
        body: dict[str, Any] = {
            "name": key.name,
            "connector": connector,
            "connectorConfigName": after.get("connectorConfigName") or f"atlan-connectors-{connector}",
            "connectorType": after.get("connectorType") or connector,
            "authType": after.get("authType"),
            "extra": {**(after.get("extra") or {}), **{p.split(".", 1)[1]: v for p, v in secrets.items() if p.startswith("secretExtra.")}},
        }
        for name in ("description", "host", "port"):
            if after.get(name) is not None:
                body[name] = after[name]
        body.update({p: v for p, v in secrets.items() if "." not in p})
        verdict = self.client.test_credential(body)
        if not credential_test_passed(verdict):
            return Outcome(change, Status.FAILED, f"credential test failed: {verdict.get('error') or verdict.get('message')}")
        if change.action is Action.REPLACE and live is not None:
            self.client.archive_credential(str(live.server["guid"]))
            self._record(key, None)
            live = None
        if live is None:
            guid = str(self.client.create_credential(body, test=False)["id"])
        else:
            guid = str(live.server["guid"])
            self.client.update_credential(guid, body)
        with self._lock:
            self.credential_guids[key.name] = guid
        self._record(key, self._with_lifecycle({"guid": guid, "secretFingerprint": fingerprint}, change))
        message = "secrets recorded" if change.action is Action.NOOP else ""
        return Outcome(change, Status.APPLIED, message)

    def _with_lifecycle(self, record: dict[str, Any], change: Change) -> dict[str, Any]:
        if change.settings.get("prevent_destroy"):
            record["preventDestroy"] = True
        return {k: v for k, v in record.items() if v is not None}

    def _remember(self, key: ResourceKey, record: dict[str, Any], change: Change) -> None:
        """Refresh the state record of an unchanged object (adopted ones get one here)."""
        fresh = self._with_lifecycle(dict(record), change)
        if fresh != self.tenant.get(key):
            self._record(key, fresh)

    def _connection(self, change: Change, base: Mapping[str, Any] | None) -> dict[str, Any]:
        after = change.after or {}
        wanted = after.get("connection") or {}
        entity = copy.deepcopy(dict(base)) if base else {"typeName": "Connection", "attributes": {}}
        attributes = entity.setdefault("attributes", {})
        if not attributes.get("qualifiedName"):
            connector = str(after.get("appId", "")).split("-")[0]
            attributes["qualifiedName"] = change.settings.get("connection_qualified_name") or f"default/{connector}/{int(time.time())}"
        attributes.setdefault("connectorName", attributes["qualifiedName"].split("/")[1])
        attributes["name"] = wanted.get("name")
        for admins in ("adminRoles", "adminUsers", "adminGroups"):
            if admins in wanted:
                names = wanted[admins]
                attributes[admins] = [self.role_guids.get(n, n) for n in names] if admins == "adminRoles" else list(names)
        return entity

    def _app(self, change: Change) -> Outcome | None:
        key, after = change.key, dict(change.after or {})
        live = self.live.state.get(key)
        record = self.tenant.get(key)
        facts = self.live.context.contracts.get(str(after.get("appId")))
        entrypoint = change.settings.get("entrypoint")
        contract = facts.contract(entrypoint or after.get("entrypoint")) if facts else None
        if change.action is Action.NOOP:
            slug = str(live.server["slug"]) if live else str(record.get("slug"))
            schedules = self._sync_schedules(change, slug, live.server.get("version") if live else None,
                                             live.server.get("schedules") if live else record.get("schedules"))
            self._remember(key, {**record, "slug": slug, "schedules": schedules}, change)
            return None
        inputs = wire_inputs(dict(after.get("inputs") or {}), contract)
        ref = after.get("credentialRef")
        guid = self.credential_guids.get(str(ref), ref) if ref else None
        if change.action is Action.REPLACE and live is not None:
            self.client.delete_app(str(live.server["slug"]))
            self._record(key, None)
            live = None
        connection = self._connection(change, live.server.get("connection") if live else None)
        if guid:
            # Reuse the vaulted credential through the connection, the way the UI does; a bare
            # top-level guid can flatten a shared credential's config (ATLAN_API §2.11).
            connection["attributes"]["defaultCredentialGuid"] = guid
        if inputs.get("extraction_method") != "agent":
            inputs["credential_guid"] = ""
        inputs["connection"] = connection
        if live is None:
            created = self.client.create_app(str(after["appId"]), key.name, inputs, entrypoint=entrypoint, run=False)
            slug, version = created.slug, created.version
            self._record(key, self._with_lifecycle({"slug": slug, "schedules": record.get("schedules") or []}, change))
            if created.adopted:
                # The name was taken (an earlier run crashed after creating it): make it match.
                version = self.client.update_app(slug, inputs, entrypoint=entrypoint).get("version", version)
            known = (record.get("schedules") or []) if created.adopted else []
        else:
            slug = str(live.server["slug"])
            version = self.client.update_app(slug, inputs, entrypoint=entrypoint).get("version")
            known = live.server.get("schedules")
        schedules = self._sync_schedules(change, slug, version, known)
        self._record(key, self._with_lifecycle({"slug": slug, "schedules": schedules}, change))
        return Outcome(change, Status.APPLIED)

    def _sync_schedules(self, change: Change, slug: str, version: Any, known: Any) -> list[dict[str, Any]]:
        """Make the attached schedules the declared ones, each bound to the app's latest version.

        ``known`` are the triggers we can see (returned by the API or recorded); None when they
        are unknown, in which case nothing can be removed. A schedule attached to an older version
        fires that version, so it is removed and added again.
        """
        after = change.after or {}
        record = [dict(s) for s in known] if known is not None else []
        if "schedules" not in after:
            return record
        wanted = [canonical_json(s) for s in after.get("schedules") or []]
        keep, stale = [], []
        for trigger in record:
            canon = canonical_json(canonical_schedule(trigger))
            current = version is None or trigger.get("version") in (None, version)
            if canon in wanted and current:
                wanted.remove(canon)
                keep.append(trigger)
            else:
                stale.append(trigger)
        # Add first, then remove: a crash in between leaves an extra trigger on record (removed by
        # the next run), never a missing one.
        for schedule in after.get("schedules") or []:
            canon = canonical_json(schedule)
            if canon not in wanted:
                continue
            wanted.remove(canon)
            answer = self.client.add_schedule(slug, schedule["cron"], schedule.get("timezone") or "UTC")
            keep.append({"trigger_id": answer["trigger_id"], "cron": schedule["cron"],
                         "timezone": schedule.get("timezone") or "UTC", "version": version})
            self._record(change.key, self._with_lifecycle({"slug": slug, "schedules": keep + stale}, change))
        while stale:
            trigger = stale.pop()
            try:
                self.client.remove_schedule(slug, str(trigger["trigger_id"]))
            except NotFoundError:
                pass  # already gone
            self._record(change.key, self._with_lifecycle({"slug": slug, "schedules": keep + stale}, change))
        return keep

    def _workflow(self, change: Change) -> Outcome | None:
        key, after = change.key, dict(change.after or {})
        live = self.live.state.get(key)
        if live is None:
            return Outcome(change, Status.FAILED, "the template does not exist on the tenant")
        if change.action is Action.NOOP:
            self._remember(key, {"template": key.name}, change)
            return None
        source = copy.deepcopy(dict(live.server["source"]))
        wanted = dict(after.get("parameters") or {})
        for template in (source.get("spec") or {}).get("templates") or []:
            for task in ((template.get("dag") or {}).get("tasks") or []):
                for param in ((task.get("arguments") or {}).get("parameters") or []):
                    if param.get("name") in wanted:
                        param["value"] = wanted[param["name"]]
        present = set()
        for template in (source.get("spec") or {}).get("templates") or []:
            for task in ((template.get("dag") or {}).get("tasks") or []):
                present |= {p.get("name") for p in ((task.get("arguments") or {}).get("parameters") or [])}
        missing = [name for name in wanted if name not in present]
        if missing:
            first = source["spec"]["templates"][0]["dag"]["tasks"][0]
            first.setdefault("arguments", {}).setdefault("parameters", []).extend(
                {"name": n, "value": wanted[n]} for n in missing)
        if "schedule" in after:
            annotations = source.setdefault("metadata", {}).setdefault("annotations", {})
            if after["schedule"]:
                annotations[SCHEDULE_ANNOTATION] = after["schedule"]["cron"]
                annotations[TIMEZONE_ANNOTATION] = after["schedule"]["timezone"]
            else:
                annotations.pop(SCHEDULE_ANNOTATION, None)
                annotations.pop(TIMEZONE_ANNOTATION, None)
        self.client.update_template(source)
        self._record(key, {"template": key.name})
        return Outcome(change, Status.APPLIED)

    # -- runs and deletes --------------------------------------------------------------------------------

    def _run_one(self, change: Change) -> Outcome:
        slug = self.tenant.get(change.key).get("slug")
        if not slug:
            return Outcome(change, Status.SKIPPED, "skipped: the workflow was not created")
        try:
            run = self.client.submit_run(str(slug))
        except ServerError as exc:
            if "active run" in exc.server_message or "already" in exc.server_message:
                return Outcome(change, Status.APPLIED, f"a run is already in flight: {exc.server_message}")
            raise
        return Outcome(change, Status.APPLIED, "", run_id=run.get("run_id"), run_status=run.get("status"))

    def _delete_one(self, change: Change) -> Outcome:
        if change.needs_prune and not self.options.prune:
            return Outcome(change, Status.SKIPPED, "skipped: deletes need --prune")
        live = self.live.state.get(change.key)
        if live is None:
            self._record(change.key, None)
            return Outcome(change, Status.APPLIED, "already gone")
        try:
            if change.key.kind == "App":
                self.client.delete_app(str(live.server["slug"]))
            elif change.key.kind == "Credential":
                self.client.archive_credential(str(live.server["guid"]))
        except NotFoundError:
            pass
        self._record(change.key, None)
        return Outcome(change, Status.APPLIED)


def wait_for_runs(client: ApiClient, report: ApplyReport, timeout: float, progress: Callable[[str], None],
                  interval: float = 1.0) -> None:
    """Poll the submitted runs until each is terminal or the timeout passes; record their status."""
    pending = [o for o in report.outcomes if o.run_id and o.run_status not in TERMINAL_RUN_STATUSES]
    deadline = time.monotonic() + timeout
    last: dict[str, str] = {}
    while pending and time.monotonic() < deadline:
        for outcome in list(pending):
            answer = client.get_run(str(outcome.run_id))
            outcome.run_status = str(answer.get("status"))
            if last.get(str(outcome.run_id)) != outcome.run_status:
                last[str(outcome.run_id)] = outcome.run_status
                progress(f"run {outcome.run_id} of {outcome.change.key}: {outcome.run_status}")
            if outcome.run_status in TERMINAL_RUN_STATUSES:
                pending.remove(outcome)
        if pending:
            time.sleep(interval)
    for outcome in pending:
        outcome.message = f"still {outcome.run_status} after {timeout:.0f} s (not waited for any longer)"


def cancel_runs(client: ApiClient, report: ApplyReport) -> list[str]:
    cancelled = []
    for outcome in report.outcomes:
        if outcome.run_id and outcome.run_status not in TERMINAL_RUN_STATUSES:
            answer = client.cancel_run(str(outcome.run_id))
            outcome.run_status = str(answer.get("status"))
            outcome.message = "cancelled"
            cancelled.append(str(outcome.run_id))
    return cancelled
