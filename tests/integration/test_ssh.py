"""The ssh path to a real remote engine (the bed's sshd, scripts/remote-engine.sh): the Engine API calls that failed
when ssh's stdin closed early, one master connection for everything, and ssh's failures through the real CLI.

Each test gets a control folder of its own (a short $XDG_RUNTIME_DIR under /tmp), so the masters it counts are its
own, and ends them through their sockets afterwards; a logging `ssh` first on PATH records every ssh started.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tenacity import Retrying, stop_after_delay, wait_fixed

from devenv.engine import ssh
from devenv.engine.runtime import HttpEngine
from tests.integration.conftest import make_project, remove
from tests.integration.remote import EnvKind, RemoteEngine

pytestmark = pytest.mark.docker

REAL_SSH = shutil.which("ssh") or "/usr/bin/ssh"


def _masters(folder: Path) -> list[int]:
    """The pids of the ssh masters listening in FOLDER (ssh renames itself `ssh: SOCKET [mux]`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        if cmdline.startswith(f"ssh: {folder}/") and "[mux]" in cmdline:
            found.append(int(entry.name))
    return found


def _sockets(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if stat.S_ISSOCK(p.lstat().st_mode)] if folder.is_dir() else []


@pytest.fixture
def control(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This test's ssh control folder; the masters in it are ended (through their sockets) when the test ends."""
    base = Path(tempfile.mkdtemp(prefix="dvssh-", dir="/tmp"))  # short: a socket path has ~104 bytes
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base))
    folder = base / "devenv-ssh"
    try:
        yield folder
    finally:
        for sock in _sockets(folder):
            subprocess.run(
                [REAL_SSH, "-o", f"ControlPath={sock}", "-O", "exit", "unused"],
                capture_output=True, timeout=30, check=False, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        for attempt in Retrying(stop=stop_after_delay(10), wait=wait_fixed(0.1), reraise=True):
            with attempt:
                assert _masters(folder) == []
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def ssh_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file with one line per ssh started (its arguments): a logging `ssh` is put first on PATH."""
    folder = tmp_path / "logging-bin"
    folder.mkdir()
    log = tmp_path / "ssh.log"
    log.touch()
    (folder / "ssh").write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {REAL_SSH} "$@"\n')
    (folder / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return log


@pytest.mark.parametrize("kind", ["ssh", "alias"])
def test_the_engine_api_over_ssh_answers_every_call_on_one_master(
    remote_engine: RemoteEngine, kind: EnvKind, control: Path, ssh_log: Path
) -> None:
    url = remote_engine.env(kind)["DOCKER_HOST"]
    api = HttpEngine(url)
    bed = HttpEngine(remote_engine.tcp).request("GET", "/info")
    # the calls an early-closed stdin broke ("context canceled", an empty answer)
    assert api.request("GET", "/info")["ID"] == bed["ID"]
    assert api.request("GET", "/version")["Os"] == "linux"
    assert "Volumes" in api.request("GET", "/system/df")
    assert any("devenv-local/postgres:15" in (i.get("RepoTags") or []) for i in api.request("GET", "/images/json"))
    calls = 4
    # the docker CLI (docker's connhelper, as compose uses it) through the shim, the API's DELETE, ten times over
    cli_env = ssh.environ_with_shim({**os.environ, **remote_engine.env(kind)})
    prefix = f"devenv-ssh-{uuid.uuid4().hex[:8]}"
    for i in range(10):
        name = f"{prefix}-{i}"
        made = subprocess.run(
            ["docker", "volume", "create", "--label", f"devenv.project={prefix}", name],
            capture_output=True, text=True, env=cli_env, timeout=60, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        assert api.request("DELETE", f"/volumes/{name}") is None  # 204, no body
        assert api.request("GET", f"/volumes/{name}") is None  # 404: gone
        calls += 2
    assert api.request("GET", "/volumes", {"filters": f'{{"label":["devenv.project={prefix}"]}}'})["Volumes"] == []
    calls += 1

    started = [line.split() for line in ssh_log.read_text().splitlines()]
    shared = ssh.options(control)
    assert started and all(args[: len(shared)] == shared for args in started), started  # devenv's and the shim's
    api_calls = [a for a in started if a[len(shared)] in {"-l", "--"}]  # the shim's carry connhelper's own flags
    assert len(api_calls) == calls
    assert len(started) > calls  # the docker CLI's went through the shim too
    assert len(_sockets(control)) == 1
    assert len(_masters(control)) == 1  # one ssh connection to the bed for all of it


def test_the_ssh_url_and_its_alias_share_the_master(remote_engine: RemoteEngine, control: Path) -> None:
    # ControlPath's %C hashes the host ssh connects to (after the alias's HostName), its port and user
    HttpEngine(remote_engine.ssh).request("GET", "/info")
    HttpEngine(remote_engine.alias).request("GET", "/info")
    assert len(_sockets(control)) == 1 and len(_masters(control)) == 1


def _stranger_ssh(tmp_path: Path, remote_engine: RemoteEngine) -> Path:
    """A folder with an `ssh` that knows the bed's key but not its host key (an empty known_hosts), as on a
    machine that never connected to it; `dvbox` is defined there too."""
    folder = tmp_path / "stranger"
    folder.mkdir()
    (folder / "known_hosts").touch()
    key = Path("/var/lib/devenv-remote/ssh/id_ed25519")
    (folder / "config").write_text(
        f"Host dvbox\n  HostName {remote_engine.addr}\n  User root\n"
        f"Host *\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {folder / 'known_hosts'}\n"
        "  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n"
    )
    (folder / "ssh").write_text(f'#!/bin/sh\nexec {REAL_SSH} -F {folder / "config"} "$@"\n')
    (folder / "ssh").chmod(0o755)
    return folder


@pytest.mark.parametrize("command", ["status", "down"])  # the Engine API's failure, and compose's
@pytest.mark.parametrize("kind", ["ssh", "alias"])
def test_an_unknown_host_key_exits_3_and_says_to_ssh_there_once(
    remote_engine: RemoteEngine, tmp_path: Path, control: Path, kind: EnvKind, command: str
) -> None:
    project = make_project(tmp_path)
    stranger = _stranger_ssh(tmp_path, remote_engine)
    project.env.update(remote_engine.env(kind), PATH=f"{stranger}{os.pathsep}{os.environ['PATH']}")
    project.env["XDG_RUNTIME_DIR"] = os.environ["XDG_RUNTIME_DIR"]  # no master of another test to ride on
    login = "root@10.213.47.2" if kind == "ssh" else "dvbox"
    try:
        done = project.devenv(command, timeout=120)
        assert done.returncode == 3, (done.stdout, done.stderr)
        errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
        assert errors == [
            f"Error: Docker Engine not reachable at {remote_engine.env(kind)['DOCKER_HOST']}: Host key verification "
            f"failed Hint: run `ssh {login}` once to check and accept its host key."
        ], done.stderr
        assert "Docker Desktop" not in done.stderr
    finally:
        project.env.update(PATH=os.environ["PATH"])
        remove(project)


def test_a_host_that_does_not_resolve_says_so(tmp_path: Path, control: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": "ssh://devenv-no-such-host.invalid", "DOCKER_CONTEXT": "", "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "devenv", "ls"], capture_output=True, text=True, env=env, timeout=120,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "Could not resolve hostname devenv-no-such-host.invalid" in done.stderr
    assert "check the host in DOCKER_HOST" in done.stderr
