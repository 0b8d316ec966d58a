"""The template machinery every database command shares: the checks before touching the stack's Postgres (this
checkout's stack, DATABASE_URL naming it, the cluster mark), dropping and re-creating the app database, taking the
template, swapping a ready copy in, and the spare copies made in the background (devenv.db.spare).

Safety: devenv only ever touches the app database, its template and its spare, only on the stack's own Postgres
(the cluster carries devenv's mark), and only when DATABASE_URL in .env points at that Postgres.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from devenv.clients.pgwire import Connection, PgError
from devenv.clients.pgwire import quote_ident as ident
from devenv.clients.pgwire import quote_literal as lit
from devenv.core.errors import NotOurDatabase
from devenv.db import marks
from devenv.engine.target import is_loopback
from devenv.project.context import Context
from devenv.stack import checkouts

OBJECT_IN_USE = "55006"  # SQLSTATE: "source database ... is being accessed by other users"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
APPLICATION_NAME = "devenv-reset"


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
    from devenv.core.wait import poll_until

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
        from devenv.db.copies import create_copy

        create_copy(conn, db, template, owner)
        return
    # Empty: from template1 as CREATE DATABASE does, unless this session is on template1 (then template0).
    template = template or ("template0" if marks.maintenance_db(db) == "template1" else None)
    source = f" TEMPLATE {ident(template)}" if template else ""
    conn.execute(f"CREATE DATABASE {ident(db)}{source} OWNER {ident(owner)}")


def _swap_in(conn: Connection, db: str, spare_name: str) -> None:
    """Rename the spare into DB's place; the old DB goes to the trash, which the next spare's job drops.

    Dropping a database costs time in proportion to its size (its files are unlinked and DROP DATABASE forces a
    checkpoint), so it is done after the reset, in the background job that makes the next
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


def restore(
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
        from devenv.db import spare

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
    from devenv.db import spare

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
    from devenv.core.wait import retry_while
    from devenv.db import spare

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
        from devenv.db.copies import create_copy

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


def from_cache(ctx: Context, conn: Connection, key: str) -> tuple[str, str] | None:
    """KEY's template brought back from the template cache (name, oid), or None (devenv.db.template_cache)."""
    from devenv.db import template_cache

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
