"""The small Redis client devenv talks to the stack's own Redis with (the readiness probe, status, reset's flush).

Why not redis-py: importing it pulls in asyncio, a large part of what a whole soft reset may take
(docs/benchmarks.md). devenv sends a handful of commands to its own container, so RESP2 is all it needs: commands
as arrays of bulk strings, replies parsed into Python values, pipelined when several go at once. The tests check
devenv's work with redis-py, an independent client.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Sequence
from types import TracebackType
from typing import BinaryIO

Reply = str | int | bytes | None | list["Reply"]


class RespError(Exception):
    """An error reply (`-ERR ...`, `-WRONGPASS ...`); `code` is its first word."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text
        self.code = text.split(" ", 1)[0]


class ProtocolError(OSError):
    """The connection broke or carried something that is not RESP (an OSError: a transport failure)."""


def encode(*args: str | bytes) -> bytes:
    """One command in RESP, the protocol's wire format: an array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Connection:
    """One connection: `command` sends one command and returns its reply; `pipeline` sends several at once."""

    def __init__(self, sock: socket.socket, setup: Sequence[Sequence[str]] = ()) -> None:
        self.sock = sock
        self.stream: BinaryIO = sock.makefile("rb")
        self._setup = [list(c) for c in setup]  # AUTH / SELECT, sent in the same write as the first command

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stream.close()
            self.sock.close()

    def _line(self) -> bytes:
        line = self.stream.readline()
        if not line.endswith(b"\r\n"):
            raise ProtocolError("the server closed the connection")
        return line[:-2]

    def _reply(self) -> Reply | RespError:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode(errors="replace")
        if kind == b"-":
            return RespError(rest.decode(errors="replace"))
        try:
            number = int(rest)
        except ValueError:
            raise ProtocolError(f"unexpected reply {line[:40]!r} (not a Redis server?)") from None
        if kind == b":":
            return number
        if kind == b"$":
            if number < 0:
                return None
            data = self.stream.read(number + 2)
            if len(data) < number + 2:
                raise ProtocolError("the server closed the connection")
            return data[:-2]
        if kind == b"*":
            if number < 0:
                return None
            items: list[Reply] = []
            for _ in range(number):
                item = self._reply()
                if isinstance(item, RespError):
                    raise item
                items.append(item)
            return items
        raise ProtocolError(f"unexpected reply {line[:40]!r} (not a Redis server?)")

    def pipeline(self, commands: Sequence[Sequence[str]]) -> list[Reply | RespError]:
        """Send COMMANDS in one write and read their replies in order (errors are returned, not raised).

        The first call also carries the login (AUTH, SELECT): an error there raises RespError.
        """
        setup, self._setup = self._setup, []
        self.sock.sendall(b"".join(encode(*c) for c in [*setup, *commands]))
        for _ in setup:
            reply = self._reply()
            if isinstance(reply, RespError):
                raise reply
        return [self._reply() for _ in commands]

    def command(self, *args: str) -> Reply:
        """Send one command; an error reply raises RespError."""
        (reply,) = self.pipeline([args])
        if isinstance(reply, RespError):
            raise reply
        return reply


def connect(host: str, port: int, password: str = "", db: int = 0, *, timeout: float = 5.0) -> Connection:
    """Open a connection that logs in (AUTH PASSWORD when one is set, SELECT DB) with its first command.

    The login rides in the same write as that command, so a probe or a flush is one round trip.
    """
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        sock.close()
        raise
    setup = ([["AUTH", password]] if password else []) + ([["SELECT", str(db)]] if db else [])
    return Connection(sock, setup)
