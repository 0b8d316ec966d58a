"""devenv.clients.resp against a scripted Redis: the wire format, pipelined login, replies, and the mapped errors."""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest

from devenv.clients import resp
from devenv.clients.connectors import RedisConnector
from devenv.core.errors import CredentialsRefused, DevenvError, ServiceUnavailable


def test_command_is_the_redis_wire_format() -> None:
    assert resp.encode("AUTH", "pä ss") == b"*2\r\n$4\r\nAUTH\r\n$6\r\np\xc3\xa4 ss\r\n"
    assert resp.encode("FLUSHDB") == b"*1\r\n$7\r\nFLUSHDB\r\n"


class FakeRedis:
    """Answers each RESP command with a canned reply and records what it received, and in how many reads."""

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
    RedisConnector("127.0.0.1", server.port, "s3cret", 2).flush()
    server.thread.join(timeout=5)
    assert server.received == [["AUTH", "s3cret"], ["SELECT", "2"], ["FLUSHDB"]]


def test_flush_without_password_or_db_sends_flushdb_only() -> None:
    server = FakeRedis({})
    RedisConnector("127.0.0.1", server.port, "", 0).flush()
    server.thread.join(timeout=5)
    assert server.received == [["FLUSHDB"]]


def test_a_refused_password_is_final_and_names_the_setting() -> None:
    server = FakeRedis({"AUTH": b"-WRONGPASS invalid username-password pair\r\n"})
    with pytest.raises(CredentialsRefused, match=r"refused the password from \.env \(REDIS_PASSWORD\)") as info:
        RedisConnector("127.0.0.1", server.port, "wrong", 0).flush()
    assert "WRONGPASS" in info.value.message and "devenv down && devenv up" in (info.value.hint or "")


def test_probe_reads_bulk_strings_and_waits_while_redis_loads() -> None:
    ready = FakeRedis({"PING": b"+PONG\r\n", "GET": b"$1\r\n1\r\n"})
    assert RedisConnector("127.0.0.1", ready.port, "", 0).probe() is True
    loading = FakeRedis({"PING": b"-LOADING Redis is loading the dataset in memory\r\n"})
    assert RedisConnector("127.0.0.1", loading.port, "", 0).probe() is False
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    assert RedisConnector("127.0.0.1", port, "", 0).probe() is False  # nothing listens: not yet


def test_replies_of_every_kind_and_other_errors() -> None:
    server = FakeRedis({"INFO": b"*3\r\n:7\r\n$-1\r\n$3\r\nabc\r\n", "BOGUS": b"-ERR unknown command 'BOGUS'\r\n"})
    with resp.connect("127.0.0.1", server.port) as conn:
        assert conn.command("INFO") == [7, None, b"abc"]
        with pytest.raises(resp.RespError) as err:
            conn.command("BOGUS")
    assert err.value.code == "ERR"
    failing = FakeRedis({"FLUSHDB": b"-ERR max number of clients reached\r\n"})
    with pytest.raises(DevenvError, match="answered FLUSHDB with") as info:
        RedisConnector("127.0.0.1", failing.port, "", 0).flush()
    assert not isinstance(info.value, ServiceUnavailable)


def test_junk_instead_of_redis_is_a_protocol_error() -> None:
    server = FakeRedis({"PING": b"HTTP/1.1 400 Bad Request\r\n"})
    with resp.connect("127.0.0.1", server.port) as conn, pytest.raises(resp.ProtocolError):
        conn.command("PING")
