"""Named snapshots of the app database (`devenv db snapshot|restore|list|rm`) and the swap that puts a database in
place of the app's without ever leaving it missing.

A snapshot is a template database inside the stack's own Postgres (`<db>__devenv_snap_<NAME>`, marked with its name,
the migrations key and when it was taken; nobody can connect to it). Restore goes the way of the soft reset
(devenv.commands.reset): a ready copy of the snapshot, made in the background after `snapshot` and after each restore
(as the
reset spare is, `[reset] spare`), is renamed into place, and the app's Redis db is flushed. The swap renames the app
database out and the new one in within one transaction, then drops the old one: when a step fails, the app
database is still there as it was.

Everything here runs only after the cluster mark says this Postgres is this checkout's stack (marks.verify_cluster)
and DATABASE_URL points at it; nothing outside the stack's own Postgres is touched.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from devenv.clients.pgwire import Connection, PgError
from devenv.clients.pgwire import quote_ident as ident
from devenv.clients.pgwire import quote_literal as lit
from devenv.core.errors import DevenvError, SnapshotExists, SnapshotNotFound, StackNotRunning, UsageError
from devenv.db import marks
from devenv.project.context import Context

APPLICATION_NAME = "devenv-db"


@dataclass(frozen=True)
class Snapshot:
    """One snapshot as its mark says: NAME, the database holding it, the migrations key it was taken at, when."""

    name: str
    database: str
    oid: str
    key: str
    created: int


@dataclass(frozen=True)
class DbEntry:
    """One line of `devenv db list`."""

    kind: str  # snapshot | template (the current key's reset template) | cached (an earlier key's)
    name: str  # the snapshot's name; for templates the migrations key
    database: str
    key: str
    size: int | None  # bytes
    time: int | None  # Unix seconds: taken (snapshot), last the current one (cached), made (template, when known)
    current: bool  # taken at, or made for, the project's current migrations key


@dataclass(frozen=True)
class DbListing:
    """`devenv db list`: the app database, the current migrations key and what is kept for it."""

    database: str
    key: str
    entries: tuple[DbEntry, ...]
    keep: int


@dataclass(frozen=True)
class DbResult:
    """What a `devenv db` command did to the app database."""

    action: str  # snapshot | restore | rm | load
    name: str  # the snapshot (or the file loaded)
    database: str
    seconds: float
    key: str = ""  # the snapshot's migrations key
    redis_flushed: bool = False
    from_ready: bool = False  # restore: the ready copy was renamed into place (no copy on the command's own time)
    notes: tuple[str, ...] = field(default_factory=tuple)


def validate_name(name: str) -> str:
    """NAME when it is a snapshot name; else a UsageError saying what one is."""
    if not marks.SNAPSHOT_NAME_RE.fullmatch(name):
        raise UsageError(
            f"{name!r} is not a snapshot name.",
            "use letters, digits, '.', '_' and '-' (a letter or digit first, up to 100), e.g. before-migration.",
        )
    return name


def default_name(now: float | None = None) -> str:
    """The name of a snapshot taken without one: its time, e.g. 20261202-043000."""
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now))


@contextmanager
def stack_session(ctx: Context, what: str) -> Iterator[tuple[Context, Connection]]:
    """reset.stack_session for the db commands: WHAT names the step in the session's errors."""
    from devenv.db.templates import stack_session as checked_session

    with checked_session(ctx, "changes the database of", APPLICATION_NAME, what) as (checked, conn):
        yield checked, conn


def _in_use(ex: BaseException) -> bool:
    from devenv.db.templates import OBJECT_IN_USE

    return isinstance(ex, PgError) and ex.sqlstate == OBJECT_IN_USE


def _patiently(conn: Connection, query: str) -> None:
    """QUERY, retried for up to 5 s while Postgres says a database in it is still in use (a backend on its way out)."""
    try:
        conn.execute(query)
    except PgError as ex:
        if not _in_use(ex):
            raise
        from devenv.core.wait import retry_while

        retry_while(lambda: conn.execute(query), _in_use, timeout=5, interval=0.02)


def copy_database(conn: Connection, source: str, target: str, owner: str) -> None:
    """TARGET as a copy of SOURCE (a live database: its sessions are ended for the copy and it is opened again)."""
    from devenv.db.templates import end_connections

    conn.execute(f"ALTER DATABASE {ident(source)} WITH ALLOW_CONNECTIONS false")
    try:
        end_connections(conn, source)
        _patiently(conn, f"CREATE DATABASE {ident(target)} TEMPLATE {ident(source)} OWNER {ident(owner)}")
    finally:
        conn.execute(f"ALTER DATABASE {ident(source)} WITH ALLOW_CONNECTIONS true")


