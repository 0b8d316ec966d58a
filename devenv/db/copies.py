"""How devenv copies a database (`CREATE DATABASE … TEMPLATE …`): the strategy is chosen by the source's size.

Postgres 15 copies a template in one of two ways. WAL_LOG (the default) reads every block of the source and writes
it to the WAL and the new database: cheap for a small database (no checkpoint), but a 1 GB seed becomes 1 GB of
WAL. FILE_COPY checkpoints, copies the files as they are and checkpoints again: two checkpoints are dear for a
small database on a busy cluster, and the file copy wins for a big one. Where the two cross is measured by the
bench case `big_db` (docs/benchmarks.md, "Big databases"); `FILE_COPY_FROM` sits where they are even, so devenv
uses FILE_COPY from that size up. Before Postgres 15 there is no choice (the copy is FILE_COPY).
"""

from __future__ import annotations

from devenv.clients.pgwire import Connection
from devenv.clients.pgwire import quote_ident as ident
from devenv.clients.pgwire import quote_literal as lit

FILE_COPY_FROM = 64 * 1024 * 1024  # bytes: a source this big or bigger is copied file by file
STRATEGY_SINCE = 150000  # server_version_num of the first Postgres with CREATE DATABASE … STRATEGY


def strategy_for(size: int | None, server_version: int) -> str | None:
    """The strategy for a source of SIZE bytes on a server of SERVER_VERSION (None: leave it to Postgres)."""
    if server_version < STRATEGY_SINCE or size is None:
        return None
    return "FILE_COPY" if size >= FILE_COPY_FROM else "WAL_LOG"


def source_size(conn: Connection, source: str) -> int | None:
    """SOURCE's size in bytes (None: not known, e.g. no right to read it)."""
    value = conn.scalar(f"SELECT pg_database_size(oid) FROM pg_database WHERE datname = {lit(source)}")
    return int(value) if value is not None and value.isdigit() else None


def server_version(conn: Connection) -> int:
    """The server's version as a number (150004 for "15.4 (Debian 15.4-1)"), from what it said at startup."""
    import re

    found = re.match(r"(\d+)(?:\.(\d+))?", getattr(conn, "parameters", {}).get("server_version", ""))
    if not found:
        return 0
    major, minor = int(found.group(1)), int(found.group(2) or 0)
    return major * 10000 + minor if major >= 10 else major * 10000 + minor * 100


def create_copy(
    conn: Connection, name: str, source: str, owner: str | None = None, *, strategy: str | None = "auto"
) -> str:
    """CREATE DATABASE NAME as a copy of SOURCE (owned by OWNER, default: the session's user); STRATEGY "auto"
    picks one by SOURCE's size.

    Returns the strategy used ("" when Postgres chose).
    """
    if strategy == "auto":
        strategy = strategy_for(source_size(conn, source), server_version(conn))
    clause = (f" OWNER {ident(owner)}" if owner else "") + (f" STRATEGY {strategy}" if strategy else "")
    conn.execute(f"CREATE DATABASE {ident(name)} TEMPLATE {ident(source)}{clause}")
    return strategy or ""
