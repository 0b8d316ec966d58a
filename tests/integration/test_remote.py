"""devenv against a real second Docker Engine: a `dockerd` in a network namespace of its own, reached over tcp,
ssh (an address and an ssh_config alias) and a docker context (scripts/remote-engine.sh, started and torn down
by the `remote_engine` fixture).

The project is the example without its Dockerfile, so the server runs on the host (`server.mode = "host"`), as
it does for projects without one: Postgres and Redis run on the remote engine, `up` migrates and seeds them from
here with the project's own Prisma. (The remote engine has no registry and no npm: an image whose build runs
`npm ci` could not be built there.) Every check reads what devenv did with independent clients: psycopg and
redis-py on the URLs `.env` holds, the docker CLI on either engine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from dotenv import dotenv_values
from tenacity import Retrying, stop_after_delay, wait_fixed

from devenv.engine.ports import answers_at
from tests.conftest import EXAMPLE
from tests.integration.remote import RemoteEngine, other_machine

pytestmark = pytest.mark.docker

KINDS = ("tcp", "tls", "ssh", "alias", "context")
# `run` and `ci up` + `gc` bring up whole stacks of their own: on one transport of each family (the Engine API and
# compose over tcp, and over ssh) they prove what the others would repeat (TLS, an alias and a context only change
# how devenv reaches the same engine, which `up`, status, doctor, ls, reset and db already cross).
FULL_LOOP = ("tcp", "ssh")


@dataclass
class Checkout:
    """A checkout of the example (no Dockerfile) driven through the real CLI against one engine."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def server_dir(self) -> Path:
        return self.root / "apps" / "server"

    def devenv(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "devenv", "-C", str(self.root), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def ok(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = self.devenv(*args, timeout=timeout)
        assert done.returncode == 0, f"devenv {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done

    def values(self) -> dict[str, str]:
        return {k: v or "" for k, v in dotenv_values(self.server_dir / ".env").items()}

    def pg(self) -> psycopg.Connection[tuple[object, ...]]:
        url = self.values()["DATABASE_URL"].split("?")[0]
        return psycopg.connect(url, connect_timeout=5, autocommit=True)

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.values()["REDIS_URL"], socket_connect_timeout=5)


def _docker(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=60, check=True)
    return done.stdout


def _labelled(env: dict[str, str], label: str) -> list[str]:
    """Containers and volumes carrying LABEL on the engine ENV points at."""
    containers = _docker(env, "ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}").split()
    volumes = _docker(env, "volume", "ls", "--filter", f"label={label}", "--format", "{{.Name}}").split()
    return sorted(containers + volumes)


def _local_env() -> dict[str, str]:
    drop = {"DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _copy(dest: Path) -> Path:
    root = dest / "monorepo"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("node_modules", ".devenv", ".env", "dist"))
    (root / "apps" / "server" / "Dockerfile").unlink()  # the server runs on the host
    return root


@pytest.fixture(scope="module")
def npm_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example without its Dockerfile, with its node_modules installed once (host mode needs them)."""
    root = _copy(tmp_path_factory.mktemp("remote-src"))
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"], cwd=root, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return root


def _checkout(src: Path, dest: Path, remote: RemoteEngine, kind: str, name: str | None = None) -> Checkout:
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns(".devenv", ".env"))
    return _checkout_env(dest, remote, kind, name)


def _checkout_env(dest: Path, remote: RemoteEngine, kind: str, name: str | None = None) -> Checkout:
    env = {k: v for k, v in _local_env().items() if not k.startswith("DEVENV_") or "IMAGE" in k or "BUILD" in k}
    env.update(remote.env(kind))
    env.update(NO_COLOR="1", DEVENV_BIND_ADDRESS="0.0.0.0", DEVENV_PROJECT_NAME=name or f"r-{uuid.uuid4().hex[:6]}")
    return Checkout(dest, env)


@pytest.fixture
def checkouts(npm_project: Path, tmp_path: Path, remote_engine: RemoteEngine) -> Iterator[list[Checkout]]:
    """Checkouts made by the test; every stack they made on the remote engine is removed afterwards."""
    made: list[Checkout] = []
    yield made
    for c in made:
        c.devenv("down", "--volumes", "--yes")
    engine_env = {**_local_env(), **remote_engine.env("tcp")}
    for c in made:  # what a failed test left: removed by label, never by name
        left = _labelled(engine_env, f"devenv.checkout={c.root}")
        for kind in (["rm", "-f"], ["volume", "rm", "-f"]):
            if left:
                subprocess.run(["docker", *kind, *left], env=engine_env, capture_output=True, check=False)


@pytest.mark.parametrize("kind", KINDS)
def test_the_whole_loop_on_a_remote_engine(
    kind: str, npm_project: Path, tmp_path: Path, remote_engine: RemoteEngine, checkouts: list[Checkout]
) -> None:
    c = _checkout(npm_project, tmp_path / "work", remote_engine, kind)
    checkouts.append(c)
    up = c.ok("up")
    assert "migrated from the host" in up.stdout, up.stdout
    name = c.env["DEVENV_PROJECT_NAME"]
    remote_env = {**_local_env(), **remote_engine.env("tcp")}

    # .env reaches the remote stack, not a local one: the engine's host in the URLs, the containers over there.
    values = c.values()
    assert urlsplit(values["DATABASE_URL"]).hostname == remote_engine.addr
    assert urlsplit(values["REDIS_URL"]).hostname == remote_engine.addr
    assert remote_engine.addr in up.stdout  # the summary says where the stack answers
    assert _labelled(remote_env, f"com.docker.compose.project={name}")
    assert _labelled(_local_env(), f"com.docker.compose.project={name}") == []  # nothing on the local engine
    with c.pg() as conn:
        assert conn.execute("SELECT count(*) FROM _prisma_migrations").fetchone()[0] >= 1  # type: ignore[index]
        conn.execute("CREATE TABLE remote_probe (x int)")
    assert c.redis().ping() is True
    c.redis().set("remote-key", "1")

    # status, doctor and ls speak to the remote engine (every Engine API call works over each transport).
    status = c.devenv("status", "--json")
    assert status.returncode in (0, 1), status.stderr  # the host server is not running: degraded at worst
    checks = json.loads(status.stdout)["checks"]
    assert checks["postgres"]["ready"] and checks["redis"]["ready"], checks
    doctor = c.devenv("doctor")
    assert "Traceback" not in doctor.stderr and "engine host" in doctor.stdout, doctor.stdout + doctor.stderr
    assert f"answer at {remote_engine.addr}" in doctor.stdout
    assert "held by this stack" in doctor.stdout  # the remote's 5432 is this stack's, not "free" or someone else's
    ls = json.loads(c.ok("ls", "--json").stdout)["stacks"]
    mine = next(s for s in ls if s["name"] == name)
    assert mine["this_machine"] is True and mine["checkout"] == str(c.root) and mine["state"] == "running"

    # reset: the table is gone, the migrations are there, the app's Redis db is empty.
    c.ok("reset", "--yes")
    with c.pg() as conn:
        assert conn.execute("SELECT to_regclass('remote_probe')").fetchone() == (None,)
    assert c.redis().get("remote-key") is None

    # db snapshot / restore
    with c.pg() as conn:
        conn.execute("CREATE TABLE kept (x int)")
    c.ok("db", "snapshot", "s1")
    with c.pg() as conn:
        conn.execute("DROP TABLE kept")
    c.ok("db", "restore", "s1", "--yes")
    with c.pg() as conn:
        assert conn.execute("SELECT to_regclass('kept')").fetchone() != (None,)

    if kind in FULL_LOOP:
        _ci_on_the_remote_engine(c, name, remote_engine, remote_env)

    # down --volumes: nothing of the stack is left on the remote engine.
    c.ok("down", "--volumes", "--yes")
    assert _labelled(remote_env, f"devenv.project={name}") == []


def _ci_on_the_remote_engine(c: Checkout, name: str, remote_engine: RemoteEngine, remote_env: dict[str, str]) -> None:
    """`run` and `gc` over the checkout's transport: CI stacks on the remote engine, nothing of them left behind."""
    # run: a CI stack on the remote engine, its URLs exported to the command, nothing left behind.
    probe = (
        "import os, urllib.parse as u; print('PG', u.urlsplit(os.environ['DATABASE_URL']).hostname); "
        "print('RD', u.urlsplit(os.environ['REDIS_URL']).hostname)"
    )
    run = c.ok("run", "--", sys.executable, "-c", probe)
    assert f"PG {remote_engine.addr}" in run.stdout and f"RD {remote_engine.addr}" in run.stdout, run.stdout
    assert _labelled(remote_env, "devenv.ci=true") == []

    # gc over the same transport: a CI stack of this machine older than 0 s goes, with its volumes.
    ci = json.loads(c.ok("ci", "up", "--name", f"{name}-gc", "--json").stdout)
    assert urlsplit(ci["DATABASE_URL"]).hostname == remote_engine.addr
    gc = c.ok("gc", "--older-than", "0s")
    assert f"{name}-gc" in gc.stdout
    assert _labelled(remote_env, f"devenv.project={name}-gc") == []


def test_two_machines_with_the_same_checkout_path_never_touch_each_others_stack(
    npm_project: Path, tmp_path: Path, remote_engine: RemoteEngine, checkouts: list[Checkout]
) -> None:
    """Machine A and machine B (a private mount namespace: the same checkout path with other content, another
    devenv state folder and so another machine id) share one engine and one derived stack name."""
    a = _checkout(npm_project, tmp_path / "work", remote_engine, "tcp", name="")
    a.env.pop("DEVENV_PROJECT_NAME")  # the derived name: both machines' checkouts want the same one
    checkouts.append(a)
    a.ok("up")
    a_name = json.loads(a.ok("ls", "--json").stdout)["stacks"]
    a_stack = next(s for s in a_name if s["checkout"] == str(a.root) and s["this_machine"])
    remote_env = {**_local_env(), **remote_engine.env("tcp")}
    before = _docker(remote_env, "ps", "-q", "--filter", f"label=com.docker.compose.project={a_stack['name']}")
    with a.pg() as conn:
        conn.execute("CREATE TABLE a_data (x int)")
        conn.execute("INSERT INTO a_data VALUES (1)")

    b_src = tmp_path / "b-src"
    shutil.copytree(npm_project, b_src / "monorepo", symlinks=True, ignore=shutil.ignore_patterns(".devenv", ".env"))
    b_state = tmp_path / "b-state"
    b_state.mkdir()

    def on_b(*args: str, checkout: Path = a.root, src: Path = b_src / "monorepo") -> subprocess.CompletedProcess[str]:
        return other_machine(
            [sys.executable, "-m", "devenv", "-C", str(checkout), *args],
            checkout_path=checkout,
            checkout_src=src,
            state_home=b_state,
            env=a.env,
        )

    up_b = on_b("up")
    assert up_b.returncode == 0, up_b.stdout + up_b.stderr
    assert "on the machine" in up_b.stdout + up_b.stderr  # B was told whose name it is and got its own
    b_values = {k: v or "" for k, v in dotenv_values(b_src / "monorepo" / "apps" / "server" / ".env").items()}
    assert urlsplit(b_values["DATABASE_URL"]).port != urlsplit(a.values()["DATABASE_URL"]).port  # free ports
    # A's stack was not recreated: the same containers, the same data.
    after = _docker(remote_env, "ps", "-q", "--filter", f"label=com.docker.compose.project={a_stack['name']}")
    assert sorted(after.split()) == sorted(before.split())
    with a.pg() as conn:
        assert conn.execute("SELECT count(*) FROM a_data").fetchone() == (1,)

    # B's reset resets B's database only.
    assert on_b("reset", "--yes").returncode == 0
    with a.pg() as conn:
        assert conn.execute("SELECT count(*) FROM a_data").fetchone() == (1,)

    # On B, A's checkout path does not exist (another project there): `down --gone` leaves A's stack alone.
    elsewhere = tmp_path / "b-elsewhere"
    (elsewhere / "monorepo").mkdir(parents=True)
    gone = on_b("down", "--gone", "--yes", checkout=a.root, src=elsewhere / "monorepo")
    assert a_stack["name"] not in gone.stdout.replace("left alone", ""), gone.stdout + gone.stderr
    after = _docker(remote_env, "ps", "-q", "--filter", f"label=com.docker.compose.project={a_stack['name']}")
    assert sorted(after.split()) == sorted(before.split())

    # A pinned name on B is refused, naming A's machine; A's stack is still there.
    b_env_pinned = {**a.env, "DEVENV_PROJECT_NAME": a_stack["name"]}
    pinned = other_machine(
        [sys.executable, "-m", "devenv", "-C", str(a.root), "down"],
        checkout_path=a.root,
        checkout_src=b_src / "monorepo",
        state_home=b_state,
        env=b_env_pinned,
    )
    assert pinned.returncode == 2 and "another machine's stack" in pinned.stderr, pinned.stderr
    assert "--volumes" not in pinned.stderr and "--gone" not in pinned.stderr

    assert on_b("down", "--volumes", "--yes").returncode == 0
    with a.pg() as conn:
        assert conn.execute("SELECT count(*) FROM a_data").fetchone() == (1,)


@pytest.fixture
def engine_host_process(remote_engine: RemoteEngine) -> Iterator[int]:
    """A process on the engine's host (not a container) listening on Redis's default port 6379."""
    listener = subprocess.Popen(
        ["ip", "netns", "exec", "devenv-remote", sys.executable, "-c",
         "import socket, time; s = socket.create_server(('0.0.0.0', 6379)); time.sleep(3600)"],
    )  # fmt: skip
    try:
        for attempt in Retrying(stop=stop_after_delay(20), wait=wait_fixed(0.1), reraise=True):
            with attempt:
                assert listener.poll() is None, "the listener on the engine's host exited"
                assert answers_at(remote_engine.addr, 6379)
        yield 6379
    finally:
        listener.kill()
        listener.wait()


def test_a_second_checkout_on_the_same_remote_engine_gets_free_ports(
    npm_project: Path,
    tmp_path: Path,
    remote_engine: RemoteEngine,
    checkouts: list[Checkout],
    engine_host_process: int,
) -> None:
    first = _checkout(npm_project, tmp_path / "one", remote_engine, "tcp")
    second = _checkout(npm_project, tmp_path / "two", remote_engine, "tcp")
    checkouts += [first, second]
    up_first = first.ok("up")
    # 6379 is held by a process on the engine's host that no container list shows: found, and a free one taken
    said = up_first.stdout + up_first.stderr
    assert f"host port {engine_host_process} is taken (by a process on {remote_engine.addr}" in said, said
    assert urlsplit(first.values()["REDIS_URL"]).port != engine_host_process
    assert first.redis().ping() is True
    up = second.ok("up")
    ports = {urlsplit(c.values()["DATABASE_URL"]).port for c in (first, second)}
    assert len(ports) == 2, up.stdout
    assert "host port 5432 is taken (by the devenv stack" in up.stdout + up.stderr  # which port, and whose
    with first.pg() as one, second.pg() as two:
        assert one.execute("SELECT 1").fetchone() == two.execute("SELECT 1").fetchone() == (1,)


def test_the_server_image_builds_and_runs_on_the_remote_engine(
    tmp_path: Path, remote_engine: RemoteEngine, checkouts: list[Checkout]
) -> None:
    """The example with its Dockerfile over tcp: compose builds the server image on the remote engine (its `npm ci`
    goes through the bed's CONNECT proxy, the host's CA bundle as the npm_ca secret), the migrate job and the server
    run there, and the server answers at the engine's host."""
    root = tmp_path / "with-dockerfile"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("node_modules", ".devenv", ".env", "dist"))
    c = _checkout_env(root, remote_engine, "tcp")
    c.env["DEVENV_BUILD_ARG_HTTPS_PROXY"] = remote_engine.proxy
    checkouts.append(c)
    remote_env = {**_local_env(), **remote_engine.env("tcp")}
    name = c.env["DEVENV_PROJECT_NAME"]
    try:
        c.ok("up", timeout=900)
        checks = json.loads(c.devenv("status", "--json").stdout)["checks"]
        assert checks["server"]["ready"] and checks["server"]["details"]["status"] == "healthy", checks
        with c.pg() as conn:  # migrated by the job on the remote engine
            assert conn.execute("SELECT count(*) FROM _prisma_migrations").fetchone()[0] >= 1  # type: ignore[index]
        server = _docker(
            remote_env, "ps", "--filter", f"label=com.docker.compose.project={name}",
            "--filter", "label=com.docker.compose.service=server", "--format", "{{.Image}}",
        ).split()  # fmt: skip
        assert server and _docker(_local_env(), "images", "-q", server[0]).strip() == ""  # built there, not here
        published = _docker(remote_env, "port", f"{name}-server-1").split()
        port = int(published[-1].rsplit(":", 1)[1])
        import urllib.request

        with urllib.request.urlopen(f"http://{remote_engine.addr}:{port}/health", timeout=10) as answer:
            assert answer.status == 200
    finally:
        c.devenv("down", "--volumes", "--yes")
        images = _docker(remote_env, "images", "-q", "--filter", f"label=com.docker.compose.project={name}").split()
        if images:
            subprocess.run(["docker", "rmi", "-f", *images], env=remote_env, capture_output=True, check=False)
