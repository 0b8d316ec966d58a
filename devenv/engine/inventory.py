"""The engine-wide inventory: devenv's stacks across projects, checkouts and machines, found and removed by label.

Everything here selects by devenv's labels (devenv.project, devenv.checkout, devenv.machine) and never by a name
pattern, so a stack of another checkout or another machine on a shared engine is only ever listed, not touched,
unless its own name is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from devenv.engine.api import ApiError, EngineAPI, filters
from devenv.engine.models import (
    CHECKOUT_LABEL,
    CI_LABEL,
    COMPOSE_PROJECT_LABEL,
    COMPOSE_SERVICE_LABEL,
    MACHINE_LABEL,
    PROJECT_LABEL,
    LabelledStack,
    ListedContainer,
    StackResources,
    Volume,
    containers_of,
    networks_of,
    oldest,
    volume_sizes,
)


@dataclass
class _Tally:
    """One stack's resources as the listings are read (the mutable half of a LabelledStack)."""

    created: list[str] = field(default_factory=list)
    containers: int = 0
    jobs: int = 0
    running: int = 0
    volumes: list[str] = field(default_factory=list)
    networks: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def label(self, labels: dict[str, str]) -> None:
        for key, value in labels.items():  # a checkout label that is empty (made by hand) never wins
            if key.startswith("devenv.") and (value or key not in self.labels):
                self.labels[key] = value

    def container(self, c: ListedContainer) -> None:
        self.containers += 1
        self.jobs += c.job
        self.running += c.state == "running"
        self.created.append(c.created_rfc3339)
        for port in c.ports.values():
            self.ports.setdefault(c.labels.get(COMPOSE_SERVICE_LABEL, "?"), port)

    def stack(self, name: str, usage: dict[str, int] | None) -> LabelledStack:
        return LabelledStack(
            name,
            oldest(self.created),
            self.containers,
            len(self.volumes),
            self.networks,
            self.labels,
            self.running,
            self.jobs,
            dict(sorted(self.ports.items())),
            sum(usage.get(v, 0) for v in self.volumes) if usage is not None and self.volumes else None,
        )


class Inventory:
    """What the engine holds across projects, read and removed through its API."""

    def __init__(self, api: EngineAPI) -> None:
        self.api = api

    def _containers(self, query: dict[str, str] | None = None) -> list[ListedContainer]:
        return containers_of(self.api.request("GET", "/containers/json", query))

    def _volumes(self, selector: dict[str, str]) -> list[Volume]:
        return Volume.listed(self.api.request("GET", "/volumes", selector))

    def labelled_stacks(self, *, ci_only: bool, sizes: bool = False) -> list[LabelledStack]:
        """Every devenv stack on the engine (CI_ONLY: only CI stacks, label devenv.ci=true), across projects.

        SIZES: also the size of each stack's volumes (the engine measures them: slower).
        """
        selector = filters(label=[PROJECT_LABEL, *([f"{CI_LABEL}=true"] if ci_only else [])])
        found: dict[str, _Tally] = {}

        def tally(labels: dict[str, str]) -> _Tally:
            entry = found.setdefault(labels[PROJECT_LABEL], _Tally())
            entry.label(labels)
            return entry

        for c in self._containers({"all": "1", **selector}):
            tally(c.labels).container(c)
        for v in self._volumes(selector):
            entry = tally(v.labels)
            entry.volumes.append(v.name)
            entry.created.append(v.created)
        for n in networks_of(self.api.request("GET", "/networks", selector)):
            entry = tally(n.labels)
            entry.networks += 1
            entry.created.append(n.created)
        usage = self._usage(found.values()) if sizes else None
        return [entry.stack(name, usage) for name, entry in sorted(found.items())]

    def _usage(self, stacks: Iterable[_Tally]) -> dict[str, int]:
        if not any(s.volumes for s in stacks):
            return {}
        return volume_sizes(self.api.request("GET", "/system/df", {"type": "volume"}))

    def stack_labels(self, name: str) -> list[dict[str, str]]:
        """The labels of every container of compose project NAME and of every volume devenv labelled NAME."""
        containers = self._containers({"all": "1", **filters(label=f"{COMPOSE_PROJECT_LABEL}={name}")})
        volumes = self._volumes(filters(label=f"{PROJECT_LABEL}={name}"))
        return [*(dict(c.labels) for c in containers), *(dict(v.labels) for v in volumes)]

    def port_holders(self, port: int) -> list[tuple[str, dict[str, str]]]:
        """The running containers publishing host PORT: (name, labels)."""
        return [(c.name, dict(c.labels)) for c in self._containers() if port in c.ports.values()]

    def held_ports(self) -> set[int]:
        """Every host TCP port a running container on the engine publishes (any project): one API call."""
        return {port for c in self._containers() for port in c.ports.values()}

    def resources(self, label: str) -> StackResources:
        """Containers, networks and volumes carrying LABEL."""
        selector = filters(label=label)
        containers = self._containers({"all": "1", **selector})
        networks = networks_of(self.api.request("GET", "/networks", selector))
        return StackResources(
            containers=tuple(sorted(c.name for c in containers)),
            networks=tuple(sorted(n.name for n in networks)),
            volumes=tuple(sorted(v.name for v in self._volumes(selector))),
        )

    def remove_labelled(self, name: str) -> StackResources:
        """Remove every container, network and volume labelled devenv.project=NAME (never anything else)."""
        selector = filters(label=f"{PROJECT_LABEL}={name}")
        containers = self._containers({"all": "1", **selector})
        if containers:  # killing and removing a container is mostly waiting on the engine: all of them at once
            self._each(
                lambda c: self.api.request("DELETE", f"/containers/{c.id}", {"force": "1", "v": "1"}), containers
            )
        networks = networks_of(self.api.request("GET", "/networks", selector))
        for n in networks:
            self.api.request("DELETE", f"/networks/{n.id}")
        volumes = self._volumes(selector)
        for v in volumes:
            self.api.request("DELETE", f"/volumes/{v.name}", {"force": "1"})
        return StackResources(
            tuple(c.name for c in containers), tuple(n.name for n in networks), tuple(v.name for v in volumes)
        )

    @staticmethod
    def _each(call: Callable[[ListedContainer], object], containers: list[ListedContainer]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(8, len(containers)), thread_name_prefix="remove") as pool:
            list(pool.map(call, containers))

    def remove_images(self, name: str, checkout: str, machine: str) -> tuple[str, ...]:
        """Remove the images devenv built for the stack NAME of CHECKOUT on MACHINE (selected by the labels
        devenv.project, devenv.checkout and devenv.machine: never another checkout's or machine's); an image a
        container still uses stays. Returns the removed images' ids."""
        wanted = [f"{PROJECT_LABEL}={name}", f"{CHECKOUT_LABEL}={checkout}", f"{MACHINE_LABEL}={machine}"]
        removed = []
        for image in self.api.request("GET", "/images/json", filters(label=wanted)) or []:
            try:
                self.api.request("DELETE", f"/images/{image['Id']}")
            except ApiError:  # in use (409): another stack of the checkout runs on it (CI stacks share one tag)
                continue
            removed.append(str(image["Id"]))
        return tuple(removed)

    def engine_info(self) -> tuple[dict[str, Any], frozenset[str]]:
        """The engine's `/info` and the tags of every image it holds."""
        info = self.api.request("GET", "/info") or {}
        tags = frozenset(
            tag for image in self.api.request("GET", "/images/json") or [] for tag in image.get("RepoTags") or []
        )
        return info, tags
