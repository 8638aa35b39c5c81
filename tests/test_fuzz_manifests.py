"""A bounded fuzz of manifests: random structure, unicode, huge strings, deep nesting, YAML tags,
anchors and aliases, put where manifests hold values, then ``validate`` and ``plan`` in-process
against a sandbox. Whatever the input, the only exceptions are the tool's own (``ReconcilerError``:
a ``ManifestError`` with located diagnostics, an API error); never an internal error.

Two runs: hostile input (anything, anywhere), and well-formed manifests with edge values, planned
against live objects of the same names, so that fetch, normalize, diff and render see them too.
Derandomized, with a fixed number of examples: a run is repeatable and bounded."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reconciler import render
from reconciler.client import ApiClient
from reconciler.engine import apply, make_plan
from reconciler.errors import ManifestError, ReconcilerError
from reconciler.sandbox import Sandbox
from reconciler.validate import validate
from tests.conftest import TOKEN

ENV = {"PG_USER": "u", "PG_PASSWORD": "p", "HOST": "db.example.com", "PORT": "5432"}
APP_IDS = ["postgres-crawler", "snowflake-crawler", "bigquery-crawler", "snowflake-miner", "no-such-app"]
CRONS = ["0 0 30 2 *", "0 0 L * *", "0 9 * * 1#2", "@daily", "*/5 * * * *", "0 0 29 2 *", "0 0 ? * *", "0 9 * * 5-1",
         "61 * * * *", "0 0 31 4,6 *", "30 2 * * *", "H 0 * * *", "0 0 * * 7", "0 9 * * MON-FRI", "5/15 * * * *"]
VALID_CRONS = ["@daily", "*/5 * * * *", "0 0 29 2 *", "30 2 * * *", "0 0 * * 7", "0 9 * * MON-FRI", "5/15 * * * *",
               "0 1 * * *"]
TIMEZONES = ["UTC", "Europe/Paris", "Asia/Kolkata", "America/New_York", "Asia/Calcutta", "Mars/Base", ""]
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])
# What YAML cannot hold raw, or reads as a line break (NEL, LS, PS), inside a flow scalar.
NOT_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def escaped(json_text: str) -> str:
    """JSON text YAML reads as the same data: characters YAML refuses raw are escaped."""
    return NOT_PRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", json_text)


def quoted(text: str) -> str:
    """A YAML double-quoted scalar (JSON's escapes are YAML's)."""
    return escaped(json.dumps(text, ensure_ascii=False))


# -- values ------------------------------------------------------------------------------------------

# Well-formed JSON data written as YAML flow, with edge values: unicode, huge strings, big numbers,
# nesting as deep as the caps allow.
json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
    st.sampled_from([100_000, 1_000_000]).map(lambda n: "x" * n),
)


def nested(levels: int) -> list[object]:
    value: list[object] = []
    for _ in range(levels - 1):
        value = [value]
    return value


json_data = st.one_of(
    st.recursive(json_leaves, lambda children: st.one_of(st.lists(children, max_size=4),
                                                         st.dictionaries(st.text(max_size=8), children, max_size=4)),
                 max_leaves=10),
    st.integers(min_value=1, max_value=90).map(nested),  # as deep as a manifest may nest, with its 3 levels above
).map(lambda value: escaped(json.dumps(value, ensure_ascii=False)))
json_scalars = st.one_of(st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                         st.text(max_size=20)).map(lambda value: escaped(json.dumps(value, ensure_ascii=False)))

# Anything: plain scalars YAML reads as other types, explicit and unknown tags, deep nesting,
# JSON strings deeper than the cap, and mappings with any keys.
words = st.sampled_from(["a", "db", "orders", "include_filter", "x-y", "日本", "ünï", "true", "null", "on", "~"])
plain_scalars = st.one_of(
    words,
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["2024-01-31", "2024-01-31T10:00:00Z", "2001-12-14 21:59:43.10 -5", ".inf", "-.NaN", "1e999", "0x1F",
                     "0o17", "1_000", "190:20:30", "yes", "No", "OFF", "<<", "=", "", "''", '""', "443.0", "1.5",
                     "1" * 5000]),
    st.sampled_from(["${env:HOST}", "${env:PORT}", "${env:UNSET}", "${var:x}", "$${env:HOST}", "${nope:x}", "${env:}",
                     "h-${env:PORT}"]).map(quoted),
)
tagged_scalars = st.tuples(
    st.sampled_from(["!!str", "!!int", "!!float", "!!bool", "!!null", "!!binary", "!!timestamp", "!Ref", "!",
                     "!!python/name:os.system", "!!merge", "!!map", "!!seq", "!<tag:yaml.org,2002:str>", "!!value"]),
    st.sampled_from(["1", "abc", "aGVsbG8=", "2024-01-01", "true", "1.5", "", "x y", "1" * 5000]),
).map(lambda t: f"{t[0]} {t[1]}")
scalars = st.one_of(plain_scalars, tagged_scalars, st.text(max_size=30).map(quoted), json_data)
deep = st.tuples(st.integers(min_value=90, max_value=400), st.sampled_from(["[", "{a: "])).map(
    lambda t: t[1] * t[0] + "1" + ("]" if t[1] == "[" else "}") * t[0])
json_strings = st.integers(min_value=1, max_value=3000).map(lambda n: quoted("[" * n + "]" * n))


def flow(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    keys = st.one_of(words, plain_scalars, tagged_scalars, st.just("[a, b]"), st.just("{k: v}"), st.just("<<"))
    return st.one_of(
        st.lists(children, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        st.lists(st.tuples(keys, children), max_size=4).map(
            lambda pairs: "{" + ", ".join(f"? {k} : {v}" for k, v in pairs) + "}"),
        st.tuples(st.sampled_from(["!!set", "!!omap", "!!pairs", "!!map", "!!seq", "!foo", "!!str"]), children).map(
            lambda t: f"{t[0]} [{t[1]}]" if t[0] in ("!!omap", "!!pairs", "!!seq") else f"{t[0]} {{k: {t[1]}}}"),
    )


@st.composite
def with_anchors(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    """A value that may be anchored and repeated through aliases (nested ones multiply), or hold
    an alias to itself or to nothing."""
    value = draw(base)
    if not draw(st.booleans()):
        return value
    repeats = draw(st.integers(min_value=1, max_value=12))
    text = f"&l0 {value}"
    for level in range(1, draw(st.integers(min_value=1, max_value=6)) + 1):
        text = f"[{text}, &l{level} [" + ", ".join([f"*l{level - 1}"] * repeats) + "]]"
    choice = draw(st.sampled_from(["plain", "self", "undefined"]))
    return {"plain": text, "self": "[&self [a, *self]]", "undefined": f"[*undefined, {text}]"}[choice]


anything = with_anchors(st.recursive(st.one_of(scalars, deep, json_strings), flow, max_leaves=12))


# -- manifests -----------------------------------------------------------------------------------------


@st.composite
def manifest(draw: st.DrawFn, hostile: bool, kind: str | None = None, name: str | None = None) -> str:
    """One document; each field well-formed, or (hostile: one time in four) anything."""

    def field(clean: st.SearchStrategy[str]) -> str:
        return draw(st.one_of(clean, clean, clean, anything) if hostile else clean)

    keys = st.one_of(st.sampled_from(["include_filter", "exclude_filter", "extraction_method", "agent_json", "enable_lineage",
                                      "miner_start_time_epoch", "port", "connection", "credential_guid"]),
                     st.text(min_size=1, max_size=10))
    inputs = st.dictionaries(keys, json_data, max_size=4).map(
        lambda d: "{" + ", ".join(f"{quoted(k)}: {v}" for k, v in d.items()) + "}")
    extra = st.dictionaries(keys, json_scalars, max_size=4).map(
        lambda d: "{" + ", ".join(f"{quoted(k)}: {v}" for k, v in d.items()) + "}")
    agent = "{extraction_method: agent, agent_json: {agent-name: a1}}"
    crons = st.one_of(st.sampled_from(CRONS), st.text(max_size=20)) if hostile else st.sampled_from(VALID_CRONS)
    schedule = st.tuples(crons, st.sampled_from(TIMEZONES if hostile else TIMEZONES[:5])).map(
        lambda t: f"{{cron: {quoted(t[0])}, timezone: {quoted(t[1])}}}")
    kinds = ["App", "App", "Credential", "Workflow"] + (["Project", "Anything"] if hostile else [])
    kind = kind or draw(st.sampled_from(kinds))
    if kind == "App":
        name = name or draw(st.sampled_from(["dp-a", "dp-b"]))
        lines = ["apiVersion: reconciler/v1", "kind: App", f"metadata: {{name: {name}}}",
                 "spec:", f"  appId: {draw(st.sampled_from(APP_IDS) if hostile else st.just('postgres-crawler'))}",
                 f"  connection: {{name: {field(st.sampled_from(['c', 'orders', quoted('日本 ✓')]))}, adminRoles: [$admin]}}",
                 f"  inputs: {field(st.one_of(st.just(agent), inputs))}"]
        if draw(st.booleans()):
            lines.append("  credentialRef: pg-cred")
        if draw(st.booleans()):
            lines.append(f"  schedules: [{field(schedule)}]")
        if draw(st.booleans()):
            lines.append(f"  ignoreDifferences: {field(st.just('[inputs.port]'))}")
        if hostile and draw(st.booleans()):
            lines.append(f"  inputz: {draw(anything)}")  # an unknown field
    elif kind == "Credential":
        lines = ["apiVersion: reconciler/v1", "kind: Credential", f"metadata: {{name: pg-cred, labels: {field(st.just('{}'))}}}",
                 "spec:", "  connector: postgres", "  authType: basic",
                 f"  host: {field(st.text(min_size=1, max_size=30).map(quoted))}",
                 f"  port: {field(st.integers(min_value=1, max_value=65535).map(str))}",
                 "  username: ${env:PG_USER}", "  password: ${env:PG_PASSWORD}", f"  extra: {field(extra)}"]
    elif kind == "Workflow":
        lines = ["apiVersion: reconciler/v1", "kind: Workflow", "metadata: {name: atlan-snowflake-miner-1714638976}", "spec:",
                 f"  parameters: {{enable-lineage: {field(st.sampled_from(['true', 'false', '1', '日本']))}, "
                 f"other: {field(json_scalars)}}}", f"  schedule: {field(schedule)}"]
    elif kind == "Project":
        lines = ["apiVersion: reconciler/v1", "kind: Project", "metadata: {name: p}",
                 f"spec: {{parallelism: {field(st.just('4'))}, ownership: {{namePrefixes: {field(st.just('[dp-]'))}}}}}"]
    else:
        lines = [draw(anything)]
    return "\n".join(lines) + "\n"


hostile_files = st.lists(manifest(hostile=True), min_size=1, max_size=3).map("---\n".join)
# Each object at most once: two documents of one name are an error (RC031), not a plan.
well_formed_files = st.tuples(*(st.one_of(st.just(""), manifest(hostile=False, kind=kind, name=name))
                                for kind, name in (("App", "dp-a"), ("App", "dp-b"), ("Credential", None), ("Workflow", None)))
                              ).map(lambda docs: "---\n".join(d for d in docs if d) or "# nothing\n")


def plan_once(sandbox: Sandbox, text: str) -> None:
    """validate, then plan and render: only the tool's own errors may come out."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        first = text.split("\n---\n")[0]
        (root / ("reconciler.yaml" if "kind: Project" in first else "m.yaml")).write_text(text, encoding="utf-8")
        result = validate([root], env=ENV)
        assert all(d.file and (d.line >= 1 or d.code == "RC001") for d in result.diagnostics)
        try:
            with ApiClient(sandbox.base_url, TOKEN, backoff_factor=0.01) as client:
                planned = make_plan([str(root)], client, api_key=TOKEN, env=ENV, tenant_id=sandbox.base_url)
        except ManifestError as exc:
            assert result.errors and exc.diagnostics, "plan refused manifests that validate accepted"
            event("refused: " + ", ".join(sorted({d.code for d in result.errors})))
            return
        except ReconcilerError as exc:
            event(f"plan error: {type(exc).__name__}")
            return  # the tool's own error, with a message and a hint
        assert not result.errors, "plan accepted manifests that validate refused"
        event("planned: " + ", ".join(sorted({c.action.value for c in planned.plan.changes})))
        render.plan_text(planned.plan)
        render.plan_markdown(planned.plan)
        json.loads(render.plan_json(planned.plan))


