"""The one module that talks to Docker: compose through its CLI (argv as data, run by devenv.proc), state through
the Engine API (HTTP on the engine's socket, spoken here).

Everything else receives a `Runtime` (the Protocol below), so unit tests pass a fake and integration tests the real
`DockerRuntime`. Why no docker SDK or python-on-whales: importing them costs 0.15-0.3 s, more than `devenv status`
may take in all; devenv needs a dozen GET/DELETE calls whose JSON it reads at this edge only.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import quote, urlencode, urlparse

from devenv import proc, ssh
from devenv.engine import EngineTarget, endpoint, is_loopback, ssh_destination, ssh_login
from devenv.engine import resolve as resolve_engine
from devenv.errors import CommandFailed, ComposeFailed, DevenvError, EngineUnreachable

PROJECT_LABEL = "devenv.project"
CI_LABEL = "devenv.ci"
CHECKOUT_LABEL = "devenv.checkout"  # the absolute path of the checkout a stack belongs to
CHECKOUT_VAR = "DEVENV_CHECKOUT"  # compose interpolates it into CHECKOUT_LABEL (the compose file stays path-free)
MACHINE_LABEL = "devenv.machine"  # the id of the machine the checkout is on (devenv.machine): a path alone is not one
MACHINE_NAME_LABEL = "devenv.machine.name"  # that machine's host name, for people reading `devenv ls`
MACHINE_VAR = "DEVENV_MACHINE"
MACHINE_NAME_VAR = "DEVENV_MACHINE_NAME"
SECRETS_VAR = "DEVENV_SECRETS"  # and this one into the env_file paths of the generated env files (devenv.state)
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"
COMPOSE_ONEOFF_LABEL = "com.docker.compose.oneoff"
API_TIMEOUT = 30.0
ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


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


@dataclass(frozen=True)
class LabelledStack:
    """A stack found by devenv's label: its name, its oldest resource's creation time, and what it holds."""

    name: str
    created: str  # RFC 3339, the oldest container's (or volume's) creation time; "" when unknown
    containers: int
    volumes: int
    networks: int
    labels: dict[str, str] = field(default_factory=dict)  # devenv's labels of its resources (devenv.*)
    running: int = 0  # containers running
    jobs: int = 0  # one-shot containers (the migrate job): finished, not down
    ports: dict[str, int] = field(default_factory=dict)  # service -> a published host port
    volume_bytes: int | None = None  # the size of its volumes (None: the engine did not say)

    @property
    def checkout(self) -> str:
        """The checkout the stack belongs to ("" for a stack made before devenv labelled checkouts)."""
        return self.labels.get(CHECKOUT_LABEL, "")


@dataclass(frozen=True)
class EngineFacts:
    """What `devenv doctor` needs to know about the engine."""

    host: str
    server_version: str
    compose_version: str  # "" when compose v2 is missing
    root_dir: str  # where Docker keeps its data (DockerRootDir)
    local_images: frozenset[str]
    address: str = "127.0.0.1"  # where its published ports answer from here (devenv.engine)
    source: str = ""  # what chose the engine: DOCKER_HOST, a docker context, the default socket


class Runtime(Protocol):
    """Every operation devenv needs from a container engine, for one compose project."""

    project_name: str
    machine: tuple[str, str]  # this machine's (id, host name), labelled beside the checkout

    def host_address(self) -> str: ...
    def up(self, services: Sequence[str], *, build: bool) -> None: ...
    def build(self, services: Sequence[str], on_line: Callable[[str], None] | None = None) -> None: ...
    def down(self, *, volumes: bool) -> None: ...
    def containers(self, *, detail: bool = True) -> list[ContainerState]: ...
    def logs(self, services: Sequence[str], *, tail: int | None = None) -> str: ...
    def stream_logs(
        self, services: Sequence[str], on_line: Callable[[str], None], *, follow: bool, tail: int | None
    ) -> int: ...
    def published_ports(self) -> dict[tuple[str, int], int]: ...
    def run_oneoff(self, service: str, argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[int, str]: ...
    def watch(self, services: Sequence[str], on_line: Callable[[str], None]) -> proc.Background: ...
    def resources(self, label: str | None = None) -> StackResources: ...
    def compose_argv(self, *args: str) -> list[str]: ...
    def compose_env(self) -> dict[str, str]: ...
    def labelled_stacks(self, *, ci_only: bool, sizes: bool = False) -> list[LabelledStack]: ...
    def stack_labels(self, name: str) -> list[dict[str, str]]: ...
    def port_holders(self, port: int) -> list[tuple[str, dict[str, str]]]: ...
    def held_ports(self) -> set[int]: ...
    def host_answers(self, port: int) -> bool: ...
    def remove_labelled(self, name: str) -> StackResources: ...
    def remove_images(self, name: str, checkout: str) -> tuple[str, ...]: ...
    def engine_facts(self) -> EngineFacts: ...
    def exec_out(
        self, service: str, argv: Sequence[str], sink: BinaryIO, on_bytes: Callable[[int], None]
    ) -> tuple[int, str]: ...
    def exec_in(
        self, service: str, argv: Sequence[str], source: BinaryIO, on_bytes: Callable[[int], None]
    ) -> tuple[int, str]: ...


# -- where the engine is ------------------------------------------------------------------------------------------
def docker_host() -> str:
    """The engine endpoint the docker CLI would use: DOCKER_HOST, else the current context's, else the local socket."""
    return endpoint(os.environ)[0]


