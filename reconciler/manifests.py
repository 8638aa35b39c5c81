"""Files → YAML documents with line marks; ``${env:NAME}`` / ``${var:name}`` substitution.

Takes paths (files or folders, searched recursively for ``*.yaml`` / ``*.yml``, following folder
links); returns every document with its data and a map from JSON path to (line, column), plus
diagnostics for unreadable files or folders, links that point nowhere (a file the search cannot
see must stop a prune, never be skipped), non-UTF-8 or binary content, YAML syntax errors and
duplicate mapping keys (which PyYAML would silently resolve to the last one). Touches only the
file system; never the network. Substitution never reads the value of a secret: secret fields
keep their reference.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

from reconciler.errors import Diagnostic

try:  # the C loader is several times faster; fall back to the pure-Python one
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

JsonPath = tuple  # a JSON path: str keys and int indices
MERGE_TAG = "tag:yaml.org,2002:merge"
SKIP_DIRS = {".git", ".reconciler", ".venv", "venv", "node_modules", "__pycache__", ".github"}
REFERENCE = re.compile(r"\$\{(?P<source>[A-Za-z_]+):(?P<name>[^}]*)\}")
VALID_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclass
class Document:
    file: str
    index: int  # position in the file, from 0
    line: int  # where the document starts (1-based)
    data: Any
    marks: dict[JsonPath, tuple[int, int]] = field(default_factory=dict)  # path -> (line, column) of the value
    key_marks: dict[JsonPath, tuple[int, int]] = field(default_factory=dict)  # path -> (line, column) of its key

    def locate(self, path: Iterable[Any]) -> tuple[int, int]:
        """The best source position for a JSON path: its key, its value, or the nearest parent."""
        p = tuple(path)
        while True:
            if p in self.key_marks:
                return self.key_marks[p]
            if p in self.marks:
                return self.marks[p]
            if not p:
                return self.line, 1
            p = p[:-1]


def json_path(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def display_path(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)


def discover(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[Diagnostic]]:
    """The manifest files under ``paths``, sorted, each once.

    Folders reached through symbolic links are followed. Anything that cannot be seen (an
    unreadable folder or file, a link that points nowhere or in a circle) is an RC001 error, never
    a silent skip: a file left out would make the objects it declares look undeclared, and
    ``apply --prune`` would delete them."""
    files: list[Path] = []
    diagnostics: list[Diagnostic] = []
    walk = _Walk(files, diagnostics)
    for raw in paths:
        path = Path(raw)
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            if path.is_symlink():
                diagnostics.append(_broken_link(path, exc))
            elif isinstance(exc, FileNotFoundError):
                diagnostics.append(Diagnostic(str(raw), 0, 0, "RC001", f"no such file or folder: {raw}",
                                              hint="Check the path; give the folder that holds your manifests."))
            else:
                diagnostics.append(_unreadable(path, exc))
            continue
        if stat.S_ISDIR(mode):
            walk.tree(path)
        elif stat.S_ISREG(mode):
            files.append(path)
        else:
            diagnostics.append(Diagnostic(str(raw), 0, 0, "RC001", f"not a file or folder: {raw}",
                                          hint="Give the folder that holds your manifests, or manifest files."))
    walk.linked_folders()
    # Each file once, even when reached twice (or through a link), shown by the path it was found at:
    # a symlinked manifests folder keeps its own place, and its state file beside it.
    unique: dict[Path, Path] = {}
    for f in files:
        unique.setdefault(f.resolve(), f)
    return sorted(unique.values(), key=display_path), diagnostics


def _is_manifest_name(name: str) -> bool:
    return name.endswith((".yaml", ".yml"))


def _unreadable(path: Path, exc: OSError, what: str = "") -> Diagnostic:
    name = display_path(path)
    return Diagnostic(name, 0, 0, "RC001", f"cannot read {what + ' ' if what else ''}{name}: {exc.strerror or exc}",
                      hint="Make it readable by the user that runs the reconciler, or remove it: the objects declared "
                           "in it would otherwise look undeclared, and --prune would delete them.")


def _broken_link(path: Path, exc: OSError) -> Diagnostic:
    try:
        target = os.readlink(path)
    except OSError:  # pragma: no cover - it was a link a moment ago
        target = "?"
    return Diagnostic(display_path(path), 0, 0, "RC001",
                      f"the link {display_path(path)} -> {target} cannot be followed: {exc.strerror or exc}",
                      hint="Fix the link or remove it: it may stand for manifests, and the objects declared there "
                           "would otherwise look undeclared, and --prune would delete them.")


class _Walk:
    """One search for manifest files. Real folders are walked first and linked folders after, so
    that a file reachable both ways is shown by its real place; every folder is walked once, by
    its resolved path, so that a link back to an ancestor (a loop) or to a folder already walked
    ends there."""

    def __init__(self, files: list[Path], diagnostics: list[Diagnostic]) -> None:
        self.files = files
        self.diagnostics = diagnostics
        self.walked: set[str] = set()  # real paths of the folders walked
        self.links: list[Path] = []  # linked folders met, to walk once the real ones are done

    def tree(self, top: Path) -> None:
        """``top`` and its real subfolders; linked subfolders are kept for ``linked_folders``."""
        pending = [top]
        while pending:
            folder = pending.pop()
            real = os.path.realpath(folder)
            if real in self.walked:
                continue
            self.walked.add(real)
            subfolders = self.folder(folder)
            pending.extend(reversed(subfolders))  # depth first, in name order

    def linked_folders(self) -> None:
        while self.links:
            self.tree(self.links.pop(0))

    def folder(self, folder: Path) -> list[Path]:
        """Record the manifest files of one folder; return its real subfolders to walk."""
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            self.diagnostics.append(_unreadable(folder, exc, "the folder"))
            return []
        subfolders: list[Path] = []
        for entry in entries:
            path = Path(folder, entry.name)
            skipped_folder = entry.name in SKIP_DIRS or entry.name.startswith(".")
            try:
                is_dir = entry.is_dir()  # follows links
                is_file = not is_dir and entry.is_file()
                is_link = entry.is_symlink()
                if is_link and not is_dir and not is_file:
                    os.stat(path)  # a link to neither: raises when it points nowhere
            except OSError as exc:
                if entry.is_symlink():
                    if _is_manifest_name(entry.name) or not skipped_folder:
                        self.diagnostics.append(_broken_link(path, exc))
                elif _is_manifest_name(entry.name) or not skipped_folder:
                    self.diagnostics.append(_unreadable(path, exc))
                continue
            if is_dir:
                if not skipped_folder:
                    (self.links if is_link else subfolders).append(path)
            elif is_file and _is_manifest_name(entry.name):
                self.files.append(path)
        return subfolders


def read_text(path: Path) -> tuple[str | None, Diagnostic | None]:
    name = display_path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, Diagnostic(name, 0, 0, "RC001", f"cannot read the file {name}: {exc.strerror or exc}",
                                hint="Make it readable by the user that runs the reconciler, or remove it: the objects "
                                     "declared in it would otherwise look undeclared, and --prune would delete them.")
    if b"\x00" in raw:
        return None, Diagnostic(name, 1, 1, "RC004", "binary file: it contains NUL bytes, so it is not a YAML manifest",
                                hint="Remove it from the manifests folder or rename it to something other than .yaml.")
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, Diagnostic(name, line, column, "RC003", f"not UTF-8: byte 0x{raw[exc.start]:02x} cannot be decoded",
                                hint="Save the file as UTF-8.")


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader; kept as a subclass so that the stock classes are never modified."""


