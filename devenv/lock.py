"""A per-project lock, so two devenv processes never render, start or reset the same stack at once."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devenv.errors import DevenvError


class Busy(DevenvError):
    """Another devenv holds the project's lock for too long."""


@contextmanager
def project_lock(state_dir: Path, name: str = "stack", timeout: float = 120.0) -> Iterator[None]:
    """Hold an exclusive flock for STATE_DIR; wait up to TIMEOUT seconds for another devenv to finish.

    The lock file lives in a per-user folder under the temp dir, not in the project: a command that fails on bad
    input must leave the project exactly as it was.
    """
    folder = Path(tempfile.gettempdir()) / f"devenv-locks-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    key = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]
    path = folder / f"{key}-{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the common case: nobody else is working here
        except BlockingIOError:
            _wait_for_lock(fd, state_dir, path, timeout)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _wait_for_lock(fd: int, state_dir: Path, path: Path, timeout: float) -> None:
    """flock has no timeout of its own: poll the non-blocking form until TIMEOUT."""
    from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

    retrying = Retrying(
        stop=stop_after_delay(timeout), wait=wait_fixed(0.05), retry=retry_if_exception_type(BlockingIOError)
    )
    try:
        retrying(fcntl.flock, fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except RetryError:
        raise Busy(
            f"another devenv is still working on this project ({state_dir} is locked by {path}).",
            "wait for it to finish, or stop it; the lock goes away with its process.",
        ) from None
