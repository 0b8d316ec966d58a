"""Probes that really talk to each service, and the watch that fails fast when a container dies.

A probe's `check()` returns True when ready and False for "not yet"; a final state (container exited, unhealthy,
password refused) raises at once. devenv.core.wait retries them.

The probes of `up` are made for a `Target`, as testcontainers' wait strategies are for their container: the
engine, this `up`'s container states and the host the ports are published on. Each finds its own port there once
its container runs (`for_services` makes them), so nothing has to know a port before Docker has published it.
"""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from devenv.clients.httpget import Response
from devenv.core.errors import CREDENTIALS_HINT, LOG_TAIL, DevenvError, MigrationFailed, ServiceNotReady
from devenv.core.errors import tail as output_tail
from devenv.engine.runtime import ContainerState, Runtime
from devenv.project.endpoints import container_ports

if TYPE_CHECKING:
    from devenv.core.wait import Probe
    from devenv.project.context import Context

MIGRATE_HINT = "fix the migration (prisma's message is below), then `devenv migrate` or `devenv up`."


class Answers(Protocol):
    """A connector that can probe its service (devenv.clients.connectors)."""

    def probe(self) -> bool: ...


@dataclass
class ConnectorProbe:
    """Postgres (SELECT 1 as the app user on the app database) or Redis (PING, SET/GET), through its connector."""

    name: str
    connector: Answers

    def check(self) -> bool:
        return self.connector.probe()


FALLBACK_PATHS = ("/health", "/healthz", "/readyz", "/api/health", "/status")
NO_ROUTE = {404, 405}


class Serves(Protocol):
    """A server connector (devenv.clients.connectors.HttpConnector)."""

    def get(self, path: str, *, timeout: float = 2.0) -> Response: ...


@dataclass
class HttpProbe:
    """GET the server's readiness path answers 200.

    A server without that route (404/405) fails at once when the path was set in devenv.toml; with the default
    path the probe tries the usual others (FALLBACKS, the liveness path first) and keeps the first one the server
    has: `chosen` says which, so `up` can say so and `status` use it.
    """

    server: Serves
    path: str
    fallbacks: tuple[str, ...] = ()
    name: str = "server"
    setting: str = "server.ready_path"
    chosen: str | None = None

    def _status(self, path: str) -> int | None:
        try:
            return self.server.get(path).status
        except (OSError, ValueError):
            return None  # not listening yet, or the connection dropped

    def check(self) -> bool:
        path = self.chosen or self.path
        status = self._status(path)
        if status is None:
            return False
        if status not in NO_ROUTE or self.chosen:
            if status == 200:
                self.chosen = path
            return status == 200
        answers = {path: status}
        for alt in (f for f in self.fallbacks if f != path):
            alt_status = self._status(alt)
            if alt_status is None:
                return False
            answers[alt] = alt_status
            if alt_status not in NO_ROUTE:
                self.chosen = alt
                return alt_status == 200
        seen = ", ".join(f"GET {p} → {s}" for p, s in answers.items())
        who = "the server" if self.name == "server" else self.name
        raise ServiceNotReady(
            f"{who} has no readiness route: {seen}.",
            f"set {self.setting} in devenv.toml to the route that answers 200 when the server is ready "
            '(e.g. "/api/health").',
        )


class StateCache:
    """Container states, fetched from the engine at most every `max_age` seconds and shared by all waits.

    Bound to one `up`: the containers that existed before it (STALE) do not count until compose has settled
    (`settled` set), so a migrate job that failed last time, or a server about to be replaced, is never taken for
    this run's. Once compose is done, what runs is what this `up` left running.
    """

    def __init__(self, runtime: Runtime, max_age: float = 0.1, stale: frozenset[str] = frozenset()) -> None:
        self.runtime = runtime
        self.max_age = max_age
        self.stale = stale
        self.settled = threading.Event()
        if not stale:
            self.settled.set()
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

    def prime(self, states: list[ContainerState]) -> None:
        """Start from STATES the caller just listed (no second engine call for the same answer)."""
        with self._lock:
            self._states, self._at = list(states), time.monotonic()

    def current(self) -> list[ContainerState]:
        """The states of the containers that count for this `up` (see the class)."""
        states = self.get()
        if self.settled.is_set():
            return states
        return [s for s in states if s.id not in self.stale]

    def service(self, service: str) -> ContainerState | None:
        found = [s for s in self.current() if s.service == service and not s.oneoff]
        return found[-1] if found else None


def last_logs(runtime: Runtime, service: str) -> str:
    """The last LOG_TAIL lines of SERVICE's log ("" when the engine cannot say)."""
    try:
        return output_tail(runtime.logs([service], tail=LOG_TAIL))
    except DevenvError:
        return ""


