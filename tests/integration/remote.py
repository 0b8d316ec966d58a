"""The second Docker Engine test bed (scripts/remote-engine.sh) and a way to run a command as if on a second machine.

`remote_engine` (session fixture, registered in conftest.py) brings the bed up once per session and always takes it
down at the end, also when a test or the set-up failed (unless another test session still uses it: see _Users).
A session that will use it starts the bed's `up` in the background as soon as collection ends (`start_early`), so
building it overlaps the tests that run before; the fixture waits for that `up`.
Under CI=true a bed that does not come up fails the tests; elsewhere they skip with the reason.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shlex
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from tests.conftest import REPO, in_ci

SCRIPT = REPO / "scripts" / "remote-engine.sh"
UP_TIMEOUT = 900  # a cold `up` installs openssh-server and copies ~1.3 GB of images: about 30 s here
DOWN_TIMEOUT = 180

EnvKind = Literal["tcp", "tls", "ssh", "alias", "context"]


class RemoteEngineError(Exception):
    """scripts/remote-engine.sh failed; the message carries the command, its exit code and its stderr's tail."""


@dataclass(frozen=True)
class RemoteEngine:
    """Where the bed answers, as `scripts/remote-engine.sh env` prints it."""

    addr: str  # 10.213.47.2: the second machine's address, reachable from this one only
    tcp: str  # tcp://10.213.47.2:2375
    ssh: str  # ssh://root@10.213.47.2
    alias: str  # ssh://dvbox (resolved through root's ~/.ssh/config Include)
    sock: str  # unix:///run/devenv-remote/docker.sock (the engine's own socket, as its sshd sessions see it)
    docker_config: Path  # a DOCKER_CONFIG folder holding the context below (never ~/.docker)
    context: str  # devenv-remote
    proxy: str  # http://10.213.47.1:3128: the CONNECT proxy (npm registry only) for builds on the bed
    tls: str  # tcp://10.213.47.2:2376: mutual TLS in front of the engine
    tls_certs: Path  # DOCKER_CERT_PATH for it (ca.pem, cert.pem, key.pem)

    def env(self, kind: EnvKind) -> dict[str, str]:
        """Environ overrides that point the docker CLI (and devenv) at the bed by KIND; "" means unset."""
        if kind == "context":
            return {"DOCKER_HOST": "", "DOCKER_CONFIG": str(self.docker_config), "DOCKER_CONTEXT": self.context}
        if kind == "tls":
            return {
                "DOCKER_HOST": self.tls,
                "DOCKER_CONTEXT": "",
                "DOCKER_TLS_VERIFY": "1",
                "DOCKER_CERT_PATH": str(self.tls_certs),
            }
        host = {"tcp": self.tcp, "ssh": self.ssh, "alias": self.alias}[kind]
        return {"DOCKER_HOST": host, "DOCKER_CONTEXT": ""}


