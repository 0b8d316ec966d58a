"""Which engine devenv talks to (DOCKER_HOST, docker contexts) and where its published ports answer."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from pathlib import Path

import pytest

from devenv.core.errors import EngineUnreachable
from devenv.engine.api import ApiError, HttpEngine, docker_host, is_connection_error
from devenv.engine.target import resolve


def _context(config: Path, name: str, host: str) -> None:
    meta = config / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": name, "Endpoints": {"docker": {"Host": host}}}))


def test_docker_host_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://build-box:2375")
    assert docker_host() == "tcp://build-box:2375"
    assert resolve().address == "build-box"


def test_current_context_from_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    _context(tmp_path, "remote", "ssh://me@10.1.2.3")
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "remote"}))
    assert docker_host() == "ssh://me@10.1.2.3"
    assert resolve().address == "10.1.2.3"
    monkeypatch.setenv("DOCKER_CONTEXT", "default")  # DOCKER_CONTEXT beats the config file
    assert docker_host() == "unix:///var/run/docker.sock"
    assert resolve().address == "127.0.0.1"


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
    assert is_connection_error(text) is engine


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

    from devenv.engine.runtime import DockerRuntime

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

    from devenv.engine.runtime import DockerRuntime

    low = _EngineApi(
        [_listed("a", "postgres", "running", "Up 9 minutes (healthy)", time.time() - 600)],
        {"a": {"State": {"Status": "running", "Health": {"Status": "healthy"}, "ExitCode": 0}, "RestartCount": 1}},
    )
    runtime = DockerRuntime("demo", tmp_path / "compose.yml", tmp_path, engine=low)
    [state] = runtime.containers()
    assert low.inspect_calls == ["a"] and state.restart_count == 1 and state.health == "healthy"


class _StacksApi:
    """The Engine API as `labelled_stacks()` and `remove_images()` use it: containers, volumes, networks, images."""

    def __init__(self, listings: dict[str, object], busy: frozenset[str] = frozenset()) -> None:
        self.listings = listings
        self.busy = busy
        self.calls: list[tuple[str, str, dict[str, str] | None]] = []

    def request(self, method: str, path: str, query: dict[str, str] | None = None) -> object:
        self.calls.append((method, path, query))
        if method == "DELETE":
            if path.removeprefix("/images/") in self.busy:
                raise ApiError("the Docker Engine refused DELETE: image is being used (HTTP 409)")
            return None
        return self.listings[path]


# A stack made two minutes before NOW on an engine whose zone is +03:00: containers in epoch seconds, the volume and
# the network in the engine's local time (the network with nanoseconds). As text, "…T11:59…Z" sorts before
# "…T14:58…+03:00", though it is later.
NOW = "2026-12-03T12:00:00+00:00"
STACK_LABELS = {"devenv.project": "demo", "devenv.checkout": "/work/demo", "devenv.machine": "m1"}


@pytest.mark.parametrize(
    ("container", "volume", "network", "age"),
    [
        ("2026-12-03T11:59:30Z", "2026-12-03T14:58:00+03:00", "2026-12-03T14:58:00.123456789+03:00", 120.0),
        ("2026-12-03T11:58:00Z", "2026-12-03T08:59:00-03:00", "2026-12-03T11:58:00.5Z", 120.0),  # -03:00: later
        ("2026-12-03T11:58:00Z", "2026-12-03T11:59:00Z", "", 120.0),
        (None, "2026-12-03T14:58:00+03:00", "garbage", 120.0),  # volumes only
    ],
)
def test_ls_age_is_the_oldest_resource_by_time_whatever_zone_the_engine_writes(
    tmp_path: Path, container: str | None, volume: str, network: str, age: float
) -> None:
    from datetime import datetime

    from devenv.engine.runtime import DockerRuntime
    from devenv.stack.checkouts import describe

    created = datetime.fromisoformat(container.replace("Z", "+00:00")).timestamp() if container else None
    api = _StacksApi(
        {
            "/containers/json": [{"Labels": STACK_LABELS, "State": "running", "Created": int(created), "Ports": []}]
            if created
            else [],
            "/volumes": {"Volumes": [{"Name": "demo_pgdata", "Labels": STACK_LABELS, "CreatedAt": volume}]},
            "/networks": [{"Name": "demo_default", "Labels": STACK_LABELS, "Created": network}],
        }
    )
    runtime = DockerRuntime("demo", tmp_path / "compose.yml", tmp_path, engine=api)
    [stack] = runtime.labelled_stacks(ci_only=False)
    assert stack.created == "2026-12-03T11:58:00Z"  # in UTC, whatever zone it was written in
    assert describe(stack, "m1", now=datetime.fromisoformat(NOW)).age_seconds == age


def test_remove_images_takes_only_this_checkouts_images_on_this_machine_and_leaves_one_in_use(tmp_path: Path) -> None:
    from devenv.engine.runtime import DockerRuntime

    api = _StacksApi({"/images/json": [{"Id": "sha256:aa"}, {"Id": "sha256:bb"}]}, busy=frozenset({"sha256:bb"}))
    runtime = DockerRuntime("demo", tmp_path / "compose.yml", tmp_path, engine=api, machine=("m1", "box"))
    assert runtime.remove_images("demo", "/work/demo") == ("sha256:aa",)  # bb: another CI stack still runs on it
    (method, path, query), *deletes = api.calls
    assert (method, path) == ("GET", "/images/json") and query is not None
    assert json.loads(query["filters"]) == {
        "label": ["devenv.project=demo", "devenv.checkout=/work/demo", "devenv.machine=m1"]
    }
    assert [(m, p) for m, p, _ in deletes] == [("DELETE", "/images/sha256:aa"), ("DELETE", "/images/sha256:bb")]


def _answering(answer: bytes) -> tuple[socket.socket, threading.Thread]:
    """A one-shot HTTP server on loopback that reads a request and sends ANSWER."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n", EngineUnreachable),
        (
            b'HTTP/1.0 409 Conflict\r\nApi-Version: 1.45\r\n\r\n{"message": "in use"}',
            ApiError,
        ),
    ],
)
def test_an_http_error_from_something_that_is_no_engine_is_unreachable(
    answer: bytes, expected: type[Exception]
) -> None:
    server, thread = _answering(answer)
    with server:
        engine = HttpEngine(f"tcp://127.0.0.1:{server.getsockname()[1]}")
        with pytest.raises(expected) as info:
            engine.request("GET", "/containers/json")
        thread.join(timeout=10)
    if expected is EngineUnreachable:
        assert "not a Docker Engine" in str(info.value)
    else:
        assert "in use (HTTP 409)" in str(info.value)


