"""The per-command context: everything a command works with, computed once at its top and handed down.

A command loads one `Context` (the project and its configuration, the parsed template and .env, the merged
settings, the runtime, where the services answer and the connectors that reach them); callees receive it and never
go back to disk or to the engine for what it holds. It is frozen: a step that changes what it holds (`up` writes
.env, then learns the ports Docker published) makes a new one with `with_files` / `with_endpoints`. The new one
shares what the first derived (`Memo`): package.json, the Prisma setup, the Dockerfile and the stack's plan are read
once per command, and only what the change touches (the settings, after .env) is derived again.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, TypeVar, cast

from devenv.clients.connectors import HttpConnector, PostgresConnector, RedisConnector
from devenv.clients.httpget import Response
from devenv.clients.pgwire import Connection
from devenv.core.errors import EngineUnreachable, StackNotRunning
from devenv.engine.runtime import ContainerState, Runtime
from devenv.engine.target import EngineTarget
from devenv.engine.target import resolve as resolve_engine
from devenv.project.config import Config
from devenv.project.discovery import Project, load_project
from devenv.project.dockerfile import Dockerfile
from devenv.project.dockerfile import read as read_dockerfile
from devenv.project.endpoints import Endpoints, resolve_endpoints
from devenv.project.envfile import EnvFiles, HostPorts, read_env_files
from devenv.project.nodeapp import NodeApp, read_app
from devenv.project.prisma import PrismaSetup, find_prisma, key_files, migrations_key, seed_command
from devenv.project.runtimes import runtime_for
from devenv.project.services import Stack, plan_stack
from devenv.project.settings import REDIS_PORT, Settings

T = TypeVar("T")


class Postgres(Protocol):
    """The stack's Postgres (devenv.clients.connectors.PostgresConnector; a fake in unit tests)."""

    def session(
        self,
        dbname: str | None = None,
        *,
        what: str = "the query",
        application_name: str = "devenv",
        timeout: float = 5.0,
        io_timeout: float | None = None,
    ) -> AbstractContextManager[Connection]: ...

    def probe(self) -> bool: ...


class Redis(Protocol):
    """The stack's Redis (devenv.clients.connectors.RedisConnector; a fake in unit tests)."""

    def probe(self) -> bool: ...
    def flush(self) -> None: ...


class Server(Protocol):
    """The app server over HTTP (devenv.clients.connectors.HttpConnector; a fake in unit tests)."""

    @property
    def base_url(self) -> str: ...

    def get(self, path: str, *, timeout: float = 2.0) -> Response: ...
    def probe(self, path: str) -> bool: ...


class Connectors(Protocol):
    """Makes the connectors for a service published at host:port."""

    def postgres(self, host: str, port: int, settings: Settings) -> Postgres: ...
    def redis(self, host: str, port: int, settings: Settings) -> Redis: ...
    def server(self, base_url: str) -> Server: ...


class WireConnectors:
    """The real connectors: devenv's own wire clients (devenv.clients.pgwire, devenv.clients.resp,
    devenv.clients.httpget)."""

    def postgres(self, host: str, port: int, settings: Settings) -> Postgres:
        return PostgresConnector(host, port, settings.pg_user, settings.pg_password, settings.pg_db)

    def redis(self, host: str, port: int, settings: Settings) -> Redis:
        return RedisConnector(host, port, settings.redis_password, settings.redis_db)

    def server(self, base_url: str) -> Server:
        return HttpConnector(base_url)


class Memo:
    """What a context derived, shared with the contexts made from it (`with_files`, `for_project`, ...).

    Each value is kept with the inputs it was computed from and handed out again only for equal inputs: a new
    context re-derives just what its change touches (new .env: the settings, not package.json or the Dockerfile).
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()  # `up`'s waits read the context from several threads; a value may need another
        self._values: dict[str, list[tuple[tuple[object, ...], object]]] = {}

    def get(self, name: str, inputs: tuple[object, ...], compute: Callable[[], T]) -> T:
        """NAME computed from INPUTS: the value kept for equal inputs, else COMPUTE's (kept)."""
        with self._lock:
            kept = self._values.setdefault(name, [])
            for seen, value in kept:
                if seen == inputs:
                    return cast(T, value)
            new = compute()
            kept.append((inputs, new))
            return new


