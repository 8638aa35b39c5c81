"""Plan → tenant: ordered, concurrent, crash-safe execution, and an ApplyReport.

Takes a Plan, the live State it was computed from (fresh), the state file and the options;
performs the changes in dependency order (credentials → apps and their schedules → workflows →
runs; deletes last, apps before credentials), independent changes of one phase concurrently,
and records every successful change in the state file at once (atomic write), so a crash
loses nothing and a re-run converges. A failed change fails only its dependents. Secrets are
read from the environment here, when they are sent, and never kept.

No write is repeated blindly. When the answer to a create is lost (the tenant may have acted),
a credential is looked up by name and adopted (or, proven absent, sent again), an app takes the
409 path in the client, and a schedule or a run becomes an **intent**: recorded in the state file
*before* the request and settled after it, so that a lost answer or a kill leaves a visible
intent that the plan reports, never a hidden trigger or a second run.
"""

from __future__ import annotations

import concurrent.futures
import copy
import datetime as dt
import enum
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from reconciler import kinds, render
from reconciler.client import ApiClient, credential_test_passed
from reconciler.errors import ApiError, ConflictError, NotFoundError, ReconcilerError, ServerError
from reconciler.fetch import SCHEDULE_ANNOTATION, TIMEZONE_ANNOTATION, Live
from reconciler.manifests import protected_references, resolve_env
from reconciler.model import ResourceKey
from reconciler.normalize import canonical_json, canonical_schedule, wire_inputs
from reconciler.plan import Action, Change, Plan
from reconciler.state import StateFile, TenantState, secret_fingerprint

TERMINAL_RUN_STATUSES = ("Succeeded", "Failed", "Stopped", "Terminated", "Skipped")


class Status(str, enum.Enum):
    APPLIED = "applied"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNVERIFIED = "unverified"  # the tenant may or may not have acted; an intent records it
    NOT_APPLIED = "not-applied"  # a delete candidate, applied only with --prune: not a failure


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
        return any(o.status not in (Status.APPLIED, Status.NOT_APPLIED) for o in self.outcomes) or any(
            o.run_status not in (None, "Succeeded", "Pending", "Running") for o in self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": 1, "tenant": self.tenant, "failed": self.failed, "seconds": round(self.seconds, 3),
                "requests": self.requests, "retries": dict(self.retries), "notes": list(self.notes),
                "outcomes": [o.to_dict() for o in self.outcomes]}


class ApplyError(ReconcilerError):
    """The apply was refused before anything was sent (too many deletes, stale plan, …)."""


