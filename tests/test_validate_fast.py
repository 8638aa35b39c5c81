"""The fast paths of validation say what the checked paths say (issue 13).

Parsing: a plain file is composed by the C loader and its marks found only when a diagnostic asks;
everything else (and every file the fast path gives up on) is read by the checked path. Schema:
fastjsonschema says "valid" only where jsonschema would, and jsonschema reports every error.
And the commands import only what they use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import kinds, manifests
from reconciler.manifests import MAX_DEPTH, MAX_FILE_BYTES, _parse_checked, _parse_fast, parse
from reconciler.sandbox import Sandbox
from reconciler.validate import _fast_check, _validator, validate
from tests.conftest import TOKEN

TESTS = Path(__file__).parent
CORPUS = sorted(p for p in TESTS.rglob("*.y*ml") if p.suffix in (".yaml", ".yml") and p.stat().st_size < 1_000_000)
ENV = {"PG_USER": "u", "PG_PASSWORD": "p", "SF_USER": "u", "SF_PASSWORD": "p"}
SETTINGS = dict(deadline=None, derandomize=True, database=None, max_examples=300,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def same_as_checked(text: str) -> None:
    """``parse`` gives the checked path's documents, diagnostics and marks."""
    documents, diagnostics = parse(text, "m.yaml")
    want_documents, want_diagnostics = _parse_checked(text, "m.yaml")
    assert diagnostics == want_diagnostics
    assert [(d.index, d.line, d.data) for d in documents] == [(d.index, d.line, d.data) for d in want_documents]
    fast = _parse_fast(text, "m.yaml")
    if fast is not None:  # the fast path took it: the checked path has nothing to say, and the marks agree
        assert want_diagnostics == []
        for doc, want in zip(fast, want_documents, strict=True):
            assert doc.locate(("spec", "nothing")) == want.locate(("spec", "nothing"))
            assert (doc.marks, doc.key_marks) == (want.marks, want.key_marks)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(TESTS)))
def test_every_test_manifest_parses_as_the_checked_path_reads_it(path: Path) -> None:
    text, problem = manifests.read_text(path)
    if text is not None:
        same_as_checked(text)


# YAML snippets the fast path must hand over, mixed with plain ones.
SNIPPETS = ["a: 1", "a: 1\na: 2", "a: &x [1]\nb: *x", "a: *x", "<<: {b: 1}", "a: 2024-01-01", "a: .inf", "a: !!binary aGk=",
            "a: !!set {x}", "1: a", "? [a]\n: b", "a: !foo x", "a: !!int abc", "a: !!float 1", "a: !!str {b: 1}", "a: =",
            "a: " + "9" * 1001, "a: 0o17", "a: 0x1F", "a: 1_000", "a: 1:30", "a: yes", "a: ~", "a: ''", "- a\n- b",
            "a: [1, 2, {b: c}]", "a: 'x\n  y'", "a: |\n  x\n  y", "\ta: 1", "a: [1", "a: b: c", "---", "...", "# c",
            "a: \x07", "a: \u2028", "a: 1e999", "a: -.5", "a: +1", "a: '${env:X}'", "a: ${env:X}", "key with space: v"]


@settings(**SETTINGS)
@given(st.lists(st.sampled_from(SNIPPETS), min_size=1, max_size=6), st.sampled_from(["\n---\n", "\n", "\n...\n---\n"]))
def test_any_mix_of_yaml_parses_as_the_checked_path_reads_it(parts: list[str], joiner: str) -> None:
    same_as_checked(joiner.join(parts))


@settings(**SETTINGS)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
                    max_leaves=12),
       st.booleans())
def test_any_json_data_parses_as_the_checked_path_reads_it(data: Any, flow: bool) -> None:
    same_as_checked(yaml.safe_dump({"spec": data}, default_flow_style=flow, allow_unicode=True))


def codes(tmp_path: Path, text: str, name: str = "m.yaml") -> list[tuple[str, int]]:
    (tmp_path / name).write_text(text)
    return [(d.code, d.line) for d in validate([tmp_path], env=ENV).errors]


CREDENTIAL = ("apiVersion: reconciler/v1\nkind: Credential\nmetadata: {name: pg}\nspec:\n  connector: postgres\n"
              "  authType: basic\n  host: h\n  username: ${env:PG_USER}\n  password: ${env:PG_PASSWORD}\n")


def test_a_plain_file_takes_the_fast_path_and_is_valid(tmp_path: Path) -> None:
    assert _parse_fast(CREDENTIAL, "m.yaml") is not None
    assert codes(tmp_path, CREDENTIAL) == []


def test_a_diagnostic_of_a_fast_document_has_its_exact_line(tmp_path: Path) -> None:
    text = CREDENTIAL.replace("  host: h\n", "  host: h\n  port: 443.0\n")
    assert _parse_fast(text, "m.yaml") is not None  # parsed fast; the line comes from reading it again
    assert codes(tmp_path, text) == [("RC023", 8)]


@pytest.mark.parametrize("extra, code, line", [
    ("  host: again\n", "RC005", 8),  # a duplicate key
    ("  port: .inf\n", "RC023", 8),  # a value JSON cannot carry
    ("  port: 2024-01-01\n", "RC023", 8),
    ("  1: x\n", "RC023", 8),  # a key that is not a string
    ("  port: !!binary aGk=\n", "RC023", 8),
    ("  port: !foo 1\n", "RC002", 8),
    ("  extra: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n", "RC007", 8),  # too deep, small enough for the fast path
])
def test_the_safety_checks_still_fire_on_small_plain_files(tmp_path: Path, extra: str, code: str, line: int) -> None:
    text = CREDENTIAL.replace("  host: h\n", "  host: h\n" + extra)
    assert _parse_fast(text, "m.yaml") is None  # handed over to the checked path
    assert (code, line) in codes(tmp_path, text)


