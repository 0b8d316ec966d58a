"""Which engine devenv talks to (DOCKER_HOST, docker contexts) and where its published ports answer."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from devenv.runtime import _is_connection_error, _strip_globals, docker_host, engine_host_address


def _context(config: Path, name: str, host: str) -> None:
    meta = config / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": name, "Endpoints": {"docker": {"Host": host}}}))


def test_docker_host_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://build-box:2375")
    assert docker_host() == "tcp://build-box:2375"
    assert engine_host_address() == "build-box"


def test_current_context_from_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    _context(tmp_path, "remote", "ssh://me@10.1.2.3")
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "remote"}))
    assert docker_host() == "ssh://me@10.1.2.3"
    assert engine_host_address() == "10.1.2.3"
    monkeypatch.setenv("DOCKER_CONTEXT", "default")  # DOCKER_CONTEXT beats the config file
    assert docker_host() == "unix:///var/run/docker.sock"
    assert engine_host_address() == "127.0.0.1"


def test_unknown_context_falls_back_to_the_local_socket(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setenv("DOCKER_CONTEXT", "gone")
    assert docker_host() == "unix:///var/run/docker.sock"


@pytest.mark.parametrize(
    ("text", "engine"),
    [
        ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?", True),
        ("error during connect: Get http://x/v1.45/info: dial tcp: lookup x: no such host", True),
        ('Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host', False),
        ("pull access denied for devenv-local/nope", False),
    ],
)
def test_engine_errors_are_told_from_registry_errors(text: str, engine: bool) -> None:
    assert _is_connection_error(text) is engine


def test_strip_globals_keeps_the_subcommand() -> None:
    argv = ["--project-name", "p", "--file", "f.yml", "--project-directory", "d", "up", "--detach", "server"]
    assert _strip_globals(argv) == ["up", "--detach", "server"]