def parse(text: str, file: str) -> tuple[list[Document], list[Diagnostic]]:
    """Every document in one file, with marks; stops at the first YAML syntax error."""
    documents: list[Document] = []
    diagnostics: list[Diagnostic] = []
    loader = _Loader(text)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            doc = Document(file=file, index=index, line=node.start_mark.line + 1, data=None)
            _index_node(node, (), doc, diagnostics)  # before construction, which rewrites merges
            doc.data = loader.construct_document(node)
            documents.append(doc)
            index += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        source_line = text.splitlines()[line - 1] if 0 < line <= len(text.splitlines()) else ""
        hint = ("Quote ${...} references inside { } or [ ], e.g. host: \"${env:HOST}\"."
                if "${" in source_line and ("{" in source_line.split("${")[0] or "[" in source_line.split("${")[0])
                else "Check indentation, quoting and ':' after keys near this line.")
        diagnostics.append(Diagnostic(file, line, column, "RC002", f"YAML syntax error: {problem}{context}", hint=hint))
    except yaml.YAMLError as exc:
        diagnostics.append(Diagnostic(file, 1, 1, "RC002", f"YAML error: {exc}"))
    finally:
        loader.dispose()
    return documents, diagnostics


def _index_node(node: yaml.Node, path: JsonPath, doc: Document, diagnostics: list[Diagnostic]) -> None:
    doc.marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                continue  # `<<: *anchor` may override keys; that is not a duplicate
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node)
            if key in seen:
                first = seen[key].start_mark.line + 1
                diagnostics.append(Diagnostic(
                    doc.file, key_node.start_mark.line + 1, key_node.start_mark.column + 1, "RC005",
                    f"duplicate key {key!r}: it is already set on line {first}, and only one value can win",
                    path=json_path(path + (key,)), hint="Remove one of the two, or merge their contents."))
                continue
            seen[key] = key_node
            child = path + (key,)
            doc.key_marks.setdefault(child, (key_node.start_mark.line + 1, key_node.start_mark.column + 1))
            _index_node(value_node, child, doc, diagnostics)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_node(item, path + (i,), doc, diagnostics)


