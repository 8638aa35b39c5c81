"""The state file: what the reconciler knows that the tenant API does not tell it.

Per project and per tenant: the slug of each managed app and the trigger ids of its schedules
(the API does not return attached schedules), credential guids and keyed fingerprints of their
secrets (secrets are write-only), the recorded ``preventDestroy`` flags, and **intents**: writes
whose effect cannot be read back (a schedule attached, a run submitted), recorded before the
request and settled after it, so that a killed or cut-off apply leaves a visible intent, never a
hidden trigger.

Several projects may share one file; each reads and writes only its own records (keyed by the
project folder's path relative to the state file). It holds no secret and is meant to be
committed. A command that writes holds the state lock (``lock.state_lock``) from load to last
write, so the other projects' entries it writes back are the ones it loaded.

**The journal.** Each change is appended to ``<state file>.journal`` beside it (one JSON line per
record, fsynced before the change is acknowledged; changes made at the same time by the apply's
worker threads share one append and one fsync) instead of rewriting the whole file, so a change
costs the same whatever the tenant's size. The state lock covers the journal as it covers the
file. ``compact`` (at the end of every apply, whether it succeeded or not, and by every command
that rewrites the file) writes the whole file atomically (temp file + fsync + rename) and then
removes the journal: one full rewrite per apply, however many changes.

A journal opens with a header naming the file it extends (``{"journal": 1, "base": <sha256 of the
state file's bytes, "" for none>}``). It is replayed by the next command that loads the state: the
read-only ones (``plan``, ``drift``, ``state list|show``) replay it in memory and write nothing
(they take no lock); the next writer folds it into the file. Folding first appends
``{"folded": <sha256 of the new file>}``, then renames the new file in, then removes the journal:
a journal left by a kill between the two is known to be in the file already and is ignored, and a
reader never applies an old journal to a newer file. A journal whose base is neither the file nor
folded into it (the file was replaced after a kill, e.g. by a checkout) is refused, saying what to
do. A last line cut short by a kill is ignored (its change was never acknowledged) and cut off
before the next append; any other unreadable line is an error that says where and what to do,
never a silent loss. The journal is never meant to be committed: a clean apply leaves none.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler import kinds
from reconciler.defaults import STATE_FILE
from reconciler.errors import ReconcilerError
from reconciler.files import write_text_atomic
from reconciler.model import ResourceKey
from reconciler.plan import Records

STATE_FORMAT = 2
JOURNAL_SUFFIX = ".journal"  # beside the state file: changes not yet folded into it
JOURNAL_FORMAT = 1  # the header line of a journal: {"journal": 1, "base": <digest of the file it extends>}
DEFAULT_STATE_FILE = STATE_FILE  # beside reconciler.yaml: committed with the manifests


class StateWriteError(ReconcilerError):
    """A change could not be recorded (the journal or the file could not be written)."""


class _ReplacedUnderneath(ReconcilerError):
    """The journal extends another version of the state file than the one read."""


def secret_fingerprint(key: bytes, values: dict[str, str]) -> str:
    """HMAC-SHA256 over the secret fields of one credential (name=value, sorted): detects a
    rotation without storing or reading back the secret."""
    message = "\n".join(f"{name}={values[name]}" for name in sorted(values)).encode()
    return "hmac-sha256:" + hmac.new(key, message, hashlib.sha256).hexdigest()


def fingerprint_key(api_key: str) -> bytes:
    """RECONCILER_FINGERPRINT_KEY when set, else a key derived from the API key."""
    explicit = os.environ.get("RECONCILER_FINGERPRINT_KEY")
    if explicit:
        return explicit.encode()
    return hashlib.sha256(b"reconciler-fingerprint:" + api_key.encode()).digest()


def project_key(root: Path, state_path: Path) -> str:
    """A project's key in a state file: its folder relative to the state file's folder. Two
    projects sharing a file are told apart by where they are, even if they carry one name."""
    return Path(os.path.relpath(os.path.abspath(root), os.path.abspath(state_path.parent))).as_posix()


def tenant_key(identity: str) -> str:
    return identity.rstrip("/") + "/" if identity.startswith("http") else identity


@dataclass
class TenantState:
    """The records of one tenant within one project: ``resources["App/name"] = {...}``."""

    resources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, key: Any) -> dict[str, Any]:
        return self.resources.get(str(key), {})

    def intents(self) -> list[tuple[str, dict[str, Any]]]:
        """Every unsettled intent, with the key of its object."""
        return [(key, intent) for key, record in sorted(self.resources.items())
                for intent in record.get("intents") or []]


@dataclass
class StateFile:
    path: Path
    project: str = "."
    project_name: str = ""
    tenants: dict[str, TenantState] = field(default_factory=dict)  # this project's
    others: dict[str, Any] = field(default_factory=dict)  # other projects' entries, kept as they were
    migrated: bool = False  # read from a format-1 file (records had no project)
    replayed: int = 0  # changes read from a journal a stopped apply left (not yet in the file)
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False, compare=False)
    _generation: int = field(default=0, repr=False, compare=False)
    _written: int = field(default=0, repr=False, compare=False)
    _writing: bool = field(default=False, repr=False, compare=False)
    _pending: list[str] = field(default_factory=list, repr=False, compare=False)  # journal lines not yet on disk
    _journaled: bool = field(default=False, repr=False, compare=False)  # a journal exists beside the file
    _cut_at: int | None = field(default=None, repr=False, compare=False)  # the next append first cuts the journal here
    _failed: int = field(default=0, repr=False, compare=False)  # the last generation whose write failed
    _base: str = field(default="", repr=False, compare=False)  # digest of the file as last read or written
    # How often the journal was appended to (one fsync each) and the whole file rewritten.
    writes: dict[str, int] = field(default_factory=lambda: {"appends": 0, "rewrites": 0}, repr=False, compare=False)
    sync: Callable[[int], None] = field(default_factory=lambda: os.fsync, repr=False, compare=False)  # tests count it
    # Called (under the lock) with how many journal lines wait for the next append: what a test of
    # group commit waits on.
    queued: Callable[[int], None] = field(default_factory=lambda: lambda _waiting: None, repr=False, compare=False)

    @property
    def journal_path(self) -> Path:
        return self.path.with_name(self.path.name + JOURNAL_SUFFIX)

    @classmethod
    def load(cls, path: Path, project: str = ".", project_name: str = "") -> StateFile:
        try:
            state = cls._load_file(path, project, project_name)
            state._replay()
        except _ReplacedUnderneath:
            # A reader (no lock) may read the file just before a writer folds the journal and starts the
            # next one: read both again once. A second time, the file was replaced for real.
            state = cls._load_file(path, project, project_name)
            state._replay()
        return state

    @classmethod
    def _load_file(cls, path: Path, project: str, project_name: str) -> StateFile:
        state = cls(path, project=project, project_name=project_name)
        if not path.exists():
            return state
        try:
            raw = path.read_bytes()
            state._base = _digest(raw)
            data = json.loads(raw)
        except (OSError, ValueError, RecursionError) as exc:
            raise ReconcilerError(f"state file {path} cannot be read: {exc}",
                                  hint="Restore it from Git, or move it aside: objects are re-discovered by name.") from exc
        fmt = data.get("format") if isinstance(data, dict) else None
        if fmt == 1:
            state.tenants = _tenants(path, data.get("tenants"))
            state.migrated = True
            return state
        if fmt != STATE_FORMAT or not isinstance(data.get("projects", {}), dict):
            raise ReconcilerError(f"state file {path} is not a format-{STATE_FORMAT} reconciler state file",
                                  hint="Point stateFile in reconciler.yaml at the right file, or move this one aside.")
        projects = dict(data.get("projects") or {})
        mine = projects.pop(project, {})
        if not isinstance(mine, dict):
            raise _malformed(path, f"the entry of project {project!r} is not a mapping")
        state.tenants = _tenants(path, mine.get("tenants"))
        state.others = projects
        return state

    def recorded_by_others(self, identity: str) -> frozenset[ResourceKey]:
        """The objects other projects sharing this file record for one tenant."""
        out = set()
        for entry in self.others.values():
            tenant = ((entry or {}).get("tenants") or {}).get(tenant_key(identity)) if isinstance(entry, dict) else None
            for key in ((tenant or {}).get("resources") or {}) if isinstance(tenant, dict) else ():
                kind, _, name = str(key).partition("/")
                if name:
                    out.add(ResourceKey(kind, name))
        return frozenset(out)

    def tenant(self, identity: str) -> TenantState:
        """The records of one tenant, by its base URL (or the embedded sandbox's identity)."""
        return self.tenants.setdefault(tenant_key(identity), TenantState())

    def to_dict(self) -> dict[str, Any]:
        """The whole file's content (a copy)."""
        return copy.deepcopy(self._document())

    def _document(self) -> dict[str, Any]:
        """The whole file's content, sharing this object's records (serialise it under ``_cond``)."""
        projects = dict(self.others)
        mine = {url: {"resources": t.resources} for url, t in sorted(self.tenants.items()) if t.resources}
        if mine:
            projects[self.project] = {"name": self.project_name, "tenants": mine}
        return {"format": STATE_FORMAT, "projects": dict(sorted(projects.items()))}

    def put(self, tenant: str, key: str, record: Mapping[str, Any] | None) -> None:
        """Record one object (None forgets it) and return once the journal holds it on disk."""
        self.put_many(tenant, {key: record})

    def put_many(self, tenant: str, records: Mapping[str, Mapping[str, Any] | None]) -> None:
        """Record several objects (None forgets one), with one append to the journal."""
        with self._cond:
            resources = self.tenant(tenant).resources
            where = json.dumps({"project": self.project, "name": self.project_name, "tenant": tenant_key(tenant)},
                               separators=(",", ":"))[:-1]
            for key, record in records.items():
                # Kept as the journal line has it (a JSON round trip: faster than a deep copy, and what a
                # replay would read back).
                text = json.dumps(None if record is None else dict(record), separators=(",", ":"))
                if record is None:
                    resources.pop(key, None)
                else:
                    resources[key] = json.loads(text)
                self._pending.append(f'{where},"key":{json.dumps(key)},"record":{text}}}\n')
            self.queued(len(self._pending))
        self._commit(self._append)

    def save(self) -> None:
        """Write the whole file atomically (temp file, fsync, rename), then remove the journal."""
        self._commit(self._rewrite)

    def compact(self) -> None:
        """Fold the journal into the file, if there is one (the end of every apply); also write a
        file read in the old format in the current one."""
        with self._cond:
            needed = self._journaled or bool(self._pending) or self.migrated or self.journal_path.exists()
        if needed:
            self.save()

    def _commit(self, write: Callable[[], tuple[Callable[[], None], Callable[[], None]]]) -> None:
        """Group commit: a caller returns only after a write that includes its change; callers that
        arrive while a write is under way share the next one. ``write`` runs under the lock and
        returns the I/O to do outside it, and what puts things back when that I/O fails. A failed
        write fails every caller it held; their changes are written by the next write that works."""
        with self._cond:
            self._generation += 1
            target = self._generation
            while self._written < target:
                if self._failed >= target:
                    raise StateWriteError(f"the state journal {self.journal_path} could not be written",
                                          hint="Another change written at the same time reported why.")
                if self._writing:
                    self._cond.wait()
                    continue
                self._writing = True
                generation = self._generation
                io, undo = write()
                self._cond.release()
                try:
                    io()
                except OSError as exc:
                    self._cond.acquire()
                    undo()
                    self._failed, self._writing = generation, False
                    self._cond.notify_all()
                    raise StateWriteError(f"the state of {self.path} could not be written: {exc}",
                                          hint="Free space or fix permissions there; the change was not recorded.") from exc
                except BaseException:
                    self._cond.acquire()
                    undo()
                    self._failed, self._writing = generation, False
                    self._cond.notify_all()
                    raise
                self._cond.acquire()
                self._writing = False
                self._written = generation
                self._cond.notify_all()

    def _append(self) -> tuple[Callable[[], None], Callable[[], None]]:
        lines, self._pending = self._pending, []
        cut_at, self._cut_at = self._cut_at, None
        journaled, self._journaled = self._journaled, True
        self.writes["appends"] += 1
        header = (json.dumps({"journal": JOURNAL_FORMAT, "base": self._base}, separators=(",", ":")) + "\n").encode()
        started: list[int] = []

        def io() -> None:
            if not lines:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.journal_path, "ab") as fh:
                if cut_at is not None:  # a line a kill cut short (never acknowledged), or a stale journal: gone first
                    fh.truncate(cut_at)
                fh.seek(0, os.SEEK_END)
                started.append(fh.tell())
                fh.write((header if fh.tell() == 0 else b"") + "".join(lines).encode())
                fh.flush()
                self.sync(fh.fileno())

        def undo() -> None:
            self._pending[:0] = lines  # the next write tries them again
            self._journaled = journaled or bool(started)
            if started:  # whatever part of them reached the file goes before the next append
                self._cut_at = started[0]
            elif cut_at is not None:
                self._cut_at = cut_at
        return io, undo

    def _rewrite(self) -> tuple[Callable[[], None], Callable[[], None]]:
        # Serialised here, under the lock: no copy of the records is needed.
        data = (json.dumps(self._document(), indent=2, sort_keys=True) + "\n").encode()
        before = (self._pending, self._journaled, self._cut_at, self._base, self.migrated)
        self._pending, self._journaled, self._cut_at = [], False, None  # all in the text: the journal is done with
        self.migrated = False
        self._base = _digest(data)
        self.writes["rewrites"] += 1
        marker = (json.dumps({"folded": self._base}, separators=(",", ":")) + "\n").encode()
        cut_at = before[2]

        def io() -> None:
            # The journal says first which file it is folded into: a kill between the rename and the
            # removal then leaves a journal the next load knows to be in the file already.
            with contextlib.suppress(FileNotFoundError), open(self.journal_path, "r+b") as fh:
                if cut_at is not None:  # a line a kill cut short goes first: the marker is a line of its own
                    fh.truncate(cut_at)
                fh.seek(0, os.SEEK_END)
                fh.write(marker)
                fh.flush()
                self.sync(fh.fileno())
            write_text_atomic(self.path, data.decode())
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.journal_path)

        def undo() -> None:
            self._pending[:0] = before[0]
            self._journaled, self._base, self.migrated = before[1] or self.journal_path.exists(), before[3], before[4]
            self._cut_at = cut_at  # only the marker can follow it
        return io, undo

    def _replay(self) -> None:
        """Apply a journal left beside the file (by a killed apply) to what was loaded."""
        try:
            raw = self.journal_path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ReconcilerError(f"the state journal {self.journal_path} cannot be read: {exc}",
                                  hint="Check its permissions; it holds changes not yet in the state file.") from exc
        self._journaled = True
        whole = raw.rfind(b"\n") + 1  # a line cut short by a kill follows the last newline
        if whole < len(raw):
            self._cut_at = whole  # the next append first cuts it off, or it would end up mid-journal
        lines = raw[:whole].split(b"\n")[:-1]
        entries: list[tuple[int, Any]] = []
        for number, line in enumerate(lines, 1):
            try:
                entries.append((number, json.loads(line)))
            except (ValueError, RecursionError) as exc:
                raise self._broken(number, len(lines), exc) from exc
        first = entries[0][1] if entries else None
        header = first if isinstance(first, dict) and "journal" in first else None
        if header is not None and header["journal"] != JOURNAL_FORMAT:
            raise ReconcilerError(f"the state journal {self.journal_path} is in format {header['journal']!r}, not "
                                  f"{JOURNAL_FORMAT}", hint="It was written by another version of reconciler: fold "
                                  "it in with that version (`reconciler state compact` does).")
        last = entries[-1][1] if entries else None
        if isinstance(last, dict) and "folded" in last and last["folded"] == self._base:
            self._cut_at = 0  # folded into this file already (killed before its removal): the next append starts over
            return
        if header is not None and header.get("base") != self._base:
            raise _ReplacedUnderneath(
                f"the state journal {self.journal_path} holds changes to another version of {self.path.name} than "
                "the one there now (the file was replaced, e.g. by a checkout or a pull, after an apply was killed)",
                hint="Its changes are not in this file. To keep them, put back the state file the killed apply "
                     "used and run `reconciler state compact` (it folds them in); to drop them, delete the journal (the next plan "
                     "re-discovers objects by name; check schedules and intents on the tenant).")
        for number, entry in entries[1:] if header is not None else entries:
            if isinstance(entry, dict) and "folded" in entry:
                continue  # a fold that did not happen (it failed, or a kill came before the rename)
            try:
                self._apply_entry(entry)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise self._broken(number, len(lines), exc) from exc
            self.replayed += 1

    def _broken(self, number: int, count: int, exc: Exception) -> ReconcilerError:
        return ReconcilerError(
            f"the state journal {self.journal_path} is malformed at line {number} of {count}: {exc}",
            hint="It holds changes an apply recorded and the state file does not have yet; damage that a "
                 "kill cannot make (only a last line cut short is expected). Restore the journal from a "
                 "backup, or repair or delete that line by hand (its change is then lost: the next plan "
                 "re-discovers the object by name, but a schedule's trigger id or an intent it recorded must "
                 "be checked on the tenant).")

    def _apply_entry(self, entry: Mapping[str, Any]) -> None:
        project, tenant, key, record = entry["project"], entry["tenant"], str(entry["key"]), entry["record"]
        kind, _, name = key.partition("/")
        if not isinstance(project, str) or not isinstance(tenant, str):
            raise ValueError("its project or tenant is not a string")
        if not kinds.known(kind) or not name or (record is not None and not isinstance(record, dict)):
            raise ValueError(f"not a record of KIND/NAME: {key!r}")
        if project == self.project:
            resources = self.tenant(tenant).resources
        else:  # another project's change (it shares the file): kept for the next full write
            entry_of = self.others.setdefault(project, {"name": entry.get("name") or "", "tenants": {}})
            resources = entry_of.setdefault("tenants", {}).setdefault(tenant, {}).setdefault("resources", {})
        if record is None:
            resources.pop(key, None)
        else:
            resources[key] = record


