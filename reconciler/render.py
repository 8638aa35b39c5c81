"""Every human- and machine-readable output of the tool, and its wording, in one module.

Pure functions: data in, text out. No network, no CLI, no printing.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from reconciler import cron
from reconciler.errors import Diagnostic
from reconciler.outcomes import run_failed

if TYPE_CHECKING:
    from reconciler.export import ExportReport
    from reconciler.model import ResourceKey
    from reconciler.outcomes import ApplyReport, Outcome
    from reconciler.plan import Change, Plan

DIAGNOSTICS_FORMAT_VERSION = 1


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# -- diagnostics ----------------------------------------------------------------------------------


def diagnostic_line(d: Diagnostic) -> str:
    """``file:line:column: CODE message (at json.path)``; warnings say so before the message."""
    where = f"{d.file}:{d.line}:{d.column}"
    severity = "" if d.is_error else "warning: "
    at = f" (at {d.path})" if d.path else ""
    return f"{where}: {d.code} {severity}{d.message}{at}"


def diagnostic_block(d: Diagnostic) -> str:
    """One diagnostic and its hint, as ``validate`` prints it."""
    return diagnostic_line(d) + "\n" + (f"    hint: {d.hint}\n" if d.hint else "")


def _cell(text: str) -> str:
    """Text inside a markdown table cell: its pipes escaped (the masking step knows this form of
    every secret), on one line."""
    return text.replace("|", "\\|").replace("\n", " ")


def diagnostics_markdown(diagnostics: Iterable[Diagnostic]) -> str:
    """The problems that stopped a command, as a pull-request comment shows them."""
    items = sorted(diagnostics)
    errors = sum(d.is_error for d in items)
    lines = [f"### reconciler: the manifests have {plural(errors, 'error')}; nothing was sent to the tenant", "",
             "| | Where | Code | Problem |", "|---|---|---|---|"]
    for d in items:
        where = f"{d.file}:{d.line}:{d.column}" if d.file else ""
        problem = (d.message + (f" (at `{d.path}`)" if d.path else "") + (f"<br>hint: {d.hint}" if d.hint else ""))
        lines.append(f"| {'❌' if d.is_error else '⚠️'} | `{where}` | `{d.code}` | {_cell(problem)} |")
    return "\n".join(lines) + "\n"


def error_markdown(command: str, error: Any) -> str:
    """A command that stopped on an error, as a pull-request comment shows it."""
    hint = getattr(error, "hint", None)
    return (f"### reconciler {command} failed\n\n**Error:** {str(error).replace(chr(10), ' ')}\n"
            + (f"\n**Hint:** {hint}\n" if hint else ""))


def diagnostics_text(diagnostics: Iterable[Diagnostic], *, files: int, documents: int,
                     kinds: Mapping[str, int] | None = None) -> str:
    items = sorted(diagnostics)
    lines = [diagnostic_block(d).rstrip("\n") for d in items]
    errors = sum(d.is_error for d in items)
    warnings = len(items) - errors
    scope = f"{plural(documents, 'document')} in {plural(files, 'file')}"
    if errors:
        lines.append(f"{plural(errors, 'error')}, {plural(warnings, 'warning')} in {scope}.")
    else:
        counted = ", ".join(f"{plural(n, k)}" for k, n in sorted((kinds or {}).items()))
        suffix = f" ({counted})" if counted else ""
        lines.append(f"Valid: {scope}{suffix}{', ' + plural(warnings, 'warning') if warnings else ''}.")
    return "\n".join(lines) + "\n"


def diagnostics_json(diagnostics: Iterable[Diagnostic], *, files: int, documents: int, status: str | None = None) -> str:
    """Stable keys: format_version, valid, errors, warnings, files, documents, diagnostics[]; and
    ``status: "error"`` when a command (plan, apply) refused the manifests."""
    items = sorted(diagnostics)
    errors = sum(d.is_error for d in items)
    payload: dict[str, Any] = {"status": status} if status else {}
    payload |= {
        "format_version": DIAGNOSTICS_FORMAT_VERSION,
        "valid": errors == 0,
        "errors": errors,
        "warnings": len(items) - errors,
        "files": files,
        "documents": documents,
        "diagnostics": [d.to_dict() for d in items],
    }
    return json.dumps(payload, indent=2) + "\n"


def count_kinds(keys: Iterable[ResourceKey]) -> dict[str, int]:
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


def name_stem(app_id: str) -> str:
    """What a skeleton names an app's credential and connection after: its app id without the
    vendor prefix and the crawler/miner suffix, in lower case (atlan-mysql: mysql)."""
    return re.sub(r"^atlan-|-(crawler|miner)$", "", app_id.lower())


def contract_skeleton(app: Mapping[str, Any], contract: Mapping[str, Any], entrypoint: str | None) -> str:
    """A commented App manifest for an app, from its live input contract: required inputs first
    (to fill in), then every optional one commented out with its default."""
    from reconciler.kinds.app import PLUMBING  # an App skeleton: the App kind's facts

    app_id = str(app.get("app_id"))
    connector = name_stem(app_id)
    properties: Mapping[str, Any] = contract.get("properties") or {}
    required = [k for k in contract.get("required") or [] if k not in PLUMBING]
    optional = [k for k in properties if k not in PLUMBING and k not in required]
    lines = [
        f"# App manifest skeleton for {app_id} ({app.get('name', app_id)}), entrypoint {entrypoint or 'default'},",
        "# generated from the tenant's live input contract. Fill in the names, then uncomment what you change.",
        "apiVersion: reconciler/v1",
        "kind: App",
        "metadata:",
        f"  name: my-{app_id.lower()}  # the workflow's display name on the tenant (its identity)",
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


# -- plans --------------------------------------------------------------------------------------------

MARKDOWN_LIMIT = 65_000  # a PR comment holds 65,536 characters
GUTTER = {"create": "+", "update": "~", "delete": "-", "replace": "-/+", "run": ">", "no-op": " "}
ICON = {"create": "🟢", "update": "🟡", "delete": "🔴", "replace": "🟠", "run": "▶️", "no-op": "⚪"}
ANSI = {"create": "32", "update": "33", "delete": "31", "replace": "35", "run": "36", "no-op": "0"}
UNKNOWN_SCHEDULES = "(unknown: the API does not return attached schedules and the state file has no record)"


def counts_line(counts: Mapping[str, int]) -> str:
    """"2 to create, 1 to update, 0 to delete", plus replacements, runs and the delete candidates
    that wait for --prune when there are any."""
    parts = [f"{counts.get('create', 0)} to create", f"{counts.get('update', 0)} to update"]
    if counts.get("replace"):
        parts.append(f"{counts['replace']} to replace")
    parts.append(f"{counts.get('delete', 0)} to delete")
    if counts.get("run"):
        parts.append(f"{plural(counts['run'], 'run')} to submit")
    line = ", ".join(parts)
    candidates = counts.get("delete_candidates", 0)
    if candidates:
        line += f" ({plural(candidates, 'delete candidate')} need{'s' if candidates == 1 else ''} --prune)"
    return line


def _value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True)


def _fire_times(schedules: Any, after: Any) -> list[str]:
    """"Asia/Kolkata: 2026-11-22 02:00, …" for each schedule: its next three fire times, in its zone."""
    if isinstance(schedules, dict):
        schedules = [schedules]
    lines = []
    for schedule in schedules or []:
        expr, tz = str(schedule.get("cron", "")), str(schedule.get("timezone") or "UTC")
        if cron.cron_problem(expr) or cron.timezone_problem(tz):
            continue
        start = dt.datetime.strptime(after, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        times = ", ".join(t.strftime("%Y-%m-%d %H:%M") for t in cron.next_fire_times(expr, tz, 3, start))
        lines.append(f"{expr} ({tz}): {times}")
    return lines


# Said after a field in a plan (like "changed outside of Terraform"): what apply would overwrite.
MOVED_ON_TENANT = {"changed-on-tenant": "changed on the tenant", "changed-on-tenant-and-in-git": "changed on the tenant and in Git"}


def _field_lines(change: Change, created_at: str) -> list[str]:
    lines = []
    for f in change.fields:
        sign = {"add": "+", "remove": "-", "change": "~"}[f.op]
        note = f"   # {MOVED_ON_TENANT[f.cause]} since the last apply" if f.cause in MOVED_ON_TENANT else ""
        if f.path in ("schedules", "schedule"):
            # A list of schedules whose live side is None: the API hides them and nothing recorded them.
            old = UNKNOWN_SCHEDULES if f.old is None and isinstance(f.new, list) else _value(f.old)
            lines.append(f"{sign} {f.path}: {old} → {_value(f.new)}{note}")
            for label, value in (("before", f.old), ("after", f.new)):
                for times in _fire_times(value, created_at):
                    lines.append(f"      next fire times {label}: {times}")
        elif f.op == "add":
            lines.append(f"+ {f.path}: {_value(f.new)}{note}")
        elif f.op == "remove":
            lines.append(f"- {f.path}: {_value(f.old)}{note}")
        else:
            lines.append(f"~ {f.path}: {_value(f.old)} → {_value(f.new)}{note}")
    return lines


def _flatten(value: Any, prefix: str = "", depth: int = 2) -> list[tuple[str, Any]]:
    """Dotted leaves, two levels deep at most ("inputs.include_filter"): deeper values, such as
    a filter's own keys, are shown whole."""
    if isinstance(value, dict) and value and depth > 0:
        out = []
        for key, sub in value.items():
            out.extend(_flatten(sub, f"{prefix}.{key}" if prefix else str(key), depth - 1))
        return out
    return [(prefix, value)]


