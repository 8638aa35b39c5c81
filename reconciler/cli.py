"""The command line. This module is the only error boundary: it catches ``ReconcilerError``,
prints ``Error: <summary>`` and a hint, and maps to the exit codes in ``exitcodes``. Tracebacks
appear only with ``--debug``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

import click

from reconciler import __version__, defaults
from reconciler.errors import ReconcilerError, UsageError
from reconciler.exitcodes import ExitCode


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
@click.option("--debug", is_flag=True,
              help="Log every HTTP request (Authorization redacted) and show tracebacks; accepted anywhere on the line.")
@click.option("--color", "color", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Colour the plan; auto: only on a terminal, and never with NO_COLOR set or TERM=dumb.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, color: str) -> None:
    """Declarative GitOps reconciler for Atlan tenants."""
    import os

    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["color"] = color_wanted(color, sys.stdout.isatty(), os.environ)
    if debug:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
        logging.getLogger("urllib3").setLevel(logging.INFO)
    else:
        # Retries are counted and reported by the tool itself; urllib3's per-retry warnings are noise.
        # What the tool itself warns about (a tenant it cannot reach yet) goes to stderr as is.
        logging.getLogger("urllib3").setLevel(logging.ERROR)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logging.getLogger("reconciler").addHandler(handler)
        logging.getLogger("reconciler").setLevel(logging.WARNING)


def color_wanted(choice: str, tty: bool, env: Any) -> bool:
    """--color always/never decide; auto colours a terminal unless NO_COLOR is set (any value,
    as no-color.org says) or TERM is dumb."""
    if choice != "auto":
        return choice == "always"
    return tty and "NO_COLOR" not in env and env.get("TERM") != "dumb"


def _color() -> bool:
    return bool((click.get_current_context().find_root().obj or {}).get("color"))


def _interactive() -> bool:
    """A person at a terminal can answer (stdin may be closed, or not a terminal, in CI)."""
    return sys.stdin is not None and not sys.stdin.closed and sys.stdin.isatty()


def _refuse_invalid(exc: Any, fmt: str) -> None:
    """Show why the manifests were refused, in the format asked for, exactly as validate does:
    a pull-request job posting the markdown or reading the JSON must see where the problems are."""
    from reconciler import render

    if fmt == "json":
        click.echo(render.diagnostics_json(exc.diagnostics, files=len({d.file for d in exc.diagnostics}),
                                           documents=0, status="error"), nl=False)
    elif fmt == "markdown":
        text = render.diagnostics_markdown(exc.diagnostics)
        click.echo(text, nl=False)
        _step_summary(text)
    if fmt != "json":
        click.echo("".join(render.diagnostic_block(d) for d in exc.diagnostics), nl=False, err=True)


def _tenant_options(command: Any) -> Any:
    command = click.option("--api-key-env", default=defaults.API_KEY_ENV, show_default=True,
                           help="Environment variable that holds the API key.")(command)
    return click.option("--base-url", envvar="ATLAN_BASE_URL", default=None,
                        help="Tenant URL (default: $ATLAN_BASE_URL; unset: the embedded sandbox).")(command)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--var-file", "var_files", multiple=True, type=click.Path(),
              help="YAML file of name: value pairs for ${var:name}; repeatable, later files win.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Output format.")
@click.option("--allow-missing-secrets", is_flag=True,
              help="Unset environment variables of secret fields are warnings (for pull-request jobs without secrets).")
@click.option("--allow-literal-secrets", is_flag=True, help="Accept secrets written literally in manifests.")
def validate(paths: tuple[str, ...], var_files: tuple[str, ...], fmt: str, allow_missing_secrets: bool,
             allow_literal_secrets: bool) -> None:
    """Check manifests offline and report every problem in every file at once.

    Nothing is sent to the tenant. Exit 0 when valid, 1 when there are errors. Given only files
    (as a pre-commit hook passes them), the project they belong to (its reconciler.yaml, found by
    walking up) is read too, so that variables and references resolve; their problems are shown.
    """
    from reconciler import render
    from reconciler.errors import ManifestError
    from reconciler.validate import validate as run_validation

    result = run_validation(paths, var_files=var_files, allow_missing_secrets=allow_missing_secrets,
                            allow_literal_secrets=allow_literal_secrets, only_given_files=True)
    if fmt == "json":
        click.echo(render.diagnostics_json(result.diagnostics, files=len(result.files), documents=result.documents), nl=False)
    else:
        click.echo(render.diagnostics_text(result.diagnostics, files=len(result.files), documents=result.documents,
                                           kinds=render.count_kinds(result.resources)), nl=False)
    if result.errors:
        raise ManifestError(result.diagnostics)


@cli.command()
@click.argument("app_id")
@click.option("--entrypoint", default=None, help="Entrypoint of the app (default: the app's default).")
@_tenant_options
def contract(app_id: str, entrypoint: str | None, base_url: str | None, api_key_env: str) -> None:
    """Print a commented App manifest skeleton from the app's live input contract."""
    from reconciler import render
    from reconciler.errors import NotFoundError
    from reconciler.tenant import connect

    with connect(base_url, api_key_env) as tenant:
        client = tenant.client
        try:
            info = client.describe_app(app_id)
        except NotFoundError as exc:
            exc.hint = "Check the app id: it is the marketplace id, such as snowflake-crawler or bigquery-crawler."
            raise
        chosen = entrypoint or next((e["name"] for e in info.get("entrypoints") or []), None)
        schema = client.get_input_contract(app_id, chosen)
    click.echo(render.contract_skeleton(info, schema, chosen), nl=False)


