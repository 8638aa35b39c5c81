"""Which tenant a command talks to: ATLAN_BASE_URL + the API key, or (with no ATLAN_BASE_URL)
the sandbox tenant started in-process on a free loopback port, its state kept under .reconciler/.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from reconciler import mask
from reconciler.client import ApiClient
from reconciler.errors import UsageError

# The embedded sandbox listens on loopback only, for the life of one command. A fixed token keeps
# secret fingerprints (keyed from the API key) stable from one run to the next.
EMBEDDED_TOKEN = "embedded-sandbox"
_announced = False


@dataclass
class Tenant:
    client: ApiClient
    api_key: str
    # What plans and the state file call this tenant: its base URL, or for the embedded sandbox
    # (which listens on a new port each run) the file that holds its state.
    identity: str
    embedded: bool = False


def identity(base_url: str | None = None, state_dir: Path = Path(".reconciler")) -> str:
    """What the state file and plans call the tenant a command would talk to, without calling
    it: its URL without user-info (which may hold a password)."""
    base_url = base_url or os.environ.get("ATLAN_BASE_URL")
    if not base_url:
        return f"embedded-sandbox:{state_dir / 'sandbox.json'}"
    parts = urlsplit(base_url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host)).rstrip("/") + "/"


def _private_folder(folder: Path) -> None:
    """The embedded sandbox's folder holds vaulted secrets: it ignores itself in Git, wherever it is."""
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# The embedded sandbox tenant's data (it vaults secrets): never committed.\n*\n", encoding="utf-8")


@contextlib.contextmanager
def connect(base_url: str | None = None, api_key_env: str = "ATLAN_API_KEY",
            state_dir: Path = Path(".reconciler")) -> Iterator[Tenant]:
    """The chosen tenant's client, closed (and any embedded sandbox stopped) on exit."""
    base_url = base_url or os.environ.get("ATLAN_BASE_URL")
    if base_url:
        api_key = os.environ.get(api_key_env, "")
        if not api_key:
            raise UsageError(f"{api_key_env} is not set, so the tenant at {base_url} cannot be called",
                             hint=f"Export {api_key_env} with an API token of the tenant.")
        parts = urlsplit(base_url)
        mask.register(api_key, parts.password, unquote(parts.password or ""))
        with ApiClient(base_url, api_key) as client:
            yield Tenant(client, api_key, identity=identity(base_url))
        return

    from reconciler.sandbox import Sandbox, SandboxConfig  # only needed without a real tenant

    state_file = state_dir / "sandbox.json"
    _private_folder(state_dir)
    sandbox = Sandbox(SandboxConfig(token=EMBEDDED_TOKEN, state_file=str(state_file))).start()
    global _announced
    if not _announced:
        _announced = True
        print(f"No ATLAN_BASE_URL set: using the embedded sandbox tenant at {sandbox.base_url} "
              f"(state in {state_file}).", file=sys.stderr)
    try:
        with ApiClient(sandbox.base_url, EMBEDDED_TOKEN) as client:
            yield Tenant(client, EMBEDDED_TOKEN, identity=identity(None, state_dir), embedded=True)
    finally:
        sandbox.stop()
