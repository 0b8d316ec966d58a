"""The runtime: every operation devenv needs from the container engine, for one compose project, behind one object.

`Runtime` is the Protocol the rest of devenv receives, so unit tests pass a fake (tests/fakes.py) and integration
tests the real `DockerRuntime`. That one is a facade over the Docker side, which nothing else imports:
`devenv.engine.compose` (compose's command lines, run by devenv.core.proc), `devenv.engine.api` (the Engine API on the
engine's socket), `devenv.engine.models` (devenv's labels and the API's answers parsed into models) and
`devenv.engine.inventory` (the engine-wide view: stacks, volumes and images by label). Here is this project's own state.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from devenv.core import proc
from devenv.engine.api import ApiError, EngineAPI, HttpEngine, docker_host, filters
from devenv.engine.models import (
    CHECKOUT_LABEL,
    CHECKOUT_VAR,
    CI_LABEL,
    COMPOSE_ONEOFF_LABEL,
    COMPOSE_PROJECT_LABEL,
    COMPOSE_SERVICE_LABEL,
    MACHINE_LABEL,
    MACHINE_NAME_LABEL,
    MACHINE_NAME_VAR,
    MACHINE_VAR,
    PROJECT_LABEL,
    SECRETS_VAR,
    ContainerState,
    EngineFacts,
    LabelledStack,
    ListedContainer,
    StackResources,
    containers_of,
    oldest,
    parse_created,
)
from devenv.engine.target import EngineTarget
from devenv.engine.target import resolve as resolve_engine

if TYPE_CHECKING:
    from devenv.engine.compose import ComposeCli
    from devenv.engine.inventory import Inventory

__all__ = [
    "CHECKOUT_LABEL",
    "CHECKOUT_VAR",
    "CI_LABEL",
    "COMPOSE_ONEOFF_LABEL",
    "COMPOSE_PROJECT_LABEL",
    "COMPOSE_SERVICE_LABEL",
    "MACHINE_LABEL",
    "MACHINE_NAME_LABEL",
    "MACHINE_NAME_VAR",
    "MACHINE_VAR",
    "PROJECT_LABEL",
    "SECRETS_VAR",
    "ApiError",
    "ContainerState",
    "DockerRuntime",
    "EngineAPI",
    "EngineFacts",
    "HttpEngine",
    "LabelledStack",
    "Runtime",
    "StackResources",
    "docker_host",
    "oldest",
    "open_runtime",
    "parse_created",
]


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


class DockerRuntime:
    """The real engine: compose via its CLI (devenv.engine.compose), state via the Engine API (devenv.engine.api)."""

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
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.project_name = project_name
        self.compose_file = compose_file
        self.project_dir = project_dir
        self.checkout = checkout  # labelled on what compose creates (CHECKOUT_LABEL)
        self.secrets = secrets  # the folder of the generated env files
        self.target = target or resolve_engine(self.environ)
        self.machine = machine  # (id, host name) labelled beside the checkout (MACHINE_LABEL, MACHINE_NAME_LABEL)
        self._engine = engine
        self._compose: ComposeCli | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> EngineAPI:
        with self._lock:
            if self._engine is None:
                self._engine = HttpEngine(self.target.url, environ=self.environ)
            return self._engine

    @property
    def compose(self) -> ComposeCli:
        """The compose CLI for this project (imported on first use: `status` runs no compose)."""
        if self._compose is None:
            from devenv.engine.compose import ComposeCli

            self._compose = ComposeCli(
                self.project_name,
                self.compose_file,
                self.project_dir,
                self.target,
                checkout=self.checkout,
                secrets=self.secrets,
                machine=self.machine,
                environ=self.environ,
            )
        return self._compose

    @property
    def inventory(self) -> Inventory:
        """The engine-wide view on this runtime's engine (imported on first use: `status` lists no other stack)."""
        from devenv.engine.inventory import Inventory

        return Inventory(self.engine)

    def host_address(self) -> str:
        """Where the stack's published ports answer from here (devenv.engine.target)."""
        return self.target.address

    # -- compose (devenv.engine.compose) ---------------------------------------------------------------------------
    def compose_env(self) -> dict[str, str]:
        """The environment compose (and every docker CLI of the stack) runs with: the user's, plus the checkout it
        labels resources with; for an ssh engine, devenv's ssh shim first on PATH (devenv.engine.ssh: one
        connection)."""
        return self.compose.env()

    def compose_argv(self, *args: str) -> list[str]:
        """The docker compose command line for this project."""
        return self.compose.argv(*args)

    def up(self, services: Sequence[str], *, build: bool) -> None:
        self.compose.up(services, build=build)

    def build(self, services: Sequence[str], on_line: Callable[[str], None] | None = None) -> None:
        """(Re)build images, e.g. the server's, so one-off jobs see new migrations (BuildKit's cache keeps it fast)."""
        self.compose.build(services, on_line)

    def down(self, *, volumes: bool) -> None:
        self.compose.down(volumes=volumes)

    def logs(self, services: Sequence[str], *, tail: int | None = None) -> str:
        """The services' log lines, as plain text (compose writes terminal codes even with --no-color)."""
        return self.compose.logs(services, tail=tail)

    def stream_logs(
        self, services: Sequence[str], on_line: Callable[[str], None], *, follow: bool, tail: int | None
    ) -> int:
        """The services' log lines as plain text, each handed to ON_LINE as it comes (`devenv logs` into a pipe)."""
        return self.compose.stream_logs(services, on_line, follow=follow, tail=tail)

    def watch(self, services: Sequence[str], on_line: Callable[[str], None]) -> proc.Background:
        """`compose watch --no-up` on SERVICES (the stack is up already), its lines as plain text."""
        return self.compose.watch(services, on_line)

    def run_oneoff(self, service: str, argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[int, str]:
        """Run a one-off container of SERVICE without its dependencies; returns exit code and combined output."""
        return self.compose.run_oneoff(service, argv, env)

    def exec_out(
        self, service: str, argv: Sequence[str], sink: BinaryIO, on_bytes: Callable[[int], None]
    ) -> tuple[int, str]:
        """Run ARGV in the running SERVICE with its stdout streamed into SINK (a dump); exit code and stderr."""
        return self.compose.exec_out(service, argv, sink, on_bytes)

    def exec_in(
        self, service: str, argv: Sequence[str], source: BinaryIO, on_bytes: Callable[[int], None]
    ) -> tuple[int, str]:
        """Run ARGV in the running SERVICE with SOURCE streamed to its stdin (a restore); exit code and output."""
        return self.compose.exec_in(service, argv, source, on_bytes)

    # -- this project's state -----------------------------------------------------------------------------------
    def _listed(self) -> list[ListedContainer]:
        """The stack's containers as the engine lists them: one API call, no per-container inspect."""
        selector = filters(label=f"{COMPOSE_PROJECT_LABEL}={self.project_name}")
        return containers_of(self.engine.request("GET", "/containers/json", {"all": "1", **selector}))

    def containers(self, *, detail: bool = True) -> list[ContainerState]:
        """The stack's containers. With detail=False (the wait loops' cadence) one list call per poll: a container
        is inspected only when it may just have restarted (up for under a second, created well before)."""
        now = time.time()
        states = []
        for c in self._listed():
            inspected = None
            if detail or c.may_have_restarted(now):
                inspected = self.engine.request("GET", f"/containers/{c.id}/json")  # None: it vanished since the list
            states.append(c.container_state(inspected))
        return sorted(states, key=lambda s: (s.service, s.name))

    def published_ports(self) -> dict[tuple[str, int], int]:
        """(service, container port) -> host port for every published TCP port of the stack: one API call."""
        found: dict[tuple[str, int], int] = {}
        for c in self._listed():
            for port, host_port in c.ports.items():
                found.setdefault((c.service, port), host_port)
        return found

    def resources(self, label: str | None = None) -> StackResources:
        """Containers, networks and volumes carrying LABEL (default: this stack's devenv.project label)."""
        return self.inventory.resources(label or f"{PROJECT_LABEL}={self.project_name}")

    # -- across projects ------------------------------------------------------------------------------------------
    def labelled_stacks(self, *, ci_only: bool, sizes: bool = False) -> list[LabelledStack]:
        """Every devenv stack on the engine (CI_ONLY: only CI stacks), across projects; SIZES: their volumes' too."""
        return self.inventory.labelled_stacks(ci_only=ci_only, sizes=sizes)

    def stack_labels(self, name: str) -> list[dict[str, str]]:
        """The labels of every container of compose project NAME and of every volume devenv labelled NAME."""
        return self.inventory.stack_labels(name)

    def port_holders(self, port: int) -> list[tuple[str, dict[str, str]]]:
        """The containers publishing host PORT: (name, labels)."""
        return self.inventory.port_holders(port)

    def held_ports(self) -> set[int]:
        """Every host TCP port a running container on the engine publishes (any project): one API call."""
        return self.inventory.held_ports()

    def host_answers(self, port: int) -> bool:
        """A process on the engine's host accepts connections on PORT (one a container list cannot show)."""
        from devenv.engine.ports import answers_at

        return answers_at(self.host_address(), port)

    def remove_labelled(self, name: str) -> StackResources:
        """Remove every container, network and volume labelled devenv.project=NAME (never anything else)."""
        return self.inventory.remove_labelled(name)

    def remove_images(self, name: str, checkout: str) -> tuple[str, ...]:
        """Remove the images devenv built for the stack NAME of CHECKOUT on this machine (never another checkout's
        or machine's); an image a container still uses stays. Returns the removed images' ids."""
        return self.inventory.remove_images(name, checkout, self.machine[0])

    def engine_facts(self) -> EngineFacts:
        """Ask the engine (and the compose plugin) about itself; raises EngineUnreachable."""
        from devenv.engine.compose import version as compose_version

        info, tags = self.inventory.engine_info()
        return EngineFacts(
            host=self.target.url,
            server_version=str(info.get("ServerVersion", "")),
            compose_version=compose_version(),
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
    environ: Mapping[str, str] | None = None,
) -> DockerRuntime:
    """The one factory of the real runtime: compose project PROJECT_NAME rendered at COMPOSE_FILE, whose resources
    are labelled with CHECKOUT (the checkout's path) and this machine, on the engine TARGET (default: the one the
    docker CLI would use), with the command's ENVIRON (default: this process's).

    Without a project (gc, ls, doctor outside one) only the engine-wide calls make sense.
    """
    from devenv.core.machine import this_machine

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
        environ=environ,
    )
