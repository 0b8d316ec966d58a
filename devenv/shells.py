"""Shortcuts into the running stack: psql, redis-cli, exec, logs and on-demand migrations."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from devenv.errors import StackNotRunning
from devenv.jobs import run_job
from devenv.project import Project
from devenv.runtime import Runtime


def _tty_flags(interactive: bool | None) -> list[str]:
    tty = sys.stdin.isatty() and sys.stdout.isatty() if interactive is None else interactive
    return [] if tty else ["-T"]


def _require_running(runtime: Runtime, service: str) -> None:
    running = {c.service for c in runtime.containers() if c.status == "running" and not c.oneoff}
    if service not in running:
        raise StackNotRunning(f"{service} is not running.", "start the stack with `devenv up`.")


def psql_argv(project: Project, runtime: Runtime, args: Sequence[str], interactive: bool | None = None) -> list[str]:
    """psql inside the postgres container, as the app user on the app database."""
    from devenv.envfile import stack_settings

    _require_running(runtime, "postgres")
    s = stack_settings(project)
    return runtime.compose_argv(
        "exec", *_tty_flags(interactive), "postgres", "psql", "-U", s.pg_user, "-d", s.pg_db, *args
    )


def redis_cli_argv(
    project: Project, runtime: Runtime, args: Sequence[str], interactive: bool | None = None
) -> list[str]:
    """redis-cli inside the redis container, on the app's db index; the password comes from the container's env."""
    from devenv.envfile import stack_settings

    _require_running(runtime, "redis")
    s = stack_settings(project)
    return runtime.compose_argv("exec", *_tty_flags(interactive), "redis", "redis-cli", "-n", str(s.redis_db), *args)


def exec_argv(runtime: Runtime, service: str, cmd: Sequence[str], interactive: bool | None = None) -> list[str]:
    """Any command inside a running service."""
    _require_running(runtime, service)
    return runtime.compose_argv("exec", *_tty_flags(interactive), service, *cmd)


def logs_argv(runtime: Runtime, services: Sequence[str], *, follow: bool, tail: int | None) -> list[str]:
    """docker compose logs for the stack."""
    args = ["logs", "--no-color"]
    if follow:
        args.append("--follow")
    if tail is not None:
        args += ["--tail", str(tail)]
    return runtime.compose_argv(*args, *services)


@dataclass(frozen=True)
class MigrateResult:
    """What `devenv migrate` ran and what prisma said."""

    argv: tuple[str, ...]
    output: str
    exit_code: int = 0


def migrate(project: Project, runtime: Runtime, *, status: bool = False) -> MigrateResult:
    """prisma migrate deploy (or status) in a one-off container of the server image."""
    _require_running(runtime, "postgres")
    cfg = project.config.migrate
    argv = list(cfg.status_command if status else cfg.command)
    runtime.build(["server"])  # the job runs the server image: rebuild so it carries the current migrations
    if status:
        # prisma migrate status exits 1 when migrations are pending: that is an answer, not a crash.
        code, output = runtime.run_oneoff("migrate", argv)
        return MigrateResult(tuple(argv), output, code)
    output = run_job(
        runtime,
        argv,
        failure="`{argv}` exited with code {code}.",
        hint="fix the migration named below, then run it again.",
    )
    return MigrateResult(tuple(argv), output)
