"""The state file: what the reconciler knows that the tenant API does not tell it.

Per tenant base URL: the slug of each managed app and the trigger ids of its schedules (the API
does not return attached schedules), credential guids and keyed fingerprints of their secrets
(secrets are write-only), and the recorded ``preventDestroy`` flags. It holds no secret and is
safe to commit. Writes are atomic (temp file + fsync + rename).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.files import write_text_atomic

STATE_FORMAT = 1


def secret_fingerprint(key: bytes, values: dict[str, str]) -> str:
    """HMAC-SHA256 over the secret fields of one credential (name=value, sorted): detects a
    rotation without storing or reading back the secret."""
    message = "\n".join(f"{name}={values[name]}" for name in sorted(values)).encode()
    return "hmac-sha256:" + hmac.new(key, message, hashlib.sha256).hexdigest()


def fingerprint_key(api_key: str) -> bytes:
    """RECONCILER_FINGERPRINT_KEY when set, else a key derived from the API key."""
    explicit = os.environ.get("RECONCILER_FINGERPRINT_KEY")
    if explicit:
        return explicit.encode()
    return hashlib.sha256(b"reconciler-fingerprint:" + api_key.encode()).digest()


@dataclass
class TenantState:
    """The records of one tenant: ``resources["App/name"] = {...}``."""

    resources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, key: Any) -> dict[str, Any]:
        return self.resources.get(str(key), {})


@dataclass
class StateFile:
    path: Path
    tenants: dict[str, TenantState] = field(default_factory=dict)
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False, compare=False)
    _generation: int = field(default=0, repr=False, compare=False)
    _written: int = field(default=0, repr=False, compare=False)
    _writing: bool = field(default=False, repr=False, compare=False)

    @classmethod
    def load(cls, path: Path) -> "StateFile":
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ReconcilerError(f"state file {path} cannot be read: {exc}",
                                  hint="Restore it from Git, or move it aside: objects are re-discovered by name.") from exc
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise ReconcilerError(f"state file {path} is not a format-{STATE_FORMAT} reconciler state file",
                                  hint="Point stateFile in reconciler.yaml at the right file, or move this one aside.")
        tenants = {url: TenantState(resources=dict(t.get("resources") or {})) for url, t in (data.get("tenants") or {}).items()}
        return cls(path, tenants)

    def tenant(self, identity: str) -> TenantState:
        """The records of one tenant, by its base URL (or the embedded sandbox's identity)."""
        key = identity.rstrip("/") + "/" if identity.startswith("http") else identity
        return self.tenants.setdefault(key, TenantState())

    def to_dict(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT,
                "tenants": {url: {"resources": copy.deepcopy(t.resources)} for url, t in sorted(self.tenants.items())}}

    def put(self, tenant: str, key: str, record: dict[str, Any] | None) -> None:
        """Record one object (None forgets it) and return once a file holding it is on disk."""
        with self._cond:
            resources = self.tenant(tenant).resources
            if record is None:
                resources.pop(key, None)
            else:
                resources[key] = copy.deepcopy(record)
        self.save()

    def save(self) -> None:
        """Write the whole file atomically (temp file, fsync, rename).

        Group commit: a caller returns only after a write that includes its changes; callers that
        arrive while a write is under way share the next one, so concurrent changes do not queue
        behind one write each.
        """
        with self._cond:
            self._generation += 1
            target = self._generation
            while self._written < target:
                if self._writing:
                    self._cond.wait()
                    continue
                self._writing = True
                generation = self._generation
                text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
                self._cond.release()
                try:
                    write_text_atomic(self.path, text)
                finally:
                    self._cond.acquire()
                    self._writing = False
                    self._cond.notify_all()
                self._written = generation
