"""A per-project lock, so two devenv processes never render, start or reset the same stack at once."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devenv.core.errors import Busy


@contextmanager
def project_lock(state_dir: Path, name: str = "stack", timeout: float = 120.0, poll: float = 0.05) -> Iterator[None]:
    """Hold an exclusive flock for STATE_DIR; wait up to TIMEOUT seconds for another devenv to finish.

    The lock file lives in a per-user folder under the temp dir, not in the project: a command that fails on bad
    input must leave the project exactly as it was.
    """
    path = lock_path(state_dir, name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the common case: nobody else is working here
        except BlockingIOError:
            _wait_for_lock(fd, state_dir, path, timeout, poll)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def lock_path(state_dir: Path, name: str) -> Path:
    """Where the lock NAME of STATE_DIR's project lives (a per-user folder under the temp dir)."""
    folder = Path(tempfile.gettempdir()) / f"devenv-locks-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    key = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]
    return folder / f"{key}-{name}.lock"


def try_lock(state_dir: Path, name: str) -> int | None:
    """Take the lock NAME without waiting and return its descriptor (None: somebody holds it).

    The lock belongs to the open file, so a child process that inherits the descriptor keeps holding it after
    this process has closed its copy: that is how a background job hands "busy" on to the job itself.
    """
    fd = os.open(lock_path(state_dir, name), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _wait_for_lock(fd: int, state_dir: Path, path: Path, timeout: float, poll: float) -> None:
    """flock has no timeout of its own: poll the non-blocking form until TIMEOUT."""
    from devenv.core.wait import retry_while

    try:
        retry_while(
            lambda: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB),
            lambda ex: isinstance(ex, BlockingIOError),
            timeout=timeout,
            interval=poll,
        )
    except BlockingIOError:
        raise Busy(
            f"another devenv is still working on this project ({state_dir} is locked by {path}).",
            "wait for it to finish, or stop it; the lock goes away with its process.",
        ) from None
