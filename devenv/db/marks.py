"""devenv's marks on the stack's own Postgres, and the names of the databases it keeps there.

A mark is a database comment, so it lives and dies with the database and needs no table of devenv's own:

- the cluster mark (on the `postgres` database): this Postgres is the NAME stack's own container; devenv touches
  nothing on a Postgres without it;
- the seeded mark (on the app database): migrated and seeded, so `up` does not seed it again;
- the template mark (on `<db>__devenv_template`): a copy of a fresh database for migrations key KEY;
- the spare mark (on `<db>__devenv_spare`): a finished copy of that very template (its oid), ready for a reset;
- none on `<db>__devenv_trash`: the database a reset replaced, which the next spare's job drops;
- the clone mark (on `<db>_w<N>`): test worker N's copy of the template (devenv.commands.clones);
- the branch mark (on `<db>__branch_<branch>`): the app database of a git branch, parked while another is checked
  out; the app database's seeded mark then names its branch too (devenv.commands.branches).

Names never exceed Postgres' 63 bytes and never equal the app database: a long one becomes a hash.
"""

from __future__ import annotations

import hashlib
import re

from devenv.clients.pgwire import Connection, quote_ident, quote_literal
from devenv.core.errors import NotOurDatabase

CLUSTER_MARK = "devenv-project:"
TEMPLATE_MARK = "devenv-template:"
SEEDED_MARK = "devenv:seeded"
SPARE_MARK = "devenv-spare:"
MAX_NAME_BYTES = 63  # Postgres' identifier limit (NAMEDATALEN - 1), in bytes


def _suffixed(db: str, suffix: str) -> str:
    """DB + SUFFIX; when that exceeds Postgres' 63 bytes, a hash of DB + SUFFIX (never DB itself, never cut)."""
    name = db + suffix
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    return f"devenv_{hashlib.sha256(db.encode()).hexdigest()[:16]}{suffix}"


def template_name(db: str) -> str:
    """The template database's name for app database DB."""
    return _suffixed(db, "__devenv_template")


def spare_name(db: str) -> str:
    """The name of the ready copy of DB's template (see devenv.db.spare)."""
    return _suffixed(db, "__devenv_spare")


def template_mark(key: str) -> str:
    """The mark of a template taken for migrations key KEY."""
    return TEMPLATE_MARK + key


def spare_mark(key: str, template_oid: str) -> str:
    """The mark of a finished spare: the key it was made for and the very template (its oid) it was copied from."""
    return f"{SPARE_MARK}{key}:{template_oid}"


def maintenance_db(app_db: str) -> str:
    """The database devenv connects to and marks, besides the app's: `postgres`, or `template1` when the app's own
    database is called postgres (devenv must be able to drop and rename it, and keep its marks apart)."""
    return "template1" if app_db == "postgres" else "postgres"


def cluster_mark(project_name: str, checkout: str, machine: str = "") -> str:
    """The mark of the stack PROJECT_NAME of the checkout at CHECKOUT on MACHINE (its id)."""
    return f"{CLUSTER_MARK}{project_name}@{checkout}" + (f" on {machine}" if machine else "")


def mark_cluster(conn: Connection, project_name: str, checkout: str, app_db: str, machine: str = "") -> None:
    """Write devenv's mark on the cluster's maintenance database (done by `up` on the stack's own container)."""
    target = quote_ident(maintenance_db(app_db))
    conn.execute(f"COMMENT ON DATABASE {target} IS {quote_literal(cluster_mark(project_name, checkout, machine))}")


def verify_cluster(
    conn: Connection, project_name: str, checkout: str, where: str, app_db: str = "", machine: str = ""
) -> None:
    """Refuse unless this Postgres (at WHERE) carries the mark of this checkout's PROJECT_NAME stack on MACHINE.

    A mark without a checkout (written before devenv labelled checkouts) is the stack's own, as it was then; so is
    one without a machine (written before devenv labelled machines) of the same checkout path.
    """
    _, mark = conn.database(maintenance_db(app_db)) or ("", None)
    accepted = {cluster_mark(project_name, checkout, machine), cluster_mark(project_name, checkout)}
    if mark in accepted | {CLUSTER_MARK + project_name}:
        return
    owner = (mark or "").split("@", 1)[1] if (mark or "").startswith(f"{CLUSTER_MARK}{project_name}@") else ""
    if owner:
        path, _, other_machine = owner.partition(" on ")
        elsewhere = f" on the machine {other_machine[:8]}" if other_machine and other_machine != machine else ""
        raise NotOurDatabase(
            f"the Postgres at {where} is the {project_name!r} stack of the checkout {path}{elsewhere}, not this "
            f"one's ({checkout}); devenv resets only this checkout's database.",
            f"run devenv in {path}{elsewhere} for that one; `devenv up` here starts this checkout's own stack.",
        )
    raise NotOurDatabase(
        f"the Postgres at {where} is not the {project_name!r} stack's own container "
        f"(mark: {mark!r}); devenv resets only its own database.",
        "start this project's stack with `devenv up`, or check DEVENV_POSTGRES_PORT / postgres.port.",
    )


def is_seeded(conn: Connection) -> bool:
    """Whether the database CONN is on carries devenv's seed mark."""
    mark = conn.scalar(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()"
    )
    return mark == SEEDED_MARK or (mark or "").startswith(SEEDED_MARK + ":branch=")


def mark_seeded(conn: Connection, db: str) -> None:
    """Mark database DB migrated and seeded."""
    conn.execute(f"COMMENT ON DATABASE {quote_ident(db)} IS {quote_literal(SEEDED_MARK)}")


