"""Interactive shells into the stack (psql, redis-cli, exec) and its logs: the docker compose argv to run."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from devenv.core.errors import StackNotRunning
from devenv.engine.runtime import Runtime
from devenv.project.context import Context


def _tty_flags(interactive: bool | None) -> list[str]:
    tty = sys.stdin.isatty() and sys.stdout.isatty() if interactive is None else interactive
    return [] if tty else ["-T"]


def _require_running(runtime: Runtime, service: str) -> None:
    running = {c.service for c in runtime.containers(detail=False) if c.status == "running" and not c.oneoff}
    if service not in running:
        raise StackNotRunning(f"{service} is not running.", "start the stack with `devenv up`.")


def psql_argv(ctx: Context, args: Sequence[str], interactive: bool | None = None) -> list[str]:
    """psql inside the postgres container, as the app user on the app database."""
    _require_running(ctx.runtime, "postgres")
    s = ctx.settings
    return ctx.runtime.compose_argv(
        "exec", *_tty_flags(interactive), "postgres", "psql", "-U", s.pg_user, "-d", s.pg_db, *args
    )


def redis_cli_argv(ctx: Context, args: Sequence[str], interactive: bool | None = None) -> list[str]:
    """redis-cli inside the redis container, on the app's db index; the password comes from the container's env."""
    _require_running(ctx.runtime, "redis")
    return ctx.runtime.compose_argv(
        "exec", *_tty_flags(interactive), "redis", "redis-cli", "-n", str(ctx.settings.redis_db), *args
    )


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