def _script(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    argv = ["bash", str(SCRIPT), *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as ex:
        raise RemoteEngineError(f"`{shlex.join(argv)}` did not finish within {timeout:.0f} s") from ex
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RemoteEngineError(f"`{shlex.join(argv)}` exited {done.returncode}:\n{tail}")
    return done


def parse_env(text: str) -> RemoteEngine:
    """The bed's addresses from the `export NAME=value` lines of `remote-engine.sh env`."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.removeprefix("export ").partition("=")
        if sep:
            values[name] = value
    return RemoteEngine(
        addr=values["DEVENV_REMOTE_ADDR"],
        tcp=values["DEVENV_REMOTE_TCP"],
        ssh=values["DEVENV_REMOTE_SSH"],
        alias=values["DEVENV_REMOTE_ALIAS"],
        sock=values["DEVENV_REMOTE_SOCK"],
        docker_config=Path(values["DEVENV_REMOTE_DOCKER_CONFIG"]),
        context=values["DEVENV_REMOTE_CONTEXT"],
        proxy=values["DEVENV_REMOTE_PROXY"],
        tls=values["DEVENV_REMOTE_TLS"],
        tls_certs=Path(values["DEVENV_REMOTE_TLS_CERTS"]),
    )


def up() -> RemoteEngine:
    """Bring the bed up (a no-op when it is) and return where it answers."""
    _script("up", timeout=UP_TIMEOUT)
    return parse_env(_script("env", timeout=30).stdout)


def down() -> None:
    """Take the bed down; its image cache stays (a no-op when nothing is up)."""
    _script("down", timeout=DOWN_TIMEOUT)


def _problem() -> str | None:
    if os.name != "posix" or os.geteuid() != 0:
        return "the remote engine bed needs root (network namespaces, a second dockerd)"
    return None


class _Users:
    """Test sessions using the bed: each holds a shared lock; the last one to finish takes the bed down.

    Two sessions (two worktrees' `make test`) share the one bed: the first to end must not pull it from under the
    other. A session that ends tries the exclusive lock without waiting; held by another session means "not the last".
    """

    PATH = Path("/run/devenv-remote.users")

    def __init__(self) -> None:
        self._fd = os.open(self.PATH, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def leave(self) -> None:
        """Take the bed down when this session is the last user (a no-op when another session still uses it)."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            down()  # holding the exclusive lock: a session starting meanwhile waits for this down, then runs up
        finally:
            os.close(self._fd)


class _EarlyUp:
    """`remote-engine.sh up` started in the background at the start of a session that will use the bed."""

    def __init__(self) -> None:
        # its output is not kept: a failed background `up` is run again in the foreground, which reports the error
        self._proc = subprocess.Popen(
            ["bash", str(SCRIPT), "up"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def succeeded(self) -> bool:
        """Wait for the background `up`; True when it exited 0 (a failure is retried in the foreground, with its
        error: the local engine may not have been up yet when it started)."""
        try:
            return self._proc.wait(timeout=UP_TIMEOUT) == 0
        except subprocess.TimeoutExpired:
            self.stop()
            return False

    def stop(self) -> None:
        """End the background `up` if it still runs (the session ends before a test used the bed)."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=DOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


_early: _EarlyUp | None = None


def start_early(config: pytest.Config) -> None:
    """Start bringing the bed up in the background for a session whose tests will use it (a no-op without root)."""
    global _early
    if _early is not None or _problem() is not None:
        return
    users = _Users()  # taken before `up` starts: the bed is taken down at the end, also when `up` was cut short
    early = _EarlyUp()
    finished: list[bool] = []

    def finish() -> None:
        if not finished:
            finished.append(True)
            early.stop()
            users.leave()

    global _finish
    _finish = finish
    config.add_cleanup(finish)  # a session that ends before pytest_sessionfinish (an error in collection)
    _early = early


_finish: Callable[[], None] | None = None


def finish_early() -> None:
    """End the background `up` and leave the bed (the last user takes it down): from pytest_sessionfinish, so that
    an xdist worker does it before it reports itself finished (after that its controller may end it mid-way, and a
    `down` cut short leaves the second engine running)."""
    if _finish is not None:
        _finish()


@pytest.fixture(scope="session")
def remote_engine(request: pytest.FixtureRequest, docker_engine: None) -> Iterator[RemoteEngine]:
    """The second Docker Engine, up for the session; taken down at its end whatever happened (by its last user)."""
    problem = _problem()
    if problem is None:
        if _early is None:  # not started at collection (e.g. the fixture reached another way)
            # registered before `up`: a half-built bed (or Ctrl-C during `up`) is taken down too
            request.addfinalizer(_Users().leave)
        try:
            early_up = _early is not None and _early.succeeded()
            bed = parse_env(_script("env", timeout=30).stdout) if early_up else up()
        except RemoteEngineError as ex:
            problem = str(ex)
    if problem is not None:
        hint = "Hint: run `bash scripts/remote-engine.sh up` by hand; its logs are under /var/lib/devenv-remote/log."
        if in_ci():
            pytest.fail(f"CI=true and the remote engine bed is not up: {problem}\n{hint}", pytrace=False)
        pytest.skip(f"remote engine bed not available: {problem}")
    yield bed


def devenv_state_dir(env: Mapping[str, str]) -> Path:
    """devenv's per-user state folder under ENV, resolved as devenv.core.state does ($XDG_STATE_HOME or
    ~/.local/state)."""
    home = env.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir
    return Path(env.get("XDG_STATE_HOME") or Path(home) / ".local" / "state") / "devenv"


# In a private mount namespace: the bind mounts exist for this process and its children only, and vanish with
# the last of them. `--propagation private` keeps them from reaching the host's namespace (and the host's later
# mounts from reaching in).
_BIND_AND_EXEC = 'mount --bind -- "$1" "$2" && mount --bind -- "$3" "$4" && shift 4 && exec "$@"'


def other_machine(
    argv: Sequence[str],
    *,
    checkout_path: Path,
    checkout_src: Path,
    state_home: Path,
    env: Mapping[str, str],
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ARGV as if on a second machine: CHECKOUT_SRC appears at CHECKOUT_PATH, STATE_HOME as devenv's state folder.

    ENV is the process's whole environment; it also decides which state folder is replaced (devenv_state_dir).
    """
    state_dir = devenv_state_dir(env)
    for must in (checkout_path, checkout_src, state_home):
        if not must.is_dir():
            raise ValueError(f"other_machine: {must} is not a directory")
    state_dir.mkdir(parents=True, exist_ok=True)  # a mount point; devenv makes this folder anyway
    wrapped = [
        "unshare", "--mount", "--propagation", "private", "--",
        "sh", "-c", _BIND_AND_EXEC, "other-machine",
        str(checkout_src), str(checkout_path), str(state_home), str(state_dir),
        *argv,
    ]  # fmt: skip
    return subprocess.run(
        wrapped, capture_output=True, text=True, env=dict(env), timeout=timeout, stdin=subprocess.DEVNULL
    )
