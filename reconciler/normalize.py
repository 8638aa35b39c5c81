"""Canonical form of both sides, so that the server's reshaping never shows as a change.

Takes a manifest-shaped spec (desired, or live as fetch produced it) and what the tenant told
us (input contracts, role and credential names); returns a plain JSON-like dict in which equal
intent is equal data. The shared rules live here (integral floats made integers, equivalent
cron expressions and timezone aliases made identical, canonical JSON); what is particular to a
kind (contract defaults, JSON-string settings, names for guids) is its ``canonical`` step, in
``reconciler/kinds/``. Pure: no I/O, and never used during apply (apply sends what the
manifest says).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler import cron, kinds
from reconciler.model import Resource


@dataclass(frozen=True)
class AppContract:
    """What the tenant says about one app: its default entrypoint and contract per entrypoint."""

    default_entrypoint: str | None
    by_entrypoint: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def contract(self, entrypoint: str | None) -> Mapping[str, Any] | None:
        return self.by_entrypoint.get(entrypoint or self.default_entrypoint or "")


@dataclass(frozen=True)
class Context:
    """What the tenant told the fetch that canonical forms and checks need."""

    contracts: Mapping[str, AppContract] = field(default_factory=dict)  # appId -> contract facts
    unknown_apps: frozenset[str] = frozenset()  # app ids the tenant does not know
    role_names: Mapping[str, str] = field(default_factory=dict)  # role guid -> name
    credential_names: Mapping[str, str] = field(default_factory=dict)  # credential guid -> name


def as_declared(ctx: Context) -> Context:
    """The same context without contract defaults: canonical forms of what a manifest declares
    (a create shows the intent, not every default the server will fill in)."""
    contracts = {app_id: AppContract(c.default_entrypoint, {ep: {**contract, "properties": {
        k: {p: v for p, v in prop.items() if p != "default"} for k, prop in (contract.get("properties") or {}).items()}}
        for ep, contract in c.by_entrypoint.items()}) for app_id, c in ctx.contracts.items()}
    return Context(contracts=contracts, unknown_apps=ctx.unknown_apps, role_names=ctx.role_names,
                   credential_names=ctx.credential_names)


# -- values -----------------------------------------------------------------------------------------


def canonical_value(value: Any) -> Any:
    """Integral floats become integers (0.0 == 0), recursively."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: canonical_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [canonical_value(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def fingerprint(raw: Any) -> str:
    """Of a raw live object: a saved plan applies only while the object is unchanged."""
    return "sha256:" + hashlib.sha256(canonical_json(raw).encode()).hexdigest()


# -- cron and timezones -------------------------------------------------------------------------------


def canonical_schedule(schedule: Mapping[str, Any]) -> dict[str, str]:
    return {"cron": cron.canonical_cron(str(schedule.get("cron", ""))), "timezone": cron.canonical_timezone(schedule.get("timezone"))}


def canonical_schedules(schedules: Any) -> list[dict[str, str]] | None:
    """A sorted list (order of schedules carries no meaning); None when the live side is unknown."""
    if schedules is None:
        return None
    return sorted((canonical_schedule(s) for s in schedules), key=canonical_json)


# -- per kind ---------------------------------------------------------------------------------------------


def canonical(resource: Resource, ctx: Context) -> dict[str, Any]:
    return kinds.get(resource.key.kind).canonical(resource.spec, ctx)
