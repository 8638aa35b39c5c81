"""Who moved: each difference of a plan classified against the last apply. Pure.

At each apply the state file records, per object, a digest of the object as applied: one short
keyed hash per compared field (HMAC-SHA256, keyed like the secret fingerprints, so that the
committed file cannot be used to test guesses of a value), at the depth the plan compares fields
("inputs.include_filter", whole lists, whole schedules). An apply converges (the next plan shows no changes), so at that moment
the digest is the fingerprint of both the desired and the live object, field by field. Later, a
field whose live value no longer matches it was changed on the tenant; a field whose Git value
no longer matches it is not yet applied; both, and both moved.

The classes, as plan, drift and their JSON name them:

- ``changed-on-tenant``: edited in Atlan (or by another tool) since the last apply;
- ``not-yet-applied``: Git changed since the last apply (a merge whose apply failed or has not
  run), a new object, or one removed from Git that is still on the tenant;
- ``changed-on-tenant-and-in-git``: both sides moved since the last apply;
- ``secret-rotated``: a secret in the environment differs from the one last applied;
- ``stale-schedule``: the app was saved again since its schedules were attached, so they fire an
  old version;
- ``missing``: applied once, now gone from the tenant;
- ``unmanaged-in-scope``: on the tenant under an owned name prefix, never declared nor applied;
- ``unknown``: the state file has no record of an apply to tell who moved.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from reconciler.diff import MISSING, FieldChange, get_path
from reconciler.normalize import canonical_json

if TYPE_CHECKING:
    from reconciler.plan import Plan

CHANGED_ON_TENANT = "changed-on-tenant"
NOT_YET_APPLIED = "not-yet-applied"
BOTH_MOVED = "changed-on-tenant-and-in-git"
SECRET_ROTATED = "secret-rotated"
STALE_SCHEDULE = "stale-schedule"
MISSING_ON_TENANT = "missing"
UNMANAGED_IN_SCOPE = "unmanaged-in-scope"
UNKNOWN = "unknown"

DESCRIPTION = {
    CHANGED_ON_TENANT: "changed on the tenant since the last apply",
    NOT_YET_APPLIED: "not yet applied: Git changed since the last apply",
    BOTH_MOVED: "changed on the tenant and in Git since the last apply",
    SECRET_ROTATED: "secret rotated: the value in the environment differs from the one last applied",
    STALE_SCHEDULE: "stale schedule: the app was saved again since its schedules were attached",
    MISSING_ON_TENANT: "missing: deleted on the tenant since the last apply",
    UNMANAGED_IN_SCOPE: "unmanaged in scope: created outside Git under an owned name prefix",
    UNKNOWN: "differs (no record of the last apply to tell who moved)",
}
ORDER = tuple(DESCRIPTION)  # how a report lists them: what needs a person first
TENANT_SIDE = frozenset({CHANGED_ON_TENANT, BOTH_MOVED, MISSING_ON_TENANT, STALE_SCHEDULE, UNMANAGED_IN_SCOPE})


HASH_CHARS = 10  # 40 bits: the state file carries one per field; a chance collision only hides one difference


def _hash(value: Any, key: bytes) -> str:
    return hmac.new(key, canonical_json(value).encode(), hashlib.sha256).hexdigest()[:HASH_CHARS]


Digest = Mapping[str, Any]  # field -> hash, or field -> {key -> hash} for a mapping compared key by key


def digest(obj: Mapping[str, Any], atomic: Iterable[str] = (), key: bytes = b"") -> dict[str, Any]:
    """One hash per field, at the paths ``diff.field_changes`` reports: a mapping key by key
    ("inputs" → one hash per input), the ``atomic`` top-level fields (schedules) and lists whole.
    What the state file records at an apply; secret values are never part of a canonical object,
    so never of a digest."""
    atomic = set(atomic)
    out: dict[str, Any] = {}
    for name, value in obj.items():
        if isinstance(value, dict) and value and name not in atomic:
            out[str(name)] = {str(sub): _hash(inner, key) for sub, inner in value.items()}
        else:
            out[str(name)] = _hash(value, key)
    return out


NOT_COMPARED = "-"  # in a digest: a field the manifest's ignoreDifferences kept out of the comparison


def not_compared(fields: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """A digest that also says which fields were not compared (ignored) at the apply: a difference
    found there later cannot be put on either side."""
    for path in paths:
        head, _, rest = path.partition(".")
        sub = rest.split(".")[0]
        if not sub:
            fields[head] = NOT_COMPARED
        elif isinstance(fields.get(head), dict):
            fields[head][sub] = NOT_COMPARED
        elif head not in fields:
            fields[head] = {sub: NOT_COMPARED}
    return fields


def _at(fields: Digest, path: str) -> str | None:
    """The hash of one path ("inputs.include_filter", or "inputs" as a whole) in a digest."""
    head, _, rest = path.partition(".")
    value = fields.get(head)
    if rest:
        value = value.get(rest) if isinstance(value, Mapping) else None
    if isinstance(value, Mapping):
        return _hash(value, b"")  # the hashes below it, hashed: compared, never stored
    return None if value is None else str(value)


def _now(obj: Mapping[str, Any] | None, path: str, atomic: Iterable[str], key: bytes) -> str | None:
    """The hash of one path of an object, as ``digest`` would have recorded it."""
    head = path.split(".")[0]
    if get_path(obj or {}, [head]) is MISSING:
        return None
    return _at(digest({head: (obj or {})[head]}, atomic, key), path)


def _declared_only(path: str, patterns: Iterable[str]) -> bool:
    """A path the kind compares only where the manifest declares it (``a`` or ``a.*``)."""
    return any(path == p or (p.endswith(".*") and path.startswith(p[:-1])) for p in patterns)


def classify(field: FieldChange, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
             applied: Digest | None, atomic: Iterable[str] = (), key: bytes = b"", declared_only: Iterable[str] = ()) -> str:
    """The class of one field difference between the live ``before`` and the desired ``after``
    (canonical), given the digest recorded at the last apply (None: no record), its key, and the
    kind's declared-only paths (not compared at all while the manifest leaves them out)."""
    if applied is None:
        return UNKNOWN
    recorded = _at(applied, field.path)
    if recorded == NOT_COMPARED:
        return UNKNOWN  # ignored at the last apply: nobody can say who moved
    if recorded is None and _declared_only(field.path, declared_only):
        return NOT_YET_APPLIED  # Git declares it now; its live value was not compared before
    git_moved = _now(after, field.path, atomic, key) != recorded
    live_moved = _now(before, field.path, atomic, key) != recorded
    if live_moved and git_moved:
        return BOTH_MOVED
    if live_moved:
        return CHANGED_ON_TENANT
    if git_moved:
        return NOT_YET_APPLIED
    return UNKNOWN  # neither moved, yet they differ: the last apply did not converge on this field


