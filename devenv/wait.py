"""How devenv waits: probes that really talk to each service, retried with tenacity until a deadline.

A probe's `check()` returns True when ready and False for "not yet" (retried); a final state (container exited,
unhealthy, password refused) raises at once, so a dead service is reported in the time of one poll, not a timeout.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential_jitter

from devenv.errors import LOG_TAIL, DevenvError, MigrationFailed, ServiceNotReady
from devenv.errors import tail as output_tail
from devenv.runtime import ContainerState, Runtime

# Backoff: start at 20 ms, grow by 1.5x, cap at 100 ms, plus up to 20 ms of jitter.
# The bounds are "start <= 50 ms, cap <= 500 ms"; a low cap keeps us within a poll of the real ready time.
BACKOFF = {"multiplier": 0.02, "exp_base": 1.5, "max": 0.1, "jitter": 0.02}
MIGRATE_HINT = "fix the migration (prisma's message is below), then `devenv migrate` or `devenv up`."
RESET_HARD_HINT = "the volume was created with other credentials; `devenv reset --hard` recreates it (drops its data)."
INVALID_CATALOG_NAME = "3D000"  # SQLSTATE: the database does not exist (the volume was made with another POSTGRES_DB)


class Probe(Protocol):
    """Something that can tell whether one service really answers."""

    name: str

    def check(self) -> bool: ...


class Cancelled(Exception):
    """Another wait failed first; this one stops quietly."""


@dataclass
class PostgresProbe:
    """Connects as the app user to the app database and runs SELECT 1 (devenv.pgwire: no libpq to load)."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    name: str = "postgres"

    def check(self) -> bool:
        from devenv.pgwire import PgError, UnsupportedServer, connect, credentials_refused

        try:
            with connect(
                self.host,
                self.port,
                self.user,
                self.password,
                self.dbname,
                timeout=2,
                io_timeout=2,
                application_name="devenv",
            ) as conn:
                conn.execute("SELECT 1")
            return True
        except UnsupportedServer as ex:  # waiting will not change it
            raise ServiceNotReady(
                f"postgres on {self.host}:{self.port} cannot be checked: {ex}",
                "devenv needs password or SCRAM-SHA-256 authentication (the official image's default).",
            ) from ex
        except PgError as ex:
            if credentials_refused(ex) or ex.sqlstate == INVALID_CATALOG_NAME:
                raise ServiceNotReady(
                    f"postgres refused {self.user}@{self.dbname} on {self.host}:{self.port}: {ex.message}",
                    RESET_HARD_HINT,
                ) from ex
            return False  # e.g. 57P03 "the database system is starting up"
        except OSError:
            return False  # not listening yet, or the connection dropped while it starts


@dataclass
class RedisProbe:
    """AUTH (when a password is set), PING and a SET/GET round trip."""

    host: str
    port: int
    password: str
    db: int = 0
    name: str = "redis"

    def check(self) -> bool:
        import redis

        client = redis.Redis(
            host=self.host,
            port=self.port,
            password=self.password or None,
            db=self.db,
            socket_timeout=1,
            socket_connect_timeout=1,
        )
        try:
            client.ping()
            client.set("devenv:probe", "1", ex=10)
            return client.get("devenv:probe") == b"1"
        except redis.AuthenticationError as ex:
            raise ServiceNotReady(
                f"redis on {self.host}:{self.port} refused the password from .env (REDIS_PASSWORD): {ex}",
                "the redis container was started with another password; `devenv down && devenv up` restarts it "
                "with the one in .env.",
            ) from ex
        except redis.ResponseError as ex:
            if "NOAUTH" in str(ex) or "WRONGPASS" in str(ex):
                raise ServiceNotReady(
                    f"redis on {self.host}:{self.port}: {ex}", "check REDIS_PASSWORD in .env."
                ) from ex
            return False  # LOADING and friends: not yet
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False
        finally:
            client.close()


@dataclass
class HttpProbe:
    """GET url returns 200."""

    url: str
    name: str = "server"
    last_status: int | None = None

    def check(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=2) as resp:
                self.last_status = int(resp.status)
                return self.last_status == 200
        except urllib.error.HTTPError as ex:
            self.last_status = ex.code
            return False
        except (urllib.error.URLError, OSError, ValueError):
            return False


