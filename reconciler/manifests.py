"""Files → YAML documents with line marks; ``${env:NAME}`` / ``${var:name}`` substitution.

Takes paths (files or folders, searched recursively for ``*.yaml`` / ``*.yml``, following folder
links); returns every document with its data and a map from JSON path to (line, column), plus
diagnostics for unreadable files or folders, links that point nowhere (a file the search cannot
see must stop a prune, never be skipped), non-UTF-8 or binary content, YAML syntax errors and
duplicate mapping keys (which PyYAML would silently resolve to the last one). Touches only the
file system; never the network. Substitution never reads the value of a secret: secret fields
keep their reference.

Every input is bounded before it can cost time or memory: only regular files are opened (a FIFO
or a device named ``*.yaml`` would block or never end), at most ``MAX_FILE_BYTES`` are read,
documents are composed from the parser's events here (not by the C composer, which recurses once
per level and crashes the process on deep nesting) with at most ``MAX_DEPTH`` levels, at most
``MAX_DOCUMENT_VALUES`` values per document and ``MAX_FILE_VALUES`` per file once aliases are
expanded, and at most ``MAX_ALIAS_VALUES`` values repeated through aliases per file (a "billion
laughs" file is refused at the alias that crosses a cap, before anything expands it). Values
that JSON cannot carry (YAML dates, ``!!binary``, ``!!set``, ``.inf``), non-string mapping keys
and unknown tags are reported where they are written, and read as text so that later checks
still run.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from reconciler import mask
from reconciler.errors import Diagnostic

try:  # the C loader is several times faster; fall back to the pure-Python one
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

JsonPath = tuple  # a JSON path: str keys and int indices
MERGE_TAG = "tag:yaml.org,2002:merge"
STR_TAG = "tag:yaml.org,2002:str"
SEQ_TAG = "tag:yaml.org,2002:seq"
MAP_TAG = "tag:yaml.org,2002:map"
MAX_FILE_BYTES = 10 * 1024 * 1024  # RC006: a manifest file larger than this is refused unread
MAX_DEPTH = 100  # RC007: nested mappings and lists, aliases expanded
# RC008: values (scalars, lists and mappings), aliases expanded. Each costs time and memory in
# every later stage (a 10 MB file of short documents holds about 1.1 million).
MAX_DOCUMENT_VALUES = 100_000
MAX_FILE_VALUES = 1_500_000
MAX_ALIAS_VALUES = 100_000  # values repeated through aliases, per file
_CORE = "tag:yaml.org,2002:"
# Tags whose values JSON (and so the tenant API) can carry.
SCALAR_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null"))
MAX_INTEGER_DIGITS = 1000  # a longer integer is no number a tenant takes (and Python refuses past 4,300)
# Tags the safe loader knows whose values JSON cannot carry: what each is read as.
NON_JSON_TAGS = {_CORE + "timestamp": "a YAML date", _CORE + "binary": "binary data (!!binary)",
                 _CORE + "set": "a YAML set (!!set)", _CORE + "omap": "an ordered map (!!omap)",
                 _CORE + "pairs": "a list of pairs (!!pairs)"}
TAG_NAMES = {_CORE + "int": "an integer", _CORE + "float": "a number", _CORE + "bool": "a boolean",
             _CORE + "null": "null", **NON_JSON_TAGS}
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
    # A document read by the fast path has no marks yet: its file is read again, by the checked
    # path, the first time a position is asked for (only documents with a diagnostic ask).
    source: _Source | None = field(default=None, repr=False, compare=False)

    def locate(self, path: Iterable[Any]) -> tuple[int, int]:
        """The best source position for a JSON path: its key, its value, or the nearest parent."""
        if self.source is not None:
            self.source.mark()
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
    key = (os.getcwd(), os.fspath(path))
    shown = _shown.get(key)
    if shown is None:
        try:
            shown = os.path.relpath(path)
        except ValueError:  # another drive on Windows
            return str(path)
        if len(_shown) >= 100_000:
            _shown.clear()
        _shown[key] = shown
    return shown


# (working folder, path) -> how display_path shows it: each file is shown several times per run.
_shown: dict[tuple[str, str], str] = {}


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
            diagnostics.append(_not_regular(path, mode, given=True))
    walk.linked_folders()
    # Each file once, even when reached twice (or through a link), shown by the path it was found at:
    # a symlinked manifests folder keeps its own place, and its state file beside it.
    unique: dict[str, Path] = {}
    for f in files:
        unique.setdefault(walk.real.get(f) or os.path.realpath(f), f)
    return sorted(unique.values(), key=display_path), diagnostics


def _is_manifest_name(name: str) -> bool:
    return name.endswith((".yaml", ".yml"))


def _unreadable(path: Path, exc: OSError, what: str = "") -> Diagnostic:
    name = display_path(path)
    return Diagnostic(name, 0, 0, "RC001", f"cannot read {what + ' ' if what else ''}{name}: {exc.strerror or exc}",
                      hint="Make it readable by the user that runs the reconciler, or remove it: the objects declared "
                           "in it would otherwise look undeclared, and --prune would delete them.")


def _file_type(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def _not_regular(path: Path, mode: int, given: bool = False) -> Diagnostic:
    """RC001 for a FIFO, device or socket (after following links): reading one would block
    forever (a FIFO) or never end (/dev/zero), so it is never opened."""
    name = display_path(path)
    what = "a regular file or folder" if given else "a regular file"
    return Diagnostic(name, 0, 0, "RC001", f"{name} is not {what}: it is {_file_type(mode)}",
                      hint="Manifests are regular files; remove it, or rename it to something other than .yaml/.yml."
                      if not given else "Give the folder that holds your manifests, or manifest files.")


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
        self.real: dict[Path, str] = {}  # real paths of the files found that are not links themselves
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
            subfolders = self.folder(folder, real)
            pending.extend(reversed(subfolders))  # depth first, in name order

    def linked_folders(self) -> None:
        while self.links:
            self.tree(self.links.pop(0))

    def folder(self, folder: Path, real: str | None = None) -> list[Path]:
        """Record the manifest files of one folder (whose real path is ``real``); return its real
        subfolders to walk."""
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
                    # A dangling link might stand for a folder of manifests, unless its name says it is
                    # some other kind of file (a state file linked before it exists, a README).
                    other_file = bool(Path(entry.name).suffix) and not _is_manifest_name(entry.name)
                    if _is_manifest_name(entry.name) or not (skipped_folder or other_file):
                        self.diagnostics.append(_broken_link(path, exc))
                elif _is_manifest_name(entry.name) or not skipped_folder:
                    self.diagnostics.append(_unreadable(path, exc))
                continue
            if is_dir:
                if not skipped_folder:
                    (self.links if is_link else subfolders).append(path)
            elif is_file and _is_manifest_name(entry.name):
                self.files.append(path)
                if real is not None and not is_link:  # what os.path.realpath would say, without a call per part
                    self.real[path] = os.path.join(real, entry.name)
            elif _is_manifest_name(entry.name):
                # A FIFO, device or socket (or a link to one) named like a manifest: an error, not
                # a silent skip, and never opened (see read_text).
                try:
                    mode = os.stat(path).st_mode
                except OSError as exc:  # gone since the listing
                    self.diagnostics.append(_unreadable(path, exc))
                    continue
                self.diagnostics.append(_not_regular(path, mode))
        return subfolders


def read_text(path: Path) -> tuple[str | None, Diagnostic | None]:
    """The text of one manifest file, or the diagnostic that says why it cannot be read. Only a
    regular file is read, and at most ``MAX_FILE_BYTES`` of it: the type and size are checked on
    the open file itself, which is opened without blocking (a FIFO would wait for a writer)."""

    def cannot_read(exc: OSError) -> tuple[None, Diagnostic]:
        name = display_path(path)
        return None, Diagnostic(name, 0, 0, "RC001", f"cannot read the file {name}: {exc.strerror or exc}",
                                hint="Make it readable by the user that runs the reconciler, or remove it: the objects "
                                     "declared in it would otherwise look undeclared, and --prune would delete them.")

    try:
        mode = os.stat(path).st_mode  # a socket cannot even be opened: say what it is
    except OSError as exc:
        return cannot_read(exc)
    if not stat.S_ISREG(mode):
        return None, _not_regular(path, mode)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        return cannot_read(exc)
    try:
        info = os.fstat(fd)  # the file opened, which may have been swapped since the stat above
        if not stat.S_ISREG(info.st_mode):
            return None, _not_regular(path, info.st_mode)
        if info.st_size > MAX_FILE_BYTES:
            return None, _too_large(display_path(path), info.st_size)
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE_BYTES:  # the file may grow while it is read
            chunk = os.read(fd, min(1 << 20, MAX_FILE_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        raw = b"".join(chunks)
    except OSError as exc:
        return cannot_read(exc)
    finally:
        os.close(fd)
    if len(raw) > MAX_FILE_BYTES:
        return None, _too_large(display_path(path), None)
    if b"\x00" in raw:
        return None, Diagnostic(display_path(path), 1, 1, "RC004", "binary file: it contains NUL bytes, so it is not a YAML manifest",
                                hint="Remove it from the manifests folder or rename it to something other than .yaml.")
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, Diagnostic(display_path(path), line, column, "RC003", f"not UTF-8: byte 0x{raw[exc.start]:02x} cannot be decoded",
                                hint="Save the file as UTF-8.")


def _too_large(name: str, size: int | None) -> Diagnostic:
    """RC006; ``size`` None when the file grew past the cap while it was read."""
    shown = f"{size:,} bytes, over" if size is not None else "over"
    return Diagnostic(name, 1, 1, "RC006", f"file too large: {shown} the limit of {MAX_FILE_BYTES:,} bytes for one "
                      "manifest file; it was not read",
                      hint="Split it into several files (any folder layout works), or remove it if it is not a manifest.")


class _Loader(_BaseLoader):
    """The safe loader; kept as a subclass so that the stock classes are never modified.

    ``resolve`` answers exactly as PyYAML's, without its path-resolver bookkeeping when there
    are no path resolvers (the safe loaders have none): it runs for every value, the C
    composer's too, and was a third of the time of a load."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if self.yaml_path_resolvers or None in self.yaml_implicit_resolvers:
            return super().resolve(kind, value, implicit)  # pragma: no cover - nobody adds these to our loader
        if kind is yaml.ScalarNode:
            if implicit[0]:
                for tag, regexp in self.yaml_implicit_resolvers.get(value[:1], ()):  # value[:1]: '' when empty
                    if regexp.match(value):
                        return tag
            return self.DEFAULT_SCALAR_TAG
        return self.DEFAULT_SEQUENCE_TAG if kind is yaml.SequenceNode else self.DEFAULT_MAPPING_TAG

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        if self.yaml_path_resolvers:  # pragma: no cover - as above
            super().descend_resolver(current_node, current_index)

    def ascend_resolver(self) -> None:
        if self.yaml_path_resolvers:  # pragma: no cover - as above
            super().ascend_resolver()


