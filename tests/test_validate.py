"""Offline validation: the invalid-manifest corpus (each file names its expected codes and
lines), valid edge cases, substitution, secrets never echoed, zero requests to the tenant."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.model import ResourceKey
from reconciler.sandbox import Sandbox
from reconciler.validate import validate
from tests.conftest import TOKEN, Introspection

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).parent / "manifests"
ENV = {"SNOWFLAKE_USER": "u", "SNOWFLAKE_PASSWORD": "p", "PG_USER": "u", "PG_PASSWORD": "p"}
INVALID = sorted((CORPUS / "invalid").glob("*.yaml"))


def expectations(path: Path) -> set[tuple[str, int]]:
    header = path.read_text().splitlines()[0]
    assert header.startswith("# expect: "), f"{path.name} must start with '# expect: CODE@LINE, …'"
    return {(code, int(line)) for code, line in re.findall(r"(RC\d{3})@(\d+)", header)}


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env={**os.environ, **(env or {})})


def test_the_corpus_is_large_enough() -> None:
    assert len(INVALID) >= 40


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_manifest_reports_exactly_what_it_expects(path: Path) -> None:
    result = validate([path], env=ENV)
    found = {(d.code, d.line) for d in result.errors}
    assert found == expectations(path), "\n".join(f"{d.code}@{d.line} {d.message}" for d in result.diagnostics)
    assert all(d.file.endswith(path.name) and d.column >= 1 for d in result.errors)
    assert result.resources == {} or all(r.origin for r in result.resources.values())


@pytest.mark.parametrize("name", ["empty", "comments-only", "anchors-and-aliases", "multi-document"])
def test_valid_edge_cases(name: str) -> None:
    result = validate([CORPUS / "valid" / f"{name}.yaml"], env=ENV)
    assert result.diagnostics == []


def test_edge_case_contents() -> None:
    result = validate([CORPUS / "valid"], env=ENV)
    one = result.resources[ResourceKey("App", "pg-one")]
    assert one.spec["schedules"] == [{"cron": "0 1 * * *", "timezone": "UTC"}, {"cron": "0 13 * * *", "timezone": "UTC"}]
    assert result.resources[ResourceKey("App", "pg-two")].spec["inputs"]["extraction_method"] == "agent"
    cred = result.resources[ResourceKey("Credential", "pg-cred")]
    assert cred.spec["host"] == "${not-a-reference}"
    assert cred.spec["password"] == "${env:PG_PASSWORD}"  # secrets stay references
    assert result.resources[ResourceKey("Workflow", "atlan-snowflake-miner-1714638976")].spec == {"schedule": None}
    assert result.documents == 5  # the empty one between --- counts as a document, and declares nothing


def test_all_problems_in_all_files_at_once() -> None:
    result = validate([CORPUS / "invalid"], env=ENV)
    files_with_errors = {d.file for d in result.errors}
    assert len(files_with_errors) == len(INVALID)
    assert result.diagnostics == sorted(result.diagnostics)


def test_specs_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    env = dict(line.removeprefix("export ").split("=", 1) for line in (ROOT / "specs/sandbox.env").read_text().splitlines()
               if line.startswith("export "))
    result = validate([ROOT / "specs"], env=env)
    assert result.diagnostics == []
    assert sorted(k.kind for k in result.resources) == ["App", "App", "App", "Credential", "Credential", "Workflow"]
    assert result.project.name == "data-platform" and result.project.owned_prefixes == ("dp-",)
    sf = result.resources[ResourceKey("Credential", "dp-snowflake-prod")].spec
    assert sf["host"] == "acme.snowflakecomputing.com" and sf["extra"]["warehouse"] == "COMPUTE_WH"

    without_secrets = validate([ROOT / "specs"], env={}, allow_missing_secrets=True)
    assert without_secrets.errors == [] and {d.code for d in without_secrets.warnings} == {"RC050"}
    assert len(without_secrets.resources) == 6


def test_duplicates_across_files_and_var_file_override(tmp_path: Path) -> None:
    cred = "apiVersion: reconciler/v1\nkind: Credential\nmetadata: {name: c}\nspec: {connector: x, authType: basic, host: '${var:host}'}\n"
    (tmp_path / "a.yaml").write_text(cred)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text("# second\n" + cred)
    (tmp_path / "vars.yaml").write_text("host: one.example.com\n")
    (tmp_path / "override.yaml").write_text("host: two.example.com\n")
    result = validate([tmp_path / "a.yaml", tmp_path / "sub"], var_files=[tmp_path / "vars.yaml", tmp_path / "override.yaml"])
    [dup] = result.errors
    assert (dup.code, dup.line, dup.file.endswith("b.yml")) == ("RC031", 4, True)
    assert "a.yaml:3" in dup.message
    assert result.resources[ResourceKey("Credential", "c")].spec["host"] == "two.example.com"


def test_unquoted_reference_in_flow_style_gets_a_hint(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("apiVersion: reconciler/v1\nkind: Credential\nmetadata: {name: c}\n"
                                     "spec: {connector: x, authType: basic, host: ${var:host}}\n")
    [error] = validate([tmp_path]).errors
    assert (error.code, error.line) == ("RC002", 4) and "quote" in error.hint.lower()


def test_env_values_standing_alone_get_their_type(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("apiVersion: reconciler/v1\nkind: Credential\nmetadata: {name: c}\n"
                                     "spec: {connector: x, authType: basic, port: '${env:PORT}', host: 'h-${env:PORT}'}\n")
    spec = validate([tmp_path], env={"PORT": "5432"}).resources[ResourceKey("Credential", "c")].spec
    assert spec["port"] == 5432 and spec["host"] == "h-5432"


def test_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes("apiVersion: reconciler/v1\nkind: App # caf\xe9\n".encode("latin-1"))
    (tmp_path / "blob.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    result = validate([tmp_path, tmp_path / "missing.yaml"])
    codes = {(Path(d.file).name, d.code, d.line) for d in result.errors}
    assert codes == {("latin1.yaml", "RC003", 2), ("blob.yaml", "RC004", 1), ("missing.yaml", "RC001", 0)}


def test_project_file_rules(tmp_path: Path) -> None:
    (tmp_path / "reconciler.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Project\nmetadata: {name: p}\nspec: {parallelism: 4, varFiles: [v.yaml], stateFile: s.json}\n")
    (tmp_path / "v.yaml").write_text("x: 1\n")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "reconciler.yaml").write_text("apiVersion: reconciler/v1\nkind: Project\nmetadata: {name: q}\nspec: {}\n")
    result = validate([tmp_path])
    assert [(d.code, Path(d.file).parent.name) for d in result.errors] == [("RC070", "nested")]
    assert result.project.parallelism == 4 and result.project.state_file == tmp_path / "s.json"

    (tmp_path / "reconciler.yaml").write_text("apiVersion: reconciler/v1\nkind: Project\nmetadata: {name: p}\nspec: {paralelism: 4}\n")
    assert [d.code for d in validate([tmp_path / "reconciler.yaml"]).errors] == ["RC021"]


def test_ownership_prefixes_must_have_at_least_three_characters(tmp_path: Path) -> None:
    (tmp_path / "reconciler.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Project\nmetadata: {name: p}\nspec:\n"
        "  ownership: {namePrefixes: [d, '', ab, abc, dp-]}\n  parallelism: 4\n")
    result = validate([tmp_path])
    assert [(d.code, d.line, d.column, d.path) for d in result.errors] == [
        ("RC071", 5, 30, "spec.ownership.namePrefixes[0]"),
        ("RC071", 5, 33, "spec.ownership.namePrefixes[1]"),  # the empty one: RC071 only, not also the schema's RC024
        ("RC071", 5, 37, "spec.ownership.namePrefixes[2]"),
    ]
    first = result.errors[0]
    assert first.message == ("ownership prefix 'd' is too short: a prefix must have at least 3 characters, "
                             "or it would claim objects created outside this project")
    assert first.hint == "Use a prefix only this project's objects start with, such as 'dp-'."
    assert result.project.parallelism == 4  # the other settings are still read

    (tmp_path / "reconciler.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Project\nmetadata: {name: p}\nspec: {ownership: {namePrefixes: [abc, dp-]}}\n")
    result = validate([tmp_path])
    assert result.diagnostics == [] and result.project.owned_prefixes == ("abc", "dp-")


def test_cli_text_json_and_exit_codes(tmp_path: Path) -> None:
    bad = CORPUS / "invalid" / "cron-four-fields.yaml"
    text = run_cli("validate", str(bad), env=ENV)
    assert text.returncode == 1
    first = text.stdout.splitlines()[0]
    assert re.match(r"^.*cron-four-fields\.yaml:9:\d+: RC040 invalid cron: .* \(at spec\.schedules\[0\]\.cron\)$", first)
    assert "hint:" in text.stdout and "nothing was sent to the tenant" in text.stderr

    as_json = json.loads(run_cli("validate", "--format", "json", str(bad), env=ENV).stdout)
    assert as_json["valid"] is False and as_json["format_version"] == 1
    assert [(d["code"], d["line"], d["path"]) for d in as_json["diagnostics"]] == [("RC040", 9, "spec.schedules[0].cron")]

    good = run_cli("validate", str(CORPUS / "valid"), env=ENV)
    assert good.returncode == 0 and good.stdout.startswith("Valid: 5 documents in 4 files"), good.stdout
    assert run_cli("validate").returncode == 64
    assert run_cli("validate", "--format", "xml", str(bad)).returncode == 64


def test_validate_sends_nothing_to_the_tenant(sandbox: Sandbox, introspect: Introspection) -> None:
    env = {"ATLAN_BASE_URL": sandbox.base_url, "ATLAN_API_KEY": TOKEN}
    assert run_cli("validate", str(CORPUS / "invalid"), env=env).returncode == 1
    assert run_cli("validate", "specs", "--allow-missing-secrets", env=env).returncode == 0
    assert introspect.stats()["total"] == 0


def test_secret_values_are_never_echoed(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Credential\nmetadata: {name: c}\nspec:\n  connector: x\n  authType: basic\n"
        "  username: ${env:SECRET_USER}\n  password: hunter2-literal\n  secretExtra:\n    passphrase: pp-literal-9\n"
        "  port: abc-${env:SECRET_USER}\n")
    out = run_cli("validate", "--format", "json", str(tmp_path), env={"SECRET_USER": "user-value-77"})
    text = out.stdout + out.stderr
    assert out.returncode == 1 and "RC053" in text
    for secret in ("hunter2-literal", "pp-literal-9", "user-value-77"):
        assert secret not in text


def test_a_symlinked_manifests_folder_keeps_its_state_file_beside_it(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "reconciler.yaml").write_text("apiVersion: reconciler/v1\nkind: Project\nmetadata: {name: p}\n"
                                          "spec: {stateFile: state.json}\n")
    (tmp_path / "link").symlink_to(real)
    result = validate([tmp_path / "link"])
    assert result.errors == []
    assert result.project.state_file == tmp_path / "link" / "state.json"
    assert validate([tmp_path / "link", real]).documents == 0  # the same files are read once


# -- bounded input and values JSON can carry -----------------------------------------------------------


@pytest.mark.parametrize("expr, problem", [
    ("0 0 30 2 *", "never fires"),
    ("0 0 31 4,6 *", "never fires"),
    ("0 0 L * *", "'L' (last)"),
    ("0 0 LW * *", "'L' (last)"),
    ("0 0 15W * *", "'W' (nearest weekday)"),
    ("0 9 * * 1#2", "'#' (nth weekday)"),
    ("0 0 ? * *", "'?' (no value)"),
    ("H 0 * * *", "'H' (hashed)"),
    ("0 9 * * 5-1", "backward range 5-1"),
    ("0 9 * dec-jan *", "backward range dec-jan"),
    ("0 9 * * FRIDAY", "invalid day-of-week field"),
])
def test_crons_that_never_fire_or_use_extensions_are_refused(expr: str, problem: str) -> None:
    from reconciler.cron import cron_problem

    found = cron_problem(expr)
    assert found is not None and problem in found, found


@pytest.mark.parametrize("expr", ["0 0 29 2 *", "0 0 31 * *", "0 0 31 2 1", "*/15 9-17 * * MON-FRI", "5/15 * * * *",
                                  "0 0 * * 7", "0 0 1,15 * *", "0 0 1-5/2 * *", "@daily", "0 9 * jan-mar sun"])
def test_standard_crons_that_fire_are_accepted(expr: str) -> None:
    from reconciler.cron import cron_problem

    assert cron_problem(expr) is None


def test_an_integer_field_takes_only_integers(tmp_path: Path) -> None:
    def port(value: str) -> list[tuple[str, str, str]]:
        (tmp_path / "c.yaml").write_text("apiVersion: reconciler/v1\nkind: Credential\nmetadata: {name: c}\n"
                                         f"spec: {{connector: x, authType: basic, port: {value}}}\n")
        return [(d.code, d.message, d.hint) for d in validate([tmp_path]).errors]

    assert port("443") == []
    [(code, message, hint)] = port("443.0")
    assert code == "RC023" and message == "spec.port must be integer, got 443.0, a number with a decimal point"
    assert hint.startswith("Write 443.")
    assert [c for c, _, _ in port("443.5")] == ["RC023"] and [c for c, _, _ in port("true")] == ["RC023"]


def test_values_json_cannot_carry_are_located_and_read_as_text(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: App\nmetadata: {name: a}\nspec:\n  appId: postgres-crawler\n"
        "  connection: {name: c}\n  inputs:\n    since: 2024-01-31\n    blob: !!binary aGk=\n    ratio: .nan\n"
        "    tags: !!set {a, b}\n    ? [x, y]\n    : z\n    2: two\n    n: !!int many\n    ok: '2024-01-31'\n")
    result = validate([tmp_path])
    assert [(d.code, d.line, d.column, d.path) for d in result.errors] == [
        ("RC023", 8, 12, "spec.inputs.since"), ("RC023", 9, 11, "spec.inputs.blob"),
        ("RC023", 10, 12, "spec.inputs.ratio"), ("RC023", 11, 11, "spec.inputs.tags"),
        ("RC023", 12, 7, "spec.inputs.<a list>"), ("RC023", 14, 5, "spec.inputs.2"), ("RC023", 15, 8, "spec.inputs.n")]
    assert result.errors[0].message == 'wrong type: a YAML date, which JSON cannot carry; quote it: "2024-01-31"'
    assert "'2' is read as an integer" in result.errors[5].message and result.errors[5].hint == 'Quote the key: "2": ...'


def test_merged_values_are_checked_and_keys_written_beside_a_merge_keep_their_place(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: App\nmetadata: {name: a}\nspec:\n  appId: postgres-crawler\n"
        "  connection: {name: c}\n  inputs:\n    <<: {since: 2024-01-31, port: 1}\n    port: 5.5\n"
        "  schedules:\n    - &s {cron: '0 1 * * *', timezone: Nowhere/City}\n    - <<: *s\n      cron: '0 0 30 2 *'\n")
    result = validate([tmp_path])
    assert [(d.code, d.line, d.path) for d in result.errors] == [
        ("RC023", 8, "spec.inputs.since"), ("RC041", 11, "spec.schedules[0].timezone"),
        ("RC041", 11, "spec.schedules[1].timezone"), ("RC040", 13, "spec.schedules[1].cron")]


def test_a_document_that_cannot_be_constructed_does_not_hide_the_next_one(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: App\nmetadata: {name: a}\nspec: {<<: 1}\n---\n"
        "apiVersion: reconciler/v1\nkind: Credential\nmetadata: {name: c}\nspec: {connector: x, authType: basic}\n")
    result = validate([tmp_path])
    assert [(d.code, d.line) for d in result.errors] == [("RC002", 4)]
    assert list(result.resources) == [ResourceKey("Credential", "c")]


def test_the_caps_are_limits_not_approximations() -> None:
    from reconciler.manifests import MAX_ALIAS_VALUES, MAX_DEPTH, MAX_DOCUMENT_VALUES, parse

    def codes(text: str) -> list[tuple[str, int]]:
        return [(d.code, d.line) for d in parse(text, "t.yaml")[1]]

    assert codes("a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)) == []  # the root mapping is level 1
    assert codes("a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH) == [("RC007", 1)]
    shallow = "[" * 50 + "]" * 50
    assert codes(f"a: &x {shallow}\nb: [{'[' * 48}*x{']' * 48}]\n") == []  # 1 + 49 + 50 levels
    assert codes(f"a: &x {shallow}\nb: [{'[' * 49}*x{']' * 49}]\n") == [("RC007", 2)]
    items = MAX_DOCUMENT_VALUES - 3  # the root mapping, its key and the list
    assert codes("a: [" + ",".join(["1"] * items) + "]\n") == []
    assert codes("a: [" + ",".join(["1"] * (items + 1)) + "]\n") == [("RC008", 1)]
    per_document = "---\na: &x [" + ",".join(["1"] * 999) + "]\nb: [*x, *x, *x, *x, *x, *x, *x, *x, *x, *x]\n"
    documents = MAX_ALIAS_VALUES // 10_000  # each repeats 10 x 1,000 values through aliases
    assert codes(per_document * documents) == []
    assert codes(per_document * (documents + 1)) == [("RC008", documents * 3 + 3)]