def _unreachable(detail: str, host: str | None = None) -> EngineUnreachable:
    """EngineUnreachable for the engine at HOST (default: docker_host()) from what was seen (an exception's text,
    ssh's stderr, compose's output), with the hint that fits: for a remote engine never "start Docker here"."""
    url = host or docker_host()
    parsed = urlparse(url)
    if parsed.scheme == "ssh":
        found = ssh.failure(detail, ssh_login(url))
        if found is not None:
            return EngineUnreachable(f"Docker Engine not reachable at {url}: {found.seen}", found.hint)
    lines = detail.strip().splitlines()
    first = (lines[-1] if parsed.scheme == "ssh" else lines[0]).strip() if lines else "no answer"
    if "FileNotFoundError" in first or "No such file or directory" in first:
        first = "the socket does not exist"
    elif "ConnectionRefusedError" in first or "Connection refused" in first:
        first = "connection refused"
    if parsed.scheme == "ssh":
        hint = (
            f"check that `ssh {ssh_login(url)} docker version` works from this shell, or point DOCKER_HOST / "
            "`docker context use` at a running engine."
        )
    elif parsed.scheme == "unix" or is_loopback(parsed.hostname or "localhost"):
        hint = (
            "start Docker (Docker Desktop, `sudo systemctl start docker`, or `make engine` on Debian), "
            "or point DOCKER_HOST / `docker context use` at a running engine."
        )
    else:
        hint = (
            f"check that the engine on {parsed.hostname} runs and listens on that port, and that this machine can "
            "reach it; or point DOCKER_HOST / `docker context use` at a running engine."
        )
    return EngineUnreachable(f"Docker Engine not reachable at {url}: {first}", hint)


def _is_connection_error(text: str) -> bool:
    # Only the engine's own words: "no such host" or "connection refused" alone may be a registry's (a failed pull).
    # Over ssh the docker CLI says "error during connect: … command [ssh …] has exited …: stderr=<ssh's words>".
    needles = ("Cannot connect to the Docker daemon", "error during connect", "dial unix", "docker system dial-stdio")
    return any(n.lower() in text.lower() for n in needles)


# -- the Engine API -----------------------------------------------------------------------------------------------
class EngineAPI(Protocol):
    """The engine's HTTP API as devenv uses it: JSON in, JSON out (None: 404, no such object)."""

    def request(self, method: str, path: str, query: dict[str, Any] | None = None) -> Any: ...


class ApiError(DevenvError):
    """The engine answered an API call with an error status."""


