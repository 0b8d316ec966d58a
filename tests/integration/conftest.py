"""Integration fixtures: a private copy of the example project with its own stack name and free host ports."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE
from tests.integration.remote import remote_engine as remote_engine  # the session fixture: the second engine


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


@dataclass
class ExampleProject:
    """A copy of examples/monorepo under tmp_path, driven through the real `devenv` CLI."""

    root: Path
    name: str
    env: dict[str, str] = field(default_factory=dict)
    server: str = "apps/server"

    @property
    def server_dir(self) -> Path:
        return self.root / self.server if self.server != "." else self.root

    def devenv(self, *args: str, check: bool = False, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "devenv", "-C", str(self.root), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"devenv {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def port(self, service: str) -> int:
        return int(self.env[f"DEVENV_{service.upper()}_PORT"])

    def http(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port('server')}{path}",
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return int(resp.status), json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as ex:
            return ex.code, json.loads(ex.read() or b"null")

    def env_values(self) -> dict[str, str]:
        from dotenv import dotenv_values

        return {k: v or "" for k, v in dotenv_values(self.server_dir / ".env").items()}

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


def make_project(tmp_path: Path, source: Path = EXAMPLE, server: str = "apps/server") -> ExampleProject:
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
    """Everything PROJECT's stack started, volumes included."""
    project.devenv("down", "--volumes", "--yes")
    subprocess.run(
        ["docker", "compose", "-p", project.name, "down", "-v", "--remove-orphans"], capture_output=True, check=False
    )


@pytest.fixture
def example(tmp_path: Path) -> Iterator[ExampleProject]:
    """A private example project; everything it started is removed afterwards (volumes included)."""
    project = make_project(tmp_path)
    try:
        yield project
    finally:
        remove(project)
