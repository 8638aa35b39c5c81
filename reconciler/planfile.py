"""Saved plans: the signed plan file, and the checks a plan file passes before apply takes it.

``plan --out`` writes the plan's JSON with a MAC (HMAC-SHA256, keyed like the secret
fingerprints). ``apply plan.json`` takes it only if the MAC holds, it is recent, it was made for
this tenant and this project's state file, every change passes today's rules whatever the file
says, and nothing it touches has moved on the tenant since (the live objects are read again).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from pathlib import Path

from reconciler import kinds
from reconciler.client import ApiClient
from reconciler.defaults import API_KEY_ENV, MAX_PLAN_AGE
from reconciler.errors import PlanStaleError
from reconciler.fetch import Live, fetch
from reconciler.files import shown_path
from reconciler.manifests import protected_references
from reconciler.mask import mask_data
from reconciler.model import Resource, ResourceKey
from reconciler.plan import MAC_FIELD, Action, Plan, Records, mac_matches, plan_mac, runs_after
from reconciler.state import StateFile, TenantState, fingerprint_key, records_of
from reconciler.validate import Manifests, Project, validate

PLAN_CLOCK_SKEW = 300.0  # a plan "from the future" by more than this was not made by this clock


def signed_plan_json(plan: Plan, api_key: str) -> str:
    """The plan file: the plan's JSON with a MAC over it, so that apply takes it only as reviewed."""
    data = mask_data(plan.to_dict())  # masked before it is signed: the MAC covers what is written
    data[MAC_FIELD] = plan_mac(data, fingerprint_key(api_key))
    return json.dumps(data, indent=2) + "\n"


