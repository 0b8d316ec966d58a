"""Where the stack's services answer from the host: the engine's address and the published ports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from devenv.project import Project
from devenv.runtime import ContainerState, Runtime


@dataclass(frozen=True)
class Endpoints:
    """Host-side address of each service; a port is None while the service is not published."""

    host: str
    postgres_port: int | None
    redis_port: int | None
    server_port: int | None

    def database_url(self, user: str, password: str, db: str, *, masked: bool = False) -> str:
        """postgresql:// URL with percent-encoded credentials (password as *** when masked)."""
        secret = "***" if masked else quote(password, safe="")
        return f"postgresql://{quote(user, safe='')}:{secret}@{self.host}:{self.postgres_port}/{quote(db, safe='')}"

    def redis_url(self, password: str, db: int, *, masked: bool = False) -> str:
        """redis:// URL with the password percent-encoded (*** when masked)."""
        auth = ""
        if password:
            # `default:` rather than an empty user: redis-cli 7.0 sends AUTH "" <password> for redis://:pw@ URLs.
            auth = "default:***@" if masked else f"default:{quote(password, safe='')}@"
        return f"redis://{auth}{self.host}:{self.redis_port}/{db}"

    def server_url(self) -> str:
        """The server's base URL."""
        return f"http://{self.host}:{self.server_port}"

    def masked_url(self, service: str, project: Project) -> str:
        """The summary's URL for SERVICE, passwords masked."""
        from devenv.envfile import stack_settings

        settings = stack_settings(project)
        if service == "postgres" and self.postgres_port:
            return self.database_url(settings.pg_user, settings.pg_password, settings.pg_db, masked=True)
        if service == "redis" and self.redis_port:
            return self.redis_url(settings.redis_password, settings.redis_db, masked=True)
        if service == "server" and self.server_port:
            return self.server_url()
        if service == "migrate":
            return "prisma migrate deploy: applied"
        return "-"


def resolve_endpoints(project: Project, runtime: Runtime, states: Sequence[ContainerState] | None = None) -> Endpoints:
    """Configured host ports, or the ones Docker published when the config says 0 (ephemeral): read off STATES
    when the caller already has them, else with one engine call for all three."""
    cfg = project.config
    published: dict[tuple[str, int], int] = {}
    if states is not None:
        for state in states:
            for inside, outside in state.ports.items():
                published.setdefault((state.service, inside), outside)
    elif not (cfg.postgres.port and cfg.redis.port and cfg.server.port):
        published = runtime.published_ports()

    def port(service: str, configured: int, container_port: int) -> int | None:
        return configured or published.get((service, container_port))

    return Endpoints(
        host=runtime.host_address(),
        postgres_port=port("postgres", cfg.postgres.port, 5432),
        redis_port=port("redis", cfg.redis.port, 6379),
        server_port=port("server", cfg.server.port, cfg.server.container_port),
    )