def _body_lines(change: Change, created_at: str) -> list[str]:
    if change.action.value == "create":
        lines = [f"+ {path}: {_value(v)}" for path, v in _flatten(change.after or {}) if v not in (None, [], {})]
        for times in _fire_times((change.after or {}).get("schedules"), created_at):
            lines.append(f"      next fire times: {times}")
        return lines
    if change.action.value == "delete":
        return [f"- {path}: {_value(v)}" for path, v in _flatten(change.before or {}) if v not in (None, [], {})]
    return _field_lines(change, created_at)


def _heading(change: Change, plan: Plan) -> str:
    what = change.action.value
    if plan.waits_for_prune(change):
        what += ", needs --prune"
    reason = f": {change.reason}" if change.reason and change.action.value != "delete" else ""
    return f"{change.key} ({what}{reason})"


def _untouched(plan: Plan, *, verbose: bool) -> list[str]:
    """The sentences about what the plan leaves alone: unchanged objects, unmanaged ones."""
    out = []
    unchanged = sum(c.action.value == "no-op" for c in plan.changes)
    if unchanged and not verbose:
        out.append(f"{plural(unchanged, 'object')} unchanged.")
    if plan.unmanaged:
        listed = ", ".join(plural(n, k) for k, n in sorted(plan.unmanaged.items()))
        out.append(f"Not managed by these manifests, left alone: {listed}.")
    return out


