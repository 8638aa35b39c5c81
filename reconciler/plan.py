"""Desired and live State → a Plan: frozen, versioned, ordered, serialisable. Pure.

Takes both States (manifest-shaped ``Resource`` objects), the normalization context, what the
state file recorded (managed objects, schedules, secret fingerprints, preventDestroy), the
ownership scope and the options; returns a ``Plan`` whose changes are ordered by dependency rank
then name. ``to_dict`` / ``from_dict`` are the only serialisation path. No network, no CLI.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from reconciler import kinds
from reconciler.diff import FieldChange, field_changes, masked
from reconciler.errors import Diagnostic
from reconciler.model import Resource, ResourceKey, State
from reconciler.normalize import Context, as_declared, canonical

PLAN_FORMAT_VERSION = 2
SECRETS_PATH = "secrets"
SENSITIVE = "(sensitive)"
DELETE_CANDIDATES = "delete_candidates"
MAC_FIELD = "mac"


def plan_mac(data: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 over a plan's canonical JSON (every field but the MAC itself): a saved plan
    applies only as it was reviewed. Keyed like the secret fingerprints."""
    content = {k: v for k, v in data.items() if k != MAC_FIELD}
    message = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return "hmac-sha256:" + hmac.new(key, message, hashlib.sha256).hexdigest()


def mac_matches(data: Mapping[str, Any], key: bytes) -> bool:
    given = data.get(MAC_FIELD)
    return isinstance(given, str) and hmac.compare_digest(given, plan_mac(data, key))


