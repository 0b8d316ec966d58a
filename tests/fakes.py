"""A fake Runtime for unit tests: containers are data, compose calls are recorded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from devenv.runtime import ContainerState, StackResources


def state(
    service: str, status: str = "running", health: str | None = None, exit_code: int = 0, restarts: int = 0
) -> ContainerState:
    return ContainerState(
        service=service,
        name=f"p-{service}-1",
        id=f"id-{service}",
        status=status,
        health=health,
        exit_code=exit_code,
        restart_count=restarts,
    )


@dataclass
class FakeRuntime:
    project_name: str = "fake"
    states: list[ContainerState] = field(default_factory=list)
    ports: dict[tuple[str, int], int] = field(default_factory=dict)
    log_text: str = ""
    calls: list[tuple[str, tuple[object, ...]]] = field(default_factory=list)
    oneoff_result: tuple[int, str] = (0, "")

    def engine_version(self) -> str:
        return "26.1.5"

    def host_address(self) -> str:
        return "127.0.0.1"

    def up(self, services: Sequence[str], *, build: bool) -> None:
        self.calls.append(("up", (tuple(services), build)))

    def down(self, *, volumes: bool) -> None:
        self.calls.append(("down", (volumes,)))

    def build(self, services: Sequence[str]) -> None:
        self.calls.append(("build", (tuple(services),)))

    def containers(self, *, detail: bool = True) -> list[ContainerState]:
        self.calls.append(("containers", ()))
        return list(self.states)

    def logs(self, services: Sequence[str], *, tail: int | None = None) -> str:
        return self.log_text

    def published_ports(self) -> dict[tuple[str, int], int]:
        return dict(self.ports)

    def run_oneoff(self, service: str, argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[int, str]:
        self.calls.append(("run", (service, tuple(argv))))
        return self.oneoff_result

    def resources(self, label: str | None = None) -> StackResources:
        return StackResources((), (), ())

    def compose_argv(self, *args: str) -> list[str]:
        return ["docker", "compose", "-p", self.project_name, *args]