def swap_in(conn: Connection, db: str, incoming: str, *, outgoing: str | None = None, drop: bool = True) -> None:
    """Put database INCOMING in place of DB, open and marked seeded; DB's old contents are renamed to OUTGOING
    (default `<db>__devenv_outgoing`) and, with DROP, dropped afterwards (else a background job drops them: the
    reset's trash, see devenv.commands.reset).

    The renames are one transaction: when it fails, DB is as it was (and open again), INCOMING is left for another
    try. Only the drop of the old contents comes after it.
    """
    from devenv.db.templates import end_connections

    outgoing = outgoing or marks.outgoing_name(db)
    conn.execute(f"DROP DATABASE IF EXISTS {ident(outgoing)} WITH (FORCE)")  # one a failed drop left behind
    open_it = (
        f"ALTER DATABASE {ident(incoming)} RENAME TO {ident(db)}; "
        f"ALTER DATABASE {ident(db)} WITH ALLOW_CONNECTIONS true; "
        f"COMMENT ON DATABASE {ident(db)} IS {lit(marks.SEEDED_MARK)}"
    )
    if conn.database(db) is None:
        conn.execute(open_it)
        return
    # New connections are refused first, so the server's pool cannot slip back in before the rename.
    conn.execute(f"ALTER DATABASE {ident(db)} WITH ALLOW_CONNECTIONS false")
    try:
        end_connections(conn, db)
        _patiently(conn, f"ALTER DATABASE {ident(db)} RENAME TO {ident(outgoing)}; {open_it}")
    except BaseException:
        with contextlib.suppress(PgError, OSError):  # leave it as it was: open to the app
            conn.execute(f"ALTER DATABASE {ident(db)} WITH ALLOW_CONNECTIONS true")
        raise
    if drop:
        conn.execute(f"DROP DATABASE {ident(outgoing)} WITH (FORCE)")


def snapshots(conn: Connection, db: str) -> list[Snapshot]:
    """The snapshots of app database DB, oldest first."""
    rows = conn.execute(
        "SELECT datname, oid, shobj_description(oid, 'pg_database') FROM pg_database "
        f"WHERE shobj_description(oid, 'pg_database') LIKE {lit(marks.SNAPSHOT_MARK + '%')}"
    )
    found = []
    for name, oid, comment in rows:
        parsed = marks.parse_snapshot_mark(comment)
        if parsed and name == marks.snapshot_name(db, parsed[0]):  # another app database's are not ours
            found.append(Snapshot(parsed[0], str(name), str(oid), parsed[1], parsed[2]))
    return sorted(found, key=lambda s: (s.created, s.name))


def find(conn: Connection, db: str, name: str) -> Snapshot:
    """Snapshot NAME of DB; SnapshotNotFound (naming the ones there are) when there is none."""
    database = marks.snapshot_name(db, validate_name(name))
    found = conn.database(database)
    parsed = marks.parse_snapshot_mark(found[1]) if found else None
    if found is None or parsed is None or parsed[0] != name:
        names = [s.name for s in snapshots(conn, db)]
        raise SnapshotNotFound(
            f"there is no snapshot {name!r} of {db!r}"
            + (f" (there are: {', '.join(names)})." if names else " (there is none)."),
            "`devenv db list` shows them; `devenv db snapshot NAME` takes one.",
        )
    return Snapshot(name, database, found[0], parsed[1], parsed[2])


def _ready_lock(name: str) -> str:
    return f"snapready-{name}"


def _start_ready_copy(ctx: Context, snap: Snapshot) -> bool:
    """Make the snapshot's ready copy in the background (as the reset spare is; not in CI or with spare = false);
    its job also drops what a restore replaced (the trash), off the restore's time."""
    from devenv.db.templates import start_copy

    ready = marks.snapshot_ready_name(ctx.settings.pg_db, snap.name)
    mark = marks.snapshot_mark(snap.name, snap.key, snap.created)
    return start_copy(ctx, ready, snap.database, mark, snap.key, lock=_ready_lock(snap.name))


def flush_redis(ctx: Context, what: str) -> bool:
    if ctx.endpoints.redis_port is None:
        return False
    try:
        ctx.redis.flush()
    except DevenvError as ex:
        raise DevenvError(f"{what}, but flushing Redis failed: {ex.message}", "check `devenv status`.") from ex
    return True


def take(ctx: Context, name: str | None) -> DbResult:
    """`devenv db snapshot [NAME]`: copy the app database into snapshot NAME (default: the time)."""
    t0 = time.perf_counter()
    name = validate_name(name) if name else default_name()
    with stack_session(ctx, "the snapshot") as (ctx, conn):
        db, key = ctx.settings.pg_db, ctx.migrations_key
        target = marks.snapshot_name(db, name)
        if conn.database(target) is not None:
            raise SnapshotExists(
                f"a snapshot {name!r} of {db!r} exists already.",
                "give this one another name (`devenv db list` lists the names in use); none is ever overwritten.",
            )
        if conn.database(db) is None:
            raise StackNotRunning(f"the app database {db!r} does not exist.", "`devenv up` creates it.")
        created = int(time.time())
        copy_database(conn, db, target, ctx.settings.pg_user)
        conn.execute(
            f"ALTER DATABASE {ident(target)} WITH ALLOW_CONNECTIONS false; "
            f"COMMENT ON DATABASE {ident(target)} IS {lit(marks.snapshot_mark(name, key, created))}"
        )
        snap = Snapshot(name, target, "", key, created)
    _start_ready_copy(ctx, snap)
    return DbResult("snapshot", name, db, round(time.perf_counter() - t0, 3), key=key)


