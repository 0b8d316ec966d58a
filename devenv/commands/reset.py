"""`devenv reset`: restore the app database from a template copy taken right after migrate + seed.

Postgres clones a database from a template in tens of milliseconds, and a spare copy of the template kept ready
(devenv.db.spare) turns even that into a rename, so a soft reset costs about as much as starting the CLI. The template
is tagged with the migrations key (devenv.db.marks); when the key no longer matches, reset migrates and seeds a fresh
database and takes a new template. `reset --hard` (new volumes) belongs to devenv.commands.lifecycle.

The shared machinery (checks, swaps, templates, spares) is devenv.db.templates.

Safety: devenv only ever touches the app database, its template and its spare, only on the stack's own Postgres
(the cluster carries devenv's mark), and only when DATABASE_URL in .env points at that Postgres.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from devenv.core.errors import DevenvError
from devenv.db import marks, templates
from devenv.project.context import Context
from devenv.stack import checkouts


@dataclass(frozen=True)
class ResetResult:
    """What a reset did and how long it took."""

    mode: str  # template | cached (the key's template came back from the cache) | remigrated | hard
    database: str
    template: str
    key: str
    seconds: float
    redis_flushed: bool
    reason: str = ""
    from_spare: bool = False  # the ready copy was renamed into place (no copy on the reset's own time)


def soft_reset(ctx: Context, on_step: Callable[[str], None] = lambda s: None) -> ResetResult:
    """Restore the app database from its template (or re-migrate + re-template when the key changed)."""
    from devenv.stack.migrate import migrate_and_seed, migrate_on_host

    t0 = time.perf_counter()
    project, settings = ctx.project, ctx.settings
    states = ctx.runtime.containers(detail=False)  # one engine call: whose stack it is, and its ports
    if not project.ci:
        machine = ctx.runtime.machine[0]
        other = checkouts.foreign_owner([s.labels for s in states], project.root, machine=machine)
        if other is not None:
            raise checkouts.refusal(project.name, other, project.root, "resets", machine=machine)
    ctx = ctx.with_states(states)
    postgres = ctx.postgres  # StackNotRunning when it is not published
    ep = ctx.endpoints
    assert ep.postgres_port is not None
    templates.check_database_url(ctx, ep.host, ep.postgres_port)
    db, key = settings.pg_db, ctx.migrations_key
    tmpl = marks.template_name(db)

    maintenance = marks.maintenance_db(db)
    with postgres.session(maintenance, what="the reset", application_name=templates.APPLICATION_NAME) as conn:
        marks.verify_cluster(
            conn, project.name, project.checkout, f"{ep.host}:{ep.postgres_port}", db, ctx.runtime.machine[0]
        )
        tmpl_oid, tmpl_comment = conn.database(tmpl) or ("", None)
        if tmpl_comment == marks.template_mark(key):
            spares = project.state_dir if project.config.reset.spare else None
            from_spare = templates.restore(conn, db, settings.pg_user, (tmpl, tmpl_oid), key, spares, on_step)
            mode, reason = "template", ""
        elif (back := templates.from_cache(ctx, conn, key)) is not None:
            spares = project.state_dir if project.config.reset.spare else None
            from_spare = templates.restore(conn, db, settings.pg_user, back, key, spares, on_step)
            mode, reason = "cached", "the template of this migrations key was in the cache"
        else:
            reason = "no template yet" if tmpl_comment is None else "migrations, schema or seed changed"
            on_step(f"re-creating {db}: {reason}; running migrations and seed")
            from devenv.db import template_cache

            template_cache.park(conn, db, project.config.reset.keep, project.state_dir)  # kept for a switch back
            templates.recreate(conn, db, settings.pg_user, None)
            if ctx.stack.migrates:
                migrate_and_seed(ctx.runtime, project.config.migrate.command, ctx.seed_command)
            elif ctx.stack.server_on_host and ctx.prisma.schema is not None:  # server.mode = host: from the host
                migrate_on_host(ctx, ctx.seed_command)
            # else nothing migrates this database: the template is the empty database
            templates.take_template(conn, db, key, project.state_dir)
            marks.mark_seeded(conn, db)
            mode, from_spare = "remigrated", False
    templates.start_spare(ctx, key)
    flushed = ep.redis_port is not None
    if flushed:
        try:
            ctx.redis.flush()
        except DevenvError as ex:
            raise DevenvError(
                f"the database was reset, but flushing Redis failed: {ex.message}", "check `devenv status`."
            ) from ex
    return ResetResult(
        mode=mode,
        database=db,
        template=tmpl,
        key=key,
        seconds=round(time.perf_counter() - t0, 3),
        redis_flushed=flushed,
        reason=reason,
        from_spare=from_spare,
    )
