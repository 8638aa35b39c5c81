"""Field-level differences between two canonical objects. Pure; the only module that uses deepdiff.

Takes the canonical desired and live forms of one object (from ``normalize``), the kind's
declared-only paths and the manifest's ``ignoreDifferences``; returns ``FieldChange`` records.
Equal objects cost one comparison of canonical JSON; deepdiff runs only where they differ, and
its output is turned into ``FieldChange`` here, at once: nothing downstream sees deepdiff.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.normalize import canonical_json

MISSING = object()


@functools.cache
def _deepdiff() -> Callable[..., Any]:
    """DeepDiff, imported on the first difference (commands that never diff, such as validate, do
    not pay for it). deepdiff 8 and later report two mappings sharing few keys as one changed
    value, at the path of the mapping (the root: ""); a field-level diff wants them key by key, as
    earlier versions did."""
    from deepdiff import DeepDiff

    if "threshold_to_diff_deeper" in inspect.signature(DeepDiff.__init__).parameters:
        return functools.partial(DeepDiff, threshold_to_diff_deeper=0)
    return DeepDiff


@dataclass(frozen=True)
class FieldChange:
    op: str  # "add", "remove" or "change"
    path: str  # dotted, e.g. "inputs.include_filter"
    old: Any = None
    new: Any = None
    cause: str | None = None  # who moved since the last apply (a class of ``drift``); None: not classified

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "path": self.path, "old": self.old, "new": self.new, "cause": self.cause}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FieldChange:
        cause = data.get("cause")
        return cls(op=data["op"], path=data["path"], old=data.get("old"), new=data.get("new"),
                   cause=None if cause is None else str(cause))


def get_path(obj: Any, parts: list[str]) -> Any:
    for part in parts:
        if not isinstance(obj, dict) or part not in obj:
            return MISSING
        obj = obj[part]
    return obj


def _dropped(obj: Any, parts: list[str]) -> Any:
    """``obj`` without the value at ``parts``: the mappings along the path are copied, everything
    else is shared (``obj`` itself is never changed)."""
    if not isinstance(obj, dict) or parts[0] not in obj:
        return obj
    out = dict(obj)
    if len(parts) == 1:
        del out[parts[0]]
    else:
        out[parts[0]] = _dropped(obj[parts[0]], parts[1:])
    return out


def _replaced(obj: Any, parts: list[str], value: Any) -> Any:
    """``obj`` with the (existing) mapping at ``parts`` replaced by ``value``, copying only the path."""
    if not parts:
        return value
    out = dict(obj)
    out[parts[0]] = _replaced(obj[parts[0]], parts[1:], value)
    return out


def masked(desired: Mapping[str, Any], live: Mapping[str, Any], declared_only: Iterable[str],
           ignore: Iterable[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both sides without ignored paths, and with the live side reduced to what the manifest
    declares where the kind compares only declared fields. The inputs are never changed; what is
    returned shares their unchanged parts (a plan runs this on every object: no deep copies)."""
    wanted_side: dict[str, Any] = dict(desired)
    live_side: dict[str, Any] = dict(live)
    for path in declared_only:
        parts = path.split(".")
        if parts[-1] == "*":
            wanted = get_path(wanted_side, parts[:-1])
            have = get_path(live_side, parts[:-1])
            if wanted is MISSING:
                live_side = _dropped(live_side, parts[:-1])
            elif isinstance(have, dict):
                kept = {k: v for k, v in have.items() if isinstance(wanted, dict) and k in wanted}
                if len(kept) != len(have):
                    live_side = _replaced(live_side, parts[:-1], kept)
        elif get_path(wanted_side, parts) is MISSING:
            live_side = _dropped(live_side, parts)
    for path in ignore:
        parts = path.split(".")
        wanted_side = _dropped(wanted_side, parts)
        live_side = _dropped(live_side, parts)
    return wanted_side, live_side


def field_changes(before: Mapping[str, Any], after: Mapping[str, Any], atomic: Iterable[str] = ()) -> list[FieldChange]:
    """What changes from ``before`` (live) to ``after`` (desired), at most two levels deep
    ("inputs.include_filter" changes as a whole, not key by key). Lists, and the top-level fields
    named in ``atomic`` (schedules), change as a whole too."""
    atomic = set(atomic)
    if canonical_json(before) == canonical_json(after):
        return []
    tree = _deepdiff()(before, after, view="tree", ignore_order=False)
    seen: dict[str, FieldChange] = {}
    for levels in tree.values():
        for level in levels:
            parts = level.path(output_format="list")
            # A difference inside a list is shown as the whole list changing: clearer than indices.
            cut = next((i for i, p in enumerate(parts) if isinstance(p, int)), None)
            if cut is not None:
                parts = parts[:cut]
            parts = parts[:1] if parts and parts[0] in atomic else parts[:2]
            path = ".".join(str(p) for p in parts)
            if path in seen:
                continue
            old, new = get_path(before, [str(p) for p in parts]), get_path(after, [str(p) for p in parts])
            if old is MISSING:
                seen[path] = FieldChange("add", path, None, new)
            elif new is MISSING:
                seen[path] = FieldChange("remove", path, old, None)
            else:
                seen[path] = FieldChange("change", path, old, new)
    return sorted(seen.values(), key=lambda c: c.path)
