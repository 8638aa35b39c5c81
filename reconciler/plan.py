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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler import drift, kinds
from reconciler.diff import FieldChange, field_changes, masked
from reconciler.errors import Diagnostic
from reconciler.model import Resource, ResourceKey, SourceRef, State
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
class ApplySettings:
    """What apply needs from the manifest beyond the compared fields. Secrets appear only as their
    ``${env:NAME}`` references, never as values."""

    secret_refs: Mapping[str, str] = field(default_factory=dict)  # spec path -> ${env:NAME}
    prevent_destroy: bool = False
    connection_qualified_name: str | None = None  # the connection to reuse (App)
    connector: str | None = None  # the connector of a connection to mint (App; None: from appId)
    entrypoint: str | None = None  # as declared (App; None: the app's default)
    credential_guid: str | None = None  # a credentialRef given as a guid: sent as given (App)
    ignored: tuple[str, ...] = ()  # ignoreDifferences: not compared, so not recorded as applied (drift)

    def to_dict(self) -> dict[str, Any]:
        """Only what is set, so that a plan file says no more than it must."""
        out: dict[str, Any] = {}
        if self.secret_refs:
            out["secret_refs"] = dict(self.secret_refs)
        if self.prevent_destroy:
            out["prevent_destroy"] = True
        if self.connection_qualified_name:
            out["connection_qualified_name"] = self.connection_qualified_name
        if self.connector:
            out["connector"] = self.connector
        if self.entrypoint is not None:
            out["entrypoint"] = self.entrypoint
        if self.credential_guid:
            out["credential_guid"] = self.credential_guid
        if self.ignored:
            out["ignored"] = list(self.ignored)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ApplySettings:
        if not isinstance(data, Mapping):
            raise ValueError("a change's settings must be a mapping")
        refs = data.get("secret_refs") or {}
        if not isinstance(refs, Mapping):
            raise ValueError("settings.secret_refs must be a mapping")
        ignored = data.get("ignored") or ()
        if not isinstance(ignored, (list, tuple)):
            raise ValueError("settings.ignored must be a list")
        return cls(secret_refs={str(k): str(v) for k, v in refs.items()},
                   prevent_destroy=bool(data.get("prevent_destroy", False)),
                   connection_qualified_name=_optional_str(data.get("connection_qualified_name")),
                   connector=_optional_str(data.get("connector")),
                   entrypoint=_optional_str(data.get("entrypoint")),
                   credential_guid=_optional_str(data.get("credential_guid")),
                   ignored=tuple(str(p) for p in ignored))


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Change:
    """One action on one object. ``before`` is the canonical live object (none for a create),
    ``after`` the canonical desired one (none for a delete); neither holds a secret. Whether a
    delete waits for --prune is the plan's ``prune``, not the change's."""

    action: Action
    key: ResourceKey
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    fields: tuple[FieldChange, ...] = ()
    reason: str = ""
    fingerprint: str | None = None  # of the live object the change was computed from
    origin: SourceRef = SourceRef()  # where the manifest is
    settings: ApplySettings = ApplySettings()
    drift: tuple[str, ...] = ()  # who moved since the last apply: classes of ``drift``, most urgent first
    # A create's digest of the object as the tenant will hold it (contract defaults filled in):
    # what apply records for drift (see ``applied_digest``). None for other actions.
    baseline: Mapping[str, Any] | None = None

    def to_dict(self, *, prune: bool) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "kind": self.key.kind,
            "name": self.key.name,
            "before": self.before,
            "after": self.after,
            "fields": [f.to_dict() for f in self.fields],
            "reason": self.reason,
            "fingerprint": self.fingerprint,
            "needs_prune": self.action is Action.DELETE and not prune,
            "origin": str(self.origin),
            "settings": self.settings.to_dict(),
            "drift": list(self.drift),
            "baseline": None if self.baseline is None else dict(self.baseline),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:
        return cls(
            action=Action(data["action"]),
            key=ResourceKey(data["kind"], data["name"]),
            before=data.get("before"),
            after=data.get("after"),
            fields=tuple(FieldChange.from_dict(f) for f in data.get("fields") or ()),
            reason=data.get("reason", ""),
            fingerprint=data.get("fingerprint"),
            origin=SourceRef.parse(data.get("origin", "")),
            settings=ApplySettings.from_dict(data.get("settings") or {}),
            drift=tuple(str(c) for c in data.get("drift") or ()),
            baseline=_baseline(data.get("baseline")),
        )