def _adopt_schedules_option(command: Any) -> Any:
    return click.option("--adopt-schedules", is_flag=True,
                        help="Attach declared App schedules even where the tenant's cannot be known (no state record): "
                             "say so only when those apps have no schedules on the tenant.")(command)


def _lock_timeout_option(command: Any) -> Any:
    return click.option("--lock-timeout", type=click.FloatRange(min=0), default=None,
                        help="Seconds to wait for the state file's lock (default: 0 when $CI is set, else 60).")(command)


def _lock_timeout(value: float | None) -> float:
    import os

    if value is not None:
        return value
    return 0.0 if os.environ.get("CI") else defaults.LOCK_TIMEOUT


@contextlib.contextmanager
def _writing(what: str, path: Any) -> Iterator[None]:
    """A file the command writes for the user or the next CI step: one it cannot write is an
    error that names it, not a crash."""
    try:
        yield
    except OSError as exc:
        raise ReconcilerError(f"cannot write {what} {path}: {exc.strerror or exc}",
                              hint="Check that the folder exists and is writable, and that the path is not a folder.") from None


def _step_summary(markdown: str) -> None:
    """Append to the GitHub Actions job summary, when running there."""
    import os

    from reconciler.mask import mask

    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with _writing("the job summary ($GITHUB_STEP_SUMMARY)", summary), open(summary, "a", encoding="utf-8") as fh:
            fh.write(mask(markdown.rstrip("\n")) + "\n")


def _github_output(**values: Any) -> None:
    """Set step outputs (``$GITHUB_OUTPUT``) for the steps after this one, when running there."""
    import os
    import uuid

    from reconciler.mask import mask

    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        return
    with _writing("the step outputs ($GITHUB_OUTPUT)", path), open(path, "a", encoding="utf-8") as fh:
        for name, value in values.items():
            text = mask(str(value).lower() if isinstance(value, bool) else str(value))
            if "\n" in text:
                delimiter = f"reconciler_{uuid.uuid4().hex}"
                fh.write(f"{name}<<{delimiter}\n{text}\n{delimiter}\n")
            else:
                fh.write(f"{name}={text}\n")


def _write_parts(directory: str, parts: list[str]) -> None:
    """The markdown parts of a plan comment as DIR/part-1.md …; earlier parts beyond these go, so
    a job that posts every file never posts a stale one."""
    from pathlib import Path

    from reconciler.files import write_text_atomic
    from reconciler.mask import mask

    folder = Path(directory)
    with _writing("the markdown parts into", folder):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("part-*.md"):
            old.unlink()
        for number, text in enumerate(parts, 1):
            write_text_atomic(folder / f"part-{number}.md", mask(text))


def _write_report(path: str, text: str) -> None:
    from pathlib import Path

    from reconciler.files import write_text_atomic
    from reconciler.mask import mask

    with _writing("the report to", path):
        write_text_atomic(Path(path), mask(text))


