"""Shell completion: the candidates read off the parser, `devenv __complete`, and the scripts in real shells.

The bash test is the issue's "done when": the script `devenv completion bash` prints, sourced in bash, completes
`devenv db re` to `restore`. zsh and fish are smoke-tested only where they are installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devenv.cli.completion import FILES, candidates, script
from devenv.cli.main import COMMANDS, build_parser
from tests.fixtures.helpers import copy_project, run_cli

NAMES = {"services": ["postgres", "redis", "server"], "snapshots": ["before-migration", "clean"]}
asked: list[tuple[str, Path | None]] = []


def fake_names(kind: str, project_dir: Path | None) -> list[str]:
    asked.append((kind, project_dir))
    return NAMES[kind]


def values(line: str) -> list[str]:
    """The values of the candidates for LINE (the words after `devenv`; a trailing space starts a new word)."""
    words = line.split(" ")
    return [c.split("\t")[0] for c in candidates(build_parser(), words, fake_names)]


CASES = [
    # (the line after `devenv `, the candidates)
    ("db re", ["restore"]),
    ("db r", ["restore", "rm"]),
    ("ci ", ["up", "down"]),
    ("hooks i", ["install"]),
    ("st", ["status"]),
    ("--pro", ["--project-dir"]),
    ("-C some/dir st", ["status"]),
    ("up --ti", ["--timeout"]),
    ("up ", ["postgres", "redis", "server"]),
    ("up p", ["postgres"]),
    ("up postgres ", ["redis", "server"]),  # a service already named is not offered again
    ("up --timeout 30 r", ["redis"]),  # an option's value is not a service
    ("logs -f ", ["postgres", "redis", "server"]),
    ("exec ", ["postgres", "redis", "server"]),
    ("db restore ", ["before-migration", "clean"]),
    ("db rm c", ["clean"]),
    ("db restore clean ", []),  # NAME given: nothing more
    ("db snapshot ", []),  # a new name: nothing to offer
    ("completion ", ["bash", "zsh", "fish"]),
    ("completion z", ["zsh"]),
    ("render -o ", [FILES]),
    ("db load ", [FILES]),
    ("-C ", [FILES]),
    ("up -- ", []),
    ("status ", []),
    ("nope ", []),
]


@pytest.mark.parametrize(("line", "expected"), CASES, ids=[c[0] for c in CASES])
def test_candidates(line: str, expected: list[str]) -> None:
    assert values(line) == expected


def test_every_command_is_offered_with_its_summary() -> None:
    lines = candidates(build_parser(), [""], fake_names)
    top = [c for c in COMMANDS if " " not in c.path]
    assert lines == [f"{c.path}\t{c.summary}" for c in top]


def test_options_come_with_their_help() -> None:
    assert candidates(build_parser(), ["status", "--j"], fake_names) == ["--json\tThe health report as JSON."]


@pytest.mark.parametrize("line", ["-C there up ", "--project-dir there up ", "--project-dir=there up "])
def test_names_are_asked_of_the_project_given_with_C(line: str) -> None:
    asked.clear()
    values(line)
    assert asked == [("services", Path("there"))]


def test_services_from_the_project(tmp_path: Path) -> None:
    from devenv.cli.completion import project_names

    root = copy_project("example", tmp_path / "quotes")
    assert "postgres" in project_names("services", root)
    assert "server" in project_names("services", root)


def test_complete_prints_candidates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_project("example", tmp_path / "quotes")
    code, out, err = run_cli(["__complete", "-C", str(root), "up", "re"], tmp_path, capsys, monkeypatch)
    assert (code, out, err) == (0, "redis\n", "")
    code, out, err = run_cli(["__complete", "db", "re"], tmp_path, capsys, monkeypatch)
    assert (code, out.split("\t")[0], err) == (0, "restore", "")


@pytest.mark.parametrize(
    "words",
    [
        ["db", "restore", ""],  # no project here: no candidates, no error
        ["up", ""],
        ["psql", ""],  # psql's own arguments
        ["exec", "server", ""],  # exec's command
        ["run", "--", ""],
    ],
)
def test_complete_never_fails_loudly(
    words: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_cli(["__complete", *words], tmp_path, capsys, monkeypatch) == (0, "", "")


def test_completion_prints_the_script(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for shell in ("bash", "zsh", "fish"):
        assert run_cli(["completion", shell], tmp_path, capsys, monkeypatch) == (0, script(shell), "")
    code, _, err = run_cli(["completion", "tcsh"], tmp_path, capsys, monkeypatch)
    assert code == 2
    assert "invalid choice: 'tcsh'" in err


# -- the scripts in real shells -------------------------------------------------------------------------------------
@pytest.fixture
def shell_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH finds a `devenv` that runs this checkout's devenv with this Python."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "devenv"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m devenv "$@"\n')
    shim.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}


def _bash_complete(words: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    line = " ".join(f"'{w}'" for w in words)
    program = (
        f"source <(devenv completion bash)\nCOMP_WORDS=(devenv {line})\nCOMP_CWORD={len(words)}\n"
        '_devenv\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


def test_bash_completes_db_re_to_restore(shell_env: dict[str, str], tmp_path: Path) -> None:
    assert _bash_complete(["db", "re"], shell_env, tmp_path) == ["restore"]


def test_bash_completes_commands_services_and_files(shell_env: dict[str, str], tmp_path: Path) -> None:
    root = copy_project("example", tmp_path / "quotes")
    assert "status" in _bash_complete([""], shell_env, tmp_path)
    assert _bash_complete(["up", "red"], shell_env, root) == ["redis"]
    (tmp_path / "compose.out.yml").write_text("")
    assert _bash_complete(["render", "-o", "compose.o"], shell_env, tmp_path) == ["compose.out.yml"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_script_registers_the_completion(shell_env: dict[str, str], tmp_path: Path) -> None:
    program = "autoload -U compinit && compinit -u -D && source <(devenv completion zsh) && print -r -- $_comps[devenv]"
    done = subprocess.run(
        ["zsh", "-f", "-c", program], env=shell_env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "_devenv", "")


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes_db_re_to_restore(shell_env: dict[str, str], tmp_path: Path) -> None:
    program = "devenv completion fish | source; complete -C 'devenv db re'"
    done = subprocess.run(
        ["fish", "--no-config", "-c", program], env=shell_env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert [line.split("\t")[0] for line in done.stdout.splitlines()] == ["restore"]
