"""The JSON Schemas: the package ships exactly the repository's schemas/, every field is
documented for editors, secret fields are write-only, and typos are not silently ignored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from reconciler import kinds

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = sorted((ROOT / "schemas").glob("*.json"))
# Objects whose keys are the user's own (free-form maps): no properties to document or close.
FREE_FORM = {"inputs", "labels", "extra", "secretExtra", "parameters"}


def properties(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for name, sub in (schema.get("properties") or {}).items():
        yield f"{path}.{name}".lstrip("."), sub
        yield from properties(sub, f"{path}.{name}")
        for option in sub.get("anyOf", []):
            yield from properties(option, f"{path}.{name}")
        if isinstance(sub.get("items"), dict):
            yield from properties(sub["items"], f"{path}.{name}[]")


def test_the_package_ships_the_repository_schemas() -> None:
    shipped = resources.files("reconciler").joinpath("schemas")
    assert sorted(p.name for p in SCHEMAS) == sorted(p.name for p in shipped.iterdir() if p.name.endswith(".json"))
    for path in SCHEMAS:
        assert shipped.joinpath(path.name).read_bytes() == path.read_bytes(), f"{path.name} differs; copy schemas/ into reconciler/schemas/"


@pytest.mark.parametrize("path", SCHEMAS, ids=[p.stem for p in SCHEMAS])
def test_schema_is_valid_and_documented(path: Path) -> None:
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema.get("title") and schema.get("description")
    for name, sub in properties(schema):
        assert sub.get("title") and sub.get("description"), f"{path.name}: {name} needs a title and a description"
        is_object = sub.get("type") == "object" or "object" in (sub.get("type") or [])
        if is_object and name.split(".")[-1] not in FREE_FORM:
            assert sub.get("additionalProperties") is False, f"{path.name}: {name} must reject unknown keys"
    assert schema["additionalProperties"] is False


def test_registry_secret_paths_are_write_only_in_the_schemas() -> None:
    for spec in kinds.by_rank():
        schema = kinds.load_schema(spec.schema_file)["properties"]["spec"]["properties"]
        for name in (*spec.secret_paths, *spec.secret_maps):
            assert schema[name].get("writeOnly") is True, f"{spec.kind}.spec.{name}"
        for name, sub in schema.items():
            if sub.get("writeOnly"):
                assert name in spec.secret_paths or name in spec.secret_maps, f"{spec.kind}.spec.{name} is writeOnly"
        for field_name, target in spec.references:
            assert field_name in schema and kinds.known(target)
        for name in spec.immutable:
            assert name in schema


def test_every_kind_has_a_distinct_rank() -> None:
    ranks = [k.rank for k in kinds.by_rank()]
    assert ranks == sorted(set(ranks))
    assert [k.kind for k in kinds.by_rank()] == ["Credential", "App", "Workflow"]