def log_details(service: str, logs: str) -> str | None:
    """The block printed under an error: SERVICE's last log lines."""
    return f"--- last {LOG_TAIL} log lines of {service} ---\n{logs}" if logs else None


def hint_from_logs(logs: str) -> str | None:
    """A hint for the failures people actually hit, read off a container's last log lines."""
    text = logs.lower()
    # Postgres' own words, and Prisma's (P1000) for the same refusal seen from the migrate job.
    if "password authentication failed" in text or "authentication failed against database server" in text:
        return CREDENTIALS_HINT
    if "database files are incompatible" in text:
        return (
            "the data volume was made by another Postgres major version: set postgres.image (DEVENV_POSTGRES_IMAGE) "
            "back to that version; docs/troubleshooting.md says how to move the data or start over."
        )
    if "address already in use" in text:
        return "another process in the container already holds the port; check the service's command."
    if (
        "prisma" in text
        and ("engine" in text or "binaries" in text)
        and any(word in text for word in ("enotfound", "eai_again", "econnrefused", "etimedout", "failed to fetch"))
    ):
        return (
            "Prisma tried to download its engines and the network did not answer: offline, use Prisma 6 with "
            'engine = "js" and a driver adapter (see the example\'s prisma.config.ts), or point PRISMA_ENGINES_MIRROR '
            "at a mirror you have."
        )
    if "cannot find module" in text or "err_module_not_found" in text:
        return "the server image is missing a dependency; rebuild it with `devenv up` after fixing package.json."
    if "eaddrinuse" in text:
        return "the server's PORT is taken inside the container; check PORT in .env."
    return None


def container_failed(runtime: Runtime, service: str, problem: str, one_shot: bool = False) -> DevenvError:
    """The error for a container that reached a final state: what happened, a hint, its last log lines."""
    logs = last_logs(runtime, service)
    err_cls = MigrationFailed if one_shot else ServiceNotReady
    return err_cls(
        f"{service} {problem}.",
        hint_from_logs(logs) or f"see `devenv logs {service}`; fix the cause and run `devenv up` again.",
        details=log_details(service, logs),
    )


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
                raise container_failed(self.runtime, service, problem, service in self.one_shot)

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
        logs = last_logs(self.runtime, self.service)
        raise MigrationFailed(
            f"the {self.service} job exited with code {state.exit_code}; the stack is left up for inspection.",
            hint_from_logs(logs) or MIGRATE_HINT,
            details=log_details(self.service, logs),
        )


