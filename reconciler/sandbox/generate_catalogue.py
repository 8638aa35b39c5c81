"""Generate ``catalogue_sdk.py``, the sandbox's catalogue of every app the official SDK can build.

Run ``python -m reconciler.sandbox.generate_catalogue`` in an environment that has pyatlan, and
commit the output (``--check`` only says whether it is current). pyatlan is imported inside
:func:`generate` only: the package never needs it at run time, the sandbox reads the committed
module. Regenerating with the same pyatlan reproduces the file byte for byte.

Takes the installed ``pyatlan.model.apps`` builders; writes one Python module of plain data (a
module, not a JSON file, so that it ships with the package without packaging configuration).
Every app's entry is derived from what its builder *sends*: the generator drives each builder's
``create()`` against an SDK client whose HTTP calls are answered offline (:class:`Recorder`) and
reads the ``inputs`` of the request body, as the SDK serializes it.

* App id, entrypoint (``""``: the builder omits it and the server resolves the app's default
  slot), connector: the builder's ``_APP_ID``, ``_ENTRYPOINT``, ``_CONNECTOR_NAME``. The display
  name is the builder's class name in words (the SDK has no display names).
* Keys and defaults: what ``create()`` sends for a builder given only ``.connection(name=...)``,
  hidden defaults included. Keys are the pydantic *field names* (``include_filter``); the
  hyphenated aliases (``include-filter``, the configmap ids) never reach the wire. Note that
  ``AppClient.create`` is wrapped in ``validate_arguments``, which turns the Inputs model into a
  plain dict before ``to_inputs()`` is reached: every unset ``Optional`` goes out as ``null``
  (``agent_json``, Kafka Confluent's ``include_cloud_metrics``, and ``credential_guid`` with an
  agent), although ``preview()`` and ``to_inputs()`` drop them. The contract accepts those nulls.
* Types: the JSON types of every value sent for the key, by default and by each setter for
  sample arguments (a filter a setter JSON-encodes is a string; a field a setter passes a mapping
  through to, or whose default is an object, accepts an object). A key never sent with a value
  takes its Inputs annotation.
* Enums: where every setter of a key takes only ``Literal`` or ``bool`` arguments, the values
  they send (``"true"``/``"false"`` toggle strings come out of this), plus the default. A hidden
  ``"true"``/``"false"`` string gets the same toggle enum, as in the hand-written contracts.
* JSON strings (``contentMediaType: application/json``): string keys whose default, or whose
  setters' output for a mapping or list argument, is JSON; and ``control_config`` and
  ``cross_connection_qualified_names``, which the SDK's ``_base.py`` and Standard Lineage overlay
  describe as JSON held in a string even where the default is ``""``.
* Named credential fields (dbt's ``api_credential_guid``): the fields a credential method stages
  a raw credential into other than ``credential_guid``; ``create()`` vaults those first and sends
  the guid.
* Titles: the UI label of the Inputs field's docstring (the text before " — "), else the key.
* Order: the Inputs fields as declared, then hidden defaults, then keys only setters send (the
  order a skeleton lists them in); everything else sorted.

A setter that refuses every sample argument, or that computes its keys at run time, needs an
entry in ``_PROBES``: the generator stops and says so rather than miss a key.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import inspect
import itertools
import json
import pkgutil
import re
import sys
import textwrap
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).with_name("catalogue_sdk.py")

PLUMBING = ("connection", "connection_qualified_name", "extraction_method", "credential_guid", "agent_json")

# Keys the SDK says are JSON held in a string even when their default is "" (see the module docstring).
JSON_BY_NAME = frozenset({"control_config", "cross_connection_qualified_names"})

_TYPE_ORDER = ("string", "boolean", "integer", "number", "object", "array", "null")

# Builder methods that run no network call but need real arguments: Standard Lineage's scope must be
# connection qualified names of one connector; Databricks names its regex keys after the asset type.
_PROBES: dict[tuple[str, str], Callable[[Any], list[dict[str, Any]]]] = {
    ("AtlanStandardLineage", "connections"): lambda cls: [{"qualified_names": ["default/bigquery/1700000000"]}],
    ("DatabricksCrawler", "asset_selection"): lambda cls: [{
        "include_hierarchy": {"catalog": ["schema"]},
        "exclude_hierarchy": {"catalog": ["schema"]},
        "include_regex": {kind: ".*" for kind in cls._REGEX_ASSET_TYPES},
        "exclude_regex": {kind: ".*" for kind in cls._REGEX_ASSET_TYPES},
    }],
}


# -- JSON types --------------------------------------------------------------------------------------


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    raise TypeError(f"not a JSON value: {value!r}")


def annotation_types(annotation: Any) -> set[str] | None:
    """The JSON types a Python annotation admits; None when it admits anything."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return None
    if origin is typing.Union:
        out: set[str] = set()
        for arg in typing.get_args(annotation):
            if arg is type(None):
                continue
            types = annotation_types(arg)
            if types is None:
                return None
            out |= types
        return out
    if origin is typing.Literal:
        return {json_type(v) for v in typing.get_args(annotation)}
    simple = {str: "string", bool: "boolean", int: "integer", float: "number", dict: "object", list: "array"}
    if annotation in simple:
        return {simple[annotation]}
    if origin in (dict, Mapping, typing.Mapping):
        return {"object"}
    if origin in (list, tuple, set, Sequence):
        return {"array"}
    return None


