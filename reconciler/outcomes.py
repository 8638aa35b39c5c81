"""What apply reports: one typed ``Outcome`` per change, the ``ApplyReport`` of a command, and the
run statuses (one home for which are in flight, which are final, which succeeded).

Plain data: the renderer turns it into text, markdown and JSON; no I/O here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from reconciler.plan import Change

# Run statuses, as both the App API and the legacy (Argo) API report them.
RUN_IN_FLIGHT = frozenset({"Pending", "Running"})
RUN_SUCCEEDED = "Succeeded"
RUN_FINAL = frozenset({"Succeeded", "Failed", "Error", "Stopped", "Terminated", "Skipped"})


class RunState(NamedTuple):
    """A run as the tenant shows it: its status and, for a run that ended badly, why (may be "")."""

    status: str
    message: str = ""


def run_failed(status: str | None) -> bool:
    """A run that ended without succeeding (unknown statuses count as failed: never green by guess)."""
    return status is not None and status != RUN_SUCCEEDED and status not in RUN_IN_FLIGHT


class Status(str, enum.Enum):
    APPLIED = "applied"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNVERIFIED = "unverified"  # the tenant may or may not have acted; an intent records it
    NOT_APPLIED = "not-applied"  # a delete candidate, applied only with --prune: not a failure


@dataclass
class Outcome:
    """How one change went. ``run_id``/``run_status``: the run a RUN change submitted (or found in
    flight), followed by ``apply --wait``."""

    change: Change
    status: Status
    message: str = ""
    run_id: str | None = None
    run_status: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in (Status.APPLIED, Status.NOT_APPLIED)

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.change.action.value, "kind": self.change.key.kind, "name": self.change.key.name,
                "status": self.status.value, "message": self.message, "run_id": self.run_id, "run_status": self.run_status}


@dataclass
class ApplyReport:
    tenant: str
    outcomes: list[Outcome] = field(default_factory=list)
    requests: int = 0  # of the whole command (fetch included)
    retries: Mapping[str, int] = field(default_factory=dict)  # by reason, whole command
    seconds: float = 0.0  # of the changes
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(not o.ok for o in self.outcomes) or any(run_failed(o.run_status) for o in self.outcomes)

    @property
    def failed_runs(self) -> list[Outcome]:
        return [o for o in self.outcomes if run_failed(o.run_status)]

    @property
    def unverified(self) -> bool:
        return any(o.status is Status.UNVERIFIED for o in self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": 1, "tenant": self.tenant, "failed": self.failed, "seconds": round(self.seconds, 3),
                "requests": self.requests, "retries": dict(self.retries), "notes": list(self.notes),
                "outcomes": [o.to_dict() for o in self.outcomes]}