def _located(construct: Callable[[Any, yaml.Node], Any]) -> Callable[[Any, yaml.Node], Any]:
    """A scalar constructor whose failures (``!!int abc`` raises ValueError, without a position)
    become YAML errors at the value. ``_check_scalar`` reports these values first; this is the net."""

    def checked(loader: Any, node: yaml.Node) -> Any:
        try:
            return construct(loader, node)
        except (ValueError, TypeError, ArithmeticError, LookupError, AttributeError) as exc:
            what = TAG_NAMES.get(node.tag, node.tag)
            raise yaml.constructor.ConstructorError(None, None, f"cannot read this value as {what}: {str(exc)[:200]}",
                                                    node.start_mark) from None

    return checked


for _tag in ("int", "float", "bool", "timestamp"):
    _Loader.add_constructor(_CORE + _tag, _located(_BaseLoader.yaml_constructors[_CORE + _tag]))


class _Mark(Protocol):
    """A position in the text: ``yaml.Mark``, or the C loader's own mark class (``yaml._yaml.Mark``)."""

    line: int
    column: int


class _Rejected(Exception):
    """A document over a cap, or with an alias that cannot be resolved: the file is read no
    further (its remaining events could be millions)."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        self.diagnostic = diagnostic


class _Composer:
    """Events → node graphs, one document at a time, without recursion; raises ``_Rejected`` for
    a document nested deeper than ``MAX_DEPTH``, or past a cap on values (``MAX_DOCUMENT_VALUES``,
    ``MAX_FILE_VALUES``, ``MAX_ALIAS_VALUES``).

    Sizes are counted, never expanded: an alias adds the size of its anchor's node (known once the
    node is complete), so a "billion laughs" file is refused at the alias that crosses a cap, in
    time linear in its length."""

    def __init__(self, loader: _Loader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.file_values = 0  # in this file, aliases expanded
        self.alias_values = 0  # repeated through aliases, in this file
        self.values = 0  # in this document, aliases expanded
        self.anchors: dict[str, tuple[yaml.Node, int, int]] = {}  # name -> (node, size, height)
        self.open_anchors: set[str] = set()  # anchors of collections not yet complete
        self.stack: list[list[Any]] = []  # the open collections, innermost last

    def document(self) -> yaml.Node:
        """The next document's root node (its DocumentStartEvent already read)."""
        self.values = 0
        self.anchors.clear()  # anchors do not cross '---'
        self.open_anchors.clear()
        self.stack.clear()
        # The hot loop of every load: events are told apart by class, and names are local. (The
        # parsers make no subclasses of these event classes, so isinstance is an exact class test.)
        get_event, resolve, stack = self.loader.get_event, self.loader.resolve, self.stack
        scalar_event, alias_event = yaml.ScalarEvent, yaml.AliasEvent
        collection_start, sequence_start = yaml.CollectionStartEvent, yaml.SequenceStartEvent
        collection_end = yaml.CollectionEndEvent
        scalar_node, sequence_node, mapping_node = yaml.ScalarNode, yaml.SequenceNode, yaml.MappingNode
        node: yaml.Node
        while True:
            event = get_event()
            if isinstance(event, scalar_event):
                tag = event.tag
                if tag is None or tag == "!":
                    tag = resolve(scalar_node, event.value, event.implicit)
                # types-PyYAML has nodes take yaml.Mark only; the C loader gives them its own marks.
                node = scalar_node(tag, event.value, event.start_mark, event.end_mark,  # type: ignore[arg-type]
                                   style=event.style)
                size, height = 1, 0
                self.values += 1
                self.file_values += 1
                if self.values > MAX_DOCUMENT_VALUES or self.file_values > MAX_FILE_VALUES:
                    raise self._too_many(event.start_mark)
                if event.anchor is not None:
                    self.anchors[event.anchor] = (node, 1, 0)
            elif isinstance(event, collection_start):  # a mapping or a list
                if len(stack) >= MAX_DEPTH:
                    raise self._too_deep(event.start_mark, len(stack) + 1)
                self.values += 1
                self.file_values += 1
                if self.values > MAX_DOCUMENT_VALUES or self.file_values > MAX_FILE_VALUES:
                    raise self._too_many(event.start_mark)
                kind = sequence_node if isinstance(event, sequence_start) else mapping_node
                tag = event.tag
                if tag is None or tag == "!":  # what the resolver answers for any list or mapping
                    tag = SEQ_TAG if kind is sequence_node else MAP_TAG
                node = kind(tag, [], event.start_mark, event.end_mark, flow_style=event.flow_style)  # type: ignore[arg-type]
                if event.anchor is not None:  # an alias inside its own anchor would be recursive
                    self.anchors.pop(event.anchor, None)
                    self.open_anchors.add(event.anchor)
                # [node, its anchor, size, height, pending mapping key (None for a list), is a list]
                stack.append([node, event.anchor, 1, 1, None, kind is sequence_node])
                continue
            elif isinstance(event, collection_end):
                node, anchor, size, height, _, _ = stack.pop()
                node.end_mark = event.end_mark
                if anchor is not None:
                    self.anchors[anchor] = (node, size, height)
                    self.open_anchors.discard(anchor)
            elif isinstance(event, alias_event):
                node, size, height = self._alias(event)
            else:  # pragma: no cover - the parser only emits these inside a document
                mark = event.start_mark if event is not None else None
                raise yaml.composer.ComposerError(None, None, f"unexpected {event.__class__.__name__}",
                                                  mark)  # type: ignore[arg-type]  # a C loader mark, as above
            if not stack:
                return node
            parent = stack[-1]
            parent[2] += size
            if height >= parent[3]:
                parent[3] = height + 1
            if parent[5]:
                parent[0].value.append(node)
            elif parent[4] is None:
                parent[4] = node
            else:
                parent[0].value.append((parent[4], node))
                parent[4] = None

    def _alias(self, event: yaml.AliasEvent) -> tuple[yaml.Node, int, int]:
        name = event.anchor
        mark = event.start_mark
        if name not in self.anchors:
            if name in self.open_anchors:
                raise self._reject(mark, "RC008", f"alias *{name} is inside its own anchor &{name}: it would repeat forever",
                                   "Anchors cannot contain themselves; copy the values you need instead.")
            raise self._reject(mark, "RC002", f"YAML syntax error: found undefined alias *{name}",
                               f"Define the anchor &{name} before this alias, in the same document (anchors do not "
                               "cross '---').")
        node, size, height = self.anchors[name]
        if len(self.stack) + height > MAX_DEPTH:
            raise self._too_deep(mark, len(self.stack) + height, alias=name)
        self.values += size
        self.file_values += size
        self.alias_values += size
        if (self.values > MAX_DOCUMENT_VALUES or self.file_values > MAX_FILE_VALUES
                or self.alias_values > MAX_ALIAS_VALUES):
            raise self._too_many(mark, alias=(name, size))
        return node, size, height

    def _too_many(self, mark: _Mark | None, alias: tuple[str, int] | None = None) -> _Rejected:
        """RC008 for the first cap crossed: values in the document, in the file, or repeated by aliases."""
        document, file = f"more than {MAX_DOCUMENT_VALUES:,} values", f"more than {MAX_FILE_VALUES:,} values"
        if alias:
            what = (f"this document would hold {document}" if self.values > MAX_DOCUMENT_VALUES
                    else f"this file would hold {file}" if self.file_values > MAX_FILE_VALUES
                    else f"aliases in this file would repeat more than {MAX_ALIAS_VALUES:,} values")
            return self._reject(mark, "RC008", f"too many alias expansions: *{alias[0]} repeats {alias[1]:,} values, "
                                f"and {what}", "An alias (*name) repeats its anchor's whole contents, and nested ones "
                                "multiply; write the values out, or split the file. The rest of the file was not read.")
        what = f"document too large: {document}" if self.values > MAX_DOCUMENT_VALUES else f"file too large: {file}"
        return self._reject(mark, "RC008", what, "Split it into several documents and files. The rest of the file "
                            "was not read.")

    def _too_deep(self, mark: _Mark | None, depth: int, alias: str | None = None) -> _Rejected:
        through = f" once alias *{alias} is expanded" if alias else ""
        return self._reject(mark, "RC007", f"nested too deeply: {depth} levels of mappings and lists{through}, over the "
                            f"limit of {MAX_DEPTH}", "Flatten the structure; no manifest field needs that depth. "
                            "The rest of the file was not read.")

    def _reject(self, mark: _Mark | None, code: str, message: str, hint: str) -> _Rejected:
        # The parsers give every event a mark; without one the diagnostic points at the file's start.
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        return _Rejected(Diagnostic(self.file, line, column, code, message, json_path(self._path()), hint=hint))

    def _path(self) -> JsonPath:
        """The JSON path of the value being composed: in each open collection, the index or key
        it will have."""
        path: list[Any] = []
        for node, _, _, _, key, is_list in self.stack:
            if is_list:
                path.append(len(node.value))
            elif key is None:
                break  # a key being composed (a list or mapping as a key)
            else:
                path.append(key.value if isinstance(key, yaml.ScalarNode) else "<key>")
        return tuple(path)


