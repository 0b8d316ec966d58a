"""A reader that goes away (`devenv render | head -1`) ends devenv quietly: no BrokenPipeError traceback, exit 141."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from devenv.core.errors import ExitCode
from tests.fixtures.helpers import copy_project


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DEVENV_")}


def test_a_stdout_closed_before_devenv_writes_ends_it_quietly(tmp_path: Path) -> None:
    root = copy_project("example", tmp_path / "quotes")
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line: every write fails, deterministically
    try:
        done = subprocess.run(
            [sys.executable, "-m", "devenv", "-C", str(root), "render"],
            stdout=write, stderr=subprocess.PIPE, text=True, env=_environ(), timeout=60,
        )  # fmt: skip
    finally:
        os.close(write)
    assert done.returncode == ExitCode.PIPE_CLOSED, done.stderr
    assert done.stderr == ""  # no traceback, no "Exception ignored" at exit


def test_head_reads_its_line_and_devenv_stops_quietly(tmp_path: Path) -> None:
    root = copy_project("example", tmp_path / "quotes")
    for _ in range(3):
        done = subprocess.run(
            f"{sys.executable} -m devenv -C {root} render | head -1; echo \"exit ${{PIPESTATUS[0]}}\" >&2",
            shell=True, executable="/bin/bash", capture_output=True, text=True, env=_environ(), timeout=60,
        )  # fmt: skip
        assert len(done.stdout.splitlines()) == 1
        assert done.stderr.strip() in {"exit 0", f"exit {int(ExitCode.PIPE_CLOSED)}"}, done.stderr  # head may be late


def test_an_open_stdout_is_not_taken_for_a_closed_one() -> None:
    from devenv.cli import main as cli

    assert cli._stdout_closed() is False  # pytest's capture (or a terminal): nothing closed, nothing redirected
