"""Extra services: the `[services.NAME]` tables of devenv.toml (workers, mail catchers, object storage, …).

Each table is either `from = "server"` (the server's image with another `command`, the same .env and mounts, started
after migrate) or `image = "…"` (any image). This module checks the tables (devenv.project.config hands it the raw TOML
and
how to name a key's line) and answers what the rest of devenv asks about them: their dependencies, host ports,
environment (`${VAR}` from .env, with the stack's in-network URLs), readiness and the URLs exported for them. It
imports nothing of devenv but the errors, so devenv.project.config can use it.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devenv.core.errors import ConfigError

BUILTIN = ("postgres", "redis", "migrate", "server")
KEYS = ("from", "image", "command", "ports", "environment", "volumes", "healthcheck", "ready", "depends_on")
# What people write for these keys elsewhere (compose, Procfiles): the did-you-mean names ours.
ALIASES = {
    "build": "from",
    "env": "environment",
    "env_file": "environment",
    "port": "ports",
    "expose": "ports",
    "volume": "volumes",
    "mounts": "volumes",
    "depends": "depends_on",
    "requires": "depends_on",
    "health": "healthcheck",
    "health_check": "healthcheck",
    "readiness": "ready",
    "ready_path": "ready",
    "entrypoint": "command",
    "cmd": "command",
}
NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,39}")
VOLUME_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*")
ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\$")
RESERVED_VOLUMES = ("pgdata", "redisdata")  # the stack's own data volumes
SETTLE_SECONDS = 1.0  # a service with ready = "none" counts as ready once it stayed up this long
DOCS = "See docs/extra-services.md."


@dataclass(frozen=True)
class PortSpec:
    """One published port: HOST (0 = Docker picks) -> CONTAINER."""

    host: int
    container: int


@dataclass(frozen=True)
class VolumeSpec:
    """A named volume (labelled like the stack's own) or a bind mount of a project path, at TARGET."""

    source: str
    target: str
    read_only: bool = False
    named: bool = True


@dataclass(frozen=True)
class Readiness:
    """What `up` waits for: tcp (a port accepts and keeps a connection), http (GET PATH answers 200), health (the
    container's healthcheck turned healthy), none (it stayed up for SETTLE_SECONDS)."""

    kind: str  # tcp | http | health | none
    port: int | None = None  # the container port probed (tcp, http)
    path: str = ""  # http


@dataclass(frozen=True)
class ExtraService:
    """One `[services.NAME]` table, checked."""

    name: str
    from_server: bool
    image: str = ""  # the image (empty for from = "server")
    command: tuple[str, ...] = ()
    ports: tuple[PortSpec, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    volumes: tuple[VolumeSpec, ...] = ()
    healthcheck: tuple[str, ...] = ()  # ("CMD", …) or ("CMD-SHELL", "…")
    ready: Readiness = field(default_factory=lambda: Readiness("none"))
    depends_on: tuple[str, ...] | None = None  # None: the defaults (a from-server worker: what the server needs)

    @property
    def env_file(self) -> str:
        """The name of its generated env file (in the private folder of devenv.core.state)."""
        return f"service-{self.name}.env"

    @property
    def url_variable(self) -> str:
        """The variable `ci up` / `run` export its URL as: MAIL_URL for `mail`."""
        return self.name.upper().replace("-", "_") + "_URL"

    def host_port(self, container: int) -> int | None:
        """The configured host port for CONTAINER (0: Docker picks; None: not published)."""
        return next((p.host for p in self.ports if p.container == container), None)


Where = Callable[[str], str]  # dotted key -> "devenv.toml:LINE: KEY"
Convert = Callable[[str, Any, str], Any]  # (devenv.project.config kind, value, dotted key) -> checked value


def _fail(where: Where, dotted: str, problem: str, hint: str) -> ConfigError:
    return ConfigError(f"{where(dotted)} {problem}", f"{hint} {DOCS}")


def parse_services(raw: Any, where: Where, convert: Convert) -> tuple[ExtraService, ...]:
    """The `[services]` table: each NAME checked (unknown keys with a did-you-mean, every value), in file order."""
    if not isinstance(raw, dict):
        raise _fail(where, "services", "must be a table of [services.NAME] tables.", "e.g. [services.worker].")
    names = list(raw)
    parsed = tuple(_service(name, raw[name], names, where, convert) for name in names)
    _check_cycles(parsed, where)
    return parsed


def _service(name: str, table: Any, names: Sequence[str], where: Where, convert: Convert) -> ExtraService:
    dotted = f"services.{name}"
    if name in BUILTIN:
        raise _fail(where, dotted, f"is one of devenv's own services ({', '.join(BUILTIN)}).", "give it another name.")
    if not NAME_RE.fullmatch(name):
        raise _fail(
            where,
            dotted,
            f"{name!r} is not a service name.",
            "use lowercase letters, digits and '-', starting with a letter (at most 40), e.g. [services.worker].",
        )
    if not isinstance(table, dict):
        raise _fail(where, dotted, "must be a table.", f"write it as a [{dotted}] section.")
    for key in table:
        if key not in KEYS:
            close = [ALIASES[key]] if key in ALIASES else difflib.get_close_matches(key, KEYS, n=1, cutoff=0.6)
            hint = f"did you mean '{dotted}.{close[0]}'?" if close else f"known keys here: {', '.join(sorted(KEYS))}."
            raise ConfigError(f"{where(f'{dotted}.{key}')} is not a devenv.toml key.", f"{hint} {DOCS}")
    source, image = table.get("from"), table.get("image")
    if (source is None) == (image is None):
        raise _fail(
            where,
            dotted,
            "needs exactly one of `from` and `image`." if source is None else "has both `from` and `image`.",
            'write from = "server" (the server\'s image with another command) or image = "…" (any image).',
        )
    if source is not None and source != "server":
        raise _fail(
            where, f"{dotted}.from", f"= {source!r}: only the server's image can be reused.", 'write from = "server".'
        )
    if image is not None:
        image = convert("image", image, f"{dotted}.image")
    command: tuple[str, ...] = ()
    if "command" in table:
        command = convert("argv", table["command"], f"{dotted}.command")
    ports = tuple(_port(item, f"{dotted}.ports", where, convert) for item in _list(table, "ports", dotted, where))
    seen: set[int] = set()
    for port in ports:
        if port.container in seen:
            raise _fail(where, f"{dotted}.ports", f"publishes container port {port.container} twice.", "keep one.")
        seen.add(port.container)
    environment = _environment(table.get("environment", {}), f"{dotted}.environment", where)
    volumes = tuple(
        _volume(item, f"{dotted}.volumes", where, convert) for item in _list(table, "volumes", dotted, where)
    )
    healthcheck: tuple[str, ...] = ()
    if "healthcheck" in table:
        value = table["healthcheck"]
        if isinstance(value, str) and value.strip():
            healthcheck = ("CMD-SHELL", value)
        else:
            healthcheck = ("CMD", *convert("argv", value, f"{dotted}.healthcheck"))
    ready = _ready(table.get("ready"), f"{dotted}.ready", ports, bool(healthcheck), where)
    depends: tuple[str, ...] | None = None
    if "depends_on" in table:
        if not isinstance(table["depends_on"], list):
            raise _fail(where, f"{dotted}.depends_on", "must be a list of service names.", 'e.g. ["postgres"].')
        depends = tuple(_dependency(item, name, names, f"{dotted}.depends_on", where) for item in table["depends_on"])
    return ExtraService(
        name=name,
        from_server=source is not None,
        image=image or "",
        command=command,
        ports=ports,
        environment=environment,
        volumes=volumes,
        healthcheck=healthcheck,
        ready=ready,
        depends_on=depends,
    )


def _list(table: Mapping[str, Any], key: str, dotted: str, where: Where) -> list[Any]:
    value = table.get(key, [])
    if not isinstance(value, list):
        examples = {"ports": '["8025:8025", 1025]', "volumes": '["mailpit-data:/data"]'}
        raise _fail(where, f"{dotted}.{key}", "must be a list.", f"e.g. {key} = {examples[key]}.")
    return value


def _port(item: Any, dotted: str, where: Where, convert: Convert) -> PortSpec:
    """8025 (host 8025 -> container 8025) or "HOST:CONTAINER" ("0:8025": Docker picks the host port)."""
    if isinstance(item, int) and not isinstance(item, bool):
        number = convert("container_port", item, dotted)
        return PortSpec(number, number)
    parts = item.split(":") if isinstance(item, str) else []
    if len(parts) == 1 and parts[0].strip().isdigit():
        number = convert("container_port", parts[0], dotted)
        return PortSpec(number, number)
    if len(parts) != 2:
        raise _fail(
            where, dotted, f"has {item!r}, not a port.", 'use 8025 or "HOST:CONTAINER" ("0:8025": any host port).'
        )
    return PortSpec(convert("port", parts[0], dotted), convert("container_port", parts[1], dotted))


def _environment(value: Any, dotted: str, where: Where) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _fail(where, dotted, 'must be a table of NAME = "value".', f"write it as a [{dotted}] section.")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not ENV_KEY_RE.fullmatch(key):
            raise _fail(where, f"{dotted}.{key}", "is not a variable name.", "use letters, digits and '_'.")
        if isinstance(item, bool):
            item = "true" if item else "false"
        if not isinstance(item, str | int | float):
            raise _fail(where, f"{dotted}.{key}", f"= {item!r} must be a string.", 'quote it: NAME = "value".')
        out[key] = str(item)
    return out


def _volume(item: Any, dotted: str, where: Where, convert: Convert) -> VolumeSpec:
    """NAME:/TARGET[:ro] (a named volume, labelled) or PATH:/TARGET[:ro] (PATH relative to the project root)."""
    parts = item.split(":") if isinstance(item, str) else []
    mode = parts.pop() if len(parts) == 3 else "rw"
    if len(parts) != 2 or mode not in {"ro", "rw"} or not parts[0] or not parts[1].startswith("/"):
        raise _fail(
            where,
            dotted,
            f"has {item!r}, not SOURCE:TARGET[:ro].",
            "SOURCE is a volume name or a path relative to the project root (./data), TARGET an absolute path.",
        )
    source, target = parts
    if VOLUME_NAME_RE.fullmatch(source) and "/" not in source and not source.startswith("."):
        if source in RESERVED_VOLUMES:
            raise _fail(
                where, dotted, f"uses {source!r}, the stack's own data volume.", "give the volume its own name."
            )
        return VolumeSpec(source, target, mode == "ro", named=True)
    return VolumeSpec(convert("relpath", source, dotted), target, mode == "ro", named=False)


def _ready(value: Any, dotted: str, ports: Sequence[PortSpec], health: bool, where: Where) -> Readiness:
    """tcp:PORT | http:PATH | none; unset: the healthcheck, else tcp on the first port, else none."""
    if value is None:
        if health:
            return Readiness("health")
        return Readiness("tcp", ports[0].container) if ports else Readiness("none")
    text = value.strip() if isinstance(value, str) else ""
    kind, _, arg = text.partition(":")
    hint = 'use "tcp:PORT" (a container port in `ports`), "http:PATH" (GET on the first port) or "none".'
    if kind == "none" and not arg:
        return Readiness("none")
    if kind == "tcp" and arg.isdigit():
        port = int(arg)
        if port not in {p.container for p in ports}:
            raise _fail(where, dotted, f"= {value!r}: port {port} is not in `ports`.", "publish it in `ports` first.")
        return Readiness("tcp", port)
    if kind == "http" and arg.startswith("/") and not any(c.isspace() for c in arg):
        if not ports:
            raise _fail(where, dotted, f"= {value!r} needs a port to ask.", "publish the HTTP port in `ports`.")
        return Readiness("http", ports[0].container, arg)
    raise _fail(where, dotted, f"= {value!r} is not a readiness check.", hint)


def _dependency(item: Any, name: str, names: Sequence[str], dotted: str, where: Where) -> str:
    known = [*BUILTIN, *(n for n in names if n != name)]
    if item == name:
        raise _fail(where, dotted, f"names {name} itself.", "a service cannot wait for itself.")
    if not isinstance(item, str) or item not in known:
        close = difflib.get_close_matches(str(item), known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"choose from {', '.join(known)}."
        raise _fail(where, dotted, f"names {item!r}, which is not a service.", hint)
    return item


def _check_cycles(services: Sequence[ExtraService], where: Where) -> None:
    edges = {s.name: [d for d in (s.depends_on or ()) if d not in BUILTIN] for s in services}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            cycle = " -> ".join((*path[path.index(name) :], name))
            raise _fail(where, f"services.{name}.depends_on", f"makes a cycle ({cycle}).", "drop one of them.")
        for dep in edges.get(name, []):
            visit(dep, (*path, name))

    for service in services:
        visit(service.name, ())


# -- what the rest of devenv asks ---------------------------------------------------------------------------------
def dependencies(service: ExtraService, available: Sequence[str]) -> tuple[str, ...]:
    """What SERVICE waits for, of the AVAILABLE services: its depends_on, or for a from-server worker what the server
    needs (postgres, redis, migrate)."""
    if service.depends_on is not None:
        return service.depends_on
    if service.from_server:
        return tuple(s for s in ("postgres", "redis", "migrate") if s in available)
    return ()


def interpolate(service: ExtraService, values: Mapping[str, str], where: Where) -> dict[str, str]:
    """SERVICE's environment with ${VAR} replaced from VALUES ($$ is a literal $); an unknown VAR is an error
    naming the line."""
    out: dict[str, str] = {}
    for key, raw in service.environment.items():

        def sub(m: re.Match[str], key: str = key) -> str:
            if m.group(0) == "$$":
                return "$"
            var = m.group(1)
            if var not in values:
                raise ConfigError(
                    f"{where(f'services.{service.name}.environment.{key}')} uses ${{{var}}}, which .env does not set.",
                    f"add {var} to .env (or the template), or write the value itself. {DOCS}",
                )
            return values[var]

        out[key] = VAR_RE.sub(sub, raw)
    return out


def published(service: ExtraService, ports: Mapping[int, int]) -> int | None:
    """The host port its readiness (or first) port is published on, from a container's PORTS (inside -> host)."""
    inside = (
        service.ready.port
        if service.ready.port is not None
        else (service.ports[0].container if service.ports else None)
    )
    if inside is None:
        return None
    return ports.get(inside) or service.host_port(inside) or None


def url(service: ExtraService, host: str, port: int | None) -> str:
    """http://HOST:PORT for an http service, tcp://HOST:PORT for any other with a port ("" without one)."""
    if port is None:
        return ""
    scheme = "http" if service.ready.kind == "http" else "tcp"
    return f"{scheme}://{host}:{port}"


def shell_words(argv: Sequence[str]) -> str:
    """ARGV as one shell line, for messages."""
    return shlex.join(argv)


def urls(services: Sequence[ExtraService], ports: Mapping[str, Mapping[int, int]], host: str) -> dict[str, str]:
    """NAME -> its URL (see `url`) for the services with a published port; PORTS: service -> inside -> host port."""
    found = {s.name: url(s, host, published(s, ports.get(s.name, {}))) for s in services}
    return {name: value for name, value in found.items() if value}