def fold_journal(path: Path) -> int:
    """Fold the journal a stopped apply left beside the state file at ``path`` into it, for every
    project sharing the file (the caller holds the state lock); how many changes it held."""
    state = StateFile.load(path, project=_NO_PROJECT)  # every project's entries are kept as "others"
    state.compact()
    return state.replayed


_NO_PROJECT = "\0"  # a project key no folder has: loaded with it, a state file is every project's


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _malformed(path: Path, what: str) -> ReconcilerError:
    return ReconcilerError(f"state file {path} is malformed: {what}",
                           hint="Restore it from Git, or move it aside: objects are re-discovered by name.")


def _tenants(path: Path, raw: Any) -> dict[str, TenantState]:
    """Checked records: a hand-edited or truncated file is refused with where it is wrong."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _malformed(path, "'tenants' is not a mapping")
    out: dict[str, TenantState] = {}
    for url, tenant in raw.items():
        resources = tenant.get("resources") if isinstance(tenant, dict) else None
        if not isinstance(resources, dict):
            raise _malformed(path, f"the resources of tenant {url!r} are not a mapping")
        for key, record in resources.items():
            kind, _, name = str(key).partition("/")
            if not kinds.known(kind) or not name:
                raise _malformed(path, f"record key {key!r} is not KIND/NAME")
            if not isinstance(record, dict):
                raise _malformed(path, f"the record of {key} is not a mapping")
        out[tenant_key(str(url))] = TenantState(resources={k: dict(v) for k, v in resources.items()})
    return out


def resolve_intent(tenant: TenantState, key: str, *, intent_id: str | None, attached: str | None) -> str:
    """Settle an intent of one object: ``attached`` (a trigger id seen on the tenant) records the
    schedule as attached; None records that it is absent. Returns what was done, for the user."""
    record = tenant.resources.get(key)
    intents = list((record or {}).get("intents") or [])
    if not intents:
        raise ReconcilerError(f"{key} has no unverified intent to resolve", hint="`reconciler state show` lists its record.")
    if intent_id is None and len(intents) > 1:
        listed = ", ".join(f"{i.get('id')} ({describe_intent(i)})" for i in intents)
        raise ReconcilerError(f"{key} has {len(intents)} unverified intents: {listed}", hint="Name one with --intent ID.")
    chosen = intents[0] if intent_id is None else next((i for i in intents if i.get("id") == intent_id), None)
    if chosen is None:
        raise ReconcilerError(f"{key} has no intent {intent_id!r}", hint="`reconciler state show` lists its intents.")
    assert record is not None
    record = dict(record)
    left = [i for i in intents if i is not chosen]
    if left:
        record["intents"] = left
    else:
        record.pop("intents", None)
    if attached is not None:
        if chosen.get("action") != "schedule":
            raise ReconcilerError(f"intent {chosen.get('id')} of {key} is a {chosen.get('action')}, not a schedule",
                                  hint="Use --absent once you have checked the tenant.")
        record["schedules"] = [*(record.get("schedules") or []), {
            "trigger_id": attached, "cron": chosen.get("cron"), "timezone": chosen.get("timezone"),
            "version": chosen.get("version")}]
    tenant.resources[key] = record
    done = f"recorded as attached (trigger {attached})" if attached is not None else "recorded as absent"
    return f"{key}: {describe_intent(chosen)} {done}"


def describe_intent(intent: Mapping[str, Any]) -> str:
    if intent.get("action") == "schedule":
        return f"schedule {intent.get('cron')!r} ({intent.get('timezone')}) of {intent.get('at')}"
    return f"{intent.get('action')} of {intent.get('at')}"


def recorded_digest(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The digest an apply recorded of an object (see ``drift``); None when there is none, or what
    is there is not one (a hand-edited file costs the classes of drift, never an apply)."""
    applied = record.get("applied")
    fields = applied.get("fields") if isinstance(applied, dict) else None
    return fields if isinstance(fields, dict) else None


