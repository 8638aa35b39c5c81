"""How a sandbox run progresses, for App runs and legacy workflow runs alike.

A run is Pending for ``run_pending_s``, Running for ``run_running_s``, then reaches its final
status, unless it was stopped first. The final status is decided at the moment the run ends: it is
Failed when a credential the run uses (named when it was submitted) is deleted or fails its test
at that moment, else the outcome drawn at submit (Failed with probability ``run_failure_rate``).
Status is computed from timestamps when read, so nothing runs in the background; a change to a
credential first settles (freezes) the outcome of every run that has already ended, so that later
changes never rewrite it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from reconciler.sandbox.credentials import credential_problem

ACTIVE = ("Pending", "Running")
RANDOM_FAILURE = "the run failed (the sandbox's run_failure_rate)"


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_timing(ctx: Any, credentials: Iterable[str] = (), *, unknown_credentials_ok: bool = False) -> dict[str, Any]:
    """The timing fields of a run submitted now that uses ``credentials`` (guids); the caller holds the
    mutate lock. ``unknown_credentials_ok``: a guid the tenant never issued does not fail the run."""
    cfg = ctx.config
    return {
        "created_at": ctx.store.now(),
        "pending_s": cfg.run_pending_s,
        "running_s": cfg.run_running_s,
        "outcome": "Failed" if ctx.store.rng.random() < cfg.run_failure_rate else "Succeeded",
        "stopped_at": None,
        "credentials": sorted(set(credentials)),
        "unknown_credentials_ok": unknown_credentials_ok,
        "seq": ctx.store.next_seq(),
    }


def _ended(ctx: Any, run: dict[str, Any]) -> bool:
    return ctx.store.now() - run["created_at"] >= run["pending_s"] + run["running_s"]


def _final(ctx: Any, run: dict[str, Any]) -> tuple[str, str]:
    """(status, message) of a run that has ended and was not stopped."""
    if run.get("final") is not None:
        return str(run["final"][0]), str(run["final"][1])
    data = ctx.store.data
    for guid in run.get("credentials", ()):
        problem = credential_problem(data, guid, unknown_ok=bool(run.get("unknown_credentials_ok")))
        if problem:
            return "Failed", problem
    if run["outcome"] == "Failed":
        return "Failed", RANDOM_FAILURE
    return str(run["outcome"]), ""


def progress(ctx: Any, run: dict[str, Any]) -> str:
    """Pending, Running, Stopped, or the final status."""
    if run.get("stopped_at") is not None:
        return "Stopped"
    elapsed = ctx.store.now() - run["created_at"]
    if elapsed < run["pending_s"]:
        return "Pending"
    if elapsed < run["pending_s"] + run["running_s"]:
        return "Running"
    return _final(ctx, run)[0]


def message(ctx: Any, run: dict[str, Any]) -> str:
    """Why a run that ended Failed failed ("" for any other status)."""
    if progress(ctx, run) != "Failed" or run.get("stopped_at") is not None:
        return ""
    return _final(ctx, run)[1]


def settle(ctx: Any) -> None:
    """Freeze the final status of every run that has ended, before a change that could alter it
    (the caller holds the mutate lock)."""
    data = ctx.store.data
    for run in (*data["runs"].values(), *data["workflow_runs"].values()):
        if run.get("final") is None and run.get("stopped_at") is None and _ended(ctx, run):
            run["final"] = list(_final(ctx, run))


def finished_at(run: dict[str, Any]) -> str:
    return iso(run.get("stopped_at") or run["created_at"] + run["pending_s"] + run["running_s"])


def stop(ctx: Any, run: dict[str, Any]) -> bool:
    """Stop an active run; False when it had already finished."""
    if progress(ctx, run) not in ACTIVE:
        return False
    run["stopped_at"] = ctx.store.now()
    return True
