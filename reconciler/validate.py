"""Documents → desired State + diagnostics. Offline: never touches the network.

Takes manifest paths and the environment; returns every resource that validated and **every**
problem in every file (schema violations with their precise path, unknown kinds, invalid
names, duplicate identities, dangling credential references, invalid cron or timezone, missing
environment variables or variables, literal secrets, workflows that manage nothing, ownership
prefixes too short to mean "ours"), each with a stable code and a source position. Secret values
are never read here: secret fields keep their ``${env:NAME}`` reference, and only the presence of
NAME is checked.

What passes here must not fail later for its shape: an integer field takes only integers (JSON
Schema would take 443.0, the tenant does not), and a JSON setting written as a string (which the
plan parses) is no deeper than ``manifests.MAX_DEPTH``. Files too large, too deep, alias bombs
and values JSON cannot carry are refused by ``manifests`` before they get here.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import cron, kinds, manifests
from reconciler.defaults import PARALLELISM
from reconciler.defaults import STATE_FILE as DEFAULT_STATE_FILE
from reconciler.errors import Diagnostic
from reconciler.manifests import Document, JsonPath, Substitution, json_path
from reconciler.model import Resource, ResourceKey, SourceRef
from reconciler.schema_errors import missing_fields, schema_of, unknown_fields

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator, ValidationError

    from reconciler.normalize import Context

SECRET_LOOKING = re.compile(r"password|secret|private_?key|passphrase|token", re.I)
MIN_PREFIX = 3  # an ownership prefix shorter than this claims objects made elsewhere (the UI's, another team's)



def _validator(kind: str) -> Draft202012Validator:
    """The kind's schema, with integers that are integers (built once per registered kind)."""
    return _strict(kind, None if kind == kinds.PROJECT_KIND else kinds.get(kind))


@functools.cache
def _strict(kind: str, registered: kinds.Kind | None) -> Draft202012Validator:
    from jsonschema import Draft202012Validator, validators

    # JSON Schema counts 443.0 as an integer; the tenant does not. Booleans are not integers either.
    strict = validators.extend(Draft202012Validator, type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)))
    return strict(kinds.schema(kind))


def _fast_check(kind: str) -> Callable[[Any], Any] | None:
    """The kind's schema compiled by fastjsonschema (built once per registered kind): it raises
    at the first error, and says nothing of the others; None when it cannot be trusted to take
    only what jsonschema takes."""
    return _compiled(kind, None if kind == kinds.PROJECT_KIND else kinds.get(kind))


@functools.cache
def _compiled(kind: str, registered: kinds.Kind | None) -> Callable[[Any], Any] | None:
    import fastjsonschema

    schema = _draft4(kinds.schema(kind))
    if not isinstance(schema, dict):
        return None
    try:
        return fastjsonschema.compile({**schema, "$schema": "http://json-schema.org/draft-04/schema#"},
                                      use_default=False)  # its default fills missing fields in: never
    except Exception:  # noqa: BLE001 - a schema it cannot compile is checked by jsonschema alone
        return None


# What fastjsonschema reads as jsonschema does. Its draft-4 reading is used because its later ones
# take 443.0 as an integer; draft 4 has no const (an enum of one string says the same) and reads
# an items list and exclusiveMinimum differently (not taken).
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "default", "examples", "readOnly",
                          "writeOnly", "deprecated"})
_AS_IS = frozenset({"type", "required", "minLength", "maxLength", "minItems", "maxItems", "minProperties",
                    "maxProperties", "minimum", "maximum"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties"})
_SCHEMA_LISTS = frozenset({"anyOf", "allOf", "oneOf"})


def _draft4(schema: Any) -> dict[str, Any] | bool | None:
    """``schema`` (draft 2020-12) as draft 4 says it, or None where a keyword might be read more
    loosely there: an enum or const of anything but strings (1 == True to Python), uniqueItems
    over anything but strings (told apart by their text there), a pattern with a lookaround (its
    '$' is read as the end of the text), any keyword not listed."""
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, dict):
        return None
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _ANNOTATIONS:
            continue
        if _as_is(key, value, schema):
            out[key] = value
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _draft4(sub) for name, sub in value.items()}
            if any(sub is None for sub in out[key].values()):
                return None
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_draft4(sub) for sub in value]
            if any(sub is None for sub in out[key]):
                return None
        elif key in ("not", "additionalProperties", "items") and isinstance(value, (dict, bool)):
            out[key] = _draft4(value)
            if out[key] is None:
                return None
        elif key in ("const", "enum") and "enum" not in out and all(
                isinstance(v, str) for v in ([value] if key == "const" else value if isinstance(value, list) else [None])):
            out["enum"] = [value] if key == "const" else value
        else:
            return None
    return out


