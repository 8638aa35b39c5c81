"""How a sandbox run progresses, for App runs and legacy workflow runs alike.

A run is Pending for ``run_pending_s``, Running for ``run_running_s``, then reaches the outcome
drawn when it was submitted (Failed with probability ``run_failure_rate``), unless it was
stopped first. Status is computed from timestamps when read, so nothing runs in the background.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

ACTIVE = ("Pending", "Running")


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_timing(ctx: Any) -> dict[str, Any]:
    """The timing fields of a run submitted now (the caller holds the mutate lock)."""
    cfg = ctx.config
    return {
        "created_at": ctx.store.now(),
        "pending_s": cfg.run_pending_s,
        "running_s": cfg.run_running_s,
        "outcome": "Failed" if ctx.store.rng.random() < cfg.run_failure_rate else "Succeeded",
        "stopped_at": None,
        "seq": ctx.store.next_seq(),
    }


def progress(ctx: Any, run: dict[str, Any]) -> str:
    """Pending, Running, Stopped, or the drawn outcome."""
    if run.get("stopped_at") is not None:
        return "Stopped"
    elapsed = ctx.store.now() - run["created_at"]
    if elapsed < run["pending_s"]:
        return "Pending"
    if elapsed < run["pending_s"] + run["running_s"]:
        return "Running"
    return str(run["outcome"])


def finished_at(run: dict[str, Any]) -> str:
    return iso(run.get("stopped_at") or run["created_at"] + run["pending_s"] + run["running_s"])


def stop(ctx: Any, run: dict[str, Any]) -> bool:
    """Stop an active run; False when it had already finished."""
    if progress(ctx, run) not in ACTIVE:
        return False
    run["stopped_at"] = ctx.store.now()
    return True
