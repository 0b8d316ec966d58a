"""The template cache: the reset templates of the last migrations keys, so switching branches back and forth and
resetting does not migrate and seed again a key that was seen before (`[reset] keep`, default 4).

The current key's template is `<db>__devenv_template` (devenv.reset); when the key changes, that template is not
dropped but renamed to `<db>__devenv_cache_<KEY>` with a cached mark saying when it was last the current one. A reset
whose key is in the cache renames it back (one transaction, no copy) and restores from it. `keep` counts the
current template too; beyond it the least recently used cached templates are dropped (they are derived data: the
migrations and the seed make them again).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from devenv import marks
from devenv.pgwire import Connection
from devenv.pgwire import quote_ident as ident
from devenv.pgwire import quote_literal as lit


@dataclass(frozen=True)
class Cached:
    """One cached template: its database, its migrations key and when it was last the current one."""

    database: str
    key: str
    used: int


def cached(conn: Connection, db: str) -> list[Cached]:
    """The cached templates of app database DB, most recently used first."""
    rows = conn.execute(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
        f"WHERE shobj_description(oid, 'pg_database') LIKE {lit(marks.CACHED_MARK + '%')}"
    )
    found = []
    for name, comment in rows:
        parsed = marks.parse_cached_mark(comment)
        if parsed and name == marks.cached_template_name(db, parsed[0]):  # another app database's are not ours
            found.append(Cached(str(name), parsed[0], parsed[1]))
    return sorted(found, key=lambda c: (-c.used, c.database))


def to_evict(entries: Sequence[Cached], keep: int) -> list[Cached]:
    """What goes when KEEP templates are kept in all: the current one and the KEEP - 1 most recently used others."""
    ranked = sorted(entries, key=lambda c: (-c.used, c.database))
    return ranked[max(keep - 1, 0) :]


def stop_spare(conn: Connection, db: str, state_dir: Path) -> None:
    """Wait for (then stop) a copy of the current template under way and drop the spare: it is of that template."""
    from devenv import spare

    spare.wait(state_dir, timeout=60)
    conn.execute(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = {lit(spare.APPLICATION_NAME)}"
        " AND pid <> pg_backend_pid()"
    )
    conn.execute(f"DROP DATABASE IF EXISTS {ident(marks.spare_name(db))} WITH (FORCE)")


def _park_statements(conn: Connection, db: str, now: int) -> str:
    """The statements that move the current template into the cache ('' when there is none to keep)."""
    tmpl = marks.template_name(db)
    found = conn.database(tmpl)
    if found is None:
        return ""
    key = marks.template_key(found[1])
    if key is None:  # not a finished template: nothing worth keeping
        conn.execute(f"DROP DATABASE {ident(tmpl)} WITH (FORCE)")
        return ""
    target = marks.cached_template_name(db, key)
    conn.execute(f"DROP DATABASE IF EXISTS {ident(target)} WITH (FORCE)")  # DROP cannot be in the transaction
    return f"ALTER DATABASE {ident(tmpl)} RENAME TO {ident(target)}; COMMENT ON DATABASE {ident(target)} IS " + lit(
        marks.cached_mark(key, now)
    )


def evict(conn: Connection, db: str, keep: int) -> list[str]:
    """Drop the cached templates beyond KEEP (least recently used first); their keys."""
    gone = to_evict(cached(conn, db), keep)
    for entry in gone:
        conn.execute(f"DROP DATABASE IF EXISTS {ident(entry.database)} WITH (FORCE)")
    return [entry.key for entry in gone]


def park(conn: Connection, db: str, keep: int, state_dir: Path) -> list[str]:
    """Move the current template into the cache (the migrations key changed), then evict beyond KEEP; the evicted
    keys."""
    stop_spare(conn, db, state_dir)
    statements = _park_statements(conn, db, int(time.time()))
    if statements:
        conn.execute(statements)
    return evict(conn, db, keep)


def bring_back(conn: Connection, db: str, key: str, keep: int, state_dir: Path) -> tuple[str, str] | None:
    """When KEY's template is cached: make it the current template again (the current one goes into the cache, in
    the same transaction) and return it (name, oid); None when KEY is not cached."""
    source = marks.cached_template_name(db, key)
    found = conn.database(source)
    if found is None or (marks.parse_cached_mark(found[1]) or ("",))[0] != key:
        return None
    stop_spare(conn, db, state_dir)
    tmpl = marks.template_name(db)
    park_now = _park_statements(conn, db, int(time.time()))
    conn.execute(
        (park_now + "; " if park_now else "")
        + f"ALTER DATABASE {ident(source)} RENAME TO {ident(tmpl)}; "
        + f"COMMENT ON DATABASE {ident(tmpl)} IS {lit(marks.template_mark(key))}"
    )
    evict(conn, db, keep)
    current = conn.database(tmpl)
    assert current is not None
    return tmpl, current[0]
