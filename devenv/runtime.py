"""The one module that talks to Docker: compose through python-on-whales, container state through the engine API.

Everything else receives a `Runtime` (the Protocol below), so unit tests pass a fake and integration tests the real
`DockerRuntime`. python-on-whales and docker are imported lazily: they cost ~300 ms and `--help` must not pay it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from devenv.errors import DevenvError, EngineUnreachable
from devenv.errors import tail as output_tail

PROJECT_LABEL = "devenv.project"
CI_LABEL = "devenv.ci"
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"
COMPOSE_ONEOFF_LABEL = "com.docker.compose.oneoff"


class ComposeFailed(DevenvError):
    """`docker compose` exited non-zero; carries its argv and the tail of its output."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str, hint: str | None = None) -> None:
        tail = output_tail(output)
        last = tail.splitlines()[-1] if tail else "no output"
        super().__init__(f"`docker compose {' '.join(argv)}` failed (exit {returncode}): {last}", hint, details=tail)
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output


@dataclass(frozen=True)
class ContainerState:
    """What the engine says about one container of the stack."""

    service: str
    name: str
    id: str
    status: str  # created | running | restarting | exited | dead | paused | removing
    health: str | None  # starting | healthy | unhealthy | None (no healthcheck)
    exit_code: int
    restart_count: int
    oneoff: bool = False
    image: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    created: str = ""
    ports: dict[int, int] = field(default_factory=dict)  # container TCP port -> published host port


@dataclass(frozen=True)
class StackResources:
    """Everything in the engine carrying a given label (containers, networks, volumes by name)."""

    containers: tuple[str, ...]
    networks: tuple[str, ...]
    volumes: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.containers or self.networks or self.volumes)


