"""Migrations and the seed: one-off jobs in the server image, run for `up`, `reset` and `devenv migrate`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from devenv.errors import LOG_TAIL, ComposeFailed, DevenvError, MigrationFailed, StackNotRunning
from devenv.errors import tail as output_tail
from devenv.probes import MIGRATE_HINT, hint_from_logs, log_details
from devenv.runtime import Runtime


@dataclass(frozen=True)
class MigrateResult:
    """What `devenv migrate` ran and what prisma said."""

    argv: tuple[str, ...]
    output: str
    exit_code: int = 0


def run_job(runtime: Runtime, argv: Sequence[str], *, failure: str, hint: str) -> str:
    """Run ARGV in a one-off `migrate` container; on a non-zero exit raise MigrationFailed with the output's tail.

    FAILURE is the message, with {argv} and {code} filled in.
    """
    code, output = runtime.run_oneoff("migrate", list(argv))
    if code != 0:
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
