"""Host ports: is the port devenv wants to publish free, and if not, who should change what."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from devenv.errors import PortInUse


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
