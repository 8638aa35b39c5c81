"""The kinds registry: one row per kind, and the interface every stage calls a kind through.

A kind is one module (``app.py``, ``credential.py``, ``workflow.py``, like decK's one file per
entity) holding one ``Kind`` subclass: its facts (schema, secret and immutable paths, dependency
rank; every kind is identified by ``metadata.name``) and the steps that vary by kind: live object → ``Resource``
(``fetch``), canonical form (``canonical``), what apply needs from a manifest (``settings``), the
tenant-side checks (``online_problems``), and its apply handlers (``apply``, ``delete``,
``submit_run``, ``depends_on``), and how a live object is adopted (``export_spec``,
``export_record``, ``discover``). The stages never branch on a kind's name.

Adding a kind is one new module and one row in ``REGISTRY``; ``register`` adds one at run time
(the tests register a throw-away kind that way). The kind modules are loaded on first use, so
that this module stays importable by the pure stages.

This module itself is pure: no network, no CLI.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeGuard

from reconciler.errors import Diagnostic, ReconcilerError
from reconciler.model import Resource, ResourceKey, State

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

    from reconciler.apply import Applier
    from reconciler.client import ApiClient
    from reconciler.diff import FieldChange
    from reconciler.normalize import Context
    from reconciler.outcomes import Outcome, RunState
    from reconciler.plan import ApplySettings, Change

API_VERSION = "reconciler/v1"
PROJECT_KIND = "Project"
PROJECT_FILE = "reconciler.yaml"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)  # how the tenant's ids look

# The registry: kind name → the module that defines it (its ``KIND``). Ranks order the stages.
REGISTRY: dict[str, str] = {
    "Credential": "reconciler.kinds.credential",
    "App": "reconciler.kinds.app",
    "Workflow": "reconciler.kinds.workflow",
}


@dataclass(frozen=True)
class FetchScope:
    """What a kind's fetch may look at: the desired State and the state file's records of this
    tenant (keyed "Kind/name")."""

    desired: State
    recorded: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def declared(self, kind: str) -> dict[str, Resource]:
        return {k.name: r for k, r in self.desired.items() if k.kind == kind}

    def records(self, kind: str) -> dict[str, Mapping[str, Any]]:
        prefix = f"{kind}/"
        return {k[len(prefix):]: r for k, r in self.recorded.items() if k.startswith(prefix)}


@dataclass
class Fetched:
    """A kind's share of the live State: each object with the identity that tells duplicates
    apart (slug, guid, uid), and what it adds to the normalization context (fields of
    ``normalize.Context``)."""

    objects: list[tuple[Resource, str]] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)


class NotDeletable(ReconcilerError):
    """A kind whose objects reconciler never deletes was asked to delete one."""


class Kind:
    """The facts and steps of one kind. Subclasses set the facts and override the steps."""

    kind: str = ""
    schema_file: str = ""  # in reconciler/schemas/ (and the repository's schemas/)
    schema: Mapping[str, Any] | None = None  # or the schema itself, for a kind shipped without a file
    rank: int = 0  # dependency order: lower ranks are created first and deleted last
    # Paths under `spec` whose values are secrets: write-only, given as ${env:NAME}, never shown.
    secret_paths: tuple[str, ...] = ()
    # Mappings under `spec` whose every value is a secret.
    secret_maps: tuple[str, ...] = ()
    # (plain map, its secret twin): secret-looking keys of the plain one belong in the twin.
    secret_twins: tuple[tuple[str, str], ...] = ()
    # Fields whose change cannot be applied in place (the object must be replaced).
    immutable: tuple[str, ...] = ()
    # spec field -> kind it names (a reference that must resolve).
    references: tuple[tuple[str, str], ...] = ()
    # Where schedules live under spec: a list of {cron, timezone} (which the API may hide: then
    # they can be unknown), or a single one.
    schedule_list: str | None = None
    schedule_single: str | None = None
    # At least one of these spec fields must be set for the document to do anything.
    needs_one_of: tuple[str, ...] = ()
    # False: reconciler never creates one (it manages existing objects only).
    creatable: bool = True
    # False: a manifest removed means "stop managing it", never a delete on the tenant.
    deletable: bool = True
    # Canonical paths compared only when the manifest declares them (``a.*``: only the keys of
    # map ``a`` that the manifest names). Leaving them out leaves the live value alone.
    declared_only: tuple[str, ...] = ()
    # What the tenant's API cannot show of this kind, said once in a drift report ("" if nothing).
    unseen: str = ""

    # Spec paths left out of an exported manifest when the schema refuses the live value.
    export_optional: tuple[str, ...] = ()

    # -- fetch ---------------------------------------------------------------------------------------

    def fetch(self, client: ApiClient, scope: FetchScope, pool: Executor) -> Callable[[], Fetched]:
        """Start reading this kind's live objects on ``pool``; the callable returned waits for them."""
        raise NotImplementedError

    def stub(self, key: ResourceKey, change: Change) -> Resource:
        """What a saved plan's change tells the fetch about the object, to read it again."""
        return Resource(key=key, spec={})

    # -- normalize and plan ------------------------------------------------------------------------------

    def canonical(self, spec: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
        """The compared form: it names the fields it keeps, so whatever the server owns (ids,
        versions, timestamps, runtime keys) never reaches the diff."""
        raise NotImplementedError

    def settings(self, want: Resource) -> ApplySettings:
        """The manifest's settings apply needs and the diff does not compare. Secret fields hold
        their ``${env:NAME}`` reference, never a value."""
        from reconciler.plan import ApplySettings

        return ApplySettings(secret_refs=self.secret_refs(want.spec),
                             prevent_destroy=bool((want.spec.get("lifecycle") or {}).get("preventDestroy")),
                             ignored=tuple(str(p) for p in want.spec.get("ignoreDifferences") or ()))

    def secret_refs(self, spec: Mapping[str, Any]) -> dict[str, str]:
        refs = {name: str(spec[name]) for name in self.secret_paths if name in spec}
        for mapping in self.secret_maps:
            refs.update({f"{mapping}.{k}": str(v) for k, v in (spec.get(mapping) or {}).items()})
        return refs

    def tenant_moved(self, want: Resource, have: Resource) -> tuple[list[FieldChange], str]:
        """What moved on the tenant that the canonical forms cannot show, as field changes apply
        acts on (an update), and the reason to give when they are all there is."""
        return [], ""

    def not_creatable(self, want: Resource) -> Diagnostic | None:
        """Why a declared object missing on the tenant cannot be created (None: it can)."""
        return None

    def online_problems(self, want: Resource, ctx: Context) -> list[Diagnostic]:
        """What only the tenant can tell about a declared object (errors leave it out of the plan)."""
        return []

    # -- apply ---------------------------------------------------------------------------------------

    def depends_on(self, change: Change) -> tuple[ResourceKey, ...]:
        """Objects whose change must have applied before this one is made."""
        return ()

    def apply(self, change: Change, ops: Applier) -> Outcome | None:
        """Create, update, replace, or refresh the record of (no-op) one object. None: nothing
        to report (an unchanged object)."""
        raise NotImplementedError

    def delete(self, change: Change, live: Resource, ops: Applier) -> None:
        """Delete one live object (a 404 means it is gone already: not an error)."""
        raise NotDeletable(f"{self.kind} objects are never deleted by reconciler")

    def submit_run(self, change: Change, ops: Applier) -> Outcome:
        raise ReconcilerError(f"{self.kind} objects have no runs")

    def run_status(self, client: ApiClient, run_id: str) -> RunState | None:
        """A run's status and why it failed, if it did (None: the tenant does not show it yet)."""
        raise ReconcilerError(f"{self.kind} objects have no runs")

    def cancel_run(self, client: ApiClient, run_id: str) -> str | None:
        raise ReconcilerError(f"{self.kind} objects have no runs")

    # -- export (adopting live objects) --------------------------------------------------------------

    exportable: bool = False

    def discover(self, client: ApiClient) -> list[Resource] | None:
        """Every live object's name (and what ``fetch`` needs to read it fully), for a kind whose
        fetch reads only the objects it is told about; None: its fetch reads them all."""
        return None

    def export_spec(self, live: Resource, ctx: Context, ref: Callable[[str, str], str],
                    record: Mapping[str, Any]) -> dict[str, Any]:
        """The manifest spec a person would write for a live object: only what differs from what
        the tenant would fill in. ``ref(kind, id)`` gives a referenced object's name where a
        manifest may use it (else the id); ``record`` is the object's state record."""
        raise NotImplementedError

    def export_record(self, live: Resource, record: Mapping[str, Any]) -> dict[str, Any]:
        """The state record an apply of the exported manifest would keep."""
        return dict(record)


_loaded: dict[str, Kind] = {}


def register(kind: Kind) -> None:
    """Add (or replace) a kind at run time, as a row of ``REGISTRY`` does."""
    _loaded[kind.kind] = kind
    validator.cache_clear()


def unregister(name: str) -> None:
    _loaded.pop(name, None)
    validator.cache_clear()


def _all() -> dict[str, Kind]:
    for name, module in REGISTRY.items():
        if name not in _loaded:
            _loaded[name] = importlib.import_module(module).KIND
    return _loaded


def get(name: str) -> Kind:
    """The kind called ``name`` (KeyError when there is none)."""
    return _all()[name]


def names() -> list[str]:
    return list(_all())


def by_rank() -> list[Kind]:
    return sorted(_all().values(), key=lambda k: (k.rank, k.kind))


def known(name: object) -> TypeGuard[str]:
    return isinstance(name, str) and name in _all()


@cache
def load_schema(schema_file: str) -> dict[str, Any]:
    """A schema shipped inside the package (identical to the repository's schemas/ folder)."""
    text = resources.files("reconciler").joinpath("schemas").joinpath(schema_file).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def schema(kind: str) -> Mapping[str, Any]:
    """The JSON Schema of a kind (or of the project file)."""
    if kind == PROJECT_KIND:
        return load_schema("project.schema.json")
    spec = get(kind)
    return spec.schema or load_schema(spec.schema_file)


@cache
def validator(kind: str) -> Draft202012Validator:
    """The compiled validator of a kind (or of the project file), built once per process."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema(kind))
