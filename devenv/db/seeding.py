"""What the stack's Postgres gets from `up` once it answers: the stack's mark on the cluster, and on a new database
the migrations from the host (server.mode = host), the seed run once, the seeded mark and the reset template.

Its own module on the databases side rather than in devenv.db.marks or devenv.db.template_cache: marks holds only names
and comments over a connection, and every database module imports it; seeding runs jobs (devenv.stack.migrate) and takes
the template (devenv.commands.reset), which would pull those into the lowest of them. The waits of `up`
(devenv.commands.lifecycle)
call it and only report what it did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from devenv.db import marks
from devenv.db.templates import take_template
from devenv.project.context import Context
from devenv.stack.migrate import migrate_on_host, migrate_outcome, run_on_host, run_seed

Progress = Callable[[str, str, str], None]  # (service, phase, detail): what `up` shows while it happens


@dataclass(frozen=True)
class Seeding:
    """What `up` did to its database: HOST_NOTE (migrations from the host), SEEDED, NOTE (about the seed),
    TEMPLATED (a new reset template was taken: the spare for the first reset is then due)."""

    host_note: str = ""
    seeded: bool = False
    note: str = ""
    templated: bool = False


def mark_cluster(ctx: Context) -> None:
    """Write the stack's mark on its Postgres, so reset knows its own."""
    project = ctx.project
    with ctx.postgres.session(what="devenv's mark") as conn:
        marks.mark_cluster(conn, project.name, project.checkout, ctx.settings.pg_db, ctx.runtime.machine[0])


def seed_if_new(ctx: Context, progress: Progress) -> Seeding:
    """On a new database: run the seed once, mark the database seeded and take the reset template; with the server
    on the host, its migrations run first, on every `up` that has work to do."""
    host_note = _migrate_on_host(ctx, progress) if ctx.stack.server_on_host and ctx.prisma.schema is not None else ""
    with ctx.postgres.session(what="the seed mark") as conn:
        if marks.is_seeded(conn):
            return Seeding(host_note=host_note)
    seeded, note = _seed(ctx, progress)
    db = ctx.settings.pg_db
    with ctx.postgres.session(marks.maintenance_db(db), what="the reset template") as conn:
        marks.mark_seeded(conn, db)
        take_template(conn, db, ctx.migrations_key, ctx.project.state_dir)
    return Seeding(host_note, seeded, note, templated=True)


def _migrate_on_host(ctx: Context, progress: Progress) -> str:
    """`prisma migrate deploy` from the host (the project's own prisma, the .env values), as the migrate job would
    in a container; what to tell about it."""
    progress("postgres", "migrating", "on the host")
    outcome = migrate_outcome(migrate_on_host(ctx, ()))
    note = f"migrated from the host: `{' '.join(ctx.config.migrate.command)}`" + (f" ({outcome})" if outcome else "")
    progress("postgres", "migrated", "on the host")
    return note


def _seed(ctx: Context, progress: Progress) -> tuple[bool, str]:
    """Run the configured seed in the migrate job's image (or on the host); (seeded, what to tell about it)."""
    stack = ctx.stack
    seed = ctx.seed_command if stack.migrates or stack.server_on_host else ()
    if seed:
        job = "postgres" if stack.server_on_host else "migrate"
        progress(job, "seeding", "")
        if stack.server_on_host:
            run_on_host(
                ctx,
                seed,
                failure="the seed (`{argv}`) exited with code {code} (run on the host).",
                hint="fix the seed script, then run `devenv reset` (or `devenv up` on a new database).",
            )
        else:
            run_seed(ctx.runtime, seed)
        progress(job, "seeded", "")
        return True, f"seeded the new database: `{' '.join(seed)}`" + (
            " (on the host)." if stack.server_on_host else "."
        )
    if stack.migrates or (stack.server_on_host and ctx.prisma.schema is not None):
        return False, (
            "no seed configured (no prisma.seed in package.json, no seed in prisma.config.*, no "
            "migrate.seed_command): the new database has the schema only."
        )
    if ctx.prisma.schema is not None:
        return False, (
            "the new database is empty: nothing in the stack migrates it (the server has no Dockerfile); "
            f"run `npx prisma migrate deploy` in {ctx.project.server_dir} with the .env devenv wrote."
        )
    return False, ""
