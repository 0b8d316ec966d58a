"""What the integration tests share: a private copy of the example project driven through the real `devenv` CLI,
devenv's NDJSON events, clients for the stack's Postgres and Redis (psycopg and redis-py, the independent oracles),
HTTP, the environment of a CI stack, and the one poller (tests.poll.eventually). Test modules import from here,
never from each other."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import redis

from tests.conftest import EXAMPLE
from tests.poll import eventually

__all__ = ["eventually"]

Event = dict[str, Any]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def labelled(label: str) -> dict[str, list[str]]:
    """Containers, networks and volumes carrying LABEL, straight from the docker CLI."""
    out = {}
    for kind, cmd in (
        ("containers", ["docker", "ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}"]),
        ("networks", ["docker", "network", "ls", "--filter", f"label={label}", "--format", "{{.Name}}"]),
        ("volumes", ["docker", "volume", "ls", "--filter", f"label={label}", "--format", "{{.Name}}"]),
    ):
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[kind] = sorted(done.stdout.split())
    return out


NOTHING: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": []}


def events(stdout: str) -> list[Event]:
    """devenv's NDJSON events (`--json`): every line of STDOUT that is a JSON object."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def event_span(found: list[Event], first: Event, last: Event) -> float:
    """Seconds between two of devenv's events, by the `t` each carries (devenv's own clock, not the test's)."""
    assert "t" in first and "t" in last, (first, last, found[:3])
    return float(last["t"]) - float(first["t"])


def timed(run: Callable[[], T]) -> tuple[T, float]:
    """RUN's answer and how long it took (for a ratio to another run on the same machine, never a bound alone)."""
    started = time.monotonic()
    answer = run()
    return answer, time.monotonic() - started


def get_json(url: str, timeout: float = 10) -> tuple[int, Any]:
    """GET URL: (status, decoded JSON body), also for 4xx/5xx answers."""
    return request("GET", url, timeout=timeout)


