"""The renderers are pure: plans built in memory, no server."""

from __future__ import annotations

from reconciler import render
from reconciler.diff import FieldChange
from reconciler.errors import Diagnostic
from reconciler.model import ResourceKey
from reconciler.plan import Action, Change, Plan


def change(action: Action, name: str, fields: tuple[FieldChange, ...] = (), **kw: object) -> Change:
    return Change(action, ResourceKey("App", name), fields=fields, **kw)  # type: ignore[arg-type]


def test_counts_line_and_no_changes_wording() -> None:
    assert render.counts_line({"create": 2, "update": 1}) == "2 to create, 1 to update, 0 to delete"
    assert render.counts_line({"replace": 1, "run": 2, "delete": 3}) == \
        "0 to create, 0 to update, 1 to replace, 3 to delete, 2 runs to submit"
    empty = Plan(changes=(change(Action.NOOP, "a"),), created_at="2026-11-21T12:00:00Z")
    assert render.plan_text(empty).endswith("1 object unchanged.\nNo changes. The tenant matches the manifests.\n")
    assert render.plan_markdown(empty) == [
        "### reconciler plan: no changes\n\nTenant: `` · planned 2026-11-21T12:00:00Z\n\n"
        "No changes. The tenant matches the manifests.\n\n1 object unchanged.\n\n"]


def test_text_gutter_and_colour() -> None:
    plan = Plan(changes=(
        change(Action.CREATE, "new", after={"appId": "x", "inputs": {"a": 1}}),
        change(Action.UPDATE, "changed", (FieldChange("change", "inputs.a", 1, 2), FieldChange("add", "inputs.b", None, "x"),
                                          FieldChange("remove", "inputs.c", True, None)), reason="differs"),
        change(Action.DELETE, "gone", before={"appId": "x"}, reason="no longer declared"),
        change(Action.REPLACE, "moved", (FieldChange("change", "appId", "a", "b"),), reason="appId cannot change"),
    ), created_at="2026-11-21T12:00:00Z")
    text = render.plan_text(plan)
    assert "+ App/new (create)\n    + appId: \"x\"\n    + inputs.a: 1\n" in text
    assert "~ App/changed (update: differs)\n    ~ inputs.a: 1 → 2\n    + inputs.b: \"x\"\n    - inputs.c: true\n" in text
    assert "- App/gone (delete, needs --prune)\n    no longer declared\n" in text
    assert "-/+ App/moved (replace: appId cannot change)" in text
    assert text.endswith("Plan: 1 to create, 1 to update, 1 to replace, 0 to delete (1 delete candidate needs --prune).\n")
    coloured = render.plan_text(plan, color=True)
    assert "\x1b[32m+ App/new" in coloured and "\x1b[31m- App/gone" in coloured
    assert "\x1b[" not in text


def test_markdown_is_split_below_the_limit_and_keeps_everything() -> None:
    changes = tuple(change(Action.UPDATE, f"app-{i:03d}", (FieldChange("change", "inputs.include_filter", "x" * 300, "y" * 300),),
                           reason="differs") for i in range(120))
    plan = Plan(changes=changes, created_at="2026-11-21T12:00:00Z",
                diagnostics=(Diagnostic("", 0, 0, "RC105", "a warning", severity="warning"),))
    parts = render.plan_markdown(plan, limit=8000)
    assert len(parts) > 5
    assert all(len(p) < 8000 for p in parts)
    joined = "".join(parts)
    assert all(f"<code>App/app-{i:03d}</code>" in joined for i in range(120))
    assert parts[0].startswith("### reconciler plan: 0 to create, 120 to update, 0 to delete")
    assert parts[1].startswith("### reconciler plan: 0 to create, 120 to update, 0 to delete (continued)")
    assert parts[-1].rstrip().endswith(f"_Part {len(parts)} of {len(parts)}._")
    assert "`RC105` a warning" in parts[-1]
    assert len(render.plan_markdown(plan)) == 2  # about 90,000 characters at the real 65,000 limit
    single = render.plan_markdown(Plan(changes=changes[:10], created_at="2026-11-21T12:00:00Z"))
    assert len(single) == 1 and "_Part" not in single[0]


def test_schedule_changes_show_fire_times_in_their_zone() -> None:
    plan = Plan(changes=(change(Action.UPDATE, "s", (FieldChange(
        "change", "schedules", [{"cron": "0 2 * * *", "timezone": "Asia/Kolkata"}],
        [{"cron": "30 1 * * MON", "timezone": "Europe/Paris"}]),)),), created_at="2026-11-21T12:00:00Z")
    text = render.plan_text(plan)
    assert "next fire times before: 0 2 * * * (Asia/Kolkata): 2026-11-22 02:00, 2026-11-23 02:00, 2026-11-24 02:00" in text
    assert "next fire times after: 30 1 * * MON (Europe/Paris): 2026-11-23 01:30, 2026-11-30 01:30, 2026-12-07 01:30" in text