# -- extra services ([services.NAME], devenv.project.extras)
# ------------------------------------------------------------
@dataclass
class TcpProbe:
    """HOST:PORT accepts a connection and keeps it open (or greets): Docker's port proxy accepts on a published
    port before anything listens in the container, then hangs up at once; that is "not yet"."""

    name: str
    host: str
    port: int
    linger: float = 0.05

    def check(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                sock.settimeout(self.linger)
                try:
                    return sock.recv(1) != b""  # a greeting (SMTP, …): ready; b"": the proxy hung up
                except TimeoutError:
                    return True  # the connection stays open: something listens
        except OSError:
            return False


@dataclass
class HealthProbe:
    """The container's own healthcheck turned healthy (unhealthy is final: the watch reports it)."""

    name: str
    cache: StateCache

    def check(self) -> bool:
        state = self.cache.service(self.name)
        return state is not None and state.status == "running" and state.health == "healthy"


@dataclass
class SettleProbe:
    """A service with nothing to ask (ready = "none"): ready once its container stayed up for SETTLE seconds.

    A container that exits in between is reported by the watch. One that its restart policy restarted between two
    looks shows as running in the engine's list (which does not count restarts), so while the clock runs each look
    is made in detail: a worker that dies at once fails `up` within a restart, not after the settle time.
    """

    name: str
    runtime: Runtime
    cache: StateCache
    settle: float = 1.0
    clock: Callable[[], float] = time.monotonic
    existing: frozenset[str] = frozenset()  # ids of the containers there before this `up`
    _since: float | None = None
    _id: str = ""
    _baseline: dict[str, int] = field(default_factory=dict)  # container id -> its restarts when first seen

    def check(self) -> bool:
        state = self.cache.service(self.name)
        if state is None or state.status != "running":
            self._since = None
            return False
        detailed = [c for c in self.runtime.containers(detail=True) if c.service == self.name and not c.oneoff]
        current = detailed[-1] if detailed else state
        if current.id not in self._baseline:  # restarts before this `up` (a container it did not create) do not count
            self._baseline[current.id] = current.restart_count if current.id in self.existing else 0
        if current.restart_count > self._baseline[current.id]:
            problem = f"is crash-looping (restarted {current.restart_count} times)"
            raise container_failed(self.runtime, self.name, problem)
        if current.status != "running":
            return False  # the watch reports it on its next look
        if self._since is None or state.id != self._id:
            self._since, self._id = self.clock(), state.id
            return False
        return self.clock() - self._since >= self.settle


# -- the probes of `up`, made for a target ----------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """What the waits of one `up` look at: the engine, this `up`'s container states (shared by every wait) and the
    host its published ports answer on."""

    runtime: Runtime
    cache: StateCache
    host: str

    def port(self, service: str, inside: int | None, fixed: int | None = 0) -> int | None:
        """The host port of SERVICE's port INSIDE: FIXED when one is configured, else the one Docker published.

        None until a container of this `up` runs: with a fixed host port, the container compose is about to
        replace still answers there, and must not be taken for the new one.
        """
        state = self.cache.service(service)
        if state is None or state.status != "running" or inside is None:
            return None
        return fixed or state.ports.get(inside)


@dataclass
class _OnTarget:
    """A probe made once the target publishes the service's port: `_made` builds it for the host and that port."""

    name: str
    target: Target
    inside: int | None
    fixed: int | None
    _probe: Probe | None = field(default=None, init=False, repr=False)

    def _made(self, host: str, port: int) -> Probe:
        raise NotImplementedError

    def check(self) -> bool:
        if self._probe is None:
            port = self.target.port(self.name, self.inside, self.fixed)
            if port is None:
                return False
            self._probe = self._made(self.target.host, port)
        return self._probe.check()


@dataclass
class ConnectorReady(_OnTarget):
    """Postgres or Redis through its connector (ConnectorProbe), on the port the target publishes; OPEN makes the
    connector for a host and port."""

    open: Callable[[str, int], Answers]

    def _made(self, host: str, port: int) -> Probe:
        return ConnectorProbe(self.name, self.open(host, port))


@dataclass
class HttpReady(_OnTarget):
    """GET PATH answers 200 (HttpProbe, its fallbacks included), on the port the target publishes; SERVE makes the
    connector for a base URL. `chosen`: the path that answered."""

    serve: Callable[[str], Serves]
    path: str
    fallbacks: tuple[str, ...] = ()
    setting: str = "server.ready_path"

    @property
    def chosen(self) -> str | None:
        return self._probe.chosen if isinstance(self._probe, HttpProbe) else None

    def _made(self, host: str, port: int) -> Probe:
        server = self.serve(f"http://{host}:{port}")
        return HttpProbe(server, self.path, self.fallbacks, name=self.name, setting=self.setting)


@dataclass
class TcpReady(_OnTarget):
    """A connection is accepted and kept open (TcpProbe), on the port the target publishes."""

    def _made(self, host: str, port: int) -> Probe:
        return TcpProbe(self.name, host, port)


def for_services(
    ctx: Context, target: Target, services: Sequence[str], *, settle: float, existing: frozenset[str]
) -> dict[str, Probe]:
    """One probe per service of SERVICES, made for TARGET. SETTLE: how long a service with nothing to ask must stay
    up; EXISTING: the containers there before this `up` (their old restarts do not count)."""
    cfg, settings, connectors = ctx.config, ctx.settings, ctx.connectors
    inside = container_ports(cfg)
    probes: dict[str, Probe] = {}
    for service in services:
        if service in ("postgres", "redis"):
            connect = connectors.postgres if service == "postgres" else connectors.redis
            fixed = cfg.postgres.port if service == "postgres" else cfg.redis.port
            opener = functools.partial(connect, settings=settings)
            probes[service] = ConnectorReady(service, target, inside[service], fixed, opener)
        elif service == "migrate":
            probes[service] = JobProbe(target.runtime, target.cache)
        elif service == "server":
            fallbacks = () if cfg.is_pinned("server.ready_path") else (cfg.server.health_path, *FALLBACK_PATHS)
            ready_path = cfg.server.ready_path
            probes[service] = HttpReady(
                service, target, inside[service], cfg.server.port, connectors.server, ready_path, fallbacks
            )
        else:
            probes[service] = _extra_probe(ctx, target, service, settle, existing)
    return probes


def _extra_probe(ctx: Context, target: Target, service: str, settle: float, existing: frozenset[str]) -> Probe:
    """A [services.NAME] service's own readiness (devenv.project.extras.Readiness), on this `up`'s container."""
    spec = ctx.stack.extra(service)
    assert spec is not None
    ready = spec.ready
    if ready.kind == "health":
        return HealthProbe(service, target.cache)
    if ready.kind == "none":
        return SettleProbe(service, target.runtime, target.cache, settle, existing=existing)
    inside = ready.port if ready.port is not None else (spec.ports[0].container if spec.ports else None)
    fixed = spec.host_port(inside) if inside is not None else None
    if ready.kind == "http":
        setting = f"services.{service}.ready"
        return HttpReady(service, target, inside, fixed, ctx.connectors.server, ready.path, setting=setting)
    return TcpReady(service, target, inside, fixed)