def parse(text: str, file: str) -> tuple[list[Document], list[Diagnostic]]:
    """Every document in one file; stops at the first YAML syntax error, and at the first
    document over a cap. A document whose values cannot be constructed is reported and left out;
    the next one is still read.

    Two paths, one answer. A small file of plain JSON-like documents (the common case) is
    composed by the C loader and turned into data by ``_Plain``, which gives up at the first
    thing the checked path would report or treat specially; its documents find their marks
    later, by reading the file again with the checked path, and only when a diagnostic asks.
    Every other file, and every file the fast path gives up on, is read by the checked path from
    the start: what is reported, and where, is what that path says."""
    documents = _parse_fast(text, file)
    if documents is not None:
        return documents, []
    return _parse_checked(text, file)


# The fast path: only where the C composer is there, for files small enough that composing them
# whole before counting costs little (the checked path counts as it goes), and whose documents
# cannot nest deeper than the C composer can recurse (it recurses once per level, on the C stack;
# 1,000 levels is far below where a thread's stack ends).
FAST_MAX_BYTES = 256 * 1024
_C_COMPOSER = getattr(yaml, "CSafeLoader", None) is _BaseLoader
_COMPOSER_MAX_LEVELS = 1000
# Every level of nesting opens with one of these characters in its document: a block list's
# '-', a mapping's first ':' or '?', a flow collection's bracket.
_NESTING_OPENERS = "-:?[{"
# '---' or '...' at the start of a line always ends a document (libyaml refuses it anywhere else);
# a line break this pattern does not know only makes a document look longer, never shallower.
_DOCUMENT_MARKER = re.compile(r"^(?:---|\.\.\.)(?=[ \t\r\n\x85\u2028\u2029]|\Z)", re.M)
_INT, _FLOAT, _BOOL, _NULL = _CORE + "int", _CORE + "float", _CORE + "bool", _CORE + "null"