@settings(max_examples=100, **SETTINGS)
@given(text=hostile_files)
def test_hostile_manifests_never_cause_an_internal_error(sandbox: Sandbox, text: str) -> None:
    plan_once(sandbox, text)


_seeded: set[str] = set()
BASE = """apiVersion: reconciler/v1
kind: Credential
metadata: {name: pg-cred}
spec:
  {connector: postgres, authType: basic, host: db.example.com, port: 5432, username: "${env:PG_USER}",
   password: "${env:PG_PASSWORD}"}
---
apiVersion: reconciler/v1
kind: App
metadata: {name: dp-a}
spec:
  appId: postgres-crawler
  connection: {name: orders, adminRoles: [$admin]}
  inputs: {extraction_method: agent, agent_json: {agent-name: a1}, include_filter: {"^orders$": ["^public$"]}}
  schedules: [{cron: "0 1 * * *", timezone: UTC}]
---
apiVersion: reconciler/v1
kind: App
metadata: {name: dp-b}
spec:
  appId: postgres-crawler
  credentialRef: pg-cred
  connection: {name: billing, adminRoles: [$admin]}
  inputs: {extraction_method: direct, credential_guid: ""}
"""


@settings(max_examples=100, **SETTINGS)
@given(text=well_formed_files)
def test_well_formed_manifests_with_edge_values_plan_against_live_objects(sandbox: Sandbox, text: str) -> None:
    if sandbox.base_url not in _seeded:  # once per sandbox: live objects of the names the examples use
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "base.yaml").write_text(BASE)
            with ApiClient(sandbox.base_url, TOKEN, backoff_factor=0.01) as client:
                _, report = apply([folder], client, api_key=TOKEN, env=ENV, tenant_id=sandbox.base_url)
        assert not report.failed, report
        _seeded.add(sandbox.base_url)
    plan_once(sandbox, text)