# -- snapshots and the template cache (`devenv db`, [reset] keep) --------------------------------------------------
# - the snapshot mark (on `<db>__devenv_snap_<NAME>`): snapshot NAME, taken at migrations key KEY at a time;
# - the cached mark (on `<db>__devenv_cache_<KEY>`): the template of an earlier migrations key, and when it was last
#   the current one (the cache evicts the least recently used).
# The ready copy of a snapshot (`<db>__devenv_snapready_<NAME>`) carries a spare mark of that snapshot's oid.
SNAPSHOT_MARK = "devenv-snapshot:"
CACHED_MARK = "devenv-cached:"
SNAPSHOT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _named(db: str, kind: str, label: str) -> str:
    """`<db>__devenv_<kind>_<label>`; over 63 bytes, `devenv_<hash of all three>__<kind>` (never cut, so two labels
    never share a name; the mark keeps the label itself)."""
    name = f"{db}__devenv_{kind}_{label}"
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256("\0".join((db, kind, label)).encode()).hexdigest()[:32]
    return f"devenv_{digest}__{kind}"


def snapshot_name(db: str, name: str) -> str:
    """The database holding snapshot NAME of app database DB."""
    return _named(db, "snap", name)


def snapshot_ready_name(db: str, name: str) -> str:
    """The ready copy of snapshot NAME (what `db restore` renames into place)."""
    return _named(db, "snapready", name)


def cached_template_name(db: str, key: str) -> str:
    """The cached template of migrations key KEY."""
    return _named(db, "cache", key)


def cached_ready_name(db: str, key: str) -> str:
    """The spare of the cached template of KEY, kept with it (it is the spare again when the key comes back)."""
    return _named(db, "cacheready", key)


def incoming_name(db: str) -> str:
    """Where a database is made before it is swapped in for DB (a restore's copy, a load, a branch's new
    database); never anyone's data."""
    return _suffixed(db, "__devenv_incoming")


def outgoing_name(db: str) -> str:
    """What DB is renamed to while the incoming one takes its place (then dropped)."""
    return _suffixed(db, "__devenv_outgoing")


def snapshot_mark(name: str, key: str, created: int) -> str:
    """The mark of snapshot NAME, taken at migrations key KEY at CREATED (Unix seconds)."""
    return f"{SNAPSHOT_MARK}{key}:{created}:{name}"


def parse_snapshot_mark(comment: str | None) -> tuple[str, str, int] | None:
    """(name, key, created) of a snapshot mark; None for anything else."""
    if not comment or not comment.startswith(SNAPSHOT_MARK):
        return None
    key, _, rest = comment[len(SNAPSHOT_MARK) :].partition(":")
    created, _, name = rest.partition(":")
    if not created.isdigit() or not SNAPSHOT_NAME_RE.fullmatch(name):
        return None
    return name, key, int(created)


def cached_mark(key: str, used: int) -> str:
    """The mark of the cached template of KEY, last the current one at USED (Unix seconds)."""
    return f"{CACHED_MARK}{key}:{used}"


def parse_cached_mark(comment: str | None) -> tuple[str, int] | None:
    """(key, last used) of a cached mark; None for anything else."""
    if not comment or not comment.startswith(CACHED_MARK):
        return None
    key, _, used = comment[len(CACHED_MARK) :].partition(":")
    return (key, int(used)) if key and used.isdigit() else None


def template_key(comment: str | None) -> str | None:
    """The migrations key of a template mark; None for anything else."""
    if not comment or not comment.startswith(TEMPLATE_MARK):
        return None
    return comment[len(TEMPLATE_MARK) :] or None


# -- clones (one per test worker) and parked branch databases ----------------------------------------------------
CLONE_MARK = "devenv-clone:"
BRANCH_MARK = "devenv-branch:"
SEEDED_BRANCH = SEEDED_MARK + ":branch="  # the app database's seeded mark, naming the branch it belongs to


def clone_name(db: str, worker: int) -> str:
    """The name of test worker WORKER's copy of DB's template: `<db>_w<N>` (a hash of DB when that is too long)."""
    if worker < 1:
        raise ValueError(f"worker numbers start at 1, not {worker}")
    return _suffixed(db, f"_w{worker}")


def clone_mark(key: str, worker: int) -> str:
    """The mark of worker WORKER's clone, copied from the template of migrations key KEY."""
    return f"{CLONE_MARK}{worker}:{key}"


def branch_name(db: str, branch: str) -> str:
    """Where DB is parked while git BRANCH is not checked out: `<db>__branch_<branch>` when that is a plain name
    that fits 63 bytes, else a hash of both (the branch itself is in the mark, see `branch_mark`)."""
    name = f"{db}__branch_{branch}"
    plain = all(c.isascii() and (c.isalnum() or c in "_-.") for c in branch)
    if plain and len(name.encode()) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(f"{db}\0{branch}".encode()).hexdigest()[:16]
    return f"devenv_{digest}__branch"


def trash_name(db: str) -> str:
    """Where a reset puts the database it replaced, for the background job to drop (never anyone's data)."""
    return _suffixed(db, "__devenv_trash")


def branch_mark(branch: str) -> str:
    """The mark of a database parked for git BRANCH."""
    return BRANCH_MARK + branch


def seeded_branch_mark(branch: str) -> str:
    """The app database's mark once per-branch databases are on: seeded, and BRANCH's."""
    return SEEDED_BRANCH + branch


def owning_branch(mark: str | None) -> str | None:
    """The branch an app database's mark names (None: a database of no branch yet)."""
    return mark[len(SEEDED_BRANCH) :] if mark and mark.startswith(SEEDED_BRANCH) else None
