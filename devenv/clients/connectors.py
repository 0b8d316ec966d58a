"""The stack's Postgres and Redis as devenv reaches them, with the wire clients' errors mapped into devenv's once.

A connector knows where its service answers and with which credentials; every part of devenv (probes, marks,
reset, status) goes through one, so "not answering", "credentials refused" and "the server said no" read the same
everywhere:

- an OSError (not listening, connection dropped, timeout) or a server still starting is ServiceUnavailable:
  "not yet" for a probe, "is not answering" for a command;
- refused credentials (or a database the volume was not created with) are CredentialsRefused: final;
- anything else the server refuses is a DevenvError naming what devenv was doing and the SQLSTATE.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from devenv.clients import httpget, pgwire, resp
from devenv.core.errors import CREDENTIALS_HINT, CredentialsRefused, DevenvError, ServiceNotReady, ServiceUnavailable

CANNOT_CONNECT_NOW = "57P03"  # SQLSTATE: the database system is starting up / shutting down
ADMIN_SHUTDOWN = "57P01"
INVALID_CATALOG_NAME = "3D000"  # the database does not exist (the volume was made with another POSTGRES_DB)
REDIS_PASSWORD_HINT = (
    "the redis container was started with another password; `devenv down && devenv up` restarts it with the one "
    "in .env."
)


def _pg_error(ex: BaseException, host: str, port: int, user: str, db: str, what: str) -> DevenvError:
    """ONE place that turns what devenv.clients.pgwire raised into devenv's errors."""
    where = f"{host}:{port}"
    if isinstance(ex, pgwire.UnsupportedServer):
        return ServiceNotReady(
            f"postgres on {where} cannot be checked: {ex}",
            "devenv needs password or SCRAM-SHA-256 authentication (the official image's default).",
        )
    if isinstance(ex, pgwire.PgError):
        if pgwire.credentials_refused(ex) or ex.sqlstate == INVALID_CATALOG_NAME:
            return CredentialsRefused(
                f"postgres at {where} refused the credentials in .env ({user}@{db}): {ex.message}", CREDENTIALS_HINT
            )
        if ex.sqlstate in {CANNOT_CONNECT_NOW, ADMIN_SHUTDOWN}:
            return ServiceUnavailable(f"postgres at {where} is not ready: {ex.message}", "see `devenv status`.")
        return DevenvError(
            f"postgres at {where} refused {what}: {ex.message} (SQLSTATE {ex.sqlstate})",
            ex.hint or "see `devenv logs postgres`.",
        )
    return ServiceUnavailable(
        f"postgres at {where} is not answering: {ex}", "start the stack with `devenv up` (or check `devenv status`)."
    )


@dataclass(frozen=True)
class PostgresConnector:
    """Sessions on the stack's Postgres as the app user."""

    host: str
    port: int
    user: str
    password: str
    db: str

    @contextmanager
    def session(
        self,
        dbname: str | None = None,
        *,
        what: str = "the query",
        application_name: str = "devenv",
        timeout: float = 5.0,
        io_timeout: float | None = None,
    ) -> Iterator[pgwire.Connection]:
        """A session on DBNAME (default: the app database); errors inside become devenv's, naming WHAT was done."""
        try:
            with pgwire.connect(
                self.host,
                self.port,
                self.user,
                self.password,
                dbname or self.db,
                timeout=timeout,
                io_timeout=io_timeout,
                application_name=application_name,
            ) as conn:
                yield conn
        except (pgwire.PgError, pgwire.UnsupportedServer, OSError) as ex:
            raise _pg_error(ex, self.host, self.port, self.user, dbname or self.db, what) from ex

    def probe(self) -> bool:
        """SELECT 1 as the app user on the app database: True ready, False not yet; final refusals raise."""
        try:
            with self.session(timeout=2, io_timeout=2) as conn:
                conn.execute("SELECT 1")
        except ServiceUnavailable:
            return False
        return True


def _redis_error(ex: BaseException, host: str, port: int, what: str) -> DevenvError:
    """ONE place that turns what devenv.clients.resp raised into devenv's errors."""
    where = f"{host}:{port}"
    if isinstance(ex, resp.RespError):
        if ex.code in {"WRONGPASS", "NOAUTH"} or "AUTH" in ex.text.split(" ", 2)[:2]:
            return CredentialsRefused(
                f"redis on {where} refused the password from .env (REDIS_PASSWORD): {ex.text}", REDIS_PASSWORD_HINT
            )
        if ex.code in {"LOADING", "BUSY", "MASTERDOWN"}:
            return ServiceUnavailable(f"redis at {where} is not ready: {ex.text}", "see `devenv status`.")
        return DevenvError(
            f"redis on {where} answered {what} with {ex.text!r}.",
            "check REDIS_PASSWORD / REDIS_URL in .env and `devenv status`.",
        )
    return ServiceUnavailable(
        f"redis at {where} is not answering: {ex}", "start the stack with `devenv up` (or check `devenv status`)."
    )


@dataclass(frozen=True)
class RedisConnector:
    """Commands on the stack's Redis, logged in and on the app's db index."""

    host: str
    port: int
    password: str
    db: int

    def run(self, *commands: list[str], what: str, timeout: float = 5.0) -> list[resp.Reply]:
        """Send COMMANDS in one round trip (with the login); an error reply raises, mapped."""
        try:
            with resp.connect(self.host, self.port, self.password, self.db, timeout=timeout) as conn:
                replies = conn.pipeline(commands)
        except (resp.RespError, OSError) as ex:
            raise _redis_error(ex, self.host, self.port, what) from ex
        for reply in replies:
            if isinstance(reply, resp.RespError):
                raise _redis_error(reply, self.host, self.port, what)
        return [r for r in replies if not isinstance(r, resp.RespError)]

    def probe(self) -> bool:
        """PING and a SET/GET round trip: True ready, False not yet; a refused password raises."""
        try:
            replies = self.run(
                ["PING"], ["SET", "devenv:probe", "1", "EX", "10"], ["GET", "devenv:probe"], what="PING", timeout=1
            )
        except ServiceUnavailable:
            return False
        return replies[-1] == b"1"

    def flush(self) -> None:
        """FLUSHDB on the app's db index (reset)."""
        self.run(["FLUSHDB"], what="FLUSHDB")


@dataclass(frozen=True)
class HttpConnector:
    """The app server's HTTP endpoints (health, readiness, status)."""

    base_url: str

    def get(self, path: str, *, timeout: float = 2.0) -> httpget.Response:
        """GET PATH; OSError when nothing answers."""
        return httpget.get(self.base_url + path, timeout=timeout)

    def probe(self, path: str) -> bool:
        """GET PATH answers 200: True; anything else (or nothing listening) is "not yet"."""
        try:
            return self.get(path).status == 200
        except (OSError, ValueError):
            return False