def restore(ctx: Context, name: str, on_step: Callable[[str], None] = lambda s: None) -> DbResult:
    """`devenv db restore NAME`: the app database becomes a copy of snapshot NAME; the app's Redis db is flushed."""
    from devenv.db import spare

    t0 = time.perf_counter()
    with stack_session(ctx, "the restore") as (ctx, conn):
        db, project = ctx.settings.pg_db, ctx.project
        snap = find(conn, db, name)
        ready = marks.snapshot_ready_name(db, name)
        spare.wait(
            project.state_dir,
            on_wait=lambda: on_step(f"waiting for the ready copy of {name!r} being made"),
            lock=_ready_lock(name),
        )
        found = conn.database(ready)
        from_ready = found is not None and found[1] == marks.spare_mark(snap.key, snap.oid)
        if from_ready:
            incoming = ready
        else:
            if found is not None:  # unfinished, or of an older snapshot of that name
                conn.execute(f"DROP DATABASE {ident(ready)} WITH (FORCE)")
            incoming = marks.incoming_name(db)
            conn.execute(f"DROP DATABASE IF EXISTS {ident(incoming)} WITH (FORCE)")
            conn.execute(
                f"CREATE DATABASE {ident(incoming)} TEMPLATE {ident(snap.database)} OWNER {ident(ctx.settings.pg_user)}"
            )
        job_follows = project.config.reset.spare and not project.ci  # it drops the old contents (the trash)
        swap_in(conn, db, incoming, outgoing=marks.trash_name(db), drop=not job_follows)
    _start_ready_copy(ctx, snap)
    flushed = flush_redis(ctx, f"{db} was restored from {name!r}")
    notes: tuple[str, ...] = ()
    if snap.key != ctx.migrations_key:
        notes = (
            f"the snapshot was taken at another migrations key ({snap.key}; now {ctx.migrations_key}): "
            "`devenv migrate` applies the migrations it lacks.",
        )
    return DbResult(
        "restore",
        name,
        db,
        round(time.perf_counter() - t0, 3),
        key=snap.key,
        redis_flushed=flushed,
        from_ready=from_ready,
        notes=notes,
    )


def remove(ctx: Context, name: str) -> DbResult:
    """`devenv db rm NAME`: drop snapshot NAME and its ready copy."""
    from devenv.db import spare

    t0 = time.perf_counter()
    with stack_session(ctx, "removing the snapshot") as (ctx, conn):
        db = ctx.settings.pg_db
        snap = find(conn, db, name)
        spare.wait(ctx.project.state_dir, timeout=60, lock=_ready_lock(name))
        conn.execute(f"DROP DATABASE IF EXISTS {ident(marks.snapshot_ready_name(db, name))} WITH (FORCE)")
        conn.execute(f"DROP DATABASE {ident(snap.database)} WITH (FORCE)")
    return DbResult("rm", name, db, round(time.perf_counter() - t0, 3), key=snap.key)


def listing(ctx: Context) -> DbListing:
    """`devenv db list`: the snapshots, the current template and the cached ones, with size, time and key."""
    from devenv.db import template_cache

    with stack_session(ctx, "the listing") as (ctx, conn):
        db, key = ctx.settings.pg_db, ctx.migrations_key
        sizes = _sizes(conn)

        def entry(kind: str, name: str, database: str, of_key: str, when: int | None) -> DbEntry:
            size, made = sizes.get(database, (None, None))
            return DbEntry(kind, name, database, of_key, size, when if when is not None else made, of_key == key)

        entries = [entry("snapshot", s.name, s.database, s.key, s.created) for s in snapshots(conn, db)]
        tmpl = marks.template_name(db)
        found = conn.database(tmpl)
        current_key = marks.template_key(found[1]) if found else None
        if current_key is not None:
            entries.append(entry("template", current_key, tmpl, current_key, None))
        entries += [entry("cached", c.key, c.database, c.key, c.used) for c in template_cache.cached(conn, db)]
    return DbListing(db, key, tuple(entries), ctx.project.config.reset.keep)


def _sizes(conn: Connection) -> dict[str, tuple[int | None, int | None]]:
    """Every devenv database's size in bytes and, when Postgres lets the app user read it, when it was made (its
    PG_VERSION file's time)."""
    where = "WHERE datname LIKE '%devenv%'"
    try:
        rows = conn.execute(
            "SELECT datname, pg_database_size(oid), "
            "extract(epoch FROM (pg_stat_file('base/' || oid || '/PG_VERSION', true)).modification)::bigint "
            f"FROM pg_database {where}"
        )
    except PgError:  # not a superuser (pg_stat_file): sizes only
        rows = [(*r, None) for r in conn.execute(f"SELECT datname, pg_database_size(oid) FROM pg_database {where}")]
    return {str(n): (int(s) if s is not None else None, int(m) if m is not None else None) for n, s, m in rows}
