"""Canonical form of both sides, so that the server's reshaping never shows as a change.

Takes a manifest-shaped spec (desired, or live as fetch produced it) and what the tenant told
us (input contracts, role and credential names); returns a plain JSON-like dict in which equal
intent is equal data: contract defaults filled, JSON-string settings parsed, runtime and
plumbing keys dropped, credential guids named, admin roles named and sorted, equivalent cron
expressions and timezone aliases made identical, integral floats made integers. Pure: no I/O,
and never used during apply (apply sends what the manifest says, in the wire form of
``wire_inputs``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from reconciler import cron
from reconciler.model import Resource

# Keys of `inputs` that the manifest expresses elsewhere (connection, credentialRef) or that the
# server owns; never compared as inputs.
PLUMBING = frozenset({"connection", "connection_qualified_name", "credential_guid", "credential"})
RUNTIME = frozenset({"user-id", "user_id", "workflow_id", "correlation_id"})


@dataclass(frozen=True)
class AppContract:
    """What the tenant says about one app: its default entrypoint and contract per entrypoint."""

    default_entrypoint: str | None
    by_entrypoint: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def contract(self, entrypoint: str | None) -> Mapping[str, Any] | None:
        return self.by_entrypoint.get(entrypoint or self.default_entrypoint or "")


@dataclass(frozen=True)
class Context:
    contracts: Mapping[str, AppContract] = field(default_factory=dict)  # appId -> contract facts
    role_names: Mapping[str, str] = field(default_factory=dict)  # role guid -> name
    credential_names: Mapping[str, str] = field(default_factory=dict)  # credential guid -> name


def as_declared(ctx: Context) -> Context:
    """The same context without contract defaults: canonical forms of what a manifest declares
    (a create shows the intent, not every default the server will fill in)."""
    contracts = {app_id: AppContract(c.default_entrypoint, {ep: {**contract, "properties": {
        k: {p: v for p, v in prop.items() if p != "default"} for k, prop in (contract.get("properties") or {}).items()}}
        for ep, contract in c.by_entrypoint.items()}) for app_id, c in ctx.contracts.items()}
    return Context(contracts=contracts, role_names=ctx.role_names, credential_names=ctx.credential_names)


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


def is_json_string_field(prop: Mapping[str, Any] | None) -> bool:
    return bool(prop) and prop.get("type") == "string" and prop.get("contentMediaType") == "application/json"  # type: ignore[union-attr]


def _parse_json_setting(value: Any) -> Any:
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# -- cron and timezones -------------------------------------------------------------------------------


def canonical_schedule(schedule: Mapping[str, Any]) -> dict[str, str]:
    return {"cron": cron.canonical_cron(str(schedule.get("cron", ""))), "timezone": cron.canonical_timezone(schedule.get("timezone"))}


def canonical_schedules(schedules: Any) -> list[dict[str, str]] | None:
    """A sorted list (order of schedules carries no meaning); None when the live side is unknown."""
    if schedules is None:
        return None
    return sorted((canonical_schedule(s) for s in schedules), key=canonical_json)


# -- inputs ----------------------------------------------------------------------------------------------


def canonical_inputs(inputs: Mapping[str, Any], contract: Mapping[str, Any] | None) -> dict[str, Any]:
    properties: Mapping[str, Any] = (contract or {}).get("properties") or {}
    out: dict[str, Any] = {k: p["default"] for k, p in properties.items() if "default" in p and k not in PLUMBING}
    for key, value in inputs.items():
        if key in PLUMBING or key in RUNTIME:
            continue
        out[key] = value
    for key, value in list(out.items()):
        # JSON settings compare as data: a YAML mapping equals the JSON string the server stores,
        # and the object form the server hands back.
        if is_json_string_field(properties.get(key)) or key not in properties:
            out[key] = _parse_json_setting(value)
    return canonical_value(out)


def wire_inputs(inputs: Mapping[str, Any], contract: Mapping[str, Any] | None) -> dict[str, Any]:
    """Inputs as the API wants them: JSON-string settings given as mappings are encoded."""
    properties: Mapping[str, Any] = (contract or {}).get("properties") or {}
    out = {}
    for key, value in inputs.items():
        if is_json_string_field(properties.get(key)) and isinstance(value, (dict, list)):
            value = json.dumps(value)
        out[key] = value
    return out


# -- per kind ---------------------------------------------------------------------------------------------


def _names(values: Any, lookup: Mapping[str, str]) -> list[str]:
    return sorted({lookup.get(str(v), str(v)) for v in values or []})


def _app(spec: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    app_id = spec.get("appId")
    facts = ctx.contracts.get(str(app_id))
    entrypoint = spec.get("entrypoint") or (facts.default_entrypoint if facts else None)
    connection = spec.get("connection") or {}
    out: dict[str, Any] = {
        "appId": app_id,
        "entrypoint": entrypoint,
        "connection": {"name": connection.get("name")},
        "inputs": canonical_inputs(spec.get("inputs") or {}, facts.contract(entrypoint) if facts else None),
    }
    for admins in ("adminRoles", "adminUsers", "adminGroups"):
        if admins in connection:
            out["connection"][admins] = _names(connection[admins], ctx.role_names if admins == "adminRoles" else {})
    ref = spec.get("credentialRef")
    if ref:
        out["credentialRef"] = ctx.credential_names.get(ref, ref)
    if "schedules" in spec:
        out["schedules"] = canonical_schedules(spec["schedules"])
    return out


def _credential(spec: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    connector = spec.get("connector")
    out: dict[str, Any] = {"connector": connector, "authType": spec.get("authType")}
    for key in ("connectorConfigName", "connectorType", "description", "host", "port"):
        if spec.get(key) is not None:
            out[key] = spec[key]
    out["extra"] = canonical_value(dict(spec.get("extra") or {}))
    return out


def _workflow(spec: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "parameters" in spec:
        out["parameters"] = {k: _parameter(v) for k, v in (spec.get("parameters") or {}).items()}
    if "schedule" in spec:
        out["schedule"] = canonical_schedule(spec["schedule"]) if spec["schedule"] else None
    return out


def _parameter(value: Any) -> str:
    # Argo parameter values are strings; `true` in YAML means the string "true".
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(canonical_value(value))


NORMALIZERS: dict[str, Callable[[Mapping[str, Any], Context], dict[str, Any]]] = {
    "App": _app,
    "Credential": _credential,
    "Workflow": _workflow,
}


def canonical(resource: Resource, ctx: Context) -> dict[str, Any]:
    return NORMALIZERS[resource.key.kind](resource.spec, ctx)
