"""Every human- and machine-readable output of the tool, and its wording, in one module.

Pure functions: data in, text out. No network, no CLI, no printing.
"""

from __future__ import annotations

import collections
import json
from typing import Any, Iterable, Mapping

from reconciler.errors import Diagnostic

DIAGNOSTICS_FORMAT_VERSION = 1
# Inputs that the App manifest sets through credentialRef and connection, not through inputs.
PLUMBING_INPUTS = frozenset({"connection", "connection_qualified_name", "credential_guid", "credential", "agent_json"})


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# -- diagnostics ----------------------------------------------------------------------------------


def diagnostic_line(d: Diagnostic) -> str:
    """``file:line:column: CODE message (at json.path)``; warnings say so before the message."""
    where = f"{d.file}:{d.line}:{d.column}"
    severity = "" if d.is_error else "warning: "
    at = f" (at {d.path})" if d.path else ""
    return f"{where}: {d.code} {severity}{d.message}{at}"


def diagnostics_text(diagnostics: Iterable[Diagnostic], *, files: int, documents: int,
                     kinds: Mapping[str, int] | None = None) -> str:
    items = sorted(diagnostics)
    lines = []
    for d in items:
        lines.append(diagnostic_line(d))
        if d.hint:
            lines.append(f"    hint: {d.hint}")
    errors = sum(d.is_error for d in items)
    warnings = len(items) - errors
    scope = f"{_plural(documents, 'document')} in {_plural(files, 'file')}"
    if errors:
        lines.append(f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')} in {scope}.")
    else:
        counted = ", ".join(f"{_plural(n, k)}" for k, n in sorted((kinds or {}).items()))
        suffix = f" ({counted})" if counted else ""
        lines.append(f"Valid: {scope}{suffix}{', ' + _plural(warnings, 'warning') if warnings else ''}.")
    return "\n".join(lines) + "\n"


def diagnostics_json(diagnostics: Iterable[Diagnostic], *, files: int, documents: int) -> str:
    """Stable keys: format_version, valid, errors, warnings, files, documents, diagnostics[]."""
    items = sorted(diagnostics)
    errors = sum(d.is_error for d in items)
    payload = {
        "format_version": DIAGNOSTICS_FORMAT_VERSION,
        "valid": errors == 0,
        "errors": errors,
        "warnings": len(items) - errors,
        "files": files,
        "documents": documents,
        "diagnostics": [
            {"file": d.file, "line": d.line, "column": d.column, "code": d.code, "severity": d.severity,
             "message": d.message, "path": d.path, "hint": d.hint}
            for d in items
        ],
    }
    return json.dumps(payload, indent=2) + "\n"


def count_kinds(keys: Iterable[Any]) -> dict[str, int]:
    return dict(collections.Counter(k.kind for k in keys))


# -- contract skeleton -------------------------------------------------------------------------------


def _yaml_value(value: Any) -> str:
    return json.dumps(value)  # JSON scalars and flow collections are valid YAML


def _describe(prop: Mapping[str, Any]) -> str:
    parts = [str(prop.get("title") or "")]
    if prop.get("enum"):
        parts.append("one of " + ", ".join(str(v) for v in prop["enum"]))
    if prop.get("contentMediaType") == "application/json":
        parts.append("JSON: write a YAML mapping or a JSON string")
    kind = prop.get("type")
    if kind and not prop.get("enum") and prop.get("contentMediaType") != "application/json":
        parts.append(str(kind))
    return "; ".join(p for p in parts if p)


def contract_skeleton(app: Mapping[str, Any], contract: Mapping[str, Any], entrypoint: str | None) -> str:
    """A commented App manifest for an app, from its live input contract: required inputs first
    (to fill in), then every optional one commented out with its default."""
    app_id = str(app.get("app_id"))
    connector = app_id.split("-")[0]
    properties: Mapping[str, Any] = contract.get("properties") or {}
    required = [k for k in contract.get("required") or [] if k not in PLUMBING_INPUTS]
    optional = [k for k in properties if k not in PLUMBING_INPUTS and k not in required]
    lines = [
        f"# App manifest skeleton for {app_id} ({app.get('name', app_id)}), entrypoint {entrypoint or 'default'},",
        "# generated from the tenant's live input contract. Fill in the names, then uncomment what you change.",
        "apiVersion: reconciler/v1",
        "kind: App",
        "metadata:",
        f"  name: my-{app_id}  # the workflow's display name on the tenant (its identity)",
        "spec:",
        f"  appId: {app_id}",
    ]
    if entrypoint:
        lines.append(f"  entrypoint: {entrypoint}")
    lines += [
        f"  credentialRef: my-{connector}-credential  # a Credential manifest's name, or an existing credential's guid",
        "  connection:",
        f"    name: my-{connector}-connection",
        '    adminRoles: ["$admin"]',
        "  inputs:",
    ]
    if required:
        lines.append("    # Required")
        for key in required:
            prop = properties.get(key) or {}
            value = prop.get("default", "" if prop.get("type") == "string" else None)
            lines.append(f"    {key}: {_yaml_value(value)}  # {_describe(prop)}")
    lines.append("    # Optional (defaults shown)")
    for key in optional:
        prop = properties.get(key) or {}
        default = _yaml_value(prop.get("default")) if "default" in prop else "null"
        lines.append(f"    # {key}: {default}  # {_describe(prop)}")
    lines += [
        "  # schedules: [{cron: \"0 2 * * *\", timezone: UTC}]",
        "  # run: {onCreate: true, onUpdate: false}",
    ]
    return "\n".join(lines) + "\n"