def _as_is(key: str, value: Any, schema: dict[str, Any]) -> bool:
    """Whether draft 4 reads this keyword as draft 2020-12 does."""
    if key == "pattern":
        return isinstance(value, str) and "(?" not in value
    if key == "uniqueItems":
        items = schema.get("items")
        return value is False or (isinstance(items, dict) and items.get("type") == "string")
    return key in _AS_IS


@dataclass
class Project:
    """Settings from reconciler.yaml (defaults when there is none)."""

    root: Path
    file: str | None = None
    name: str = ""
    owned_prefixes: tuple[str, ...] = ()
    parallelism: int = PARALLELISM
    state_file: Path = Path(DEFAULT_STATE_FILE)
    var_files: tuple[Path, ...] = ()


@dataclass
class Manifests:
    """The result of validation: the desired State and what was found on the way."""

    resources: dict[ResourceKey, Resource]
    project: Project
    diagnostics: list[Diagnostic]
    files: list[str] = field(default_factory=list)
    documents: int = 0

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if not d.is_error]


class _Reporter:
    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def at(self, doc: Document, path: Iterable[Any], code: str, message: str, hint: str = "",
           severity: str = "error") -> None:
        p = tuple(path)
        line, column = doc.locate(p)
        self.diagnostics.append(Diagnostic(doc.file, line, column, code, message, json_path(p), severity, hint))


def validate(
    paths: Iterable[str | os.PathLike[str]],
    *,
    var_files: Iterable[str | os.PathLike[str]] = (),
    env: Mapping[str, str] | None = None,
    allow_missing_secrets: bool = False,
    allow_literal_secrets: bool = False,
    api_key_env: str = "ATLAN_API_KEY",
    only_given_files: bool = False,
) -> Manifests:
    """``only_given_files``: when only files are given, report only their problems (what a
    pre-commit hook wants); plan and apply always hear of every problem of the project."""
    paths = list(paths)
    # Given only files (as a pre-commit hook passes them): the whole project they belong to is
    # validated, so that ${var:} and references to other files resolve, and their problems shown.
    project_file = _project_file_above(paths)
    given = {manifests.display_path(Path(p)) for p in paths} if project_file and only_given_files else set()
    if project_file:
        given |= {manifests.display_path(project_file)} if given else set()
        paths = [project_file.parent]
    env = os.environ if env is None else env
    files, documents, diagnostics = manifests.load(paths)
    report = _Reporter()
    report.diagnostics.extend(diagnostics)

    project, documents = _project(paths, documents, report)
    # The state file may live among the manifests as a link to a file not written yet (a state
    # file shared by several projects): not a manifest, so not a link that hides one.
    state_file = os.path.abspath(project.state_file)
    report.diagnostics = [d for d in report.diagnostics
                          if not (d.code == "RC001" and d.file and os.path.abspath(d.file) == state_file)]
    all_var_files = [*project.var_files, *(Path(v) for v in var_files)]
    # Variables files may live among the manifests; they are not manifests.
    # Compared by real path: either may have been reached through a link (realpath, unlike
    # resolve(), does not raise on a link loop).
    var_targets = {os.path.realpath(v) for v in all_var_files}
    if var_targets:
        real = {file: os.path.realpath(file) for file in {d.file for d in documents}}
        documents = [d for d in documents if real[d.file] not in var_targets]
    variables: dict[str, Any] = {}
    for var_file in all_var_files:
        found, problems = manifests.load_variables(var_file)
        variables.update(found)  # later files override earlier ones
        report.diagnostics.extend(problems)
    subs = Substitution(env=env, variables=variables, allow_missing_secrets=allow_missing_secrets,
                        allow_literal_secrets=allow_literal_secrets)

    checked: list[tuple[Document, dict[str, Any], bool]] = []
    for doc in documents:
        data, valid = _check_document(doc, subs, report)
        if data is not None:
            checked.append((doc, data, valid))

    _check_secret_use(checked, env, api_key_env, report)
    resources = _cross_check(checked, report)
    if given:
        report.diagnostics = [d for d in report.diagnostics if not d.file or d.file in given]
    return Manifests(resources=resources, project=project, diagnostics=sorted(set(report.diagnostics)),
                     files=[manifests.display_path(f) for f in files], documents=len(documents))