def _parse_targets(values: tuple[str, ...]) -> tuple[Any, ...]:
    from reconciler import kinds
    from reconciler.model import ResourceKey

    out = []
    for value in values:
        kind, _, name = value.partition("/")
        if not kinds.known(kind) or not name:
            raise UsageError(f"--target {value!r} is not KIND/NAME",
                             hint=f"For example App/my-crawler; kinds: {', '.join(kinds.names())}.")
        out.append(ResourceKey(kind, name))
    return tuple(out)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the plan as JSON to this file (for `apply`).")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True, help="Output format.")
@click.option("--target", "targets", multiple=True, metavar="KIND/NAME", help="Plan only these objects; repeatable.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes (0: none, 1: error).")
@click.option("--markdown-dir", type=click.Path(file_okay=False),
              help="Also write the plan as markdown parts DIR/part-1.md … for pull-request comments, each under "
                   "65,000 characters and starting with its sticky marker (the diagnostics when the manifests are refused).")
@click.option("--prune", is_flag=True, help="Plan deletes of managed objects that are no longer declared as real deletes.")
@click.option("--parallelism", type=click.IntRange(1, 64), default=None,
              help=f"Concurrent API calls (default: reconciler.yaml, else {defaults.PARALLELISM}).")
@click.option("--var-file", "var_files", multiple=True, type=click.Path(), help="Variables file for ${var:name}; repeatable.")
@click.option("--allow-missing-secrets", is_flag=True, help="Plan without secret values (rotation cannot be detected).")
@click.option("--verbose", is_flag=True, help="Also list the objects that do not change.")
@_adopt_schedules_option
@_tenant_options
def plan(paths: tuple[str, ...], out: str | None, fmt: str, targets: tuple[str, ...], detailed_exitcode: bool,
         markdown_dir: str | None, prune: bool, parallelism: int | None, var_files: tuple[str, ...], allow_missing_secrets: bool, verbose: bool,
         adopt_schedules: bool, base_url: str | None, api_key_env: str) -> int:
    """Show what apply would change on the tenant to match the manifests."""
    from pathlib import Path

    from reconciler import render
    from reconciler.engine import make_plan
    from reconciler.errors import ManifestError
    from reconciler.files import write_text_atomic
    from reconciler.planfile import signed_plan_json
    from reconciler.tenant import connect

    chosen = _parse_targets(targets)
    try:
        with connect(base_url, api_key_env) as tenant:
            result = make_plan(paths, tenant.client, api_key=tenant.api_key, var_files=var_files,
                               allow_missing_secrets=allow_missing_secrets, prune=prune, targets=chosen,
                               parallelism=parallelism, tenant_id=tenant.identity, adopt_schedules=adopt_schedules,
                               api_key_env=api_key_env)
    except ManifestError as exc:
        _refuse_invalid(exc, fmt)
        if markdown_dir:
            _write_parts(markdown_dir, [f"{render.sticky_marker(1)}\n{render.diagnostics_markdown(exc.diagnostics)}"])
            _github_output(parts=1)
        raise
    except ReconcilerError as exc:  # the tenant could not be read: the comment says so, not an old plan
        if markdown_dir:
            _write_parts(markdown_dir, [f"{render.sticky_marker(1)}\n{render.error_markdown('plan', exc)}"])
            _github_output(parts=1)
        raise
    the_plan = result.plan
    if out:
        with _writing("the plan to", out):
            write_text_atomic(Path(out), signed_plan_json(the_plan, tenant.api_key))
    parts = render.plan_markdown(the_plan)
    if fmt == "json":
        click.echo(render.plan_json(the_plan), nl=False)
    elif fmt == "markdown":
        click.echo("\n".join(parts), nl=False)
    else:
        click.echo(render.plan_text(the_plan, color=_color(), verbose=verbose), nl=False, color=_color())
    _step_summary("\n".join(parts))
    if markdown_dir:
        _write_parts(markdown_dir, parts)
    _github_output(has_changes=the_plan.has_changes, **({"parts": len(parts)} if markdown_dir else {}),
                   **({"plan_path": out} if out else {}))
    if the_plan.errors:
        raise ReconcilerError(f"the plan has {len(the_plan.errors)} error(s); those objects are left out",
                              hint="Fix what the errors above say, then plan again.")
    return ExitCode.CHANGES if detailed_exitcode and the_plan.has_changes else ExitCode.OK


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--auto-approve", is_flag=True, help="Apply without asking (for CI).")
@click.option("--prune", is_flag=True, help="Delete managed objects that are no longer declared.")
@click.option("--max-deletes", type=click.IntRange(min=0), default=defaults.MAX_DELETES, show_default=True,
              help="Refuse the whole apply if it would delete more than this.")