class Runtime(Protocol):
    """The operations devenv needs from a container engine for one compose project."""

    project_name: str

    def engine_version(self) -> str: ...
    def host_address(self) -> str: ...
    def up(self, services: Sequence[str], *, build: bool) -> None: ...
    def down(self, *, volumes: bool) -> None: ...
    def build(self, services: Sequence[str]) -> None: ...
    def containers(self, *, detail: bool = True) -> list[ContainerState]: ...
    def logs(self, services: Sequence[str], *, tail: int | None = None) -> str: ...
    def published_ports(self) -> dict[tuple[str, int], int]: ...
    def run_oneoff(self, service: str, argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[int, str]: ...
    def resources(self, label: str | None = None) -> StackResources: ...
    def compose_argv(self, *args: str) -> list[str]: ...


def docker_host() -> str:
    """The engine endpoint the docker CLI would use: DOCKER_HOST, else the current context's, else the local socket."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    config_dir = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker"))
    context = os.environ.get("DOCKER_CONTEXT")
    if not context:
        try:
            context = json.loads((config_dir / "config.json").read_text()).get("currentContext")
        except (OSError, ValueError):
            context = None
    if context and context != "default":
        meta = config_dir / "contexts" / "meta" / hashlib.sha256(context.encode()).hexdigest() / "meta.json"
        try:
            host = json.loads(meta.read_text())["Endpoints"]["docker"]["Host"]
            if isinstance(host, str) and host:
                return host
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return "unix:///var/run/docker.sock"


def engine_host_address(host: str | None = None) -> str:
    """Where published ports are reachable: loopback for a local engine, the engine's host for a remote one."""
    url = urlparse(host or docker_host())
    if url.scheme in {"tcp", "ssh", "http", "https"} and url.hostname:
        return url.hostname
    return "127.0.0.1"


def _unreachable(detail: str) -> EngineUnreachable:
    first = detail.strip().splitlines()[0] if detail.strip() else "no answer"
    if "FileNotFoundError" in first or "No such file or directory" in first:
        first = "the socket does not exist"
    elif "ConnectionRefusedError" in first or "Connection refused" in first:
        first = "connection refused"
    return EngineUnreachable(
        f"Docker Engine not reachable at {docker_host()}: {first}",
        "start Docker (Docker Desktop, `sudo systemctl start docker`, or `make engine` on Debian), "
        "or point DOCKER_HOST / `docker context use` at a running engine.",
    )


def _is_connection_error(text: str) -> bool:
    # Only the engine's own words: "no such host" or "connection refused" alone may be a registry's (a failed pull).
    needles = ("Cannot connect to the Docker daemon", "error during connect", "dial unix")
    return any(n.lower() in text.lower() for n in needles)


class DockerRuntime:
    """The real engine: compose via python-on-whales (argv built as data), state via the engine API."""

    def __init__(self, project_name: str, compose_file: Path, project_dir: Path) -> None:
        self.project_name = project_name
        self.compose_file = compose_file
        self.project_dir = project_dir
        self._lock = threading.Lock()
        self._whales: Any = None
        self._api: Any = None

    # -- clients ------------------------------------------------------------------------------------------------
    @property
    def whales(self) -> Any:
        with self._lock:
            if self._whales is None:
                from python_on_whales import DockerClient

                self._whales = DockerClient(
                    compose_files=[self.compose_file],
                    compose_project_name=self.project_name,
                    compose_project_directory=self.project_dir,
                )
            return self._whales

    @property
    def api(self) -> Any:
        with self._lock:
            if self._api is None:
                import docker

                try:
                    self._api = docker.DockerClient(base_url=docker_host(), timeout=30)
                except docker.errors.DockerException as ex:
                    raise _unreachable(str(ex)) from ex
            return self._api

    def _compose(self, call: str, *args: Any, **kwargs: Any) -> Any:
        from python_on_whales.exceptions import DockerException

        try:
            return getattr(self.whales.compose, call)(*args, **kwargs)
        except DockerException as ex:
            output = (ex.stdout or "") + (ex.stderr or "")
            if _is_connection_error(output):
                raise _unreachable(output) from ex
            argv = [str(a) for a in ex.docker_command]
            sub = argv[argv.index("compose") + 1 :] if "compose" in argv else argv
            raise ComposeFailed(_strip_globals(sub), ex.return_code, output) from ex

    # -- engine -------------------------------------------------------------------------------------------------
    def engine_version(self) -> str:
        import docker

        try:
            return str(self.api.version()["Version"])
        except docker.errors.DockerException as ex:
            raise _unreachable(str(ex)) from ex
        except Exception as ex:  # requests' connection errors
            raise _unreachable(str(ex)) from ex

    def host_address(self) -> str:
        return engine_host_address()

    # -- compose ------------------------------------------------------------------------------------------------
    def compose_argv(self, *args: str) -> list[str]:
        """The docker compose command line for this project (for interactive commands run with exec)."""
        return [
            "docker",
            "compose",
            "--project-name",
            self.project_name,
            "--file",
            str(self.compose_file),
            "--project-directory",
            str(self.project_dir),
            *args,
        ]

    def up(self, services: Sequence[str], *, build: bool) -> None:
        # The one compose call on `up`'s critical path runs from its argv directly: importing python-on-whales
        # first would delay the containers' start by ~0.3 s (see the pg_redis benchmark).
        args = ["up", "--detach", "--remove-orphans", *(["--build"] if build else []), *services]
        code, output = self._compose_cli(self.compose_argv(*args))
        if code != 0:
            raise ComposeFailed(args, code, output)

    def down(self, *, volumes: bool) -> None:
        if not self.compose_file.exists():
            # Never rendered here (or .devenv/ was deleted): compose finds the containers by project label.
            args = ["down", "--remove-orphans", "--timeout", "10", *(["--volumes"] if volumes else [])]
            code, output = self._compose_cli(["docker", "compose", "--project-name", self.project_name, *args])
            if code != 0:
                raise ComposeFailed(args, code, output)
            return
        self._compose("down", volumes=volumes, remove_orphans=True, quiet=True, timeout=10)

    def build(self, services: Sequence[str]) -> None:
        """(Re)build images, e.g. the server's, so one-off jobs see new migrations (BuildKit's cache keeps it fast)."""
        self._compose("build", list(services), quiet=True)

    def logs(self, services: Sequence[str], *, tail: int | None = None) -> str:
        out = self._compose("logs", list(services), tail=str(tail) if tail is not None else None, no_log_prefix=False)
        return str(out)

    def stream_logs(self, services: Sequence[str], *, tail: int | None, follow: bool) -> Iterator[tuple[str, bytes]]:
        """Log lines as they come (for `devenv logs -f`)."""
        stream: Iterator[tuple[str, bytes]] = self._compose(
            "logs", list(services), tail=str(tail) if tail is not None else None, follow=follow, stream=True
        )
        return stream

    def published_ports(self) -> dict[tuple[str, int], int]:
        """(service, container port) -> host port for every published TCP port of the stack: one API call."""
        found: dict[tuple[str, int], int] = {}
        for c in self._listed():
            service = (c.get("Labels") or {}).get(COMPOSE_SERVICE_LABEL, "")
            for port, host_port in _tcp_ports(c).items():
                found.setdefault((service, port), host_port)
        return found

    def run_oneoff(self, service: str, argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[int, str]:
        """Run a one-off container of SERVICE without its dependencies; returns exit code and combined output."""
        cmd = self.compose_argv("run", "--rm", "--no-deps", "-T")
        for key, value in (env or {}).items():
            cmd += ["-e", f"{key}={value}"]
        cmd += [service, *argv]
        return self._compose_cli(cmd)

    @staticmethod
    def _compose_cli(argv: list[str]) -> tuple[int, str]:
        """Run a docker compose command line; exit code and combined output (a dead engine raises)."""
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        output = done.stdout + done.stderr
        if done.returncode != 0 and _is_connection_error(output):
            raise _unreachable(output)
        return done.returncode, output

    # -- state --------------------------------------------------------------------------------------------------
    def _engine_call(self, call: Callable[[], Any]) -> Any:
        """One engine API call, with the engine's failures mapped to devenv's errors (None: no such container)."""
        import docker

        try:
            return call()
        except docker.errors.NotFound:
            return None  # e.g. a container vanished between list and inspect
        except docker.errors.DockerException as ex:
            raise _unreachable(str(ex)) from ex
        except DevenvError:
            raise
        except Exception as ex:
            if _is_connection_error(str(ex)) or "Connection aborted" in str(ex):
                raise _unreachable(str(ex)) from ex
            raise

    def _listed(self) -> list[dict[str, Any]]:
        """The stack's containers as the engine lists them: one API call, no per-container inspect."""
        filters = {"label": f"{COMPOSE_PROJECT_LABEL}={self.project_name}"}
        return list(self._engine_call(lambda: self.api.api.containers(all=True, filters=filters)) or [])

    def containers(self, *, detail: bool = True) -> list[ContainerState]:
        """The stack's containers. With detail=False (the wait loops' cadence) one list call per poll: a container
        is inspected only when it may just have restarted (up for under a second, created well before)."""
        now = time.time()
        states = []
        for c in self._listed():
            labels = dict(c.get("Labels") or {})
            text = str(c.get("Status") or "")
            status = str(c.get("State") or "unknown")
            exited = re.match(r"Exited \((-?\d+)\)", text)
            health = re.search(r"\((healthy|unhealthy|health: starting)\)", text)
            state: dict[str, Any] = {
                "Status": status,
                "ExitCode": int(exited.group(1)) if exited else 0,
                "Health": {"Status": health.group(1).removeprefix("health: ")} if health else None,
            }
            restart_count = 0
            maybe_restarted = status == "running" and "Less than a second" in text and now - c.get("Created", now) > 1.5
            if detail or maybe_restarted:
                info = self._engine_call(partial(self.api.api.inspect_container, str(c["Id"])))
                if info is not None:
                    state = info.get("State") or state
                    restart_count = int(info.get("RestartCount") or 0)
            states.append(
                ContainerState(
                    service=labels.get(COMPOSE_SERVICE_LABEL, ""),
                    name=str((c.get("Names") or ["?"])[0]).lstrip("/"),
                    id=str(c.get("Id", "")),
                    status=str(state.get("Status", "unknown")),
                    health=(state.get("Health") or {}).get("Status"),
                    exit_code=int(state.get("ExitCode") or 0),
                    restart_count=restart_count,
                    oneoff=labels.get(COMPOSE_ONEOFF_LABEL) == "True",
                    image=str(c.get("Image", "")),
                    labels=labels,
                    created=str(c.get("Created", "")),
                    ports=_tcp_ports(c),
                )
            )
        return sorted(states, key=lambda s: (s.service, s.name))

    def resources(self, label: str | None = None) -> StackResources:
        """Containers, networks and volumes carrying LABEL (default: this stack's devenv.project label)."""
        import docker

        selector = label or f"{PROJECT_LABEL}={self.project_name}"
        try:
            containers = self.api.containers.list(all=True, filters={"label": selector})
            networks = self.api.networks.list(filters={"label": selector})
            volumes = self.api.volumes.list(filters={"label": selector})
        except docker.errors.DockerException as ex:
            raise _unreachable(str(ex)) from ex
        return StackResources(
            containers=tuple(sorted(c.name for c in containers)),
            networks=tuple(sorted(n.name for n in networks)),
            volumes=tuple(sorted(v.name for v in volumes)),
        )


def _tcp_ports(listed: dict[str, Any]) -> dict[int, int]:
    """Container TCP port -> published host port, from one entry of the engine's container list."""
    found: dict[int, int] = {}
    for binding in listed.get("Ports") or []:
        if binding.get("Type") == "tcp" and binding.get("PublicPort") and binding.get("PrivatePort"):
            found.setdefault(int(binding["PrivatePort"]), int(binding["PublicPort"]))
    return found


def _strip_globals(argv: list[str]) -> list[str]:
    """Drop compose's global flags (--file, --project-name, ...) from an argv, for shorter messages."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in {"--file", "-f", "--project-name", "-p", "--project-directory", "--env-file"}:
            skip = True
            continue
        out.append(arg)
    return out


@dataclass(frozen=True)
class LabelledStack:
    """A stack found by devenv's label: its name, its oldest resource's creation time, and what it holds."""

    name: str
    created: str  # RFC 3339, the oldest container's (or volume's) creation time; "" when unknown
    containers: int
    volumes: int
    networks: int


def _engine_api() -> Any:
    import docker

    try:
        return docker.DockerClient(base_url=docker_host(), timeout=30)
    except docker.errors.DockerException as ex:
        raise _unreachable(str(ex)) from ex


def labelled_stacks() -> list[LabelledStack]:
    """Every CI stack (label devenv.ci=true), across projects; developers' own stacks are never listed."""
    api = _engine_api()
    ci = f"{CI_LABEL}=true"
    found: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        return found.setdefault(name, {"created": [], "containers": 0, "volumes": 0, "networks": 0})

    for c in api.containers.list(all=True, filters={"label": [PROJECT_LABEL, ci]}):
        e = entry(c.labels[PROJECT_LABEL])
        e["containers"] += 1
        e["created"].append(str(c.attrs.get("Created", "")))
    for v in api.volumes.list(filters={"label": [PROJECT_LABEL, ci]}):
        e = entry((v.attrs.get("Labels") or {})[PROJECT_LABEL])
        e["volumes"] += 1
        e["created"].append(str(v.attrs.get("CreatedAt", "")))
    for n in api.networks.list(filters={"label": [PROJECT_LABEL, ci]}):
        e = entry((n.attrs.get("Labels") or {})[PROJECT_LABEL])
        e["networks"] += 1
        e["created"].append(str(n.attrs.get("Created", "")))
    return [
        LabelledStack(
            name, min((t for t in e["created"] if t), default=""), e["containers"], e["volumes"], e["networks"]
        )
        for name, e in sorted(found.items())
    ]


def remove_labelled(name: str) -> StackResources:
    """Remove every container, network and volume labelled devenv.project=NAME (never anything else)."""
    from concurrent.futures import ThreadPoolExecutor

    api = _engine_api()
    selector = {"label": f"{PROJECT_LABEL}={name}"}
    containers = api.containers.list(all=True, sparse=True, filters=selector)
    if containers:  # killing and removing a container is mostly waiting on the engine: all of them at once
        with ThreadPoolExecutor(max_workers=min(8, len(containers)), thread_name_prefix="remove") as pool:
            list(pool.map(lambda c: api.api.remove_container(c.id, force=True, v=True), containers))
    networks = api.networks.list(filters=selector)
    for n in networks:
        n.remove()
    volumes = api.volumes.list(filters=selector)
    for v in volumes:
        v.remove(force=True)
    return StackResources(
        tuple(str(c.attrs["Names"][0]).lstrip("/") for c in containers),
        tuple(n.name for n in networks),
        tuple(v.name for v in volumes),
    )


@dataclass(frozen=True)
class EngineFacts:
    """What `devenv doctor` needs to know about the engine."""

    host: str
    server_version: str
    compose_version: str  # "" when compose v2 is missing
    root_dir: str  # where Docker keeps its data (DockerRootDir)
    local_images: frozenset[str]


def engine_facts() -> EngineFacts:
    """Ask the engine (and the compose plugin) about itself; raises EngineUnreachable."""
    import docker

    api = _engine_api()
    try:
        info = api.info()
        tags = frozenset(tag for image in api.images.list() for tag in image.tags)
    except docker.errors.DockerException as ex:
        raise _unreachable(str(ex)) from ex
    except Exception as ex:  # requests' connection errors
        raise _unreachable(str(ex)) from ex
    done = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True, text=True, check=False)
    return EngineFacts(
        host=docker_host(),
        server_version=str(info.get("ServerVersion", "")),
        compose_version=done.stdout.strip() if done.returncode == 0 else "",
        root_dir=str(info.get("DockerRootDir", "")),
        local_images=tags,
    )
