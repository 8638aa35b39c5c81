"""The one state type both sides become before diffing: ``State = Mapping[ResourceKey, Resource]``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, order=True)
class ResourceKey:
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class SourceRef:
    """Where a manifest document starts: its file (as shown to the user) and line (1-based).
    The empty ``SourceRef()`` stands for "not from a manifest" (a live object)."""

    file: str = ""
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.file else ""

    def __bool__(self) -> bool:
        return bool(self.file)

    @classmethod
    def parse(cls, text: str) -> SourceRef:
        """The inverse of ``str()``: ``"apps/x.yaml:3"`` (plan files carry this form)."""
        if not isinstance(text, str):
            raise ValueError(f"an origin is a string like 'apps/x.yaml:3', not {text!r}")
        file, _, line = text.rpartition(":")
        if not file or not line.isdigit():
            return cls(text or "", 0) if text else cls()
        return cls(file, int(line))


@dataclass(frozen=True)
class Resource:
    """One object, desired (from a manifest) or live (from the tenant), as plain JSON-like data.

    ``spec`` follows the kind's manifest schema on both sides. Secret fields of a desired
    resource hold their ``${env:NAME}`` reference, never a value. ``origin`` is where the
    manifest document is (empty for a live object).
    """

    key: ResourceKey
    spec: Mapping[str, Any]
    origin: SourceRef = SourceRef()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # Live resources only: what the server knows that the manifest does not (slug, guid,
    # version, the raw object for a full-replace update) and the fingerprint of that raw object.
    server: Mapping[str, Any] = field(default_factory=dict)


State = Mapping[ResourceKey, Resource]