@click.option("--allow-replace", is_flag=True, help="Allow delete + re-create where a field cannot change in place.")
@click.option("--wait", is_flag=True, help="Wait for submitted runs to finish, showing their progress.")
@click.option("--wait-timeout", type=click.FloatRange(min=0), default=defaults.WAIT_TIMEOUT, show_default=True,
              help="Seconds to wait for runs.")
@click.option("--parallelism", type=click.IntRange(1, 64), default=None,
              help=f"Concurrent API calls (default: reconciler.yaml, else {defaults.PARALLELISM}).")
@click.option("--var-file", "var_files", multiple=True, type=click.Path(), help="Variables file for ${var:name}; repeatable.")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True,
              help="Format of the apply report.")
@_adopt_schedules_option
@_lock_timeout_option
@click.option("--max-plan-age", type=click.FloatRange(min=0), default=defaults.MAX_PLAN_AGE, show_default=True,
              help="Seconds after which a saved plan is refused as too old.")
@_tenant_options
def apply(paths: tuple[str, ...], auto_approve: bool, prune: bool, max_deletes: int, allow_replace: bool, wait: bool,
          wait_timeout: float, parallelism: int | None, var_files: tuple[str, ...], fmt: str, adopt_schedules: bool,
          lock_timeout: float | None, max_plan_age: float, base_url: str | None, api_key_env: str) -> int:
    """Change the tenant to match the manifests (PATH…) or a saved plan (plan.json).

    One apply at a time per state file: a second one fails at once in CI (waits --lock-timeout
    elsewhere) and names the holder. A saved plan applies only if unedited (MAC), recent
    (--max-plan-age), and nothing it touches has moved since.
    """
    from reconciler import render
    from reconciler.engine import apply as run_apply
    from reconciler.errors import ManifestError
    from reconciler.outcomes import Outcome
    from reconciler.plan import Plan
    from reconciler.tenant import connect

    def progress(outcome: Outcome) -> None:
        click.echo(render.outcome_line(outcome), err=True)

    def on_run(outcome: Outcome) -> None:
        click.echo(render.run_line(outcome), err=True)

    def review(the_plan: Plan, saved: bool) -> None:
        if fmt == "text":
            click.echo(render.plan_text(the_plan, color=_color()), nl=False, color=_color())
        if the_plan.has_changes and not auto_approve and not saved:  # a saved plan was reviewed when it was made
            if not _interactive():
                raise ReconcilerError("refusing to apply without --auto-approve: there is no terminal to ask",
                                      hint="Review the plan above, then re-run with --auto-approve (or apply a saved plan file).")
            click.confirm("Apply these changes?", abort=True, err=True)

    def cancel_on_interrupt() -> bool:
        return _interactive() and click.confirm("\nCancel the runs still in flight?", default=False, err=True)

    with connect(base_url, api_key_env) as tenant:
        try:
            the_plan, report = run_apply(paths, tenant.client, api_key=tenant.api_key, api_key_env=api_key_env,
                                         tenant_id=tenant.identity, var_files=var_files, prune=prune,
                                         allow_replace=allow_replace, adopt_schedules=adopt_schedules,
                                         max_deletes=max_deletes, max_plan_age=max_plan_age, parallelism=parallelism,
                                         lock_timeout=_lock_timeout(lock_timeout), review=review, progress=progress, on_run=on_run,
                                         wait_timeout=wait_timeout if wait else None,
                                         cancel_on_interrupt=cancel_on_interrupt)
        except ManifestError as exc:
            _refuse_invalid(exc, fmt)
            raise
    text = {"text": render.report_text, "markdown": render.report_markdown, "json": render.report_json}[fmt](report)
    click.echo(text, nl=False)
    _step_summary(render.report_markdown(report))
    _github_output(has_changes=the_plan.has_changes, failed=sum(not o.ok for o in report.outcomes) + len(report.failed_runs),
                   state_file=the_plan.state_file)
    if report.failed or the_plan.errors:
        what = ", ".join(f"run {o.run_id} of {o.change.key} {o.run_status}" + (f" ({o.message})" if o.message else "")
                         for o in report.failed_runs)
        raise ReconcilerError("apply did not complete" + (f": {what}" if what else ""),
                              hint="See the report above; fix the failures and run apply again (it converges)."
                              + (" For each unverified change, check the tenant, then `reconciler state resolve`"
                                 " (`reconciler plan` lists them)." if report.unverified else ""))
    return ExitCode.OK


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True,
              help="Format of the report.")
