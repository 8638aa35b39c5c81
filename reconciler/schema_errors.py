"""What a jsonschema error is about, read from its data (``validator_value``, ``instance``,
``schema``), never from its English message: the fields a "required" error's object lacks and the
ones an "additionalProperties: false" error's object has but may not. Used by validation and by
the sandbox's contract checks."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only its errors are read here: importing jsonschema is left to whoever validates
    from jsonschema import ValidationError


def schema_of(error: ValidationError) -> Mapping[str, Any]:
    """The subschema an error is about ({} for a bare ``true``/``false`` schema, which says nothing more)."""
    return error.schema if isinstance(error.schema, Mapping) else {}


def missing_fields(error: ValidationError) -> list[str]:
    """The fields a "required" error's object lacks, in the schema's order."""
    required, instance = error.validator_value, error.instance
    if not isinstance(required, list) or not isinstance(instance, Mapping):
        return []
    return [name for name in required if name not in instance]


def unknown_fields(error: ValidationError) -> list[str]:
    """The fields an "additionalProperties: false" error's object has and its schema does not allow, sorted."""
    schema, instance = schema_of(error), error.instance
    if not isinstance(instance, Mapping):
        return []
    allowed = schema.get("properties") or {}
    patterns = list(schema.get("patternProperties") or {})
    return sorted(name for name in instance
                  if name not in allowed and not any(re.search(pattern, name) for pattern in patterns))
