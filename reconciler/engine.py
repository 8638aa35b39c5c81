"""Runs the stages of a command in order: validate → (lock) → fetch → online checks → plan → apply.

The only place that knows the order of the stages; each stage stays ignorant of the others.
Touches the network only through the client it is given. ``make_plan`` is what `plan` runs;
``apply`` is the one apply, of manifests or of a saved plan, that the CLI, the tests and the
benchmarks all use.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.client import ApiClient
from reconciler.defaults import API_KEY_ENV, MAX_DELETES, MAX_PLAN_AGE, PARALLELISM
from reconciler.errors import Diagnostic, ManifestError
from reconciler.fetch import Live, fetch
from reconciler.files import shown_path
from reconciler.kinds import get as kind_of
from reconciler.lock import state_lock
from reconciler.manifests import resolve_env
from reconciler.model import Resource, ResourceKey
from reconciler.outcomes import ApplyReport, Outcome
from reconciler.plan import Plan, build_plan
from reconciler.planfile import check_saved_plan, fetch_for_plan, read_saved_plan
from reconciler.state import StateFile, fingerprint_key, project_key, records_of, secret_fingerprint
from reconciler.validate import Manifests, Project, online_checks, validate


@dataclass
class PlanResult:
    plan: Plan
    manifests: Manifests
    live: Live
    state: StateFile


def load_manifests(paths: Iterable[str], *, var_files: Iterable[str] = (), env: Mapping[str, str] | None = None,
                   allow_missing_secrets: bool = False, api_key_env: str = API_KEY_ENV) -> Manifests:
    """Validate, and refuse (with every diagnostic) when there is any error."""
    manifests = validate(paths, var_files=var_files, env=os.environ if env is None else env,
                         allow_missing_secrets=allow_missing_secrets, api_key_env=api_key_env)
    if manifests.errors:
        raise ManifestError(manifests.diagnostics)
    return manifests


def open_state(project: Project) -> StateFile:
    """This project's view of its state file (other projects' records are kept, never read).
    A state file reached through a link is the link's target: written in place, and locked and
    keyed there, so that the projects sharing it through links share it for real."""
    path = Path(os.path.realpath(project.state_file))
    return StateFile.load(path, project_key(project.root, path), project.name)


def saved_plan_path(paths: Iterable[str]) -> str | None:
    """A single existing ``.json`` file is a saved plan; anything else is manifests."""
    given = list(paths)
    return given[0] if len(given) == 1 and given[0].endswith(".json") and Path(given[0]).is_file() else None


def make_plan(
    paths: Iterable[str],
    client: ApiClient,
    *,
    api_key: str,
    var_files: Iterable[str] = (),
    allow_missing_secrets: bool = False,
    prune: bool = False,
    targets: Iterable[ResourceKey] = (),
    parallelism: int | None = None,
    env: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
    tenant_id: str | None = None,
    adopt_schedules: bool = False,
    manifests: Manifests | None = None,
    api_key_env: str = API_KEY_ENV,
) -> PlanResult:
    """``tenant_id``: what the state file and the plan call this tenant (default: its base URL).
    ``manifests``: already validated (apply validates before it takes the state lock)."""
    env = os.environ if env is None else env
    tenant_id = tenant_id or client.base_url
    if manifests is None:
        # Nothing reaches the tenant until the manifests pass validation (DESIGN §1).
        manifests = load_manifests(paths, var_files=var_files, env=env, allow_missing_secrets=allow_missing_secrets,
                                   api_key_env=api_key_env)
    state = open_state(manifests.project)
    targets = tuple(targets)
    unknown = [t for t in targets if t not in manifests.resources]
    tenant = state.tenant(tenant_id)
    live = fetch(client, manifests.resources, recorded=tenant.resources,
                 parallelism=parallelism or manifests.project.parallelism)
    online = online_checks(manifests.resources, live.context)
    notes = [*manifests.warnings, *(d for _, d in online)]
    if state.migrated:
        notes.append(Diagnostic(shown_path(state.path), 0, 0, "RC109", "the state file is in the old format, whose records "
                                "have no project; they are read as this project's, and the next apply rewrites the file",
                                severity="warning", hint="If several projects share this file, move it aside instead "
                                "(objects are found again by name): the first project to apply would take all its records."))
    # An object the tenant would reject is left out of the plan (its errors say why).
    rejected = {key for key, d in online if d.is_error}
    for target in unknown:
        if target not in live.state:
            notes.append(Diagnostic("", 0, 0, "RC104", f"--target {target} names nothing declared or live", severity="warning"))
    plan = build_plan(
        manifests.resources,
        live.state,
        live.context,
        records=records_of(tenant, state.recorded_by_others(tenant_id), fingerprint_key(api_key)),
        desired_fingerprints=desired_secret_fingerprints(manifests.resources, env, fingerprint_key(api_key)),
        ambiguous=live.ambiguous,
        excluded=rejected,
        owned_prefixes=manifests.project.owned_prefixes,
        prune=prune,
        targets=targets,
        tenant=tenant_id,
        now=now,
        diagnostics=notes,
        state_file=shown_path(manifests.project.state_file),
        project=shown_path(manifests.project.root),
        project_file=manifests.project.file or "",
        project_name=manifests.project.name,
        adopt_schedules=adopt_schedules,
    )
    return PlanResult(plan=plan, manifests=manifests, live=live, state=state)


def desired_secret_fingerprints(desired: Mapping[ResourceKey, Resource], env: Mapping[str, str], key: bytes) -> dict[ResourceKey, str]:
    """Keyed fingerprints of the declared secrets, where every one of them is set in ``env``."""
    out = {}
    for k, resource in desired.items():
        values, missing = resolve_env(kind_of(k.kind).secret_refs(resource.spec), env)
        if values and not missing:
            out[k] = secret_fingerprint(key, values)
    return out


def apply(
    paths: Iterable[str],
    client: ApiClient,
    *,
    api_key: str,
    api_key_env: str = API_KEY_ENV,
    tenant_id: str | None = None,
    env: Mapping[str, str] | None = None,
    var_files: Iterable[str] = (),
    prune: bool = False,
    allow_replace: bool = False,
    adopt_schedules: bool = False,
    max_deletes: int = MAX_DELETES,
    max_plan_age: float = MAX_PLAN_AGE,
    parallelism: int | None = None,
    lock_timeout: float = 0.0,
    review: Callable[[Plan, bool], None] | None = None,
    progress: Callable[[Outcome], None] | None = None,
    on_run: Callable[[Outcome], None] | None = None,
    wait_timeout: float | None = None,
    cancel_on_interrupt: Callable[[], bool] | None = None,
) -> tuple[Plan, ApplyReport]:
    """The one apply: of manifests (plan, then apply) or of a saved plan (``paths`` is one
    ``.json`` file: checked, and the objects it touches read again).

    Holds the state file's lock from before the state is read until the last record is
    written, so two applies of one project never interleave. ``review(plan, saved)`` is called
    once the plan is known and before anything is sent (to show it, or to ask; raising stops
    it); ``saved``: the plan came from a plan file, reviewed when it was made.
    ``progress(outcome)``: each change as it is done. ``wait_timeout``: follow the submitted runs
    to their end (or that many seconds), calling ``on_run(outcome)`` whenever a run's status
    changes; on Ctrl-C, ``cancel_on_interrupt()`` says whether to cancel the runs still in flight.
    """
    from reconciler.apply import Applier, Options, cancel_runs, wait_for_runs  # only apply needs it

    paths = list(paths)
    env = os.environ if env is None else env
    tenant_id = tenant_id or client.base_url
    saved = saved_plan_path(paths)
    if saved:
        plan, manifests = read_saved_plan(saved, api_key=api_key, tenant_id=tenant_id, max_age=max_plan_age)
    else:
        manifests = load_manifests(paths, var_files=var_files, env=env, api_key_env=api_key_env)
    project = manifests.project
    workers = parallelism or project.parallelism or PARALLELISM
    lock_notes: list[str] = []
    with state_lock(project.state_file, lock_timeout, notes=lock_notes):
        if saved:
            state = open_state(project)
            check_saved_plan(plan, state, tenant_id, project, manifests.resources, max_deletes=max_deletes,
                             api_key_env=api_key_env)
            live = fetch_for_plan(client, plan, state.tenant(tenant_id), parallelism=workers)
        else:
            result = make_plan(paths, client, api_key=api_key, env=env, prune=prune, parallelism=workers,
                               tenant_id=tenant_id, adopt_schedules=adopt_schedules, manifests=manifests)
            plan, live, state = result.plan, result.live, result.state
        if review is not None:
            review(plan, saved is not None)
        if client.budget is None:
            client.share_budget(workers)  # every call of the run shares one throttle-aware budget
        options = Options(allow_replace=allow_replace, max_deletes=max_deletes, parallelism=workers, env=dict(env),
                          fingerprint_key=fingerprint_key(api_key), api_key=api_key, api_key_env=api_key_env)
        try:
            report = Applier(client, plan, live, state, options, progress=progress or (lambda _outcome: None)).run()
        finally:
            state.compact()  # the journal of this apply, folded into the file (still under the lock)
    report.notes[:0] = lock_notes
    if wait_timeout is not None:
        on_run = on_run or (lambda _outcome: None)
        try:
            wait_for_runs(client, report, wait_timeout, on_run)
        except KeyboardInterrupt:
            if cancel_on_interrupt is not None and cancel_on_interrupt():
                for outcome in cancel_runs(client, report):
                    on_run(outcome)
            else:
                report.notes.append("Stopped waiting; the runs go on.")
    return plan, report