@click.option("--report", "report_file", type=click.Path(dir_okay=False),
              help="Also write the report to this file, in --format (for an issue or an artifact).")
@click.option("--parallelism", type=click.IntRange(1, 64), default=None,
              help=f"Concurrent API calls (default: reconciler.yaml, else {defaults.PARALLELISM}).")
@click.option("--var-file", "var_files", multiple=True, type=click.Path(), help="Variables file for ${var:name}; repeatable.")
@click.option("--allow-missing-secrets", is_flag=True,
              help="Check without secret values; rotated secrets then cannot be detected (the report's warnings say which).")
@_tenant_options
def drift(paths: tuple[str, ...], fmt: str, report_file: str | None, parallelism: int | None, var_files: tuple[str, ...],
          allow_missing_secrets: bool, base_url: str | None, api_key_env: str) -> int:
    """Compare the tenant with Git and say who moved. Exit 0: no drift; 2: drift; 1: error.

    Each difference is classed against the state file's record of the last apply: changed on the
    tenant, not yet applied (Git changed), secret rotated, stale schedule, missing (deleted on the
    tenant), unmanaged in scope (created outside Git under an owned prefix). Changes nothing and
    takes no lock.
    """
    from reconciler import drift as drift_report
    from reconciler import render
    from reconciler.engine import make_plan
    from reconciler.errors import ManifestError
    from reconciler.tenant import connect

    renderers = {"text": render.drift_text, "markdown": render.drift_markdown, "json": render.drift_json}
    try:
        with connect(base_url, api_key_env) as tenant:
            result = make_plan(paths, tenant.client, api_key=tenant.api_key, var_files=var_files,
                               allow_missing_secrets=allow_missing_secrets, parallelism=parallelism,
                               tenant_id=tenant.identity, api_key_env=api_key_env)
    except ManifestError as exc:
        _refuse_invalid(exc, fmt)
        if report_file:
            _write_report(report_file, render.diagnostics_json(exc.diagnostics, files=len({d.file for d in exc.diagnostics}),
                                                               documents=0, status="error") if fmt == "json"
                          else render.diagnostics_markdown(exc.diagnostics))
        _github_output(drifted=False, **({"report_path": report_file} if report_file else {}))
        raise
    data = drift_report.report(result.plan)
    text = renderers[fmt](data)
    click.echo(text, nl=False)
    if report_file:
        _write_report(report_file, text)
    _step_summary(render.drift_markdown(data))
    _github_output(drifted=data["drifted"], **({"report_path": report_file} if report_file else {}))
    if result.plan.errors:
        raise ReconcilerError(f"the drift check has {len(result.plan.errors)} error(s); those objects were not compared",
                              hint="Fix what the errors above say, then check again.")
    return ExitCode.CHANGES if data["drifted"] else ExitCode.OK


@cli.command("export")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder to write the manifests into (created if missing). Inside a project (a reconciler.yaml in "
                   "it or above it) the objects join that project; else a reconciler.yaml is written there.")
@click.option("--kind", "kind_names", multiple=True, metavar="KIND",
              help="Export only objects of this kind (App, Credential, Workflow); repeatable.")
@click.option("--name-prefix", "name_prefixes", multiple=True, metavar="PREFIX",
              help="Export only objects whose name starts with this prefix; repeatable.")
@click.option("--app-id", "app_ids", multiple=True, metavar="APP_ID",
              help="Export only the apps of this app id, e.g. snowflake-crawler; repeatable (other kinds are "
                   "still exported unless --kind leaves them out).")
@click.option("--force", is_flag=True, help="Overwrite manifest files in --out whose content differs from the tenant.")
@click.option("--parallelism", type=click.IntRange(1, 64), default=None,
              help=f"Concurrent API calls (default: reconciler.yaml, else {defaults.PARALLELISM}).")
