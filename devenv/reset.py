"""`devenv reset`: restore the app database from a template copy taken right after migrate + seed.

Postgres clones a database from a template in tens of milliseconds, and a spare copy of the template kept ready
(devenv.spare) turns even that into a rename, so a soft reset costs about as much as starting the CLI. The template
is tagged with the migrations key (devenv.marks); when the key no longer matches, reset migrates and seeds a fresh
database and takes a new template. `reset --hard` (new volumes) belongs to devenv.lifecycle.

Safety: devenv only ever touches the app database, its template and its spare, only on the stack's own Postgres
(the cluster carries devenv's mark), and only when DATABASE_URL in .env points at that Postgres.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from devenv import checkouts, marks
from devenv.context import Context
from devenv.engine import is_loopback
from devenv.errors import DevenvError, NotOurDatabase
from devenv.pgwire import Connection, PgError
from devenv.pgwire import quote_ident as ident
from devenv.pgwire import quote_literal as lit

OBJECT_IN_USE = "55006"  # SQLSTATE: "source database ... is being accessed by other users"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
APPLICATION_NAME = "devenv-reset"


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


def check_database_url(ctx: Context, host: str, port: int) -> None:
    """Refuse unless DATABASE_URL in .env names this stack's Postgres (HOST:PORT) and its app database."""
    current = ctx.files.current
    url = current.values().get("DATABASE_URL", "") if current else ""
    if not url:
        return
    project, db = ctx.project, ctx.settings.pg_db
    parsed = urlparse(url)
    url_host = parsed.hostname or ""
    url_port = parsed.port or 5432
    if not is_loopback(host) and is_loopback(url_host):
        raise NotOurDatabase(
            f"DATABASE_URL in {project.env_file} points at {url_host}:{url_port}, this machine's own loopback, but "
            f"the stack's Postgres runs on the remote Docker Engine at {host}:{port}; devenv resets only its own "
            "database.",
            "point DATABASE_URL at the stack (delete the line and run `devenv env`: devenv writes the engine's "
            f"host, {host}), or reset that local database with its own tools.",
        )
    here = LOCAL_HOSTS if is_loopback(host) else set()
    if url_host not in here | {host} or url_port != port:
        raise NotOurDatabase(
            f"DATABASE_URL in {project.env_file} points at {url_host}:{url_port}, not this stack's Postgres "
            f"({host}:{port}); devenv resets only its own database.",
            "point DATABASE_URL at the stack (delete the line and run `devenv env`), or reset that database "
            "with its own tools.",
        )
    named = unquote(parsed.path.lstrip("/")) or db
    if named != db:
        raise NotOurDatabase(
            f"DATABASE_URL in {project.env_file} names database {named!r}, but the stack's is {db!r}.",
            "make POSTGRES_DB and DATABASE_URL agree in .env.",
        )


def _others_connected(conn: Connection, db: str) -> bool:
    return bool(
        conn.execute(f"SELECT 1 FROM pg_stat_activity WHERE datname = {lit(db)} AND pid <> pg_backend_pid() LIMIT 1")
    )


def end_connections(conn: Connection, db: str) -> None:
    """Terminate every other session on DB and wait (polling every 2 ms, up to 5 s) until they are gone.

    DROP DATABASE ... WITH (FORCE) and pg_terminate_backend(pid, timeout) do this too, but poll in 100 ms steps:
    a reset while the server holds a pooled connection would spend most of its time asleep.
    """
    from devenv.wait import poll_until

    conn.execute(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {lit(db)} AND pid <> pg_backend_pid()"
    )
    # Still there after 5 s: DROP ... WITH (FORCE) reports it.
    poll_until(lambda: not _others_connected(conn, db), timeout=5, interval=0.002)


def _drop(conn: Connection, db: str) -> None:
    if conn.database(db) is not None:
        # New connections are refused first, so the server's pool cannot slip back in between FORCE and CREATE.
        conn.execute(f"ALTER DATABASE {ident(db)} WITH ALLOW_CONNECTIONS false")
        try:
            end_connections(conn, db)
            conn.execute(f"DROP DATABASE {ident(db)} WITH (FORCE)")
        except PgError:
            with contextlib.suppress(PgError, OSError):  # leave it as it was: open to the app
                conn.execute(f"ALTER DATABASE {ident(db)} WITH ALLOW_CONNECTIONS true")
            raise


def recreate(conn: Connection, db: str, owner: str, template: str | None) -> None:
    """Drop DB (ending its sessions) and create it anew, empty or as a copy of TEMPLATE."""
    _drop(conn, db)
    if template:
        from devenv.copies import create_copy

        create_copy(conn, db, template, owner)
        return
    # Empty: from template1 as CREATE DATABASE does, unless this session is on template1 (then template0).
    template = template or ("template0" if marks.maintenance_db(db) == "template1" else None)
    source = f" TEMPLATE {ident(template)}" if template else ""
    conn.execute(f"CREATE DATABASE {ident(db)}{source} OWNER {ident(owner)}")


