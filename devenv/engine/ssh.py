"""One multiplexed ssh connection to an ssh engine (`DOCKER_HOST=ssh://…`), shared by everything a command runs.

Every Engine API call is one `ssh HOST docker system dial-stdio`; compose and the docker CLI start their own ssh
(docker's connhelper runs `ssh` from PATH) for each connection they open. Without multiplexing a single `up` starts
dozens of ssh handshakes. With the options below the first ssh becomes the master of a control socket in a private
folder and every later one (devenv's own, compose's through the shim put first on their PATH) rides on it; the
master stays 60 s after the last session, so the next command reuses it too.

devenv only adds options: the user's ssh config (aliases, HostName, Port, User, IdentityFile, ProxyJump) applies as
ssh reads it. ssh takes the first value it gets for an option, and the command line comes before any file, so these
win over a config's ControlPath (a config that turns multiplexing off gets it anyway, and BatchMode: devenv has no
terminal to ask for a passphrase on). What ssh's failures mean, and what to do about each, is `failure`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devenv.core.errors import EngineUnreachable

OPTIONS = (
    ("ControlMaster", "auto"),
    ("ControlPersist", "60"),  # seconds the master outlives its last session
    ("BatchMode", "yes"),  # never a prompt: devenv's ssh has no terminal to ask on
    ("ConnectTimeout", "10"),
)
SOCKET_ROOM = 64  # a unix socket path has 104-108 bytes: "/%C" is 41 and ssh adds a 17-byte suffix while binding
SHIM_MARK = "# devenv ssh shim"


def control_dir(environ: Mapping[str, str]) -> Path:
    """The private folder (0700, this user's) of the control sockets: $XDG_RUNTIME_DIR/devenv-ssh, else
    /tmp/devenv-ssh-UID (never $TMPDIR: on macOS it is too long for a socket path)."""
    runtime = environ.get("XDG_RUNTIME_DIR") or ""
    if runtime and os.path.isdir(runtime) and len(runtime) <= SOCKET_ROOM:
        folder = Path(runtime) / "devenv-ssh"
    else:
        folder = Path(f"/tmp/devenv-ssh-{os.getuid()}")
    return _private(folder)


def _private(folder: Path) -> Path:
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
    except OSError as ex:
        raise EngineUnreachable(
            f"cannot make the ssh control folder {folder}: {ex.strerror or ex}", "check that folder's parent."
        ) from ex
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        # someone else's folder (or a link) in /tmp: a socket there could be theirs
        raise EngineUnreachable(
            f"the ssh control folder {folder} is not a folder of this user's.", f"remove {folder}, then run again."
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        folder.chmod(0o700)
    return folder


def options(folder: Path) -> list[str]:
    """ssh's `-o` arguments for the shared connection whose control sockets live in FOLDER."""
    out: list[str] = []
    for key, value in (*OPTIONS[:1], ("ControlPath", f"{folder}/%C"), *OPTIONS[1:]):
        out += ["-o", f"{key}={value}"]
    return out


def argv(destination: Sequence[str], command: Sequence[str], folder: Path) -> list[str]:
    """`ssh` with the shared connection's options, DESTINATION (e.g. `-p 2222 -- me@box`) and the remote COMMAND."""
    return ["ssh", *options(folder), *destination, *command]


def shim(folder: Path, environ: Mapping[str, str]) -> Path | None:
    """Write FOLDER/bin/ssh, which runs the real ssh with `options`, and return its folder (to put first on PATH);
    None when there is no ssh on PATH to run."""
    bin_dir = folder / "bin"
    real = shutil.which("ssh", path=_without(environ.get("PATH") or os.defpath, bin_dir))
    if real is None:
        return None
    text = (
        f"#!/bin/sh\n{SHIM_MARK}: compose and the docker CLI reach the engine through devenv's shared ssh connection\n"
        f'exec {shlex.join([real, *options(folder)])} "$@"\n'
    )
    path = bin_dir / "ssh"
    try:
        if path.read_text() == text:
            return bin_dir
    except OSError:
        pass
    bin_dir.mkdir(mode=0o700, exist_ok=True)
    tmp = bin_dir / f".ssh.{os.getpid()}.{threading.get_ident()}"  # threads of one process share a pid
    tmp.write_text(text)
    tmp.chmod(0o700)
    os.replace(tmp, path)  # another devenv may be reading it: never a half-written shim
    return bin_dir


def _without(path: str, folder: Path) -> str:
    return os.pathsep.join(p for p in path.split(os.pathsep) if p and Path(p) != folder)


def environ_with_shim(environ: Mapping[str, str]) -> dict[str, str]:
    """ENVIRON with the shim first on PATH (for the compose and docker CLI processes of an ssh engine)."""
    folder = control_dir(environ)
    bin_dir = shim(folder, environ)
    env = dict(environ)
    if bin_dir is not None:
        env["PATH"] = os.pathsep.join([str(bin_dir), _without(environ.get("PATH") or os.defpath, bin_dir)])
    return env


# -- what ssh's failures mean ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Failure:
    """An ssh failure recognised in its output: the line that says it, and what to do."""

    seen: str
    hint: str


def failure(output: str, login: str) -> Failure | None:
    """What went wrong reaching the engine host over ssh, from ssh's (or compose's) OUTPUT; LOGIN is how the user
    would ssh there by hand (`ssh LOGIN`). None when OUTPUT shows none of ssh's known failures."""
    lines = [line.strip() for line in output.replace("\\r\\n", "\n").replace("\\n", "\n").splitlines() if line.strip()]
    for pattern, hint in _FAILURES:
        for line in lines:
            found = re.search(pattern, line, re.IGNORECASE)
            if found:
                if "IDENTIFICATION HAS CHANGED" in output:
                    hint = _CHANGED
                return Failure(_trim(line, found), hint.format(login=login))
    return None


def _trim(line: str, found: re.Match[str]) -> str:
    # compose wraps ssh's words in a long sentence ("…: stderr=Host key verification failed."): show ssh's own
    start = line.rfind("stderr=", 0, found.start())
    text = line[start + len("stderr=") :] if start >= 0 else line
    return text.strip().rstrip(".")


_CHANGED = (
    "the engine host's key is not the one in known_hosts: if the host was rebuilt, remove the old key "
    "(`ssh-keygen -R HOST`), then run `ssh {login}` once to check and accept the new one."
)
_FAILURES = (
    (r"Host key verification failed", "run `ssh {login}` once to check and accept its host key."),
    (
        r"Permission denied \(|Too many authentication failures",
        "load your key into the agent (`ssh-add`) or install it on the engine host (`ssh-copy-id {login}`); devenv "
        "runs ssh with BatchMode, so it cannot ask for a password or passphrase.",
    ),
    (
        r"Could not resolve hostname",
        "check the host in DOCKER_HOST (or the docker context), or the alias's HostName in ~/.ssh/config.",
    ),
    (
        r"Connection refused|Connection timed out|timed out during banner|No route to host|Network is unreachable"
        r"|Connection closed by|Connection reset by",
        "sshd on the engine host is not reachable: check that the host is up, sshd runs and the port is right "
        "(`ssh {login}` shows the same).",
    ),
    (
        r"docker: (command )?not found|docker: No such file",
        "install the docker CLI on the engine host (devenv reaches the engine through `docker system dial-stdio` "
        "there) and make sure a non-interactive `ssh {login} docker version` finds it.",
    ),
    (
        r"Cannot connect to the Docker daemon",
        "ssh works, but no Docker Engine answers on the engine host: start it there "
        "(`ssh {login} sudo systemctl start docker`).",
    ),
)