@dataclass(frozen=True)
class Context:
    """What one command works with; see the module's docstring."""

    project: Project
    environ: Mapping[str, str]
    files: EnvFiles
    runtime: Runtime
    connectors: Connectors = field(default_factory=WireConnectors)
    known_endpoints: Endpoints | None = None  # None: resolved on first use (at most one engine call)
    memo: Memo = field(default_factory=Memo, repr=False, compare=False)  # handed on by `with_*`

    @property
    def config(self) -> Config:
        return self.project.config

    @property
    def settings(self) -> Settings:
        """The stack's settings from the parsed files and the environment (merged once)."""
        files, environ = self.files, self.environ
        return self.memo.get("settings", (files, environ), lambda: files.settings(environ))

    @property
    def app(self) -> NodeApp:
        """The server's package.json."""
        server_dir = self.project.server_dir
        return self.memo.get("app", (server_dir,), lambda: read_app(server_dir))

    @property
    def prisma(self) -> PrismaSetup:
        """Where the Prisma schema and migrations are, and whether a seed is configured."""
        root, server_dir, app = self.project.root, self.project.server_dir, self.app
        return self.memo.get("prisma", (root, server_dir, app), lambda: find_prisma(root, server_dir, app))

    @property
    def seed_command(self) -> tuple[str, ...]:
        """The seed devenv runs on a new database (empty: none configured)."""
        return seed_command(self.config, self.prisma)

    @property
    def migrations_key(self) -> str:
        """Hash of the Prisma files and the migrate and seed commands: what a reset template was made from."""
        prisma, server_dir = self.prisma, self.project.server_dir
        commands = (self.config.migrate.command, self.seed_command)

        def compute() -> str:
            return migrations_key(server_dir, key_files(prisma, server_dir), commands)

        return self.memo.get("migrations_key", (prisma, server_dir, commands), compute)

    @property
    def dockerfile(self) -> Dockerfile | None:
        """The server's Dockerfile, parsed (None: there is none, and the server runs on the host)."""
        path, build_args = self.project.dockerfile, self.config.server.build_args
        return self.memo.get("dockerfile", (path, build_args), lambda: read_dockerfile(path, build_args))

    @property
    def stack(self) -> Stack:
        """Which services this project's stack has, and why (from the template: writing .env keeps it)."""
        cfg, template, app, ci = self.config, self.files.template, self.app, self.project.ci
        migrates = self.prisma.schema is not None or cfg.is_pinned("migrate.command")
        has_dockerfile = self.dockerfile is not None
        inputs = (cfg, template, app, has_dockerfile, migrates, ci)
        return self.memo.get("stack", inputs, lambda: plan_stack(cfg, self.files, app, has_dockerfile, migrates, ci=ci))

    @functools.cached_property
    def endpoints(self) -> Endpoints:
        """Where the services answer: configured ports, or the ones Docker published (one engine call).

        Kept by this context only: the engine's state moves during a command, so a step that knows the ports hands
        them on (`with_states`, `with_endpoints`)."""
        return self.known_endpoints or resolve_endpoints(self.config, self.runtime)

    @property
    def engine(self) -> EngineTarget:
        """The engine this command talks to (devenv.engine.target; read once: DOCKER_HOST, the docker context)."""
        return _engine(self.memo, self.environ)

    @property
    def postgres(self) -> Postgres:
        """The stack's Postgres; StackNotRunning when it is not published."""
        ep = self.endpoints
        if ep.postgres_port is None:
            raise StackNotRunning("postgres is not running.", "start the stack with `devenv up`.")
        return self.connectors.postgres(ep.host, ep.postgres_port, self.settings)

    @property
    def redis(self) -> Redis:
        """The stack's Redis; StackNotRunning when it is not published."""
        ep = self.endpoints
        if ep.redis_port is None:
            raise StackNotRunning("redis is not running.", "start the stack with `devenv up`.")
        return self.connectors.redis(ep.host, ep.redis_port, self.settings)

    @property
    def server(self) -> Server:
        """The app server; StackNotRunning when it is not published."""
        ep = self.endpoints
        if ep.server_port is None:
            raise StackNotRunning("the server is not running.", "start the stack with `devenv up`.")
        return self.connectors.server(ep.server_url())

    def host_ports(self) -> HostPorts | None:
        """The host ports the stack uses: the configured ones, or the running stack's (None: not known)."""
        cfg = self.config
        if cfg.postgres.port and cfg.redis.port:
            return HostPorts(cfg.postgres.port, cfg.redis.port, self.runtime.host_address())
        try:
            ep = self.endpoints
        except EngineUnreachable:
            return None
        if ep.postgres_port is None:
            return None
        return HostPorts(ep.postgres_port, ep.redis_port or cfg.redis.port or REDIS_PORT, ep.host)

    def with_files(self, files: EnvFiles) -> Context:
        """The same context after .env changed (the settings are merged anew from FILES)."""
        return replace(self, files=files)

    def with_endpoints(self, endpoints: Endpoints) -> Context:
        """The same context once the ports are known."""
        return replace(self, known_endpoints=endpoints)

    def with_states(self, states: list[ContainerState]) -> Context:
        """The same context with the ports read off container states the caller already has."""
        return self.with_endpoints(resolve_endpoints(self.config, self.runtime, states))

    def for_project(self, project: Project, runtime: Runtime | None = None) -> Context:
        """The same files and settings for another view of the project (a CI stack under its own name)."""
        return replace(
            self,
            project=project,
            runtime=runtime or runtime_for(project, self.environ, self.engine),
            known_endpoints=None,
        )


