"""Runs the stages of a command in order: validate → (lock) → fetch → online checks → plan → apply.

The only place that knows the order of the stages; each stage stays ignorant of the others.
Touches the network only through the client it is given.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from jsonschema import Draft202012Validator

from reconciler.apply import Applier, ApplyReport, Options
from reconciler.client import ApiClient
from reconciler.errors import Diagnostic, ManifestError
from reconciler.fetch import Live, fetch
from reconciler.lock import state_lock
from reconciler.manifests import resolve_env
from reconciler.model import Resource, ResourceKey
from reconciler.normalize import PLUMBING, canonical_json, wire_inputs
from reconciler.plan import Plan, build_plan, settings_of
from reconciler.files import shown_path
from reconciler.planfile import DEFAULT_MAX_PLAN_AGE, check_saved_plan, fetch_for_plan, read_saved_plan
from reconciler.state import StateFile, fingerprint_key, project_key, records_of, secret_fingerprint
from reconciler.validate import Manifests, Project, validate


@dataclass
class PlanResult:
    plan: Plan
    manifests: Manifests
    live: Live
    state: StateFile


DEFAULT_PARALLELISM = 8
DEFAULT_MAX_DELETES = 10


def load_manifests(paths: Iterable[str], *, var_files: Iterable[str] = (), env: Mapping[str, str] | None = None,
                   allow_missing_secrets: bool = False, api_key_env: str = "ATLAN_API_KEY") -> Manifests:
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
    api_key_env: str = "ATLAN_API_KEY",
) -> PlanResult:
    """``tenant_id``: what the state file and the plan call this tenant (default: its base URL).
    ``manifests``: already validated (apply validates before it takes the state lock)."""
    env = os.environ if env is None else env
    tenant_id = tenant_id or client.base_url
    if manifests is None:
        manifests = load_manifests(paths, var_files=var_files, env=env, allow_missing_secrets=allow_missing_secrets,
                                   api_key_env=api_key_env)
    targets = tuple(targets)
    unknown = [t for t in targets if t not in manifests.resources]
    state = open_state(manifests.project)
    tenant = state.tenant(tenant_id)
    live = fetch(client, manifests.resources, recorded=tenant.resources,
                 parallelism=parallelism or manifests.project.parallelism)
    online = online_checks(manifests.resources, live)
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
        records=records_of(tenant, state.recorded_by_others(tenant_id)),
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
        values, missing = resolve_env(settings_of(resource).get("secret_refs") or {}, env)
        if values and not missing:
            out[k] = secret_fingerprint(key, values)
    return out


def online_checks(desired: Mapping[ResourceKey, Resource], live: Live) -> list[tuple[ResourceKey, Diagnostic]]:
    """What only the tenant can tell: unknown app ids and inputs that its contracts reject."""
    notes: list[tuple[ResourceKey, Diagnostic]] = []
    for key, resource in sorted(desired.items()):
        if key.kind != "App":
            continue
        file, _, line = resource.origin.rpartition(":")
        app_id = str(resource.spec.get("appId"))
        if app_id in live.unknown_apps:
            notes.append((key, Diagnostic(file, int(line or 0), 1, "RC110", f"{key}: the tenant has no app {app_id!r}",
                                    "spec.appId", hint="Check the marketplace id, e.g. snowflake-crawler.")))
            continue
        facts = live.context.contracts.get(app_id)
        entrypoint = resource.spec.get("entrypoint")
        contract = facts.contract(entrypoint) if facts else None
        if facts is not None and entrypoint and contract is None:
            notes.append((key, Diagnostic(file, int(line or 0), 1, "RC112",
                                    f"{key}: app {app_id!r} has no entrypoint {entrypoint!r}", "spec.entrypoint",
                                    hint=f"Omit entrypoint for the default ({facts.default_entrypoint}).")))
            continue
        if not contract:
            continue
        inputs = {k: v for k, v in (resource.spec.get("inputs") or {}).items() if k not in PLUMBING}
        reported: set[str] = set()
        for error in sorted(_inputs_validator(app_id, contract).iter_errors(wire_inputs(inputs, contract)),
                            key=lambda e: list(e.absolute_path)):
            where = ".".join(str(p) for p in error.absolute_path)
            if error.validator == "additionalProperties":
                extra = sorted(set(error.instance) - set(contract.get("properties") or {}))
                message = f"{key}: the input contract of {app_id} has no input {', '.join(map(repr, extra))}"
                where = ".".join(filter(None, [where, extra[0] if extra else ""]))
            else:
                message = f"{key}: input {where or 'inputs'} is rejected by the contract of {app_id}: {error.message}"
            if where in reported:
                continue  # one problem per input is enough (a wrong type also fails its enum)
            reported.add(where)
            notes.append((key, Diagnostic(file, int(line or 0), 1, "RC111", message, f"spec.inputs.{where}".rstrip("."),
                                          hint=f"See `reconciler contract {app_id}` for the inputs and their types.")))
    return notes


_validators: dict[tuple[str, str], Draft202012Validator] = {}


def _inputs_validator(app_id: str, contract: Mapping[str, Any]) -> Draft202012Validator:
    """The contract without its plumbing (connection, credential): those come from the manifest's
    connection and credentialRef, and are checked there."""
    cache_key = (app_id, canonical_json(contract))
    if cache_key not in _validators:
        schema = copy.deepcopy(dict(contract))
        schema.pop("required", None)
        schema.pop("allOf", None)
        schema["properties"] = {k: v for k, v in (schema.get("properties") or {}).items() if k not in PLUMBING}
        _validators[cache_key] = Draft202012Validator(schema)
    return _validators[cache_key]


def apply(
    paths: Iterable[str],
    client: ApiClient,
    *,
    api_key: str,
    api_key_env: str = "ATLAN_API_KEY",
    tenant_id: str | None = None,
    saved_plan: str | None = None,
    env: Mapping[str, str] | None = None,
    var_files: Iterable[str] = (),
    prune: bool = False,
    allow_replace: bool = False,
    adopt_schedules: bool = False,
    max_deletes: int = DEFAULT_MAX_DELETES,
    max_plan_age: float = DEFAULT_MAX_PLAN_AGE,
    parallelism: int | None = None,
    lock_timeout: float = 0.0,
    review: Callable[[Plan], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[Plan, ApplyReport]:
    """The one apply: of manifests (plan, then apply) or of a saved plan (checked, re-read).

    Holds the state file's lock from before the state is read until the last record is
    written, so two applies of one project never interleave. ``review(plan)`` is called once
    the plan is known and before anything is sent (to show it, or to ask; raising stops it).
    """
    env = os.environ if env is None else env
    tenant_id = tenant_id or client.base_url
    if saved_plan:
        plan, manifests = read_saved_plan(saved_plan, api_key=api_key, tenant_id=tenant_id, max_age=max_plan_age)
    else:
        manifests = load_manifests(paths, var_files=var_files, env=env, api_key_env=api_key_env)
    project = manifests.project
    workers = parallelism or project.parallelism or DEFAULT_PARALLELISM
    lock_notes: list[str] = []
    with state_lock(project.state_file, lock_timeout, notes=lock_notes):
        if saved_plan:
            state = open_state(project)
            check_saved_plan(plan, state, tenant_id, project, manifests.resources, max_deletes=max_deletes,
                             api_key_env=api_key_env)
            live = fetch_for_plan(client, plan, state.tenant(tenant_id), parallelism=workers)
        else:
            result = make_plan(paths, client, api_key=api_key, env=env, prune=prune, parallelism=workers,
                               tenant_id=tenant_id, adopt_schedules=adopt_schedules, manifests=manifests)
            plan, live, state = result.plan, result.live, result.state
        if review is not None:
            review(plan)
        report = apply_plan(client, plan, live, state, api_key=api_key, api_key_env=api_key_env, env=env,
                            allow_replace=allow_replace, max_deletes=max_deletes, parallelism=workers,
                            progress=progress)
    report.notes[:0] = lock_notes
    return plan, report


def apply_plan(client: ApiClient, plan: Plan, live: Live, state: StateFile, *, api_key: str,
               api_key_env: str = "ATLAN_API_KEY", env: Mapping[str, str] | None = None, allow_replace: bool = False,
               max_deletes: int = DEFAULT_MAX_DELETES, parallelism: int = DEFAULT_PARALLELISM,
               progress: Callable[[str], None] | None = None) -> ApplyReport:
    """Execute a plan; every call of the run shares one throttle-aware request budget. The
    caller holds the state lock."""
    if client.budget is None:
        client.share_budget(parallelism)
    options = Options(allow_replace=allow_replace, max_deletes=max_deletes, parallelism=parallelism,
                      env=dict(os.environ if env is None else env), fingerprint_key=fingerprint_key(api_key),
                      api_key=api_key, api_key_env=api_key_env)
    return Applier(client, plan, live, state, options, progress=progress or (lambda _message: None)).run()


def apply_paths(paths: Iterable[str], client: ApiClient, *, api_key: str, tenant_id: str | None = None,
                env: Mapping[str, str] | None = None, prune: bool = False, allow_replace: bool = False,
                max_deletes: int = DEFAULT_MAX_DELETES, parallelism: int | None = None, adopt_schedules: bool = False,
                progress: Callable[[str], None] | None = None) -> tuple[Plan, ApplyReport]:
    """Plan the manifests and apply the plan at once (what `apply --auto-approve` does)."""
    return apply(paths, client, api_key=api_key, tenant_id=tenant_id, env=env, prune=prune, allow_replace=allow_replace,
                 max_deletes=max_deletes, parallelism=parallelism, adopt_schedules=adopt_schedules, progress=progress)