@_lock_timeout_option
@_tenant_options
def export_command(out_dir: str, kind_names: tuple[str, ...], name_prefixes: tuple[str, ...], app_ids: tuple[str, ...],
                   force: bool, parallelism: int | None, lock_timeout: float | None, base_url: str | None,
                   api_key_env: str) -> None:
    """Write the tenant's apps, credentials and legacy workflows as manifests, one file per object,
    and record them as managed: adopting a tenant is one commit, and a plan then shows no changes.

    Secrets are never read (the API does not return them): credentials take them from ${env:…}
    variables, listed at the end. App schedules are written only where the state file knows them.
    A name carried by several live objects is reported and not exported (exit 1). Existing files
    that differ are never overwritten without --force.
    """
    import os
    from pathlib import Path

    from reconciler import render
    from reconciler.export import Filters, export
    from reconciler.state import fingerprint_key
    from reconciler.tenant import connect

    filters = Filters.parse(kind_names, name_prefixes, app_ids)
    with connect(base_url, api_key_env) as tenant:
        report = export(tenant.client, Path(out_dir), tenant_id=tenant.identity, filters=filters, force=force,
                        lock_timeout=_lock_timeout(lock_timeout), parallelism=parallelism,
                        digest_key=fingerprint_key(tenant.api_key), progress=lambda message: click.echo(message, err=True))
    click.echo(render.export_summary(report, os.environ), nl=False)
    problem = report.error()
    if problem is not None:
        raise problem


@cli.group()
def state() -> None:
    """Inspect and repair the state file (what reconciler recorded that the API does not show).

    Works on the records of one project (the folder of its reconciler.yaml, --project) and one
    tenant (ATLAN_BASE_URL or --base-url; unset: the embedded sandbox); compact, on the whole file.
    Never calls the tenant; forget, resolve and compact take the state file's lock.
    """


def _state_options(command: Any) -> Any:
    command = click.option("--project", "project_dir", default=".", show_default=True, type=click.Path(),
                           help="The manifests folder (where reconciler.yaml is).")(command)
    return click.option("--base-url", envvar="ATLAN_BASE_URL", default=None,
                        help="Tenant URL whose records to use (default: $ATLAN_BASE_URL; unset: the embedded sandbox).")(command)


def _project_state(project_dir: str) -> Any:
    from reconciler.engine import open_state
    from reconciler.validate import validate as run_validation

    result = run_validation([project_dir], allow_missing_secrets=True)
    # Only the project file's problems stop a state command (it says where the state file is); it
    # may have failed to load, and then the project knows no file: match it by name.
    from reconciler.kinds import PROJECT_FILE

    problems = [d for d in result.errors if d.file == result.project.file or d.file.rsplit("/", 1)[-1] == PROJECT_FILE]
    if problems:
        from reconciler.errors import ManifestError

        _refuse_invalid(ManifestError(problems), "text")
        raise ManifestError(problems)
    return result.project, open_state(result.project)


def _record_key(value: str) -> str:
    return str(_parse_targets((value,))[0])


@state.command("list")
@_state_options
def state_list(project_dir: str, base_url: str | None) -> None:
    """One line per recorded object, with its unverified intents."""
    from reconciler import render
    from reconciler.state import describe_intent
    from reconciler.tenant import identity

    _, the_state = _project_state(project_dir)
    tenant = the_state.tenant(identity(base_url))
    if not tenant.resources:
        click.echo(f"No records for {identity(base_url)} in {the_state.path}.")
        return
    for key, record in sorted(tenant.resources.items()):
        facts = [f"{name} {record[name]}" for name in ("slug", "guid", "template") if record.get(name)]
        if "schedules" in record:
            facts.append(render.plural(len(record["schedules"]), "schedule"))
        if record.get("preventDestroy"):
            facts.append("preventDestroy")
        click.echo(f"{key}" + (f"  ({', '.join(facts)})" if facts else ""))
        for intent in record.get("intents") or []:
            click.echo(f"    unverified {intent.get('id')}: {describe_intent(intent)}")


@state.command("show")
@click.argument("address", metavar="KIND/NAME")
@_state_options
def state_show(address: str, project_dir: str, base_url: str | None) -> None:
    """The record of one object, as JSON (it holds no secret: only keyed fingerprints)."""
    import json

    from reconciler.tenant import identity

    key = _record_key(address)
    _, the_state = _project_state(project_dir)
    record = the_state.tenant(identity(base_url)).resources.get(key)
    if record is None:
        raise ReconcilerError(f"no record of {key} for {identity(base_url)} in {the_state.path}",
                              hint="`reconciler state list` shows what is recorded.")
    click.echo(json.dumps(record, indent=2, sort_keys=True))