def load(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[Document], list[Diagnostic]]:
    """Discover, read and parse: (files, documents, diagnostics)."""
    files, diagnostics = discover(paths)
    documents: list[Document] = []
    for path in files:
        text, problem = read_text(path)
        if problem is not None:
            diagnostics.append(problem)
            continue
        assert text is not None
        docs, found = parse(text, display_path(path))
        documents.extend(docs)
        diagnostics.extend(found)
    return files, documents, diagnostics


# -- substitution ---------------------------------------------------------------------------------


@dataclass
class Substitution:
    """Inputs to ``substitute``: the environment, the variables, and what the caller allows."""

    env: Mapping[str, str]
    variables: Mapping[str, Any]
    allow_missing_secrets: bool = False
    allow_literal_secrets: bool = False


def substitute(doc: Document, data: Any, is_secret: Callable[[JsonPath], bool], subs: Substitution,
               diagnostics: list[Diagnostic]) -> Any:
    """A copy of ``data`` with references replaced. Secret fields keep their ``${env:NAME}``."""

    def walk(value: Any, path: JsonPath) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, path + (k,)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, path + (i,)) for i, v in enumerate(value)]
        if isinstance(value, str):
            return _secret(value, path) if is_secret(path) else _plain(value, path)
        if is_secret(path) and value is not None and not subs.allow_literal_secrets:
            report(path, "RC053", "a secret is written literally in the manifest",
                   "Write it as ${env:NAME} and set NAME in the environment that runs the reconciler.")
        return value

    def report(path: JsonPath, code: str, message: str, hint: str = "", severity: str = "error") -> None:
        line, column = doc.locate(path)
        diagnostics.append(Diagnostic(doc.file, line, column, code, message, json_path(path), severity, hint))

    def _secret(value: str, path: JsonPath) -> str:
        refs = list(REFERENCE.finditer(value))
        if not refs:
            if not subs.allow_literal_secrets:
                report(path, "RC053", "a secret is written literally in the manifest",
                       "Write it as ${env:NAME} and set NAME in the environment that runs the reconciler "
                       "(or pass --allow-literal-secrets for a throw-away test).")
            return value
        whole = refs[0]
        if len(refs) != 1 or whole.span() != (0, len(value)):
            report(path, "RC055", "a secret field must be exactly one ${env:NAME} reference",
                   "Put the whole secret in one environment variable.")
            return value
        if whole["source"] == "var":
            report(path, "RC054", f"secret taken from variable {whole['name']!r}: variable files are committed to Git",
                   "Use ${env:NAME} for secrets and keep them out of the repository.")
            return value
        if whole["source"] != "env" or not VALID_NAME.match(whole["name"]):
            report(path, "RC052", f"unknown reference {whole.group(0)!r}", "Write ${env:NAME}.")
            return value
        if whole["name"] not in subs.env:
            report(path, "RC050", f"environment variable {whole['name']} is not set (needed by a secret field)",
                   f"Export {whole['name']} before running, or pass --allow-missing-secrets to plan without secrets.",
                   "warning" if subs.allow_missing_secrets else "error")
        return value  # kept as a reference; resolved only when the value is really needed

    def _plain(value: str, path: JsonPath) -> Any:
        if "${" not in value:
            return value
        # "$${" is an escaped literal "${"; hide it from the reference pattern.
        escaped = value.replace("$${", "\0")
        refs = list(REFERENCE.finditer(escaped))
        whole = len(refs) == 1 and refs[0].span() == (0, len(escaped))
        parts: list[str] = []
        last = 0
        resolved_whole: Any = None
        for ref in refs:
            parts.append(escaped[last:ref.start()])
            last = ref.end()
            source, name = ref["source"], ref["name"]
            if source == "env" and VALID_NAME.match(name):
                if name not in subs.env:
                    report(path, "RC050", f"environment variable {name} is not set",
                           f"Export {name} before running, or use ${{var:{name}}} with a --var-file.")
                    return value
                resolved: Any = subs.env[name]
                if whole:
                    resolved = _scalar(resolved)
            elif source == "var" and VALID_NAME.match(name):
                if name not in subs.variables:
                    known = ", ".join(sorted(subs.variables)) or "none are defined"
                    report(path, "RC051", f"variable {name!r} is not defined (known: {known})",
                           "Define it in a variables file listed in reconciler.yaml (varFiles) or passed with --var-file.")
                    return value
                resolved = subs.variables[name]
            else:
                report(path, "RC052", f"unknown reference {ref.group(0)!r}", "Write ${env:NAME} or ${var:name}.")
                return value
            resolved_whole = resolved
            parts.append(str(resolved).lower() if isinstance(resolved, bool) else str(resolved))
        if whole:
            return resolved_whole
        parts.append(escaped[last:])
        return "".join(parts).replace("\0", "${")

    return walk(data, ())