def plan_text(plan: Plan, *, color: bool = False, verbose: bool = False) -> str:
    def paint(text: str, action: str) -> str:
        return f"\x1b[{ANSI[action]}m{text}\x1b[0m" if color and action != "no-op" else text

    lines = [f"Tenant: {plan.tenant}", ""] if plan.tenant else []
    shown = [c for c in plan.changes if c.action.value != "no-op" or verbose]
    for change in shown:
        action = change.action.value
        gutter = GUTTER[action]
        lines.append(paint(f"{gutter} {_heading(change, plan)}", action))
        if action == "delete":
            lines.append(f"    {change.reason}")
        for body in _body_lines(change, plan.created_at):
            lines.append("    " + paint(body, {"+": "create", "-": "delete", "~": "update"}.get(body[:1], "no-op")))
        lines.append("")
    lines += _untouched(plan, verbose=verbose)
    for d in plan.diagnostics:
        lines.append(("Error: " if d.is_error else "Warning: ") + (diagnostic_line(d) if d.file else f"{d.code} {d.message}"))
        if d.hint:
            lines.append(f"    hint: {d.hint}")
    lines.append(_closing(plan))
    return "\n".join(lines).strip("\n") + "\n"


UNVERIFIABLE = ("RC107", "RC108")  # warnings about schedules or runs nobody can see


