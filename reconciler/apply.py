"""Plan → tenant: ordered, concurrent, crash-safe execution, and an ApplyReport.

Takes a Plan, the live State it was computed from (fresh), the state file and the options;
performs the changes in dependency order (kinds by rank: credentials → apps and their schedules
→ workflows; then runs; deletes last, in reverse rank), independent changes of one phase
concurrently, and records every change in the state file as it is made (appended to the state
file's journal and synced before the next request; see ``state``), so a crash loses nothing and a
re-run converges; recording a change costs the same whatever the number of records. A failed
change fails only its dependents. Secrets are read from the environment here, when they are sent,
and never kept.

What each kind does is its own module's (``Kind.apply``, ``delete``, ``submit_run``); they call
back into the ``Applier`` for what every kind shares: the state records, write-ahead intents,
secrets, ids of objects made earlier in the run.

No write is repeated blindly. When the answer to a create is lost (the tenant may have acted),
a credential is looked up by name and adopted (or, proven absent, sent again), an app takes the
409 path in the client, and a schedule or a run becomes an **intent**: recorded in the state file
*before* the request and settled after it, so that a lost answer or a kill leaves a visible
intent that the plan reports, never a hidden trigger or a second run.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler import kinds
from reconciler.client import ApiClient
from reconciler.defaults import API_KEY_ENV, MAX_DELETES, PARALLELISM
from reconciler.errors import ApiError, NotFoundError, ReconcilerError
from reconciler.fetch import Live
from reconciler.manifests import protected_references, resolve_env
from reconciler.model import ResourceKey
from reconciler.outcomes import RUN_FINAL, ApplyReport, Outcome, Status, run_failed
from reconciler.plan import Action, Change, Plan, applied_digest
from reconciler.state import StateFile, TenantState, recorded_digest, secret_fingerprint


class ApplyError(ReconcilerError):
    """The apply was refused before anything was sent (too many deletes, stale plan, …)."""


@dataclass(frozen=True)
class Options:
    allow_replace: bool = False
    max_deletes: int = MAX_DELETES
    parallelism: int = PARALLELISM
    env: Mapping[str, str] = field(default_factory=dict)
    fingerprint_key: bytes = b""
    # Never sent as a credential secret, whatever a manifest or a plan file names.
    api_key: str = ""
    api_key_env: str = API_KEY_ENV


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Applier:
    """Runs a plan, and is what a kind's apply handlers work through (``ops``)."""

    def __init__(self, client: ApiClient, plan: Plan, live: Live, state: StateFile, options: Options,
                 progress: Callable[[Outcome], None] = lambda _outcome: None) -> None:
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
        # The tenant's id of each object (guid, slug, uid): live ones, and the ones made in this run.
        self._ids: dict[ResourceKey, str] = {k: str(r.server["id"]) for k, r in live.state.items() if r.server.get("id")}
        self._runs_planned = {c.key for c in plan.changes if c.action is Action.RUN}
        self._applied: dict[ResourceKey, dict[str, Any]] = {}  # digests to record at the end of the phase

    # -- driver -----------------------------------------------------------------------------------

    def run(self) -> ApplyReport:
        started = time.monotonic()
        deletes = [c for c in self.plan.changes if c.action is Action.DELETE and not self.plan.waits_for_prune(c)]
        if len(deletes) > self.options.max_deletes:
            raise ApplyError(f"the plan deletes {len(deletes)} objects, more than --max-deletes {self.options.max_deletes}; "
                             "nothing was applied", hint="Check the plan; raise --max-deletes if these deletes are intended.")
        for kind in kinds.by_rank():
            phase = [c for c in self.plan.changes if c.key.kind == kind.kind and c.action in (
                Action.CREATE, Action.UPDATE, Action.REPLACE, Action.NOOP)]
            self._concurrently(phase, self._apply_one)
            self._record_applied()
        self._concurrently([c for c in self.plan.changes if c.action is Action.RUN], self._run_one)
        for kind in reversed(kinds.by_rank()):
            phase = [c for c in self.plan.changes if c.key.kind == kind.kind and c.action is Action.DELETE]
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
            if not outcome.ok:
                self._not_applied.add(outcome.change.key)
        if outcome.status is not Status.APPLIED or outcome.change.action is not Action.NOOP or outcome.message:
            self.progress(outcome)

    def _blocked_by(self, change: Change) -> str | None:
        """The object this change depends on, when that object's own change did not apply."""
        deps = [change.key] if change.action is Action.RUN else list(kinds.get(change.key.kind).depends_on(change))
        with self._lock:
            return next((str(dep) for dep in deps if dep in self._not_applied), None)

    def _apply_one(self, change: Change) -> Outcome | None:
        if change.action is Action.REPLACE and not self.options.allow_replace:
            return Outcome(change, Status.FAILED, f"refused: {change.reason.replace('; apply needs --allow-replace', '')}; "
                                                  "re-run with --allow-replace to delete and re-create it")
        outcome = kinds.get(change.key.kind).apply(change, self)
        if outcome is None or outcome.status is Status.APPLIED:
            fields = applied_digest(change, self.options.fingerprint_key)
            if recorded_digest(self.record(change.key)) != fields:
                with self._lock:
                    self._applied[change.key] = fields
        return outcome

    def _record_applied(self) -> None:
        """What drift compares later plans with: each object as applied in the phase just done,
        recorded in one write (only where it differs from the record: an apply with no changes
        writes nothing). Only drift's classes depend on it; a kill before this write leaves the
        previous digest, and the next apply records it again."""
        with self._lock:
            done, self._applied = self._applied, {}
        if done:
            at = _now()
            self.state.put_many(self.tenant_id, {str(key): {**self.record(key), "applied": {"fields": fields, "at": at}}
                                                 for key, fields in done.items()})

    def _run_one(self, change: Change) -> Outcome:
        return kinds.get(change.key.kind).submit_run(change, self)

    def _delete_one(self, change: Change) -> Outcome:
        if self.plan.waits_for_prune(change):
            return Outcome(change, Status.NOT_APPLIED, "needs --prune")
        kind = kinds.get(change.key.kind)
        if not kind.deletable:
            return Outcome(change, Status.FAILED, f"{kind.kind} objects are never deleted by reconciler")
        live = self.live.state.get(change.key)
        if live is None:
            self.put(change.key, None)
            return Outcome(change, Status.APPLIED, "already gone")
        with contextlib.suppress(NotFoundError):  # gone already: what a delete wants
            kind.delete(change, live, self)  # a kind without a delete step raises: failed, record kept
        self.put(change.key, None)
        return Outcome(change, Status.APPLIED)

    # -- what the kinds work through ----------------------------------------------------------------

    def record(self, key: ResourceKey) -> dict[str, Any]:
        """A copy of an object's state record ({} when there is none)."""
        return dict(self.tenant.get(key))

    def put(self, key: ResourceKey, record: Mapping[str, Any] | None) -> None:
        """Write an object's record (None: drop it), returning once it is on disk (in the state
        file's journal; changes of several workers share one sync), so a crash loses nothing."""
        self.state.put(self.tenant_id, str(key), dict(record) if record is not None else None)

    def amend(self, key: ResourceKey, **fields: Any) -> dict[str, Any]:
        """Change some fields of an object's record (None removes one) and write it at once.
        Each object is handled by one thread, so read-modify-write of its record is safe."""
        record = self.record(key)
        for name, value in fields.items():
            if value is None:
                record.pop(name, None)
            else:
                record[name] = value
        self.put(key, record)
        return record

    @staticmethod
    def new_intent(action: str, **fields: Any) -> dict[str, Any]:
        return {"id": uuid.uuid4().hex[:12], "action": action, "at": _now(), **fields}

    def add_intent(self, key: ResourceKey, intent: dict[str, Any]) -> None:
        self.amend(key, intents=[*(self.record(key).get("intents") or []), intent])

    def settle_intent(self, key: ResourceKey, intent_id: str, **fields: Any) -> None:
        """Drop an intent and record what it turned into, in one write."""
        left = [i for i in self.record(key).get("intents") or [] if i.get("id") != intent_id]
        self.amend(key, intents=left or None, **fields)

    @contextlib.contextmanager
    def run_intent(self, key: ResourceKey) -> Iterator[Callable[[], None]]:
        """Write-ahead for a run submit: the intent stands for the run from before the request
        (and ``runPending`` goes). The block calls the callable it is given once the answer is
        known; an error proving nothing was submitted puts ``runPending`` back; a lost answer
        leaves the intent, so the run is never submitted twice."""
        intent = self.new_intent("run")
        self.add_intent(key, intent)
        self.amend(key, runPending=None)
        settled = False

        def settle() -> None:
            nonlocal settled
            if not settled:
                self.settle_intent(key, intent["id"])
                settled = True
        try:
            yield settle
        except ApiError as exc:
            if not settled and not exc.outcome_unknown:
                self.settle_intent(key, intent["id"], runPending=True)
            raise

    @contextlib.contextmanager
    def owing_run(self, change: Change, record: Mapping[str, Any]) -> Iterator[None]:
        """Around the request that makes a change whose run the plan submits after it: the run is
        recorded as owed (``runPending``, on ``record``) before the request, so that a kill after the
        change leaves the next plan a run to submit, and taken back when the tenant refused the
        change outright (nothing changed: nothing to run)."""
        if not self.run_planned(change.key):
            yield
            return
        before = self.record(change.key)
        self.put(change.key, {**self.with_lifecycle(dict(record), change), "runPending": True})
        try:
            yield
        except ApiError as exc:
            if not exc.outcome_unknown:
                self.put(change.key, before or None)
            raise

    def with_lifecycle(self, record: dict[str, Any], change: Change) -> dict[str, Any]:
        if change.settings.prevent_destroy:
            record["preventDestroy"] = True
        return {k: v for k, v in record.items() if v is not None}

    def remember(self, key: ResourceKey, record: dict[str, Any], change: Change) -> None:
        """Refresh the state record of an unchanged object (adopted ones get one here)."""
        fresh = self.with_lifecycle(dict(record), change)
        if fresh != self.tenant.get(key):
            self.put(key, fresh)

    def secrets(self, change: Change) -> dict[str, str]:
        """The secret values a change sends, read from the environment now; refused when one is
        missing or names the tenant's API key."""
        refs = change.settings.secret_refs
        values, missing = resolve_env(dict(refs), self.options.env)
        named = sorted({name for ref in refs.values() for name in protected_references(str(ref), self.options.api_key_env)})
        if named or (self.options.api_key and self.options.api_key in values.values()):
            raise ReconcilerError(f"{change.key} would send the tenant's API key (or the fingerprint key) as a credential "
                                  f"secret{': ' + ', '.join(named) if named else ''}; refused",
                                  hint="Give the credential its own secret variables.")
        if missing:
            raise ReconcilerError(f"environment variable {', '.join(missing)} is not set; {change.key} needs it now",
                                  hint=f"Export {', '.join(missing)} in the job that runs apply.")
        return values

    def secret_fingerprint(self, values: dict[str, str]) -> str:
        return secret_fingerprint(self.options.fingerprint_key, values)

    def id_of(self, key: ResourceKey) -> str | None:
        with self._lock:
            return self._ids.get(key)

    def set_id(self, key: ResourceKey, value: str) -> None:
        with self._lock:
            self._ids[key] = value

    def run_planned(self, key: ResourceKey) -> bool:
        return key in self._runs_planned