def resolve_env(refs: Mapping[str, Any], env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The values behind ``{field: "${env:NAME}"}`` references, and the names that are not set
    (a value that is not exactly one ``${env:NAME}`` counts as unset)."""
    values: dict[str, str] = {}
    missing: list[str] = []
    for field_name, ref in refs.items():
        match = REFERENCE.fullmatch(str(ref))
        name = match["name"] if match and match["source"] == "env" else str(ref)
        if name in env and match:
            values[field_name] = env[name]
        else:
            missing.append(name)
    return values, missing


def _scalar(text: str) -> Any:
    """An environment value standing alone: digits become an integer, true/false a boolean."""
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def load_variables(path: Path) -> tuple[dict[str, Any], list[Diagnostic]]:
    """A variables file: a YAML mapping of name to scalar."""
    name = display_path(path)
    if not path.is_file():
        return {}, [Diagnostic(name, 0, 0, "RC080", f"variables file {name} does not exist",
                               hint="Fix the path in reconciler.yaml (varFiles) or in --var-file.")]
    text, problem = read_text(path)
    if problem is not None:
        return {}, [problem]
    docs, diagnostics = parse(text or "", name)
    if diagnostics:
        return {}, diagnostics
    data = docs[0].data if docs else {}
    if data is None:
        return {}, []
    if not isinstance(data, dict):
        return {}, [Diagnostic(name, 1, 1, "RC080", "a variables file must be a mapping of name: value")]
    out: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not VALID_NAME.match(key) or isinstance(value, (dict, list)):
            line, column = docs[0].locate((key,))
            diagnostics.append(Diagnostic(name, line, column, "RC080",
                                          f"variable {key!r} must be a name with a single value (string, number or boolean)"))
            continue
        out[key] = value
    return out, diagnostics