@state.command("forget")
@click.argument("address", metavar="KIND/NAME")
@_state_options
@_lock_timeout_option
def state_forget(address: str, project_dir: str, base_url: str | None, lock_timeout: float | None) -> None:
    """Drop one record: reconciler stops managing the object (it stays on the tenant)."""
    from reconciler.lock import state_lock
    from reconciler.tenant import identity

    key = _record_key(address)
    project, _ = _project_state(project_dir)
    with state_lock(project.state_file, _lock_timeout(lock_timeout)):
        _, the_state = _project_state(project_dir)  # read again under the lock
        tenant = the_state.tenant(identity(base_url))
        if key not in tenant.resources:
            raise ReconcilerError(f"no record of {key} for {identity(base_url)} in {the_state.path}",
                                  hint="`reconciler state list` shows what is recorded.")
        del tenant.resources[key]
        the_state.save()
    click.echo(f"Forgot {key}: it is no longer recorded, and is left as it is on the tenant.")


@state.command("resolve")
@click.argument("address", metavar="KIND/NAME")
@click.option("--attached", "trigger_id", default=None, metavar="TRIGGER_ID",
              help="The schedule is on the tenant with this trigger id: record it.")
@click.option("--absent", is_flag=True, help="It did not happen (no such schedule or run): forget the intent.")
@click.option("--intent", "intent_id", default=None, metavar="ID", help="Which intent, when the object has several.")
@_state_options
@_lock_timeout_option
def state_resolve(address: str, trigger_id: str | None, absent: bool, intent_id: str | None, project_dir: str,
                  base_url: str | None, lock_timeout: float | None) -> None:
    """Settle an unverified intent (a schedule or run whose answer was lost)."""
    from reconciler.lock import state_lock
    from reconciler.state import resolve_intent
    from reconciler.tenant import identity

    if (trigger_id is None) == (not absent):
        raise UsageError("say what happened: --attached TRIGGER_ID or --absent", hint="Check the app in Atlan first.")
    key = _record_key(address)
    project, _ = _project_state(project_dir)
    with state_lock(project.state_file, _lock_timeout(lock_timeout)):
        _, the_state = _project_state(project_dir)
        done = resolve_intent(the_state.tenant(identity(base_url)), key, intent_id=intent_id, attached=trigger_id)
        the_state.save()
    click.echo(done)


@state.command("compact")
@click.argument("state_file", required=False, type=click.Path(dir_okay=False))
@click.option("--project", "project_dir", default=".", show_default=True, type=click.Path(),
              help="The manifests folder (where reconciler.yaml is), when STATE_FILE is not given.")
@_lock_timeout_option
def state_compact(state_file: str | None, project_dir: str, lock_timeout: float | None) -> None:
    """Fold into the state file the journal a stopped apply left beside it.

    Apply records each change in STATE_FILE.journal and folds it into the file when it ends; an
    apply that was killed leaves it (every command reads it, and the next apply folds it). Run this
    before committing the state file (the apply workflow does), so that the commit holds everything
    the apply recorded. STATE_FILE: default, the project's (--project).
    """
    import os
    from pathlib import Path

    from reconciler import render
    from reconciler.lock import state_lock
    from reconciler.state import JOURNAL_SUFFIX, fold_journal

    path = Path(os.path.realpath(state_file if state_file is not None else _project_state(project_dir)[0].state_file))
    journal = path.with_name(path.name + JOURNAL_SUFFIX)
    if not journal.exists():
        click.echo(f"No journal beside {path}: nothing to fold.")
        return
    with state_lock(path, _lock_timeout(lock_timeout)):
        folded = fold_journal(path)
    click.echo(f"Folded {journal.name} into {path} ({render.plural(folded, 'change')}).")


@cli.group()
def sandbox() -> None:
    """Run the sandbox tenant, a local emulator of the Atlan tenant API."""


@sandbox.command("serve")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port on 127.0.0.1 (0 picks a free one).")
@click.option("--token", default="sandbox-token", show_default=True, help="Bearer token clients must send.")
@click.option("--state-file", type=click.Path(dir_okay=False), default=".reconciler/sandbox.json", show_default=True,
              help="JSON file the tenant state is kept in (survives restarts).")
@click.option("--latency-ms", type=click.FloatRange(min=0), default=0.0, help="Added to every API request.")
@click.option("--jitter-ms", type=click.FloatRange(min=0), default=0.0, help="Random extra latency, up to this.")
@click.option("--fault-rate", type=click.FloatRange(0, 1), default=0.0, help="Share of API requests answered with a fault.")
@click.option("--fault-kinds", default="429,502,503,504,drop", show_default=True,
              help="Comma-separated faults to choose from: 400, 429, 500, 502, 503, 504, drop, drop-after.")
