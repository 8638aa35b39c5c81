"""The sandbox's tenant state: one JSON document guarded by one lock, persisted atomically.

Takes an optional state-file path and a seed; gives the API modules ``read()``/``mutate()``
context managers over the document, plus id minting from a seeded generator. Minted ids never
collide with stored ones: the generator is seeded with the seed *and* a digest of the state it
loaded (so a restart with the same ``--seed`` on a state file draws a new stream, repeatably for
that seed and that file), and an id already in use is skipped. A background
flusher writes the document (temp file + fsync + rename) ``persist_interval`` seconds after a
change, or four times as long as its last write held the lock if that is longer (a big tenant is
written less often rather than keep its requests waiting), and ``close()`` writes whatever is
pending, so a restart finds every change that was acknowledged before a clean shutdown. With ``persist_interval=0`` every change is written
before the request is answered.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import random
import string
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from reconciler.files import write_text_atomic
from reconciler.sandbox import catalogue

STATE_FORMAT = 1
FLUSH_SHARE = 4  # the flusher waits at least this many times as long as its last write held the lock


class StateFileError(Exception):
    """The state file exists but cannot be used; it is never overwritten in that case."""


def empty_state() -> dict[str, Any]:
    return {
        "format": STATE_FORMAT,
        "seq": 0,
        "apps": {},
        "schedules": {},
        "runs": {},
        "credentials": {},
        "templates": {},
        "workflow_runs": {},
        "connections": {},
        "settings": {"failing_credentials": []},
    }


def seeded_state() -> dict[str, Any]:
    """A fresh tenant: no apps or credentials, the UI-created legacy templates present."""
    state = empty_state()
    for source in catalogue.seeded_legacy_templates():
        name = source["metadata"]["name"]
        source["metadata"]["uid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox/template/{name}"))
        source["metadata"]["resourceVersion"] = "1"
        state["templates"][name] = {"source": source, "archived": False}
    return state


def state_digest(data: dict[str, Any]) -> str:
    """A digest of a state document (independent of key order)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _guids_in(data: dict[str, Any]) -> set[str]:
    return {*data["credentials"], *data["runs"], *(a.get("correlation_id") for a in data["apps"].values()),
            *(c["guid"] for c in data["connections"].values()),
            *(t["source"]["metadata"].get("uid") for t in data["templates"].values())} - {None}


class ManualClock:
    """A clock (epoch seconds) that moves only when told to: pass it as ``Sandbox(clock=...)`` or set
    ``sandbox.store.clock``, then ``advance()`` past a run's Pending or Running window instead of
    sleeping through it, so tests do not depend on how fast the machine is."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


class Store:
    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        seed: int | None = None,
        persist_interval: float = 0.2,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path) if path else None
        self.persist_interval = persist_interval
        self.clock = clock
        self._lock = threading.RLock()
        self._indexes: dict[str, Any] = {}  # derived from ``data``: dropped whenever it is replaced
        self._dirty = threading.Event()
        self._closed = threading.Event()
        self.data, loaded = self._load()
        # The same seed on a stored state would replay the ids of its first life (and overwrite the
        # records under them): the stored state is part of the seed. Without a seed: OS entropy.
        self.rng = random.Random(None if seed is None else f"{seed}:{state_digest(self.data)}" if loaded else seed)
        self._flusher: threading.Thread | None = None
        if self.path is not None and persist_interval > 0:
            self._flusher = threading.Thread(target=self._flush_loop, name="sandbox-flusher", daemon=True)
            self._flusher.start()

    # -- access -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def read(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            yield self.data

    @contextlib.contextmanager
    def mutate(self) -> Iterator[dict[str, Any]]:
        """Change the state; the change is persisted when the block exits without an exception.

        Handlers validate before they change anything, so a block that raises leaves the document
        as it was.
        """
        with self._lock:
            yield self.data
            if self.path is not None:
                if self.persist_interval > 0:
                    self._dirty.set()
                else:
                    self._write()

    def reset(self) -> None:
        with self.mutate() as data:
            data.clear()
            data.update(seeded_state())
            self._indexes.clear()

    def index(self, name: str, build: Callable[[dict[str, Any]], Any]) -> Any:
        """A lookup table derived from the document (``build(data)``), made on first use and kept
        up to date by the handlers that change what it indexes (the caller holds the lock)."""
        with self._lock:
            if name not in self._indexes:
                self._indexes[name] = build(self.data)
            return self._indexes[name]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.data)

    # -- ids ----------------------------------------------------------------------------------

    def next_seq(self) -> int:
        with self._lock:
            self.data["seq"] += 1
            return int(self.data["seq"])

    def new_guid(self) -> str:
        """A uuid4 that no stored credential, run, workflow, connection or template uses, nor ever
        used since this store was loaded (every guid it mints is remembered: a set, not a scan)."""
        with self._lock:
            used = self.index("guids", _guids_in)
            while True:
                guid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
                if guid not in used:
                    used.add(guid)
                    return guid

    def new_suffix(self, length: int, alphabet: str = string.ascii_lowercase + string.digits) -> str:
        with self._lock:
            return "".join(self.rng.choice(alphabet) for _ in range(length))

    def now(self) -> float:
        return self.clock()

    # -- persistence --------------------------------------------------------------------------

    def _load(self) -> tuple[dict[str, Any], bool]:
        """The state document, and whether it came from the state file."""
        if self.path is None or not self.path.exists():
            return seeded_state(), False
        try:
            with self.path.open(encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            raise StateFileError(
                f"sandbox state file {self.path} cannot be read ({exc}); move it aside or pass another --state-file"
            ) from exc
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise StateFileError(
                f"sandbox state file {self.path} is not a format-{STATE_FORMAT} sandbox state; "
                "move it aside or pass another --state-file"
            )
        base = empty_state()
        base.update(data)
        return base, True

    def _write(self) -> float:
        """Write the document; how long the lock was held for it (seconds)."""
        assert self.path is not None
        with self._lock:
            started = time.perf_counter()
            text = json.dumps(self.data, separators=(",", ":"))  # key order is kept: reads must not change
            held = time.perf_counter() - started
        write_text_atomic(self.path, text)
        return held

    def _flush_loop(self) -> None:
        held = 0.0
        while not self._closed.is_set():
            if not self._dirty.wait(timeout=0.5):
                continue
            # A write holds the lock while it serialises the whole tenant (0.15 s at 10,000 apps):
            # waiting at least four times that long between writes keeps requests waiting for it
            # under a fifth of the time, however big the tenant grows.
            self._closed.wait(max(self.persist_interval, FLUSH_SHARE * held))
            self._dirty.clear()
            held = self._write()

    def flush(self) -> None:
        if self.path is not None:
            self._dirty.clear()
            self._write()

    def close(self) -> None:
        self._closed.set()
        if self._flusher is not None:
            self._flusher.join(timeout=5)
        self.flush()
