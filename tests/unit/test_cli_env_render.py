"""`devenv env` and `devenv render` driven in-process through main(): output, exit codes, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.fixtures.helpers import clean_environ, copy_project, run_cli, tree

Run = tuple[int, str, str]


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_environ(monkeypatch)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def run(args: list[str], cwd: Path) -> Run:
        return run_cli(args, cwd, capsys, monkeypatch)

    return run


def test_env_then_check(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    root = copy_project("example", tmp_path / "quotes")
    code, out, _ = cli(["env"], root)
    assert code == 0 and "added" in out and "JWT_SECRET" in out
    assert (root / "apps/server/.env").exists()
    code, out, _ = cli(["env"], root)
    assert code == 0 and "up to date" in out
    code, out, _ = cli(["env", "--check"], root)
    assert code == 0 and "in step" in out


def test_env_check_exits_1_on_drift_and_writes_nothing(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    root = copy_project("example", tmp_path / "quotes")
    (root / "apps/server/.env").write_text("NODE_ENV=development\nLEGACY=1\n")
    before = tree(root)
    code, out, err = cli(["-C", str(root), "env", "--check"], tmp_path)
    assert code == 1
    port_line = (root / "apps/server/.env.template").read_text().splitlines().index("PORT=3000") + 1
    assert f"missing: PORT (template quotes/apps/server/.env.template:{port_line})" in out
    assert "extra:   LEGACY" in out and ".env:2" in out
    assert "Hint:" in err
    assert tree(root) == before


def test_render_stdout_is_relative_to_cwd_and_writes_nothing(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    root = copy_project("example", tmp_path / "quotes")
    before = tree(root)
    code, out, _ = cli(["render"], root)
    assert code == 0
    data = yaml.safe_load(out)
    env_files = data["services"]["server"]["env_file"]
    assert env_files[0] == "apps/server/.env" and env_files[1].startswith("${DEVENV_SECRETS:?")
    assert tree(root) == before


def test_render_output_and_check(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    root = copy_project("example", tmp_path / "quotes")
    code, out, _ = cli(["render", "-o", "compose.yml"], root)
    assert code == 0 and "written" in out
    assert (root / "compose.yml").exists() and (root / "apps/server/.env").exists()
    assert not (root / ".devenv" / "server.env").exists()  # the generated env files live outside the project
    code, out, _ = cli(["render", "--check", "compose.yml"], root)
    assert code == 0 and "up to date" in out
    (root / "compose.yml").write_text("name: old\n")
    code, out, err = cli(["render", "--check", "compose.yml"], root)
    assert code == 1 and "+name: quotes" in out and "Hint:" in err
    code, out, err = cli(["render", "--check", "missing.yml"], root)
    assert code == 1


def test_render_o_and_check_together_is_usage_error(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    root = copy_project("example", tmp_path / "quotes")
    code, _, err = cli(["render", "-o", "a.yml", "--check", "b.yml"], root)
    assert code == 2 and "Hint:" in err


BAD_INPUT = [
    # (what, set-up on the copied example, expected fragment of the message)
    ("malformed template line", {"apps/server/.env.template": "A=1\nnot valid\n"}, ".env.template:2: cannot parse"),
    ("unterminated quote", {"apps/server/.env.template": 'A="open\nB=2\n'}, ".env.template:1: unterminated"),
    ("duplicate key", {"apps/server/.env.template": "A=1\nA=2\n"}, ".env.template:2: A is defined twice"),
    ("invalid key name", {"apps/server/.env.template": "A.B=1\n"}, ".env.template:1: 'A.B' is not a valid"),
    ("unreadable .env", {"apps/server/.env": b"\xff\n"}, ".env: the .env file is not UTF-8"),
    ("toml syntax error", {"devenv.toml": "[postgres\nport = 1\n"}, "devenv.toml:1:10: TOML syntax error"),
    (
        "unknown key",
        {"devenv.toml": "[redis]\nimgae = 'redis:7'\n"},
        "devenv.toml:2: redis.imgae is not a devenv.toml key",
    ),
    (
        "port not a number",
        {"devenv.toml": "[server]\nport = 'http'\n"},
        "devenv.toml:2: server.port = 'http' is not a port",
    ),
    (
        "port out of range",
        {"devenv.toml": "[redis]\nport = 99999\n"},
        "devenv.toml:2: redis.port = 99999 is out of range",
    ),
    ("port clash", {"devenv.toml": "[server]\nport = 6379\n"}, "both publish host port 6379"),
    (
        "invalid image",
        {"devenv.toml": "[postgres]\nimage = 'Postgres 16'\n"},
        "devenv.toml:2: postgres.image = 'Postgres 16'",
    ),
]


@pytest.mark.parametrize("command", [["env"], ["env", "--check"], ["render"], ["render", "-o", "out.yml"]])
@pytest.mark.parametrize(("what", "files", "fragment"), BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
def test_bad_input(  # type: ignore[no-untyped-def]
    tmp_path: Path, cli, command: list[str], what: str, files: dict[str, str | bytes], fragment: str
) -> None:
    root = copy_project("example", tmp_path / "quotes")
    for name, content in files.items():
        path = root / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    before = tree(root)
    code, out, err = cli(command, root)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and " Hint: " in lines[0]
    assert fragment in lines[0]
    assert tree(root) == before


def test_missing_template_and_no_project(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    root = copy_project("custom", tmp_path / "custom")
    (root / "services/api/.env.template").unlink()
    for command in (["env"], ["render"], ["render", "-o", "x.yml"]):
        before = tree(root)
        code, _, err = cli(command, root)
        assert code == 2 and "services/api/.env.template: the template is missing" in err and "Hint:" in err
        assert tree(root) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = cli(["env"], empty)
    assert code == 2 and "no devenv project" in err and "Hint:" in err


@pytest.mark.parametrize(
    ("argv", "own", "passed"),
    [
        (["psql", "-c", "select 1"], ["psql"], ["-c", "select 1"]),
        (["-C", "app", "redis-cli", "--", "keys", "*"], ["-C", "app", "redis-cli"], ["keys", "*"]),
        (["exec", "server", "--", "sh", "-c", "id"], ["exec", "server"], ["sh", "-c", "id"]),
        (["exec", "server", "ls", "-la"], ["exec", "server"], ["ls", "-la"]),
        (["run", "--name", "x", "--keep", "--", "npm", "test"], ["run", "--name", "x", "--keep"], ["npm", "test"]),
        (["run", "npx", "jest", "--ci"], ["run"], ["npx", "jest", "--ci"]),
        (["up", "--json", "postgres"], ["up", "--json", "postgres"], []),
    ],
)
def test_commands_passed_through_are_split_from_devenvs_own_arguments(
    argv: list[str], own: list[str], passed: list[str]
) -> None:
    from devenv.cli.main import split_passthrough

    assert split_passthrough(argv) == (own, passed)
