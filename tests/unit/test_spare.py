"""devenv.db.spare without an engine: the background process holds the lock until it is done, never holds the
caller's output open, and reports a failure in spare.log (real child processes, pointed at fake servers)."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv.core.lock import project_lock, try_lock
from devenv.db import spare
from tests.pgserver import ScriptedServer, msg, row

SETTINGS = {
    "host": "127.0.0.1",
    "user": "app",
    "password": "pw",
    "spare": "s",
    "template": "t",
    "template_mark": "devenv-template:k",
    "key": "k",
    "connect_timeout": 1.0,
}


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers: the child waits there until its connect timeout."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield int(server.getsockname()[1])


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return int(s.getsockname()[1])


def test_the_child_holds_the_lock_until_done_and_logs_its_failure(tmp_path: Path, silent_server: int) -> None:
    assert spare.start(tmp_path, {**SETTINGS, "port": silent_server})
    assert try_lock(tmp_path, "spare") is None  # handed to the child, which is still waiting on the server
    waited: list[bool] = []
    spare.wait(tmp_path, timeout=30, on_wait=lambda: waited.append(True))
    assert waited == [True]
    log = (tmp_path / spare.LOG).read_text()
    assert "making the spare 's' failed" in log and "timed out" in log
    fd = try_lock(tmp_path, "spare")  # free again
    assert fd is not None
    os.close(fd)


def test_a_failure_is_logged_and_nothing_waits_when_nothing_runs(tmp_path: Path) -> None:
    assert spare.start(tmp_path, {**SETTINGS, "port": _closed_port()})
    spare.wait(tmp_path, timeout=30)
    assert "Connection refused" in (tmp_path / spare.LOG).read_text()
    waited: list[bool] = []
    spare.wait(tmp_path, timeout=30, on_wait=lambda: waited.append(True))
    assert waited == []


def test_a_caller_capturing_the_output_is_not_kept_waiting(tmp_path: Path, silent_server: int) -> None:
    code = (
        "import sys; from pathlib import Path; from devenv.db import spare; "
        f"spare.start(Path({str(tmp_path)!r}), {{**{SETTINGS!r}, 'port': {silent_server}, 'connect_timeout': 5.0}}); "
        "print('started')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout.strip() == "started"
    # The caller got its output back while the child is still at work (it holds the lock until the silent server
    # gives up on it): had the child kept stdout/stderr open, run() would have waited for it to end.
    assert try_lock(tmp_path, "spare") is None
    spare.wait(tmp_path, timeout=30)


def test_no_second_copy_while_one_is_being_made(tmp_path: Path) -> None:
    with project_lock(tmp_path, "spare"):
        assert spare.start(tmp_path, {**SETTINGS, "port": _closed_port()}) is False
    assert not (tmp_path / spare.LOG).exists()  # nothing was started


def _scripted_postgres(spare_comment: bytes | None) -> ScriptedServer:
    """Plays the stack's Postgres for one copy: the template (oid 16400, marked) and the spare's state."""
    tmpl_row = row("16400", "devenv-template:k")
    spare_rows = b"" if spare_comment is None else row("16500", spare_comment.decode())
    done = msg(b"C", b"OK\0")
    return ScriptedServer(
        {
            "SELECT oid, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 't'": tmpl_row + done,
            "SELECT oid, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 's'": spare_rows + done,
            'DROP DATABASE "s" WITH (FORCE)': done,
            "SELECT pg_database_size(oid) FROM pg_database WHERE datname = 't'": row("8000000") + done,
            'CREATE DATABASE "s" TEMPLATE "t" OWNER "app"': done,
            'ALTER DATABASE "s" WITH ALLOW_CONNECTIONS false': done,
            "CHECKPOINT": done,
            "COMMENT ON DATABASE \"s\" IS 'devenv-spare:k:16400'": done,
        }
    )


def test_a_good_copy_is_marked_with_key_and_template_oid_and_clears_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = _scripted_postgres(spare_comment=b"devenv-spare:k:1")  # left from an older template
    (tmp_path / spare.LOG).write_text("an old failure\n")
    settings = {**SETTINGS, "password": "s3cret", "port": server.port, "log": str(tmp_path / spare.LOG)}
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(settings)))
    spare.main()
    server.thread.join(timeout=5)
    assert server.queries[2:] == [
        'DROP DATABASE "s" WITH (FORCE)',
        "SELECT pg_database_size(oid) FROM pg_database WHERE datname = 't'",
        'CREATE DATABASE "s" TEMPLATE "t" OWNER "app"',
        'ALTER DATABASE "s" WITH ALLOW_CONNECTIONS false',
        "CHECKPOINT",
        "COMMENT ON DATABASE \"s\" IS 'devenv-spare:k:16400'",  # the mark comes last
    ]
    assert not (tmp_path / spare.LOG).exists()


def test_a_finished_spare_of_this_template_is_left_alone() -> None:
    server = _scripted_postgres(spare_comment=b"devenv-spare:k:16400")
    spare.make({**SETTINGS, "password": "s3cret", "port": server.port})
    server.thread.join(timeout=5)
    assert len(server.queries) == 2  # looked, and found nothing to do