def _shallow(text: str) -> bool:
    """Whether no document of ``text`` can nest more than ``_COMPOSER_MAX_LEVELS`` deep."""

    def openers(start: int, end: int) -> int:
        return sum(text.count(c, start, end) for c in _NESTING_OPENERS)

    if openers(0, len(text)) <= _COMPOSER_MAX_LEVELS:
        return True
    start = 0
    for marker in _DOCUMENT_MARKER.finditer(text):
        if openers(start, marker.start()) > _COMPOSER_MAX_LEVELS:
            return False
        start = marker.start()
    return openers(start, len(text)) <= _COMPOSER_MAX_LEVELS


class _NotPlain(Exception):
    """The fast path met something the checked path must see."""


class _Plain:
    """Node graphs → data, for documents the checked path would take without a word: string
    keys, each once; values JSON can carry, tagged as they read; no alias; within the caps.
    Raises ``_NotPlain`` at anything else."""

    def __init__(self, loader: _Loader, may_share: bool) -> None:
        self.loader = loader
        self.constructors = loader.yaml_constructors
        self.values = 0  # in this document
        self.file_values = 0
        # Only an anchor ('&') lets a node appear twice (an alias); without one, nothing to track.
        self.seen: set[int] | None = set() if may_share else None

    def document(self, node: yaml.Node) -> Any:
        self.values = 0
        data = self.value(node, 0)
        self.file_values += self.values
        if self.values > MAX_DOCUMENT_VALUES or self.file_values > MAX_FILE_VALUES:
            raise _NotPlain
        return data

    def value(self, node: yaml.Node, depth: int) -> Any:
        self.values += 1
        if self.seen is not None:
            if id(node) in self.seen:
                raise _NotPlain  # an alias
            self.seen.add(id(node))
        kind = node.__class__
        tag = node.tag
        if kind is yaml.ScalarNode:
            if tag == STR_TAG:
                return node.value
            if tag == _NULL:
                return None
            if tag != _INT and tag != _FLOAT and tag != _BOOL:
                raise _NotPlain
            text = node.value
            reads_as = self.loader.resolve(yaml.ScalarNode, text, (True, False))
            if reads_as != tag and not (tag == _FLOAT and reads_as == _INT):
                raise _NotPlain
            if (tag == _FLOAT and not _finite(text)) or (tag == _INT and len(text) > MAX_INTEGER_DIGITS):
                raise _NotPlain
            return self.constructors[tag](self.loader, node)
        if depth >= MAX_DEPTH:
            raise _NotPlain
        if kind is yaml.MappingNode and tag == MAP_TAG:
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.__class__ is not yaml.ScalarNode or key_node.tag != STR_TAG:
                    raise _NotPlain  # not a string, or a merge ('<<')
                self.values += 1
                if self.seen is not None:
                    if id(key_node) in self.seen:
                        raise _NotPlain
                    self.seen.add(id(key_node))
                key = key_node.value
                if key in out:
                    raise _NotPlain  # a duplicate key
                out[key] = self.value(value_node, depth + 1)
            return out
        if kind is yaml.SequenceNode and tag == SEQ_TAG:
            return [self.value(item, depth + 1) for item in node.value]
        raise _NotPlain