def test_an_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    assert [c for c, _ in codes(tmp_path, "\n".join(lines) + "\n")] == ["RC008"]


def test_nesting_the_c_composer_could_not_survive_is_refused_not_a_crash(tmp_path: Path) -> None:
    """200,000 levels would overflow the C composer's stack: never given to it."""
    assert not manifests._shallow("[" * 200_000)
    assert codes(tmp_path, "a: " + "[" * 200_000 + "]" * 200_000 + "\n") == [("RC007", 1)]
    deep_in_second = "a: 1\n---\n" + "- " * 2000 + "x\n"
    assert not manifests._shallow(deep_in_second)
    assert manifests._shallow("a: [[1]]\n---\n" * 2000)  # many shallow documents: each counted alone


def test_a_file_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text("a: " + "x" * (MAX_FILE_BYTES + 1) + "\n")
    assert [d.code for d in validate([tmp_path], env=ENV).errors] == ["RC006"]


def test_too_many_values_in_a_small_file_is_refused(tmp_path: Path) -> None:
    text = "a: [" + ",".join(["1"] * (manifests.MAX_DOCUMENT_VALUES + 1)) + "]\n"
    assert len(text) < manifests.FAST_MAX_BYTES
    assert _parse_fast(text, "m.yaml") is None
    assert [c for c, _ in codes(tmp_path, text)] == ["RC008"]


# -- schema ---------------------------------------------------------------------------------------


def test_every_kind_has_a_fast_check() -> None:
    for kind in [*kinds.names(), kinds.PROJECT_KIND]:
        assert _fast_check(kind) is not None, kind


def test_the_fast_check_takes_no_float_for_an_integer() -> None:
    check = _fast_check("Credential")
    assert check is not None
    document = yaml.safe_load(CREDENTIAL)
    check(document)
    document["spec"]["port"] = 443.0
    with pytest.raises(Exception, match="port"):
        check(document)


def values_for(schema: Any) -> st.SearchStrategy[Any]:
    """Values near what ``schema`` takes: its own fields with values of any type, and some others."""
    leaves = (st.none() | st.booleans() | st.integers(-2, 70_000) | st.sampled_from([1.0, 443.0, 1.5, 0.0])
              | st.sampled_from(["", "a", "A b", "x" * 101, "default/postgres/1", "inputs.a", "pg", "0 1 * * *", "UTC"]))
    if not isinstance(schema, dict):
        return leaves
    properties = schema.get("properties") or {}
    options = [leaves, st.lists(values_for(schema.get("items")) if isinstance(schema.get("items"), dict) else leaves,
                                max_size=3)]
    if properties:
        options.append(st.fixed_dictionaries({}, optional={name: st.deferred(lambda s=sub: values_for(s))
                                                           for name, sub in properties.items()} | {"zz": leaves}))
    return st.one_of(*options)


@pytest.mark.parametrize("kind", ["App", "Credential", "Workflow", kinds.PROJECT_KIND])
def test_the_fast_check_says_valid_only_where_jsonschema_does(kind: str) -> None:
    schema = kinds.schema(kind)
    check = _fast_check(kind)
    assert check is not None
    seen = {"valid": 0}

    @settings(**{**SETTINGS, "max_examples": 400})
    @given(values_for(schema))
    def agree(document: Any) -> None:
        errors = list(_validator(kind).iter_errors(document))
        try:
            check(document)
        except Exception:  # noqa: BLE001 - any refusal: jsonschema then has the word
            return
        assert errors == [], (document, [e.message for e in errors])
        seen["valid"] += 1

    agree()


# -- start-up -------------------------------------------------------------------------------------

MODULES_AFTER = """
import sys
from reconciler.cli import main
try:
    main(sys.argv[2:])
except SystemExit:
    pass
with open(sys.argv[1], "w", encoding="utf-8") as out:
    out.write("\\n".join(sorted(sys.modules)))
"""


def modules_after(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> set[str]:
    listing = tmp_path / "modules.txt"
    subprocess.run([sys.executable, "-c", MODULES_AFTER, str(listing), *args], cwd=tmp_path, timeout=120, check=False,
                   env={**os.environ, **ENV, **(env or {})}, capture_output=True)
    return set(listing.read_text().split())


def test_validate_imports_only_what_it_uses(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(CREDENTIAL)
    loaded = modules_after(tmp_path, "validate", "m.yaml")
    assert "reconciler.validate" in loaded
    unwanted = {"deepdiff", "requests", "urllib3", "pydantic", "jsonschema", "reconciler.apply", "reconciler.sandbox",
                "reconciler.client", "reconciler.engine", "reconciler.state"}
    assert loaded & unwanted == set()


def test_plan_does_not_import_apply(tmp_path: Path, sandbox: Sandbox) -> None:
    (tmp_path / "m.yaml").write_text(CREDENTIAL)
    loaded = modules_after(tmp_path, "plan", "m.yaml", env={"ATLAN_BASE_URL": sandbox.base_url, "ATLAN_API_KEY": TOKEN})
    assert "reconciler.engine" in loaded
    assert loaded & {"reconciler.apply", "reconciler.sandbox", "pydantic"} == set()
