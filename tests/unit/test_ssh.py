"""The ssh path to an engine without one: ssh's argv and options, the shim compose runs, what ssh's failures mean,
and proc.exchange (the request/answer relay) on small local processes.

The same path runs against a real sshd in tests/integration/test_ssh.py.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from devenv.core import proc
from devenv.core.errors import CommandFailed, EngineUnreachable
from devenv.core.proc import Exchanged
from devenv.engine import ssh
from devenv.engine import target as engine
from devenv.engine.api import HttpEngine, is_connection_error, unreachable
from devenv.engine.runtime import DockerRuntime
from devenv.engine.target import EngineTarget

OPTS = ["-o", "ControlMaster=auto", "-o", "ControlPath={dir}/%C", "-o", "ControlPersist=60", "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=10"]  # fmt: skip


def opts(folder: Path) -> list[str]:
    return [o.format(dir=folder) for o in OPTS]


# -- argv ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "destination", "login"),
    [
        ("ssh://dvbox", ["--", "dvbox"], "dvbox"),
        ("ssh://root@10.213.47.2", ["-l", "root", "--", "10.213.47.2"], "root@10.213.47.2"),
        ("ssh://me@box.example:2222", ["-l", "me", "-p", "2222", "--", "box.example"], "-p 2222 me@box.example"),
    ],
)
def test_the_destination_is_the_urls_and_nothing_more(url: str, destination: list[str], login: str) -> None:
    # an alias stays an alias: ssh applies the user's config (HostName, User, Port, IdentityFile) itself
    assert engine.ssh_destination(url) == destination
    assert engine.ssh_login(url) == login


def test_ssh_argv_adds_only_options(short_dir: Path) -> None:
    argv = ssh.argv(["-l", "me", "--", "box"], ["docker", "system", "dial-stdio"], short_dir)
    assert argv == ["ssh", *opts(short_dir), "-l", "me", "--", "box", "docker", "system", "dial-stdio"]


def test_every_api_call_over_ssh_rides_the_shared_connection(monkeypatch: pytest.MonkeyPatch, short_dir: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short_dir))
    seen: list[tuple[list[str], bytes]] = []

    def fake(argv: list[str], data: bytes, *, timeout: float, env: object = None) -> Exchanged:
        seen.append((list(argv), data))
        return Exchanged(tuple(argv), 0, b'HTTP/1.0 200 OK\r\n\r\n{"ID": "x"}', "", 0.0)

    monkeypatch.setattr(proc, "exchange", fake)
    api = HttpEngine("ssh://me@box:2200")
    assert api.request("GET", "/info") == {"ID": "x"}
    assert api.request("DELETE", "/volumes/v1", {"force": "1"}) == {"ID": "x"}
    want = ["ssh", *opts(short_dir / "devenv-ssh"), "-l", "me", "-p", "2200", "--", "box"]
    assert [argv for argv, _ in seen] == [[*want, "docker", "system", "dial-stdio"]] * 2
    assert seen[1][1].startswith(b"DELETE /volumes/v1?force=1 HTTP/1.0\r\n")


def test_the_first_ssh_call_runs_alone_so_one_master_is_made(monkeypatch: pytest.MonkeyPatch, short_dir: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short_dir))
    running = 0
    most = 0
    first_started = threading.Event()
    release = threading.Event()
    lock = threading.Lock()

    def fake(argv: list[str], data: bytes, *, timeout: float, env: object = None) -> Exchanged:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        first_started.set()
        release.wait(5)
        with lock:
            running -= 1
        return Exchanged(tuple(argv), 0, b"HTTP/1.0 200 OK\r\n\r\n[]", "", 0.0)

    monkeypatch.setattr(proc, "exchange", fake)
    api = HttpEngine("ssh://box")
    threads = [threading.Thread(target=api.request, args=("GET", "/info")) for _ in range(4)]
    for t in threads:
        t.start()
    assert first_started.wait(5)
    release.set()
    for t in threads:
        t.join(5)
    assert most == 1  # the three others waited for the first (the master), none raced it


# -- the control folder ----------------------------------------------------------------------------------------------
def test_the_control_folder_is_private(short_dir: Path) -> None:
    folder = ssh.control_dir({"XDG_RUNTIME_DIR": str(short_dir)})
    assert folder == short_dir / "devenv-ssh"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    folder.chmod(0o755)
    assert stat.S_IMODE(ssh.control_dir({"XDG_RUNTIME_DIR": str(short_dir)}).stat().st_mode) == 0o700


def test_a_long_or_missing_runtime_dir_falls_back_to_a_short_tmp_path(short_dir: Path) -> None:
    long = short_dir / ("x" * 80)
    long.mkdir()
    for environ in ({"XDG_RUNTIME_DIR": str(long)}, {"XDG_RUNTIME_DIR": str(short_dir / "gone")}, {}):
        assert ssh.control_dir(environ) == Path(f"/tmp/devenv-ssh-{os.getuid()}")


def test_a_control_folder_that_is_a_link_is_refused(short_dir: Path) -> None:
    (short_dir / "elsewhere").mkdir()
    (short_dir / "devenv-ssh").symlink_to(short_dir / "elsewhere")
    with pytest.raises(EngineUnreachable, match="not a folder of this user's"):
        ssh.control_dir({"XDG_RUNTIME_DIR": str(short_dir)})


# -- the shim compose and the docker CLI run -----------------------------------------------------------------------
def _fake_ssh(folder: Path) -> Path:
    """An `ssh` that prints its arguments, one a line."""
    folder.mkdir()
    path = folder / "ssh"
    path.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    path.chmod(0o755)
    return folder


def test_the_shim_runs_the_real_ssh_with_the_shared_options(short_dir: Path) -> None:
    real = _fake_ssh(short_dir / "real")
    environ = {"XDG_RUNTIME_DIR": str(short_dir), "PATH": f"{real}:/usr/bin:/bin"}
    env = ssh.environ_with_shim(environ)
    folder = short_dir / "devenv-ssh"
    assert env["PATH"] == f"{folder / 'bin'}:{real}:/usr/bin:/bin"
    # what docker's connhelper runs
    args = ["-o", "ConnectTimeout=30", "-T", "-l", "root", "--", "box", "docker", "system", "dial-stdio"]
    done = subprocess.run(["ssh", *args], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [*opts(folder), *args]


def test_the_shim_is_written_once_and_never_finds_itself(short_dir: Path) -> None:
    real = _fake_ssh(short_dir / "real")
    environ = {"XDG_RUNTIME_DIR": str(short_dir), "PATH": f"{real}:/usr/bin:/bin"}
    env = ssh.environ_with_shim(environ)
    shim = short_dir / "devenv-ssh" / "bin" / "ssh"
    before = shim.stat().st_mtime_ns
    again = ssh.environ_with_shim(env)  # PATH already starts with the shim: it must not exec itself
    assert again["PATH"] == env["PATH"]
    assert shim.stat().st_mtime_ns == before
    assert f"exec {real / 'ssh'} " in shim.read_text()


def test_threads_writing_the_shim_at_once_all_get_it(short_dir: Path) -> None:
    real = _fake_ssh(short_dir / "real")
    environ = {"XDG_RUNTIME_DIR": str(short_dir), "PATH": f"{real}:/usr/bin:/bin"}
    folder = ssh.control_dir(environ)
    results: list[Path | None] = []
    errors: list[BaseException] = []

    def write() -> None:
        try:
            results.append(ssh.shim(folder, environ))
        except BaseException as ex:  # a shared temporary name: one thread's replace finds the file gone
            errors.append(ex)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == [folder / "bin"] * 8
    assert f"exec {real / 'ssh'} " in (folder / "bin" / "ssh").read_text()
    assert [p.name for p in (folder / "bin").iterdir()] == ["ssh"]  # no temporary left


def test_no_ssh_on_path_no_shim(short_dir: Path) -> None:
    env = ssh.environ_with_shim({"XDG_RUNTIME_DIR": str(short_dir), "PATH": str(short_dir / "nothing")})
    assert env["PATH"] == str(short_dir / "nothing")


def _runtime(url: str, short_dir: Path) -> DockerRuntime:
    target = EngineTarget(url=url, address="box", source="DOCKER_HOST")
    return DockerRuntime("demo", short_dir / "compose.yml", short_dir, engine=object(), target=target)  # type: ignore[arg-type]


def test_compose_of_an_ssh_engine_gets_the_shim(monkeypatch: pytest.MonkeyPatch, short_dir: Path) -> None:
    real = _fake_ssh(short_dir / "real")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short_dir))
    monkeypatch.setenv("PATH", f"{real}:/usr/bin")
    assert _runtime("ssh://box", short_dir).compose_env()["PATH"].startswith(f"{short_dir}/devenv-ssh/bin:")
    assert _runtime("tcp://box:2375", short_dir).compose_env()["PATH"] == f"{real}:/usr/bin"


# -- what ssh's failures mean ---------------------------------------------------------------------------------------
COMPOSE_SAYS = (
    'error during connect: Get "http://docker.example.com/v1.45/containers/json": command [ssh -o ConnectTimeout=30 '
    "-l root -- 10.213.47.2 docker system dial-stdio] has exited with exit status 255, please make sure the URL is "
    "valid, and Docker 18.09 or later is installed on the remote host: stderr={}\n"
)


@pytest.mark.parametrize(
    ("stderr", "seen", "hint"),
    [
        (
            "No ED25519 host key is known for 10.213.47.2 and you have requested strict checking.\n"
            "Host key verification failed.\n",
            "Host key verification failed",
            "run `ssh root@10.213.47.2` once to check and accept its host key",
        ),
        (
            "@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.\n",
            "Host key verification failed",
            "ssh-keygen -R",
        ),
        ("root@10.213.47.2: Permission denied (publickey).", "Permission denied (publickey)", "ssh-add"),
        ("root@10.213.47.2: Permission denied (publickey).", "Permission denied (publickey)", "ssh-copy-id"),
        (
            "ssh: Could not resolve hostname nosuch: Name or service not known",
            "ssh: Could not resolve hostname nosuch: Name or service not known",
            "DOCKER_HOST",
        ),
        ("ssh: connect to host 10.213.47.2 port 22: Connection refused", "Connection refused", "sshd"),
        ("ssh: connect to host 10.213.47.2 port 22: Connection timed out", "Connection timed out", "sshd"),
        ("bash: line 1: docker: command not found", "docker: command not found", "install the docker CLI"),
        ("sh: 1: docker: not found", "docker: not found", "install the docker CLI"),
    ],
)
def test_ssh_failures_name_what_to_do(stderr: str, seen: str, hint: str) -> None:
    for said in (stderr, COMPOSE_SAYS.format(stderr)):  # ssh's own words, and compose's wrapped around them
        error = unreachable(said, "ssh://root@10.213.47.2")
        assert isinstance(error, EngineUnreachable) and error.exit_code == 3
        assert seen in error.message and "\n" not in error.message
        assert error.message.startswith("Docker Engine not reachable at ssh://root@10.213.47.2: ")
        assert hint in (error.hint or "")
        assert "Docker Desktop" not in (error.hint or "")


def test_compose_failing_over_ssh_is_a_connection_error() -> None:
    assert is_connection_error(COMPOSE_SAYS.format("Host key verification failed."))


def test_an_alias_is_named_in_the_hint_as_written() -> None:
    error = unreachable("Host key verification failed.", "ssh://dvbox")
    assert "`ssh dvbox`" in (error.hint or "")


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("unix:///var/run/docker.sock", True),
        ("tcp://127.0.0.1:2375", True),
        ("tcp://10.213.47.2:2375", False),
        ("ssh://dvbox", False),
    ],
)
def test_only_a_local_engine_is_told_to_start_docker_here(url: str, local: bool) -> None:
    error = unreachable("ConnectionRefusedError: [Errno 111] Connection refused", url)
    assert ("Docker Desktop" in (error.hint or "")) is local
    assert url in error.message


def test_an_ssh_that_does_not_answer_is_unreachable(monkeypatch: pytest.MonkeyPatch, short_dir: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short_dir))

    def hangs(argv: list[str], data: bytes, *, timeout: float, env: object = None) -> Exchanged:
        raise CommandFailed(argv, -1, "(killed after 1 s)")

    monkeypatch.setattr(proc, "exchange", hangs)
    with pytest.raises(EngineUnreachable, match="no answer over ssh within 1 s") as caught:
        HttpEngine("ssh://dvbox", timeout=1).request("GET", "/info")
    assert "ssh dvbox docker version" in (caught.value.hint or "")


def test_ssh_failing_before_the_engine_answers_is_unreachable(monkeypatch: pytest.MonkeyPatch, short_dir: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short_dir))

    def refused(argv: list[str], data: bytes, *, timeout: float, env: object = None) -> Exchanged:
        return Exchanged(tuple(argv), 255, b"", "Host key verification failed.\r\n", 0.1)

    monkeypatch.setattr(proc, "exchange", refused)
    with pytest.raises(EngineUnreachable) as caught:
        HttpEngine("ssh://dvbox").request("GET", "/info")
    assert caught.value.render() == (
        "Error: Docker Engine not reachable at ssh://dvbox: Host key verification failed "
        "Hint: run `ssh dvbox` once to check and accept its host key."
    )


# -- proc.exchange ---------------------------------------------------------------------------------------------------
RELAY = """
import os, select, sys
request = sys.stdin.buffer.read(5)
if select.select([sys.stdin], [], [], 0)[0]:  # stdin at its end before the answer: what broke dial-stdio
    sys.stderr.write("stdin closed before the answer"); sys.exit(3)