def request(method: str, url: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
    """One HTTP request with a JSON body; (status, decoded JSON body or None), also for 4xx/5xx answers."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as ex:
        return ex.code, json.loads(ex.read() or b"null")


@dataclass
class ExampleProject:
    """A copy of examples/monorepo (or a fixture project) under tmp_path, driven through the real `devenv` CLI."""

    root: Path
    name: str
    env: dict[str, str] = field(default_factory=dict)
    server: str = "apps/server"

    @property
    def server_dir(self) -> Path:
        return self.root / self.server if self.server != "." else self.root

    def devenv(
        self, *args: str, check: bool = False, timeout: float = 300, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`devenv -C ROOT ARGS` in a subprocess, with this project's environment (or ENV)."""
        done = subprocess.run(
            [sys.executable, "-m", "devenv", "-C", str(self.root), *args],
            capture_output=True,
            text=True,
            env=self.env if env is None else env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"devenv {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def json(self, *args: str) -> dict[str, Any]:
        """`devenv ARGS --json`, which must succeed: its last JSON line."""
        return dict(events(self.devenv(*args, "--json", check=True).stdout)[-1])

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        """`devenv ARGS` in the background (stdout and stderr piped, text)."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("env", self.env)
        return subprocess.Popen([sys.executable, "-m", "devenv", "-C", str(self.root), *args], text=True, **kwargs)

    def port(self, service: str) -> int:
        return int(self.env[f"DEVENV_{service.upper()}_PORT"])

    def http(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        return request(method, f"http://127.0.0.1:{self.port('server')}{path}", body)

    def quotes(self) -> list[str]:
        """The texts the running server lists."""
        status, body = self.http("GET", "/v1/quotes")
        assert status == 200, body
        return [q["text"] for q in (body["quotes"] if isinstance(body, dict) else body)]

    def env_values(self) -> dict[str, str]:
        from dotenv import dotenv_values

        return {k: v or "" for k, v in dotenv_values(self.server_dir / ".env").items()}

    def pg(self, dbname: str | None = None) -> psycopg.Connection[tuple[Any, ...]]:
        """A psycopg connection (autocommit) to the stack's Postgres as the app user, from the host like a psql."""
        env = self.env_values()
        return psycopg.connect(
            host="127.0.0.1",
            port=int(env.get("POSTGRES_PORT") or self.port("postgres")),
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"],
            dbname=dbname or env["POSTGRES_DB"],
            autocommit=True,
            connect_timeout=5,
        )

    def databases(self) -> dict[str, str | None]:
        """Every database of the stack's Postgres with its comment (devenv's marks)."""
        with self.pg("postgres") as conn:
            rows = conn.execute("select datname, shobj_description(oid, 'pg_database') from pg_database").fetchall()
        return {str(name): comment for name, comment in rows}

    def redis(self) -> redis.Redis:
        """A redis-py client on the app's db index of the stack's Redis."""
        env = self.env_values()
        return redis.Redis(
            host="127.0.0.1",
            port=int(env.get("REDIS_PORT") or self.port("redis")),
            password=env.get("REDIS_PASSWORD") or None,
            db=int(env.get("REDIS_DB") or 0),
            socket_timeout=5,
        )

    def wait_for_spare(self) -> None:
        """The spare is made in the background: wait for its lock, as reset does."""
        from devenv.core.lock import project_lock

        with project_lock(self.root / ".devenv" / "stacks" / self.name, "spare", timeout=60, poll=0.01):
            pass

    def container(self, service: str) -> str:
        done = subprocess.run(
            [
                "docker", "ps", "-a", "-q",
                "--filter", f"label=com.docker.compose.project={self.name}",
                "--filter", f"label=com.docker.compose.service={service}",
            ],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        ids = done.stdout.split()
        assert ids, f"no container for {service}"
        return ids[0]

    def resources(self) -> dict[str, list[str]]:
        return labelled(f"devenv.project={self.name}")

    def ci_env(self, **extra: str) -> dict[str, str]:
        """The environment for this project's CI stacks: they choose their own ports and names (the fixture's
        pinned ones dropped), with the images and build settings kept."""
        kept = ("DEVENV_BUILD_", "DEVENV_POSTGRES_IMAGE", "DEVENV_REDIS_IMAGE", "DEVENV_IMAGE_MAP")
        env = {k: v for k, v in self.env.items() if not k.startswith(("DEVENV_", "GITHUB_")) or k.startswith(kept)}
        return {**env, **extra}

    def ci(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`devenv ARGS` as CI runs it: the environment of ci_env() (or ENV)."""
        return self.devenv(*args, env=env or self.ci_env())


def make_project(tmp_path: Path, source: Path = EXAMPLE, server: str = "apps/server") -> ExampleProject:
    """A private copy of SOURCE with its own stack name (t-<8 hex>) and free host ports."""
    root = tmp_path / source.name
    shutil.copytree(
        source, root, ignore=shutil.ignore_patterns("node_modules", ".devenv", ".env", "dist"), symlinks=True
    )
    name = f"t-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ)
    env.update(
        DEVENV_PROJECT_NAME=name,
        DEVENV_POSTGRES_PORT=str(free_port()),
        DEVENV_REDIS_PORT=str(free_port()),
        DEVENV_SERVER_PORT=str(free_port()),
        NO_COLOR="1",
    )
    return ExampleProject(root=root, name=name, env=env, server=server)


def remove(project: ExampleProject) -> None:
    """Everything PROJECT's stack started, volumes included, and what devenv keeps for it outside the project
    (its secrets folder, its server image)."""
    project.devenv("down", "--volumes", "--yes")
    subprocess.run(
        ["docker", "compose", "-p", project.name, "down", "-v", "--remove-orphans"], capture_output=True, check=False
    )
    remove_leftovers(project.name)


def remove_leftovers(name: str) -> None:
    """The server image of the stack NAME (`NAME-server:devenv`), whoever made it."""
    subprocess.run(["docker", "image", "rm", "-f", f"{name}-server:devenv"], capture_output=True, check=False)