def read_saved_plan(path: str, *, api_key: str, tenant_id: str, max_age: float = MAX_PLAN_AGE,
                    now: dt.datetime | None = None) -> tuple[Plan, Manifests]:
    """A plan file, refused unless its MAC holds, it is recent, it was made for this tenant and
    its project (whose reconciler.yaml names the state file) is here."""
    from reconciler.apply import ApplyError  # only apply reads a saved plan: plan does not import apply

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, RecursionError) as exc:
        raise ApplyError(f"{path} is not a reconciler plan: {exc}",
                         hint="Make one with `reconciler plan PATH --out plan.json`.") from None
    if not mac_matches(data, fingerprint_key(api_key)):
        raise ApplyError(f"{path} does not carry a valid MAC: it was edited after `plan --out` wrote it, or made with "
                         "another key; nothing was applied",
                         hint="Plan again with `reconciler plan PATH --out plan.json` (same API key or "
                              "RECONCILER_FINGERPRINT_KEY as apply), review it, and apply that file.")
    try:
        plan = Plan.from_dict(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ApplyError(f"{path} is not a reconciler plan: {exc}", hint="Make it again with `reconciler plan --out`.") from None
    if not plan.tenant.strip():
        raise ApplyError(f"{path} names no tenant; nothing was applied", hint="Make it again with `reconciler plan --out`.")
    if plan.tenant.rstrip("/") != tenant_id.rstrip("/"):
        raise ApplyError(f"the plan was made for {plan.tenant}, not {tenant_id}",
                         hint="Apply it against the tenant it was made for, or plan again for this one.")
    try:
        created = dt.datetime.strptime(plan.created_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise ApplyError(f"{path} has no valid creation time ({plan.created_at!r})",
                         hint="Make it again with `reconciler plan --out`.") from None
    age = ((now or dt.datetime.now(dt.timezone.utc)) - created).total_seconds()
    if age > max_age:
        raise ApplyError(f"the plan was made at {plan.created_at}, {_duration(age)} ago: older than --max-plan-age "
                         f"({_duration(max_age)}); nothing was applied", hint="Plan again, review it, and apply the new plan.")
    if age < -PLAN_CLOCK_SKEW:
        raise ApplyError(f"the plan claims to be made at {plan.created_at}, in the future; nothing was applied",
                         hint="Plan again, review it, and apply the new plan.")
    manifests = validate([plan.project or "."], allow_missing_secrets=True)
    if not plan.project or manifests.errors:
        first = manifests.errors[0] if manifests.errors else None
        raise ApplyError(f"the plan's project {plan.project!r} cannot be read here"
                         + (f": {len(manifests.errors)} error(s), the first {first.file}:{first.line}: {first.message}"
                            if first else ""),
                         hint="Apply from the folder the plan was made in, with manifests that validate: every "
                              "declared object must be seen before anything is deleted.")
    if plan.project_name != manifests.project.name:
        raise ApplyError(f"the plan was made for project {plan.project_name!r}, not {manifests.project.name!r} "
                         f"({manifests.project.file or plan.project}); nothing was applied",
                         hint="Apply each project's plan from the folder it was made in.")
    if not plan.state_file or os.path.abspath(plan.state_file) != os.path.abspath(manifests.project.state_file):
        raise ApplyError(f"the plan records to {plan.state_file!r}, which is not this project's state file "
                         f"({shown_path(manifests.project.state_file)}); nothing was applied",
                         hint="Plan again from this project.")
    return plan, manifests


def check_saved_plan(plan: Plan, state: StateFile, tenant_id: str, project: Project, declared: Mapping[ResourceKey, Resource],
                     *, max_deletes: int, api_key_env: str = API_KEY_ENV) -> None:
    """Today's rules, whatever the file says: the records are the ones the plan was made from
    (else it is stale); every object it creates or changes is declared by this project; deletes
    only of this project's managed objects that its manifests no longer declare and no other
    project records, never of a recorded preventDestroy, only from a plan made with --prune and
    within --max-deletes; every update and delete names the live object it was computed from;
    a run only where the manifest asks for one after the change planned with it, or the state
    file records one owed; one change per object and action; no secret reference names the API
    key."""
    from reconciler.apply import ApplyError

    records = records_of(state.tenant(tenant_id), state.recorded_by_others(tenant_id))
    if plan.state_serial != records.serial:
        raise PlanStaleError(["the state file's records changed since the plan (another apply or `reconciler state` "
                              "ran), so what the plan says about schedules no longer holds"])
    problems = []
    deletes = 0
    seen: set[tuple[Action, ResourceKey]] = set()
    for change in plan.changes:
        if (change.action, change.key) in seen:
            problems.append(f"{change.key}: a second {change.action.value}")
        seen.add((change.action, change.key))
        if not kinds.known(change.key.kind):
            problems.append(f"{change.key}: no such kind")
            continue
        if change.action is not Action.DELETE and change.key not in declared:
            problems.append(f"{change.key}: this project does not declare it")
        if any(protected_references(ref, api_key_env) for ref in change.settings.secret_refs.values()):
            problems.append(f"{change.key}: a secret reference names the API key or the fingerprint key")
        if change.action in (Action.UPDATE, Action.REPLACE, Action.DELETE) and not change.fingerprint:
            problems.append(f"{change.key}: {change.action.value} without the fingerprint of the live object")
        if change.action is Action.RUN and not _run_asked_for(plan, change.key, declared.get(change.key), records):
            problems.append(f"{change.key}: a run that neither its manifest nor the state file asks for")
        if change.action is not Action.DELETE:
            continue
        if not kinds.get(change.key.kind).deletable:
            problems.append(f"{change.key}: reconciler never deletes {change.key.kind} objects")
        if change.key in records.prevent_destroy:
            problems.append(f"{change.key}: preventDestroy is recorded for it")
        by_prefix = change.key not in records.others and any(change.key.name.startswith(p) for p in project.owned_prefixes)
        if change.key not in records.managed and not by_prefix:
            problems.append(f"{change.key}: not managed by this project")
        if change.key in declared:
            problems.append(f"{change.key}: the manifests still declare it")
        deletes += not plan.waits_for_prune(change)
    if deletes > max_deletes:
        problems.append(f"{deletes} deletes, more than --max-deletes {max_deletes}")
    if problems:
        listed = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise ApplyError(f"the saved plan breaks the rules of apply, nothing was applied: {listed}",
                         hint="Plan again with `reconciler plan PATH --out plan.json`, review it, and apply that file.")


def _run_asked_for(plan: Plan, key: ResourceKey, want: Resource | None, records: Records) -> bool:
    if key in records.pending_runs:
        return True
    if want is None:
        return False
    planned = {c.action for c in plan.changes if c.key == key}
    return (Action.CREATE in planned and runs_after(want, "onCreate")) or (
        bool(planned & {Action.UPDATE, Action.REPLACE}) and runs_after(want, "onUpdate"))


def _duration(seconds: float) -> str:
    seconds = abs(seconds)
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def fetch_for_plan(client: ApiClient, plan: Plan, tenant: TenantState, *, parallelism: int) -> Live:
    """Read again every object a saved plan touches, and refuse it when any has moved since."""
    stubs: dict[ResourceKey, Resource] = {}
    for change in plan.changes:
        if change.key not in stubs:
            stubs[change.key] = kinds.get(change.key.kind).stub(change.key, change)
    live = fetch(client, stubs, recorded=tenant.resources, parallelism=parallelism)
    moved = stale_reasons(plan, live)
    if moved:
        raise PlanStaleError(moved)
    return live


def stale_reasons(plan: Plan, live: Live) -> list[str]:
    moved = []
    for change in plan.changes:
        have = live.state.get(change.key)
        if change.key in live.ambiguous:
            moved.append(f"{change.key} is now carried by {len(live.ambiguous[change.key])} live objects")
        elif change.action is Action.CREATE and have is not None:
            moved.append(f"{change.key} was created on the tenant since the plan")
        elif change.action in (Action.UPDATE, Action.REPLACE, Action.DELETE):
            if have is None:
                moved.append(f"{change.key} was deleted from the tenant since the plan")
            elif change.fingerprint and have.server.get("fingerprint") != change.fingerprint:
                moved.append(f"{change.key} was changed on the tenant since the plan")
    return moved