@click.option("--retry-after-s", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Retry-After of injected 429 and 503 faults, in seconds (sent as whole seconds, a fraction "
                   "rounded up: 0.5 goes out as 1).")
@click.option("--rate-limit", type=click.FloatRange(min=0), default=0.0,
              help="Requests per second before answering 429 with Retry-After (0: no limit).")
@click.option("--rate-burst", type=click.IntRange(min=0), default=0, help="Token-bucket size for --rate-limit.")
@click.option("--seed", type=int, default=None, help="Seed for ids, faults and run outcomes (deterministic runs).")
@click.option("--expose-schedules", is_flag=True, help="Return attached schedules from GET v1/app/{slug} (the real API hides them).")
@click.option("--run-pending-s", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Seconds a submitted run stays Pending.")
@click.option("--run-running-s", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Seconds a run then stays Running before it ends.")
@click.option("--run-failure-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of runs that end Failed instead of Succeeded.")
def sandbox_serve(port: int, token: str, state_file: str, fault_kinds: str, **options: Any) -> None:
    """Serve the sandbox tenant until interrupted."""
    import signal
    import threading

    from reconciler.sandbox import Sandbox, SandboxConfig
    from reconciler.sandbox.store import StateFileError

    config = SandboxConfig(token=token, state_file=state_file,
                           fault_kinds=tuple(k.strip() for k in fault_kinds.split(",") if k.strip()), **options)
    try:
        config.validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        server = Sandbox(config).start(port)
    except StateFileError as exc:
        raise ReconcilerError(str(exc)) from None
    except OSError as exc:
        raise ReconcilerError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}",
                              hint="Pick another --port, or 0 for a free one.") from None
    api = server.base_url
    click.echo(f"Sandbox tenant listening on {api} (state in {state_file})")
    click.echo("Point the reconciler (or any Atlan SDK) at it with:")
    click.echo(f"  export ATLAN_BASE_URL={api}")
    click.echo(f"  export ATLAN_API_KEY={token}")
    sys.stdout.flush()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        click.echo("Sandbox stopped; state saved.", err=True)


def _global_flags_first(args: list[str]) -> list[str]:
    """``--debug`` is accepted anywhere (the error hint says "run again with --debug"): move it
    before the subcommand, where click looks for it. Nothing after ``--`` is touched."""
    end = args.index("--") if "--" in args else len(args)
    if "--debug" not in args[:end]:
        return args
    return ["--debug", *(a for a in args[:end] if a != "--debug"), *args[end:]]


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn every outcome into an exit code. Everything printed or
    logged goes through the masking step (``mask``): no secret of the run reaches the output."""
    from reconciler.mask import MaskingStream

    if not isinstance(sys.stdout, MaskingStream) and sys.stdout is not None:
        sys.stdout = MaskingStream(sys.stdout)
    if not isinstance(sys.stderr, MaskingStream) and sys.stderr is not None:
        sys.stderr = MaskingStream(sys.stderr)
    args = _global_flags_first(list(argv if argv is not None else sys.argv[1:]))
    debug = "--debug" in args
    try:
        code = cli.main(args=args, prog_name="reconciler", standalone_mode=False)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        click.echo("Aborted.", err=True)
        sys.exit(ExitCode.ERROR)
    except click.UsageError as exc:
        exc.show()
        sys.exit(ExitCode.USAGE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.ERROR)
    except UsageError as exc:
        _report(exc, debug)
        sys.exit(ExitCode.USAGE)
    except ReconcilerError as exc:
        _report(exc, debug)
        sys.exit(ExitCode.ERROR)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the one boundary: never a bare traceback for users
        if debug:
            raise
        click.echo(f"Error: internal error: {exc.__class__.__name__}: {exc}", err=True)
        click.echo("Hint: this is a bug in reconciler; run again with --debug for the traceback and report it.", err=True)
        sys.exit(ExitCode.ERROR)
    sys.exit(code if isinstance(code, int) else ExitCode.OK)


def _report(exc: ReconcilerError, debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    click.echo(f"Error: {exc}", err=True)
    if exc.hint:
        click.echo(f"Hint: {exc.hint}", err=True)