def wait_for_runs(client: ApiClient, report: ApplyReport, timeout: float, progress: Callable[[Outcome], None],
                  interval: float = 1.0) -> None:
    """Poll the submitted runs until each is final or the timeout passes; record their status, and
    pass each run's outcome to ``progress`` when its status changes."""
    pending = [o for o in report.outcomes if o.run_id and o.run_status not in RUN_FINAL]
    deadline = time.monotonic() + timeout
    last: dict[str, str] = {}
    while pending and time.monotonic() < deadline:
        for outcome in list(pending):
            try:
                state = kinds.get(outcome.change.key.kind).run_status(client, str(outcome.run_id))
            except ReconcilerError as exc:  # one run that cannot be read stops neither the others nor the report
                outcome.message = f"its status could not be read: {exc}"
                pending.remove(outcome)
                continue
            if state is None:
                continue  # not shown yet (the runs index lags behind a submit): ask again
            outcome.run_status = state.status
            if run_failed(state.status) and state.message:
                outcome.message = state.message  # why it failed: the report names it
            if last.get(str(outcome.run_id)) != outcome.run_status:
                last[str(outcome.run_id)] = outcome.run_status
                progress(outcome)
            if outcome.run_status in RUN_FINAL:
                pending.remove(outcome)
        if pending:
            time.sleep(interval)
    for outcome in pending:
        outcome.message = f"still {outcome.run_status} after {timeout:.0f} s (not waited for any longer)"


def cancel_runs(client: ApiClient, report: ApplyReport) -> list[Outcome]:
    """Cancel every run still in flight; the outcomes of the cancelled runs."""
    cancelled = []
    for outcome in report.outcomes:
        if outcome.run_id and outcome.run_status not in RUN_FINAL:
            try:
                outcome.run_status = kinds.get(outcome.change.key.kind).cancel_run(client, str(outcome.run_id)) \
                    or outcome.run_status
            except ReconcilerError as exc:
                outcome.message = f"could not be cancelled: {exc}"
                continue
            outcome.message = "cancelled"
            cancelled.append(outcome)
    return cancelled