# -- the project file ----------------------------------------------------------------------------


def _project_file_above(paths: list[Any]) -> Path | None:
    """Given only files, the project's reconciler.yaml found by walking up from the first one, to
    the top of the Git checkout."""
    if not paths or any(os.path.isdir(p) or Path(p).name == kinds.PROJECT_FILE for p in paths):
        return None
    return project_file_from(Path(paths[0]).parent)


def project_file_from(folder: Path) -> Path | None:
    """The reconciler.yaml of the project a folder is part of: in it, or in a folder above it, up
    to the top of the Git checkout (relative to the working folder)."""
    folder = Path(os.path.abspath(folder))
    while True:
        candidate = folder / kinds.PROJECT_FILE
        if candidate.is_file():
            return Path(os.path.relpath(candidate))
        if (folder / ".git").exists() or folder.parent == folder:
            return None
        folder = folder.parent


def _project(paths: list[Any], documents: list[Document], report: _Reporter) -> tuple[Project, list[Document]]:
    roots = [Path(p) for p in paths if os.path.isdir(p)]  # False, not an error, for a path that cannot be read
    root_files = {manifests.display_path(r / kinds.PROJECT_FILE) for r in roots}
    root_files |= {manifests.display_path(Path(p)) for p in paths if Path(p).name == kinds.PROJECT_FILE}
    project = Project(root=roots[0] if roots else Path("."))
    project.state_file = project.root / DEFAULT_STATE_FILE
    rest: list[Document] = []
    for doc in documents:
        is_project = isinstance(doc.data, dict) and doc.data.get("kind") == kinds.PROJECT_KIND
        in_project_file = os.path.basename(doc.file) == kinds.PROJECT_FILE
        if not is_project and not in_project_file:
            rest.append(doc)
            continue
        if doc.file not in root_files:
            report.at(doc, (), "RC070", f"{kinds.PROJECT_FILE} and kind Project belong only at the root of the manifests",
                      f"Move it to the folder you pass to the reconciler, as {kinds.PROJECT_FILE}.")
            continue
        if project.file is not None:
            report.at(doc, (), "RC070", f"a second project document; the first is in {project.file}",
                      "Keep one reconciler.yaml with one document.")
            continue
        if not is_project:
            found = doc.data.get("kind") if isinstance(doc.data, dict) else None
            report.at(doc, ("kind",), "RC070", f"{kinds.PROJECT_FILE} must hold kind Project, not {found!r}",
                      "Put manifests in other files; reconciler.yaml holds only the project settings.")
            continue
        short_prefixes = _check_prefixes(doc, report)
        if not _schema_ok(doc, doc.data, kinds.PROJECT_KIND, report, covered=short_prefixes):
            continue
        spec = doc.data.get("spec") or {}
        base = Path(os.path.abspath(doc.file)).parent
        project.file = doc.file
        project.root = base
        project.name = doc.data["metadata"]["name"]
        project.owned_prefixes = tuple((spec.get("ownership") or {}).get("namePrefixes") or ())
        project.parallelism = int(spec.get("parallelism", PARALLELISM))
        project.state_file = base / spec.get("stateFile", DEFAULT_STATE_FILE)
        project.var_files = tuple(base / v for v in spec.get("varFiles") or ())
    return project, rest


