"""Migrations and the seed: one-off jobs in the server image, run for `up`, `reset` and `devenv migrate`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from devenv.core.errors import LOG_TAIL, ComposeFailed, DevenvError, MigrationFailed, StackNotRunning, UsageError
from devenv.core.errors import tail as output_tail
from devenv.engine.runtime import Runtime
from devenv.project.context import Context
from devenv.stack.probes import MIGRATE_HINT, hint_from_logs, log_details


@dataclass(frozen=True)
class MigrateResult:
    """What `devenv migrate` ran and what prisma said."""

    argv: tuple[str, ...]
    output: str
    exit_code: int = 0


def migrate_outcome(logs: str) -> str:
    """What prisma migrate deploy said it did, in a few words ("" when it is not Prisma talking)."""
    found = re.search(r"(\d+) migrations? found", logs)
    # The migration folders under "The following migration(s) have been applied:" (log lines may carry a prefix).
    applied = set(re.findall(r"└─ ([\w.-]+)/\s*$", logs, re.MULTILINE))
    if "No pending migrations to apply" in logs:
        return f"{found.group(1)} migrations, none pending" if found else "no pending migrations"
    if "successfully applied" in logs or applied:
        return f"{len(applied) or (found.group(1) if found else '?')} applied"
    if "No migration found" in logs:
        return "no migrations found"
    return ""


def run_job(runtime: Runtime, argv: Sequence[str], *, failure: str, hint: str) -> str:
    """Run ARGV in a one-off `migrate` container; on a non-zero exit raise MigrationFailed with the output's tail.

    FAILURE is the message, with {argv} and {code} filled in.
    """
    code, output = runtime.run_oneoff("migrate", list(argv))
    if code != 0:
        hint = hint_from_logs(output) or hint
        raise MigrationFailed(failure.format(argv=" ".join(argv), code=code), hint, details=output_tail(output))
    return output


def run_seed(runtime: Runtime, argv: Sequence[str]) -> None:
    """Run the seed command in a one-off container of the server image."""
    run_job(
        runtime,
        argv,
        failure="the seed (`{argv}`) exited with code {code}.",
        hint="fix the seed script, then run `devenv reset` (or `devenv up` on a new database).",
    )


def migrate_and_seed(runtime: Runtime, migrate: Sequence[str], seed: Sequence[str]) -> None:
    """Rebuild the server image (the jobs run it: it must carry the new migrations), then migrate and seed."""
    runtime.build(["server"])
    for argv in (migrate, seed):
        if argv:
            run_job(
                runtime,
                argv,
                failure="`{argv}` exited with code {code} while re-creating the database.",
                hint="fix the migration or seed, then run `devenv reset` again.",
            )


def failed_job(runtime: Runtime, err: ComposeFailed) -> DevenvError | None:
    """`compose up` failed because the migrate job did: MigrationFailed with its log (None: something else)."""
    if "migrate" in err.output and ("didn't complete successfully" in err.output or "exited with code" in err.output):
        logs = runtime.logs(["migrate"], tail=LOG_TAIL)
        return MigrationFailed(
            "the migrate job failed; the stack is left up for inspection.",
            hint_from_logs(logs) or MIGRATE_HINT,
            details=log_details("migrate", logs),
        )
    return None


def migrate(
    runtime: Runtime, command: Sequence[str], status_command: Sequence[str], *, status: bool = False
) -> MigrateResult:
    """prisma migrate deploy (or status) in a one-off container of the server image."""
    running = {c.service for c in runtime.containers() if c.status == "running" and not c.oneoff}
    if "postgres" not in running:
        raise StackNotRunning("postgres is not running.", "start the stack with `devenv up`.")
    argv = list(status_command if status else command)
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


# -- on the host (server.mode = host) -----------------------------------------------------------------------------
def host_env(ctx: Context) -> dict[str, str]:
    """The environment of a process devenv runs on the host for the server: the user's, then .env over it (the
    stack's URLs and credentials, as the server would load them)."""
    import os

    current = ctx.files.current
    env = {**ctx.environ, **(current.values() if current else {})}
    # The project's own tools first (a seed's `tsx`, `ts-node`), as `npm run` would put them.
    bins = [str(f / "node_modules" / ".bin") for f in _up_to_root(ctx) if (f / "node_modules" / ".bin").is_dir()]
    env["PATH"] = os.pathsep.join([*bins, env.get("PATH", "")])
    ep, settings = ctx.endpoints, ctx.settings
    if ep.postgres_port:  # the stack's own, whatever port it got (Docker's choice reaches .env only after `up`)
        env["DATABASE_URL"] = settings.database_url(ep.host, ep.postgres_port)
    if ep.redis_port and ctx.stack.redis:
        env["REDIS_URL"] = settings.redis_url(ep.host, ep.redis_port)
    return env