def type_schema(types: set[str]) -> str | list[str]:
    if "number" in types:
        types = types - {"integer"}
    ordered = [t for t in _TYPE_ORDER if t in types]
    return ordered[0] if len(ordered) == 1 else ordered


def _is_json_text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return isinstance(json.loads(value), (dict, list))
    except ValueError:
        return False


# -- reading a builder ---------------------------------------------------------------------------------


def field_titles(inputs_class: type) -> dict[str, str]:
    """Field name → the UI label of its docstring (the attribute docstring under the field)."""
    titles: dict[str, str] = {}
    tree = ast.parse(textwrap.dedent(inspect.getsource(inputs_class)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, after in itertools.pairwise([*body, None]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            label = after.value.value.split(" — ")[0].strip()
            if label:
                titles[node.target.id] = label
    return titles


def humanize(key: str) -> str:
    return " ".join(word.capitalize() for word in re.split(r"[_-]+", key) if word)


def _returns_builder(method: Any, builder: type) -> bool:
    annotation = inspect.signature(method).return_annotation
    name = str(annotation).strip("'\"") if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return name in {"Self", *(k.__name__ for k in builder.__mro__)}


def _dynamic_keys(method: Any) -> bool:
    """Whether the method writes ``self._metadata[<computed key>]``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(method)))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "_metadata"
                and isinstance(node.ctx, ast.Store) and not isinstance(node.slice, ast.Constant)):
            return True
    return False


def builder_methods(builder: type, base: type) -> Iterator[tuple[str, Any]]:
    """The builder's own fluent steps (credential and metadata setters, overlays' too), in source
    order; not those of ``base`` (AppBuilder: connection, agent, create, load, …)."""
    seen: set[str] = set()
    for klass in (k for k in builder.__mro__ if k not in base.__mro__):
        for name, member in vars(klass).items():
            if name.startswith("_") or name in seen or not inspect.isfunction(member):
                continue
            seen.add(name)
            if _returns_builder(member, builder):
                yield name, member


def _samples(annotation: Any) -> tuple[list[Any], bool]:
    """Sample arguments for a parameter, and whether they are all the values it can take."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return list(typing.get_args(annotation)), True
    if annotation is bool:
        return [True, False], True
    if origin is typing.Union:
        values: list[Any] = []
        complete = True
        for arg in typing.get_args(annotation):
            if arg is type(None):
                continue
            more, whole = _samples(arg)
            values += [v for v in more if v not in values]
            complete = complete and whole
        return values, complete
    types = annotation_types(annotation) or {"string"}
    examples = {"string": "x", "integer": 1, "number": 1.5, "object": {"x": ["y"]}, "array": ["x"], "boolean": True}
    return [examples[t] for t in _TYPE_ORDER if t in types], False


def _calls(builder: type, name: str, method: Any) -> tuple[list[dict[str, Any]], bool]:
    """Argument sets to call a setter with, and whether they cover every value it can send."""
    probe = _PROBES.get((builder.__name__, name))
    if probe is not None:
        return probe(builder), False
    if _dynamic_keys(method):
        raise SystemExit(f"{builder.__name__}.{name} computes its input keys at run time: add it to _PROBES")
    hints = typing.get_type_hints(method, vars(sys.modules[method.__module__]))
    params = [p for p in inspect.signature(method).parameters.values()
              if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    samples = {p.name: _samples(hints.get(p.name, Any)) for p in params}
    complete = all(whole for _, whole in samples.values())
    first = {p.name: samples[p.name][0][0] for p in params if p.default is p.empty}
    calls = [first]
    for p in params:  # vary one argument at a time
        calls += [{**first, p.name: value} for value in samples[p.name][0]]
    return calls, complete


class Recorder:
    """An SDK client whose every call is answered here, offline, keeping the App create bodies."""

    def __init__(self, client_class: type) -> None:
        self.client = client_class(base_url="http://sdk-offline.invalid/", api_key="offline")
        self.bodies: list[dict[str, Any]] = []
        object.__setattr__(self.client, "_call_api", self._answer)  # the one method every call goes through
        # No retry policy to swap in around each App call (it builds a new HTTP transport every time).
        object.__setattr__(self.client, "max_retries", lambda *_, **__: contextlib.nullcontext())

    def _answer(self, api: Any, query_params: Any = None, request_obj: Any = None, **_: Any) -> dict[str, Any]:
        if api.path == "credentials":  # a named credential field's raw credential, vaulted before the create
            return {"id": "00000000-0000-4000-8000-000000000000"}
        # Serialized as the SDK's AtlanRequest does (by alias, set fields only).
        self.bodies.append(json.loads(request_obj.json(by_alias=True, exclude_unset=True)))
        return {"slug": "catalogue-probe", "version": 1}

    def inputs(self, step: Any) -> dict[str, Any]:
        """The ``inputs`` a builder's ``create()`` puts on the wire."""
        step.create(name="catalogue-probe")
        return dict(self.bodies[-1]["inputs"])


class App:
    """What one builder sends, gathered by running its ``create()`` offline."""

    def __init__(self, builder: type, base: type, recorder: Recorder) -> None:
        self.builder = builder
        self.recorder = recorder
        self.inputs_class = builder._INPUTS_CLASS  # type: ignore[attr-defined]
        self.baseline = recorder.inputs(self.fresh())
        self.sent: dict[str, list[Any]] = {k: [v] for k, v in self.baseline.items()}
        self.setter_keys: list[str] = []  # keys only setters send, in the order they were met
        self.closed: dict[str, bool] = {}  # key -> every value its setters can send was seen
        self.extraction_methods = [self.baseline["extraction_method"], "agent"]
        self.credential_fields: set[str] = set()
        self.recorded: list[tuple[str, dict[str, Any]]] = [("", self.baseline)]  # (setter, inputs sent)
        for name, method in builder_methods(builder, base):
            self.run_setter(name, method)

    def fresh(self) -> Any:
        return self.builder(self.recorder.client).connection(name="catalogue-probe")

    def wire_key(self, key: str) -> str:
        for field in self.inputs_class.__fields__.values():
            if key in (field.name, field.alias):
                return str(field.name)
        return key

    def run_setter(self, name: str, method: Any) -> None:
        calls, complete = _calls(self.builder, name, method)
        worked = 0
        for kwargs in calls:
            step = self.fresh()
            try:
                getattr(step, name)(**kwargs)
                wire = self.recorder.inputs(step)
            except (ValueError, TypeError):  # the builder refuses these arguments (pydantic errors are ValueErrors)
                continue
            worked += 1
            self.recorded.append((name, wire))
            self.extraction_methods.append(wire["extraction_method"])
            self.credential_fields |= set(step._raw_creds) - {"credential_guid"}
            for key in step._metadata:
                wire_key = self.wire_key(key)
                if wire_key not in self.sent:
                    self.setter_keys.append(wire_key)
                self.sent.setdefault(wire_key, []).append(wire.get(wire_key))
                self.closed[wire_key] = self.closed.get(wire_key, True) and complete
        if not worked:
            raise SystemExit(f"{self.builder.__name__}.{name} refused every sample argument: add it to _PROBES")

    def properties(self) -> dict[str, dict[str, Any]]:
        titles = field_titles(self.inputs_class)
        hints = typing.get_type_hints(self.inputs_class)
        # The Inputs fields in declaration order, then the hidden defaults, then keys only setters send.
        # (Not the order on the wire: pydantic keeps the extra keys of a model in no stable order.)
        fields = list(self.inputs_class.__fields__)
        hidden = [k for k in self.builder._HIDDEN_DEFAULTS if k not in fields]  # type: ignore[attr-defined]
        keys = [k for k in [*fields, *hidden, *self.setter_keys] if k not in PLUMBING]
        missed = set(self.sent) - set(keys) - set(PLUMBING) - {"credential"}
        if missed:
            raise SystemExit(f"{self.builder.__name__} sends {sorted(missed)}, which the generator cannot place")
        out: dict[str, dict[str, Any]] = {}
        for key in keys:
            sent = self.sent.get(key, [])
            values = [v for v in sent if v is not None]
            prop: dict[str, Any] = {"title": titles.get(key) or humanize(key)}
            types = {json_type(v) for v in values} or annotation_types(hints.get(key, Any)) or set()
            if None in sent:  # an unset Optional field goes out as null (see the module docstring)
                types.add("null")
            if types:
                prop["type"] = type_schema(types)
            if key in self.baseline:
                prop["default"] = self.baseline[key]
            if self.closed.get(key) and not types <= {"boolean", "null"}:
                prop["enum"] = list(dict.fromkeys(values)) + ([None] if None in sent else [])
            elif key not in self.closed and values and set(values) <= {"true", "false"}:
                prop["enum"] = ["true", "false"]  # a hidden toggle the UI submits as a string
            if types == {"string"} and (key in JSON_BY_NAME or any(_is_json_text(v) for v in values)):
                prop["contentMediaType"] = "application/json"
            out[key] = prop
        return out

    def describe(self) -> dict[str, Any]:
        builder = self.builder
        out: dict[str, Any] = {
            "builder": f"{builder.__module__}.{builder.__name__}",
            "name": " ".join(re.findall(r"[A-Z][a-z0-9]*", builder.__name__)),
            "connector": builder._CONNECTOR_NAME,  # type: ignore[attr-defined]
            "entrypoint": builder._ENTRYPOINT or "",  # type: ignore[attr-defined]
            "extraction_methods": list(dict.fromkeys(self.extraction_methods)),
            "inputs": self.properties(),
        }
        if self.credential_fields:
            out["credential_fields"] = sorted(self.credential_fields)
        return out


def builders(package: Any, base: type) -> list[type]:
    found = []
    for module in pkgutil.iter_modules(package.__path__):
        if module.name.startswith("_"):
            continue
        loaded = importlib.import_module(f"{package.__name__}.{module.name}")
        found += [c for c in vars(loaded).values()
                  if inspect.isclass(c) and issubclass(c, base) and c is not base and c.__module__ == loaded.__name__]
    return found


# -- writing the module ----------------------------------------------------------------------------------


def literal(value: Any, indent: int = 0, inline_from: int = 3) -> str:
    """A Python literal, one property schema a line; deterministic (mappings keep their order)."""
    if isinstance(value, Mapping) and value and indent < inline_from:
        pad = "    " * (indent + 1)
        items = [f"{pad}{json.dumps(k)}: {literal(v, indent + 1, inline_from)}," for k, v in value.items()]
        return "{\n" + "\n".join(items) + "\n" + "    " * indent + "}"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(k)}: {literal(v, indent + 1, inline_from)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v, indent + 1, inline_from) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    raise TypeError(f"cannot write {value!r}")


# The order of a property's keywords, as the hand-written contracts have them: jsonschema reports a
# value's errors in keyword order, and "not of type 'string'" says more than "not one of [...]".
_KEYWORD_ORDER = ("title", "type", "enum", "default", "contentMediaType")


def _ordered(props: dict[str, Any]) -> dict[str, Any]:
    return {k: props[k] for k in sorted(props, key=lambda k: (_KEYWORD_ORDER + (k,)).index(k))}


def _sorted(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in sorted(entry)}


def render(version: str, apps: dict[str, dict[str, Any]]) -> str:
    for app in apps.values():
        app["inputs"] = {k: _ordered(p) for k, p in app["inputs"].items()}
    body = literal({app_id: _sorted(apps[app_id]) for app_id in sorted(apps)})
    return (
        f'"""GENERATED by `python -m reconciler.sandbox.generate_catalogue` from pyatlan {version}: do not edit.\n\n'
        "Every app the SDK has a builder for, as that builder's create() sends it: app id → builder,\n"
        "display name, connector, entrypoint (\"\": the app's default slot, no named entrypoint),\n"
        "extraction methods (the default first), named credential fields and the input properties.\n"
        "``catalogue.py`` wraps them in the plumbing and JSON Schema of a contract.\n"
        '"""\n\n'
        "from __future__ import annotations\n\n"
        "from typing import Any\n\n"
        f"PYATLAN_VERSION = {json.dumps(version)}\n\n"
        f"APPS: dict[str, dict[str, Any]] = {body}\n"
    )


def generate() -> str:
    from importlib.metadata import version

    import pyatlan.model.apps as package
    from pyatlan.client.atlan import AtlanClient
    from pyatlan.model.apps._base import AppBuilder

    recorder = Recorder(AtlanClient)

    apps: dict[str, dict[str, Any]] = {}
    for builder in builders(package, AppBuilder):
        app_id = builder._APP_ID  # type: ignore[attr-defined]
        if app_id in apps:
            raise SystemExit(f"two builders for {app_id}: {apps[app_id]['builder']} and {builder.__name__}")
        apps[app_id] = App(builder, AppBuilder, recorder).describe()
    return render(version("pyatlan"), apps)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconciler.sandbox.generate_catalogue", description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"where to write (default: {OUTPUT})")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when the output would change")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run python -m reconciler.sandbox.generate_catalogue", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    count = text.count('"builder": ')
    print(f"wrote {args.output} ({count} apps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