def _check_prefixes(doc: Document, report: _Reporter) -> set[JsonPath]:
    """RC071 for every ownership prefix too short to mean "ours"; returns where it was reported.
    Live objects whose names start with a prefix are delete candidates, so a one-letter prefix
    would make objects created in the UI deletable."""
    spec = doc.data.get("spec") if isinstance(doc.data, dict) else None
    ownership = spec.get("ownership") if isinstance(spec, dict) else None
    prefixes = ownership.get("namePrefixes") if isinstance(ownership, dict) else None
    reported: set[JsonPath] = set()
    for i, prefix in enumerate(prefixes if isinstance(prefixes, list) else ()):
        if isinstance(prefix, str) and len(prefix) < MIN_PREFIX:
            path = ("spec", "ownership", "namePrefixes", i)
            report.at(doc, path, "RC071", f"ownership prefix {prefix!r} is too short: a prefix must have at least "
                      f"{MIN_PREFIX} characters, or it would claim objects created outside this project",
                      "Use a prefix only this project's objects start with, such as 'dp-'.")
            reported.add(path)
    return reported


# -- one document ---------------------------------------------------------------------------------


def _check_document(doc: Document, subs: Substitution, report: _Reporter) -> tuple[dict[str, Any] | None, bool]:
    """(data after substitution, valid). Data is None when the document is not an object of a
    known kind; otherwise every check runs, even after a schema error, so that all problems are
    reported at once."""
    data = doc.data
    if data is None:
        return None, False  # an empty document (only comments, or a bare ---)
    if not isinstance(data, dict):
        report.at(doc, (), "RC010", f"a manifest must be a mapping with apiVersion, kind, metadata and spec, not {_type_name(data)}")
        return None, False
    api_version, kind = data.get("apiVersion"), data.get("kind")
    ok = True
    if api_version != kinds.API_VERSION:
        what = "missing apiVersion" if api_version is None else f"unknown apiVersion {api_version!r}"
        report.at(doc, ("apiVersion",), "RC010", what, f"Write apiVersion: {kinds.API_VERSION}")
        ok = False
    if not kinds.known(kind):
        known = ", ".join(kinds.names())
        guess = difflib.get_close_matches(str(kind), kinds.names(), n=1)
        what = "missing kind" if kind is None else f"unknown kind {kind!r}"
        report.at(doc, ("kind",), "RC011", what,
                  f"Did you mean {guess[0]}?" if guess else f"The kinds are {known}.")
        return None, False
    spec = kinds.get(kind)
    before = len(report.diagnostics)
    substituted = manifests.substitute(doc, data, lambda p: _is_secret(spec, p), subs, report.diagnostics)
    # apiVersion has been reported already when wrong; the schema would say it again.
    schema_ok = _schema_ok(doc, substituted, kind, report, reported=() if ok else ("apiVersion",))
    _check_schedules(doc, spec, substituted, report)
    _check_semantics(doc, spec, substituted, report)
    _check_json_settings(doc, substituted, report)
    valid = ok and schema_ok and not any(d.is_error for d in report.diagnostics[before:])
    return substituted, valid


def _check_secret_use(checked: list[tuple[Document, dict[str, Any], bool]], env: Mapping[str, str], api_key_env: str,
                      report: _Reporter) -> None:
    """RC057: the API key (or the fingerprint key) named anywhere in a manifest, or typed in it;
    and a field that is not secret taking a variable that is a secret elsewhere in the manifests.
    Either would send it where it is stored and shown in clear (a plan, a pull-request comment,
    the tenant's public fields)."""
    protected = {api_key_env, *manifests.PROTECTED_VARIABLES}
    key_values = {env[name]: name for name in protected if env.get(name)}
    secret_variables: set[str] = set()
    for doc, data, _ in checked:
        spec = kinds.get(data["kind"]) if kinds.known(data.get("kind")) else None
        for value in _secret_texts(spec, doc.data) if spec is not None else ():
            secret_variables |= {m["name"] for m in manifests.REFERENCE.finditer(value) if m["source"] == "env"}
    for doc, data, _ in checked:
        spec = kinds.get(data["kind"]) if kinds.known(data.get("kind")) else None
        # Only a text that holds a reference, or is the key itself, can name the key or a secret.
        for path, value in _texts(doc.data, lambda text: "${" in text or text in key_values):
            secret_field = spec is not None and _is_secret(spec, path)
            names = {m["name"] for m in manifests.REFERENCE.finditer(value) if m["source"] == "env"}
            named_key = sorted(names & protected) or ([key_values[value]] if value in key_values else [])
            if named_key:
                report.at(doc, path, "RC057", f"{named_key[0]} is the tenant's API key (or the fingerprint key): never "
                          "written in a manifest, where it would be sent to the tenant and shown",
                          "Remove it; give a credential its own secret variables.")
            elif not secret_field and names & secret_variables:
                source = sorted(names & secret_variables)[0]
                report.at(doc, path, "RC057", f"this field is not secret, but it takes {source}, which is a secret "
                          "elsewhere: it would be stored and shown in clear",
                          "Use a separate variable for a value that is not secret, or put it in a secret field "
                          "(username, password, secretExtra).")


