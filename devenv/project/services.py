"""The stack's services: which this project has (and why), what each needs, and the host ports they publish.

Postgres is always there. Redis when the template names a REDIS_* key or the server depends on a Redis client
(`[redis] enabled` decides otherwise). The server and its migrate job when the server has a Dockerfile; without
one the server runs on the host (`devenv dev`) and only the databases are in containers. The `[services.NAME]`
tables of devenv.toml (devenv.project.extras) come after them, in file order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from devenv.core.errors import ConfigError, UsageError
from devenv.engine.ports import PortClaim
from devenv.project.config import Config
from devenv.project.envfile import EnvFiles
from devenv.project.extras import ExtraService, dependencies
from devenv.project.nodeapp import NodeApp

SERVICES = ("postgres", "redis", "migrate", "server")
LONG_RUNNING = ("postgres", "redis", "server")
PORT_SETTINGS = {
    "postgres": "postgres.port in devenv.toml or DEVENV_POSTGRES_PORT",
    "redis": "redis.port in devenv.toml or DEVENV_REDIS_PORT",
    "server": "server.port in devenv.toml or DEVENV_SERVER_PORT",
}


@dataclass(frozen=True)
class Stack:
    """The services of this project's stack, in start order, and why Redis and the server are (not) in it."""

    services: tuple[str, ...] = SERVICES
    redis_reason: str = ""
    server_reason: str = ""
    server_mode: str = "container"  # container: built and run in the stack; host: `devenv dev` runs it here
    extras: tuple[ExtraService, ...] = ()  # [services.NAME] (their names are in `services` too)

    @property
    def server_on_host(self) -> bool:
        """The server runs on the host (`devenv dev`), migrations too (never an address: that is Endpoints.host)."""
        return self.server_mode == "host"

    @property
    def redis(self) -> bool:
        return "redis" in self.services

    @property
    def server(self) -> bool:
        return "server" in self.services

    @property
    def migrates(self) -> bool:
        return "migrate" in self.services

    def depends(self, service: str) -> tuple[str, ...]:
        """What SERVICE needs started first."""
        extra = self.extra(service)
        if extra is not None:
            return dependencies(extra, self.services)
        wanted = {"migrate": ("postgres",), "server": ("postgres", "redis", "migrate")}.get(service, ())
        return tuple(s for s in wanted if s in self.services)

    def long_running(self) -> tuple[str, ...]:
        return (*(s for s in LONG_RUNNING if s in self.services), *(e.name for e in self.extras))

    def extra(self, service: str) -> ExtraService | None:
        """The [services.NAME] table of SERVICE (None: one of devenv's own)."""
        return next((e for e in self.extras if e.name == service), None)

    def uses_server_image(self, services: Sequence[str]) -> bool:
        """Whether any of SERVICES runs the server's image (so `up` builds it)."""
        return any(s in {"server", "migrate"} or getattr(self.extra(s), "from_server", False) for s in services)


def redis_use(config: Config, files: EnvFiles, app: NodeApp) -> str | None:
    """Why the stack has Redis (None: it has none)."""
    if config.redis.enabled is not None:
        return "redis.enabled = true in devenv.toml" if config.redis.enabled else None
    keys = [k for k in (files.template.bindings if files.template else {}) if "REDIS" in k.upper()]
    if keys:
        return f"{keys[0]} in {files.template.path.name if files.template else 'the template'}"
    if app.redis_client:
        return f"the server depends on {app.redis_client}"
    return None


def server_mode(config: Config, has_dockerfile: bool, ci: bool) -> str:
    """container or host: server.mode / DEVENV_SERVER_MODE, else container when there is a Dockerfile.

    CI stacks always run the server in a container (there is no developer's terminal to run it in); one without a
    Dockerfile is migrated from the host.
    """
    if ci:  # no developer's terminal: the server in a container; without a Dockerfile, migrations from the host
        return "container" if has_dockerfile else "host"
    return config.server.mode or ("container" if has_dockerfile else "host")


