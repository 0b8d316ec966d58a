"""What devenv knows about Docker's objects: the labels it puts on them, and models parsed from the Engine API's JSON.

The API's answers are read here, once, into frozen dataclasses (`ListedContainer.from_api`, `Volume.from_api`, …);
nothing past this edge reads a raw answer. The models beyond the parsing ones (`ContainerState`, `LabelledStack`,
`StackResources`, `EngineFacts`) are what `devenv.engine.runtime.Runtime` returns to the rest of devenv.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

PROJECT_LABEL = "devenv.project"
CI_LABEL = "devenv.ci"
CHECKOUT_LABEL = "devenv.checkout"  # the absolute path of the checkout a stack belongs to
CHECKOUT_VAR = "DEVENV_CHECKOUT"  # compose interpolates it into CHECKOUT_LABEL (the compose file stays path-free)
MACHINE_LABEL = "devenv.machine"  # the id of the machine the checkout is on (devenv.machine): a path alone is not one
MACHINE_NAME_LABEL = "devenv.machine.name"  # that machine's host name, for people reading `devenv ls`
MACHINE_VAR = "DEVENV_MACHINE"
MACHINE_NAME_VAR = "DEVENV_MACHINE_NAME"
SECRETS_VAR = "DEVENV_SECRETS"  # and this one into the env_file paths of the generated env files (devenv.core.state)
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"
COMPOSE_ONEOFF_LABEL = "com.docker.compose.oneoff"

_EXITED_RE = re.compile(r"Exited \((-?\d+)\)")
_HEALTH_RE = re.compile(r"\((healthy|unhealthy|health: starting)\)")


# -- what the runtime returns ---------------------------------------------------------------------------------------
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
    address: str = "127.0.0.1"  # where its published ports answer from here (devenv.engine.target)
    source: str = ""  # what chose the engine: DOCKER_HOST, a docker context, the default socket


# -- the API's answers, parsed --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ListedContainer:
    """One entry of the engine's container list (`GET /containers/json`)."""

    id: str
    name: str
    image: str
    state: str  # State: running, exited, …
    status: str  # Status: the engine's summary, "Up 3 seconds (healthy)", "Exited (1) 2 seconds ago"
    created: str  # Created as the engine wrote it (seconds since the epoch)
    created_at: float | None  # the same as a number (None: not one)
    labels: dict[str, str]
    ports: dict[int, int]  # container TCP port -> published host port

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> ListedContainer:
        created = raw.get("Created")
        return cls(
            id=str(raw.get("Id", "")),
            name=str((raw.get("Names") or ["?"])[0]).lstrip("/"),
            image=str(raw.get("Image", "")),
            state=str(raw.get("State") or "unknown"),
            status=str(raw.get("Status") or ""),
            created=str(created if created is not None else ""),
            created_at=float(created) if isinstance(created, int | float) else None,
            labels=dict(raw.get("Labels") or {}),
            ports=tcp_ports(raw),
        )

    @property
    def service(self) -> str:
        return self.labels.get(COMPOSE_SERVICE_LABEL, "")

    @property
    def oneoff(self) -> bool:
        return self.labels.get(COMPOSE_ONEOFF_LABEL) == "True"

    @property
    def job(self) -> bool:
        """A one-shot job (the migrate service, a `compose run`): done when it exited, not down."""
        return self.service == "migrate" or self.oneoff

    @property
    def created_rfc3339(self) -> str:
        """Created in the RFC 3339 form volumes and networks use."""
        return rfc3339(self.created_at if self.created_at is not None else self.created)

    def may_have_restarted(self, now: float) -> bool:
        """Running for under a second though created well before: restarted since the last look."""
        since = now - (self.created_at if self.created_at is not None else now)
        return self.state == "running" and "Less than a second" in self.status and since > 1.5

    def container_state(self, inspected: Mapping[str, Any] | None = None) -> ContainerState:
        """The container's state: from INSPECTED (its `GET /containers/ID/json` answer) when given, else as far as
        the list tells, which carries the exit code and the health only in its Status summary."""
        state = (inspected or {}).get("State")
        if state:
            status = str(state.get("Status", "unknown"))
            health = (state.get("Health") or {}).get("Status")
            exit_code = int(state.get("ExitCode") or 0)
        else:
            exited = _EXITED_RE.match(self.status)
            found = _HEALTH_RE.search(self.status)
            status = self.state
            health = found.group(1).removeprefix("health: ") if found else None
            exit_code = int(exited.group(1)) if exited else 0
        return ContainerState(
            service=self.service,
            name=self.name,
            id=self.id,
            status=status,
            health=health,
            exit_code=exit_code,
            restart_count=int((inspected or {}).get("RestartCount") or 0),
            oneoff=self.oneoff,
            image=self.image,
            labels=self.labels,
            created=self.created,
            ports=self.ports,
        )


@dataclass(frozen=True)
class Volume:
    """One volume of `GET /volumes`."""

    name: str
    labels: dict[str, str]
    created: str  # CreatedAt: RFC 3339 in the engine's local zone

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Volume:
        return cls(str(raw.get("Name")), dict(raw.get("Labels") or {}), str(raw.get("CreatedAt", "")))

    @staticmethod
    def listed(answer: Any) -> list[Volume]:
        """The volumes of a `GET /volumes` answer (None: none)."""
        return [Volume.from_api(v) for v in (answer or {}).get("Volumes") or []]


@dataclass(frozen=True)
class Network:
    """One network of `GET /networks`."""

    id: str
    name: str
    labels: dict[str, str]
    created: str  # RFC 3339 in the engine's local zone, with nanoseconds

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Network:
        return cls(
            str(raw.get("Id", "")), str(raw.get("Name")), dict(raw.get("Labels") or {}), str(raw.get("Created", ""))
        )


def containers_of(answer: Any) -> list[ListedContainer]:
    """The containers of a `GET /containers/json` answer (None: none)."""
    return [ListedContainer.from_api(c) for c in answer or []]


def networks_of(answer: Any) -> list[Network]:
    """The networks of a `GET /networks` answer (None: none)."""
    return [Network.from_api(n) for n in answer or []]


def volume_sizes(answer: Any) -> dict[str, int]:
    """Volume name -> bytes from a `GET /system/df?type=volume` answer (the engine measured them)."""
    usage: dict[str, int] = {}
    for v in (answer or {}).get("Volumes") or []:
        size = (v.get("UsageData") or {}).get("Size", -1)
        if isinstance(size, int) and size >= 0:
            usage[str(v.get("Name"))] = size
    return usage


def tcp_ports(listed: Mapping[str, Any]) -> dict[int, int]:
    """Container TCP port -> published host port, from one entry of the engine's container list."""
    found: dict[int, int] = {}
    for binding in listed.get("Ports") or []:
        if binding.get("Type") == "tcp" and binding.get("PublicPort") and binding.get("PrivatePort"):
            found.setdefault(int(binding["PrivatePort"]), int(binding["PublicPort"]))
    return found


# -- Docker's timestamps --------------------------------------------------------------------------------------------
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


def rfc3339(created: Any) -> str:
    """The container list's Created (seconds since the epoch) in the RFC 3339 form volumes and networks use."""
    if isinstance(created, int | float) and created > 0:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
    return str(created or "")