def _secret_texts(spec: kinds.Kind, data: Any) -> list[str]:
    """The texts of a document's secret fields (what ``_is_secret`` says of its leaves)."""
    body = data.get("spec") if isinstance(data, dict) else None
    if not isinstance(body, dict):
        return []
    texts = [body[name] for name in spec.secret_paths if isinstance(body.get(name), str)]
    for name in spec.secret_maps:
        values = body.get(name)
        values = values.values() if isinstance(values, dict) else values if isinstance(values, list) else ()
        texts += [value for value in values if isinstance(value, str)]
    return texts


def _texts(data: Any, wanted: Callable[[str], bool]) -> list[tuple[JsonPath, str]]:
    """The texts among the leaves of ``data`` that ``wanted`` takes, with their paths."""
    found: list[tuple[JsonPath, str]] = []
    pending: list[tuple[JsonPath, Any]] = [((), data)]
    while pending:
        path, value = pending.pop()
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else None
        if items is None:
            if isinstance(value, str) and wanted(value):
                found.append((path, value))
            continue
        for key, item in items:
            if isinstance(item, str):
                if wanted(item):
                    found.append(((*path, key), item))
            elif isinstance(item, (dict, list)):
                pending.append(((*path, key), item))
    return found


def _is_secret(spec: kinds.Kind, path: JsonPath) -> bool:
    if len(path) < 2 or path[0] != "spec":
        return False
    if len(path) == 2 and path[1] in spec.secret_paths:
        return True
    return len(path) == 3 and path[1] in spec.secret_maps


def _schema_ok(doc: Document, data: Any, kind: str, report: _Reporter, reported: tuple[str, ...] = (),
               covered: set[JsonPath] | frozenset[JsonPath] = frozenset()) -> bool:
    """Report the schema errors, except under the top-level fields in ``reported`` (already said)
    and at the exact paths in ``covered`` (said more precisely by another check). True when the
    data has no schema error, or only covered ones."""
    check = _fast_check(kind)
    if check is not None:
        from fastjsonschema import JsonSchemaException

        try:
            check(data)
            return True  # no error at all: what jsonschema would say, without its cost
        except JsonSchemaException:
            pass  # jsonschema finds every error, each at its path
    errors = [e for e in _validator(kind).iter_errors(data) if tuple(e.absolute_path) not in covered]
    said_missing: set[tuple[JsonPath, int]] = set()
    for error in errors:
        path = tuple(error.absolute_path)
        if path and path[0] in reported:
            continue
        if error.validator == "required":
            # jsonschema raises one "required" error per missing field, each carrying the whole
            # list: the first of one schema at one path reports every missing field, the rest nothing.
            if (path, id(error.schema)) in said_missing:
                continue
            said_missing.add((path, id(error.schema)))
        _report_schema_error(doc, error, report, said=reported if not path else ())
    return not errors


