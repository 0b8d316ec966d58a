"""One-off jobs: argv goes to the migrate service; a non-zero exit is a MigrationFailed with the output's tail."""

from __future__ import annotations

import pytest

from devenv.core.errors import MigrationFailed
from devenv.stack.migrate import run_job
from tests.fakes import FakeRuntime


def test_success_returns_the_output() -> None:
    runtime = FakeRuntime(oneoff_result=(0, "3 migrations applied\n"))
    assert run_job(runtime, ("npx", "prisma", "migrate", "deploy"), failure="x", hint="y") == "3 migrations applied\n"
    assert runtime.calls == [("run", ("migrate", ("npx", "prisma", "migrate", "deploy")))]


def test_failure_names_argv_and_code_and_keeps_the_last_lines() -> None:
    output = "\n".join(f"line {i}" for i in range(100)) + "\nError: P3018 relation does not exist"
    runtime = FakeRuntime(oneoff_result=(1, output))
    with pytest.raises(MigrationFailed) as info:
        run_job(
            runtime,
            ["npx", "prisma", "db", "seed"],
            failure="the seed (`{argv}`) exited with code {code}.",
            hint="fix it",
        )
    assert info.value.message == "the seed (`npx prisma db seed`) exited with code 1."
    assert info.value.exit_code == 5 and info.value.hint == "fix it"
    assert info.value.details and info.value.details.endswith("P3018 relation does not exist")
    assert info.value.details.splitlines()[0] == "line 71" and len(info.value.details.splitlines()) == 30