def _up_to_root(ctx: Context) -> list[Path]:
    """The server folder and the folders above it, up to the project root (where workspaces hoist packages)."""
    server, root = ctx.project.server_dir, ctx.project.root
    folders = [server]
    for folder in server.parents:
        if not folder.is_relative_to(root):
            break
        folders.append(folder)
    return folders


def host_binary(ctx: Context, name: str) -> Path | None:
    """node_modules/.bin/NAME in the server folder or above it (workspaces hoist), up to the project root."""
    return next(
        (f / "node_modules" / ".bin" / name for f in _up_to_root(ctx) if (f / "node_modules/.bin" / name).is_file()),
        None,
    )


def host_cwd(ctx: Context) -> Path:
    """Where Prisma runs on the host: the server folder, or the folder above it that holds the Prisma setup (a
    schema and prisma.config.* shared at the repository root)."""
    setup = ctx.prisma
    folder = setup.folder
    if folder is not None and not folder.is_relative_to(ctx.project.server_dir):
        return folder.parent
    return ctx.project.server_dir


def host_argv(ctx: Context, argv: Sequence[str]) -> list[str]:
    """ARGV for the host: `npx prisma …` becomes the project's own prisma (never a download)."""
    if list(argv[:2]) == ["npx", "prisma"]:
        binary = host_binary(ctx, "prisma")
        if binary is None:
            project = ctx.project
            raise UsageError(
                f"prisma is not installed for {project.server_dir}: no node_modules/.bin/prisma there or above.",
                f"install the server's dependencies first (`{ctx.app.install_command(project.root)}` in "
                f"{project.root}), then `devenv up`.",
            )
        return [str(binary), *argv[2:]]
    if argv[:1] == ["npx"] and "--no-install" not in argv:
        return ["npx", "--no-install", *argv[1:]]
    return list(argv)


def run_on_host(ctx: Context, argv: Sequence[str], *, failure: str, hint: str) -> str:
    """Run ARGV in the server folder with the .env values; a non-zero exit is MigrationFailed with the tail."""
    from devenv.core import proc

    command = host_argv(ctx, argv)
    done = proc.run(command, cwd=host_cwd(ctx), env=host_env(ctx))
    if not done.ok:
        raise MigrationFailed(
            failure.format(argv=" ".join(argv), code=done.returncode), hint, details=output_tail(done.output)
        )
    return done.output


def migrate_on_host(ctx: Context, seed: Sequence[str]) -> str:
    """`prisma migrate deploy` (migrate.command) and SEED, on the host; the migrate output."""
    output = run_on_host(
        ctx,
        ctx.config.migrate.command,
        failure="`{argv}` exited with code {code} (run on the host, in the server folder).",
        hint=MIGRATE_HINT,
    )
    if seed:
        run_on_host(
            ctx,
            seed,
            failure="the seed (`{argv}`) exited with code {code} (run on the host).",
            hint="fix the seed script, then run `devenv reset` (or `devenv up` on a new database).",
        )
    return output


def migrate_command(ctx: Context, *, status: bool = False) -> MigrateResult:
    """`devenv migrate [--status]`: in the server image, or on the host (server.mode = host)."""
    cfg = ctx.config.migrate
    if not ctx.stack.server_on_host:
        return migrate(ctx.runtime, cfg.command, cfg.status_command, status=status)
    if ctx.endpoints.postgres_port is None or not ctx.postgres.probe():
        raise StackNotRunning("postgres is not running.", "start the stack with `devenv up`.")
    argv = cfg.status_command if status else cfg.command
    if status:  # exit 1 with pending migrations is an answer, not a crash
        from devenv.core import proc

        done = proc.run(host_argv(ctx, argv), cwd=host_cwd(ctx), env=host_env(ctx))
        return MigrateResult(tuple(argv), done.output, done.returncode)
    output = run_on_host(ctx, argv, failure="`{argv}` exited with code {code} (run on the host).", hint=MIGRATE_HINT)
    return MigrateResult(tuple(argv), output)
