"""Export: the live tenant → one manifest file per object, recorded as managed (adoption).

Takes a client, the manifests folder and filters; returns an ``ExportReport``. The stage reads
the tenant the way a plan does (``fetch``, with every live object named, so that every app's
input contract and every legacy template is read), turns each live object into a manifest
document (``build``: pure), checks that a plan of those documents against the same live objects
changes nothing, then writes the files and records the objects in the state file the way an
apply of them would, so that the next plan is empty and nothing is ever created twice.

What it never does: read or write a secret (secret fields become ``${env:NAME}`` placeholders,
listed for the user; the API returns no secret anyway), guess what the API hides (an App's
schedules are written only where the state file knows them), or pick one of two live objects
that carry one name (both are reported, neither is exported). Only ``discover`` and ``fetch``
touch the network; files are written atomically, and the state file last, so a crash leaves
manifests without records (run export again), never records of objects no manifest declares.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler import kinds, manifests
from reconciler.client import ApiClient
from reconciler.defaults import API_KEY_ENV, PARALLELISM
from reconciler.engine import open_state
from reconciler.errors import ManifestError, ReconcilerError, UsageError
from reconciler.fetch import Live, fetch
from reconciler.files import shown_path, write_text_atomic
from reconciler.lock import state_lock
from reconciler.model import Resource, ResourceKey
from reconciler.plan import Action, Change, applied_digest, build_plan
from reconciler.state import DEFAULT_STATE_FILE, TenantState, recorded_digest, records_of
from reconciler.validate import Project, online_checks, project_file_from, validate

Progress = Callable[[str], None]


# -- what to export ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """Empty fields select everything. ``app_ids`` narrows the objects that have an ``appId``
    (apps); the other kinds are left to ``kind_names``."""

    kind_names: frozenset[str] = frozenset()
    name_prefixes: tuple[str, ...] = ()
    app_ids: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, kind_names: Iterable[str] = (), name_prefixes: Iterable[str] = (),
              app_ids: Iterable[str] = ()) -> Filters:
        """Kind names in any case (``app``, ``App``); an unknown one is a usage error."""
        exportable = {name.lower(): name for name in kinds.names() if kinds.get(name).exportable}
        chosen = set()
        for given in kind_names:
            if given.lower() not in exportable:
                raise UsageError(f"--kind {given!r} is not a kind export writes",
                                 hint=f"Choose from {', '.join(sorted(exportable.values()))}.")
            chosen.add(exportable[given.lower()])
        return cls(frozenset(chosen), tuple(name_prefixes), frozenset(app_ids))

    def selects(self, key: ResourceKey, specs: list[Mapping[str, Any]]) -> bool:
        """``specs``: what is known of the live object(s) under ``key`` (several for a name
        carried twice: selected when one of them is; none known: selected)."""
        if self.kind_names and key.kind not in self.kind_names:
            return False
        if self.name_prefixes and not any(key.name.startswith(p) for p in self.name_prefixes):
            return False
        if self.app_ids and specs:
            return any("appId" not in s or s.get("appId") in self.app_ids for s in specs)
        return True


# -- the result ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretVariable:
    """An environment variable a written manifest takes a secret from (its value is never known)."""

    name: str
    key: ResourceKey
    field: str


@dataclass
class Exported:
    """One live object as a manifest file (``path`` relative to the export folder) and the state
    record that adopts it."""

    key: ResourceKey
    path: Path
    text: str
    record: dict[str, Any]
    secrets: tuple[SecretVariable, ...] = ()
    unknown_schedules: bool = False
    not_converging: str = ""  # why a plan of it would not be empty (normally nothing)


@dataclass
class Export:
    """What ``build`` made of the live objects: the exported ones and those left out, with why."""

    objects: list[Exported] = field(default_factory=list)
    duplicates: dict[ResourceKey, list[str]] = field(default_factory=dict)  # name carried twice: identities
    refused: dict[ResourceKey, str] = field(default_factory=dict)  # cannot be a manifest: why
    left_alone: dict[ResourceKey, str] = field(default_factory=dict)  # declared already, or another project's: why
    unmatched_app_ids: tuple[str, ...] = ()


@dataclass
class ExportReport:
    out: Path
    export: Export
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    project_file: Path | None = None  # reconciler.yaml, when export wrote it
    state_file: Path = Path(DEFAULT_STATE_FILE)
    project_root: Path = Path(".")  # what plan and apply are given: the folder of reconciler.yaml

    def error(self) -> ReconcilerError | None:
        """What the exit code must say: live objects that were not exported and should have been."""
        export = self.export
        if not export.duplicates and not export.refused:
            return None
        parts = [f"{key} ({len(ids)} live objects: {', '.join(ids)})" for key, ids in sorted(export.duplicates.items())]
        parts += [f"{key} ({why})" for key, why in sorted(export.refused.items())]
        hints = []
        if export.duplicates:
            hints.append("Objects that share a name cannot be told apart: rename or delete all but one of each on the "
                         "tenant (in Atlan)")
        if export.refused:
            hints.append(f"{'f' if hints else 'F'}ix on the tenant what the reason of each other one says")
        return ReconcilerError(f"{len(parts)} live object name{'s were' if len(parts) != 1 else ' was'} not exported: "
                               + "; ".join(parts),
                               hint="; ".join(hints) + ", then export again (what was exported now is kept as it is).")


# -- pure: live objects → documents ----------------------------------------------------------------------


def _by_name(names: Mapping[str, Mapping[str, str]], kind: str, identity: str) -> str:
    """A referenced object's name where a manifest may use it: objects exported now or declared in
    the folder already, with exactly one live object of that name; else its id."""
    return names.get(kind, {}).get(identity, identity)


def folder_of(kind: str) -> str:
    """Where a kind's manifests go, as in specs/: apps/, credentials/, workflows/."""
    return f"{kind.lower()}s"