class _Source:
    """A file read by the fast path, kept until a document of it needs its marks: then read
    again by the checked path, once, for every document of the file."""

    def __init__(self, text: str, file: str, documents: list[Document]) -> None:
        self.text: str | None = text
        self.file = file
        self.documents = documents

    def mark(self) -> None:
        text, self.text = self.text, None
        if text is None:
            return
        checked, _ = _parse_checked(text, self.file)
        for doc, again in zip(self.documents, checked, strict=False):  # the same documents: the fast path took them all
            doc.marks, doc.key_marks = again.marks, again.key_marks
        for doc in self.documents:
            doc.source = None


def _parse_fast(text: str, file: str) -> list[Document] | None:
    """The documents of a plain file, without marks; None when the checked path must read it."""
    if not _C_COMPOSER or len(text) > FAST_MAX_BYTES or not _shallow(text):
        return None
    documents: list[Document] = []
    source = _Source(text, file, documents)
    try:
        loader = _Loader(text)
    except Exception:  # noqa: BLE001 - whatever it is, the checked path reports it
        return None
    plain = _Plain(loader, "&" in text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node said there is one
                return None
            documents.append(Document(file=file, index=len(documents), line=node.start_mark.line + 1,
                                      data=plain.document(node), source=source))
    except Exception:  # noqa: BLE001 - a syntax error, a cap, anything unusual: the checked path reports it
        return None
    finally:
        loader.dispose()
    return documents


def _parse_checked(text: str, file: str) -> tuple[list[Document], list[Diagnostic]]:
    """``parse`` by the checked path: every document with its marks, and every diagnostic."""
    documents: list[Document] = []
    diagnostics: list[Diagnostic] = []
    try:
        loader = _Loader(text)  # the pure-Python reader checks every character here
    except yaml.reader.ReaderError as exc:
        return [], [_reader_error(exc, text, file)]
    composer = _Composer(loader, file)
    try:
        loader.get_event()  # StreamStartEvent
        index = 0
        while not loader.check_event(yaml.StreamEndEvent):
            loader.get_event()  # DocumentStartEvent
            node = composer.document()
            loader.get_event()  # DocumentEndEvent
            doc = Document(file=file, index=index, line=node.start_mark.line + 1, data=None)
            index += 1
            _index_node(node, (), doc, diagnostics, set(), loader)  # before construction, which rewrites merges
            try:
                doc.data = loader.construct_document(node)
            except yaml.MarkedYAMLError as exc:
                _reset_constructor(loader)
                diagnostics.append(_syntax_error(exc, text, file))
                continue
            documents.append(doc)
    except _Rejected as rejected:
        diagnostics.append(rejected.diagnostic)
    except yaml.MarkedYAMLError as exc:
        diagnostics.append(_syntax_error(exc, text, file))
    except yaml.reader.ReaderError as exc:
        diagnostics.append(_reader_error(exc, text, file))
    except yaml.YAMLError as exc:
        diagnostics.append(Diagnostic(file, 1, 1, "RC002", f"YAML error: {exc}"))
    finally:
        loader.dispose()
    return documents, diagnostics


def _reader_error(exc: yaml.reader.ReaderError, text: str, file: str) -> Diagnostic:
    """A character YAML does not allow: the error has no mark, only a position."""
    line, column = _line_column(text, exc.position)
    character = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
    return Diagnostic(file, line, column, "RC002", f"YAML syntax error: character {character} is not allowed in YAML "
                      f"({exc.reason})", hint="Remove the control character, or write it as an escape in a "
                      "double-quoted string, e.g. \"\\x07\".")


def _line_column(text: str, position: int) -> tuple[int, int]:
    """1-based line and column of a reader error's position: a byte offset into the UTF-8 text
    for the C loader, a character offset for the pure-Python one."""
    if getattr(yaml, "CSafeLoader", None) is _BaseLoader:
        data = text.encode("utf-8")
        position = max(0, min(position, len(data)))
        start = data.rfind(b"\n", 0, position) + 1
        return data.count(b"\n", 0, position) + 1, len(data[start:position].decode("utf-8", "ignore")) + 1
    position = max(0, min(position, len(text)))
    return text.count("\n", 0, position) + 1, position - (text.rfind("\n", 0, position) + 1) + 1


def _reset_constructor(loader: _Loader) -> None:
    """After a failed construction, so that the next document starts clean."""
    loader.state_generators = []
    loader.constructed_objects = {}
    loader.recursive_objects = {}
    loader.deep_construct = False


def _syntax_error(exc: yaml.MarkedYAMLError, text: str, file: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = exc.problem or "invalid YAML"
    context = f" ({exc.context})" if exc.context else ""
    source_line = _source_line(text, line)
    hint = ("Quote ${...} references inside { } or [ ], e.g. host: \"${env:HOST}\"."
            if "${" in source_line and ("{" in source_line.split("${")[0] or "[" in source_line.split("${")[0])
            else "Check indentation, quoting and ':' after keys near this line.")
    return Diagnostic(file, line, column, "RC002", f"YAML syntax error: {problem}{context}", hint=hint)


def _source_line(text: str, line: int) -> str:
    """Line ``line`` (1-based) of ``text``, found without splitting the whole text."""
    start = 0
    for _ in range(line - 1):
        start = text.find("\n", start) + 1
        if start == 0:
            return ""
    end = text.find("\n", start)
    return text[start:] if end < 0 else text[start:end]


def _index_node(node: yaml.Node, path: JsonPath, doc: Document, diagnostics: list[Diagnostic], checked: set[int],
                loader: _Loader) -> None:
    """Marks for every JSON path of the expanded document; and, once per node (an alias visits it
    again), the checks only the node graph can make: duplicate and non-string keys, values JSON
    cannot carry, unknown tags. A node reported is retagged as text (a key replaced by one), so
    that construction and the later checks see plain JSON data. Bounded by the composer's caps:
    at most ``MAX_DEPTH`` deep and ``MAX_DOCUMENT_VALUES`` values, aliases expanded."""
    doc.marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    first = id(node) not in checked
    checked.add(id(node))
    if isinstance(node, yaml.ScalarNode):
        if first:
            _check_scalar(node, path, doc, diagnostics, loader)
        return
    if first and node.tag != (MAP_TAG if isinstance(node, yaml.MappingNode) else SEQ_TAG):
        _check_tag(node, path, doc, diagnostics)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, yaml.Node] = {}
        merged: list[yaml.Node] = []
        for i, (key_node, value_node) in enumerate(node.value):
            if key_node.tag == MERGE_TAG:
                merged.append(value_node)  # `<<: *anchor` may override keys; that is not a duplicate
                continue
            if first and not (isinstance(key_node, yaml.ScalarNode) and key_node.tag == STR_TAG):
                key_node = _text_key(node, i, path, doc, diagnostics)
            key = key_node.value
            if key in seen:
                if first:
                    line = seen[key].start_mark.line + 1
                    diagnostics.append(Diagnostic(
                        doc.file, key_node.start_mark.line + 1, key_node.start_mark.column + 1, "RC005",
                        f"duplicate key {key!r}: it is already set on line {line}, and only one value can win",
                        path=json_path(path + (key,)), hint="Remove one of the two, or merge their contents."))
                continue
            seen[key] = key_node
            child = path + (key,)
            doc.key_marks.setdefault(child, (key_node.start_mark.line + 1, key_node.start_mark.column + 1))
            _index_node(value_node, child, doc, diagnostics, checked, loader)
        # Merged keys after the mapping's own: a key written here wins, and keeps its own mark.
        for value_node in merged:
            for source in value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]:
                if isinstance(source, yaml.MappingNode):
                    _index_node(source, path, doc, diagnostics, checked, loader)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_node(item, path + (i,), doc, diagnostics, checked, loader)


