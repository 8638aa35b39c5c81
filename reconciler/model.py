"""The one state type both sides become before diffing: ``State = Mapping[ResourceKey, Resource]``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True, order=True)
class ResourceKey:
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Resource:
    """One object, desired (from a manifest) or live (from the tenant), as plain JSON-like data.

    ``spec`` follows the kind's manifest schema on both sides. Secret fields of a desired
    resource hold their ``${env:NAME}`` reference, never a value. ``origin`` is ``file:line``
    for a manifest.
    """

    key: ResourceKey
    spec: Mapping[str, Any]
    origin: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # Live resources only: what the server knows that the manifest does not (slug, guid,
    # version, the raw object for a full-replace update) and the fingerprint of that raw object.
    server: Mapping[str, Any] = field(default_factory=dict)


State = Mapping[ResourceKey, Resource]
