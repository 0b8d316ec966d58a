"""The stack's services: which there are, what each needs, and the host ports they publish."""

from __future__ import annotations

from collections.abc import Sequence

from devenv.config import Config
from devenv.errors import UsageError
from devenv.ports import PortClaim

SERVICES = ("postgres", "redis", "migrate", "server")
LONG_RUNNING = ("postgres", "redis", "server")
DEPENDS: dict[str, tuple[str, ...]] = {
    "postgres": (),
    "redis": (),
    "migrate": ("postgres",),
    "server": ("postgres", "redis", "migrate"),
}
PORT_SETTINGS = {
    "postgres": "postgres.port in devenv.toml or DEVENV_POSTGRES_PORT",
    "redis": "redis.port in devenv.toml or DEVENV_REDIS_PORT",
    "server": "server.port in devenv.toml or DEVENV_SERVER_PORT",
}


def expand_services(requested: Sequence[str]) -> list[str]:
    """The requested services plus what they depend on, in start order; all when none are named."""
    unknown = [s for s in requested if s not in SERVICES]
    if unknown:
        raise UsageError(
            f"unknown service {unknown[0]!r}.", f"choose from {', '.join(SERVICES)} (or name none for all)."
        )
    wanted: set[str] = set()

    def add(name: str) -> None:
        if name not in wanted:
            wanted.add(name)
            for dep in DEPENDS[name]:
                add(dep)

    for name in requested or SERVICES:
        add(name)
    return [s for s in SERVICES if s in wanted]


def port_claims(config: Config, services: Sequence[str]) -> list[PortClaim]:
    """The host ports the selected services publish, with the setting that chooses each."""
    ports = {"postgres": config.postgres.port, "redis": config.redis.port, "server": config.server.port}
    return [PortClaim(s, ports[s], PORT_SETTINGS[s]) for s in services if s in ports]