@dataclass
class Options:
    allow_replace: bool = False
    max_deletes: int = 10
    parallelism: int = 8
    env: Mapping[str, str] = field(default_factory=dict)
    fingerprint_key: bytes = b""
    # Never sent as a credential secret, whatever a manifest or a plan file names.
    api_key: str = ""
    api_key_env: str = "ATLAN_API_KEY"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _intent(action: str, **fields: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex[:12], "action": action, "at": _now(), **fields}


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
        self.runs_planned = {c.key for c in plan.changes if c.action is Action.RUN}

    # -- driver -----------------------------------------------------------------------------------

    def run(self) -> ApplyReport:
        started = time.monotonic()
        deletes = [c for c in self.plan.changes if c.action is Action.DELETE and not c.needs_prune]
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
            if exc.outcome_unknown:
                return Outcome(change, Status.UNVERIFIED, f"{exc.server_message} ({exc.method} {exc.status or 'no answer'}); "
                                                          "the next plan shows whether it took effect")
            return Outcome(change, Status.FAILED, f"{exc.server_message} ({exc.method} {exc.status or 'no answer'})")
        except ReconcilerError as exc:
            return Outcome(change, Status.FAILED, str(exc))

    def _finish(self, outcome: Outcome) -> None:
        with self._lock:
            self.report.outcomes.append(outcome)
            if outcome.status not in (Status.APPLIED, Status.NOT_APPLIED):
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

    def _amend(self, key: ResourceKey, **fields: Any) -> dict[str, Any]:
        """Change some fields of an object's record (None removes one) and write it at once.
        Each object is handled by one thread, so read-modify-write of its record is safe."""
        record = dict(self.tenant.get(key))
        for name, value in fields.items():
            if value is None:
                record.pop(name, None)
            else:
                record[name] = value
        self._record(key, record)
        return record

    def _add_intent(self, key: ResourceKey, intent: dict[str, Any]) -> None:
        self._amend(key, intents=[*(self.tenant.get(key).get("intents") or []), intent])

    def _settle_intent(self, key: ResourceKey, intent_id: str, **fields: Any) -> None:
        """Drop an intent and record what it turned into, in one write."""
        left = [i for i in self.tenant.get(key).get("intents") or [] if i.get("id") != intent_id]
        self._amend(key, intents=left or None, **fields)

    # -- create / update / replace / no-op ------------------------------------------------------------

    def _apply_one(self, change: Change) -> Outcome | None:
        if change.action is Action.REPLACE and not self.options.allow_replace:
            return Outcome(change, Status.FAILED, f"refused: {change.reason.replace('; apply needs --allow-replace', '')}; "
                                                  "re-run with --allow-replace to delete and re-create it")
        handler = {"Credential": self._credential, "App": self._app, "Workflow": self._workflow}[change.key.kind]
        return handler(change)

    def _secrets(self, change: Change) -> dict[str, str]:
        refs = change.settings.get("secret_refs") or {}
        values, missing = resolve_env(refs, self.options.env)
        named = sorted({name for ref in refs.values() for name in protected_references(str(ref), self.options.api_key_env)})
        if named or (self.options.api_key and self.options.api_key in values.values()):
            raise ReconcilerError(f"{change.key} would send the tenant's API key (or the fingerprint key) as a credential "
                                  f"secret{': ' + ', '.join(named) if named else ''}; refused",
                                  hint="Give the credential its own secret variables.")
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
            live, record = None, {}
        if live is None:
            # Write-ahead, as for apps: a kill right after the create leaves a record to find it by.
            if not record:
                self._record(key, self._with_lifecycle({}, change))
            try:
                guid = self._create_credential(key.name, body)
            except ApiError as exc:
                if not record and not exc.outcome_unknown:
                    self._record(key, None)  # nothing was created: no record of it either
                raise
        else:
            guid = str(live.server["guid"])
            self.client.update_credential(guid, body)
        with self._lock:
            self.credential_guids[key.name] = guid
        self._record(key, self._with_lifecycle({"guid": guid, "secretFingerprint": fingerprint}, change))
        message = "secrets recorded" if change.action is Action.NOOP else ""
        return Outcome(change, Status.APPLIED, message)

    def _create_credential(self, name: str, body: dict[str, Any]) -> str:
        """Create a credential without ever creating it twice: when the answer is lost, look it up
        by name; one found is ours (adopted), none found proves the create did nothing (sent again)."""
        for attempt in range(3):
            try:
                return str(self.client.create_credential(body, test=False)["id"])
            except ApiError as exc:
                if not exc.outcome_unknown or attempt == 2:
                    raise
                found = [c for c in self.client.list_credentials({"name": name}) if c.get("name") == name]
                if len(found) == 1:
                    return str(found[0]["id"])
                if len(found) > 1:
                    raise ConflictError(f"{len(found)} credentials are named {name!r} after a create whose answer was lost",
                                        status=None, method=exc.method, url=exc.url,
                                        hint="Archive the duplicates in Atlan, then run again.") from exc
        raise AssertionError("unreachable")

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
            return self._app_schedules(change, slug, live.server.get("version") if live else None,
                                       live.server.get("schedules") if live else record.get("schedules"),
                                       live.server.get("schedules_source") if live else "state")
        inputs = wire_inputs(dict(after.get("inputs") or {}), contract)
        ref = after.get("credentialRef")
        guid = self.credential_guids.get(str(ref), ref) if ref else None
        if change.action is Action.REPLACE and live is not None:
            self.client.delete_app(str(live.server["slug"]))
            self._record(key, None)
            live, record = None, {}
        connection = self._connection(change, live.server.get("connection") if live else None)
        if guid:
            # Reuse the vaulted credential through the connection, the way the UI does; a bare
            # top-level guid can flatten a shared credential's config (ATLAN_API §2.11).
            connection["attributes"]["defaultCredentialGuid"] = guid
        if inputs.get("extraction_method") != "agent":
            inputs["credential_guid"] = ""
        inputs["connection"] = connection
        if key in self.runs_planned:
            # A run is owed once this change is made: remembered until it is submitted, so that a kill
            # in between leaves the next plan a run to submit, not a silently forgotten one.
            base = dict(record) if record or live is not None else {"schedules": []}  # as the write-ahead below
            self._record(key, {**self._with_lifecycle(base, change), "runPending": True})
        if live is not None:
            slug = str(live.server["slug"])
            version = self.client.update_app(slug, inputs, entrypoint=entrypoint).get("version")
            return self._app_schedules(change, slug, version, live.server.get("schedules"),
                                       live.server.get("schedules_source"))
        # Write-ahead: the record exists before the create, so that a kill right after it leaves an
        # app whose schedules are known (none yet) rather than unknown.
        if not self.tenant.get(key):
            self._record(key, self._with_lifecycle({"schedules": []}, change))
        try:
            created = self.client.create_app(str(after["appId"]), key.name, inputs, entrypoint=entrypoint, run=False)
        except ApiError as exc:
            if not record and not exc.outcome_unknown:
                self._record(key, None)  # nothing was created: no record of it either
            raise
        slug, version = created.slug, created.version
        self._amend(key, slug=slug)
        if not created.adopted or created.resends:
            # Ours: created now, or by a create of ours whose answer was lost (sent again, it met
            # its own name). It has no schedules yet.
            return self._app_schedules(change, slug, version, [], "state")
        # The name was taken by a workflow the plan did not see: make it match. Its schedules are
        # known only if an earlier record of it says so.
        version = self.client.update_app(slug, inputs, entrypoint=entrypoint).get("version", version)
        return self._app_schedules(change, slug, version, record.get("schedules"), "state" if "schedules" in record else None)

    def _app_schedules(self, change: Change, slug: str, version: Any, known: Any, source: str | None) -> Outcome | None:
        """Sync the schedules, record the app, and say how it went (None: an unchanged app)."""
        key = change.key
        if self.tenant.get(key).get("slug") != slug:
            self._amend(key, slug=slug)
        schedules, problems = self._sync_schedules(change, slug, version, known, source)
        fresh = self._with_lifecycle({**self.tenant.get(key), "slug": slug, "schedules": schedules}, change)
        if fresh != self.tenant.get(key):
            self._record(key, fresh)
        if problems:
            return Outcome(change, Status.UNVERIFIED, "; ".join(problems))
        return None if change.action is Action.NOOP else Outcome(change, Status.APPLIED)

    def _sync_schedules(self, change: Change, slug: str, version: Any, known: Any,
                        source: str | None) -> tuple[list[dict[str, Any]] | None, list[str]]:
        """Make the attached schedules the declared ones, each bound to the app's latest version.

        ``known``: the triggers seen through the API (``source`` "api") or recorded ("state");
        None when nobody can know them, and then nothing is attached (unless the plan adopts them)
        and the record keeps saying "unknown". A schedule attached to an older version fires that
        version, so it is removed and added again. Returns the triggers now attached (None:
        still unknown) and what could not be verified.

        Every add is write-ahead: an intent is recorded before the POST and replaced by the
        trigger id after it. An intent left by a lost answer (or a kill) stands for its schedule:
        it is never attached again until ``reconciler state resolve`` settles it, unless the API
        shows the triggers, which settles it here.
        """
        key, after = change.key, change.after or {}
        intents = [i for i in self.tenant.get(key).get("intents") or [] if i.get("action") == "schedule"]
        if intents and source == "api":
            others = [i for i in self.tenant.get(key).get("intents") or [] if i.get("action") != "schedule"]
            self._amend(key, intents=others or None)
            intents = []
        if known is None and "schedules" in after and self.plan.adopt_schedules:
            known = []
        if known is None or "schedules" not in after:
            return (None if known is None else [dict(s) for s in known]), []
        wanted = [canonical_json(s) for s in after.get("schedules") or []]
        problems = []
        for intent in intents:
            canon = canonical_json(canonical_schedule(intent))
            if canon in wanted:
                wanted.remove(canon)
            else:
                problems.append(f"schedule {intent.get('cron')!r} ({intent.get('timezone')}) is unverified and no longer "
                                f"declared; settle it with `reconciler state resolve {key}` so it can be removed")
        keep, stale = [], []
        for trigger in known:
            canon = canonical_json(canonical_schedule(trigger))
            current = version is None or trigger.get("version") in (None, version)
            if canon in wanted and current:
                wanted.remove(canon)
                keep.append(dict(trigger))
            else:
                stale.append(dict(trigger))
        # Add first, then remove: a crash in between leaves an extra trigger on record (removed by
        # the next run), never a missing one.
        for schedule in after.get("schedules") or []:
            canon = canonical_json(schedule)
            if canon not in wanted:
                continue
            wanted.remove(canon)
            cron, timezone = schedule["cron"], schedule.get("timezone") or "UTC"
            intent = _intent("schedule", cron=cron, timezone=timezone, version=version)
            self._add_intent(key, intent)
            try:
                answer = self.client.add_schedule(slug, cron, timezone)
            except ApiError as exc:
                if exc.outcome_unknown:
                    problems.append(f"schedule {cron!r} ({timezone}) may or may not be attached ({exc.server_message}); "
                                    "it is recorded as an unverified intent")
                    continue
                self._settle_intent(key, intent["id"])
                raise
            keep.append({"trigger_id": answer["trigger_id"], "cron": cron, "timezone": timezone, "version": version})
            self._settle_intent(key, intent["id"], schedules=keep + stale)
        while stale:
            trigger = stale.pop()
            try:
                self.client.remove_schedule(slug, str(trigger["trigger_id"]))
            except NotFoundError:
                pass  # already gone
            self._amend(key, schedules=keep + stale)
        return keep, problems

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
        # Write-ahead, as for schedules: a submit whose answer is lost is never sent again.
        intent = _intent("run")
        self._add_intent(change.key, intent)
        self._amend(change.key, runPending=None)  # from here on, the intent stands for the run
        try:
            run = self.client.submit_run(str(slug))
        except ServerError as exc:
            if "active run" in exc.server_message or "already" in exc.server_message:
                self._settle_intent(change.key, intent["id"])
                return Outcome(change, Status.APPLIED, f"a run is already in flight: {exc.server_message}")
            if not exc.outcome_unknown:
                self._settle_intent(change.key, intent["id"], runPending=True)
            raise
        except ApiError as exc:
            if not exc.outcome_unknown:
                self._settle_intent(change.key, intent["id"], runPending=True)
            raise
        self._settle_intent(change.key, intent["id"])
        return Outcome(change, Status.APPLIED, "", run_id=run.get("run_id"), run_status=run.get("status"))

    def _delete_one(self, change: Change) -> Outcome:
        if change.needs_prune:
            return Outcome(change, Status.NOT_APPLIED, "needs --prune")
        deleters: dict[str, Callable[[Mapping[str, Any]], Any]] = {
            "App": lambda server: self.client.delete_app(str(server["slug"])),
            "Credential": lambda server: self.client.archive_credential(str(server["guid"])),
        }
        if change.key.kind not in deleters:
            return Outcome(change, Status.FAILED, f"{change.key.kind} objects are never deleted by reconciler")
        live = self.live.state.get(change.key)
        if live is None:
            self._record(change.key, None)
            return Outcome(change, Status.APPLIED, "already gone")
        try:
            deleters[change.key.kind](live.server)
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