def load(
    project_dir: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    runtime: Runtime | None = None,
    connectors: Connectors | None = None,
) -> Context:
    """Find the project, parse its template and .env, and open the runtime: the top of every command."""
    env = os.environ if environ is None else environ
    return open_project(load_project(project_dir, cwd, env), environ=env, runtime=runtime, connectors=connectors)


def open_project(
    project: Project,
    *,
    environ: Mapping[str, str] | None = None,
    runtime: Runtime | None = None,
    connectors: Connectors | None = None,
) -> Context:
    """The context of a project found already (a command that holds the project's lock reads .env under it)."""
    env = os.environ if environ is None else environ
    files = read_env_files(project)
    project = _with_template_port(project, files)
    memo = Memo()
    return Context(
        project=project,
        environ=env,
        files=files,
        runtime=runtime or runtime_for(project, env, _engine(memo, env)),
        connectors=connectors or WireConnectors(),
        memo=memo,
    )


def _engine(memo: Memo, environ: Mapping[str, str]) -> EngineTarget:
    """The engine ENVIRON points at, resolved once per command (the docker CLI's config is read from disk)."""
    return memo.get("engine", (environ,), lambda: resolve_engine(environ))


PORT_KEYS = ("PORT", "HTTP_PORT", "APP_PORT", "SERVER_PORT")


def port_key(files: EnvFiles) -> tuple[str, int] | None:
    """The key (and value) the server takes its listening port from, as the template says: PORT, HTTP_PORT, …"""
    bindings = files.template.bindings if files.template else {}
    for key in PORT_KEYS:
        value = (bindings[key].value or "").strip() if key in bindings else ""
        if value.isdigit() and 0 < int(value) < 65536:
            return key, int(value)
    return None


def host_port(ctx: Context) -> tuple[int, dict[str, str]]:
    """Where the server listens on the host, and what devenv sets for it: server.port when devenv.toml (or
    DEVENV_SERVER_PORT) sets it (then PORT too); else the port .env gives the server (PORT, HTTP_PORT, …), as it
    would listen without devenv; else 3000."""
    cfg = ctx.config
    if cfg.is_pinned("server.port") and cfg.server.port:
        return cfg.server.port, {"PORT": str(cfg.server.port)}
    values = ctx.files.current.values() if ctx.files.current else {}
    for key in PORT_KEYS:
        value = values.get(key, "").strip()
        if value.isdigit() and 0 < int(value) < 65536:
            return int(value), {}
    return cfg.server.port or 3000, {"PORT": str(cfg.server.port or 3000)}


def _with_template_port(project: Project, files: EnvFiles) -> Project:
    """PROJECT with server.container_port from the template (`HTTP_PORT=3001`) unless devenv.toml sets it."""
    found = port_key(files)
    cfg = project.config
    if found is None or cfg.is_pinned("server.container_port") or found[1] == cfg.server.container_port:
        return project
    return replace(project, config=replace(cfg, server=replace(cfg.server, container_port=found[1])))
