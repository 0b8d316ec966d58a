"""Fakes for unit tests: a Runtime whose containers are data and whose compose calls are recorded, and connectors
to a Postgres, a Redis and a server that exist only in memory (devenv.project.context.Connectors)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

from devenv.clients.httpget import Response
from devenv.engine.runtime import ContainerState, EngineFacts, LabelledStack, StackResources
from devenv.project.settings import Settings


def state(
    service: str,
    status: str = "running",
    health: str | None = None,
    exit_code: int = 0,
    restarts: int = 0,
    ports: dict[int, int] | None = None,
) -> ContainerState:
    return ContainerState(
        service=service,
        name=f"p-{service}-1",
        id=f"id-{service}",
        status=status,
        health=health,
        exit_code=exit_code,
        restart_count=restarts,
        ports=dict(ports or {}),
    )


@dataclass
class FakeRuntime:
    project_name: str = "fake"
    states: list[ContainerState] = field(default_factory=list)
    ports: dict[tuple[str, int], int] = field(default_factory=dict)
    log_text: str = ""
    calls: list[tuple[str, tuple[object, ...]]] = field(default_factory=list)
    images_removed: list[tuple[str, str]] = field(default_factory=list)  # remove_images: (stack, checkout)
    oneoff_result: tuple[int, str] = (0, "")
    stacks: list[LabelledStack] = field(default_factory=list)
    volume_labels: list[dict[str, str]] = field(default_factory=list)
    machine: tuple[str, str] = ("this-machine-id", "thishost")
    address: str = "127.0.0.1"
    engine_held: set[int] = field(default_factory=set)  # host ports other containers of the engine publish
    host_listening: set[int] = field(default_factory=set)  # ports a process on the engine's host (no container) holds

    def host_address(self) -> str:
        return self.address

    def up(self, services: Sequence[str], *, build: bool) -> None:
        self.calls.append(("up", (tuple(services), build)))

    def down(self, *, volumes: bool) -> None:
        self.calls.append(("down", (volumes,)))

    def build(self, services: Sequence[str], on_line: Callable[[str], None] | None = None) -> None:
        self.calls.append(("build", (tuple(services),)))

    def containers(self, *, detail: bool = True) -> list[ContainerState]:
        self.calls.append(("containers", ()))
        return list(self.states)

    def logs(self, services: Sequence[str], *, tail: int | None = None) -> str:
        return self.log_text

    def stream_logs(
        self, services: Sequence[str], on_line: Callable[[str], None], *, follow: bool, tail: int | None
    ) -> int:
        for line in self.log_text.splitlines():
            on_line(line)
        return 0

    def published_ports(self) -> dict[tuple[str, int], int]:
        return dict(self.ports)

    def run_oneoff(self, service: str, argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[int, str]:
        self.calls.append(("run", (service, tuple(argv))))
        return self.oneoff_result

    def resources(self, label: str | None = None) -> StackResources:
        return StackResources((), (), ())

    def compose_argv(self, *args: str) -> list[str]:
        return ["docker", "compose", "-p", self.project_name, *args]

    def compose_env(self) -> dict[str, str]:
        return {}

    def labelled_stacks(self, *, ci_only: bool, sizes: bool = False) -> list[LabelledStack]:
        return list(self.stacks)

    def stack_labels(self, name: str) -> list[dict[str, str]]:
        labelled = [dict(s.labels) for s in self.states] + [dict(v) for v in self.volume_labels]
        return [lab for lab in labelled if lab.get("devenv.project", name) == name]

    def port_holders(self, port: int) -> list[tuple[str, dict[str, str]]]:
        return [(s.name, dict(s.labels)) for s in self.states if port in s.ports.values()]

    def held_ports(self) -> set[int]:
        self.calls.append(("held_ports", ()))
        return {port for s in self.states for port in s.ports.values()} | set(self.engine_held)

    def host_answers(self, port: int) -> bool:
        return port in self.host_listening

    def remove_labelled(self, name: str) -> StackResources:
        self.calls.append(("remove", (name,)))
        return StackResources((), (), ())

    def remove_images(self, name: str, checkout: str) -> tuple[str, ...]:
        self.images_removed.append((name, checkout))
        return ()

    def engine_facts(self) -> EngineFacts:
        return EngineFacts("unix:///var/run/docker.sock", "26.1.5", "2.26.1", "/var/lib/docker", frozenset())

    exec_result: tuple[int, bytes, str] = (0, b"PGDMP", "")  # exec_out / exec_in: exit code, stdout, output

    def exec_out(
        self, service: str, argv: Sequence[str], sink: BinaryIO, on_bytes: Callable[[int], None]
    ) -> tuple[int, str]:
        self.calls.append(("exec_out", (service, tuple(argv))))
        code, data, output = self.exec_result
        sink.write(data)
        on_bytes(len(data))
        return code, output

    def exec_in(
        self, service: str, argv: Sequence[str], source: BinaryIO, on_bytes: Callable[[int], None]
    ) -> tuple[int, str]:
        self.calls.append(("exec_in", (service, tuple(argv))))
        on_bytes(len(source.read()))
        return self.exec_result[0], self.exec_result[2]


@dataclass
class FakeCluster:
    """The databases of an in-memory Postgres: name -> comment (devenv's marks), and every statement it ran."""

    databases: dict[str, str | None] = field(default_factory=lambda: {"postgres": None})
    statements: list[str] = field(default_factory=list)
    up: bool = True


class FakeSession:
    """A session on FakeCluster: the statements devenv's marks and templates issue, read with a few regexes."""

    def __init__(self, cluster: FakeCluster, dbname: str) -> None:
        self.cluster = cluster
        self.dbname = dbname

    def execute(self, query: str) -> list[tuple[str | None, ...]]:
        self.cluster.statements.append(query)
        dbs = self.cluster.databases
        if m := re.fullmatch(r'COMMENT ON DATABASE "?([^"]+)"? IS \'(.*)\'', query):
            dbs[m.group(1)] = m.group(2)
        elif m := re.fullmatch(r'CREATE DATABASE "([^"]+)".*', query):
            dbs[m.group(1)] = None
        elif m := re.fullmatch(r'DROP DATABASE (?:IF EXISTS )?"([^"]+)".*', query):
            dbs.pop(m.group(1), None)
        elif "current_database()" in query:
            return [(dbs.get(self.dbname),)]
        return []

    def scalar(self, query: str) -> str | None:
        rows = self.execute(query)
        return rows[0][0] if rows else None

    def database(self, name: str) -> tuple[str, str | None] | None:
        dbs = self.cluster.databases
        return (str(list(dbs).index(name) + 16384), dbs[name]) if name in dbs else None


@dataclass
class FakePostgres:
    cluster: FakeCluster
    db: str

    @contextmanager
    def session(self, dbname: str | None = None, **options: object) -> Iterator[FakeSession]:
        yield FakeSession(self.cluster, dbname or self.db)

    def probe(self) -> bool:
        return self.cluster.up


@dataclass
class FakeRedis:
    flushes: list[int] = field(default_factory=list)
    db: int = 0
    up: bool = True

    def probe(self) -> bool:
        return self.up

    def flush(self) -> None:
        self.flushes.append(self.db)


@dataclass
class FakeServer:
    base_url: str
    answers: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # path -> (status, body); default 200 ok

    def get(self, path: str, *, timeout: float = 2.0) -> Response:
        status, body = self.answers.get(path, (200, b'{"status":"healthy"}'))
        return Response(status, body)

    def probe(self, path: str) -> bool:
        return self.get(path).status == 200


@dataclass
class FakeConnectors:
    """devenv.project.context.Connectors over in-memory services; `seen` records where devenv connected."""

    cluster: FakeCluster = field(default_factory=FakeCluster)
    redis_service: FakeRedis = field(default_factory=FakeRedis)
    answers: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    seen: list[tuple[str, str, int]] = field(default_factory=list)

    def postgres(self, host: str, port: int, settings: Settings) -> FakePostgres:
        self.seen.append(("postgres", host, port))
        return FakePostgres(self.cluster, settings.pg_db)

    def redis(self, host: str, port: int, settings: Settings) -> FakeRedis:
        self.seen.append(("redis", host, port))
        self.redis_service.db = settings.redis_db
        return self.redis_service

    def server(self, base_url: str) -> FakeServer:
        self.seen.append(("server", base_url, 0))
        return FakeServer(base_url, self.answers)