def _closing(plan: Plan) -> str:
    if plan.has_changes:
        return f"Plan: {counts_line(plan.counts())}."
    if plan.errors:
        return "No changes for the objects that could be planned; fix the errors above for the rest."
    if any(d.code in UNVERIFIABLE for d in plan.diagnostics):
        return "No changes that can be planned; what the warnings above name cannot be verified."
    return "No changes. The tenant matches the manifests."


def sticky_marker(part: int) -> str:
    """The first line of each part of a plan comment: what a pull-request job looks for to update
    the comment in place instead of adding one (part N is always updated by part N)."""
    return f"<!-- reconciler-plan:part-{part} -->"


def plan_markdown(plan: Plan, *, limit: int = MARKDOWN_LIMIT) -> list[str]:
    """The plan as markdown for a pull-request comment, in parts each shorter than ``limit``, each
    starting with its sticky marker."""
    title = f"### reconciler plan: {counts_line(plan.counts())}" if plan.has_changes else \
        "### reconciler plan: no changes"
    header = [title, "", f"Tenant: `{plan.tenant}` · planned {plan.created_at}", "", ""]
    rows = [c for c in plan.changes if c.action.value != "no-op"]
    blocks: list[str] = []
    if rows:
        table = ["| | Object | Action | Why |", "|---|---|---|---|"]
        for c in rows:
            action = c.action.value + (" (needs `--prune`)" if plan.waits_for_prune(c) else "")
            table.append(f"| {ICON[c.action.value]} | `{c.key}` | {action} | {_cell(c.reason)} |")
        blocks.append("\n".join(table) + "\n")
        for c in rows:
            # In a ```diff block "!" marks a changed line; "+" and "-" already mean what they mean here.
            lines = _body_lines(c, plan.created_at) or ["(no field changes)"]
            diff_body = "\n".join(("!" + line[1:]) if line.startswith("~") else line for line in lines)
            blocks.append(f"<details><summary><code>{c.key}</code>: {c.action.value}</summary>\n\n```diff\n{diff_body}\n```\n</details>\n")
    else:
        blocks.append(_closing(plan) + "\n")
    footer = _untouched(plan, verbose=False)
    for d in plan.diagnostics:
        footer.append(f"- **{d.severity}** `{d.code}` {d.message}")
    if footer:
        blocks.append("\n".join(footer) + "\n")

    return _sticky_parts(title, "\n".join(header), blocks, limit)


def _sticky_parts(title: str, header: str, blocks: list[str], limit: int) -> list[str]:
    """Blocks packed into parts shorter than ``limit``, numbered when there are several, each
    starting with its sticky marker; a block too long for one part is cut, its code fence closed."""
    limit -= len(sticky_marker(999)) + 1
    parts: list[str] = []
    current = header
    for block in blocks:
        if len(block) > limit - 200:
            block = block[: limit - 400] + "\n```\n(truncated: see the plan file for the rest)\n</details>\n"
        if len(current) + len(block) + 1 > limit - 100:
            parts.append(current)
            current = f"{title} (continued)\n\n"
        current += block + "\n"
    parts.append(current)
    if len(parts) > 1:
        parts = [p.rstrip("\n") + f"\n\n_Part {i} of {len(parts)}._\n" for i, p in enumerate(parts, 1)]
    return [f"{sticky_marker(i)}\n{p}" for i, p in enumerate(parts, 1)]


