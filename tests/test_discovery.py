"""Finding the manifest files: folders reached through links are followed, loops end, and anything
that cannot be seen (a link that points nowhere, an unreadable folder or file) is an RC001 error,
so that plan and apply refuse to run instead of pruning what the unseen files declare. Only
regular files are read (a FIFO or a device named like a manifest is an error, never opened), and
at most MAX_FILE_BYTES of them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import Diagnostic
from reconciler.manifests import MAX_FILE_BYTES, _Walk, discover, load_variables, read_text
from reconciler.model import ResourceKey
from reconciler.sandbox import Sandbox
from reconciler.validate import validate
from tests.conftest import TOKEN, Introspection

ENV = {"PG_USER": "u", "PG_PASSWORD": "p"}
CRED = ("apiVersion: reconciler/v1\nkind: Credential\nmetadata: {name: pg-cred}\nspec:\n  connector: postgres\n"
        "  authType: basic\n  host: db.example.com\n  username: ${env:PG_USER}\n  password: ${env:PG_PASSWORD}\n")
APP = ("apiVersion: reconciler/v1\nkind: App\nmetadata: {name: %s}\nspec:\n  appId: postgres-crawler\n"
       "  credentialRef: pg-cred\n  connection: {name: %s-conn, adminRoles: [\"$admin\"]}\n  inputs: {}\n")


def names(files: list[Path], base: Path) -> list[str]:
    return [f.relative_to(base).as_posix() for f in files]


def errors(diagnostics: list[Diagnostic], base: Path) -> list[tuple[str, str]]:
    return [(d.code, Path(os.path.abspath(d.file)).relative_to(base).as_posix()) for d in diagnostics if d.is_error]


@pytest.fixture
def restore_modes(tmp_path: Path) -> Iterator[list[Path]]:
    """Paths whose read permission a test takes away (chmod 000), given back afterwards so that
    tmp_path can be removed. Skips the test where chmod 000 does not stop reading: as root (or
    with CAP_DAC_OVERRIDE); ``test_a_folder_the_walk_cannot_list_is_an_error`` covers the same
    error path there."""
    probe = tmp_path / "probe"
    probe.mkdir()
    probe.chmod(0o000)
    try:
        os.listdir(probe)
        readable = True
    except PermissionError:
        readable = False
    probe.chmod(0o755)
    probe.rmdir()
    if readable:
        pytest.skip(f"chmod 000 does not stop this user (uid {os.geteuid()}, root or CAP_DAC_OVERRIDE) from reading")
    taken: list[Path] = []
    yield taken
    for path in taken:
        path.chmod(0o755)


def test_a_symlinked_subfolder_is_validated_exactly_like_a_real_one(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "apps.yaml").write_text(APP % ("pg-a", "pg-a") + "---\n" + APP % ("pg-b", "pg-b"))
    for layout in ("real", "linked"):
        (tmp_path / layout).mkdir()
        (tmp_path / layout / "cred.yaml").write_text(CRED)
    shutil.copytree(shared, tmp_path / "real" / "team")
    (tmp_path / "linked" / "team").symlink_to(shared)

    real, linked = validate([tmp_path / "real"], env=ENV), validate([tmp_path / "linked"], env=ENV)
    assert real.errors == [] and linked.errors == []
    assert sorted(linked.resources) == sorted(real.resources) == sorted(
        [ResourceKey("App", "pg-a"), ResourceKey("App", "pg-b"), ResourceKey("Credential", "pg-cred")])
    assert {k: r.spec for k, r in linked.resources.items()} == {k: r.spec for k, r in real.resources.items()}
    assert linked.documents == real.documents == 3
    # Shown by the path it was found at, not by the link's target.
    origin = linked.resources[ResourceKey("App", "pg-b")].origin
    assert origin.line == 10 and origin.file.endswith(os.path.join("linked", "team", "apps.yaml"))
    files, diagnostics = discover([tmp_path / "linked"])
    assert names(files, tmp_path) == ["linked/cred.yaml", "linked/team/apps.yaml"] and diagnostics == []


def test_a_symlink_loop_ends_and_lists_each_file_once(tmp_path: Path) -> None:
    a = tmp_path / "a"
    (a / "c").mkdir(parents=True)
    (a / "top.yaml").write_text("")
    (a / "c" / "deep.yml").write_text("")
    (a / "b").symlink_to(a)  # a/b -> a: a loop back to the parent
    (a / "c" / "up").symlink_to("..")  # a/c/up -> a: a loop back to an ancestor further up
    (tmp_path / "x").mkdir()
    (tmp_path / "z").mkdir()
    (tmp_path / "x" / "to-z").symlink_to(tmp_path / "z")  # x -> z -> x: a loop of two links
    (tmp_path / "z" / "to-x").symlink_to(tmp_path / "x")
    (tmp_path / "z" / "in-z.yaml").write_text("")

    files, diagnostics = discover([a])
    assert diagnostics == []
    assert names(files, tmp_path) == ["a/c/deep.yml", "a/top.yaml"]

    files, diagnostics = discover([tmp_path / "x"])
    assert diagnostics == [] and names(files, tmp_path) == ["x/to-z/in-z.yaml"]
    files, diagnostics = discover([tmp_path])  # everything at once: each file once, by its real place
    assert diagnostics == [] and names(files, tmp_path) == ["a/c/deep.yml", "a/top.yaml", "z/in-z.yaml"]


def test_a_file_reachable_through_a_link_and_directly_is_shown_by_its_real_place(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "m.yaml").write_text("")
    (tmp_path / "alias").symlink_to(tmp_path / "real")  # sorts before "real", and is still walked after it
    (tmp_path / "alias.yaml").symlink_to(tmp_path / "real" / "m.yaml")
    files, diagnostics = discover([tmp_path])
    assert diagnostics == [] and names(files, tmp_path) == ["alias.yaml"]  # a linked file is a file: found first
    (tmp_path / "alias.yaml").unlink()
    files, _ = discover([tmp_path])
    assert names(files, tmp_path) == ["real/m.yaml"]
    assert discover([tmp_path, tmp_path / "real", tmp_path / "alias"]) == discover([tmp_path])  # deterministic, once


def test_hidden_and_skipped_folders_stay_skipped_even_through_links(tmp_path: Path) -> None:
    for folder in (".hidden", "node_modules", ".git", "kept"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "m.yaml").write_text("")
    (tmp_path / ".linked").symlink_to(tmp_path / "kept")
    (tmp_path / "venv").symlink_to(tmp_path / ".hidden")
    (tmp_path / ".dangling").symlink_to(tmp_path / "nowhere")  # a hidden name: never looked into, never reported
    (tmp_path / "notes.txt").write_text("")
    files, diagnostics = discover([tmp_path])
    assert names(files, tmp_path) == ["kept/m.yaml"] and diagnostics == []


def test_a_link_that_points_nowhere_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "cred.yaml").write_text(CRED)
    (tmp_path / "team").symlink_to(tmp_path / "moved-away")  # was a folder of manifests
    (tmp_path / "app.yaml").symlink_to("gone.yaml")
    (tmp_path / "self").symlink_to("self")  # a link to itself cannot be followed either
    result = validate([tmp_path], env=ENV)
    assert errors(result.diagnostics, tmp_path) == [("RC001", "app.yaml"), ("RC001", "self"), ("RC001", "team")]
    by_name = {Path(d.file).name: d for d in result.errors}
    assert "app.yaml -> gone.yaml cannot be followed: No such file or directory" in by_name["app.yaml"].message
    assert "Too many levels of symbolic links" in by_name["self"].message
    assert all("--prune" in d.hint for d in result.errors)
    assert result.resources.keys() == {ResourceKey("Credential", "pg-cred")}  # the rest still validated

    [given] = discover([tmp_path / "team"])[1]  # the folder given on the command line is a dangling link
    assert given.code == "RC001" and "moved-away" in given.message


def test_a_variables_file_in_a_linked_folder_is_not_read_as_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "reconciler.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Project\nmetadata: {name: p}\nspec: {varFiles: [vars/common.yaml]}\n")
    (tmp_path / "real" / "cred.yaml").write_text(CRED.replace("db.example.com", "${var:host}"))
    (tmp_path / "shared-vars").mkdir()
    (tmp_path / "shared-vars" / "common.yaml").write_text("host: db.example.com\n")
    (tmp_path / "real" / "vars").symlink_to(tmp_path / "shared-vars")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    for given in ("real", "link"):
        result = validate([tmp_path / given], env=ENV)
        assert result.diagnostics == [], given
        assert result.resources[ResourceKey("Credential", "pg-cred")].spec["host"] == "db.example.com"


def test_an_unreadable_folder_is_an_error(tmp_path: Path, restore_modes: list[Path]) -> None:
    (tmp_path / "cred.yaml").write_text(CRED)
    team = tmp_path / "team"
    team.mkdir()
    (team / "app.yaml").write_text(APP % ("pg-a", "pg-a"))
    team.chmod(0o000)
    restore_modes.append(team)
    result = validate([tmp_path], env=ENV)
    [error] = result.errors
    assert (error.code, Path(error.file).name, error.severity) == ("RC001", "team", "error")
    assert "cannot read the folder" in error.message and "Permission denied" in error.message and error.hint


def test_an_unreadable_file_is_an_error(tmp_path: Path, restore_modes: list[Path]) -> None:
    (tmp_path / "app.yaml").write_text(APP % ("pg-a", "pg-a"))
    (tmp_path / "app.yaml").chmod(0o000)
    restore_modes.append(tmp_path / "app.yaml")
    [error] = validate([tmp_path], env=ENV).errors
    assert error.code == "RC001" and "Permission denied" in error.message and "app.yaml" in error.message
    assert "--prune" in error.hint


def test_a_folder_the_walk_cannot_list_is_an_error(tmp_path: Path) -> None:
    """The walk's error path, reachable as root too: folders that vanished (or turned into a file)
    between being listed in their parent and being listed themselves."""
    (tmp_path / "now-a-file").write_text("")
    files: list[Path] = []
    diagnostics: list[Diagnostic] = []
    walk = _Walk(files, diagnostics)
    walk.tree(tmp_path / "vanished")
    walk.tree(tmp_path / "now-a-file")
    assert files == []
    assert [(d.code, d.severity, Path(d.file).name) for d in diagnostics] == [
        ("RC001", "error", "vanished"), ("RC001", "error", "now-a-file")]
    assert "No such file or directory" in diagnostics[0].message and "Not a directory" in diagnostics[1].message
    assert all(d.hint for d in diagnostics)


def test_a_file_that_vanishes_before_it_is_read_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(APP % ("pg-a", "pg-a"))
    [found], _ = discover([tmp_path])
    found.unlink()
    text, problem = read_text(found)
    assert text is None and problem is not None
    assert (problem.code, problem.severity) == ("RC001", "error")
    assert "app.yaml" in problem.message and "No such file or directory" in problem.message and problem.hint


def read_within(path: Path, seconds: float = 10) -> tuple[str | None, Diagnostic | None]:
    """read_text in a thread that must finish: a FIFO opened the blocking way would wait forever."""
    done: list[tuple[str | None, Diagnostic | None]] = []
    reader = threading.Thread(target=lambda: done.append(read_text(path)), daemon=True)
    reader.start()
    reader.join(seconds)
    assert done, f"reading {path} did not finish within {seconds} s"
    return done[0]


def test_fifos_devices_and_sockets_named_like_manifests_are_errors_and_never_opened(tmp_path: Path) -> None:
    (tmp_path / "cred.yaml").write_text(CRED)
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")  # a character device once the link is followed
    os.mkfifo(tmp_path / "pipe.txt")  # not named like a manifest: not ours to judge
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "pipe.yml").symlink_to(tmp_path / "pipe.yaml")
    files, diagnostics = discover([tmp_path])
    assert names(files, tmp_path) == ["cred.yaml"]
    assert [(d.code, Path(d.file).name, d.line, d.column) for d in diagnostics] == [
        ("RC001", "pipe.yaml", 0, 0), ("RC001", "zero.yaml", 0, 0), ("RC001", "pipe.yml", 0, 0)]
    assert [d.message.rsplit(": ", 1)[1] for d in diagnostics] == [
        "it is a FIFO (named pipe)", "it is a character device", "it is a FIFO (named pipe)"]
    assert all("not a regular file" in d.message and d.hint for d in diagnostics)

    # Given by name, and when read directly (a race: it was a file when listed): never opened.
    given = discover([tmp_path / "pipe.yaml", tmp_path / "zero.yaml"])[1]
    assert [(d.code, "not a regular file or folder" in d.message) for d in given] == [("RC001", True)] * 2
    for special in ("pipe.yaml", "zero.yaml"):
        text, problem = read_within(tmp_path / special)
        assert text is None and problem is not None and problem.code == "RC001", problem
    assert [d.code for d in validate([tmp_path], env=ENV).errors] == ["RC001", "RC001", "RC001"]


def test_a_variables_file_that_is_a_fifo_is_an_error_not_a_missing_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "vars.yaml")
    variables, problems = load_variables(tmp_path / "vars.yaml")
    assert variables == {} and [(p.code, "FIFO" in p.message) for p in problems] == [("RC001", True)]
    assert [p.code for p in load_variables(tmp_path / "missing.yaml")[1]] == ["RC080"]


def test_a_file_over_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    with open(tmp_path / "huge.yaml", "wb") as out:
        out.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk, and never read
    (tmp_path / "at-the-cap.yaml").write_text(CRED + "#" * (MAX_FILE_BYTES - len(CRED) - 1) + "\n")
    text, problem = read_text(tmp_path / "huge.yaml")
    assert text is None and problem is not None
    assert (problem.code, problem.line, problem.column) == ("RC006", 1, 1)
    assert f"{MAX_FILE_BYTES + 1:,} bytes" in problem.message and "Split it" in problem.hint
    text, problem = read_text(tmp_path / "at-the-cap.yaml")
    assert problem is None and text is not None and len(text) == MAX_FILE_BYTES


def test_the_state_file_may_be_a_link_to_a_file_not_written_yet(tmp_path: Path) -> None:
    (tmp_path / "reconciler.yaml").write_text("apiVersion: reconciler/v1\nkind: Project\nmetadata: {name: p}\n"
                                              "spec: {stateFile: state-link.json}\n")
    (tmp_path / "cred.yaml").write_text(CRED)
    (tmp_path / "state-link.json").symlink_to(tmp_path / "common" / "state.json")  # shared, written by the first apply
    (tmp_path / "team").symlink_to(tmp_path / "moved")  # a folder of manifests gone: still an error
    result = validate([tmp_path], env=ENV)
    assert errors(result.diagnostics, tmp_path) == [("RC001", "team")]
    assert result.project.state_file == tmp_path / "state-link.json"


def test_prune_never_runs_while_a_manifests_folder_cannot_be_seen(sandbox: Sandbox, introspect: Introspection,
                                                                  tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "team").mkdir(parents=True)
    (repo / "cred.yaml").write_text(CRED)
    (repo / "team" / "app.yaml").write_text(APP % ("pg-a", "pg-a"))
    env = {**os.environ, "ATLAN_BASE_URL": sandbox.base_url, "ATLAN_API_KEY": TOKEN, **ENV}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, timeout=180,
                              cwd=tmp_path, env=env, stdin=subprocess.DEVNULL)

    def apps() -> list[str]:
        return [a["name"] for a in introspect.state()["apps"].values()]

    created = cli("apply", "repo", "--auto-approve", "--prune")
    assert created.returncode == 0, created.stdout + created.stderr
    assert apps() == ["pg-a"]

    # The team folder moves elsewhere and is linked back: still declared, nothing to delete.
    (repo / "team").rename(tmp_path / "team")
    (repo / "team").symlink_to(tmp_path / "team")
    same = cli("plan", "repo", "--prune", "--detailed-exitcode")
    assert same.returncode == 0, same.stdout + same.stderr

    # The link now points nowhere: validation fails, so nothing is planned, applied or pruned.
    (tmp_path / "team").rename(tmp_path / "elsewhere")
    requests_before = introspect.stats()["total"]
    refused = cli("apply", "repo", "--auto-approve", "--prune")
    assert refused.returncode == 1 and "nothing was sent to the tenant" in refused.stderr, refused.stdout + refused.stderr
    assert introspect.stats()["total"] == requests_before  # not one request to the tenant
    assert apps() == ["pg-a"]
    checked = cli("validate", "repo")
    assert checked.returncode == 1
    assert checked.stdout.startswith(f"{os.path.join('repo', 'team')}:0:0: RC001 the link {os.path.join('repo', 'team')} -> ")
