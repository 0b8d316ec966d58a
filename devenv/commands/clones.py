"""A clone per test worker: N copies of the reset template (`<db>_w1…N`), made in parallel, dropped afterwards.

Test runners run files in parallel workers; workers that share one database step on each other's rows. Each worker
gets its own copy of the migrated, seeded template instead: `devenv db clones N` makes them (and prints their URLs),
`devenv run --workers N -- CMD` makes them in a CI stack, exports DATABASE_URL_1…N and DEVENV_WORKERS=N to CMD and
drops them when CMD is done (also when it fails). Each clone carries devenv's clone mark (devenv.db.marks); devenv drops
only marked clones and refuses a database of that name without the mark. The copies run in parallel, one session
each: Postgres copies several databases from one template at once (the template takes no connections).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from devenv.clients.pgwire import Connection
from devenv.clients.pgwire import quote_ident as ident
from devenv.clients.pgwire import quote_literal as lit
from devenv.core.errors import NotOurDatabase, StackNotRunning, UsageError
from devenv.db import marks
from devenv.project.context import Context

APPLICATION_NAME = "devenv-clones"
MAX_WORKERS = 64  # each clone is a whole database; more than this is a typo


@dataclass(frozen=True)
class Clone:
    """One worker's database."""

    worker: int
    database: str
    url: str  # with the password: it is exported to the tests
    masked_url: str


@dataclass(frozen=True)
class ClonesResult:
    """What `devenv db clones N` made (and dropped: the clones of an earlier run)."""

    database: str
    template: str
    key: str
    clones: tuple[Clone, ...]
    dropped: tuple[str, ...]
    seconds: float
    strategy: str = ""  # how Postgres copied (WAL_LOG / FILE_COPY; "" when Postgres chose)

    def variables(self) -> dict[str, str]:
        """DATABASE_URL_1…N and DEVENV_WORKERS=N, as `run --workers` exports them."""
        found = {f"DATABASE_URL_{c.worker}": c.url for c in self.clones}
        return {**found, "DEVENV_WORKERS": str(len(self.clones))}


def check_count(count: int) -> int:
    """Refuse a worker count devenv cannot mean."""
    if not 0 <= count <= MAX_WORKERS:
        raise UsageError(
            f"{count} workers: devenv makes between 0 and {MAX_WORKERS} clones.",
            "pass the number of test workers, e.g. `devenv db clones 4` (0 drops them).",
        )
    return count


def existing(conn: Connection) -> dict[str, str]:
    """devenv's clones on this cluster: name -> mark."""
    rows = conn.execute(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
        f"WHERE shobj_description(oid, 'pg_database') LIKE {lit(marks.CLONE_MARK + '%')}"
    )
    return {str(name): str(mark) for name, mark in rows}


def _drop(conn: Connection, names: Iterable[str]) -> list[str]:
    dropped = []
    for name in sorted(names):
        conn.execute(f"DROP DATABASE IF EXISTS {ident(name)} WITH (FORCE)")
        dropped.append(name)
    return dropped


def make_clones(ctx: Context, count: int) -> ClonesResult:
    """Drop devenv's earlier clones, then copy the template COUNT times in parallel (`<db>_w1…COUNT`)."""
    from devenv.db.copies import create_copy, server_version, source_size, strategy_for
    from devenv.db.templates import stack_session

    t0 = time.perf_counter()
    check_count(count)
    settings = ctx.settings
    db, key = settings.pg_db, ctx.migrations_key
    tmpl = marks.template_name(db)
    names = [marks.clone_name(db, i) for i in range(1, count + 1)]
    with stack_session(ctx, "makes clones of", APPLICATION_NAME) as (live, conn):
        _, tmpl_mark = conn.database(tmpl) or ("", None)
        if count and tmpl_mark is None:
            raise StackNotRunning(
                f"there is no template {tmpl!r} to clone yet.", "`devenv up` migrates, seeds and takes it."
            )
        if count and tmpl_mark != marks.template_mark(key):
            raise UsageError(
                f"the template {tmpl!r} is from other migrations, schema or seed than this checkout's.",
                "`devenv reset` migrates and seeds anew and takes a new template; then make the clones.",
            )
        ours = existing(conn)
        for name in names:
            found = conn.database(name)
            if found is not None and name not in ours:
                raise NotOurDatabase(
                    f"the database {name!r} exists and is not one of devenv's clones (no clone mark); devenv "
                    "never drops it.",
                    "rename that database (ALTER DATABASE … RENAME TO …) or use another POSTGRES_DB.",
                )
        dropped = _drop(conn, ours)
        strategy = strategy_for(source_size(conn, tmpl), server_version(conn)) if count else None
        ep = live.endpoints
        assert ep.postgres_port is not None

        def copy(worker: int) -> None:
            name = names[worker - 1]
            with live.postgres.session(
                marks.maintenance_db(db), what=f"the clone {name}", application_name=APPLICATION_NAME, io_timeout=600
            ) as session:
                create_copy(session, name, tmpl, settings.pg_user, strategy=strategy)
                session.execute(f"COMMENT ON DATABASE {ident(name)} IS {lit(marks.clone_mark(key, worker))}")

        try:
            if count:
                with ThreadPoolExecutor(max_workers=count, thread_name_prefix="clone") as pool:
                    for future in [pool.submit(copy, i) for i in range(1, count + 1)]:
                        future.result()
        except BaseException:
            _drop(conn, [n for n in names if conn.database(n) is not None])  # all of them, or none
            raise
    clones = tuple(
        Clone(
            worker=i,
            database=name,
            url=replace(settings, pg_db=name).database_url(ep.host, ep.postgres_port),
            masked_url=replace(settings, pg_db=name).database_url(ep.host, ep.postgres_port, masked=True),
        )
        for i, name in enumerate(names, start=1)
    )
    return ClonesResult(
        database=db,
        template=tmpl,
        key=key,
        clones=clones,
        dropped=tuple(n for n in dropped if n not in names),
        seconds=round(time.perf_counter() - t0, 3),
        strategy=strategy or "",
    )


def drop_clones(ctx: Context) -> list[str]:
    """Drop every clone devenv made on this stack (the ones `run --workers` made, once CMD is done)."""
    from devenv.db.templates import stack_session

    with stack_session(ctx, "drops the clones of", APPLICATION_NAME) as (_, conn):
        return _drop(conn, existing(conn))