class StateCache:
    """Container states, fetched from the engine at most every `max_age` seconds and shared by all waits."""

    def __init__(self, runtime: Runtime, max_age: float = 0.1) -> None:
        self.runtime = runtime
        self.max_age = max_age
        self._lock = threading.Lock()
        self._at = 0.0
        self._states: list[ContainerState] = []

    def get(self) -> list[ContainerState]:
        with self._lock:
            now = time.monotonic()
            if now - self._at >= self.max_age:
                self._states = self.runtime.containers(detail=False)
                self._at = time.monotonic()
            return list(self._states)

    def service(self, service: str) -> ContainerState | None:
        found = [s for s in self.get() if s.service == service and not s.oneoff]
        return found[-1] if found else None


def _last_logs(runtime: Runtime, service: str) -> str:
    try:
        return output_tail(runtime.logs([service], tail=LOG_TAIL))
    except DevenvError:
        return ""


def hint_from_logs(logs: str) -> str | None:
    """A hint for the failures people actually hit, read off a container's last log lines."""
    text = logs.lower()
    # Postgres' own words, and Prisma's (P1000) for the same refusal seen from the migrate job.
    if "password authentication failed" in text or "authentication failed against database server" in text:
        return RESET_HARD_HINT
    if "database files are incompatible" in text:
        return "the volume holds another Postgres major version; `devenv reset --hard` recreates it (drops its data)."
    if "address already in use" in text:
        return "another process in the container already holds the port; check the service's command."
    if "cannot find module" in text or "err_module_not_found" in text:
        return "the server image is missing a dependency; rebuild it with `devenv up` after fixing package.json."
    if "eaddrinuse" in text:
        return "the server's PORT is taken inside the container; check PORT in .env."
    return None


@dataclass
class ContainerWatch:
    """Fail fast: a watched container that exits, restarts or turns unhealthy raises at once with its logs."""

    runtime: Runtime
    cache: StateCache
    services: Sequence[str]
    one_shot: frozenset[str] = frozenset({"migrate"})
    seen_restarts: dict[str, int] = field(default_factory=dict)

    def __call__(self) -> None:
        for service in self.services:
            state = self.cache.service(service)
            if state is None:
                continue
            problem = self._problem(service, state)
            if problem:
                logs = _last_logs(self.runtime, service)
                err_cls = MigrationFailed if service in self.one_shot else ServiceNotReady
                raise err_cls(
                    f"{service} {problem}.",
                    hint_from_logs(logs) or f"see `devenv logs {service}`; fix the cause and run `devenv up` again.",
                    details=f"--- last {LOG_TAIL} log lines of {service} ---\n{logs}" if logs else None,
                )

    def _problem(self, service: str, state: ContainerState) -> str | None:
        if state.status in {"exited", "dead"}:
            if service in self.one_shot and state.exit_code == 0:
                return None
            return f"exited with code {state.exit_code}"
        if state.status == "restarting" or state.restart_count > 0:
            return f"is crash-looping (restarted {state.restart_count} times)"
        if state.health == "unhealthy":
            return "turned unhealthy"
        return None


@dataclass
class JobProbe:
    """A one-shot job (the migrate container) has finished with exit code 0."""

    runtime: Runtime
    cache: StateCache
    service: str = "migrate"
    name: str = "migrate"

    def check(self) -> bool:
        state = self.cache.service(self.service)
        if state is None or state.status not in {"exited", "dead"}:
            return False
        if state.exit_code == 0:
            return True
        logs = _last_logs(self.runtime, self.service)
        raise MigrationFailed(
            f"the {self.service} job exited with code {state.exit_code}; the stack is left up for inspection.",
            hint_from_logs(logs) or MIGRATE_HINT,
            details=f"--- last {LOG_TAIL} log lines of {self.service} ---\n{logs}" if logs else None,
        )


def wait_for(
    probe: Probe,
    *,
    timeout: float,
    watch: Callable[[], None] | None = None,
    cancel: threading.Event | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Retry probe.check() with exponential backoff and jitter until it returns True or `timeout` passes."""

    def attempt() -> bool:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        if watch is not None:
            watch()
        return probe.check()

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_exponential_jitter(**BACKOFF),
        retry=retry_if_result(lambda ready: ready is not True),
        sleep=sleep,
    )
    try:
        retrying(attempt)
    except RetryError as ex:
        raise ServiceNotReady(
            f"{probe.name} did not answer within {timeout:g} s.",
            f"see `devenv logs {probe.name}`; raise the deadline with --timeout if the machine is slow.",
        ) from ex


def describe(exc: BaseException) -> dict[str, Any]:
    """A JSON-friendly view of an error, for --json output."""
    if isinstance(exc, DevenvError):
        return {"error": exc.message, "hint": exc.hint}
    return {"error": str(exc)}
