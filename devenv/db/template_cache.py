"""The template cache: the reset templates of the last migrations keys, so switching branches back and forth and
resetting does not migrate and seed again a key that was seen before (`[reset] keep`, default 4).

The current key's template is `<db>__devenv_template` (devenv.commands.reset); when the key changes, that template is
not
dropped but renamed to `<db>__devenv_cache_<KEY>` with a cached mark saying when it was last the current one. A
reset whose key is in the cache renames it back (one transaction, no copy) and restores from it; the template's
spare goes into the cache with it (`<db>__devenv_cacheready_<KEY>`) and comes back as the spare, so that reset only
renames, as a soft reset does. `keep` counts the current template too; beyond it the least recently used cached
templates are dropped (they are derived data: the migrations and the seed make them again).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from devenv.clients.pgwire import Connection
from devenv.clients.pgwire import quote_ident as ident
from devenv.clients.pgwire import quote_literal as lit
from devenv.db import marks


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
    """Stop a copy of the current template under way (the template is about to change); a snapshot's ready copy
    (devenv.commands.snapshots) goes on."""
    from devenv.db import spare

    conn.execute(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = {lit(spare.APPLICATION_NAME)}"
        f" AND pid <> pg_backend_pid() AND position({lit(ident(marks.spare_name(db)))} in query) > 0"
    )
    spare.wait(state_dir, timeout=60)  # a copy not yet at its CREATE DATABASE: it finds the template changed


def _park_statements(conn: Connection, db: str, now: int) -> str:
    """The statements that move the current template, and its finished spare, into the cache ('' when there is no
    template to keep). A spare that is not the template's finished copy is dropped."""
    tmpl, spare = marks.template_name(db), marks.spare_name(db)
    found = conn.database(tmpl)
    spare_found = conn.database(spare)
    key = marks.template_key(found[1]) if found else None
    keeps_spare = bool(found and key and spare_found and spare_found[1] == marks.spare_mark(key, found[0]))
    if spare_found is not None and not keeps_spare:
        conn.execute(f"DROP DATABASE {ident(spare)} WITH (FORCE)")
    if found is None:
        return ""
    if key is None:  # not a finished template: nothing worth keeping
        conn.execute(f"DROP DATABASE {ident(tmpl)} WITH (FORCE)")
        return ""
    target, ready = marks.cached_template_name(db, key), marks.cached_ready_name(db, key)
    for name in (target, ready):  # DROP cannot be in the transaction
        conn.execute(f"DROP DATABASE IF EXISTS {ident(name)} WITH (FORCE)")
    return (
        f"ALTER DATABASE {ident(tmpl)} RENAME TO {ident(target)}; "
        f"COMMENT ON DATABASE {ident(target)} IS {lit(marks.cached_mark(key, now))}"
        + (f"; ALTER DATABASE {ident(spare)} RENAME TO {ident(ready)}" if keeps_spare else "")
    )


def evict(conn: Connection, db: str, keep: int) -> list[str]:
    """Drop the cached templates (and their ready copies) beyond KEEP, least recently used first; their keys."""
    gone = to_evict(cached(conn, db), keep)
    for entry in gone:
        conn.execute(f"DROP DATABASE IF EXISTS {ident(marks.cached_ready_name(db, entry.key))} WITH (FORCE)")
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
    """When KEY's template is cached: make it the current template again, with its ready copy as the spare (the
    current ones go into the cache, all in one transaction), and return it (name, oid); None when KEY is not cached.

    A rename keeps a database's oid, so the ready copy's spare mark (key and template oid) holds again: the reset
    then renames it into place as from any spare (devenv.commands.reset), and copies nothing on its own time.
    """
    source = marks.cached_template_name(db, key)
    found = conn.database(source)
    if found is None or (marks.parse_cached_mark(found[1]) or ("",))[0] != key:
        return None
    stop_spare(conn, db, state_dir)
    tmpl, ready = marks.template_name(db), marks.cached_ready_name(db, key)
    park_now = _park_statements(conn, db, int(time.time()))
    with_ready = conn.database(ready) is not None
    conn.execute(
        (park_now + "; " if park_now else "")
        + f"ALTER DATABASE {ident(source)} RENAME TO {ident(tmpl)}; "
        + f"COMMENT ON DATABASE {ident(tmpl)} IS {lit(marks.template_mark(key))}"
        + (f"; ALTER DATABASE {ident(ready)} RENAME TO {ident(marks.spare_name(db))}" if with_ready else "")
    )
    evict(conn, db, keep)
    current = conn.database(tmpl)
    assert current is not None
    return tmpl, current[0]
