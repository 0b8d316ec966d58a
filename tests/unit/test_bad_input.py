"""The bad-input corpus: each case is one line naming the file:line or key, a `Hint:`, exit 2, nothing written.

Files are set up on a copy of the example project; commands run in-process through main(). None of these needs
Docker: every check happens before devenv talks to the engine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.helpers import copy_project, run_cli, tree

T = "apps/server/.env.template"
E = "apps/server/.env"
TOML = "devenv.toml"

FILE_CASES = [
    # (id, files, expected fragment)
    ("template: line without =", {T: "A=1\nnot valid\n"}, ".env.template:2"),
    ("template: unterminated double quote", {T: 'A="open\nB=2\n'}, ".env.template:1"),
    ("template: unterminated single quote", {T: "A='open\nB=2\n"}, ".env.template:1"),
    ("template: duplicate key", {T: "A=1\nB=2\nA=3\n"}, ".env.template:3"),
    ("template: key with a dot", {T: "A.B=1\n"}, ".env.template:1"),
    ("template: key with a space", {T: "MY KEY=1\n"}, ".env.template:1"),
    ("template: empty key", {T: "A=1\n=value\n"}, ".env.template:2"),
    ("template: key starting with a digit", {T: "1A=1\n"}, ".env.template:1"),
    (".env: not UTF-8", {E: b"\xff\xfe\n"}, ".env"),
    (".env: line without =", {E: "POSTGRES_USER=app\ngarbage\n"}, ".env:2"),
    (".env: duplicate key", {E: "POSTGRES_USER=app\nPOSTGRES_USER=other\n"}, ".env:2"),
    (".env: unterminated quote", {E: 'POSTGRES_USER="app\n'}, ".env:1"),
    (".env: invalid key", {E: "POSTGRES-USER=app\n"}, ".env:1"),
    ("toml: syntax error", {TOML: "[postgres\nport = 1\n"}, "devenv.toml:1:10"),
    ("toml: unknown key", {TOML: "[redis]\nimgae = 'redis:7'\n"}, "redis.imgae"),
    ("toml: unknown table", {TOML: "[mysql]\nport = 3306\n"}, "mysql"),
    ("toml: port not a number", {TOML: "[server]\nport = 'http'\n"}, "server.port"),
    ("toml: port out of range", {TOML: "[redis]\nport = 99999\n"}, "redis.port"),
    ("toml: negative port", {TOML: "[postgres]\nport = -1\n"}, "postgres.port"),
    ("toml: two services on one port", {TOML: "[server]\nport = 6379\n"}, "6379"),
    ("toml: invalid image", {TOML: "[postgres]\nimage = 'Postgres 16'\n"}, "postgres.image"),
    ("toml: invalid name", {TOML: "name = 'My Stack'\n"}, "name"),
    ("toml: name not a string", {TOML: "name = 5\n"}, "name"),
    ("toml: path leaving the project", {TOML: "[server]\npath = '../elsewhere'\n"}, "server.path"),
    ("toml: health path without /", {TOML: "[server]\nhealth_path = 'health'\n"}, "server.health_path"),
    ("toml: build_args not a table", {TOML: "[server]\nbuild_args = 'NODE_IMAGE=x'\n"}, "server.build_args"),
    ("toml: empty migrate command", {TOML: "[migrate]\ncommand = []\n"}, "migrate.command"),
    ("toml: bad mount", {TOML: "[server]\nmounts = ['no-colon']\n"}, "server.mounts"),
    ("toml: container port 0", {TOML: "[server]\ncontainer_port = 0\n"}, "server.container_port"),
]

ENV_CASES = [
    ("env: port not a number", {"DEVENV_POSTGRES_PORT": "fivefour"}, "DEVENV_POSTGRES_PORT"),
    ("env: invalid image", {"DEVENV_REDIS_IMAGE": "Redis!"}, "DEVENV_REDIS_IMAGE"),
    ("env: invalid project name", {"DEVENV_PROJECT_NAME": "Bad Name"}, "DEVENV_PROJECT_NAME"),
    ("env: invalid build arg name", {"DEVENV_BUILD_ARG_NODE-IMAGE": "node:20"}, "DEVENV_BUILD_ARG_NODE-IMAGE"),
]

ARG_CASES = [
    # command lines whose values devenv checks itself (before any Docker call)
    ("args: unknown service", ["up", "postgress"], "unknown service 'postgress'"),
    ("args: unknown service for logs", ["logs", "db"], "unknown service 'db'"),
    ("args: reset without --yes", ["reset"], "--yes"),
    ("args: reset --hard without --yes", ["reset", "--hard"], "--yes"),
    ("args: down --volumes without --yes", ["down", "--volumes"], "--yes"),
    ("args: invalid CI stack name", ["ci", "up", "--name", "Bad Name"], "--name 'Bad Name'"),
    ("args: invalid duration", ["gc", "--older-than", "2 hours"], "--older-than '2 hours'"),
    ("args: run without a command", ["run"], "run needs a command"),
    ("args: exec without a command", ["exec", "server"], "exec needs a command"),
    ("args: render -o with --check", ["render", "-o", "a.yml", "--check", "b.yml"], "cannot be combined"),
]


def _check_one_line(code: int, out: str, err: str, fragment: str) -> None:
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ") and " Hint: " in lines[0], lines[0]
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(("what", "files", "fragment"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_files(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    what: str,
    files: dict[str, str | bytes],
    fragment: str,
) -> None:
    root = copy_project("example", tmp_path / "quotes")
    for name, content in files.items():
        (root / name).write_bytes(content.encode() if isinstance(content, str) else content)
    before = tree(root)
    _check_one_line(*run_cli(["up"], root, capsys, monkeypatch), fragment)
    assert tree(root) == before


@pytest.mark.parametrize(("what", "environ", "fragment"), ENV_CASES, ids=[c[0] for c in ENV_CASES])
def test_bad_environment(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    what: str,
    environ: dict[str, str],
    fragment: str,
) -> None:
    root = copy_project("example", tmp_path / "quotes")
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    before = tree(root)
    _check_one_line(*run_cli(["up"], root, capsys, monkeypatch), fragment)
    assert tree(root) == before


@pytest.mark.parametrize(("what", "args", "fragment"), ARG_CASES, ids=[c[0] for c in ARG_CASES])
def test_bad_arguments(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    what: str,
    args: list[str],
    fragment: str,
) -> None:
    root = copy_project("example", tmp_path / "quotes")
    before = tree(root)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    _check_one_line(*run_cli(args, root, capsys, monkeypatch), fragment)
    assert tree(root) == before