def plan_json(plan: Plan) -> str:
    """The documented, stable JSON form (see README: "Plan JSON")."""
    return json.dumps(plan.to_dict(), indent=2) + "\n"


# -- drift reports --------------------------------------------------------------------------------------


def _class_words(classes: Iterable[str]) -> str:
    from reconciler.drift import DESCRIPTION

    return "; ".join(DESCRIPTION.get(c, c) for c in classes)


def _drift_title(data: Mapping[str, Any]) -> str:
    if not data["drifted"]:
        return f"No drift on {data['tenant']}: the tenant matches Git."
    return f"Drift on {data['tenant']}: {plural(len(data['objects']), 'object')} differ{'s' if len(data['objects']) == 1 else ''} from Git."


def _drift_summary(data: Mapping[str, Any]) -> str:
    from reconciler.drift import DESCRIPTION

    return ", ".join(f"{n} {DESCRIPTION[c].split(':')[0]}" for c, n in data["summary"].items())


def _drift_notes(data: Mapping[str, Any]) -> list[str]:
    notes = []
    if data["unmanaged"]:
        listed = ", ".join(plural(n, k) for k, n in sorted(data["unmanaged"].items()))
        notes.append(f"Not managed by these manifests, left alone: {listed}.")
    notes += [f"Note: {text}." for text in data["cannot_see"]]
    return notes


def drift_text(data: Mapping[str, Any]) -> str:
    """The drift report (``drift.report``) for a terminal or a log."""
    lines = [_drift_title(data) + f" (checked {data['checked_at']})", ""]
    for o in data["objects"]:
        lines.append(f"{GUTTER.get(o['action'], '!')} {o['kind']}/{o['name']} ({o['action']}): {_class_words(o['classes'])}")
        if o["reason"] and o["reason"] not in ("differs from the manifest", _class_words(o["classes"])):
            lines.append(f"    {o['reason']}")
        for f in o["fields"]:
            lines.append(f"    {f['path']}: Git {_value(f['git'])}, live {_value(f['live'])}   # {_class_words([f['class']])}")
        if o["run"]:
            lines.append("    apply would then submit a run")
        lines.append("")
    if data["summary"]:
        lines.append(f"By class: {_drift_summary(data)}.")
    lines += _drift_notes(data)
    for d in data["diagnostics"]:
        lines.append(("Error: " if d["severity"] == "error" else "Warning: ") + f"{d['code']} {d['message']}")
    return "\n".join(lines).strip("\n") + "\n"


def drift_markdown(data: Mapping[str, Any], *, limit: int = MARKDOWN_LIMIT) -> str:
    """The drift report as the body of an issue (one per tenant): one part, cut at ``limit``."""
    lines = [f"### reconciler drift: {_drift_title(data)}", "", f"Checked {data['checked_at']}.", ""]
    if data["objects"]:
        lines += ["| Object | Action | Class | Field | Git | Live |", "|---|---|---|---|---|---|"]
        for o in data["objects"]:
            rows = o["fields"] or [{"path": "", "class": c, "git": None, "live": None} for c in o["classes"]]
            for f in rows:
                git = f"`{_value(f['git'])}`" if f["path"] else ""
                live = f"`{_value(f['live'])}`" if f["path"] else ""
                cells = [f"`{o['kind']}/{o['name']}`", o["action"], _class_words([f["class"]]), f"`{f['path']}`" if f["path"] else "",
                         git, live]
                lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
        lines.append(f"By class: {_drift_summary(data)}.")
    lines += ["", *_drift_notes(data)]
    lines += [f"- **{d['severity']}** `{d['code']}` {d['message']}" for d in data["diagnostics"]]
    text = "\n".join(lines).strip("\n") + "\n"
    if len(text) > limit:
        cut = text[: limit - 200].rsplit("\n", 1)[0]
        text = cut + "\n\n(truncated: the full report is in the job's artifact or `reconciler drift --format json`)\n"
    return text