def plan_stack(
    config: Config, files: EnvFiles, app: NodeApp, has_dockerfile: bool, migrates: bool, *, ci: bool = False
) -> Stack:
    """The services this project gets (MIGRATES: it has a Prisma schema, or devenv.toml sets migrate.command)."""
    redis = redis_use(config, files, app)
    services = ["postgres"]
    if redis:
        services.append("redis")
    mode = server_mode(config, has_dockerfile, ci)
    server_reason = ""
    if mode == "container" and has_dockerfile:
        services += ["migrate", "server"] if migrates else ["server"]
    elif mode == "host":
        why = (
            f"{config.where('server.mode')} = host"
            if config.server.mode == "host"
            else f"no {config.server.dockerfile}"
        )
        server_reason = f"{why}: the server runs on the host (`devenv dev`)"
    else:
        server_reason = f"no {config.server.dockerfile}"
    redis_reason = redis or "no REDIS_* key in the template and no Redis client"
    for extra in config.services:
        _check_extra(config, extra, services, "server" in services, redis_reason, server_reason, has_dockerfile)
    services += [e.name for e in config.services]
    return Stack(tuple(services), redis_reason, server_reason, mode, config.services)


def _check_extra(
    config: Config,
    extra: ExtraService,
    builtin: Sequence[str],
    server: bool,
    redis_reason: str,
    server_reason: str,
    has_dockerfile: bool,
) -> None:
    """A [services.NAME] table needs what it names: the server's image, and the services it depends on."""
    dotted = f"services.{extra.name}"
    if extra.from_server and not server:
        raise ConfigError(
            f'{config.where(dotted + ".from")} = "server": this project\'s stack has no server image '
            f"({server_reason}).",
            (
                "run the server in its container (server.mode = container) to run this worker beside it, or give "
                'the service its own image = "…".'
                if has_dockerfile
                else 'add the server\'s Dockerfile (server.dockerfile), or give the service its own image = "…".'
            ),
        )
    for dep in extra.depends_on or ():
        if dep in {"postgres", "redis", "migrate", "server"} and dep not in builtin:
            why = redis_reason if dep == "redis" else server_reason
            raise ConfigError(
                f"{config.where(dotted + '.depends_on')} names {dep}, which this project's stack has not ({why}).",
                "drop it from depends_on" + (", or set [redis] enabled = true." if dep == "redis" else "."),
            )


def expand_services(requested: Sequence[str], stack: Stack | None = None) -> list[str]:
    """The requested services plus what they depend on, in start order; all when none are named."""
    stack = stack or Stack()
    unknown = [s for s in requested if s not in SERVICES and s not in stack.services]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], stack.services, n=1, cutoff=0.6)
        raise UsageError(
            f"unknown service {unknown[0]!r}" + (f" (did you mean {close[0]!r}?)." if close else "."),
            f"choose from {', '.join(stack.services)} (or name none for all).",
        )
    missing = [s for s in requested if s not in stack.services]
    if missing:
        why = stack.redis_reason if missing[0] == "redis" else stack.server_reason
        raise UsageError(
            f"this project's stack has no {missing[0]} ({why}).",
            f"choose from {', '.join(stack.services)}"
            + (", or add a Dockerfile (server.dockerfile)" if missing[0] in {"server", "migrate"} else "")
            + (", or set [redis] enabled = true" if missing[0] == "redis" else "")
            + ".",
        )
    wanted: set[str] = set()

    def add(name: str) -> None:
        if name not in wanted:
            wanted.add(name)
            for dep in stack.depends(name):
                add(dep)

    for name in requested or stack.services:
        add(name)
    return [s for s in (*SERVICES, *(e.name for e in stack.extras)) if s in wanted]


def port_claims(config: Config, services: Sequence[str]) -> list[PortClaim]:
    """The host ports the selected services publish, with the setting that chooses each."""
    ports = {"postgres": config.postgres.port, "redis": config.redis.port, "server": config.server.port}
    claims = [PortClaim(s, ports[s], PORT_SETTINGS[s]) for s in services if s in ports]
    for extra in config.services:
        if extra.name in services:
            setting = f"services.{extra.name}.ports in devenv.toml"
            claims += [PortClaim(extra.name, p.host, setting) for p in extra.ports]
    return claims