def _swap_in(conn: Connection, db: str, spare_name: str) -> None:
    """Rename the spare into DB's place; the old DB goes to the trash, which the next spare's job drops.

    Dropping a database costs time in proportion to its size (its files are unlinked and DROP DATABASE forces a
    checkpoint: about 1 s for 1 GB here), so it is done after the reset, in the background job that makes the next
    spare. One message, one transaction: the copy is in place, open and marked seeded, or nothing changed.
    """
    trash = marks.trash_name(db)
    if conn.database(trash) is not None:  # the last job did not get to it
        conn.execute(f"DROP DATABASE {ident(trash)} WITH (FORCE)")
    present = conn.database(db) is not None
    if present:
        conn.execute(f"ALTER DATABASE {ident(db)} WITH ALLOW_CONNECTIONS false")
    try:
        if present:
            end_connections(conn, db)
        conn.execute(
            (f"ALTER DATABASE {ident(db)} RENAME TO {ident(trash)}; " if present else "")
            + f"ALTER DATABASE {ident(spare_name)} RENAME TO {ident(db)}; "
            f"ALTER DATABASE {ident(db)} WITH ALLOW_CONNECTIONS true; "
            f"COMMENT ON DATABASE {ident(db)} IS {lit(marks.SEEDED_MARK)}"
        )
    except PgError:
        if present:
            with contextlib.suppress(PgError, OSError):  # leave it as it was: open to the app
                conn.execute(f"ALTER DATABASE {ident(db)} WITH ALLOW_CONNECTIONS true")
        raise


def _restore(
    conn: Connection,
    db: str,
    owner: str,
    template: tuple[str, str],
    key: str,
    spares: Path | None,
    on_step: Callable[[str], None],
) -> bool:
    """Put a fresh copy of TEMPLATE (name, oid) in place of DB, marked seeded: the spare when one of this very
    template is ready (True), else a copy made now."""
    tmpl, tmpl_oid = template
    if spares is not None:
        from devenv import spare

        # One being made now is done sooner than a copy started now.
        spare.wait(spares, on_wait=lambda: on_step("waiting for the ready copy the last reset started"))
        name = marks.spare_name(db)
        found = conn.database(name)
        if found and found[1] == marks.spare_mark(key, tmpl_oid):
            _swap_in(conn, db, name)
            return True
        if found:  # unfinished, or made from an older template
            conn.execute(f"DROP DATABASE {ident(name)} WITH (FORCE)")
    recreate(conn, db, owner, tmpl)
    marks.mark_seeded(conn, db)
    return False


def start_spare(ctx: Context, key: str) -> bool:
    """Make the next reset's spare in the background (when [reset] spare is on); False when none was started.

    A CI stack is thrown away after its tests: a spare would only cost it CPU.
    """
    db = ctx.settings.pg_db
    return start_copy(ctx, marks.spare_name(db), marks.template_name(db), marks.template_mark(key), key, lock="spare")


def start_copy(ctx: Context, copy: str, template: str, template_mark: str, key: str, *, lock: str) -> bool:
    """Make COPY of TEMPLATE in the background under LOCK (the reset's spare, a snapshot's ready copy), and drop
    what the last swap put in the trash; False when none was started ([reset] spare off, a CI stack)."""
    project, settings, ep = ctx.project, ctx.settings, ctx.endpoints
    if not project.config.reset.spare or project.ci or ep.postgres_port is None:
        return False
    from devenv import spare

    job = {
        "host": ep.host,
        "port": ep.postgres_port,
        "user": settings.pg_user,
        "password": settings.pg_password,
        "spare": copy,
        "trash": marks.trash_name(settings.pg_db),
        "template": template,
        "template_mark": template_mark,
        "key": key,
        "maintenance_db": marks.maintenance_db(settings.pg_db),
    }
    return spare.start(project.state_dir, job, lock=lock)