# -- the compose CLI: argv as data -----------------------------------------------------------------------------------
def _recording(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[str, str]]]:
    from devenv.core import proc

    ran: list[tuple[list[str], dict[str, str]]] = []

    def run(argv: list[str], **kwargs: object) -> proc.Completed:
        env = kwargs.get("env")
        ran.append((list(argv), dict(env) if isinstance(env, dict) else {}))
        return proc.Completed(tuple(argv), 0, "\x1b[32mweb-1  | ready\x1b[0m\n", "", 0.0)

    monkeypatch.setattr(proc, "run", run)
    return ran


def test_compose_commands_are_built_as_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from devenv.engine.runtime import DockerRuntime
    from devenv.engine.target import EngineTarget

    ran = _recording(monkeypatch)
    target = EngineTarget(url="unix:///var/run/docker.sock", address="127.0.0.1", source="the default socket")
    runtime = DockerRuntime(
        "demo", tmp_path / "compose.yml", tmp_path, target=target, checkout="/work/demo", machine=("m1", "box"),
        environ={"PATH": "/usr/bin", "HOME": "/home/me"},
    )  # fmt: skip
    runtime.up(["postgres", "redis"], build=True)
    runtime.down(volumes=True)  # no compose.yml rendered: by project name
    assert runtime.run_oneoff("migrate", ["npx", "prisma"], {"CI": "1"}) == (0, "\x1b[32mweb-1  | ready\x1b[0m\n")
    assert runtime.logs(["web"], tail=5) == "web-1  | ready\n"  # without terminal codes
    base = ["docker", "compose", "--project-name", "demo", "--file", str(tmp_path / "compose.yml"),
            "--project-directory", str(tmp_path)]  # fmt: skip
    assert [argv for argv, _ in ran] == [
        [*base, "up", "--detach", "--remove-orphans", "--build", "postgres", "redis"],
        ["docker", "compose", "--project-name", "demo", "down", "--remove-orphans", "--timeout", "10", "--volumes"],
        [*base, "run", "--rm", "--no-deps", "-T", "-e", "CI=1", "migrate", "npx", "prisma"],
        [*base, "logs", "--no-color", "--tail", "5", "web"],
    ]
    env = ran[0][1]
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "DEVENV_CHECKOUT": "/work/demo",
        "DEVENV_SECRETS": "",
        "DEVENV_MACHINE": "m1",
        "DEVENV_MACHINE_NAME": "box",
    }  # the given environ, not this process's


