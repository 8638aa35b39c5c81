"""The kinds registry: the single table of per-kind facts. Later stages read a row here instead
of branching on kind names; adding a kind is one row (plus its schema and adapter).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

API_VERSION = "reconciler/v1"
PROJECT_KIND = "Project"
PROJECT_FILE = "reconciler.yaml"


@dataclass(frozen=True)
class KindSpec:
    kind: str
    schema_file: str
    rank: int  # dependency order: lower ranks are created first and deleted last
    identity: str = "metadata.name"
    # Paths under `spec` whose values are secrets: write-only, given as ${env:NAME}, never shown.
    secret_paths: tuple[str, ...] = ()
    # Mappings under `spec` whose every value is a secret.
    secret_maps: tuple[str, ...] = ()
    # (plain map, its secret twin): secret-looking keys of the plain one belong in the twin.
    secret_twins: tuple[tuple[str, str], ...] = ()
    # Fields whose change cannot be applied in place (the object must be replaced).
    immutable: tuple[str, ...] = ()
    # Fields the server fills in or owns; never compared.
    server_owned: tuple[str, ...] = ()
    # spec field -> kind it names (a reference that must resolve).
    references: tuple[tuple[str, str], ...] = ()
    # Where schedules live under spec: a list of {cron, timezone}, or a single one.
    schedule_list: str | None = None
    schedule_single: str | None = None
    # At least one of these spec fields must be set for the document to do anything.
    needs_one_of: tuple[str, ...] = ()
    # False: a manifest removed means "stop managing it", never a delete on the tenant.
    deletable: bool = True
    # Canonical paths compared only when the manifest declares them (``a.*``: only the keys of
    # map ``a`` that the manifest names). Leaving them out leaves the live value alone.
    declared_only: tuple[str, ...] = ()


KINDS: dict[str, KindSpec] = {
    spec.kind: spec
    for spec in (
        KindSpec(
            "Credential",
            "credential.schema.json",
            rank=0,
            secret_paths=("username", "password"),
            secret_maps=("secretExtra",),
            secret_twins=(("extra", "secretExtra"),),
            immutable=("connector",),
            server_owned=("id", "version", "createdAt", "updatedAt", "createdBy", "tenantId", "isActive"),
            declared_only=("connectorConfigName", "connectorType", "description", "host", "port"),
        ),
        KindSpec(
            "App",
            "app.schema.json",
            rank=1,
            immutable=("appId",),
            server_owned=("slug", "version", "owner", "workflow_id", "user_id", "user-id", "correlation_id"),
            references=(("credentialRef", "Credential"),),
            schedule_list="schedules",
            declared_only=("credentialRef", "schedules", "connection.adminRoles", "connection.adminUsers",
                           "connection.adminGroups"),
        ),
        KindSpec(
            "Workflow",
            "workflow.schema.json",
            rank=2,
            server_owned=("resourceVersion", "uid", "creationTimestamp", "generation"),
            schedule_single="schedule",
            needs_one_of=("parameters", "schedule"),
            declared_only=("parameters.*", "schedule"),
            deletable=False,  # the template belongs to the UI; a Workflow only tunes it
        ),
    )
}


@cache
def load_schema(schema_file: str) -> dict[str, Any]:
    """A schema shipped inside the package (identical to the repository's schemas/ folder)."""
    text = resources.files("reconciler").joinpath("schemas", schema_file).read_text(encoding="utf-8")
    return json.loads(text)


@cache
def validator(kind: str) -> Draft202012Validator:
    """The compiled validator of a kind (or of the project file), built once per process."""
    schema_file = "project.schema.json" if kind == PROJECT_KIND else KINDS[kind].schema_file
    return Draft202012Validator(load_schema(schema_file))


def by_rank() -> list[KindSpec]:
    return sorted(KINDS.values(), key=lambda k: k.rank)
