"""The context derives what it holds once per command: every reader of the project's files runs once in `up`,
`reset` and `status`, however many contexts the command makes from the first (`with_files`, `with_states`, ...)."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from devenv.commands import lifecycle, reset, status
from devenv.db import spare
from devenv.project import context, envfile
from devenv.project.context import Context
from devenv.project.discovery import Project, load_project
from devenv.project.envfile import EnvFiles
from tests.fakes import FakeConnectors, FakeRuntime, state

PUBLISHED = {"postgres": {5432: 49001}, "redis": {6379: 49002}, "server": {3000: 49003}}
READERS = ("read_app", "find_prisma", "read_dockerfile", "plan_stack", "migrations_key")


def running_stack() -> list[Any]:
    return [
        state("postgres", health="healthy", ports=PUBLISHED["postgres"]),
        state("redis", health="healthy", ports=PUBLISHED["redis"]),
        state("migrate", "exited", exit_code=0),
        state("server", health="healthy", ports=PUBLISHED["server"]),
    ]


def _counting(counts: Counter[str], name: str, real: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        counts[name] += 1
        return real(*args, **kwargs)

    return wrapped


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """How often each reader ran: the context's readers, the settings merge and each dotenv file read from disk."""
    counts: Counter[str] = Counter()
    for name in READERS:
        monkeypatch.setattr(context, name, _counting(counts, name, getattr(context, name)))
    monkeypatch.setattr(EnvFiles, "settings", _counting(counts, "settings", EnvFiles.settings))
    real_read = envfile.read_text
    monkeypatch.setattr(envfile, "read_text", lambda path, what: counts.update([path.name]) or real_read(path, what))
    monkeypatch.setattr(spare, "start", lambda *a, **k: False)  # no background copy against the fake cluster
    yield counts


@pytest.fixture
def project(example: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    for var in ("DEVENV_POSTGRES_PORT", "DEVENV_REDIS_PORT", "DEVENV_SERVER_PORT"):
        monkeypatch.setenv(var, "0")  # Docker-chosen: independent of what else runs on this machine
    return load_project(example.root)


def _load(project: Project, runtime: FakeRuntime, connectors: FakeConnectors) -> Context:
    return context.load(project.root, environ=dict(os.environ), runtime=runtime, connectors=connectors)


def _derived(counts: Mapping[str, int]) -> dict[str, int]:
    return {name: counts[name] for name in (*READERS, "settings")}


def _dotenv(counts: Mapping[str, int]) -> dict[str, int]:
    return {name: n for name, n in counts.items() if name.startswith(".env")}


def test_up_reads_each_file_once(project: Project, reads: Counter[str]) -> None:
    runtime, fakes = FakeRuntime(states=running_stack()), FakeConnectors()
    result = lifecycle.up(_load(project, runtime, fakes))  # a new database: migrated, seeded, templated
    assert result.seeded
    assert _derived(reads) == dict.fromkeys(_derived(reads), 1)
    assert _dotenv(reads) == {".env.template": 1}  # .env is written, then handed on parsed

    reads.clear()
    again = lifecycle.up(_load(project, runtime, fakes))  # nothing changed: no migrations key needed
    assert not again.seeded and not again.compose_work
    assert _derived(reads) == {**dict.fromkeys(_derived(reads), 1), "migrations_key": 0}
    assert _dotenv(reads) == {".env.template": 1, ".env": 1}


def test_reset_reads_each_file_once(project: Project, reads: Counter[str]) -> None:
    runtime, fakes = FakeRuntime(states=running_stack()), FakeConnectors()
    lifecycle.up(_load(project, runtime, fakes))
    reads.clear()
    result = reset.soft_reset(_load(project, runtime, fakes))
    assert result.mode == "template" and result.redis_flushed
    # From the template: neither the Dockerfile nor the stack's plan is needed.
    assert _derived(reads) == {**dict.fromkeys(READERS, 1), "read_dockerfile": 0, "plan_stack": 0, "settings": 1}
    assert _dotenv(reads) == {".env.template": 1, ".env": 1}


def test_status_reads_each_file_once(project: Project, reads: Counter[str]) -> None:
    runtime, fakes = FakeRuntime(states=running_stack()), FakeConnectors()
    lifecycle.up(_load(project, runtime, fakes))
    reads.clear()
    report = status.stack_status(_load(project, runtime, fakes))
    assert report.status == "healthy"
    assert _derived(reads) == {**dict.fromkeys(READERS, 1), "migrations_key": 0, "settings": 1}
    assert _dotenv(reads) == {".env.template": 1, ".env": 1}


def test_with_files_merges_the_settings_anew_and_reads_nothing_again(project: Project, reads: Counter[str]) -> None:
    ctx = context.open_project(project, environ={}, runtime=FakeRuntime())
    before = (ctx.settings, ctx.app, ctx.prisma, ctx.dockerfile, ctx.stack, ctx.migrations_key)
    written = envfile.ensure_env(project, {}, files=ctx.files).files  # .env written: new credentials
    after = ctx.with_files(written)
    assert after.settings.pg_password and after.settings.pg_password != before[0].pg_password
    assert (after.app, after.prisma, after.dockerfile, after.stack) == before[1:5]
    assert after.app is before[1] and after.stack is before[4]  # the same values, not equal ones read again
    assert after.with_states(running_stack()).settings is after.settings
    assert {name: reads[name] for name in READERS} == dict.fromkeys(READERS, 1) and reads["settings"] == 2


def test_another_view_of_the_project_derives_only_what_it_changes(project: Project, reads: Counter[str]) -> None:
    ctx = context.open_project(project, environ={}, runtime=FakeRuntime())
    stack = ctx.stack
    renamed = ctx.for_project(replace(project, name="other"), runtime=ctx.runtime)
    assert renamed.stack is stack and renamed.dockerfile is ctx.dockerfile
    ci = ctx.for_project(replace(project, ci=True), runtime=ctx.runtime)
    assert ci.stack is not stack and ci.app is ctx.app  # the plan depends on `ci`; package.json does not
    assert reads["plan_stack"] == 2 and reads["read_app"] == reads["read_dockerfile"] == 1


def test_the_engine_is_resolved_once_per_command(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real = context.resolve_engine
    monkeypatch.setattr(context, "resolve_engine", lambda env: seen.append(env["DOCKER_HOST"]) or real(env))
    ctx = context.open_project(project, environ={"DOCKER_HOST": "tcp://box-a:2375"})
    renamed = ctx.for_project(replace(project, name="other"))  # a new runtime, on the same engine
    assert seen == ["tcp://box-a:2375"] and renamed.engine.url == "tcp://box-a:2375"
    assert renamed.runtime.host_address() == "box-a"
    other = context.open_project(project, environ={"DOCKER_HOST": "tcp://box-b:2375"})  # the next command
    assert other.runtime.host_address() == "box-b" and seen == ["tcp://box-a:2375", "tcp://box-b:2375"]


def test_a_value_is_derived_once_when_threads_ask_at_the_same_time() -> None:
    memo, calls = context.Memo(), Counter[str]()

    def slow() -> int:
        calls["slow"] += 1
        time.sleep(0.01)
        return 42

    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda _: memo.get("answer", ("same",), slow), range(8)))
    assert got == [42] * 8 and calls["slow"] == 1
    assert memo.get("answer", ("other",), lambda: 7) == 7  # other inputs: derived anew