def _report_value(node: yaml.Node, path: JsonPath, doc: Document, diagnostics: list[Diagnostic], code: str,
                  message: str, hint: str) -> None:
    diagnostics.append(Diagnostic(doc.file, node.start_mark.line + 1, node.start_mark.column + 1, code, message,
                                  json_path(path), hint=hint))


def _check_scalar(node: yaml.ScalarNode, path: JsonPath, doc: Document, diagnostics: list[Diagnostic],
                  loader: _Loader) -> None:
    tag = node.tag
    if tag not in SCALAR_TAGS:
        _check_tag(node, path, doc, diagnostics)
        return
    if tag == STR_TAG or tag == _CORE + "null":  # any text reads as either
        return
    text = node.value if len(node.value) <= 40 else node.value[:37] + "..."
    # An explicit tag on a value that does not read as it (``!!int abc``, ``!!bool maybe``);
    # an integer is a fine float (``!!float 1``).
    reads_as = loader.resolve(yaml.ScalarNode, node.value, (True, False))
    if reads_as != tag and not (tag == _CORE + "float" and reads_as == _CORE + "int"):
        _report_value(node, path, doc, diagnostics, "RC023", f"wrong type: {text!r} is not {TAG_NAMES[tag]}",
                      "Remove the tag, or write a value of that type.")
    elif tag == _CORE + "float" and not _finite(node.value):
        _report_value(node, path, doc, diagnostics, "RC023", f"wrong type: {text} is not a number JSON can carry",
                      f"Quote it (\"{text}\") if it is text; the tenant API takes finite numbers only.")
    elif tag == _CORE + "int" and len(node.value) > MAX_INTEGER_DIGITS:
        _report_value(node, path, doc, diagnostics, "RC023", f"wrong type: an integer of {len(node.value):,} digits",
                      "Quote it if it is text; no tenant setting takes a number that large.")
    else:
        return
    node.tag = STR_TAG