def _baseline(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError("a change's baseline must be a mapping of fields to hashes")
    return {str(k): {str(s): str(h) for s, h in v.items()} if isinstance(v, Mapping) else str(v) for k, v in value.items()}


def compared_whole(kind: kinds.Kind) -> tuple[str, ...]:
    """The top-level fields of a kind that are compared as a whole (its schedules)."""
    return tuple(name for name in (kind.schedule_list, kind.schedule_single) if name)


def applied_digest(change: Change, key: bytes) -> dict[str, Any]:
    """What apply records once a change is applied: the digest of each compared field of the
    object as it now is on both sides (see ``drift``)."""
    if change.baseline is not None:
        return dict(change.baseline)
    return drift.not_compared(drift.digest(change.after or {}, compared_whole(kinds.get(change.key.kind)), key),
                              change.settings.ignored)


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    tenant: str = ""
    created_at: str = ""
    prune: bool = False  # the one truth of prune: without it, every delete is a candidate only
    targets: tuple[str, ...] = ()
    unmanaged: Mapping[str, int] = field(default_factory=dict)  # live objects not ours, per kind
    diagnostics: tuple[Diagnostic, ...] = ()
    state_file: str = ""  # where apply records what it did
    project: str = ""  # the manifests folder the plan was made from (its reconciler.yaml rules apply)
    adopt_schedules: bool = False  # attach declared schedules even where the tenant's are unknown
    project_name: str = ""  # metadata.name of reconciler.yaml
    state_serial: str = ""  # digest of the project's records the plan was made from
    # Objects applied once, deleted on the tenant since, that reconciler cannot create (a Workflow's
    # template): nothing to plan, but drift reports them as missing.
    missing: tuple[str, ...] = ()
    format_version: int = PLAN_FORMAT_VERSION

    def waits_for_prune(self, change: Change) -> bool:
        """A delete this plan only proposes: apply performs it only from a plan made with --prune."""
        return change.action is Action.DELETE and not self.prune

    def counts(self) -> dict[str, int]:
        """Changes per action; deletes that wait for --prune are "delete_candidates", not deletes."""
        out = {a.value: 0 for a in Action}
        out[DELETE_CANDIDATES] = 0
        for change in self.changes:
            out[DELETE_CANDIDATES if self.waits_for_prune(change) else change.action.value] += 1
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
            "changes": [c.to_dict(prune=self.prune) for c in self.changes],
            "unmanaged": dict(self.unmanaged),
            "state_file": self.state_file,
            "project": self.project,
            "adopt_schedules": self.adopt_schedules,
            "project_name": self.project_name,
            "state_serial": self.state_serial,
            "missing": list(self.missing),
            "diagnostics": [d.to_dict() for d in self.diagnostics],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
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
            missing=tuple(str(k) for k in data.get("missing") or ()),
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
    # Per object, the digest of each compared field at its last apply (see ``drift``), and its key.
    applied: Mapping[ResourceKey, Mapping[str, Any]] = field(default_factory=dict)
    digest_key: bytes = b""


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
    unmanaged: dict[str, int] = {}
    for key, ids in sorted((ambiguous or {}).items()):
        ids = list(ids)
        if key not in desired and not _managed(key, records, owned_prefixes):
            unmanaged[key.kind] = unmanaged.get(key.kind, 0) + len(ids)  # not ours: a shared name is not our problem
            continue
        notes.append(Diagnostic.at(_origin(desired, key), "RC101",
                                   f"{key} is ambiguous: {len(ids)} live objects have this name ({', '.join(ids)}); "
                                   "it is left out of the plan", column=1,
                                   hint="Delete or rename the duplicates on the tenant."))
    skip = set(ambiguous or {}) | set(excluded)
    changes: list[Change] = []
    missing: list[ResourceKey] = []
    for kind in kinds.by_rank():
        names = {k for k in (*desired, *live) if k.kind == kind.kind} - skip
        for key in sorted(names):
            if targets and key not in targets:
                continue
            want, have = desired.get(key), live.get(key)
            if want is not None and have is None and not kind.creatable and key in records.applied:
                missing.append(key)  # applied once, deleted on the tenant since: drift's to report
                notes.append(Diagnostic.at(want.origin, "RC114", f"{key} was deleted on the tenant since the last apply, "
                                           f"and reconciler does not create {kind.kind} objects", column=1, severity="warning",
                                           hint="Re-create it in Atlan (then declare its new name), or remove its manifest."))
            elif want is not None and have is None:
                changes.extend(_create(want, kind, ctx, records, notes))
            elif want is None and have is not None:
                if not kind.deletable:
                    continue  # no longer managed; nothing to do on the tenant
                if _managed(key, records, owned_prefixes):
                    change = _delete(have, ctx, records, prune, notes)
                    if change is not None:
                        changes.append(change)
                else:
                    unmanaged[kind.kind] = unmanaged.get(kind.kind, 0) + 1
            elif want is not None and have is not None:
                fingerprint = (desired_fingerprints or {}).get(key)
                if not adopt_schedules:
                    want = _without_unknowable_schedules(want, have, kind, notes)
                compared = _compare(want, have, kind, ctx, records, fingerprint, notes)
                if key in records.pending_runs and not any(c.action is Action.RUN for c in compared):
                    compared.append(Change(Action.RUN, key, origin=want.origin,
                                           reason="a run was owed and never submitted: the apply that owed it stopped",
                                           drift=(drift.NOT_YET_APPLIED,)))
                changes.extend(compared)
    created = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Plan(changes=tuple(changes), tenant=tenant, created_at=created, prune=prune,
                targets=tuple(str(t) for t in targets), unmanaged=unmanaged, diagnostics=tuple(sorted(notes)),
                state_file=state_file, project=project, adopt_schedules=adopt_schedules, project_name=project_name,
                state_serial=records.serial, missing=tuple(str(k) for k in missing))


def _origin(desired: State, key: ResourceKey) -> SourceRef:
    return desired[key].origin if key in desired else SourceRef()


def _meaningful_prefixes(prefixes: tuple[str, ...], desired: State, live: State, records: Records, project_file: str,
                         notes: list[Diagnostic]) -> tuple[str, ...]:
    """The ownership prefixes that claim this project's objects, not the tenant's: a prefix that
    matches more than half of the live objects this project neither declares nor recorded is
    refused (an error, and it claims nothing)."""
    others = [k for k in live if k not in desired and k not in records.managed and kinds.get(k.kind).deletable]
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
        for intent in intents:
            if intent.get("action") == "schedule":
                what = (f"a schedule {intent.get('cron')!r} ({intent.get('timezone')}) may have been attached at "
                        f"{intent.get('at')}, but the answer was lost; it is not attached again until you settle it")
                hint = (f"If the tenant shows it, run `reconciler state resolve {key} --intent {intent.get('id')} "
                        f"--attached TRIGGER_ID`; if not, `... --absent`.")
            else:
                what = f"a run may have been submitted at {intent.get('at')}, but the answer was lost"
                hint = (f"Check its runs in Atlan, then `reconciler state resolve {key} --intent {intent.get('id')} "
                        "--absent`.")
            notes.append(Diagnostic.at(_origin(desired, key), "RC107", f"{key}: {what}", severity="warning", hint=hint))
    return notes


def _without_unknowable_schedules(want: Resource, have: Resource, kind: kinds.Kind, notes: list[Diagnostic]) -> Resource:
    name = kind.schedule_list
    if not name or want.spec.get(name) is None or have.spec.get(name) is not None:
        return want
    notes.append(Diagnostic.at(want.origin, "RC108",
                               f"{want.key}: its schedules cannot be verified: the API does not return attached schedules "
                               "and the state file has no record of this app, so apply will not attach them (that could "
                               "double every trigger)", f"spec.{name}", severity="warning",
                               hint="If the app has no schedules on the tenant (or none that matter), apply once with "
                                    "--adopt-schedules; the triggers are recorded from then on."))
    return Resource(key=want.key, spec={k: v for k, v in want.spec.items() if k != name}, origin=want.origin,
                    metadata=want.metadata, server=want.server)


def _managed(key: ResourceKey, records: Records, owned_prefixes: tuple[str, ...]) -> bool:
    if key in records.managed:
        return True
    return key not in records.others and any(key.name.startswith(p) for p in owned_prefixes)


def runs_after(want: Resource, when: str) -> bool:
    """Whether a manifest asks for a run after a change (``when``: onCreate or onUpdate)."""
    return bool((want.spec.get("run") or {}).get(when))


def _create(want: Resource, kind: kinds.Kind, ctx: Context, records: Records, notes: list[Diagnostic]) -> list[Change]:
    if not kind.creatable:
        refused = kind.not_creatable(want)
        if refused is not None:
            notes.append(refused)
        return []
    after = canonical(want, as_declared(ctx))
    # Drift compares later plans with the object as the tenant will hold it: defaults filled in.
    settings = kind.settings(want)
    held, _ = masked(canonical(want, ctx), {}, kind.declared_only, settings.ignored)
    gone = want.key in records.applied  # an apply (or an export) recorded it as it was there
    out = [Change(Action.CREATE, want.key, None, after, origin=want.origin, settings=settings,
                  reason="deleted on the tenant since the last apply" if gone else "not on the tenant",
                  drift=(drift.MISSING_ON_TENANT if gone else drift.NOT_YET_APPLIED,),
                  baseline=drift.not_compared(drift.digest(held, compared_whole(kind), records.digest_key), settings.ignored))]
    if runs_after(want, "onCreate"):
        out.append(Change(Action.RUN, want.key, reason="run.onCreate", origin=want.origin))
    return out


def _delete(have: Resource, ctx: Context, records: Records, prune: bool, notes: list[Diagnostic]) -> Change | None:
    if have.key in records.prevent_destroy:
        notes.append(Diagnostic("", 0, 0, "RC103", f"{have.key} is no longer declared, but preventDestroy was recorded for it; "
                                "it will not be deleted", severity="warning",
                                hint="Delete it in Atlan yourself, or declare it again."))
        return None
    reason = "no longer declared" + ("" if prune else "; apply deletes it only with --prune")
    cause = drift.NOT_YET_APPLIED if have.key in records.managed else drift.UNMANAGED_IN_SCOPE
    return Change(Action.DELETE, have.key, canonical(have, ctx), None, reason=reason,
                  fingerprint=have.server.get("fingerprint"), drift=(cause,))


def _secrets_in_clear(want: Resource, have: Resource, kind: kinds.Kind, notes: list[Diagnostic]) -> Resource:
    """A secret map entry (``secretExtra.k``) the tenant keeps in clear comes back in the public
    map (``extra.k``): not compared (it would differ forever), masked in output, and said once."""
    clear = []
    live = dict(have.spec)
    for public, secret in kind.secret_twins:
        declared = set(want.spec.get(secret) or {})
        shown = dict(live.get(public) or {})
        clear += [f"{secret}.{k}" for k in sorted(declared & set(shown))]
        live[public] = {k: v for k, v in shown.items() if k not in declared}
    if not clear:
        return have
    notes.append(Diagnostic.at(want.origin, "RC113",
                               f"{want.key}: the tenant returns {', '.join(clear)} in clear: it does not treat "
                               f"{'it' if len(clear) == 1 else 'them'} as secret; never compared, masked in every output",
                               severity="warning", hint="Check the connector's secret fields; rotate the value if the "
                                                        "credential's readers should not see it."))
    return Resource(key=have.key, spec=live, origin=have.origin, metadata=have.metadata, server=have.server)


def _compare(want: Resource, have: Resource, kind: kinds.Kind, ctx: Context, records: Records,
             desired_fingerprint: str | None, notes: list[Diagnostic]) -> list[Change]:
    have = _secrets_in_clear(want, have, kind, notes)
    ignore = want.spec.get("ignoreDifferences") or ()
    after, before = masked(canonical(want, ctx), canonical(have, ctx), kind.declared_only, ignore)
    atomic = compared_whole(kind)
    applied = records.applied.get(want.key)
    fields = [replace(f, cause=drift.classify(f, before, after, applied, atomic, records.digest_key, kind.declared_only))
              for f in field_changes(before, after, atomic)]
    moved, moved_reason = kind.tenant_moved(want, have)
    moved = [replace(f, cause=drift.STALE_SCHEDULE) for f in moved
             if not any(f.path == p or f.path.startswith(p + ".") for p in ignore)]
    fields += moved
    recorded = records.secret_fingerprints.get(want.key)
    if desired_fingerprint and recorded and desired_fingerprint != recorded:
        fields.append(FieldChange("change", SECRETS_PATH, SENSITIVE, f"{SENSITIVE}: rotated", cause=drift.SECRET_ROTATED))
    elif desired_fingerprint and not recorded:
        notes.append(Diagnostic("", 0, 0, "RC105", f"{want.key}: its secrets were not set by reconciler, so whether they "
                                "match cannot be known; the next apply records them and detects rotations from then on",
                                severity="warning"))
    fingerprint = have.server.get("fingerprint")
    settings = kind.settings(want)
    causes = drift.sort_classes(f.cause for f in fields if f.cause)
    immutable = [f for f in fields if f.path.split(".")[0] in kind.immutable]
    if immutable:
        reason = f"{', '.join(sorted({f.path for f in immutable}))} cannot change in place; apply needs --allow-replace"
        return [Change(Action.REPLACE, want.key, before, after, tuple(fields), reason, fingerprint, want.origin, settings,
                       causes)]
    if not fields:
        return [Change(Action.NOOP, want.key, before, after, (), "", fingerprint, want.origin, settings)]
    only_moved = len(fields) == len(moved)  # nothing the manifest changed: no run is owed for it
    if [f.path for f in fields] == [SECRETS_PATH]:
        reason = "secrets rotated"
    elif only_moved:
        reason = moved_reason
    elif drift.CHANGED_ON_TENANT in causes and set(causes) <= {drift.CHANGED_ON_TENANT, drift.STALE_SCHEDULE}:
        version = have.server.get("version")
        reason = drift.DESCRIPTION[drift.CHANGED_ON_TENANT] + (f" (now version {version})" if version is not None else "")
    else:
        reason = "differs from the manifest"
    out = [Change(Action.UPDATE, want.key, before, after, tuple(fields), reason, fingerprint, want.origin, settings,
                  causes)]
    if runs_after(want, "onUpdate") and not only_moved:
        out.append(Change(Action.RUN, want.key, reason="run.onUpdate", origin=want.origin))
    return out