def variable_name(object_name: str, field_path: str, taken: set[str]) -> str:
    """RECONCILER_<NAME>_<FIELD> in upper snake case, made unique among ``taken`` (which it joins)
    and never one of the protected variables (the API key, the fingerprint key)."""
    base = re.sub(r"[^A-Za-z0-9]+", "_", f"RECONCILER_{object_name}_{field_path}").strip("_").upper()
    candidate, n = base, 1
    while candidate in taken or candidate in manifests.PROTECTED_VARIABLES or candidate == API_KEY_ENV:
        n += 1
        candidate = f"{base}_{n}"
    taken.add(candidate)
    return candidate


def _each_string(value: Any, change: Callable[[str], str]) -> Any:
    """A copy of ``value`` with ``change`` applied to every string in it."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {k: _each_string(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [_each_string(v, change) for v in value]
    return value


def escape_references(value: Any) -> Any:
    """Literal ``${`` in a value is written ``$${``, so that loading the manifest gives it back."""
    return _each_string(value, lambda text: text.replace("${", "$${"))


def _document(key: ResourceKey, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"apiVersion": kinds.API_VERSION, "kind": key.kind, "metadata": {"name": key.name}, "spec": dict(spec)}


def _schema_errors(key: ResourceKey, document: Mapping[str, Any]) -> list[Any]:
    return sorted(kinds.validator(key.kind).iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])


def _fitted(key: ResourceKey, spec: dict[str, Any], optional: Iterable[str]) -> tuple[dict[str, Any], str | None]:
    """The document, and why it cannot be a manifest (None: it can). Optional paths the schema
    refuses are left out first."""
    document = _document(key, spec)
    errors = _schema_errors(key, document)
    for path in optional:
        parts = ["spec", *path.split(".")]
        if not any([str(p) for p in e.absolute_path][:len(parts)] == parts for e in errors):
            continue
        holder: Any = document
        for part in parts[:-1]:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if isinstance(holder, dict):
            holder.pop(parts[-1], None)
            errors = _schema_errors(key, document)
    if not errors:
        return document, None
    first = errors[0]
    where = ".".join(str(p) for p in first.absolute_path) or "the document"
    return document, f"it cannot be written as a manifest: {where}: {first.message}"


def render_manifest(document: Mapping[str, Any], comments: Iterable[str] = ()) -> str:
    head = ["# Exported from the tenant by `reconciler export`.", *(f"# {c}" for c in comments)]
    body = yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True, default_flow_style=False, width=4096)
    return "\n".join(head) + "\n" + body


def build(live: Live, filters: Filters = Filters(), *, records: Mapping[str, Mapping[str, Any]] | None = None,
          discovered: Iterable[Resource] = (), others: Iterable[ResourceKey] = (),
          declared: Mapping[ResourceKey, str] | None = None) -> Export:
    """Every selected live object as a manifest document and the record that adopts it.

    ``records``: this project's state records of the tenant ("Kind/name"); ``discovered``: what
    discovery saw of each live object (to filter names carried twice, which fetch sets aside);
    ``others``: objects another project sharing the state file manages (never claimed here);
    ``declared``: objects declared already in the folder, outside the file export would write
    (left as they are)."""
    records = records or {}
    declared = declared or {}
    others = set(others)
    seen_specs: dict[ResourceKey, list[Mapping[str, Any]]] = {}
    for stub in discovered:
        seen_specs.setdefault(stub.key, []).append(stub.spec)
    result = Export()
    for key, ids in sorted(live.ambiguous.items()):
        if kinds.get(key.kind).exportable and filters.selects(key, seen_specs.get(key, [])):
            result.duplicates[key] = list(ids)
    names: dict[str, dict[str, str]] = {}  # kind -> id -> name, for references written by name
    taken: set[str] = set()
    for kind in kinds.by_rank():
        if not kind.exportable:
            continue
        for key in sorted(k for k in live.state if k.kind == kind.kind):
            resource = live.state[key]
            identity = str(resource.server.get("id"))
            path = Path(folder_of(kind.kind)) / f"{key.name}.yaml"
            if key in declared:
                names.setdefault(kind.kind, {})[identity] = key.name  # referable by name: it is declared
            if not filters.selects(key, [resource.spec]):
                continue
            if key in others:
                result.left_alone[key] = "another project sharing the state file manages it"
                continue
            if key in declared and declared[key] != path.as_posix():
                result.left_alone[key] = f"declared already in {declared[key]}"
                continue
            record = dict(records.get(str(key)) or {})
            spec = escape_references(kind.export_spec(resource, live.context, functools.partial(_by_name, names), record))
            secrets = tuple(SecretVariable(variable_name(key.name, p, taken), key, p) for p in kind.secret_paths)
            spec.update({s.field: f"${{env:{s.name}}}" for s in secrets})
            for public, _ in kind.secret_twins:
                if public in spec:
                    spec[public] = spec.pop(public)  # the settings map after the secrets, as people write it
            document, problem = _fitted(key, spec, kind.export_optional)
            if problem is not None:
                for secret in secrets:
                    taken.discard(secret.name)
                result.refused[key] = problem
                continue
            comments = []
            if secrets:
                comments.append("Secrets are write-only (the tenant never returns them): set "
                                + ", ".join(s.name for s in secrets) + " where plan and apply run.")
            unknown = kind.schedule_list is not None and resource.spec.get(kind.schedule_list) is None
            if unknown:
                comments.append("Schedules are left out: the API does not show attached schedules and the state file "
                                "has no record of them. Declare them to manage them (see the README, Export).")
            names.setdefault(kind.kind, {})[identity] = key.name
            result.objects.append(Exported(key, path, render_manifest(document, comments),
                                           _clean(kind.export_record(resource, record)), secrets, unknown))
    if filters.app_ids:
        matched = {s.get("appId") for specs in seen_specs.values() for s in specs}
        matched |= {r.spec.get("appId") for r in live.state.values()}
        result.unmatched_app_ids = tuple(sorted(filters.app_ids - matched))
    return result


def _clean(record: Mapping[str, Any]) -> dict[str, Any]:
    """As apply writes records: no None values."""
    return {k: v for k, v in record.items() if v is not None}


def desired_state(export: Export) -> dict[ResourceKey, Resource]:
    """The exported documents as a plan would read them back (references substituted, secrets
    kept as their ``${env:NAME}``)."""
    out = {}
    for item in export.objects:
        document = yaml.safe_load(item.text)
        spec = _unescape(document["spec"])
        for secret in item.secrets:
            spec[secret.field] = f"${{env:{secret.name}}}"
        out[item.key] = Resource(item.key, spec, metadata=document["metadata"])
    return out


def _unescape(value: Any) -> Any:
    return _each_string(value, lambda text: text.replace("$${", "${"))


def verify(export: Export, live: Live, records: Mapping[str, Mapping[str, Any]], tenant: str = "",
           now: str | None = None, digest_key: bytes = b"") -> None:
    """Plan the exported documents against the same live objects, with their new records: each
    must be a no-op (what `reconciler plan` will say). Adds to each record what apply records of
    an unchanged object (the digest drift compares with, see ``drift``), and says why where a
    plan would not be empty. An object the tenant's own checks reject (an app id it does not
    know, inputs its contract refuses) is not exported: its manifest would make every plan fail."""
    desired = desired_state(export)
    rejected = {key: d.message.removeprefix(f"{key}: ") for key, d in online_checks(desired, live.context) if d.is_error}
    for item in [o for o in export.objects if o.key in rejected]:
        export.objects.remove(item)
        export.refused[item.key] = f"the tenant's checks reject it: {rejected[item.key]}"
        del desired[item.key]
    adopted = {**{k: dict(v) for k, v in records.items()}, **{str(o.key): o.record for o in export.objects}}
    the_plan = build_plan(desired, live.state, live.context, records=records_of(TenantState(adopted), digest_key=digest_key),
                          ambiguous=live.ambiguous, tenant=tenant)
    changes: dict[ResourceKey, list[Change]] = {}
    for change in the_plan.changes:
        changes.setdefault(change.key, []).append(change)
    at = now or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for item in export.objects:
        found = changes.get(item.key, [])
        if [c.action for c in found] != [Action.NOOP]:
            item.not_converging = "; ".join(f"{c.action.value}: {c.reason or ', '.join(f.path for f in c.fields)}"
                                            for c in found if c.action is not Action.NOOP) or "it is left out of the plan"
        else:
            fields = applied_digest(found[0], digest_key)
            if recorded_digest(item.record) != fields:
                item.record["applied"] = {"fields": fields, "at": at}


# -- the folder and the tenant ------------------------------------------------------------------------------


def project_name(out: Path) -> str:
    """A project name (the manifest name rules) from the folder's name."""
    name = re.sub(r"[^a-z0-9._-]+", "-", Path(os.path.abspath(out)).name.lower()).strip("._-")[:100].strip("._-")
    return name or "tenant"


def project_text(name: str) -> str:
    return (f"# Project settings of manifests exported from the tenant by `reconciler export`. The state file\n"
            f"# ({DEFAULT_STATE_FILE}, beside this file) records the exported objects as managed: commit it too.\n"
            f"apiVersion: {kinds.API_VERSION}\n"
            f"kind: {kinds.PROJECT_KIND}\n"
            f"metadata:\n  name: {name}\n"
            f"spec:\n  parallelism: {PARALLELISM}\n"
            "  # Live objects whose names start with one of these prefixes belong to this project, and\n"
            "  # apply --prune may delete them once their manifest is gone:\n"
            "  # ownership:\n  #   namePrefixes: [\"dp-\"]\n")


def read_project(out: Path) -> Project:
    """The project the folder is part of (its reconciler.yaml, refused when it is wrong), or the
    one the reconciler.yaml export writes into the folder makes."""
    project_file = project_file_from(out)
    if project_file is not None:
        result = validate([str(project_file)], allow_missing_secrets=True)
        shown = manifests.display_path(project_file)
        problems = [d for d in result.errors if d.file == shown]  # variables files are not export's business
        if problems:
            raise ManifestError(problems)
        return result.project
    root = Path(os.path.abspath(out))
    return Project(root=root, name=project_name(out), state_file=root / DEFAULT_STATE_FILE)


def declared_in(root: Path, out: Path) -> dict[ResourceKey, str]:
    """The objects the project's manifests (under ``root``) declare already, with their files
    (relative to ``out``)."""
    if not root.is_dir():
        return {}
    _, documents, _ = manifests.load([str(root)])
    found: dict[ResourceKey, str] = {}
    for doc in documents:
        data = doc.data if isinstance(doc.data, dict) else {}
        name = (data.get("metadata") or {}).get("name") if isinstance(data.get("metadata"), dict) else None
        if kinds.known(data.get("kind")) and isinstance(name, str):
            relative = Path(os.path.relpath(os.path.abspath(doc.file), os.path.abspath(out))).as_posix()
            found.setdefault(ResourceKey(str(data["kind"]), name), relative)
    return found


def discover(client: ApiClient, filters: Filters) -> list[Resource]:
    """Every live object of the kinds whose fetch reads only the objects it is told about."""
    found: list[Resource] = []
    for kind in kinds.by_rank():
        if kind.exportable and (not filters.kind_names or kind.kind in filters.kind_names):
            found.extend(kind.discover(client) or ())
    return found


def export(client: ApiClient, out: Path, *, tenant_id: str, filters: Filters = Filters(), force: bool = False,
           lock_timeout: float = 0.0, parallelism: int | None = None, digest_key: bytes = b"",
           progress: Progress = lambda _message: None) -> ExportReport:
    """Read the tenant, write the manifests into ``out`` and record them in the project's state
    file, under its lock (one commit adopts them). Refuses, writing nothing, when a manifest
    file it would write exists with other content (unless ``force``)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is not a folder", hint="Give a folder (created if missing).")
    project = read_project(out)
    with state_lock(project.state_file, lock_timeout):
        state = open_state(project)  # as apply opens it: read under the lock
        tenant = state.tenant(tenant_id)
        progress(f"Reading the tenant {tenant_id} …")
        discovered = discover(client, filters)
        live = fetch(client, {r.key: r for r in discovered}, recorded=tenant.resources,
                     parallelism=parallelism or project.parallelism)
        counts = ", ".join(f"{n} {k}" for k, n in sorted(_count(live).items()))
        progress(f"Read {counts or 'nothing'}; writing manifests into {shown_path(out)} …")
        result = build(live, filters, records=tenant.resources, discovered=discovered,
                       others=state.recorded_by_others(tenant_id), declared=declared_in(project.root, out))
        verify(result, live, tenant.resources, tenant_id, digest_key=digest_key)
        report = ExportReport(out, result, state_file=state.path, project_root=project.root)
        different = [item.path.as_posix() for item in result.objects
                     if (out / item.path).exists() and _read(out / item.path) != item.text]
        if different and not force:
            raise ReconcilerError(f"{len(different)} manifest file{'s' if len(different) != 1 else ''} in {shown_path(out)} "
                                  f"differ{'s' if len(different) == 1 else ''} from the tenant: {', '.join(different)}; "
                                  "nothing was written",
                                  hint="Export into an empty folder, or pass --force to overwrite them.")
        for item in result.objects:
            target = out / item.path
            if target.exists() and _read(target) == item.text:
                report.unchanged.append(item.path)
            else:
                write_text_atomic(target, item.text)
                report.written.append(item.path)
        if project.file is None:
            project_file = out / kinds.PROJECT_FILE
            write_text_atomic(project_file, project_text(project.name))
            report.project_file = project_file
        for item in result.objects:  # last: records never name an object no manifest declares
            tenant.resources[str(item.key)] = item.record
        if result.objects:
            state.save()
    return report


def _count(live: Live) -> dict[str, int]:
    out: dict[str, int] = {}
    for key in [*live.state, *live.ambiguous]:
        label = folder_of(key.kind)
        out[label] = out.get(label, 0) + 1
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


# -- what the user reads -------------------------------------------------------------------------------------