def _finite(value: str) -> bool:
    """Whether a YAML float reads as a finite number (``.inf``, ``.nan`` and ``1e999`` do not)."""
    text = value.replace("_", "").lower()
    if "inf" in text or "nan" in text:
        return False
    try:
        return math.isfinite(float(text))
    except ValueError:  # sexagesimal (1:30.5) and the like: finite
        return True


def _check_tag(node: yaml.Node, path: JsonPath, doc: Document, diagnostics: list[Diagnostic]) -> None:
    """A value whose tag JSON cannot carry (RC023), or that the loader does not know or that does
    not fit the value (RC002: ``!foo``, ``!!str {a: 1}``); reported once and read as plain text,
    list or mapping from then on."""
    text = node.value if isinstance(node, yaml.ScalarNode) else ""
    text = text if len(text) <= 40 else text[:37] + "..."
    if node.tag in (MERGE_TAG, _CORE + "value") and isinstance(node, yaml.ScalarNode):
        _report_value(node, path, doc, diagnostics, "RC023", f"wrong type: {text!r} is read as a YAML "
                      f"{'merge' if node.tag == MERGE_TAG else 'value'} indicator; quote it: \"{text}\"",
                      f"Quote it (\"{text}\") to keep it as text.")
    elif node.tag in NON_JSON_TAGS:
        what = NON_JSON_TAGS[node.tag]
        date = node.tag == _CORE + "timestamp"
        _report_value(node, path, doc, diagnostics, "RC023",
                      f"wrong type: {what}, which JSON cannot carry" + (f"; quote it: \"{text}\"" if date else ""),
                      "Quote the value to keep it as text, e.g. since: \"2024-01-01\"." if date
                      else "Write it as plain text, a list or a mapping; the tenant API takes JSON values only.")
    else:
        _report_value(node, path, doc, diagnostics, "RC002", f"unsupported YAML tag {node.tag!r} on this value",
                      "Remove the tag: manifests hold plain YAML values (text, numbers, booleans, lists, mappings).")
    node.tag = STR_TAG if isinstance(node, yaml.ScalarNode) else SEQ_TAG if isinstance(node, yaml.SequenceNode) else MAP_TAG