class HttpEngine:
    """The Engine API over the engine's socket (unix, tcp, tcp+TLS, or ssh through `docker system dial-stdio`).

    One HTTP/1.0 request per connection: the engine answers with the whole body and closes, so there is no
    chunked encoding or keep-alive to handle. Over ssh each request is one `ssh HOST docker system dial-stdio`
    riding on one shared master connection (devenv.ssh); the first one makes the master, so it runs alone.
    """

    def __init__(self, host: str | None = None, timeout: float = API_TIMEOUT) -> None:
        self.host = host or docker_host()
        self.timeout = timeout
        self._first = threading.Lock()  # held by the first ssh request: it makes the master the others reuse
        self._ssh_argv: list[str] | None = None  # set once the first ssh request went through

    def _exchange(self, data: bytes) -> bytes:
        url = urlparse(self.host)
        if url.scheme == "ssh":
            return self._over_ssh(data)
        sock: socket.socket
        if url.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(url.path)
            except BaseException:
                sock.close()
                raise
        elif url.scheme in {"tcp", "http", "https"}:
            tls = url.scheme == "https" or bool(
                os.environ.get("DOCKER_TLS_VERIFY") or os.environ.get("DOCKER_CERT_PATH")
            )
            default_port = 2376 if tls else 2375
            sock = socket.create_connection((url.hostname or "localhost", url.port or default_port), self.timeout)
            if tls:
                sock = self._tls(sock, url.hostname or "localhost")
        else:
            raise _unreachable(f"unsupported DOCKER_HOST scheme {url.scheme!r}", self.host)
        with sock:
            sock.sendall(data)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _tls(sock: socket.socket, hostname: str) -> socket.socket:
        import ssl

        certs = Path(os.environ.get("DOCKER_CERT_PATH") or Path.home() / ".docker")
        context = ssl.create_default_context(cafile=str(certs / "ca.pem") if (certs / "ca.pem").exists() else None)
        if (certs / "cert.pem").exists():
            context.load_cert_chain(str(certs / "cert.pem"), str(certs / "key.pem"))
        if not os.environ.get("DOCKER_TLS_VERIFY"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context.wrap_socket(sock, server_hostname=hostname)

    def _over_ssh(self, data: bytes) -> bytes:
        argv = self._ssh_argv
        if argv is not None:
            return self._dial(argv, data)
        with self._first:  # concurrent first calls (remove_labelled's pool) would each make a master
            argv = self._ssh_argv or ssh.argv(
                ssh_destination(self.host), ["docker", "system", "dial-stdio"], ssh.control_dir(os.environ)
            )
            answer = self._dial(argv, data)
            self._ssh_argv = argv
            return answer

    def _dial(self, argv: list[str], data: bytes) -> bytes:
        try:
            done = proc.exchange(argv, data, timeout=self.timeout)
        except CommandFailed as ex:  # killed at the deadline
            raise EngineUnreachable(
                f"Docker Engine not reachable at {self.host}: no answer over ssh within {self.timeout:g} s",
                f"sshd on the engine host did not answer in time: check that `ssh {ssh_login(self.host)} docker "
                "version` works from this shell.",
            ) from ex
        except DevenvError as ex:  # no ssh client at all
            raise EngineUnreachable(
                f"Docker Engine not reachable at {self.host}: {ex.message}",
                "install an OpenSSH client (the engine is reached over ssh).",
            ) from ex
        if not done.stdout:
            raise _unreachable(done.stderr or f"ssh exited {done.returncode} without an answer", self.host)
        return done.stdout

    def request(self, method: str, path: str, query: dict[str, Any] | None = None) -> Any:
        target = quote(path) + (f"?{urlencode(query)}" if query else "")
        data = f"{method} {target} HTTP/1.0\r\nHost: docker\r\nUser-Agent: devenv\r\n\r\n".encode()
        try:
            raw = self._exchange(data)
        except OSError as ex:
            raise _unreachable(f"{type(ex).__name__}: {ex}", self.host) from ex
        head, _, body = raw.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
        match = re.match(r"HTTP/\d\.\d (\d{3})", status_line)
        if not match:
            raise _unreachable(f"not an Engine API answer: {status_line[:80]!r}", self.host)
        status = int(match.group(1))
        if status == 404:
            return None
        if status >= 400 and b"\r\napi-version:" not in head.lower():  # the engine names its API version, always
            raise _unreachable(f"something answered HTTP {status} there, but not a Docker Engine", self.host)
        if status >= 400:
            try:
                message = json.loads(body).get("message", "")
            except (ValueError, AttributeError):
                message = body.decode(errors="replace")[:200]
            raise ApiError(f"the Docker Engine refused {method} {path}: {message} (HTTP {status})")
        if not body.strip():
            return None
        return json.loads(body)


def _filters(**labels: Sequence[str] | str) -> dict[str, str]:
    return {"filters": json.dumps({k: [v] if isinstance(v, str) else list(v) for k, v in labels.items()})}


# -- the runtime ----------------------------------------------------------------------------------------------------
class DockerRuntime:
    """The real engine: compose via its CLI (argv built as data, run by devenv.proc), state via the Engine API."""

    def __init__(
        self,
        project_name: str,
        compose_file: Path,
        project_dir: Path,
        engine: EngineAPI | None = None,
        checkout: str = "",
        secrets: str = "",
        target: EngineTarget | None = None,
        machine: tuple[str, str] = ("", ""),
    ) -> None:
        self.project_name = project_name
        self.compose_file = compose_file
        self.project_dir = project_dir
        self.checkout = checkout  # labelled on what compose creates (CHECKOUT_LABEL)
        self.secrets = secrets  # the folder of the generated env files
        self.target = target or resolve_engine()
        self.machine = machine  # (id, host name) labelled beside the checkout (MACHINE_LABEL, MACHINE_NAME_LABEL)
        self._engine = engine
        self._lock = threading.Lock()

    @property
    def engine(self) -> EngineAPI:
        with self._lock:
            if self._engine is None:
                self._engine = HttpEngine(self.target.url)
            return self._engine

    def _call(self, method: str, path: str, query: dict[str, Any] | None = None) -> Any:
        return self.engine.request(method, path, query)

    def host_address(self) -> str:
        """Where the stack's published ports answer from here (devenv.engine)."""
        return self.target.address

    # -- compose ------------------------------------------------------------------------------------------------
    def compose_env(self) -> dict[str, str]:
        """The environment compose (and every docker CLI of the stack) runs with: the user's, plus the checkout it
        labels resources with; for an ssh engine, devenv's ssh shim first on PATH (devenv.ssh: one connection)."""
        env = {
            **os.environ,
            CHECKOUT_VAR: self.checkout,
            SECRETS_VAR: self.secrets,
            MACHINE_VAR: self.machine[0],
            MACHINE_NAME_VAR: self.machine[1],
        }
        return ssh.environ_with_shim(env) if self.target.scheme == "ssh" else env

    def compose_argv(self, *args: str) -> list[str]:
        """The docker compose command line for this project."""
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

    def _compose(self, *args: str, on_line: Callable[[str], None] | None = None, by_name: bool = False) -> str:
        """Run a compose subcommand; its output, or ComposeFailed (EngineUnreachable for a dead engine)."""
        argv = (
            ["docker", "compose", "--project-name", self.project_name, *args] if by_name else self.compose_argv(*args)
        )
        env = self.compose_env()
        done = proc.stream(argv, on_line, env=env) if on_line is not None else proc.run(argv, env=env)
        if not done.ok:
            if _is_connection_error(done.output):
                raise _unreachable(done.output, self.target.url)
            raise ComposeFailed(list(args), done.returncode, done.output)
        return done.output

    def up(self, services: Sequence[str], *, build: bool) -> None:
        self._compose("up", "--detach", "--remove-orphans", *(["--build"] if build else []), *services)

    def build(self, services: Sequence[str], on_line: Callable[[str], None] | None = None) -> None:
        """(Re)build images, e.g. the server's, so one-off jobs see new migrations (BuildKit's cache keeps it fast)."""
        self._compose(
            "build", *(["--quiet"] if on_line is None else ["--progress", "plain"]), *services, on_line=on_line
        )

    def down(self, *, volumes: bool) -> None:
        # Never rendered here (or .devenv/ was deleted): compose finds the containers by project label.
        args = ["down", "--remove-orphans", "--timeout", "10", *(["--volumes"] if volumes else [])]
        self._compose(*args, by_name=not self.compose_file.exists())

    def logs(self, services: Sequence[str], *, tail: int | None = None) -> str:
        """The services' log lines, as plain text (compose writes terminal codes even with --no-color)."""
        text = self._compose("logs", "--no-color", *(["--tail", str(tail)] if tail is not None else []), *services)
        return ANSI_RE.sub("", text)

    def stream_logs(
        self, services: Sequence[str], on_line: Callable[[str], None], *, follow: bool, tail: int | None
    ) -> int:
        """The services' log lines as plain text, each handed to ON_LINE as it comes (`devenv logs` into a pipe)."""
        args = [
            "logs",
            "--no-color",
            *(["--follow"] if follow else []),
            *(["--tail", str(tail)] if tail is not None else []),
        ]
        done = proc.stream(
            self.compose_argv(*args, *services), lambda line: on_line(ANSI_RE.sub("", line)), env=self.compose_env()
        )
        if not done.ok and _is_connection_error(done.output):
            raise _unreachable(done.output, self.target.url)
        return done.returncode

    def watch(self, services: Sequence[str], on_line: Callable[[str], None]) -> proc.Background:
        """`compose watch --no-up` on SERVICES (the stack is up already), its lines as plain text."""
        argv = self.compose_argv("watch", "--no-up", *services)
        return proc.Background(argv, lambda line: on_line(ANSI_RE.sub("", line)), env=self.compose_env())

    def run_oneoff(self, service: str, argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[int, str]:
        """Run a one-off container of SERVICE without its dependencies; returns exit code and combined output."""
        cmd = self.compose_argv("run", "--rm", "--no-deps", "-T")
        for key, value in (env or {}).items():
            cmd += ["-e", f"{key}={value}"]
        done = proc.run([*cmd, service, *argv], env=self.compose_env())
        if not done.ok and _is_connection_error(done.output):
            raise _unreachable(done.output, self.target.url)
        return done.returncode, done.output

    def exec_out(
        self, service: str, argv: Sequence[str], sink: BinaryIO, on_bytes: Callable[[int], None]
    ) -> tuple[int, str]:
        """Run ARGV in the running SERVICE with its stdout streamed into SINK (a dump); exit code and stderr."""
        done = proc.pipe_out(self.compose_argv("exec", "-T", service, *argv), sink, on_bytes, env=self.compose_env())
        if not done.ok and _is_connection_error(done.stderr):
            raise _unreachable(done.stderr, self.target.url)
        return done.returncode, done.stderr

    def exec_in(
        self, service: str, argv: Sequence[str], source: BinaryIO, on_bytes: Callable[[int], None]
    ) -> tuple[int, str]:
        """Run ARGV in the running SERVICE with SOURCE streamed to its stdin (a restore); exit code and output."""
        done = proc.pipe_in(self.compose_argv("exec", "-T", service, *argv), source, on_bytes, env=self.compose_env())
        if not done.ok and _is_connection_error(done.output):
            raise _unreachable(done.output, self.target.url)
        return done.returncode, done.output

    # -- state --------------------------------------------------------------------------------------------------
    def _listed(self) -> list[dict[str, Any]]:
        """The stack's containers as the engine lists them: one API call, no per-container inspect."""
        found = self._call(
            "GET", "/containers/json", {"all": "1", **_filters(label=f"{COMPOSE_PROJECT_LABEL}={self.project_name}")}
        )
        return list(found or [])

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
                info = self._call("GET", f"/containers/{c['Id']}/json")
                if info is not None:  # None: it vanished between list and inspect
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

    def published_ports(self) -> dict[tuple[str, int], int]:
        """(service, container port) -> host port for every published TCP port of the stack: one API call."""
        found: dict[tuple[str, int], int] = {}
        for c in self._listed():
            service = (c.get("Labels") or {}).get(COMPOSE_SERVICE_LABEL, "")
            for port, host_port in _tcp_ports(c).items():
                found.setdefault((service, port), host_port)
        return found

    def resources(self, label: str | None = None) -> StackResources:
        """Containers, networks and volumes carrying LABEL (default: this stack's devenv.project label)."""
        selector = _filters(label=label or f"{PROJECT_LABEL}={self.project_name}")
        containers = self._call("GET", "/containers/json", {"all": "1", **selector}) or []
        networks = self._call("GET", "/networks", selector) or []
        volumes = (self._call("GET", "/volumes", selector) or {}).get("Volumes") or []
        return StackResources(
            containers=tuple(sorted(str(c["Names"][0]).lstrip("/") for c in containers)),
            networks=tuple(sorted(str(n["Name"]) for n in networks)),
            volumes=tuple(sorted(str(v["Name"]) for v in volumes)),
        )

    # -- across projects ------------------------------------------------------------------------------------------
    def labelled_stacks(self, *, ci_only: bool, sizes: bool = False) -> list[LabelledStack]:
        """Every devenv stack on the engine (CI_ONLY: only CI stacks, label devenv.ci=true), across projects.

        SIZES: also the size of each stack's volumes (the engine measures them: slower).
        """
        wanted = [PROJECT_LABEL, *([f"{CI_LABEL}=true"] if ci_only else [])]
        selector = _filters(label=wanted)
        found: dict[str, dict[str, Any]] = {}

        def entry(labels: dict[str, str]) -> dict[str, Any]:
            e = found.setdefault(
                labels[PROJECT_LABEL],
                {
                    "created": [],
                    "containers": 0,
                    "jobs": 0,
                    "volumes": [],
                    "networks": 0,
                    "labels": {},
                    "running": 0,
                    "ports": {},
                },
            )
            for key, value in labels.items():  # a checkout label that is empty (made by hand) never wins
                if key.startswith("devenv.") and (value or key not in e["labels"]):
                    e["labels"][key] = value
            return e

        for c in self._call("GET", "/containers/json", {"all": "1", **selector}) or []:
            labels = c.get("Labels") or {}
            e = entry(labels)
            e["containers"] += 1
            if labels.get(COMPOSE_SERVICE_LABEL) == "migrate" or labels.get(COMPOSE_ONEOFF_LABEL) == "True":
                e["jobs"] += 1  # a one-shot job: done, not down
            e["running"] += c.get("State") == "running"
            e["created"].append(_rfc3339(c.get("Created")))
            for port in _tcp_ports(c).values():
                e["ports"].setdefault(labels.get(COMPOSE_SERVICE_LABEL, "?"), port)
        for v in (self._call("GET", "/volumes", selector) or {}).get("Volumes") or []:
            e = entry(v.get("Labels") or {})
            e["volumes"].append(str(v.get("Name")))
            e["created"].append(str(v.get("CreatedAt", "")))
        for n in self._call("GET", "/networks", selector) or []:
            e = entry(n.get("Labels") or {})
            e["networks"] += 1
            e["created"].append(str(n.get("Created", "")))
        usage: dict[str, int] = {}
        if sizes and any(e["volumes"] for e in found.values()):
            df = self._call("GET", "/system/df", {"type": "volume"}) or {}
            for v in df.get("Volumes") or []:
                size = (v.get("UsageData") or {}).get("Size", -1)
                if isinstance(size, int) and size >= 0:
                    usage[str(v.get("Name"))] = size
        return [
            LabelledStack(
                name,
                oldest(e["created"]),
                e["containers"],
                len(e["volumes"]),
                e["networks"],
                e["labels"],
                e["running"],
                e["jobs"],
                dict(sorted(e["ports"].items())),
                sum(usage.get(v, 0) for v in e["volumes"]) if sizes and e["volumes"] else None,
            )
            for name, e in sorted(found.items())
        ]

    def stack_labels(self, name: str) -> list[dict[str, str]]:
        """The labels of every container of compose project NAME and of every volume devenv labelled NAME."""
        containers = self._call(
            "GET", "/containers/json", {"all": "1", **_filters(label=f"{COMPOSE_PROJECT_LABEL}={name}")}
        )
        volumes = (self._call("GET", "/volumes", _filters(label=f"{PROJECT_LABEL}={name}")) or {}).get("Volumes")
        return [dict(x.get("Labels") or {}) for x in [*(containers or []), *(volumes or [])]]

    def port_holders(self, port: int) -> list[tuple[str, dict[str, str]]]:
        """The containers publishing host PORT: (name, labels)."""
        out = []
        for c in self._call("GET", "/containers/json") or []:
            if port in _tcp_ports(c).values():
                out.append((str((c.get("Names") or ["?"])[0]).lstrip("/"), dict(c.get("Labels") or {})))
        return out

    def held_ports(self) -> set[int]:
        """Every host TCP port a running container on the engine publishes (any project): one API call."""
        return {port for c in self._call("GET", "/containers/json") or [] for port in _tcp_ports(c).values()}

    def host_answers(self, port: int) -> bool:
        """A process on the engine's host accepts connections on PORT (one a container list cannot show)."""
        from devenv.ports import answers_at

        return answers_at(self.host_address(), port)

    def remove_labelled(self, name: str) -> StackResources:
        """Remove every container, network and volume labelled devenv.project=NAME (never anything else)."""
        from concurrent.futures import ThreadPoolExecutor

        selector = _filters(label=f"{PROJECT_LABEL}={name}")
        containers = self._call("GET", "/containers/json", {"all": "1", **selector}) or []
        if containers:  # killing and removing a container is mostly waiting on the engine: all of them at once
            with ThreadPoolExecutor(max_workers=min(8, len(containers)), thread_name_prefix="remove") as pool:
                list(
                    pool.map(
                        lambda c: self._call("DELETE", f"/containers/{c['Id']}", {"force": "1", "v": "1"}), containers
                    )
                )
        networks = self._call("GET", "/networks", selector) or []
        for n in networks:
            self._call("DELETE", f"/networks/{n['Id']}")
        volumes = (self._call("GET", "/volumes", selector) or {}).get("Volumes") or []
        for v in volumes:
            self._call("DELETE", f"/volumes/{v['Name']}", {"force": "1"})
        return StackResources(
            tuple(str(c["Names"][0]).lstrip("/") for c in containers),
            tuple(str(n["Name"]) for n in networks),
            tuple(str(v["Name"]) for v in volumes),
        )

    def remove_images(self, name: str, checkout: str) -> tuple[str, ...]:
        """Remove the images devenv built for the stack NAME of CHECKOUT on this machine (selected by the labels
        devenv.project, devenv.checkout and devenv.machine: never another checkout's or machine's); an image a
        container still uses stays. Returns the removed images' ids."""
        wanted = [f"{PROJECT_LABEL}={name}", f"{CHECKOUT_LABEL}={checkout}", f"{MACHINE_LABEL}={self.machine[0]}"]
        removed = []
        for image in self._call("GET", "/images/json", _filters(label=wanted)) or []:
            try:
                self._call("DELETE", f"/images/{image['Id']}")
            except ApiError:  # in use (409): another stack of the checkout runs on it (CI stacks share one tag)
                continue
            removed.append(str(image["Id"]))
        return tuple(removed)

    def engine_facts(self) -> EngineFacts:
        """Ask the engine (and the compose plugin) about itself; raises EngineUnreachable."""
        info = self._call("GET", "/info") or {}
        tags = frozenset(
            tag for image in self._call("GET", "/images/json") or [] for tag in image.get("RepoTags") or []
        )
        done = proc.run(["docker", "compose", "version", "--short"])
        return EngineFacts(
            host=self.target.url,
            server_version=str(info.get("ServerVersion", "")),
            compose_version=done.stdout.strip() if done.ok else "",
            root_dir=str(info.get("DockerRootDir", "")),
            local_images=tags,
            address=self.target.address,
            source=self.target.source,
        )


def open_runtime(
    project_name: str = "",
    compose_file: Path | None = None,
    checkout: str = "",
    secrets: str = "",
    target: EngineTarget | None = None,
) -> DockerRuntime:
    """The one factory of the real runtime: compose project PROJECT_NAME rendered at COMPOSE_FILE, whose resources
    are labelled with CHECKOUT (the checkout's path) and this machine, on the engine TARGET (default: the one the
    docker CLI would use).

    Without a project (gc, ls, doctor outside one) only the engine-wide calls make sense.
    """
    from devenv.machine import this_machine

    me = this_machine()
    compose_file = compose_file or Path.cwd() / "compose.yml"
    return DockerRuntime(
        project_name,
        compose_file,
        compose_file.parent,
        checkout=checkout,
        secrets=secrets,
        target=target,
        machine=(me.id, me.name),
    )


def parse_created(text: str) -> datetime | None:
    """Docker's RFC 3339 timestamps (nanoseconds trimmed)."""
    if not text:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def oldest(stamps: Sequence[str]) -> str:
    """The earliest of Docker's timestamps as RFC 3339 in UTC ("" when none parses). Compared as times, not as text:
    the engine writes containers' in epoch seconds, volumes' and networks' in its local zone (`+03:00`) with or
    without nanoseconds, and the text order of those is not their time order."""
    times = [t for t in map(parse_created, stamps) if t is not None and t.tzinfo is not None]
    return min(times).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if times else ""


def _rfc3339(created: Any) -> str:
    """The container list's Created (seconds since the epoch) in the RFC 3339 form volumes and networks use."""
    if isinstance(created, int | float) and created > 0:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
    return str(created or "")


def _tcp_ports(listed: dict[str, Any]) -> dict[int, int]:
    """Container TCP port -> published host port, from one entry of the engine's container list."""
    found: dict[int, int] = {}
    for binding in listed.get("Ports") or []:
        if binding.get("Type") == "tcp" and binding.get("PublicPort") and binding.get("PrivatePort"):
            found.setdefault(int(binding["PrivatePort"]), int(binding["PublicPort"]))
    return found