sys.stdout.buffer.write(b"answer to " + request); sys.stdout.flush(); os.close(1)
sys.stdin.buffer.read()  # returns once devenv closes stdin: after it read the answer to its end
sys.stderr.write("stdin closed after the answer")
"""


def test_exchange_keeps_stdin_open_until_the_answer_ends() -> None:
    done = proc.exchange([sys.executable, "-c", RELAY], b"hello", timeout=30)
    assert done == Exchanged(done.argv, 0, b"answer to hello", "stdin closed after the answer", done.seconds)


def test_exchange_returns_a_failure_with_its_stderr() -> None:
    done = proc.exchange(["sh", "-c", "echo out; echo err >&2; exit 4"], b"ignored", timeout=30)
    assert (done.returncode, done.stdout, done.stderr, done.ok) == (4, b"out\n", "err\n", False)


def test_exchange_kills_a_process_past_its_deadline() -> None:
    with pytest.raises(CommandFailed, match=r"killed after 0.3 s"):
        proc.exchange(["cat"], b"never answered", timeout=0.3)  # cat echoes, but never ends its stdout


def test_exchange_is_not_held_by_a_child_keeping_its_pipes() -> None:
    # an ssh that exits while something it started keeps stdout/stderr open (a master logging to stderr)
    script = "sleep 60 & echo $!; echo done"
    done = proc.exchange(["sh", "-c", script], b"", timeout=30)
    child, said = done.stdout.decode().split()
    os.kill(int(child), 15)
    assert (done.returncode, said) == (0, "done")


def test_exchange_of_a_missing_command_is_a_usage_error() -> None:
    with pytest.raises(Exception, match="cannot run 'no-such-command-devenv'"):
        proc.exchange(["no-such-command-devenv"], b"", timeout=5)