def drift_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2) + "\n"


# -- export --------------------------------------------------------------------------------------------


def export_summary(report: ExportReport, env: Mapping[str, str]) -> str:
    """What ``export`` wrote, what it did not and why, the variables to set, and what to do next."""
    import os
    from pathlib import Path

    from reconciler.export import folder_of
    from reconciler.files import shown_path

    export = report.export
    out = shown_path(report.out)
    lines = []
    by_kind: dict[str, int] = {}
    for item in export.objects:
        by_kind[item.key.kind] = by_kind.get(item.key.kind, 0) + 1
    listed = ", ".join(f"{n} {folder_of(k) if n != 1 else k.lower()}" for k, n in sorted(by_kind.items()))
    lines.append(f"Exported {len(export.objects)} object{'s' if len(export.objects) != 1 else ''} into {out}/"
                 + (f": {listed}." if listed else "."))
    if export.objects:
        lines.append(f"  {len(report.written)} file{'s' if len(report.written) != 1 else ''} written, "
                     f"{len(report.unchanged)} unchanged; recorded as managed in {shown_path(report.state_file)}.")
    if report.project_file is not None:
        lines.append(f"  Wrote {shown_path(report.project_file)} (the project's settings).")
    left = [f"  {key}: {why}; left as it is" for key, why in sorted(export.left_alone.items())]
    left += [f"  {key}: {len(ids)} live objects carry this name ({', '.join(ids)})"
             for key, ids in sorted(export.duplicates.items())]
    left += [f"  {key}: {why}" for key, why in sorted(export.refused.items())]
    if left:
        lines += ["", "Not exported:", *left]
    if export.unmatched_app_ids:
        lines += ["", f"No app matched --app-id {', '.join(export.unmatched_app_ids)}."]
    moving = [o for o in export.objects if o.not_converging]
    if moving:
        lines += ["", "A plan of these will not be empty:", *(f"  {o.key}: {o.not_converging}" for o in moving)]
    unknown = [o for o in export.objects if o.unknown_schedules]
    if unknown:
        lines += ["", f"Schedules of {len(unknown)} app{'s' if len(unknown) != 1 else ''} are left out: the API does not "
                      "show attached schedules and the state file has no record of them, so they are not managed. "
                      "To manage them, declare them, remove the ones attached in Atlan (or they fire twice), then "
                      "apply with --adopt-schedules."]
    secrets = [s for o in export.objects for s in o.secrets]
    if secrets:
        width = max(len(s.name) for s in secrets)
        lines += ["", "Secrets the manifests take from the environment (the tenant never returns them):"]
        lines += [f"  {s.name:<{width}}  {s.key} {s.field}{'' if s.name in env else '  (not set)'}" for s in secrets]
        lines += ["The first apply sends them to the tenant (to record their fingerprints): set the real values."]
    if export.objects:
        lines += ["", "Next:"]
        step = 1
        if secrets:
            lines.append(f"  {step}. Set the variables above where plan and apply run (your CI secret store); "
                         "plan also runs without them with --allow-missing-secrets.")
            step += 1
        root = shown_path(report.project_root)
        inside = Path(os.path.abspath(report.state_file)).is_relative_to(os.path.abspath(report.project_root))
        commit = root if inside else f"{root} {shown_path(report.state_file)}"
        lines.append(f"  {step}. reconciler plan {root} --detailed-exitcode   (expect \"No changes.\")")
        lines.append(f"  {step + 1}. git add {commit} && git commit -m \"Adopt the tenant's objects\"")
    return "\n".join(lines) + "\n"


# -- apply reports ---------------------------------------------------------------------------------

DONE = {"create": "created", "update": "updated", "replace": "replaced", "delete": "deleted", "run": "run submitted",
        "no-op": "unchanged"}