def _report_schema_error(doc: Document, error: ValidationError, report: _Reporter, said: tuple[str, ...] = ()) -> None:
    """One schema error as diagnostics; ``said``: missing fields already reported (not again)."""
    if error.validator == "anyOf" and error.context:
        from jsonschema.exceptions import best_match

        error = best_match(error.context)
    path = tuple(error.absolute_path)
    where = json_path(path) or "the document"
    schema = schema_of(error)
    if error.validator == "additionalProperties":
        allowed = sorted((schema.get("properties") or {}).keys())
        for extra in unknown_fields(error):
            guess = difflib.get_close_matches(str(extra), allowed, n=1)
            hint = f"Did you mean {guess[0]!r}?" if guess else f"Allowed here: {', '.join(allowed)}."
            report.at(doc, path + (extra,), "RC021", f"unknown field {extra!r} in {where}", hint)
    elif error.validator == "required":
        for name in missing_fields(error):
            if name in said:
                continue
            description = ((schema.get("properties") or {}).get(name) or {}).get("description", "")
            report.at(doc, path, "RC022", f"missing required field {name!r} in {where}", description)
    elif error.validator == "type":
        names = error.validator_value  # a type's name, or a list of names
        expected = names if isinstance(names, str) else " or ".join(names) if isinstance(names, list) else str(names)
        got = _type_name(error.instance)
        hint = schema.get("description", "")
        if isinstance(error.instance, float) and "integer" in expected:
            got = f"{error.instance!r}, a number with a decimal point"
            if error.instance.is_integer():
                hint = f"Write {int(error.instance)}. " + hint
        report.at(doc, path, "RC023", f"{where} must be {expected}, got {got}", hint.strip())
    elif path == ("metadata", "name"):
        suggestion = re.sub(r"[^a-z0-9._-]+", "-", str(error.instance).lower()).strip("-._")
        report.at(doc, path, "RC030", f"invalid name {error.instance!r}: names use lower-case letters, digits, "
                  "'.', '_' and '-', start and end with a letter or digit, and are at most 100 characters",
                  f"For example: {suggestion[:100]!r}" if suggestion else "")
    elif error.validator == "not" and isinstance(error.validator_value, dict) and list(error.validator_value) == ["required"]:
        together = error.validator_value["required"]  # fields that exclude each other
        report.at(doc, path + (together[-1],), "RC025", f"{' and '.join(together)} exclude each other in {where}: "
                  "give one of them", ((schema.get("properties") or {}).get(together[-1]) or {}).get("description", ""))
    elif error.validator == "const" and path == ("kind",):
        report.at(doc, path, "RC011", error.message)
    else:
        report.at(doc, path, "RC024", f"invalid value at {where}: {error.message}", schema.get("description", ""))


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _spec_of(data: dict[str, Any]) -> dict[str, Any]:
    body = data.get("spec")
    return body if isinstance(body, dict) else {}


def _check_schedules(doc: Document, spec: kinds.Kind, data: dict[str, Any], report: _Reporter) -> None:
    body = _spec_of(data)
    schedules: list[tuple[JsonPath, Any]] = []
    if spec.schedule_list and isinstance(body.get(spec.schedule_list), list):
        schedules += [(("spec", spec.schedule_list, i), s) for i, s in enumerate(body[spec.schedule_list])]
    if spec.schedule_single and isinstance(body.get(spec.schedule_single), dict):
        schedules.append((("spec", spec.schedule_single), body[spec.schedule_single]))
    for path, schedule in schedules:
        if not isinstance(schedule, dict) or "cron" not in schedule:
            continue  # the schema check has reported it
        problem = cron.cron_problem(schedule.get("cron"))
        if problem:
            report.at(doc, path + ("cron",), "RC040", f"invalid cron: {problem}",
                      "Five fields: minute hour day-of-month month day-of-week, e.g. '0 9 * * MON-FRI', or @daily.")
        if "timezone" in schedule:
            problem = cron.timezone_problem(schedule["timezone"])
            if problem:
                report.at(doc, path + ("timezone",), "RC041", problem)


def _check_semantics(doc: Document, spec: kinds.Kind, data: dict[str, Any], report: _Reporter) -> None:
    body = _spec_of(data)
    if not isinstance(data.get("spec"), dict):
        return
    # A field counts as set when it has content, or is explicitly null (a null schedule removes it).
    if spec.needs_one_of and not any(body.get(f) or (f in body and body[f] is None) for f in spec.needs_one_of):
        report.at(doc, ("spec",), "RC060", f"this {spec.kind} manages nothing: it sets none of {', '.join(spec.needs_one_of)}",
                  "Name the parameters to enforce, or a schedule (null removes the schedule).")
    for plain, secret in spec.secret_twins:
        extra = body.get(plain)
        for key in extra if isinstance(extra, dict) else ():
            if SECRET_LOOKING.search(str(key)):
                report.at(doc, ("spec", plain, key), "RC056", f"{plain}.{key} looks like a secret, but {plain} is shown in plans",
                          f"Move it to {secret}.{key} and write it as ${{env:NAME}}.", severity="warning")