class Action(str, enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    REPLACE = "replace"
    RUN = "run"
    NOOP = "no-op"


@dataclass(frozen=True)
class Change:
    """One action on one object. ``before`` is the canonical live object (none for a create),
    ``after`` the canonical desired one (none for a delete); neither holds a secret."""

    action: Action
    key: ResourceKey
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    fields: tuple[FieldChange, ...] = ()
    reason: str = ""
    fingerprint: str | None = None  # of the live object the change was computed from
    needs_prune: bool = False  # a delete that apply performs only with --prune
    origin: str = ""  # file:line of the manifest
    # What apply needs from the manifest beyond the compared fields: secret *references*
    # (``${env:NAME}``, never values), preventDestroy, the connection's qualifiedName to reuse.
    settings: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "kind": self.key.kind,
            "name": self.key.name,
            "before": self.before,
            "after": self.after,
            "fields": [f.to_dict() for f in self.fields],
            "reason": self.reason,
            "fingerprint": self.fingerprint,
            "needs_prune": self.needs_prune,
            "origin": self.origin,
            "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Change":
        return cls(
            action=Action(data["action"]),
            key=ResourceKey(data["kind"], data["name"]),
            before=data.get("before"),
            after=data.get("after"),
            fields=tuple(FieldChange.from_dict(f) for f in data.get("fields") or ()),
            reason=data.get("reason", ""),
            fingerprint=data.get("fingerprint"),
            needs_prune=bool(data.get("needs_prune", False)),
            origin=data.get("origin", ""),
            settings=dict(data.get("settings") or {}),
        )


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    tenant: str = ""
    created_at: str = ""
    prune: bool = False
    targets: tuple[str, ...] = ()
    unmanaged: Mapping[str, int] = field(default_factory=dict)  # live objects not ours, per kind
    diagnostics: tuple[Diagnostic, ...] = ()
    state_file: str = ""  # where apply records what it did
    project: str = ""  # the manifests folder the plan was made from (its reconciler.yaml rules apply)
    adopt_schedules: bool = False  # attach declared schedules even where the tenant's are unknown
    project_name: str = ""  # metadata.name of reconciler.yaml
    state_serial: str = ""  # digest of the project's records the plan was made from
    format_version: int = PLAN_FORMAT_VERSION

    def counts(self) -> dict[str, int]:
        """Changes per action; deletes that wait for --prune are "delete_candidates", not deletes."""
        out = {a.value: 0 for a in Action}
        out[DELETE_CANDIDATES] = 0
        for change in self.changes:
            out[DELETE_CANDIDATES if change.needs_prune else change.action.value] += 1
        return out

    @property
    def has_changes(self) -> bool:
        return any(c.action is not Action.NOOP for c in self.changes)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "created_at": self.created_at,
            "tenant": self.tenant,
            "prune": self.prune,
            "targets": list(self.targets),
            "summary": self.counts(),
            "changes": [c.to_dict() for c in self.changes],
            "unmanaged": dict(self.unmanaged),
            "state_file": self.state_file,
            "project": self.project,
            "adopt_schedules": self.adopt_schedules,
            "project_name": self.project_name,
            "state_serial": self.state_serial,
            "diagnostics": [d.to_dict() for d in self.diagnostics],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Plan":
        version = data.get("format_version")
        if version != PLAN_FORMAT_VERSION:
            raise ValueError(f"plan format version {version!r} is not supported (this reconciler reads {PLAN_FORMAT_VERSION})")
        return cls(
            changes=tuple(Change.from_dict(c) for c in data.get("changes") or ()),
            tenant=data.get("tenant", ""),
            created_at=data.get("created_at", ""),
            prune=bool(data.get("prune", False)),
            targets=tuple(data.get("targets") or ()),
            unmanaged=dict(data.get("unmanaged") or {}),
            state_file=data.get("state_file", ""),
            project=data.get("project", ""),
            adopt_schedules=bool(data.get("adopt_schedules", False)),
            project_name=data.get("project_name", ""),
            state_serial=data.get("state_serial", ""),
            diagnostics=tuple(Diagnostic.from_dict(d) for d in data.get("diagnostics") or ()),
            format_version=version,
        )


@dataclass(frozen=True)
class Records:
    """What the state file recorded for this tenant, as the planner needs it."""

    managed: frozenset[ResourceKey] = frozenset()
    prevent_destroy: frozenset[ResourceKey] = frozenset()
    secret_fingerprints: Mapping[ResourceKey, str] = field(default_factory=dict)
    # Writes whose outcome is unknown (a schedule attached, a run submitted), until settled.
    intents: Mapping[ResourceKey, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)
    # Apps created with run.onCreate whose run was never submitted (the apply stopped first).
    pending_runs: frozenset[ResourceKey] = frozenset()
    # Objects other projects sharing the state file record: never this project's, prefix or not.
    others: frozenset[ResourceKey] = frozenset()
    serial: str = ""  # digest of the records, carried by the plan (see state.records_serial)


def build_plan(
    desired: State,
    live: State,
    ctx: Context,
    *,
    records: Records = Records(),
    desired_fingerprints: Mapping[ResourceKey, str] | None = None,
    ambiguous: Mapping[ResourceKey, Iterable[str]] | None = None,
    excluded: Iterable[ResourceKey] = (),
    owned_prefixes: Iterable[str] = (),
    prune: bool = False,
    targets: Iterable[ResourceKey] = (),
    tenant: str = "",
    now: dt.datetime | None = None,
    diagnostics: Iterable[Diagnostic] = (),
    state_file: str = "",
    project: str = "",
    project_file: str = "",
    project_name: str = "",
    adopt_schedules: bool = False,
) -> Plan:
    """Pair by identity (desired − live = create, live − desired = delete candidates, both =
    compare) and decide one action per object. ``ambiguous`` and ``excluded`` objects (whose
    diagnostics say why) are left out entirely: neither changed nor deleted.

    Live App schedules that nobody can know (the API hides them and the state file has no record)
    are not compared unless ``adopt_schedules`` says the tenant has none: attaching them blindly
    could double every trigger."""
    targets = tuple(targets)
    notes = list(diagnostics)
    owned_prefixes = _meaningful_prefixes(tuple(owned_prefixes), desired, live, records, project_file, notes)
    notes += _intent_notes(records, desired)
    for key, slugs in sorted((ambiguous or {}).items()):
        origin = desired[key].origin if key in desired else ""
        file, _, line = origin.rpartition(":")
        notes.append(Diagnostic(file, int(line or 0), 1, "RC101",
                                f"{key} is ambiguous: {len(list(slugs))} live objects have this name ({', '.join(slugs)}); "
                                "it is left out of the plan", hint="Delete or rename the duplicates on the tenant."))
    skip = set(ambiguous or {}) | set(excluded)
    changes: list[Change] = []
    unmanaged: dict[str, int] = {}
    for spec in kinds.by_rank():
        names = {k for k in (*desired, *live) if k.kind == spec.kind} - skip
        for key in sorted(names):
            if targets and key not in targets:
                continue
            want, have = desired.get(key), live.get(key)
            if want is not None and have is None:
                changes.extend(_create(want, spec, ctx, notes))
            elif want is None and have is not None:
                if not spec.deletable:
                    continue  # no longer managed; nothing to do on the tenant
                if _managed(key, records, owned_prefixes):
                    change = _delete(have, spec, ctx, records, prune, notes)
                    if change is not None:
                        changes.append(change)
                else:
                    unmanaged[spec.kind] = unmanaged.get(spec.kind, 0) + 1
            elif want is not None and have is not None:
                fingerprint = (desired_fingerprints or {}).get(key)
                if not adopt_schedules:
                    want = _without_unknowable_schedules(want, have, spec, notes)
                compared = _compare(want, have, spec, ctx, records, fingerprint, notes)
                if key in records.pending_runs and not any(c.action is Action.RUN for c in compared):
                    compared.append(Change(Action.RUN, key, None, None, origin=want.origin,
                                           reason="run.onCreate was never submitted: the apply that created it stopped"))
                changes.extend(compared)
    created = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Plan(changes=tuple(changes), tenant=tenant, created_at=created, prune=prune,
                targets=tuple(str(t) for t in targets), unmanaged=unmanaged, diagnostics=tuple(sorted(notes)),
                state_file=state_file, project=project, adopt_schedules=adopt_schedules, project_name=project_name,
                state_serial=records.serial)


def _meaningful_prefixes(prefixes: tuple[str, ...], desired: State, live: State, records: Records, project_file: str,
                         notes: list[Diagnostic]) -> tuple[str, ...]:
    """The ownership prefixes that claim this project's objects, not the tenant's: a prefix that
    matches more than half of the live objects this project neither declares nor recorded is
    refused (an error, and it claims nothing)."""
    others = [k for k in live if k not in desired and k not in records.managed and kinds.KINDS[k.kind].deletable]
    kept = []
    for prefix in prefixes:
        matched = sum(k.name.startswith(prefix) for k in others)
        if matched > 1 and 2 * matched > len(others):
            notes.append(Diagnostic(project_file, 0, 0, "RC106",
                                    f"ownership prefix {prefix!r} matches {matched} of the {len(others)} live objects that "
                                    "this project does not declare; it would make most of the tenant deletable, so it "
                                    "claims nothing", "spec.ownership.namePrefixes",
                                    hint="Use a prefix only this project's objects start with, or declare those objects."))
        else:
            kept.append(prefix)
    return tuple(kept)


def _intent_notes(records: Records, desired: State) -> list[Diagnostic]:
    notes = []
    for key, intents in sorted(records.intents.items()):
        origin = desired[key].origin if key in desired else ""
        file, _, line = origin.rpartition(":")
        for intent in intents:
            if intent.get("action") == "schedule":
                what = (f"a schedule {intent.get('cron')!r} ({intent.get('timezone')}) may have been attached at "
                        f"{intent.get('at')}, but the answer was lost; it is not attached again until you settle it")
                hint = (f"If the tenant shows it, run `reconciler state resolve {key} --intent {intent.get('id')} "
                        f"--attached TRIGGER_ID`; if not, `... --absent`.")
            else:
                what = f"a run may have been submitted at {intent.get('at')}, but the answer was lost"
                hint = f"Check the app's runs in Atlan, then `reconciler state resolve {key} --intent {intent.get('id')} --absent`."
            notes.append(Diagnostic(file, int(line or 0), 1 if line else 0, "RC107", f"{key}: {what}", severity="warning",
                                    hint=hint))
    return notes


def _without_unknowable_schedules(want: Resource, have: Resource, spec: kinds.KindSpec,
                                  notes: list[Diagnostic]) -> Resource:
    name = spec.schedule_list
    if not name or want.spec.get(name) is None or have.spec.get(name) is not None:
        return want
    file, _, line = want.origin.rpartition(":")
    notes.append(Diagnostic(file, int(line or 0), 1 if line else 0, "RC108",
                            f"{want.key}: its schedules cannot be verified: the API does not return attached schedules "
                            "and the state file has no record of this app, so apply will not attach them (that could "
                            "double every trigger)", "spec.schedules", severity="warning",
                            hint="If the app has no schedules on the tenant (or none that matter), apply once with "
                                 "--adopt-schedules; the triggers are recorded from then on."))
    return Resource(key=want.key, spec={k: v for k, v in want.spec.items() if k != name}, origin=want.origin,
                    metadata=want.metadata, server=want.server)


def settings_of(want: Resource) -> dict[str, Any]:
    """The manifest's settings apply needs and the diff does not compare. Secret fields hold
    their ``${env:NAME}`` reference, never a value."""
    spec = kinds.KINDS[want.key.kind]
    out: dict[str, Any] = {}
    secrets = {name: want.spec[name] for name in spec.secret_paths if name in want.spec}
    for mapping in spec.secret_maps:
        secrets.update({f"{mapping}.{k}": v for k, v in (want.spec.get(mapping) or {}).items()})
    if secrets:
        out["secret_refs"] = secrets
    if (want.spec.get("lifecycle") or {}).get("preventDestroy"):
        out["prevent_destroy"] = True
    qualified_name = (want.spec.get("connection") or {}).get("qualifiedName")
    if qualified_name:
        out["connection_qualified_name"] = qualified_name
    if "entrypoint" in want.spec:
        out["entrypoint"] = want.spec["entrypoint"]
    return out


def _managed(key: ResourceKey, records: Records, owned_prefixes: tuple[str, ...]) -> bool:
    if key in records.managed:
        return True
    return key not in records.others and any(key.name.startswith(p) for p in owned_prefixes)


def _runs(want: Resource, when: str) -> bool:
    return bool((want.spec.get("run") or {}).get(when))


def _create(want: Resource, spec: kinds.KindSpec, ctx: Context, notes: list[Diagnostic]) -> list[Change]:
    if spec.kind == "Workflow":
        file, _, line = want.origin.rpartition(":")
        notes.append(Diagnostic(file, int(line or 0), 1, "RC102",
                                f"{want.key} does not exist on the tenant; a Workflow manages an existing template only",
                                hint="Check the template name (Workflows created in the UI are named <prefix>-<10-digit epoch>)."))
        return []
    after = canonical(want, as_declared(ctx))
    out = [Change(Action.CREATE, want.key, None, after, reason="not on the tenant", origin=want.origin,
                  settings=settings_of(want))]
    if _runs(want, "onCreate"):
        out.append(Change(Action.RUN, want.key, None, None, reason="run.onCreate", origin=want.origin))
    return out


def _delete(have: Resource, spec: kinds.KindSpec, ctx: Context, records: Records, prune: bool,
            notes: list[Diagnostic]) -> Change | None:
    if have.key in records.prevent_destroy:
        notes.append(Diagnostic("", 0, 0, "RC103", f"{have.key} is no longer declared, but preventDestroy was recorded for it; "
                                "it will not be deleted", severity="warning",
                                hint="Delete it in Atlan yourself, or declare it again."))
        return None
    reason = "no longer declared" + ("" if prune else "; apply deletes it only with --prune")
    return Change(Action.DELETE, have.key, canonical(have, ctx), None, reason=reason,
                  fingerprint=have.server.get("fingerprint"), needs_prune=not prune)


def _secrets_in_clear(want: Resource, have: Resource, spec: kinds.KindSpec, notes: list[Diagnostic]) -> Resource:
    """A secret map entry (``secretExtra.k``) the tenant keeps in clear comes back in the public
    map (``extra.k``): not compared (it would differ forever), masked in output, and said once."""
    clear = []
    live = dict(have.spec)
    for public, secret in spec.secret_twins:
        declared = set(want.spec.get(secret) or {})
        shown = dict(live.get(public) or {})
        clear += [f"{secret}.{k}" for k in sorted(declared & set(shown))]
        live[public] = {k: v for k, v in shown.items() if k not in declared}
    if not clear:
        return have
    file, _, line = want.origin.rpartition(":")
    notes.append(Diagnostic(file, int(line or 0), 1 if line else 0, "RC113",
                            f"{want.key}: the tenant returns {', '.join(clear)} in clear: it does not treat "
                            f"{'it' if len(clear) == 1 else 'them'} as secret; never compared, masked in every output",
                            severity="warning", hint="Check the connector's secret fields; rotate the value if the "
                                                     "credential's readers should not see it."))
    return Resource(key=have.key, spec=live, origin=have.origin, metadata=have.metadata, server=have.server)


def _compare(want: Resource, have: Resource, spec: kinds.KindSpec, ctx: Context, records: Records,
             desired_fingerprint: str | None, notes: list[Diagnostic]) -> list[Change]:
    have = _secrets_in_clear(want, have, spec, notes)
    ignore = want.spec.get("ignoreDifferences") or ()
    after, before = masked(canonical(want, ctx), canonical(have, ctx), spec.declared_only, ignore)
    atomic = [name for name in (spec.schedule_list, spec.schedule_single) if name]
    fields = field_changes(before, after, atomic)
    recorded = records.secret_fingerprints.get(want.key)
    if desired_fingerprint and recorded and desired_fingerprint != recorded:
        fields.append(FieldChange("change", SECRETS_PATH, SENSITIVE, f"{SENSITIVE}: rotated"))
    elif desired_fingerprint and not recorded:
        notes.append(Diagnostic("", 0, 0, "RC105", f"{want.key}: its secrets were not set by reconciler, so whether they "
                                "match cannot be known; the next apply records them and detects rotations from then on",
                                severity="warning"))
    fingerprint = have.server.get("fingerprint")
    immutable = [f for f in fields if f.path.split(".")[0] in spec.immutable]
    if immutable:
        reason = f"{', '.join(sorted({f.path for f in immutable}))} cannot change in place; apply needs --allow-replace"
        return [Change(Action.REPLACE, want.key, before, after, tuple(fields), reason, fingerprint, origin=want.origin,
                       settings=settings_of(want))]
    if not fields:
        return [Change(Action.NOOP, want.key, before, after, (), "", fingerprint, origin=want.origin,
                       settings=settings_of(want))]
    reason = "secrets rotated" if [f.path for f in fields] == [SECRETS_PATH] else "differs from the manifest"
    out = [Change(Action.UPDATE, want.key, before, after, tuple(fields), reason, fingerprint, origin=want.origin,
                  settings=settings_of(want))]
    if _runs(want, "onUpdate"):
        out.append(Change(Action.RUN, want.key, None, None, reason="run.onUpdate", origin=want.origin))
    return out