def _text_key(node: yaml.MappingNode, i: int, path: JsonPath, doc: Document,
              diagnostics: list[Diagnostic]) -> yaml.ScalarNode:
    """RC023 for a key that is not a string (``1:``, ``true:``, ``2024-01-01:``, ``[a, b]:``);
    the key is replaced by its text (a new node: the old one may be a value elsewhere)."""
    key_node, value_node = node.value[i]
    if isinstance(key_node, yaml.ScalarNode):
        text = key_node.value
        what = TAG_NAMES.get(key_node.tag, f"tagged {key_node.tag}")
        message = f"wrong type: the key {text!r} is read as {what}; mapping keys must be strings"
        hint = f"Quote the key: \"{text}\": ..."
    else:
        text = "<a list>" if isinstance(key_node, yaml.SequenceNode) else "<a mapping>"
        message = f"wrong type: a mapping key must be a string, not {text[1:-1]}"
        hint = "Use a plain name as the key."
    diagnostics.append(Diagnostic(doc.file, key_node.start_mark.line + 1, key_node.start_mark.column + 1, "RC023",
                                  message, json_path(path + (text,)), hint=hint))
    replacement = yaml.ScalarNode(STR_TAG, text, key_node.start_mark, key_node.end_mark)
    node.value[i] = (replacement, value_node)
    return replacement


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
        if not subs.env.get(whole["name"]):  # empty is unset: CI passes a secret it does not have as ""
            state = "is empty" if whole["name"] in subs.env else "is not set"
            report(path, "RC050", f"environment variable {whole['name']} {state} (needed by a secret field)",
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


# Variables never sent as a credential's secret nor written in a manifest: the API key (by its
# usual name, and by the name --api-key-env gives) and the key of the secret fingerprints.
PROTECTED_VARIABLES = ("ATLAN_API_KEY", "RECONCILER_FINGERPRINT_KEY")


def protected_references(text: str, api_key_env: str = "ATLAN_API_KEY") -> list[str]:
    """The protected variables a value names with ``${env:NAME}``."""
    protected = {*PROTECTED_VARIABLES, api_key_env}
    return sorted({m["name"] for m in REFERENCE.finditer(text) if m["source"] == "env" and m["name"] in protected})


def resolve_env(refs: Mapping[str, Any], env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The values behind ``{field: "${env:NAME}"}`` references, and the names that are not set
    (a value that is not exactly one ``${env:NAME}`` counts as unset; so does an empty variable:
    CI passes a secret it does not have as "", and no secret is empty)."""
    values: dict[str, str] = {}
    missing: list[str] = []
    for field_name, ref in refs.items():
        match = REFERENCE.fullmatch(str(ref))
        name = match["name"] if match and match["source"] == "env" else str(ref)
        if env.get(name) and match:
            values[field_name] = env[name]
        else:
            missing.append(name)
    mask.register(*values.values())  # resolved secrets are never shown again (see mask.py)
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
    if not path.exists():
        return {}, [Diagnostic(name, 0, 0, "RC080", f"variables file {name} does not exist",
                               hint="Fix the path in reconciler.yaml (varFiles) or in --var-file.")]
    text, problem = read_text(path)  # refuses a folder, FIFO or device (RC001), or a file too large (RC006)
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
