"""The remote engine bed itself: a second engine over tcp, ssh, the dvbox alias and a context; its published ports on
its own address; `other_machine`'s view of a checkout and of devenv's state folder."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
import redis
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from tests.integration.conftest import free_port
from tests.integration.remote import SCRIPT, EnvKind, RemoteEngine, devenv_state_dir, other_machine

pytestmark = pytest.mark.docker

INFO = "{{.ID}}|{{.Name}}|{{.DockerRootDir}}"


def _docker(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=60, check=False
    )
    assert done.returncode == 0, f"docker {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}"
    return done.stdout.strip()


def _host(*args: str) -> str:
    """The docker CLI against the host engine (whatever the tests' environment points at)."""
    return _docker({}, *args)


@pytest.mark.parametrize("kind", ["tcp", "tls", "ssh", "alias", "context"])
def test_the_bed_is_a_second_engine_on_every_route(remote_engine: RemoteEngine, kind: EnvKind) -> None:
    host_id, host_name, host_root = _host("info", "--format", INFO).split("|")
    bed_id, bed_name, bed_root = _docker(remote_engine.env(kind), "info", "--format", INFO).split("|")
    assert bed_id != host_id
    assert bed_name != host_name
    assert bed_root != host_root
    assert _docker(remote_engine.env(kind), "version", "--format", "{{.Server.Os}}") == "linux"


def test_ssh_sessions_talk_to_the_bed_not_the_host(remote_engine: RemoteEngine) -> None:
    """The sshd's SetEnv: what `docker system dial-stdio` on the far side connects to."""
    done = subprocess.run(
        ["ssh", f"root@{remote_engine.addr}", "docker", "info", "--format", "{{.ID}}"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == _docker(remote_engine.env("tcp"), "info", "--format", "{{.ID}}")
    assert done.stdout.strip() != _host("info", "--format", "{{.ID}}")


def test_compose_works_with_the_beds_docker_config(remote_engine: RemoteEngine) -> None:
    assert _docker(remote_engine.env("context"), "compose", "version", "--short")
    assert _docker(remote_engine.env("context"), "context", "show") == remote_engine.context


def test_the_offline_images_are_on_the_bed(remote_engine: RemoteEngine, images: dict[str, str]) -> None:
    for image in images.values():
        want = _host("image", "inspect", "--format", "{{.Id}}", image)
        assert _docker(remote_engine.env("tcp"), "image", "inspect", "--format", "{{.Id}}", image) == want


def test_a_second_up_changes_nothing(remote_engine: RemoteEngine) -> None:
    pidfile = Path("/run/devenv-remote/dockerd.pid")
    pid = pidfile.read_text().strip()
    done = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "already up" in done.stderr
    assert pidfile.read_text().strip() == pid  # the same dockerd still serves


def test_a_published_port_answers_on_the_beds_address_only(remote_engine: RemoteEngine, images: dict[str, str]) -> None:
    port = free_port()  # free on this machine's loopback, so "refused there" means the bed did not publish it here
    name = f"devenv-bed-{uuid.uuid4().hex[:8]}"
    env = remote_engine.env("tcp")
    _docker(env, "run", "-d", "--name", name, "--label", f"devenv.project={name}",
            "-p", f"0.0.0.0:{port}:6379", images["redis"])  # fmt: skip
    try:
        bed = redis.Redis(host=remote_engine.addr, port=port, socket_timeout=5, socket_connect_timeout=5)
        for attempt in Retrying(
            stop=stop_after_delay(30), wait=wait_fixed(0.2), retry=retry_if_exception_type(redis.ConnectionError),
            reraise=True,
        ):  # fmt: skip
            with attempt:
                assert bed.ping() is True
        bed.close()
        loopback = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, socket_connect_timeout=5)
        with pytest.raises(redis.ConnectionError):
            loopback.ping()
    finally:
        _docker(env, "rm", "-f", "-v", name)
    assert _docker(env, "ps", "-a", "-q", "--filter", f"label=devenv.project={name}") == ""


@pytest.mark.parametrize("xdg", [False, True], ids=["home", "xdg_state_home"])
def test_other_machine_sees_another_checkout_and_state_folder(tmp_path: Path, xdg: bool) -> None:
    checkout = tmp_path / "work" / "app"
    checkout.mkdir(parents=True)
    (checkout / "WHO").write_text("this machine\n")
    theirs = tmp_path / "other" / "app"
    theirs.mkdir(parents=True)
    (theirs / "WHO").write_text("the other machine\n")
    state_home = tmp_path / "other" / "state"
    state_home.mkdir()
    (state_home / "machine-id").write_text("other-id\n")
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    env.pop("XDG_STATE_HOME", None)
    if xdg:
        env["XDG_STATE_HOME"] = str(tmp_path / "xdg")
    state_dir = devenv_state_dir(env)
    assert state_dir == (tmp_path / "xdg" / "devenv" if xdg else tmp_path / "home" / ".local" / "state" / "devenv")
    state_dir.mkdir(parents=True)
    (state_dir / "machine-id").write_text("this-id\n")

    done = other_machine(
        ["sh", "-c", 'cat "$0/WHO" "$1/machine-id" && touch "$0/made-there"', str(checkout), str(state_dir)],
        checkout_path=checkout,
        checkout_src=theirs,
        state_home=state_home,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["the other machine", "other-id"]
    # on this machine nothing changed, and the mounts are gone with the process
    assert (checkout / "WHO").read_text() == "this machine\n"
    assert (state_dir / "machine-id").read_text() == "this-id\n"
    assert not (checkout / "made-there").exists()
    assert (theirs / "made-there").exists()
    mounted = Path("/proc/self/mountinfo").read_text()
    assert str(checkout) not in mounted
    assert str(state_dir) not in mounted


def _connect(proxy: str, target: str) -> str:
    """The status line the bed's CONNECT proxy answers for TARGET (host:port)."""
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(proxy)
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        return sock.recv(4096).split(b"\r\n", 1)[0].decode()


def test_the_bed_proxy_lets_through_the_npm_registry_only(remote_engine: RemoteEngine) -> None:
    from urllib.parse import urlsplit

    registry = subprocess.run(["npm", "config", "get", "registry"], capture_output=True, text=True, check=True)
    npm_host = urlsplit(registry.stdout.strip()).hostname
    assert _connect(remote_engine.proxy, f"{npm_host}:443").endswith("200 Connection Established")
    assert _connect(remote_engine.proxy, f"{npm_host}:22").endswith("403 Forbidden")
    assert _connect(remote_engine.proxy, f"{remote_engine.addr}:2375").endswith("403 Forbidden")
