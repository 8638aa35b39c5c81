"""Runs the stages of a command in order: validate → fetch → online checks → plan.

The only place that knows the order of the stages; each stage stays ignorant of the others.
Touches the network only through the client it is given.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from jsonschema import Draft202012Validator

from reconciler.apply import Applier, ApplyReport, Options
from reconciler.client import ApiClient
from reconciler.errors import Diagnostic, ManifestError, PlanStaleError, ReconcilerError
from reconciler.fetch import Live, fetch
from reconciler.manifests import resolve_env
from reconciler.model import Resource, ResourceKey
from reconciler.normalize import PLUMBING, canonical_json, wire_inputs
from reconciler.plan import Action, Plan, Records, build_plan, settings_of
from reconciler.state import StateFile, TenantState, fingerprint_key, secret_fingerprint
from reconciler.validate import Manifests, validate


@dataclass
class PlanResult:
    plan: Plan
    manifests: Manifests
    live: Live
    state: StateFile


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
) -> PlanResult:
    """``tenant_id``: what the state file and the plan call this tenant (default: its base URL)."""
    env = os.environ if env is None else env
    tenant_id = tenant_id or client.base_url
    manifests = validate(paths, var_files=var_files, env=env, allow_missing_secrets=allow_missing_secrets)
    if manifests.errors:
        raise ManifestError(manifests.diagnostics)
    targets = tuple(targets)
    unknown = [t for t in targets if t not in manifests.resources]
    state = StateFile.load(manifests.project.state_file)
    tenant = state.tenant(tenant_id)
    live = fetch(client, manifests.resources, recorded=tenant.resources,
                 parallelism=parallelism or manifests.project.parallelism)
    online = online_checks(manifests.resources, live)
    notes = [*manifests.warnings, *(d for _, d in online)]
    # An object the tenant would reject is left out of the plan (its errors say why).
    rejected = {key for key, d in online if d.is_error}
    for target in unknown:
        if target not in live.state:
            notes.append(Diagnostic("", 0, 0, "RC104", f"--target {target} names nothing declared or live", severity="warning"))
    plan = build_plan(
        manifests.resources,
        live.state,
        live.context,
        records=records_of(tenant),
        desired_fingerprints=desired_secret_fingerprints(manifests.resources, env, fingerprint_key(api_key)),
        ambiguous=live.ambiguous,
        excluded=rejected,
        owned_prefixes=manifests.project.owned_prefixes,
        prune=prune,
        targets=targets,
        tenant=tenant_id,
        now=now,
        diagnostics=notes,
        state_file=str(manifests.project.state_file),
    )
    return PlanResult(plan=plan, manifests=manifests, live=live, state=state)


def records_of(tenant: TenantState) -> Records:
    keys = {k: ResourceKey(*k.split("/", 1)) for k in tenant.resources}
    return Records(
        managed=frozenset(keys.values()),
        prevent_destroy=frozenset(keys[k] for k, r in tenant.resources.items() if r.get("preventDestroy")),
        secret_fingerprints={keys[k]: r["secretFingerprint"] for k, r in tenant.resources.items() if r.get("secretFingerprint")},
    )


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


def load_saved_plan(client: ApiClient, path: str, *, parallelism: int = 8,
                    tenant_id: str | None = None) -> tuple[Plan, Live, StateFile]:
    """Read a plan file, re-read every object it touches, and refuse it when any has moved since."""
    try:
        plan = Plan.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError) as exc:
        raise ReconcilerError(f"{path} is not a reconciler plan: {exc}",
                              hint="Make one with `reconciler plan PATH --out plan.json`.") from None
    tenant_id = tenant_id or client.base_url
    if plan.tenant and plan.tenant.rstrip("/") != tenant_id.rstrip("/"):
        raise ReconcilerError(f"the plan was made for {plan.tenant}, not {tenant_id}",
                              hint="Apply it against the tenant it was made for, or plan again for this one.")
    state = StateFile.load(Path(plan.state_file or ".reconciler/state.json"))
    stubs: dict[ResourceKey, Resource] = {}
    for change in plan.changes:
        spec: dict[str, Any] = {}
        if change.key.kind == "App":
            source = change.after or change.before or {}
            spec = {"appId": source.get("appId"), "entrypoint": change.settings.get("entrypoint")}
        stubs.setdefault(change.key, Resource(key=change.key, spec=spec))
    live = fetch(client, stubs, recorded=state.tenant(tenant_id).resources, parallelism=parallelism)
    moved = stale_reasons(plan, live)
    if moved:
        raise PlanStaleError(moved)
    return plan, live, state


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


def apply_plan(client: ApiClient, plan: Plan, live: Live, state: StateFile, *, api_key: str,
               env: Mapping[str, str] | None = None, prune: bool = False, allow_replace: bool = False,
               max_deletes: int = 10, parallelism: int = 8, progress: Callable[[str], None] | None = None) -> ApplyReport:
    """Execute a plan; every call of the run shares one throttle-aware request budget."""
    if client.budget is None:
        client.share_budget(parallelism)
    options = Options(prune=prune, allow_replace=allow_replace, max_deletes=max_deletes, parallelism=parallelism,
                      env=dict(os.environ if env is None else env), fingerprint_key=fingerprint_key(api_key))
    return Applier(client, plan, live, state, options, progress=progress or (lambda _message: None)).run()


def apply_paths(paths: Iterable[str], client: ApiClient, *, api_key: str, tenant_id: str | None = None,
                env: Mapping[str, str] | None = None, prune: bool = False, allow_replace: bool = False,
                max_deletes: int = 10, parallelism: int | None = None,
                progress: Callable[[str], None] | None = None) -> tuple[Plan, ApplyReport]:
    """Plan the manifests and apply the plan at once (what `apply --auto-approve` does)."""
    env = os.environ if env is None else env
    result = make_plan(paths, client, api_key=api_key, env=env, prune=prune, parallelism=parallelism, tenant_id=tenant_id)
    report = apply_plan(client, result.plan, result.live, result.state, api_key=api_key, env=env, prune=prune,
                        allow_replace=allow_replace, max_deletes=max_deletes,
                        parallelism=parallelism or result.manifests.project.parallelism, progress=progress)
    return result.plan, report
