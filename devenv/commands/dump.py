"""`devenv db dump` and `devenv db load`: the app database to a file and back, with the tools of the stack's own
Postgres (pg_dump / pg_restore run inside its container, so their version is the server's).

A dump is pg_dump's custom format (`-Fc`: compressed, restorable with pg_restore), streamed from the container to
the host and written as FILE.partial, renamed to FILE once pg_dump succeeded: there is never a half-written dump
under the name. Default FILE: `.devenv/dumps/<db>-<YYYYmmdd-HHMMSS>.dump` in the project root (.devenv/ keeps
itself out of git: a dump holds the data).

A load restores FILE into a new database (`<db>__devenv_incoming`, without owners or privileges of the dumping
stack, so a dump of another stack with other users loads too) and swaps it in for the app database only when
pg_restore succeeded (devenv.commands.snapshots.swap_in); a failed restore drops the new database and leaves the app's
as it
was. Both run only on the stack's own Postgres (the cluster mark) after the checks of devenv.commands.snapshots.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devenv.clients.pgwire import quote_ident as ident
from devenv.commands.snapshots import DbResult, flush_redis, stack_session, swap_in
from devenv.core.errors import DatabaseCommandFailed, UsageError, tail
from devenv.db import marks
from devenv.project.context import Context

MAGIC = b"PGDMP"  # the first bytes of a pg_dump custom-format file


@dataclass(frozen=True)
class DumpResult:
    """What `devenv db dump` wrote."""

    database: str
    path: Path
    size: int
    seconds: float


def default_path(ctx: Context, now: float | None = None) -> Path:
    """Where a dump goes without -o: .devenv/dumps/<db>-<time>.dump in the project root."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return ctx.project.root / ".devenv" / "dumps" / f"{ctx.settings.pg_db}-{stamp}.dump"


def dump(ctx: Context, output: Path | None, on_bytes: Callable[[int], None] = lambda n: None) -> DumpResult:
    """pg_dump -Fc of the app database, streamed into OUTPUT (default: default_path)."""
    t0 = time.perf_counter()
    with stack_session(ctx, "the dump") as (ctx, conn):
        db = ctx.settings.pg_db
        if conn.database(db) is None:
            raise UsageError(f"the app database {db!r} does not exist: nothing to dump.", "`devenv up` creates it.")
    path = (output or default_path(ctx)).absolute()
    if path.is_dir():
        raise UsageError(f"-o {path}: is a folder.", f"name a file, e.g. -o {path / (db + '.dump')}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    argv = ["pg_dump", "--format=custom", "--username", ctx.settings.pg_user, "--dbname", db]
    try:
        # 0600, as devenv's env files: a dump holds the app's data.
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as sink:
            code, errors = ctx.runtime.exec_out("postgres", argv, sink, on_bytes)
            if code == 0:
                sink.flush()
                os.fsync(sink.fileno())
        if code != 0:
            raise DatabaseCommandFailed(
                f"`{' '.join(argv)}` in the postgres container exited with code {code}; no dump was written.",
                "see the message below; `devenv status` checks the stack.",
                details=tail(errors) or None,
            )
        os.replace(partial, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return DumpResult(db, path, path.stat().st_size, round(time.perf_counter() - t0, 3))


def check_dump_file(path: Path) -> None:
    """Refuse a FILE that is not there or not a pg_dump custom-format file, before anything is changed."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC))
    except OSError as ex:
        raise UsageError(f"{path}: {ex.strerror or ex}.", "name a file written by `devenv db dump`.") from ex
    if head != MAGIC:
        raise UsageError(
            f"{path} is not a pg_dump custom-format file (it does not start with {MAGIC.decode()}).",
            "load a file written by `devenv db dump` (or `pg_dump -Fc`); a plain SQL file goes through `devenv psql`.",
        )


def load(ctx: Context, path: Path, on_bytes: Callable[[int], None] = lambda n: None) -> DbResult:
    """Restore PATH into a new database and swap it in for the app database (only when the restore succeeded)."""
    t0 = time.perf_counter()
    check_dump_file(path)
    with stack_session(ctx, "the load") as (ctx, conn):
        db, user = ctx.settings.pg_db, ctx.settings.pg_user
        incoming = marks.incoming_name(db)
        conn.execute(f"DROP DATABASE IF EXISTS {ident(incoming)} WITH (FORCE)")  # one a failed load left behind
        conn.execute(f"CREATE DATABASE {ident(incoming)} TEMPLATE template0 OWNER {ident(user)}")
        argv = [
            "pg_restore", "--exit-on-error", "--no-owner", "--no-privileges", "--username", user, "--dbname", incoming,
        ]  # fmt: skip
        try:
            with open(path, "rb") as source:
                code, output = ctx.runtime.exec_in("postgres", argv, source, on_bytes)
            if code != 0:
                raise DatabaseCommandFailed(
                    f"`{' '.join(argv)}` in the postgres container exited with code {code} on {path}; "
                    f"{db!r} was left as it was.",
                    "see pg_restore's message below (a dump of a newer Postgres needs that version).",
                    details=tail(output) or None,
                )
            swap_in(conn, db, incoming)
        except BaseException:
            with contextlib.suppress(Exception):
                conn.execute(f"DROP DATABASE IF EXISTS {ident(incoming)} WITH (FORCE)")
            raise
    flushed = flush_redis(ctx, f"{db} was loaded from {path}")
    return DbResult(
        "load",
        str(path),
        db,
        round(time.perf_counter() - t0, 3),
        redis_flushed=flushed,
        notes=(
            "`devenv reset` goes back to the seeded template, not to this data: `devenv db snapshot NAME` keeps it.",
        ),
    )