def sort_classes(classes: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(classes), key=lambda c: ORDER.index(c) if c in ORDER else len(ORDER)))


# -- the report ------------------------------------------------------------------------------------

REPORT_FORMAT_VERSION = 1


def report(plan: Plan, *, checked_at: str | None = None) -> dict[str, Any]:
    """The drift report of a plan, as data (``drift --format json`` prints it; the text and
    markdown forms are rendered from it). Objects are listed with each drifted field, its Git
    value and its live value (secrets as "(sensitive)": no value ever reaches a plan)."""
    objects: list[dict[str, Any]] = []
    runs = {c.key for c in plan.changes if c.action.value == "run"}
    changed = {c.key for c in plan.changes if c.action.value not in ("no-op", "run")}
    for change in plan.changes:
        # A run follows its object's change (listed with it), unless it is owed on its own.
        if change.action.value == "no-op" or (change.action.value == "run" and change.key in changed):
            continue
        fields = [{"path": f.path, "class": f.cause or UNKNOWN, "git": f.new, "live": f.old} for f in change.fields]
        objects.append({
            "kind": change.key.kind, "name": change.key.name, "action": change.action.value,
            "classes": list(change.drift or sort_classes(f["class"] for f in fields) or (UNKNOWN,)),
            "reason": change.reason, "origin": str(change.origin), "fields": fields,
            "run": change.key in runs,
        })
    for name in plan.missing:
        kind, _, rest = name.partition("/")
        objects.append({"kind": kind, "name": rest, "action": "none", "classes": [MISSING_ON_TENANT],
                        "reason": f"reconciler does not create {kind} objects: re-create it in Atlan, or remove its manifest",
                        "origin": "", "fields": [], "run": False})
    summary = {c: sum(c in o["classes"] for o in objects) for c in ORDER}
    kinds_seen = sorted({c.key.kind for c in plan.changes})
    return {
        "format_version": REPORT_FORMAT_VERSION,
        "tenant": plan.tenant,
        "checked_at": checked_at or plan.created_at,
        "drifted": bool(objects),
        "summary": {c: n for c, n in summary.items() if n},
        "objects": objects,
        "unmanaged": dict(plan.unmanaged),
        "cannot_see": [text for text in (_unseen(k) for k in kinds_seen) if text],
        "diagnostics": [d.to_dict() for d in plan.diagnostics],
    }


def _unseen(kind: str) -> str:
    from reconciler import kinds

    return kinds.get(kind).unseen if kinds.known(kind) else ""