MARK = {"applied": "✓", "failed": "✗", "skipped": "–", "unverified": "?", "not-applied": "–"}
STATUS_WORD = {"failed": "failed", "skipped": "skipped", "unverified": "unverified", "not-applied": "not applied"}


def _report_counts(report: ApplyReport) -> str:
    applied = collections.Counter(o.change.action.value for o in report.outcomes if o.status.value == "applied")
    parts = [f"{applied.get(a, 0)} {DONE[a]}" for a in ("create", "update", "delete")]
    if applied.get("replace"):
        parts.append(f"{applied['replace']} replaced")
    if applied.get("run"):
        parts.append(f"{plural(applied['run'], 'run')} submitted")
    failed = sum(o.status.value == "failed" for o in report.outcomes)
    skipped = sum(o.status.value == "skipped" for o in report.outcomes)
    parts += [f"{failed} failed", f"{skipped} skipped"]
    if report.failed_runs:
        parts.append(f"{plural(len(report.failed_runs), 'run')} did not succeed")
    unverified = sum(o.status.value == "unverified" for o in report.outcomes)
    if unverified:
        parts.append(f"{unverified} unverified")
    waiting = sum(o.status.value == "not-applied" for o in report.outcomes)
    if waiting:
        parts.append(f"{plural(waiting, 'delete')} not applied (needs --prune)")
    return ", ".join(parts)


def _retries(report: ApplyReport) -> str:
    total = sum(report.retries.values())
    if not total:
        return "no retries"
    detail = ", ".join(f"{n}×{reason}" for reason, n in sorted(report.retries.items()))
    return f"{plural(total, 'retry')} ({detail})".replace("retrys", "retries")


def outcome_line(o: Outcome) -> str:
    """One change of an apply report: ``✓ created App/x``, ``✗ failed …: message``."""
    verb = DONE[o.change.action.value] if o.status.value == "applied" else STATUS_WORD[o.status.value]
    mark = MARK["failed"] if run_failed(o.run_status) else MARK[o.status.value]  # submitted, but the run failed
    line = f"{mark} {verb} {o.change.key}"
    if o.run_id:
        line += f" (run {o.run_id}: {o.run_status})"
    if o.message:
        line += f": {o.message}"
    return line


def run_line(o: Outcome) -> str:
    """A run's status as ``apply --wait`` follows it: ``run 7f3a of App/x: Running``."""
    return f"run {o.run_id} of {o.change.key}: {o.run_status}" + (f" ({o.message})" if o.message else "")


def report_text(report: ApplyReport) -> str:
    lines = [outcome_line(o) for o in report.outcomes if not (o.change.action.value == "no-op" and not o.message
                                                                and o.status.value == "applied")]
    lines += report.notes
    closing = "Apply failed" if report.failed else "Apply complete"
    lines.append(f"{closing}: {_report_counts(report)}. {report.requests} requests, {_retries(report)}, "
                 f"{report.seconds:.1f} s.")
    return "\n".join(lines) + "\n"


def report_markdown(report: ApplyReport) -> str:
    closing = "failed" if report.failed else "complete"
    lines = [f"### reconciler apply {closing}: {_report_counts(report)}", "",
             f"Tenant: `{report.tenant}` · {report.requests} requests, {_retries(report)}, {report.seconds:.1f} s", "",
             "| | Object | Result | Detail |", "|---|---|---|---|"]
    for o in report.outcomes:
        if o.change.action.value == "no-op" and not o.message and o.status.value == "applied":
            continue
        verb = DONE[o.change.action.value] if o.status.value == "applied" else STATUS_WORD[o.status.value]
        detail = (f"run `{o.run_id}`: {o.run_status}. " if o.run_id else "") + _cell(o.message)
        mark = MARK["failed"] if run_failed(o.run_status) else MARK[o.status.value]
        lines.append(f"| {mark} | `{o.change.key}` | {verb} | {detail} |")
    return "\n".join(lines) + "\n"


def report_json(report: ApplyReport) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"