def take_template(conn: Connection, db: str, key: str, state_dir: Path) -> None:
    """Copy DB into its template (closing DB's connections for the copy) and tag it with KEY; drop the old spare."""
    from devenv import spare
    from devenv.wait import retry_while

    tmpl = marks.template_name(db)
    spare.wait(state_dir, timeout=60)
    # One still copying the old template after that: stop it (its CREATE DATABASE then leaves nothing behind).
    conn.execute(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = {lit(spare.APPLICATION_NAME)}"
    )
    conn.execute(f"DROP DATABASE IF EXISTS {ident(marks.spare_name(db))} WITH (FORCE)")
    conn.execute(f"DROP DATABASE IF EXISTS {ident(tmpl)} WITH (FORCE)")
    conn.execute(f"ALTER DATABASE {ident(db)} WITH ALLOW_CONNECTIONS false")
    try:
        end_connections(conn, db)
        # A backend can still be on its way out: retry while Postgres says the source is in use.
        from devenv.copies import create_copy

        retry_while(
            lambda: create_copy(conn, tmpl, db),
            lambda ex: isinstance(ex, PgError) and ex.sqlstate == OBJECT_IN_USE,
            timeout=5,
            interval=0.02,
        )
    finally:
        conn.execute(f"ALTER DATABASE {ident(db)} WITH ALLOW_CONNECTIONS true")
    conn.execute(f"ALTER DATABASE {ident(tmpl)} WITH ALLOW_CONNECTIONS false")
    conn.execute(f"COMMENT ON DATABASE {ident(tmpl)} IS {lit(marks.template_mark(key))}")


def soft_reset(ctx: Context, on_step: Callable[[str], None] = lambda s: None) -> ResetResult:
    """Restore the app database from its template (or re-migrate + re-template when the key changed)."""
    from devenv.migrate import migrate_and_seed, migrate_on_host

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
    check_database_url(ctx, ep.host, ep.postgres_port)
    db, key = settings.pg_db, ctx.migrations_key
    tmpl = marks.template_name(db)

    maintenance = marks.maintenance_db(db)
    with postgres.session(maintenance, what="the reset", application_name=APPLICATION_NAME) as conn:
        marks.verify_cluster(
            conn, project.name, project.checkout, f"{ep.host}:{ep.postgres_port}", db, ctx.runtime.machine[0]
        )
        tmpl_oid, tmpl_comment = conn.database(tmpl) or ("", None)
        if tmpl_comment == marks.template_mark(key):
            spares = project.state_dir if project.config.reset.spare else None
            from_spare = _restore(conn, db, settings.pg_user, (tmpl, tmpl_oid), key, spares, on_step)
            mode, reason = "template", ""
        elif (back := _from_cache(ctx, conn, key)) is not None:
            spares = project.state_dir if project.config.reset.spare else None
            from_spare = _restore(conn, db, settings.pg_user, back, key, spares, on_step)
            mode, reason = "cached", "the template of this migrations key was in the cache"
        else:
            reason = "no template yet" if tmpl_comment is None else "migrations, schema or seed changed"
            on_step(f"re-creating {db}: {reason}; running migrations and seed")
            from devenv import template_cache

            template_cache.park(conn, db, project.config.reset.keep, project.state_dir)  # kept for a switch back
            recreate(conn, db, settings.pg_user, None)
            if ctx.stack.migrates:
                migrate_and_seed(ctx.runtime, project.config.migrate.command, ctx.seed_command)
            elif ctx.stack.host and ctx.prisma.schema is not None:  # server.mode = host: from the host
                migrate_on_host(ctx, ctx.seed_command)
            # else nothing migrates this database: the template is the empty database
            take_template(conn, db, key, project.state_dir)
            marks.mark_seeded(conn, db)
            mode, from_spare = "remigrated", False
    start_spare(ctx, key)
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


def _from_cache(ctx: Context, conn: Connection, key: str) -> tuple[str, str] | None:
    """KEY's template brought back from the template cache (name, oid), or None (devenv.template_cache)."""
    from devenv import template_cache

    project = ctx.project
    return template_cache.bring_back(conn, ctx.settings.pg_db, key, project.config.reset.keep, project.state_dir)


@contextlib.contextmanager
def stack_session(
    ctx: Context, action: str, application_name: str, what: str = ""
) -> Iterator[tuple[Context, Connection]]:
    """A session on the stack's own Postgres (its maintenance database) after the checks every database command
    makes first: this checkout's stack (ACTION names what is refused), DATABASE_URL naming it, the cluster mark.
    WHAT names the step in the session's errors (default: ACTION).

    Yields the context with the ports as published, and the session.
    """
    project = ctx.project
    states = ctx.runtime.containers(detail=False)
    if not project.ci:
        machine = ctx.runtime.machine[0]
        other = checkouts.foreign_owner([s.labels for s in states], project.root, machine=machine)
        if other is not None:
            raise checkouts.refusal(project.name, other, project.root, action, machine=machine)
    ctx = ctx.with_states(states)
    postgres = ctx.postgres  # StackNotRunning when it is not published
    ep = ctx.endpoints
    assert ep.postgres_port is not None
    if not project.ci:  # a CI stack's .env is the checkout's, which points at the developer's stack
        check_database_url(ctx, ep.host, ep.postgres_port)
    db = ctx.settings.pg_db
    with postgres.session(marks.maintenance_db(db), what=what or action, application_name=application_name) as conn:
        marks.verify_cluster(
            conn, project.name, project.checkout, f"{ep.host}:{ep.postgres_port}", db, ctx.runtime.machine[0]
        )
        yield ctx, conn
