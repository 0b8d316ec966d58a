"""devenv.spare without an engine: the background process holds the lock until it is done, and reports a failure
in the project's spare.log (a real child process, pointed at a port where nothing listens)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from devenv import spare
from devenv.lock import project_lock, try_lock


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return int(s.getsockname()[1])


SETTINGS = {"host": "127.0.0.1", "user": "app", "password": "pw", "spare": "s", "template": "t", "key": "k"}


def test_the_child_holds_the_lock_until_done_and_logs_its_failure(tmp_path: Path) -> None:
    assert spare.start(tmp_path, {**SETTINGS, "port": _closed_port()})
    assert try_lock(tmp_path, "spare") is None  # handed to the child before start() returned
    t0 = time.monotonic()
    spare.wait(tmp_path, timeout=30)
    assert time.monotonic() - t0 < 30
    log = (tmp_path / spare.LOG).read_text()
    assert "making the spare 's' failed" in log and "Connection refused" in log
    fd = try_lock(tmp_path, "spare")  # free again
    assert fd is not None
    os.close(fd)


def test_no_second_copy_while_one_is_being_made(tmp_path: Path) -> None:
    with project_lock(tmp_path, "spare"):
        assert spare.start(tmp_path, {**SETTINGS, "port": _closed_port()}) is False
    assert not (tmp_path / spare.LOG).exists()  # nothing was started
