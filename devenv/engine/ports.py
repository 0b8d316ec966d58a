"""Host ports: is the port devenv wants to publish free, and if not, who should change what.

Free means free where the engine publishes it: on this machine's loopback for a local engine (a bind tells), on the
engine's host for a remote one, where devenv cannot bind; there the engine says which host ports its containers
publish, and a port none of them holds is tried with a connection: one that is accepted is held by a process on the
engine's host. (A firewall that drops the attempt makes it look free; `compose up` then fails to publish it, which
devenv reports as the port in use.)
"""

from __future__ import annotations

import errno
import random
import socket
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from devenv.core.errors import PortInUse

EPHEMERAL = (49152, 65535)  # IANA's dynamic range: where a remote engine's fallback ports are picked
ANSWER_TIMEOUT = 0.5  # a port on the engine's host that neither accepts nor refuses by then counts as free


@dataclass(frozen=True)
class PortClaim:
    """One host port a service wants, and the settings that choose it."""

    service: str
    port: int  # 0: Docker picks a free ephemeral port, nothing to check
    setting: str  # e.g. "postgres.port in devenv.toml or DEVENV_POSTGRES_PORT"


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port (we can bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: connections in TIME_WAIT from a stack just stopped must not count as "in use";
        # a listener still does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as ex:
            if ex.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def check_ports(claims: Iterable[PortClaim], owned: Iterable[int] | Callable[[], Iterable[int]] = ()) -> None:
    """Raise PortInUse for the first claimed port that is taken by something other than this stack.

    OWNED (the ports this stack already publishes) may be a callable: it is asked only when a port is taken,
    so the common case never has to ask the engine.
    """
    mine: set[int] | None = None if callable(owned) else set(owned)
    seen: dict[int, str] = {}
    for claim in claims:
        if claim.port == 0:
            continue
        if claim.port in seen:
            raise PortInUse(
                f"host port {claim.port} is claimed by both {seen[claim.port]} and {claim.service}.",
                f"give {claim.service} another port ({claim.setting}).",
            )
        seen[claim.port] = claim.service
        if port_is_free(claim.port):
            continue
        if mine is None:
            mine = set(owned()) if callable(owned) else set()
        if claim.port not in mine:
            raise PortInUse(
                f"host port {claim.port} for {claim.service} is already in use on 127.0.0.1.",
                f"stop what holds it (`ss -ltnp 'sport = :{claim.port}'`) or set {claim.setting} to a free port.",
            )


def answers_at(host: str, port: int) -> bool:
    """Something on HOST accepts connections on PORT: on a remote engine's host, a process no container list shows."""
    try:
        with socket.create_connection((host, port), timeout=ANSWER_TIMEOUT):
            return True
    except OSError:  # refused, unreachable or silent: nothing there that devenv can see
        return False


class PortSpace(Protocol):
    """The host ports where the stack is published: which are free, and a free one."""

    @property
    def where(self) -> str: ...

    def is_free(self, port: int) -> bool: ...
    def free_port(self) -> int: ...


@dataclass(frozen=True)
class LocalPorts:
    """This machine's loopback ports (a local engine publishes there): bind to know."""

    @property
    def where(self) -> str:
        return "127.0.0.1"

    def is_free(self, port: int) -> bool:
        return port_is_free(port)

    def free_port(self) -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])


@dataclass
class EnginePorts:
    """A remote engine's host ports: the ones its containers publish are taken (asked once, on first need)."""

    host: str
    ask: Callable[[], Collection[int]]  # every host port the engine's containers publish
    answers: Callable[[int], bool]  # a process on the engine's host accepts connections on the port (answers_at)
    _held: set[int] | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        return f"the Docker Engine's host {self.host}"

    def held(self) -> set[int]:
        if self._held is None:
            self._held = set(self.ask())
        return self._held

    def is_free(self, port: int) -> bool:
        return port not in self.held() and not self.answers(port)

    def free_port(self) -> int:
        held = self.held()
        pick = random.SystemRandom()
        while True:
            port = pick.randint(*EPHEMERAL)
            if port not in held and not self.answers(port):
                held.add(port)  # two services of one `up` never get the same one
                return port
