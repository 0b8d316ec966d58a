"""Where the stack's services answer from the host: the engine's address and the published ports."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from devenv.engine.runtime import ContainerState, Runtime
from devenv.project.config import Config
from devenv.project.settings import POSTGRES_PORT, REDIS_PORT


@dataclass(frozen=True)
class Endpoints:
    """Host-side address of each service; a port is None while the service is not published."""

    host: str
    postgres_port: int | None
    redis_port: int | None
    server_port: int | None

    def port(self, service: str) -> int | None:
        """The host port of SERVICE (postgres, redis, server), None when it is not published."""
        return {"postgres": self.postgres_port, "redis": self.redis_port, "server": self.server_port}.get(service)

    def server_url(self) -> str:
        """The server's base URL."""
        return f"http://{self.host}:{self.server_port}"


def container_ports(config: Config) -> dict[str, int]:
    """The port each published service listens on inside its container."""
    return {"postgres": POSTGRES_PORT, "redis": REDIS_PORT, "server": config.server.container_port}


def published_from(states: Iterable[ContainerState]) -> dict[tuple[str, int], int]:
    """(service, container port) -> host port, read off container states the caller already has."""
    published: dict[tuple[str, int], int] = {}
    for state in states:
        if not state.oneoff:
            for inside, outside in state.ports.items():
                published.setdefault((state.service, inside), outside)
    return published


def resolve_endpoints(config: Config, runtime: Runtime, states: Iterable[ContainerState] | None = None) -> Endpoints:
    """Configured host ports, or the ones Docker published when the config says 0 (ephemeral): read off STATES
    when the caller already has them, else with one engine call (none when every port is configured)."""
    configured = {"postgres": config.postgres.port, "redis": config.redis.port, "server": config.server.port}
    if states is not None:
        published = published_from(states)
    elif all(configured.values()):
        published = {}
    else:
        published = runtime.published_ports()
    inside = container_ports(config)

    def port(service: str) -> int | None:
        return configured[service] or published.get((service, inside[service]))

    return Endpoints(
        host=runtime.host_address(),
        postgres_port=port("postgres"),
        redis_port=port("redis"),
        server_port=port("server"),
    )
