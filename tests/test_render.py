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
        "<!-- reconciler-plan:part-1 -->\n### reconciler plan: no changes\n\nTenant: `` · planned 2026-11-21T12:00:00Z\n\n"
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
    assert parts[0].startswith("<!-- reconciler-plan:part-1 -->\n### reconciler plan: 0 to create, 120 to update, 0 to delete")
    assert parts[1].startswith("<!-- reconciler-plan:part-2 -->\n### reconciler plan: 0 to create, 120 to update, 0 to delete "
                               "(continued)")
    assert parts[-1].rstrip().endswith(f"_Part {len(parts)} of {len(parts)}._")
    assert "`RC105` a warning" in parts[-1]
    at_limit = render.plan_markdown(plan)  # about 90,000 characters at the real 65,000 limit
    assert len(at_limit) == 2 and all(len(p) < 65_000 for p in at_limit)
    single = render.plan_markdown(Plan(changes=changes[:10], created_at="2026-11-21T12:00:00Z"))
    assert len(single) == 1 and "_Part" not in single[0]


def test_every_part_is_whole_markdown_with_its_own_sticky_marker() -> None:
    """What a pull-request job posts: part N updates the comment carrying marker N, so each part
    must carry exactly its marker, first, and close every block it opens, even when one object's
    diff alone is longer than a comment and is cut."""
    huge = change(Action.UPDATE, "huge", tuple(FieldChange("change", f"inputs.f{i}", "a" * 900, "b" * 900) for i in range(90)))
    many = tuple(change(Action.CREATE, f"app-{i:04d}", after={"appId": "x", "inputs": {"v": "z" * 200}}) for i in range(400))
    parts = render.plan_markdown(Plan(changes=(huge, *many), created_at="2026-11-21T12:00:00Z"))
    assert len(parts) >= 3 and sum(map(len, parts)) > 65_000
    for number, part in enumerate(parts, 1):
        assert len(part) < 65_000
        assert part.startswith(render.sticky_marker(number) + "\n") and part.count("<!-- reconciler-plan:") == 1
        assert part.count("```") % 2 == 0, f"part {number} leaves a code block open"
        assert part.count("<details>") == part.count("</details>"), f"part {number} leaves a details block open"
        assert part.rstrip().endswith(f"_Part {number} of {len(parts)}._")
    assert "(truncated: see the plan file for the rest)" in parts[0] + parts[1]


def test_schedule_changes_show_fire_times_in_their_zone() -> None:
    plan = Plan(changes=(change(Action.UPDATE, "s", (FieldChange(
        "change", "schedules", [{"cron": "0 2 * * *", "timezone": "Asia/Kolkata"}],
        [{"cron": "30 1 * * MON", "timezone": "Europe/Paris"}]),)),), created_at="2026-11-21T12:00:00Z")
    text = render.plan_text(plan)
    assert "next fire times before: 0 2 * * * (Asia/Kolkata): 2026-11-22 02:00, 2026-11-23 02:00, 2026-11-24 02:00" in text
    assert "next fire times after: 30 1 * * MON (Europe/Paris): 2026-11-23 01:30, 2026-11-30 01:30, 2026-12-07 01:30" in text


def test_drift_report_names_each_field_and_fits_an_issue() -> None:
    from reconciler import drift

    moved = FieldChange("change", "inputs.a", 1, 2, cause=drift.CHANGED_ON_TENANT)
    changes = tuple(change(Action.UPDATE, f"app-{i:04d}", (moved,), drift=(drift.CHANGED_ON_TENANT,)) for i in range(3000))
    data = drift.report(Plan(changes=changes, tenant="https://t/", created_at="2026-11-21T12:00:00Z"))
    assert data["drifted"] and data["summary"] == {drift.CHANGED_ON_TENANT: 3000}
    text = render.drift_text(data)
    assert "~ App/app-0000 (update): changed on the tenant since the last apply\n" \
           "    inputs.a: Git 2, live 1   # changed on the tenant since the last apply\n" in text
    body = render.drift_markdown(data)
    assert len(body) < 65_000 and body.startswith("### reconciler drift: Drift on https://t/: 3000 objects differ from Git.")
    assert "| `App/app-0000` | update | changed on the tenant since the last apply | `inputs.a` | `2` | `1` |" in body
    assert body.rstrip().endswith("(truncated: the full report is in the job's artifact or `reconciler drift --format json`)")
    clean = drift.report(Plan(changes=(change(Action.NOOP, "a"),), tenant="https://t/", created_at="2026-11-21T12:00:00Z"))
    assert not clean["drifted"] and render.drift_text(clean).startswith("No drift on https://t/: the tenant matches Git.")