def test_a_compose_failure_names_the_subcommand_and_an_unreachable_engine_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from devenv.core import proc
    from devenv.core.errors import ComposeFailed
    from devenv.engine.runtime import DockerRuntime
    from devenv.engine.target import EngineTarget

    said = {"text": 'service "web" failed to build'}
    monkeypatch.setattr(proc, "run", lambda argv, **_: proc.Completed(tuple(argv), 1, said["text"], "", 0.0))
    target = EngineTarget(url="unix:///var/run/docker.sock", address="127.0.0.1", source="the default socket")
    runtime = DockerRuntime("demo", tmp_path / "compose.yml", tmp_path, target=target, environ={})
    with pytest.raises(ComposeFailed) as failed:
        runtime.up(["web"], build=False)
    assert failed.value.argv == ["up", "--detach", "--remove-orphans", "web"]  # without compose's global flags
    assert failed.value.message.startswith("`docker compose up --detach --remove-orphans web` failed (exit 1)")
    assert runtime.run_oneoff("migrate", ["true"]) == (1, said["text"])  # its exit code is the caller's to judge
    said["text"] = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
    for call in (lambda: runtime.up(["web"], build=False), lambda: runtime.run_oneoff("migrate", ["true"])):
        with pytest.raises(EngineUnreachable, match=r"not reachable at unix:///var/run/docker\.sock"):
            call()


# -- the models: the API's JSON, parsed at the edge ------------------------------------------------------------------
def test_a_listed_container_is_parsed_once_and_tolerates_missing_fields() -> None:
    from devenv.engine.models import ListedContainer

    bare = ListedContainer.from_api({"Labels": None, "State": "running"})
    assert (bare.id, bare.name, bare.image, bare.status, bare.created, bare.created_at) == ("", "?", "", "", "", None)
    listed = ListedContainer.from_api(_listed("a", "postgres", "exited", "Exited (137) 3 minutes ago", 1_700_000_000))
    assert (listed.name, listed.service, listed.ports, listed.created_rfc3339) == (
        "demo-postgres-1",
        "postgres",
        {5432: 49153},
        "2023-11-14T22:13:20Z",
    )
    state = listed.container_state()
    assert (state.status, state.exit_code, state.health, state.restart_count) == ("exited", 137, None, 0)
    inspected = listed.container_state({"State": {"Status": "running", "ExitCode": 0}, "RestartCount": 3})
    assert (inspected.status, inspected.exit_code, inspected.restart_count) == ("running", 0, 3)
    stateless = listed.container_state({"RestartCount": 1})  # an inspect without State: the list's, its count
    assert (stateless.status, stateless.exit_code, stateless.restart_count) == ("exited", 137, 1)


def test_the_engine_api_uses_the_environ_it_is_given(monkeypatch: pytest.MonkeyPatch, short_dir: Path) -> None:
    from devenv.core import proc
    from devenv.core.proc import Exchanged

    seen: list[tuple[list[str], object]] = []

    def fake(argv: list[str], data: bytes, *, timeout: float, env: object = None) -> Exchanged:
        seen.append((list(argv), env))
        return Exchanged(tuple(argv), 0, b"HTTP/1.0 200 OK\r\n\r\n{}", "", 0.0)

    monkeypatch.setattr(proc, "exchange", fake)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    environ = {"XDG_RUNTIME_DIR": str(short_dir), "DOCKER_HOST": "ssh://box"}
    api = HttpEngine(environ=environ)
    assert api.host == "ssh://box" and api.request("GET", "/info") == {}
    [(argv, env)] = seen
    assert f"ControlPath={short_dir}/devenv-ssh/%C" in argv and env == environ