def records_of(tenant: TenantState, others: frozenset[ResourceKey] = frozenset(), digest_key: bytes = b"") -> Records:
    """What the planner needs of one project's records of one tenant; ``others``: what the other
    projects sharing the file record for that tenant (never this project's to claim);
    ``digest_key``: what the recorded digests were keyed with (the fingerprint key)."""
    keys = {k: ResourceKey(*k.split("/", 1)) for k in tenant.resources}
    return Records(
        managed=frozenset(keys.values()),
        prevent_destroy=frozenset(keys[k] for k, r in tenant.resources.items() if r.get("preventDestroy")),
        secret_fingerprints={keys[k]: r["secretFingerprint"] for k, r in tenant.resources.items() if r.get("secretFingerprint")},
        intents={keys[k]: tuple(r["intents"]) for k, r in tenant.resources.items() if r.get("intents")},
        pending_runs=frozenset(keys[k] for k, r in tenant.resources.items() if r.get("runPending")),
        others=others - frozenset(keys.values()),
        serial=records_serial(tenant),
        applied={keys[k]: fields for k, r in tenant.resources.items() if (fields := recorded_digest(r)) is not None},
        digest_key=digest_key,
    )


def records_serial(tenant: TenantState) -> str:
    """A digest of one project's records of one tenant: a saved plan applies only to the records
    it was made from (another apply in between makes it stale)."""
    text = json.dumps(tenant.resources, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
