"""The pieces of `devenv reset` that need no engine: template names and the Redis flush's wire format."""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest

from devenv.errors import DevenvError
from devenv.snapshot import flush_redis, resp_command, spare_name, template_name


def test_resp_command_is_the_redis_wire_format() -> None:
    assert resp_command("AUTH", "pä ss") == b"*2\r\n$4\r\nAUTH\r\n$6\r\np\xc3\xa4 ss\r\n"
    assert resp_command("FLUSHDB") == b"*1\r\n$7\r\nFLUSHDB\r\n"


def test_template_and_spare_names_fit_postgres_identifier_limit_in_bytes() -> None:
    assert template_name("quotes") == "quotes__devenv_template"
    assert spare_name("quotes") == "quotes__devenv_spare"
    for db in ("x" * 46, "x" * 47, "x" * 63, "é" * 30, "数据库" * 7):
        names = {db, template_name(db), spare_name(db)}
        assert len(names) == 3  # never the app database itself (a cut name could be), never each other
        assert all(len(n.encode()) <= 63 for n in names - {db})
    assert template_name("x" * 46) == "x" * 46 + "__devenv_template"  # 63 bytes: fits as it is
    assert template_name("x" * 47) != template_name("x" * 48)  # shortened by a hash, not by cutting


class FakeRedis:
    """Answers each RESP command with a canned line and records what it received."""

    def __init__(self, replies: dict[str, bytes]) -> None:
        self.replies = replies
        self.received: list[list[str]] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn, conn.makefile("rb") as reader, contextlib.suppress(OSError):  # the client may hang up first
            while True:
                header = reader.readline()
                if not header:
                    return
                args = []
                for _ in range(int(header[1:])):
                    size = int(reader.readline()[1:])
                    args.append(reader.read(size + 2)[:-2].decode())
                self.received.append(args)
                conn.sendall(self.replies.get(args[0], b"+OK\r\n"))


def test_flush_sends_auth_select_flushdb() -> None:
    server = FakeRedis({})
    flush_redis("127.0.0.1", server.port, "s3cret", 2)
    server.thread.join(timeout=5)
    assert server.received == [["AUTH", "s3cret"], ["SELECT", "2"], ["FLUSHDB"]]


def test_flush_without_password_or_db_sends_flushdb_only() -> None:
    server = FakeRedis({})
    flush_redis("127.0.0.1", server.port, "", 0)
    server.thread.join(timeout=5)
    assert server.received == [["FLUSHDB"]]


def test_flush_reports_a_refused_password() -> None:
    server = FakeRedis({"AUTH": b"-WRONGPASS invalid username-password pair\r\n"})
    with pytest.raises(DevenvError, match="answered AUTH with '-WRONGPASS") as info:
        flush_redis("127.0.0.1", server.port, "wrong", 0)
    assert "REDIS_PASSWORD" in (info.value.hint or "")
