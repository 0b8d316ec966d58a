"""Which engine devenv talks to (DOCKER_HOST, docker contexts) and where its published ports answer."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from devenv.runtime import _is_connection_error, docker_host, engine_host_address


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
        ('Get "https://registry.invalid/v2/": dial tcp: lookup registry.invalid: no such host', False),
        ("pull access denied for devenv-local/nope", False),
    ],
)
def test_engine_errors_are_told_from_registry_errors(text: str, engine: bool) -> None:
    assert _is_connection_error(text) is engine


class _EngineApi:
    """The Engine API, as far as `DockerRuntime.containers()` uses it: the container list and inspect."""

    def __init__(self, listed: list[dict[str, object]], inspected: dict[str, dict[str, object]]) -> None:
        self.listed = listed
        self.inspected = inspected
        self.inspect_calls: list[str] = []

    def request(self, method: str, path: str, query: dict[str, str] | None = None) -> object:
        assert method == "GET"
        if path == "/containers/json":
            assert query is not None and query["all"] == "1"
            assert json.loads(query["filters"]) == {"label": ["com.docker.compose.project=demo"]}
            return self.listed
        cid = path.removeprefix("/containers/").removesuffix("/json")
        self.inspect_calls.append(cid)
        return self.inspected[cid]


def _listed(cid: str, service: str, state: str, status: str, created: float) -> dict[str, object]:
    return {
        "Id": cid,
        "Names": [f"/demo-{service}-1"],
        "Image": f"{service}:1",
        "State": state,
        "Status": status,
        "Created": int(created),
        "Labels": {"com.docker.compose.project": "demo", "com.docker.compose.service": service},
        "Ports": [{"IP": "127.0.0.1", "PrivatePort": 5432, "PublicPort": 49153, "Type": "tcp"}]
        if service == "postgres"
        else [],
    }


def test_wait_cadence_lists_once_and_inspects_only_a_container_that_may_have_restarted(tmp_path: Path) -> None:
    import time

    from devenv.runtime import DockerRuntime

    now = time.time()
    low = _EngineApi(
        [
            _listed("a", "postgres", "running", "Up 3 seconds (health: starting)", now - 4),
            _listed("b", "migrate", "exited", "Exited (1) Less than a second ago", now - 4),
            _listed("c", "server", "running", "Up Less than a second", now - 10),  # created long ago: restarted?
            _listed("d", "redis", "running", "Up Less than a second (healthy)", now),  # just created: first start
        ],
        {"c": {"State": {"Status": "running"}, "RestartCount": 2}},
    )
    runtime = DockerRuntime("demo", tmp_path / "compose.yml", tmp_path, engine=low)
    states = {s.service: s for s in runtime.containers(detail=False)}
    assert low.inspect_calls == ["c"]
    assert (states["postgres"].status, states["postgres"].health) == ("running", "starting")
    assert (states["migrate"].status, states["migrate"].exit_code) == ("exited", 1)
    assert states["server"].restart_count == 2
    assert (states["redis"].health, states["redis"].restart_count) == ("healthy", 0)
    assert states["postgres"].ports == {5432: 49153} and states["redis"].ports == {}
    assert runtime.published_ports() == {("postgres", 5432): 49153}  # redis publishes nothing


def test_detail_inspects_every_container(tmp_path: Path) -> None:
    import time

    from devenv.runtime import DockerRuntime

    low = _EngineApi(
        [_listed("a", "postgres", "running", "Up 9 minutes (healthy)", time.time() - 600)],
        {"a": {"State": {"Status": "running", "Health": {"Status": "healthy"}, "ExitCode": 0}, "RestartCount": 1}},
    )
    runtime = DockerRuntime("demo", tmp_path / "compose.yml", tmp_path, engine=low)
    [state] = runtime.containers()
    assert low.inspect_calls == ["a"] and state.restart_count == 1 and state.health == "healthy"