def _check_json_settings(doc: Document, data: dict[str, Any], report: _Reporter) -> None:
    """RC007 for an input written as a JSON string (the plan parses it) nested past the cap, which
    would otherwise exhaust the recursion of every later stage."""
    inputs = _spec_of(data).get("inputs")
    for key, value in inputs.items() if isinstance(inputs, dict) else ():
        if not isinstance(value, str) or value.lstrip()[:1] not in ("{", "["):
            continue
        path = ("spec", "inputs", key)
        room = manifests.MAX_DEPTH - len(path)
        if value.count("[") + value.count("{") <= room:
            continue  # cannot be that deep: the common case costs two counts
        try:
            depth = _depth(json.loads(value), room + 1)
        except RecursionError:
            depth = room + 1
        except ValueError:
            continue  # not JSON: it stays a string
        if depth > room:
            report.at(doc, path, "RC007", f"nested too deeply: this JSON setting has more than {room} levels, and the "
                      f"manifest may nest at most {manifests.MAX_DEPTH} in all",
                      "Flatten the structure; no setting needs that depth.")


def _depth(value: Any, limit: int) -> int:
    """How deeply lists and mappings nest in ``value``, counted up to ``limit`` (without recursion)."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, (dict, list)):
            if level >= limit:
                return limit
            deepest = max(deepest, level)
            pending.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


# -- across documents --------------------------------------------------------------------------------


def _cross_check(checked: list[tuple[Document, dict[str, Any], bool]], report: _Reporter) -> dict[ResourceKey, Resource]:
    """Duplicate identities and dangling references, over every document of a known kind; the
    desired State holds only the documents without errors."""
    first_seen: dict[ResourceKey, Document] = {}
    named: list[tuple[ResourceKey, Document, dict[str, Any], bool]] = []
    for doc, data, valid in checked:
        metadata = data.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if not isinstance(name, str):
            continue
        key = ResourceKey(data["kind"], name)
        if key in first_seen:
            first = first_seen[key]
            report.at(doc, ("metadata", "name"), "RC031",
                      f"{key} is defined twice; the first definition is at {first.file}:{first.locate(('metadata', 'name'))[0]}",
                      "Each object may be declared once; remove or rename one of them.")
            continue
        first_seen[key] = doc
        named.append((key, doc, data, valid))
    names_by_kind: dict[str, set[str]] = {}
    for key in first_seen:
        names_by_kind.setdefault(key.kind, set()).add(key.name)
    resources: dict[ResourceKey, Resource] = {}
    for key, doc, data, valid in named:
        body = _spec_of(data)
        for field_name, target in kinds.get(key.kind).references:
            ref = body.get(field_name)
            if not isinstance(ref, str) or kinds.GUID.match(ref) or ref in names_by_kind.get(target, set()):
                continue
            known = sorted(names_by_kind.get(target, set()))
            guess = difflib.get_close_matches(ref, known, n=1)
            hint = f"Did you mean {guess[0]!r}?" if guess else (
                f"Declare a {target} named {ref!r}, or give the guid of an existing one." if not known
                else f"Known {target} names: {', '.join(known)}.")
            report.at(doc, ("spec", field_name), "RC032", f"{field_name} {ref!r} names no {target} in these manifests", hint)
            valid = False
        if valid:
            resources[key] = Resource(key=key, spec=body, origin=SourceRef(doc.file, doc.line), metadata=data["metadata"])
    return resources


def online_checks(desired: Mapping[ResourceKey, Resource], context: Context) -> list[tuple[ResourceKey, Diagnostic]]:
    """What only the tenant can tell (``context``: what the fetch learned):
    each kind's ``online_problems``, e.g. unknown app ids and inputs that a contract rejects."""
    return [(key, d) for key, resource in sorted(desired.items())
            for d in kinds.get(key.kind).online_problems(resource, context)]
